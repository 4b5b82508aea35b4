"""``python -m quicish.netem``: see `quicish.netem.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
