"""The C core's ``RangeSet`` and ``ReassemblyBuffer`` (exactly the API and errors of ``pure``)
and ``PacketCipher`` (AES-GCM packet protection over the system libcrypto).

The classes are CPython extension types written in C (``py_rangeset.c``,
``py_reassembly.c``, ``py_cipher.c``, sharing ``pytypes.c``) inside the cffi-built extension
module: a method call is one C call, with no Python wrapper around it. cffi exposes a single
function of that module, ``qr_export_types``; calling it (below, once) creates the three types
and sets them as attributes of the extension module. ``RangeSet`` subclasses
:class:`pure.AbstractRangeSet` (``isinstance``, ``==`` across implementations) and all three
report this module as their ``__module__``. Errors are raised from builtin and
:mod:`quicish.errors` classes directly, with the twin's messages. ``PacketCipher``
(``aead.c``) loads libcrypto only when first used (``PacketCipher.available()``, or a
constructor call, which raises ImportError when it cannot); it returns what
``quicish.wire.protection``'s Python path returns. ``render_stream_packets`` (``py_qlog.c``)
renders qlog's bulk packet events as the twin's function does; ``QlogTap`` is the qlog trace's
per-packet calls in the bulk case. Their types are declared in
``_core.pyi``.

The extension module is ``quicish.native._core``, or the module named by the
``QUICISH_NATIVE_MODULE`` environment variable (the AddressSanitizer build uses
``quicish.native._core_asan``). Importing this module raises ImportError when the
extension is missing or was built from older sources.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from . import pure

MODULE_NAME = os.environ.get("QUICISH_NATIVE_MODULE") or "quicish.native._core"
_mod = importlib.import_module(MODULE_NAME)
ffi: Any = _mod.ffi
lib: Any = _mod.lib


def _export() -> None:
    export = getattr(lib, "qr_export_types", None)
    if export is None:
        raise ImportError(f"{MODULE_NAME} is a stale build (python quicish/native/build_core.py)")
    failure = export(MODULE_NAME.encode(), __name__.encode(), pure.__name__.encode())
    if failure != ffi.NULL:
        reason = ffi.string(failure).decode(errors="replace")
        raise ImportError(f"{MODULE_NAME}: cannot create its types ({reason})")


_export()

if TYPE_CHECKING:  # the types of every build of the module are declared in _core.pyi
    from ._core import (
        BulkRecords,
        PacketCipher,
        QlogSpool,
        QlogTap,
        RangeSet,
        ReassemblyBuffer,
        acked_record,
        metrics_record,
        packet_record,
        render_chunk,
        render_ints,
        render_stream_packets,
    )

    recv_datagram: Any
else:
    RangeSet = _mod.RangeSet
    ReassemblyBuffer = _mod.ReassemblyBuffer
    PacketCipher = getattr(_mod, "PacketCipher", None)
    render_stream_packets = getattr(_mod, "render_stream_packets", None)
    render_chunk = getattr(_mod, "render_chunk", None)
    render_ints = getattr(_mod, "render_ints", None)
    packet_record = getattr(_mod, "packet_record", None)
    acked_record = getattr(_mod, "acked_record", None)
    metrics_record = getattr(_mod, "metrics_record", None)
    QlogSpool = getattr(_mod, "QlogSpool", None)
    QlogTap = getattr(_mod, "QlogTap", None)
    BulkRecords = getattr(_mod, "BulkRecords", None)
    recv_datagram = getattr(_mod, "recv_datagram", None)  # (None on Windows: no recvmsg)
    types = (PacketCipher, render_stream_packets, render_chunk, render_ints, QlogSpool, QlogTap)
    types += (BulkRecords, packet_record, acked_record, metrics_record)
    if None in types:
        raise ImportError(f"{MODULE_NAME} is a stale build (python quicish/native/build_core.py)")

__all__ = [
    "MODULE_NAME",
    "BulkRecords",
    "PacketCipher",
    "QlogSpool",
    "QlogTap",
    "RangeSet",
    "ReassemblyBuffer",
    "acked_record",
    "metrics_record",
    "packet_record",
    "recv_datagram",
    "render_chunk",
    "render_ints",
    "render_stream_packets",
]
