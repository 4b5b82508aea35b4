"""Native core: ACK range set and stream reassembly in C (cffi) with a pure-Python twin,
and AES-GCM packet protection in C over the system libcrypto.

``RangeSet`` and ``ReassemblyBuffer`` come from the C core when it loads
(``ACCELERATED`` is True), else from :mod:`quicish.native.pure`, which behaves
identically. ``QUICISH_PURE=1`` forces the twin; a missing or broken extension logs
one warning on the ``quicish`` logger and falls back to the twin.

``PacketCipher`` is the C core's AES-128/256-GCM packet cipher (one C call seals or opens
a whole packet, header protection included; it loads libcrypto with dlopen at first use),
which :class:`quicish.wire.protection.PacketProtector` uses for the AES suites; or None,
and ``CRYPTO_ACCELERATED`` is False, when packet protection stays on the Python path
(the ``cryptography`` package): with ``QUICISH_PURE=1`` or ``QUICISH_PURE_CRYPTO=1``, without
the C core, or when no usable libcrypto loads (one debug message on the ``quicish``
logger). ``QUICISH_LIBCRYPTO=/path/to/libcrypto.so`` names the only library to try.
ChaCha20-Poly1305 always takes the Python path.

``render_stream_packets`` (the qlog writer's bulk packet events as JSON-SEQ) and
``render_chunk`` (a flush's text in one piece, rendered without the GIL in C) are the C
core's when it loads, else the twin's. ``QlogTap`` (the qlog trace's per-packet calls in the bulk
case) is the C core's, or None: the trace's own Python methods are the twin's path; so is
``packet_record`` and ``acked_record`` (a non-bulk packet event's record made from its
payload, a packets_acked event's from the packets, each in one C call; the twins, in
``pure``, are for the differential tests). ``metrics_record`` (a recovery_metrics_updated
event's record of what changed) is the C core's, else the twin's.
``BulkRecords`` (the qlog writer's bulk records as C structs) is the C core's, else ``list``.
``QlogSpool`` (a qlog file's flushes rendered and written by a C thread, without the GIL)
is the C core's, else the twin's (which writes at once). ``recv_datagram`` (one UDP datagram,
its sender, ECN codepoint and GRO segment size off a socket in one C call, ``py_udp.c``) is
the C core's, or None: :mod:`quicish.udp`'s ``receive_one`` over ``socket.recvmsg`` is the twin.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _load() -> tuple[ModuleType, bool]:
    from . import pure

    if _flag("QUICISH_PURE"):
        return pure, False
    try:
        from . import accelerated
    except ImportError as exc:
        logging.getLogger("quicish").warning(
            "quicish C core not available (%s); using the pure-Python twin", exc
        )
        return pure, False
    return accelerated, True


def _load_cipher(impl: ModuleType, accelerated: bool) -> Any:
    if not accelerated or _flag("QUICISH_PURE_CRYPTO"):
        return None
    cipher = impl.PacketCipher
    if not cipher.available():
        logging.getLogger("quicish").debug(
            "quicish C packet cipher not available (%s); AES-GCM through cryptography",
            cipher.load_error(),
        )
        return None
    return cipher


if TYPE_CHECKING:
    # The extension types are declared in _core.pyi. Callers see RangeSet and
    # ReassemblyBuffer as the pure twin's classes (tests/test_native_stub.py checks that
    # the stub's match them) and PacketCipher as the stub's class, or None.
    from ._core import PacketCipher as PacketCipherType
    from ._core import QlogTap as QlogTapType
    from .pure import (
        QlogSpool,
        RangeSet,
        ReassemblyBuffer,
        metrics_record,
        render_chunk,
        render_ints,
        render_stream_packets,
    )

    ACCELERATED: bool
    CRYPTO_ACCELERATED: bool
    PacketCipher: type[PacketCipherType] | None
    QlogTap: type[QlogTapType] | None
    # the C core's packet_record (the trace's Python path is the twin's), or None
    packet_record: Callable[..., bytes | None] | None
    acked_record: Callable[..., bytes | None] | None
    # (the C type offers the list operations the qlog writer and trace use)
    BulkRecords: type[list[tuple[Any, ...]]]
    recv_datagram: Callable[[int, int], tuple[bytes, tuple[str, int], int, int] | None] | None
else:
    _impl, ACCELERATED = _load()
    RangeSet = _impl.RangeSet
    ReassemblyBuffer = _impl.ReassemblyBuffer
    render_stream_packets = _impl.render_stream_packets
    render_chunk = _impl.render_chunk
    render_ints = _impl.render_ints
    metrics_record = _impl.metrics_record
    QlogSpool = _impl.QlogSpool
    QlogTap = _impl.QlogTap if ACCELERATED else None
    packet_record = _impl.packet_record if ACCELERATED else None
    acked_record = _impl.acked_record if ACCELERATED else None
    BulkRecords = _impl.BulkRecords if ACCELERATED else list
    recv_datagram = _impl.recv_datagram if ACCELERATED else None
    PacketCipher = _load_cipher(_impl, ACCELERATED)
    CRYPTO_ACCELERATED = PacketCipher is not None
    del _impl


def crypto_backend() -> str:
    """What protects AES-GCM packets: the C cipher's libcrypto, or why not."""
    if PacketCipher is not None:
        from .accelerated import PacketCipher as cipher

        return f"C over {cipher.backend()}"
    if not ACCELERATED:
        return "Python (cryptography): no C core"
    if _flag("QUICISH_PURE_CRYPTO"):
        return "Python (cryptography): QUICISH_PURE_CRYPTO=1"
    from .accelerated import PacketCipher as cipher

    return f"Python (cryptography): {cipher.load_error()}"


__all__ = [
    "ACCELERATED",
    "CRYPTO_ACCELERATED",
    "BulkRecords",
    "PacketCipher",
    "QlogSpool",
    "QlogTap",
    "RangeSet",
    "ReassemblyBuffer",
    "acked_record",
    "crypto_backend",
    "metrics_record",
    "packet_record",
    "recv_datagram",
    "render_chunk",
    "render_ints",
    "render_stream_packets",
]
