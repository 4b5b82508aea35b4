"""All streams of one connection (RFC 9000 sections 2-4, 19.11, 19.14).

``StreamManager`` creates and finds streams, enforces stream limits both ways (MAX_STREAMS,
STREAMS_BLOCKED, STREAM_LIMIT_ERROR, STREAM_STATE_ERROR), plumbs stream-level flow control
into connection-level flow control (``send_credit``: the peer's MAX_DATA; ``recv_window``:
ours), schedules sending fairly, and forgets streams once both halves are done.

Two levels of API:

* building blocks: ``open_stream``, ``get_or_create_for_peer``, ``sendable()`` (the
  round-robin scheduler), ``next_frame(stream, max_len)``, ``control_streams()``,
  ``max_streams_update``, ``streams_blocked``; each ``Stream`` has ``.send``/``.recv``;
* connection helpers that speak frames: ``on_stream_frame``, ``on_reset_stream``, ... for
  received frames; ``write_control_frames`` / ``write_stream_frames`` append frames to a
  packet ``Buffer`` and a record per frame (``StreamRecord``, ``ResetStreamRecord``, ...) to
  the packet's record list; ``stream_records`` answers them (acknowledged, lost).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from functools import partial
from typing import Any, Protocol, TypeVar

from ..errors import ErrorCode, ProtocolError, StreamError
from ..wire import frames as F
from ..wire.buffer import Buffer
from .flow import ReceiveWindow, SendCredit
from .records import (
    DataBlockedRecord,
    MaxDataRecord,
    MaxStreamDataRecord,
    MaxStreamsRecord,
    Record,
    ResetStreamRecord,
    StopSendingRecord,
    StreamDataBlockedRecord,
    StreamRecord,
    StreamsBlockedRecord,
    new_record,
)
from .recv_stream import FragmentBudget, RecvStream
from .send_stream import SendStream
from .stream_ids import make_stream_id

__all__ = ["PeerLimits", "Stream", "StreamLimitReached", "StreamLimits", "StreamManager"]

MAX_STREAMS_LIMIT = 1 << 60
_CTRL_FRAME_MAX = 25  # type + three 8-byte varints
_NO_QUEUE: deque[Stream] = deque()  # a priority with no FIFO: never appended to


class StreamLimitReached(StreamError):
    """``open_stream`` would exceed the peer's MAX_STREAMS; wait for ``on_max_streams``."""

    def __init__(self, bidi: bool, limit: int) -> None:
        kind = "bidirectional" if bidi else "unidirectional"
        super().__init__(f"peer allows {limit} {kind} streams")
        self.bidi = bidi
        self.limit = limit


class PeerLimits(Protocol):
    """The flow-control transport parameters (``TransportParameters`` has these fields)."""

    initial_max_data: int
    initial_max_stream_data_bidi_local: int
    initial_max_stream_data_bidi_remote: int
    initial_max_stream_data_uni: int
    initial_max_streams_bidi: int
    initial_max_streams_uni: int


class StreamLimits:
    """A plain ``PeerLimits`` (tests, or limits remembered for 0-RTT)."""

    __slots__ = (
        "initial_max_data",
        "initial_max_stream_data_bidi_local",
        "initial_max_stream_data_bidi_remote",
        "initial_max_stream_data_uni",
        "initial_max_streams_bidi",
        "initial_max_streams_uni",
    )

    def __init__(
        self,
        max_data: int = 0,
        max_stream_data_bidi_local: int = 0,
        max_stream_data_bidi_remote: int = 0,
        max_stream_data_uni: int = 0,
        max_streams_bidi: int = 0,
        max_streams_uni: int = 0,
    ) -> None:
        self.initial_max_data = max_data
        self.initial_max_stream_data_bidi_local = max_stream_data_bidi_local
        self.initial_max_stream_data_bidi_remote = max_stream_data_bidi_remote
        self.initial_max_stream_data_uni = max_stream_data_uni
        self.initial_max_streams_bidi = max_streams_bidi
        self.initial_max_streams_uni = max_streams_uni


