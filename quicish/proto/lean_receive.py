"""The bulk receive path: a datagram that is one 1-RTT packet on the current path, taken
in one Python frame around one C call.

During a bulk transfer nearly every datagram a receiver gets is the same case: one short
header packet to our connection ID, from the current (validated) path, opened with the
current keys, whose payload is a single STREAM frame. ``PacketProtector.open_stream_packet``
opens it and decodes the frame in one C call (``PacketCipher.open_stream``), and
:meth:`LeanReceiver.take` then does what ``Connection.receive_datagram`` would do with it
(the counters, duplicate check, idle timer, the frame's data, the ECN count and the ACK
schedule) without the general path's steps; a packet of other frames goes to their
handlers as the general path sends them. With a qlog file as the trace's only sink
(``Trace.bulk``) the packet is logged as the general path logs it (``Trace.stream_received``
with the C decoder's fields of the lone frame, ``Trace.packet_received`` for other frames,
``Trace.dropped`` for a duplicate). Anything else (a long header,
another CID or path, a key-phase change or a forgery, another tracer, a first flight half
sent) is declined before any state changed, and the general path takes it.
"""

from __future__ import annotations

import logging

from ..errors import DecryptionError, ErrorCode, ProtocolError
from ..wire import frames as F
from ..wire.ack_stream import decode_ack_stream
from ..wire.packet import SHORT_RESERVED_BITS, PacketType
from .frame_handlers import FrameHandlers
from .handshake import Handshake
from .idle import IdleTimer
from .keys import KeyState
from .lifecycle import Closing, Lifecycle
from .packet_space import LOCAL_MAX_ACK_DELAY, PacketSpace
from .path import Address, PathManager
from .stats import ConnectionStats

logger = logging.getLogger("quicish")

_ONE_RTT = int(PacketType.ONE_RTT)
_ECN_COUNTER = {0x02: 0, 0x01: 1, 0x03: 2}  # ECT(0), ECT(1), CE -> index in the ACK counts


class LeanReceiver:
    """A connection's bulk receive path (the connection's parts, never the connection)."""

    __slots__ = (
        "_cid", "_frames", "_handshake", "_idle", "_keys", "_lifecycle", "_paths", "_space",
        "_stats",
    )  # fmt: skip

    def __init__(
        self,
        host_cid: bytes,
        space: PacketSpace,
        lifecycle: Lifecycle,
        handshake: Handshake,
        keys: KeyState,
        paths: PathManager,
        frames: FrameHandlers,
        stats: ConnectionStats,
        idle: IdleTimer,
    ) -> None:
        self._cid = host_cid
        self._space = space
        self._lifecycle = lifecycle
        self._handshake = handshake
        self._keys = keys
        self._paths = paths
        self._frames = frames
        self._stats = stats
        self._idle = idle

    def take(self, data: bytes, addr: Address, local: int, ecn: int, now: float) -> bool:
        """Process ``data`` when it is the bulk case (True), else change nothing (False)."""
        space = self._space
        rx = space.rx
        cid = self._cid
        frames = self._frames
        path = self._paths.current
        trace = frames.trace
        end = len(cid) + 1
        if (
            rx is None
            or not data
            or data[0] & 0x80
            or addr != path.addr
            or local != path.local
            or not path.validated
            or (trace is not None and trace.bulk is None)
            or data[1:end] != cid
            or not self._lifecycle.state.is_open
            or self._handshake.flight_pending
            or not self._handshake.first_packet_received
            or self._keys.deferred
        ):
            return False
        lifecycle = self._lifecycle
        try:
            header, payload, pn, lone, ack = rx.open_stream_packet(
                data, end, space.largest_received
            )
        except DecryptionError:
            return False  # (a key update, a stateless reset or a forgery: the general path)
        except Exception as exc:  # (libcrypto failed: as the general path would)
            logger.exception("closing: internal error while processing a datagram")
            lifecycle.close_internal(exc, now)
            return True
        size = len(data)
        stats = self._stats
        stats.datagrams_received += 1
        stats.bytes_received += size
        frames.rx_size = size
        frames.rx_path = path
        try:
            if header[0] & SHORT_RESERVED_BITS:
                raise ProtocolError(ErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
            frames.rx_dcid = cid
            if pn < space.ack_floor or not space.received.add_packet(pn):  # (record inlined)
                stats.packets_duplicate += 1
                if trace is not None:
                    trace.dropped(now, "duplicate", _ONE_RTT, size)
                return True
            stats.packets_received += 1
            idle = self._idle  # (IdleTimer.on_packet_received inlined)
            idle.last_activity = now
            idle.restart_pending = True
            eliciting: bool | F.StreamFrame
            if lone is None:
                eliciting = self._frames_of(payload, space, now)
            elif ack is None:
                eliciting = frames.on_stream_fields(*lone, now)
            else:  # (a request or a response: the ACK's fields, then the STREAM frame's)
                try:
                    frames.on_ack_fields(ack[0], ack[1], ack[2], space, now)
                except ProtocolError as exc:  # (named as dispatch names a frame's errors)
                    if exc.frame_type is None:
                        exc.frame_type = 0x02 if ack[2] is None else 0x03
                    raise
                eliciting = frames.on_stream_fields(*lone, now)
            if trace is not None:  # (as Connection._process_packet logs the packet)
                if lone is None or ack is not None:
                    trace.packet_received(now, _ONE_RTT, pn, size, payload, eliciting)
                else:  # (the decoded fields: no frame object made for the trace)
                    log = trace.lone_received  # (the C tap's entry: no method lookup)
                    if log is None:
                        trace.stream_received(now, pn, size, payload, lone)
                    else:
                        log(now, pn, size, payload, lone)
            if ecn:  # (counted first: a CE mark can make the ACK due at once)
                space.ecn_counts[_ECN_COUNTER[ecn]] += 1
            space.on_packet_received(pn, eliciting, now, LOCAL_MAX_ACK_DELAY)
        except ProtocolError as exc:
            logger.debug("closing: %s", exc)
            lifecycle.close_with_error(exc.code, exc.reason, exc.frame_type, now)
            return True
        except Exception as exc:  # a bug, or MemoryError in reassembly: this connection ends
            logger.exception("closing: internal error while processing a datagram")
            lifecycle.close_internal(exc, now)
            return True
        state = lifecycle.state
        if state.is_closing:  # (closed by what this datagram carried)
            assert isinstance(state, Closing)
            state.on_datagram()
        return True

    def _frames_of(self, payload: bytes, space: PacketSpace, now: float) -> bool | F.StreamFrame:
        """A 1-RTT packet's frames not decoded with it, to their handlers (as
        ``Connection._process_frames``, on the current path): truthy if ack-eliciting,
        the frame itself when it is one STREAM frame (for the trace)."""
        on = self._frames
        lone = F.decode_lone_stream_frame(payload)  # (the C cipher decodes it: not here)
        if lone is not None:
            data = lone.data if isinstance(lone.data, memoryview) else memoryview(lone.data)
            on.on_stream_fields(lone.stream_id, lone.offset, data, lone.fin, lone.with_length, now)
            return lone
        pair = decode_ack_stream(payload)  # (a request or a response: ACK + STREAM)
        frames = F.decode_frames(payload, PacketType.ONE_RTT) if pair is None else pair
        return on.dispatch(frames, space, now)
