"""``python -m interop``: the same as ``python interop/run.py``."""

import sys

from interop.run import main

sys.exit(main())
