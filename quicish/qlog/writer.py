"""Writing one connection's qlog as a JSON-SEQ file (RFC 7464; qlog main schema section 6).

:class:`QlogWriter` keeps events in lists (one tuple append per event) and serializes them
in chunks (``flush_every`` events; packets of one STREAM frame, the bulk of a transfer, in
:attr:`QlogWriter.bulk`, every ``BULK_FLUSH_EVERY``, rendered by the C core's
``render_chunk`` without the GIL) and at :meth:`QlogWriter.close`, so the per-event cost
on the connection's path is an append. In background mode (:func:`open_qlog`'s files) a
flush only renders the other events' text and hands it with the bulk records to the
file's ``QlogSpool``, whose C thread renders those and writes without the GIL. Times are
the engine's monotonic seconds; they are written in milliseconds relative to the writer's
start (``relative_to_epoch`` with a ``monotonic`` reference clock, whose epoch is
``unknown`` by the draft's rules).

Files are named ``<ODCID hex>_<client|server>.sqlog``: the main schema's recommendation for
QUIC (original destination connection ID, then the vantage point type) with the JSON-SEQ
suffix. :class:`QlogDirectory` makes one writer per connection in a directory (the
``QLOGDIR`` convention).
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import IO, Any

from ..native import BulkRecords, QlogSpool, metrics_record, render_chunk, render_stream_packets
from ..native import pure as _pure
from .render import dumps as _dumps
from .render import render_metrics_delta, render_packet, render_packets_acked
from .schema import (
    FILE_SCHEMA_SEQ,
    FILE_SUFFIX,
    PACKETS_ACKED,
    QUIC_EVENT_SCHEMA,
    SERIALIZATION_FORMAT_SEQ,
    event_name,
)

# At exit, the flushes still queued are written (a program may end without closing its
# connections; their files then hold what was flushed, as with a buffered file).
atexit.register(QlogSpool.drain)

QLOGDIR_ENV = "QLOGDIR"
BULK_FLUSH_EVERY = 2048  # bulk records per flush (at most)
_PACKET = object()  # marks an event logged by QlogWriter.packet
_METRICS = object()  # ... by QlogWriter.metrics (rendered at once, in Python: odd values)
_RECORD = object()  # ... by QlogWriter.record (its JSON-SEQ record, ready)
# The record of QlogWriter.stream_packet (rendered by render_stream_packets, in C).
_STREAM_PACKET = _pure.STREAM_PACKET_TEMPLATE


def qlog_file_name(odcid: bytes, is_client: bool) -> str:
    """``<odcid hex>_client.sqlog`` / ``<odcid hex>_server.sqlog``."""
    return f"{odcid.hex()}_{'client' if is_client else 'server'}{FILE_SUFFIX}"


def _rfc3339(t: float) -> str:
    stamp = datetime.fromtimestamp(t, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def file_header(
    odcid: bytes,
    is_client: bool,
    *,
    title: str | None = None,
    vantage_name: str = "quicish",
    wall_clock: float | None = None,
) -> dict[str, Any]:
    """The first record of a qlog JSON-SEQ file (``QlogFileSeq``)."""
    reference: dict[str, Any] = {"clock_type": "monotonic", "epoch": "unknown"}
    reference["wall_clock_time"] = _rfc3339(time.time() if wall_clock is None else wall_clock)
    role = "client" if is_client else "server"
    header: dict[str, Any] = {
        "file_schema": FILE_SCHEMA_SEQ,
        "serialization_format": SERIALIZATION_FORMAT_SEQ,
    }
    if title is not None:
        header["title"] = title
    header["trace"] = {
        "vantage_point": {"name": vantage_name, "type": role},
        "common_fields": {
            "group_id": odcid.hex(),
            "odcid": odcid.hex(),
            "time_format": "relative_to_epoch",
            "reference_time": reference,
        },
        "event_schemas": [QUIC_EVENT_SCHEMA],
    }
    return header


def encode_record(obj: Mapping[str, Any]) -> bytes:
    """One JSON-SEQ record: RS, compact JSON, LF."""
    return b"\x1e" + _dumps(obj).encode() + b"\n"


class QlogWriter:
    """Buffered qlog output for one connection.

    ``event(name, data, now)`` records an event (``name`` with or without the ``quic:``
    namespace; ``now`` in the engine's monotonic seconds); ``close()`` writes what is left
    and closes the file. What is passed in is kept until the next flush and must not be
    changed meanwhile. Writing never raises into the caller: data that cannot be serialized
    is logged as ``quicish_error``, and an ``OSError`` stops the writer (``error``).
    :meth:`tracer` has the shape of a ``tracer(name, data)`` hook (it stamps events with
    ``clock()``); :meth:`packet` and :meth:`metrics` are the cheap forms for per-packet
    events.
    """

    def __init__(
        self,
        stream: IO[bytes],
        odcid: bytes,
        is_client: bool,
        *,
        start: float | None = None,
        title: str | None = None,
        flush_every: int = 16384,
        clock: Callable[[], float] = time.monotonic,
        close_stream: bool = True,
        background: bool = False,
    ) -> None:
        self._stream: IO[bytes] | None = stream
        # flushes rendered and written by a C thread (QlogSpool; open_qlog's files), not here
        self.background = background
        self._close_stream = close_stream
        self.clock = clock
        self.start = clock() if start is None else start
        self.odcid = odcid
        self.is_client = is_client
        self.flush_every = flush_every
        # (8192 bulk records a flush ran 0.6% more instructions under callgrind: the other
        # events, held 4x longer, cost the cyclic collector more than the fewer flushes save)
        self.bulk_limit = min(flush_every, BULK_FLUSH_EVERY)
        # Events other than stream_packet's: (len(bulk) when logged, now, name, data, compact).
        self._events: list[tuple[int, float, str, Any, Any]] = []
        # stream_packet's records, in the order logged; rendered in C at flush. The engine's
        # trace appends to it itself (cleared in place, never replaced). With the C core a
        # BulkRecords (C structs: the C tap appends no Python object), else a list.
        self.bulk: list[tuple[Any, ...]] = BulkRecords()
        self._names: dict[str, str] = {}  # event name -> its JSON string
        self._last_metrics: dict[str, Any] = {}  # what recovery_metrics_updated last said
        self._written = 0  # events written by this thread (see events_written)
        self._spool: QlogSpool | None = None  # background mode: the file's, once opened
        self.closed = False
        self.path: str | None = None  # the file's path, when open_qlog made it
        self.error: OSError | None = None  # why writing stopped early, if it did
        stream.write(encode_record(file_header(odcid, is_client, title=title)))

    def event(self, name: str, data: Mapping[str, Any], now: float) -> None:
        """Record one event (serialized later, off the caller's path)."""
        events = self._events
        events.append((len(self.bulk), now, name, data, None))
        if len(events) >= self.flush_every:
            self.flush()

    def packet(
        self,
        name: str,
        now: float,
        packet_type: str,
        packet_number: int,
        size: int | None = None,
        frames: Sequence[Any] = (),
        header_extra: Mapping[str, Any] | None = None,
        trigger: str | None = None,
    ) -> None:
        """A packet event (``quic:packet_sent``, ``quic:packet_received``,
        ``quic:packet_lost``) from compact values: rendered by template at flush time, no
        dicts built on the caller's path. ``frames``: compact tuples, qlog dicts or wire
        frames (see :mod:`quicish.qlog.render`); ``size`` the packet's bytes."""
        events = self._events
        compact = (packet_type, packet_number, size, frames, header_extra, trigger)
        events.append((len(self.bulk), now, name, _PACKET, compact))
        if len(events) >= self.flush_every:
            self.flush()

    def stream_packet(
        self,
        name: str,
        now: float,
        packet_type: str,
        packet_number: int,
        size: int,
        stream_id: int,
        offset: int,
        length: int,
        fin: bool,
    ) -> None:
        """A packet that is one STREAM frame (the bulk case): one tuple in :attr:`bulk`,
        rendered by ``render_stream_packets`` (C) with the others at flush time: the
        cheapest form. ``name`` is the full name (``quic:packet_sent``)."""
        bulk = self.bulk
        bulk.append((now, name, packet_type, packet_number, stream_id, offset, fin, length, size))
        if len(bulk) >= self.bulk_limit:
            self.flush()

    def metrics(self, now: float, metrics: Mapping[str, float]) -> None:
        """``quic:recovery_metrics_updated`` from the engine's metrics dict (RTTs in
        seconds); only the values that changed are written, and nothing when none did.
        Rendered at once (what changed is known only in order): by the C core's
        ``metrics_record`` (or its twin), in Python for values it does not take."""
        name = "quic:recovery_metrics_updated"
        try:
            text = metrics_record(self.start, now, name, metrics, self._last_metrics)
        except TypeError:
            rendered = self._render((len(self.bulk), now, name, _METRICS, metrics))
            text = rendered.encode() if rendered else None
        if text is not None:
            self.record(now, name, text)

    def record(self, now: float, name: str, record: bytes) -> None:
        """An event already rendered as its whole JSON-SEQ record (the C core's
        ``packet_record``, with this writer's ``start``): written as it is."""
        events = self._events
        events.append((len(self.bulk), now, name, _RECORD, record))
        if len(events) >= self.flush_every:
            self.flush()

    def tracer(self, name: str, data: Mapping[str, Any]) -> None:
        """``event`` stamped with ``clock()``: the shape of the engine's tracer hook."""
        self.event(name, data, self.clock())

    def flush(self) -> None:
        """Serialize the buffered events and hand them to the file: the other events'
        text in their places among the runs of :attr:`bulk` records, all of it written by
        one ``render_chunk`` call (C; without the GIL), here or, in background mode, on
        the writer thread (:mod:`quicish.qlog.background`)."""
        events, bulk = self._events, self.bulk
        if not events and not bulk:
            return
        self._events = []
        if self.closed:  # events after close() are dropped
            bulk.clear()
            return
        parts: list[bytes | int] = []  # other events' text; ints: where a run of bulk ends
        done = others = 0
        render = self._render
        for event in events:
            at = event[0]
            if at > done:
                parts.append(at)
                done = at
            if event[3] is _RECORD:
                parts.append(event[4])
                others += 1
                continue
            text = render(event)
            if text:
                parts.append(text.encode())
                others += 1
        n = len(bulk)
        if n > done:
            parts.append(n)
        spool = self._spool if self.background else None
        if spool is None and self.background:
            spool = self._open_spool()
        if spool is None:
            self._write(bulk, parts, others + n)
            bulk.clear()
            return
        if spool.error:  # (a write failed on the worker: stop, as _write does)
            self._stop(OSError(spool.error, os.strerror(spool.error)))
            bulk.clear()
            return
        try:
            spool.submit(bulk, self.start, parts, others + n)
        except TypeError:  # records C does not take: rendered here (Python takes all)
            data = self._render_parts(bulk, parts)
            bulk.clear()
            spool.submit(None, self.start, [data], others + n)

    def _open_spool(self) -> QlogSpool | None:
        """The file's spool (its buffer flushed first: the spool writes to a duplicate of
        its descriptor), or None, and background mode off, when it has none."""
        stream = self._stream
        try:
            stream.flush()  # type: ignore[union-attr]
            spool = QlogSpool(stream.fileno())  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):  # (no descriptor: BytesIO and the like)
            self.background = False
            return None
        self._spool = spool
        return spool

    def _stop(self, exc: OSError) -> None:
        self.error = exc
        self.closed = True

    @property
    def events_written(self) -> int:
        """Events written to the file (by the spool's worker too, so far)."""
        spool = self._spool
        return self._written + (spool.events_written if spool is not None else 0)

    def _write(self, bulk: list[tuple[Any, ...]], parts: list[bytes | int], written: int) -> None:
        """Render ``parts`` (``render_chunk``) and write them."""
        stream = self._stream
        if stream is None:
            return
        try:
            data = render_chunk(bulk, self.start, parts)
        except (TypeError, ValueError, OverflowError):  # (C takes int64 only: Python takes all)
            data = self._render_parts(bulk, parts)
        try:
            stream.write(data)
        except OSError as exc:  # disk full, closed file: stop logging, keep the connection
            self._stop(exc)
            return
        self._written += written

    def _render_parts(self, bulk: list[tuple[Any, ...]], parts: list[bytes | int]) -> bytes:
        out: list[bytes] = []
        done = 0
        for part in parts:
            if type(part) is int:
                out.append(self._render_bulk(bulk, done, part))
                done = part
            else:
                out.append(part)  # type: ignore[arg-type]
        return b"".join(out)

    def _render(self, event: tuple[int, float, str, Any, Any]) -> str:
        """One record of an event logged by :meth:`event`, :meth:`packet` or
        :meth:`metrics` ("" for a metrics event that changed nothing)."""
        _, now, name, data, compact = event
        try:
            ms = (now - self.start) * 1000.0
        except TypeError:
            ms = 0.0
        if ms < 0.0:
            ms = 0.0
        name_json = self._names.get(name)
        if name_json is None:
            name_json = self._names[name] = _dumps(event_name(name))
        try:
            if data is _PACKET:
                text = render_packet(*compact)
            elif data is _METRICS:
                delta = render_metrics_delta(compact, self._last_metrics)
                if delta is None:
                    return ""
                text = delta
            elif name == PACKETS_ACKED:  # (hundreds of numbers per ACK in bulk: not by json)
                text = render_packets_acked(data) or _dumps(data)
            else:
                text = _dumps(data)
        except (TypeError, ValueError) as exc:  # a logging bug must not end a connection
            text = _dumps({"quicish_error": f"unserializable event data: {exc}"})
        return f'\x1e{{"time":{ms:.3f},"name":{name_json},"data":{text}}}\n'

    def _render_bulk(self, bulk: list[tuple[Any, ...]], lo: int, hi: int) -> bytes:
        """The records of ``bulk[lo:hi]``; one that the template cannot take (a logging bug)
        is written as a ``quicish_error`` event in its place."""
        try:
            return render_stream_packets(bulk, self.start, lo, hi)
        except (TypeError, ValueError, OverflowError):  # (C takes int64 only: Python takes all)
            return b"".join(self._stream_record(bulk[i]) for i in range(lo, hi))

    def _stream_record(self, args: tuple[Any, ...]) -> bytes:
        try:
            return _pure.render_stream_packets([args], self.start, 0, 1)
        except (TypeError, ValueError) as exc:
            now, name = (*args, 0.0, "?")[:2]
            now = now if isinstance(now, float) else self.start
            error = {"quicish_error": f"unserializable event data: {exc}"}
            return self._render((0, now, str(name), error, None)).encode()

    def close(self) -> None:
        """Write the remaining events and close the file (idempotent); in background
        mode after the writer thread has written all of them."""
        self.flush()
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()  # (waits for its jobs)
            self._written += spool.events_written
            if spool.error and self.error is None:
                self.error = OSError(spool.error, os.strerror(spool.error))
        self.closed = True
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            if self._close_stream:
                stream.close()
            else:
                stream.flush()
        except OSError as exc:
            self.error = self.error or exc

    def __enter__(self) -> QlogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_qlog(
    directory: str | os.PathLike[str],
    odcid: bytes,
    is_client: bool,
    **kwargs: Any,
) -> QlogWriter:
    """A :class:`QlogWriter` on ``<directory>/<odcid hex>_<role>.sqlog`` (created; the
    directory too), in background mode unless ``background=False`` is passed."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(os.fspath(directory), qlog_file_name(odcid, is_client))
    stream = open(path, "wb", buffering=1 << 16)  # noqa: SIM115 (closed by the writer)
    kwargs.setdefault("background", True)
    writer = QlogWriter(stream, odcid, is_client, **kwargs)
    writer.path = path
    return writer


class QlogDirectory:
    """Makes one :class:`QlogWriter` per connection in ``path`` (``Config(qlog_dir=...)``,
    ``QLOGDIR``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def writer(self, odcid: bytes, is_client: bool, **kwargs: Any) -> QlogWriter:
        return open_qlog(self.path, odcid, is_client, **kwargs)

    def file_for(self, odcid: bytes, is_client: bool) -> str:
        return os.path.join(self.path, qlog_file_name(odcid, is_client))

    @classmethod
    def resolve(
        cls, explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
    ) -> QlogDirectory | None:
        """The directory to log to: ``explicit`` (``Config.qlog_dir``, ``--qlog-dir``) when
        given, else ``QLOGDIR``, else None (qlog off)."""
        return cls(explicit) if explicit is not None else cls.from_env(environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QlogDirectory | None:
        """The directory ``QLOGDIR`` names, or None when it is unset or empty."""
        value = (os.environ if environ is None else environ).get(QLOGDIR_ENV, "")
        return cls(value) if value else None

    def __repr__(self) -> str:
        return f"QlogDirectory({self.path!r})"
