"""Native core: ACK range set and stream reassembly, in C (cffi) with a pure-Python twin.

``RangeSet`` and ``ReassemblyBuffer`` come from the C core when it loads
(``ACCELERATED`` is True), else from :mod:`quicish.native.pure`, which behaves
identically. ``QUICISH_PURE=1`` forces the twin; a missing or broken extension logs
one warning on the ``quicish`` logger and falls back to the twin.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import TYPE_CHECKING


def _load() -> tuple[ModuleType, bool]:
    from . import pure

    if os.environ.get("QUICISH_PURE", "") not in ("", "0"):
        return pure, False
    try:
        from . import accelerated
    except ImportError as exc:
        logging.getLogger("quicish").warning(
            "quicish C core not available (%s); using the pure-Python twin", exc
        )
        return pure, False
    return accelerated, True


if TYPE_CHECKING:
    from .pure import RangeSet, ReassemblyBuffer

    ACCELERATED: bool
else:
    _impl, ACCELERATED = _load()
    RangeSet = _impl.RangeSet
    ReassemblyBuffer = _impl.ReassemblyBuffer
    del _impl

__all__ = ["ACCELERATED", "RangeSet", "ReassemblyBuffer"]
