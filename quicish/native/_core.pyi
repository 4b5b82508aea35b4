"""Types of the C core's extension module (``quicish.native._core``, built by cffi).

``RangeSet``, ``ReassemblyBuffer`` and ``PacketCipher`` are CPython extension types
(``py_rangeset.c``, ``py_reassembly.c``, ``py_cipher.c``) that ``qr_export_types`` adds to
the module at import (``quicish.native.accelerated``). ``RangeSet`` and
``ReassemblyBuffer`` have the API of the pure twin's classes (``quicish.native.pure``);
``tests/test_native_stub.py`` checks this stub against both.
"""

from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias

from .pure import AbstractRangeSet

_Bytes: TypeAlias = bytes | bytearray | memoryview

ffi: Any
lib: Any

class RangeSet(AbstractRangeSet):
    def __init__(self, max_ranges: int = 256) -> None: ...
    @property
    def max_ranges(self) -> int: ...
    @property
    def floor(self) -> int: ...
    def add(self, start: int, stop: int) -> None: ...
    def add_packet(self, pn: int) -> bool: ...
    def ack_frame(self, delay: int, ecn: tuple[int, int, int] | None, max_ranges: int) -> bytes: ...
    def subtract(self, start: int, stop: int) -> None: ...
    def drop_below(self, value: int) -> None: ...
    def __contains__(self, value: object) -> bool: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def bounds(self) -> tuple[int, int]: ...
    def ranges(self) -> list[tuple[int, int]]: ...
    def descending(self) -> list[tuple[int, int]]: ...
    def __iter__(self) -> Iterator[tuple[int, int]]: ...

class ReassemblyBuffer:
    def __init__(self, max_offset: int) -> None: ...
    def insert(self, offset: int, data: _Bytes, fin: bool = False) -> int: ...
    def read(self, max_bytes: int = -1) -> bytes: ...
    def set_final_size(self, size: int) -> int: ...
    def memory(self) -> int:
        """Bytes allocated by the C buffer (C-only diagnostic)."""
    @property
    def max_offset(self) -> int: ...
    @max_offset.setter
    def max_offset(self, value: int) -> None: ...
    @property
    def max_fragments(self) -> int: ...
    @max_fragments.setter
    def max_fragments(self, value: int) -> None: ...
    @property
    def fragments(self) -> int: ...
    @property
    def readable(self) -> int: ...
    @property
    def read_offset(self) -> int: ...
    @property
    def highest_offset(self) -> int: ...
    @property
    def final_size(self) -> int | None: ...
    @property
    def finished(self) -> bool: ...
    @property
    def buffered(self) -> int: ...

class PacketCipher:
    """AES-128/256-GCM packet protection (RFC 9001 section 5) of one key, in C over the
    system libcrypto; ImportError when libcrypto is not available."""

    def __init__(self, key: _Bytes, iv: _Bytes, hp_key: _Bytes) -> None: ...
    def seal(self, header: _Bytes, payload: _Bytes, pn: int) -> bytes:
        """The protected packet, as ``PacketProtector.seal_packet``."""
    def open(
        self, packet: _Bytes, pn_offset: int, largest_pn: int
    ) -> tuple[bytes, bytes, int] | None:
        """As ``PacketProtector.open_packet``; None where it raises DecryptionError."""
    def open_stream(
        self, packet: _Bytes, pn_offset: int, largest_pn: int
    ) -> (
        tuple[
            bytes,
            bytes,
            int,
            tuple[int, int, memoryview, bool, bool] | None,
            tuple[list[tuple[int, int]], int, tuple[int, int, int] | None] | None,
        ]
        | None
    ):
        """As ``open``, with the fields of a lone STREAM frame or of an ACK + STREAM
        payload (``pure.ack_stream_fields``)."""
    def seal_reply(
        self,
        dcid: _Bytes,
        first: int,
        pn: int,
        pn_len: int,
        ack: _Bytes,
        stream_id: int,
        offset: int,
        data: _Bytes,
        fin: bool,
    ) -> bytes:
        """One 1-RTT packet of ``ack`` + one STREAM frame (``pure_reply.seal_reply``)."""
    def mask(self, sample: _Bytes) -> bytes:
        """The 5-byte header protection mask of a 16-byte sample."""
    def seal_stream_burst(
        self,
        dcid: _Bytes,
        first: int,
        pn: int,
        largest_acked: int | None,
        skip_pn: int,
        datagram_size: int,
        stream_id: int,
        offset: int,
        data: _Bytes,
        final_size: int | None,
        in_flight: int,
        cwnd: float,
        pacer: tuple[float, float, float, float] | None,
        now: float,
        max_count: int,
    ) -> tuple[list[bytes], list[int], float]:
        """As ``PacketProtector.seal_stream_burst`` (``pure.seal_stream_burst``'s twin)."""
    @staticmethod
    def available() -> bool: ...
    @staticmethod
    def load_error() -> str | None: ...
    @staticmethod
    def backend() -> str | None: ...