class Stream:
    """One stream: ``send`` is None on a peer's unidirectional stream, ``recv`` is None on
    ours. ``priority``: lower is served first (default 0)."""

    __slots__ = ("_closed", "_in_control", "_queued", "priority", "recv", "send", "stream_id")

    def __init__(
        self, stream_id: int, send: SendStream | None, recv: RecvStream | None, priority: int = 0
    ) -> None:
        self.stream_id = stream_id
        self.send = send
        self.recv = recv
        self.priority = priority
        self._queued = False  # in a scheduler queue
        self._in_control = False  # in the control registry
        self._closed = False  # forgotten by the manager

    @property
    def is_done(self) -> bool:
        """Both halves done (a missing half counts as done)."""
        send, recv = self.send, self.recv
        return (send is None or send.is_done) and (recv is None or recv.is_done)

    def has_control(self) -> bool:
        """True when RESET_STREAM, STREAM_DATA_BLOCKED, STOP_SENDING or MAX_STREAM_DATA is due."""
        send, recv = self.send, self.recv
        if send is not None and (send.reset_pending is not None or send.blocked_at is not None):
            return True
        return recv is not None and (recv.stop_sending_pending is not None or recv.update_due)


class StreamManager:
    """Streams, stream limits and flow control of one connection.

    ``local_*``: what we advertise in our transport parameters (the peer's limits);
    ``max_data_limit`` / ``max_stream_data_limit``: ceilings for receive-window growth;
    ``max_stream_fragments`` / ``max_connection_fragments``: out-of-order fragments buffered per
    stream / across all streams before a STREAM frame raises PROTOCOL_VIOLATION (None: no
    limit); ``send_buffer_size``: per-stream ``SendStream.capacity``; ``peer``: the peer's
    transport parameters when already known (else call ``on_peer_parameters`` later; until then
    the peer allows nothing). ``now`` / ``rtt`` attributes: the latest time and smoothed RTT,
    used by ``write_control_frames`` when not passed explicitly.
    """

    __slots__ = (
        "_blocked_sent", "_blocked_want", "_control", "_credit_waiters", "_fragment_budget",
        "_local_max_streams", "_local_max_streams_initial", "_max_fragments", "_max_streams_resend",
        "_next_local", "_next_peer", "_peer", "_peer_closed", "_peer_max_streams", "_priorities",
        "_queues", "_send_buffer", "_stream_window", "_stream_window_max", "_streams", "bytes_lost",
        "bytes_retransmitted", "control", "is_client", "now", "recv_window", "rtt", "send_credit",
    )  # fmt: skip

    def __init__(
        self,
        is_client: bool,
        *,
        local_max_data: int = 1 << 20,
        max_data_limit: int | None = None,
        local_max_stream_data: int = 256 << 10,
        max_stream_data_limit: int | None = None,
        local_max_streams_bidi: int = 128,
        local_max_streams_uni: int = 128,
        send_buffer_size: int = 1 << 20,
        peer: PeerLimits | None = None,
        max_stream_fragments: int | None = None,
        max_connection_fragments: int | None = None,
    ) -> None:
        self.is_client = is_client
        self.send_credit = SendCredit(0)
        #: STREAM bytes sent again after a loss, and in packets declared lost (both in
        #: ``Connection.stats()``).
        self.bytes_retransmitted = self.bytes_lost = 0
        self.recv_window = ReceiveWindow(local_max_data, max_data_limit)
        #: Extra frames for ``write_control_frames`` (e.g. PATH_RESPONSE), sent once.
        self.control: list[Any] = []  # (a few frames at a time: a list)
        self.now = 0.0
        self.rtt = 0.0
        self._stream_window = local_max_stream_data
        self._stream_window_max = max_stream_data_limit
        self._max_fragments = max_stream_fragments
        self._fragment_budget = (
            None if max_connection_fragments is None else FragmentBudget(max_connection_fragments)
        )
        self._send_buffer = send_buffer_size
        self._streams: dict[int, Stream] = {}
        # Per stream type, indexed [uni, bidi] (int(bidi)).
        self._next_local = [0, 0]
        self._next_peer = [0, 0]
        self._peer_max_streams = [0, 0]  # the peer's limit on the streams we open
        limits = (local_max_streams_uni, local_max_streams_bidi)
        if len(_LIMITS) < 32:  # (one tuple per value: config values, a handful)
            limits = _LIMITS.setdefault(limits, limits)
        self._local_max_streams_initial = limits
        self._local_max_streams = list(self._local_max_streams_initial)
        # (Pairs rarely changed: shared tuples, a new one at each change.)
        self._peer_closed = _ZEROS  # peer streams forgotten (credit for MAX_STREAMS)
        self._max_streams_resend = self._blocked_want = _NOES
        self._blocked_sent = _NONE_SENT
        self._peer: PeerLimits | None = None
        self._queues: dict[int, deque[Stream]] = {}  # a FIFO per priority, lowest value first
        self._priorities: tuple[int, ...] = ()
        # Streams parked for credit, and with control frames due: the shared empty table
        # until the first (only read, cleared or popped from while shared).
        self._credit_waiters: dict[int, Stream] = _NO_STREAMS
        self._control: dict[int, Stream] = _NO_STREAMS
        if peer is not None:
            self.on_peer_parameters(peer)

    # ---- lookup ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def __iter__(self) -> Iterator[Stream]:
        return iter(list(self._streams.values()))

    def get(self, stream_id: int) -> Stream | None:
        """The live stream with this id, or None."""
        return self._streams.get(stream_id)

    def get_send(self, stream_id: int) -> SendStream:
        """The sending half; StreamError if the stream is unknown, closed or receive-only."""
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamError(f"stream {stream_id} is not open")
        if stream.send is None:
            raise StreamError(f"stream {stream_id} is receive-only")
        return stream.send

    def get_recv(self, stream_id: int) -> RecvStream:
        """The receiving half; StreamError if the stream is unknown, closed or send-only."""
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamError(f"stream {stream_id} is not open")
        if stream.recv is None:
            raise StreamError(f"stream {stream_id} is send-only")
        return stream.recv

    def _is_local(self, sid: int) -> bool:
        return (not sid & 1) == self.is_client

    def _create(self, sid: int) -> Stream:
        bidi = not sid & 2
        local = self._is_local(sid)
        peer = self._peer
        send: SendStream | None = None
        recv: RecvStream | None = None
        if bidi or local:
            send = SendStream(self._send_buffer, sid, self._peer_stream_limit(sid, peer))
        if bidi or not local:
            recv = RecvStream(
                self._stream_window,
                self._stream_window_max,
                sid,
                self._max_fragments,
                self._fragment_budget,
            )
        stream = Stream(sid, send, recv)
        wake = partial(self._on_wake, stream)
        if send is not None:
            send.wake = wake
        if recv is not None:
            recv.wake = wake
        self._streams[sid] = stream
        return stream

    def _peer_stream_limit(self, sid: int, peer: PeerLimits | None) -> int:
        """The peer's initial MAX_STREAM_DATA for our sending half of ``sid``."""
        if peer is None:
            return 0
        if sid & 2:
            return peer.initial_max_stream_data_uni
        if self._is_local(sid):
            return peer.initial_max_stream_data_bidi_remote
        return peer.initial_max_stream_data_bidi_local

    # ---- opening streams -------------------------------------------------------------------
    def open_stream(self, bidi: bool = True, priority: int = 0) -> int:
        """Open our next stream of that type; ``StreamLimitReached`` at the peer's limit
        (a STREAMS_BLOCKED frame becomes due; wait for ``on_max_streams``)."""
        b = 1 if bidi else 0
        index = self._next_local[b]
        if index >= self._peer_max_streams[b]:
            self._blocked_want = _with(self._blocked_want, b, True)
            raise StreamLimitReached(bidi, self._peer_max_streams[b])
        self._next_local[b] = index + 1
        stream = self._create(make_stream_id(index, self.is_client, bidi))
        stream.priority = priority
        return stream.stream_id

    def streams_available(self, bidi: bool = True) -> int:
        """How many more streams of that type ``open_stream`` may open now."""
        b = 1 if bidi else 0
        return max(0, self._peer_max_streams[b] - self._next_local[b])

    def get_or_create_for_peer(self, stream_id: int, receiving: bool = True) -> Stream | None:
        """The stream a received frame refers to, opening peer streams implicitly.

        ``receiving``: the frame concerns our receiving half (STREAM, RESET_STREAM,
        STREAM_DATA_BLOCKED), else our sending half (MAX_STREAM_DATA, STOP_SENDING).
        Returns None for a stream that existed and was forgotten (ignore the frame).
        Raises ``ProtocolError`` STREAM_STATE_ERROR for the wrong direction or a local
        stream never opened, STREAM_LIMIT_ERROR beyond the limit we advertised.
        """
        stream = self._streams.get(stream_id)
        uni = stream_id & 2
        local = self._is_local(stream_id)
        if uni and local == receiving:
            what = "receive on our" if receiving else "send on the peer's"
            raise ProtocolError(
                ErrorCode.STREAM_STATE_ERROR,
                f"cannot {what} unidirectional stream {stream_id}",
            )
        if stream is not None:
            return stream
        b = 0 if uni else 1
        index = stream_id >> 2
        if local:
            if index >= self._next_local[b]:
                raise ProtocolError(
                    ErrorCode.STREAM_STATE_ERROR, f"stream {stream_id} was never opened"
                )
            return None
        if index < self._next_peer[b]:
            return None
        if index >= self._local_max_streams[b]:
            raise ProtocolError(
                ErrorCode.STREAM_LIMIT_ERROR,
                f"stream {stream_id} beyond our limit of {self._local_max_streams[b]}",
            )
        first = self._next_peer[b]
        self._next_peer[b] = index + 1
        low_bits = stream_id & 3
        for i in range(first, index + 1):
            stream = self._create((i << 2) | low_bits)
        assert stream is not None
        return stream

    # ---- stream limits ---------------------------------------------------------------------
    def on_max_streams(self, bidi: bool, limit: int) -> bool:
        """The peer's MAX_STREAMS; True when it raised the limit (streams may open again)."""
        if limit > MAX_STREAMS_LIMIT:
            raise ProtocolError(ErrorCode.FRAME_ENCODING_ERROR, f"MAX_STREAMS {limit} exceeds 2^60")
        b = 1 if bidi else 0
        if limit <= self._peer_max_streams[b]:
            return False
        self._peer_max_streams[b] = limit
        self._blocked_want = _with(self._blocked_want, b, False)
        return True

    def max_streams_update(self, bidi: bool) -> int | None:
        """A new MAX_STREAMS value to send now (peer streams were forgotten), or None."""
        b = 1 if bidi else 0
        target = min(self._local_max_streams_initial[b] + self._peer_closed[b], MAX_STREAMS_LIMIT)
        if target > self._local_max_streams[b]:
            self._local_max_streams[b] = target
            self._max_streams_resend = _with(self._max_streams_resend, b, False)
            return target
        if self._max_streams_resend[b]:
            self._max_streams_resend = _with(self._max_streams_resend, b, False)
            return self._local_max_streams[b]
        return None

    def on_max_streams_lost(self, bidi: bool, limit: int | None = None) -> None:
        """A MAX_STREAMS frame was lost: re-send the current value if it is still current."""
        b = 1 if bidi else 0
        if limit is None or limit == self._local_max_streams[b]:
            self._max_streams_resend = _with(self._max_streams_resend, b, True)

    def streams_blocked(self, bidi: bool) -> int | None:
        """The limit for a STREAMS_BLOCKED frame to send now (once per limit), or None."""
        b = 1 if bidi else 0
        limit = self._peer_max_streams[b]
        if (
            self._blocked_want[b]
            and self._next_local[b] >= limit
            and self._blocked_sent[b] != limit
        ):
            self._blocked_sent = _with(self._blocked_sent, b, limit)
            return limit
        return None

    def on_streams_blocked_lost(self, bidi: bool, limit: int | None = None) -> None:
        b = 1 if bidi else 0
        if limit is None or limit == self._blocked_sent[b]:
            self._blocked_sent = _with(self._blocked_sent, b, -1)

    @property
    def local_max_streams(self) -> tuple[int, int]:
        """Our advertised limits ``(bidi, uni)``."""
        return self._local_max_streams[1], self._local_max_streams[0]

    @property
    def peer_max_streams(self) -> tuple[int, int]:
        """The peer's limits on our streams ``(bidi, uni)``."""
        return self._peer_max_streams[1], self._peer_max_streams[0]

    # ---- peer transport parameters ---------------------------------------------------------
    def on_peer_parameters(self, params: PeerLimits) -> None:
        """Apply the peer's flow-control transport parameters (limits only rise)."""
        self._peer = params
        self.on_max_data(params.initial_max_data)
        self.on_max_streams(True, params.initial_max_streams_bidi)
        self.on_max_streams(False, params.initial_max_streams_uni)
        for stream in list(self._streams.values()):
            if stream.send is not None:
                stream.send.on_max_stream_data(self._peer_stream_limit(stream.stream_id, params))

    def on_early_data_rejected(self) -> list[int]:
        """0-RTT was rejected: everything sent on streams is sent again from the start,
        under the limits of the latest ``on_peer_parameters`` (RFC 9000 7.4.1).

        Local streams the new limits no longer allow are abandoned (forgotten without any
        frame); returns their ids so the application can be told."""
        peer = self._peer
        self.send_credit.reset(peer.initial_max_data if peer is not None else 0)
        if peer is not None:
            self._peer_max_streams = [peer.initial_max_streams_uni, peer.initial_max_streams_bidi]
        self._credit_waiters.clear()
        abandoned: list[int] = []
        for stream in list(self._streams.values()):
            sid = stream.stream_id
            if self._is_local(sid) and sid >> 2 >= self._peer_max_streams[0 if sid & 2 else 1]:
                abandoned.append(sid)
                if stream._queued:
                    self._queues[stream.priority].remove(stream)
                    stream._queued = False
                self._control.pop(sid, None)
                self._forget(stream)
                continue
            send = stream.send
            if send is not None:
                send.set_max_stream_data(self._peer_stream_limit(stream.stream_id, peer))
                send.requeue_all()
        return abandoned

    # ---- scheduling ------------------------------------------------------------------------
    def _on_wake(self, stream: Stream) -> None:
        """A half changed: queue it for sending / control frames, charge released bytes,
        forget the stream when done."""
        if stream._closed:
            return
        recv = stream.recv
        if recv is not None:
            released = recv.take_released()
            if released:
                self.recv_window.on_consumed(released)
        send = stream.send
        if send is not None and not stream._queued and send.pending(True):
            self._enqueue(stream)
        if not stream._in_control and stream.has_control():
            stream._in_control = True
            if self._control is _NO_STREAMS:
                self._control = {}
            self._control[stream.stream_id] = stream
        if stream.is_done:
            self._forget(stream)

    def _enqueue(self, stream: Stream) -> None:
        queue = self._queues.get(stream.priority)
        if queue is None:
            queue = self._queues[stream.priority] = deque()
            self._priorities = tuple(sorted(self._queues))
        stream._queued = True
        queue.append(stream)

    def _forget(self, stream: Stream) -> None:
        stream._closed = True
        sid = stream.stream_id
        streams, queues = self._streams, self._queues
        del streams[sid]
        if not streams:
            streams.clear()  # (an emptied dict keeps its table: 224 bytes)
        if not queues.get(stream.priority, True):  # (an idle connection keeps no deque)
            del queues[stream.priority]
            if not queues:
                queues.clear()
            self._priorities = tuple(sorted(queues))
        self._credit_waiters.pop(sid, None)
        _unhook(stream)
        if not self._is_local(sid):
            b = 0 if sid & 2 else 1
            self._peer_closed = _with(self._peer_closed, b, self._peer_closed[b] + 1)

    def release(self) -> None:
        """The connection is over: drop the halves' wake-ups, which refer back to this
        manager; the streams stay readable."""
        for stream in self._streams.values():
            _unhook(stream)

    def set_priority(self, stream_id: int, priority: int) -> None:
        """Lower values are served first; round robin among equal values."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.priority == priority:
            return
        if stream._queued:
            self._queues[stream.priority].remove(stream)
            stream._queued = False
        stream.priority = priority
        self._on_wake(stream)

    def _prune(self, queue: deque[Stream], credit_ok: bool) -> None:
        """Drop heads of ``queue`` with nothing to send (credit waiters are parked)."""
        while queue:
            stream = queue[0]
            send = stream.send
            assert send is not None
            if not stream._closed and send.pending(credit_ok):
                return
            self._drop_head(queue, stream, credit_ok)

    def _drop_head(self, queue: deque[Stream], stream: Stream, credit_ok: bool) -> None:
        """``stream``, the head of ``queue``, has nothing to send: off it (parked if waiting
        for connection credit)."""
        queue.popleft()
        stream._queued = False
        send = stream.send
        assert send is not None
        if not stream._closed and not credit_ok and send.wants_credit:
            self.send_credit.note_blocked()
            if self._credit_waiters is _NO_STREAMS:
                self._credit_waiters = {}
            self._credit_waiters[stream.stream_id] = stream

    def sendable(self) -> Iterator[Stream]:
        """Streams with STREAM data (or FIN) to send, most urgent priority first, round robin
        within a priority: each call starts after the stream last served (once a frame was
        taken from it: ``next_frame``). Take the next stream only when the packet has room
        for a frame, stop iterating when it is full. Each stream is offered once per call."""
        credit_ok = self.send_credit.available > 0
        for priority in self._priorities:
            queue = self._queues.get(priority, _NO_QUEUE)  # (gone with its last stream)
            for _ in range(len(queue)):
                self._prune(queue, credit_ok)
                if not queue:
                    break
                stream = queue[0]
                send = stream.send
                assert send is not None
                served = send.frames_sent
                try:
                    yield stream
                except GeneratorExit:
                    if send.frames_sent != served and queue and queue[0] is stream:
                        queue.rotate(-1)
                    raise
                if queue and queue[0] is stream:
                    queue.rotate(-1)

    def first_sendable(self) -> Stream | None:
        """``next(self.sendable(), None)`` without a generator (per burst): whose turn it is."""
        credit = self.send_credit
        credit_ok = credit.limit > credit.used  # (FlowCredit.available, inlined)
        for queue in map(self._queues.__getitem__, self._priorities):  # (one, as a rule)
            if not queue:
                continue
            head = queue[0]  # (_prune's first look, inlined: the head can send, as a rule)
            send = head.send
            assert send is not None
            if not head._closed and send.pending(credit_ok):
                return head
            self._drop_head(queue, head, credit_ok)
            if queue:
                self._prune(queue, credit_ok)
                if queue:
                    return queue[0]
        return None

    def lone_stream(self) -> Stream | None:
        """The one stream queued to send, if only one is (the bulk case: stream_burst.py)."""
        lone = None  # (a loop, not a comprehension: once or twice per burst)
        for queue in self._queues.values():
            if queue:
                if lone is not None or len(queue) != 1:
                    return None
                lone = queue[0]
        return None if lone is None or lone._closed else lone

    def next_frame(
        self, stream: Stream, max_len: int
    ) -> tuple[int, memoryview | bytes, bool] | None:
        """``stream.send.next_frame`` with connection credit applied and charged."""
        send = stream.send
        assert send is not None
        credit = self.send_credit
        frame = send.next_frame(max_len, credit.limit - credit.used)
        if send.last_new_bytes:
            credit.used += send.last_new_bytes
        elif frame is None and credit.used >= credit.limit and send.wants_credit:
            credit.note_blocked()
        return frame

    def control_streams(self) -> Iterator[Stream]:
        """Streams with a RESET_STREAM, STREAM_DATA_BLOCKED, STOP_SENDING or
        MAX_STREAM_DATA due (see ``Stream.has_control``)."""
        control = self._control
        for sid, stream in list(control.items()):
            if not stream._closed and stream.has_control():
                yield stream
                if not stream._closed and stream.has_control():
                    continue
            control.pop(sid, None)
            stream._in_control = False

    def on_max_data(self, limit: int) -> bool:
        """The peer's MAX_DATA; True when credit grew (parked streams are woken)."""
        if not self.send_credit.on_max_data(limit):
            return False
        waiters = list(self._credit_waiters.values())
        self._credit_waiters.clear()
        for stream in waiters:
            self._on_wake(stream)
        return True

    # ---- received frames -------------------------------------------------------------------
    def on_stream_frame(
        self,
        stream_id: int,
        offset: int,
        data: bytes | bytearray | memoryview,
        fin: bool,
        now: float | None = None,
    ) -> Stream | None:
        """A STREAM frame: reassemble and charge connection flow control. Returns the
        stream, or None when it was already forgotten (the frame is ignored)."""
        if now is not None:
            self.now = now
        stream = self._streams.get(stream_id)
        if stream is None or stream.recv is None:
            stream = self.get_or_create_for_peer(stream_id, True)
            if stream is None:
                return None
        recv = stream.recv
        assert recv is not None
        growth = recv.on_stream_frame(offset, data, fin)
        if growth:
            self.recv_window.on_data(growth)
        return stream

    def consume_readable(self, stream_id: int) -> bool:
        """True once when the stream has news for the application (readable data or the
        end of the stream) since its last read; for edge-triggered data events."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.recv is None:
            return False
        return stream.recv.take_readable_event()

    def on_reset_stream(self, stream_id: int, error_code: int, final_size: int) -> bool:
        """A RESET_STREAM; True when it newly reset the stream (report it)."""
        stream = self.get_or_create_for_peer(stream_id, True)
        if stream is None:
            return False
        recv = stream.recv
        assert recv is not None
        was_reset = recv.is_reset
        growth = recv.on_reset(error_code, final_size)
        if growth:
            self.recv_window.on_data(growth)
        return recv.is_reset and not was_reset

    def on_stop_sending(self, stream_id: int, error_code: int) -> bool:
        """A STOP_SENDING; True when it made us reset our sending half (report it)."""
        stream = self.get_or_create_for_peer(stream_id, False)
        if stream is None:
            return False
        assert stream.send is not None
        return stream.send.on_stop_sending(error_code)

    def on_max_stream_data(self, stream_id: int, limit: int) -> None:
        """A MAX_STREAM_DATA frame."""
        stream = self.get_or_create_for_peer(stream_id, False)
        if stream is not None:
            assert stream.send is not None
            stream.send.on_max_stream_data(limit)

    def on_stream_data_blocked(self, stream_id: int, limit: int = 0) -> None:
        """A STREAM_DATA_BLOCKED frame: validated (it may open the stream), else informational."""
        self.get_or_create_for_peer(stream_id, True)

    # ---- application helpers ---------------------------------------------------------------
    def write(
        self, stream_id: int, data: bytes | bytearray | memoryview, fin: bool = False
    ) -> None:
        self.get_send(stream_id).write(data, fin)

    def read(self, stream_id: int, max_bytes: int = -1) -> bytes:
        """Read from a stream and charge the bytes to connection-level consumption."""
        data = self.get_recv(stream_id).read(max_bytes)
        if data:
            self.recv_window.on_consumed(len(data))
        return data

    def on_consumed(self, n: int) -> None:
        """The application read ``n`` bytes through ``RecvStream.read`` directly."""
        self.recv_window.on_consumed(n)

    def on_recv_finished(self, stream_id: int) -> None:
        """Re-check a stream after its last read (forget it when both halves are done)."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._on_wake(stream)

    def reset_stream(self, stream_id: int, error_code: int) -> bool:
        return self.get_send(stream_id).reset(error_code)

    def stop_sending(self, stream_id: int, error_code: int) -> bool:
        return self.get_recv(stream_id).stop_sending(error_code)

    # ---- sent-frame feedback ---------------------------------------------------------------
    def on_stream_acked(self, stream_id: int, offset: int, length: int, fin: bool) -> None:
        send = self._send_half(stream_id)
        if send is not None:
            send.on_acked(offset, length, fin)

    def on_stream_lost(self, stream_id: int, offset: int, length: int, fin: bool) -> None:
        send = self._send_half(stream_id)
        if send is not None:
            send.on_lost(offset, length, fin)

    def repeat_for_probe(self, stream_id: int, offset: int, length: int, fin: bool) -> bool:
        """Queue a sent STREAM frame's data again for a PTO probe; True when that queued
        data not queued already (see ``SendStream.repeat_for_probe``)."""
        send = self._send_half(stream_id)
        return send is not None and send.repeat_for_probe(offset, length, fin)

    def _send_half(self, stream_id: int) -> SendStream | None:
        stream = self._streams.get(stream_id)
        return None if stream is None else stream.send

    def _recv_half(self, stream_id: int) -> RecvStream | None:
        stream = self._streams.get(stream_id)
        return None if stream is None else stream.recv

    # ---- frames out ------------------------------------------------------------------------
    def has_pending_frames(self) -> bool:  # (write_control_frames or write_stream_frames would)
        return self.first_sendable() is not None or self.control_due()  # (data first)

    def control_due(self) -> bool:  # (write_control_frames has a frame to write)
        window, credit = self.recv_window, self.send_credit
        if (
            self.control
            or window._resend  # (RecvWindow.update_due and SendCredit.blocked_at, inlined)
            or 2 * (window.limit - window.consumed) < window.window
            or (credit._wanted and credit.blocked_at is not None)
        ):
            return True
        local, closed = self._local_max_streams, self._peer_closed
        initial = self._local_max_streams_initial
        if initial[0] + closed[0] > local[0] or initial[1] + closed[1] > local[1]:
            return True  # (a MAX_STREAMS due: no calls, once per burst)
        resend, want, cap = self._max_streams_resend, self._blocked_want, self._peer_max_streams
        if resend is not _NOES or want is not _NOES:  # (a MAX_STREAMS again, STREAMS_BLOCKED)
            nexts, sent = self._next_local, self._blocked_sent
            for b in (0, 1):
                if resend[b] or (want[b] and nexts[b] >= cap[b] != sent[b]):
                    return True
        for s in self._control.values():  # noqa: SIM110 (no generator: once per burst)
            if not s._closed and s.has_control():
                return True
        return False

    def write_control_frames(
        self,
        buf: Buffer,
        room: int,
        records: list[Record],
        now: float | None = None,
        rtt: float | None = None,
    ) -> bool:
        """Append the due control frames (and their records) within ``room``; True if any."""
        if not self.control_due():  # (nothing due: most bursts)
            return False
        now = self.now if now is None else now
        rtt = self.rtt if rtt is None else rtt
        start = buf.written
        extra = self.control
        while extra:
            tmp = Buffer()
            F.encode_frame(tmp, extra[0])
            if room - buf.written < tmp.written:
                break
            buf.push_bytes(tmp.data())
            del extra[0]
        if room - buf.written < _CTRL_FRAME_MAX:
            return buf.written > start
        window = self.recv_window
        if window.update_due:
            limit = window.update(now, rtt)
            assert limit is not None
            F.encode_frame(buf, F.MaxDataFrame(limit))
            records.append(MaxDataRecord(limit))
        blocked = self.send_credit.blocked_at
        if blocked is not None and room - buf.written >= _CTRL_FRAME_MAX:
            F.encode_frame(buf, F.DataBlockedFrame(blocked))
            self.send_credit.on_blocked_sent(blocked)
            records.append(DataBlockedRecord(blocked))
        for bidi in (True, False):
            if room - buf.written < 2 * _CTRL_FRAME_MAX:
                return buf.written > start
            limit_or_none = self.max_streams_update(bidi)
            if limit_or_none is not None:
                F.encode_frame(buf, F.MaxStreamsFrame(bidi, limit_or_none))
                records.append(MaxStreamsRecord(bidi, limit_or_none))
            limit_or_none = self.streams_blocked(bidi)
            if limit_or_none is not None:
                F.encode_frame(buf, F.StreamsBlockedFrame(bidi, limit_or_none))
                records.append(StreamsBlockedRecord(bidi, limit_or_none))
        for stream in self.control_streams():
            if room - buf.written < 4 * _CTRL_FRAME_MAX:
                break
            sid = stream.stream_id
            send, recv = stream.send, stream.recv
            if send is not None:
                reset = send.reset_pending
                if reset is not None:
                    F.encode_frame(buf, F.ResetStreamFrame(sid, reset[0], reset[1]))
                    send.on_reset_sent()
                    records.append(ResetStreamRecord(sid))
                limit_or_none = send.blocked_at
                if limit_or_none is not None:
                    F.encode_frame(buf, F.StreamDataBlockedFrame(sid, limit_or_none))
                    send.on_blocked_sent(limit_or_none)
                    records.append(StreamDataBlockedRecord(sid, limit_or_none))
            if recv is not None:
                code = recv.stop_sending_pending
                if code is not None:
                    F.encode_frame(buf, F.StopSendingFrame(sid, code))
                    recv.on_stop_sending_sent()
                    records.append(StopSendingRecord(sid))
                limit_or_none = recv.max_stream_data_update(now, rtt)
                if limit_or_none is not None:
                    F.encode_frame(buf, F.MaxStreamDataFrame(sid, limit_or_none))
                    records.append(MaxStreamDataRecord(sid, limit_or_none))
        return buf.written > start

    def write_stream_frames(self, buf: Buffer, room: int, records: list[Record]) -> bool:
        """Append STREAM frames (round robin by priority) while ``buf.written`` stays within
        ``room``; a ``StreamRecord`` per frame. Returns True
        if anything was written. Same order as ``sendable()`` (inlined: per-packet path)."""
        wrote = False
        overhead = F.stream_frame_overhead
        push = F.push_stream_frame
        credit = self.send_credit
        for priority in self._priorities:
            queue = self._queues.get(priority, _NO_QUEUE)  # (gone with its last stream)
            for _ in range(len(queue)):
                self._prune(queue, credit.used < credit.limit)
                if not queue:
                    break
                stream = queue[0]
                send = stream.send
                assert send is not None
                sid = stream.stream_id
                avail = room - buf.written
                max_len = avail - overhead(sid, send.next_offset, avail)
                if max_len < 1:
                    return wrote  # full: this stream keeps its turn
                queue.rotate(-1)
                frame = send.next_frame(max_len, credit.limit - credit.used)
                if frame is None:
                    if credit.used >= credit.limit and send.wants_credit:
                        credit.note_blocked()
                    continue
                new = send.last_new_bytes
                credit.used += new
                offset, data, fin = frame
                if new != len(data):
                    self.bytes_retransmitted += len(data) - new
                push(buf, sid, offset, data, fin)
                records.append(new_record(StreamRecord, (sid, offset, len(data), fin)))
                wrote = True
        return wrote


_ZEROS, _NOES, _NONE_SENT = (0, 0), (False, False), (-1, -1)
_NO_STREAMS: dict[int, Stream] = {}  # shared, never written
_LIMITS: dict[tuple[int, int], tuple[int, int]] = {}  # the tuples of initial stream limits
T = TypeVar("T")


def _with(pair: tuple[T, T], index: int, value: T) -> tuple[T, T]:
    """``pair`` with ``value`` at ``index`` (0: unidirectional, 1: bidirectional); ``pair``
    itself when it holds ``value`` there already (a shared default stays shared)."""
    if pair[index] == value:
        return pair
    return (value, pair[1]) if index == 0 else (pair[0], value)


def _unhook(stream: Stream) -> None:
    """Drop the halves' wake-ups (each refers back to the manager)."""
    if stream.send is not None:
        stream.send.wake = None
    if stream.recv is not None:
        stream.recv.wake = None