def render_stream_packets(
    records: list[tuple[Any, ...]] | BulkRecords, start: float, lo: int, hi: int
) -> bytes:
    """qlog bulk packet records ``records[lo:hi]`` as JSON-SEQ (as ``pure``'s)."""

def render_chunk(
    records: list[tuple[Any, ...]] | BulkRecords, start: float, parts: list[Any]
) -> bytes:
    """A flush's text: ``parts``' bytes, and for each int the records up to it (``pure``'s)."""

def render_ints(ints: list[int]) -> str:
    """int64 ints as JSON's ``1,2,3`` (as ``pure``'s)."""

def recv_datagram(fd: int, cmsg_space: int) -> tuple[bytes, tuple[str, int], int, int] | None:
    """One datagram off socket ``fd``: (data, (host, port), ECN codepoint, GRO segment size),
    None when it would block (``quicish.udp.receive_one``'s)."""

def packet_record(
    start: float,
    now: float,
    name: str,
    packet_type: str,
    pn: int,
    size: int,
    payload: Any,
    ack_exponent: int,
    streams: set[int],
) -> bytes | None:
    """A qlog packet event's record from its payload, or None (as ``pure``'s)."""

def acked_record(start: float, now: float, name: str, space: str, acked: list[Any]) -> bytes | None:
    """A qlog packets_acked event's record from the packets' ``pn``, or None (``pure``'s)."""

def metrics_record(
    start: float, now: float, name: str, metrics: Mapping[str, Any], last: dict[str, Any]
) -> bytes | None:
    """A qlog recovery_metrics_updated event's record of what changed (``pure``'s)."""

class BulkRecords:
    """The qlog writer's bulk records as C structs: a list's append, len, [i], clear."""

    def append(self, record: tuple[Any, ...]) -> None: ...
    def clear(self) -> None: ...
    def detach(self) -> BulkRecords:
        """The records moved to a new object, none left here."""
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> tuple[Any, ...]: ...
    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...

class QlogSpool:
    """A qlog file's flushes, rendered and written by a C thread (``pure.QlogSpool``)."""

    def __init__(self, fd: int) -> None: ...
    @property
    def error(self) -> int: ...
    @property
    def events_written(self) -> int: ...
    @property
    def pending(self) -> int: ...
    def submit(
        self, records: BulkRecords | None, start: float, parts: list[Any], events: int
    ) -> None: ...
    def wait(self) -> None: ...
    def close(self) -> None: ...
    @classmethod
    def drain(cls) -> None: ...
    @classmethod
    def start(cls) -> None: ...

class QlogTap:
    """The qlog trace's per-packet calls in the bulk case (``pure.QlogTap``)."""

    def __init__(
        self,
        trace: Any,
        bulk: list[tuple[Any, ...]] | BulkRecords,
        streams: set[int],
        keys: Any,
        flush: Any,
        limit: int,
        frame_type: type,
        sent_slow: Any,
        received_slow: Any,
        stream_slow: Any,
        burst_slow: Any,
    ) -> None: ...
    @property
    def now(self) -> Any: ...
    @property
    def phase(self) -> int: ...
    @phase.setter
    def phase(self, value: int) -> None: ...
    def sent(self, *args: Any) -> None: ...
    def received(self, *args: Any) -> None: ...
    def stream_received(self, *args: Any) -> None: ...
    def burst(self, *args: Any) -> None: ...
