"""What each received frame does: :class:`FrameHandlers` and its frame-type -> handler table,
which the connection's receive loop dispatches through (``FrameHandlers.table``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from ..config import Config
from ..errors import ErrorCode, ProtocolError
from ..wire import frames as F
from ..wire.frames import NON_ACK_ELICITING_FRAMES
from . import ack_frequency
from . import events as ev
from .cid import LocalCids, PeerCids
from .event_queue import EventQueue
from .handshake import Handshake
from .idle import HandshakeTimer
from .keys import KeyState
from .lifecycle import Lifecycle
from .migration import Migration
from .pacing import Pacer
from .packet_builder import MIN_INITIAL_DATAGRAM, PacketBuilder
from .packet_space import APPLICATION, HANDSHAKE, PacketSpace
from .path import Path
from .records import RecordTable, SentPacket
from .recovery import LossRecovery
from .stats import ConnectionStats
from .stream_manager import StreamManager
from .trace import Trace

Handler = Callable[["FrameHandlers", Any, PacketSpace, float], None]


class FrameHandlers:
    """The handlers of received frames, each ``(frame, space, now)``, over the parts of the
    connection they change (never the connection itself: no reference cycle). The connection
    sets ``rx_path``, ``rx_size`` and ``rx_dcid`` for the datagram and packet being
    processed."""

    __slots__ = (
        "_builder", "_config", "_events", "_handshake", "_handshake_timer", "_is_client", "_keys",
        "_lifecycle", "_local_cids", "_migration", "_pacer", "_peer_cids", "_records", "_recovery",
        "_stats", "_streams", "rx_dcid", "rx_path", "rx_size", "trace",
    )  # fmt: skip

    def __init__(
        self,
        config: Config,
        *,
        is_client: bool,
        streams: StreamManager,
        events: EventQueue,
        recovery: LossRecovery,
        records: RecordTable,
        keys: KeyState,
        pacer: Pacer,
        handshake: Handshake,
        handshake_timer: HandshakeTimer,
        migration: Migration,
        builder: PacketBuilder,
        local_cids: LocalCids,
        peer_cids: PeerCids,
        stats: ConnectionStats,
        rx_path: Path,
        lifecycle: Lifecycle,
    ) -> None:
        self._config = config
        self._is_client = is_client
        self._streams = streams
        self._events = events
        self._recovery = recovery
        self._records = records
        self._keys = keys
        self._pacer = pacer
        self._handshake = handshake
        self._handshake_timer = handshake_timer
        self._migration = migration
        self._builder = builder
        self._local_cids = local_cids
        self._peer_cids = peer_cids
        self._stats = stats
        self._lifecycle = lifecycle
        self.trace: Trace | None = None
        self.rx_path = rx_path  # the path of the datagram being processed
        self.rx_size = 0  # its size
        self.rx_dcid = b""  # the DCID of the packet being processed

    # ---- acknowledgement and loss ---------------------------------------------------------
    def on_packets_acked(self, acked: list[SentPacket]) -> None:
        self._records.on_packets_acked(acked)

    def on_packets_lost(self, lost: list[SentPacket], now: float) -> None:
        """Packets declared lost (by an ACK or the loss timer): their records' owners
        queue what must go again."""
        if lost and self.trace is not None:
            self.trace.packets_lost(lost, now)
        counters = self._stats
        on_lost = self._records.on_lost
        for pkt in lost:
            counters.packets_lost += 1
            counters.bytes_lost += pkt.size
            on_lost(pkt.frames)

    def on_ack(self, frame: F.AckFrame, space: PacketSpace, now: float) -> None:
        self.on_ack_fields(frame.ranges, frame.delay, frame.ecn, space, now)

    def on_ack_fields(
        self,
        ranges: Sequence[tuple[int, int]],
        ack_delay: int,
        ecn: tuple[int, int, int] | None,
        space: PacketSpace,
        now: float,
    ) -> None:
        """``on_ack`` of an ACK frame's fields (the receive path's C decoder gives them)."""
        delay = 0.0
        params = self._handshake.peer_params
        if space.index == APPLICATION and params is not None:
            delay = (ack_delay << params.ack_delay_exponent) / 1_000_000
        ecn_ce = ecn[2] if ecn is not None else None
        recovery = self._recovery
        index = space.index
        one = None
        if len(ranges) == 1:  # (a request's or a response's ACK: the one packet outstanding)
            start, stop = ranges[0]
            one = recovery.ack_one_packet(index, start, stop, delay, now, ecn_ce)
        if one is not None:  # (on_ack_received's answer would be: [one], no loss)
            self._records.on_acked(one.frames)
            if self.trace is not None:
                self.trace.packets_acked(index, [one], now)
            if index != APPLICATION:
                self._handshake_timer.progress(now)
        else:
            acked, lost = recovery.on_ack_received(index, ranges, delay, now, ecn_ce)
            self.on_packets_acked(acked)
            if self.trace is not None:
                self.trace.packets_acked(index, acked, now)
            if acked and index != APPLICATION:
                self._handshake_timer.progress(now)
            if lost:
                self.on_packets_lost(lost, now)
        if self._keys.update_requested:
            self._keys.maybe_update()
        cc = recovery.cc
        rate = cc.pacing_rate  # the controller's own (BBR), else derived from its window
        if rate is None:
            self._pacer.update(cc.cwnd, recovery.rtt.smoothed_rtt, cc.in_slow_start)
        else:
            self._pacer.set_rate(rate)
        if self._is_client and space.index == HANDSHAKE:
            recovery.peer_completed_address_validation = True

    # ---- handshake ------------------------------------------------------------------------
    def on_crypto(self, frame: F.CryptoFrame, space: PacketSpace, now: float) -> None:
        buf = space.crypto_recv
        try:
            buf.insert(frame.offset, frame.data)
        except ProtocolError as exc:
            code = ErrorCode.CRYPTO_BUFFER_EXCEEDED
            raise ProtocolError(code, exc.reason, F.frame_type_of(frame)) from exc
        data = buf.read()
        if not data:
            return
        buf.max_offset = buf.read_offset + space.crypto_window  # a sliding window
        self._handshake_timer.progress(now)  # (nothing once the handshake is complete)
        self._handshake.receive_crypto(space.index, data, now)

    def on_handshake_done(
        self, frame: F.HandshakeDoneFrame, space: PacketSpace, now: float
    ) -> None:
        if not self._is_client:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                "HANDSHAKE_DONE from a client",
                F.frame_type_of(frame),
            )
        self._handshake.confirm()

    def on_new_token(self, frame: F.NewTokenFrame, space: PacketSpace, now: float) -> None:
        if not self._is_client:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION, "NEW_TOKEN from a client", F.frame_type_of(frame)
            )
        self._handshake.new_token = bytes(frame.token)

    def on_connection_close(
        self, frame: F.ConnectionCloseFrame, space: PacketSpace, now: float
    ) -> None:
        lifecycle = self._lifecycle
        lifecycle.drain(frame.error_code, frame.reason, frame.frame_type, now, frame.application)

    def dispatch(self, frames: Sequence[F.Frame], space: PacketSpace, now: float) -> bool:
        """Each of a packet's frames to its handler, in order; True if one is
        ack-eliciting. A handler's ProtocolError names its frame unless it names one."""
        ack_eliciting = False
        handlers = self.table
        for frame in frames:
            kind = type(frame)
            if kind not in NON_ACK_ELICITING_FRAMES:
                ack_eliciting = True
            handler = handlers.get(kind)
            if handler is not None:
                try:
                    handler(self, frame, space, now)
                except ProtocolError as exc:
                    if exc.frame_type is None:
                        exc.frame_type = F.frame_type_of(frame)
                    raise
        return ack_eliciting

    # ---- streams and flow control ---------------------------------------------------------
    def on_stream(self, frame: F.StreamFrame, space: PacketSpace, now: float) -> None:
        stream = self._streams.on_stream_frame(
            frame.stream_id, frame.offset, frame.data, frame.fin, now
        )
        recv = stream.recv if stream is not None else None
        if recv is not None and recv.take_readable_event():
            self._events.append(ev.StreamDataAvailable(frame.stream_id))

    def on_stream_fields(
        self,
        stream_id: int,
        offset: int,
        data: memoryview,
        fin: bool,
        with_length: bool,
        now: float,
    ) -> bool:
        """``on_stream`` for the bulk receive path: the fields of a packet's lone STREAM frame,
        decoded with the packet (``PacketProtector.open_stream_packet``); returns True."""
        try:
            stream = self._streams.on_stream_frame(stream_id, offset, data, fin, now)
        except ProtocolError as exc:  # (named as the connection names a frame's errors)
            if exc.frame_type is None:
                lone = F.StreamFrame(stream_id, offset, data, fin, with_length)
                exc.frame_type = F.frame_type_of(lone)
            raise
        recv = stream.recv if stream is not None else None
        if recv is not None and recv.take_readable_event():
            self._events.append(ev.StreamDataAvailable(stream_id))
        return True

    def on_reset_stream(self, frame: F.ResetStreamFrame, space: PacketSpace, now: float) -> None:
        if self._streams.on_reset_stream(frame.stream_id, frame.error_code, frame.final_size):
            self._events.append(ev.StreamReset(frame.stream_id, frame.error_code, frame.final_size))

    def on_stop_sending(self, frame: F.StopSendingFrame, space: PacketSpace, now: float) -> None:
        if self._streams.on_stop_sending(frame.stream_id, frame.error_code):
            self._events.append(ev.StopSendingReceived(frame.stream_id, frame.error_code))

    def on_max_data(self, frame: F.MaxDataFrame, space: PacketSpace, now: float) -> None:
        self._streams.on_max_data(frame.maximum)

    def on_max_stream_data(
        self, frame: F.MaxStreamDataFrame, space: PacketSpace, now: float
    ) -> None:
        self._streams.on_max_stream_data(frame.stream_id, frame.maximum)

    def on_max_streams(self, frame: F.MaxStreamsFrame, space: PacketSpace, now: float) -> None:
        if self._streams.on_max_streams(frame.bidi, frame.limit):
            self._events.append(ev.StreamsAvailable(frame.bidi))

    def on_stream_data_blocked(
        self, frame: F.StreamDataBlockedFrame, space: PacketSpace, now: float
    ) -> None:
        self._streams.on_stream_data_blocked(frame.stream_id)

    def on_datagram(self, frame: F.DatagramFrame, space: PacketSpace, now: float) -> None:
        if self._config.max_datagram_frame_size is None:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                "DATAGRAM frames not negotiated",
                F.frame_type_of(frame),
            )
        self._events.append_datagram(bytes(frame.data))

    def on_ack_frequency(self, frame: F.AckFrequencyFrame, space: PacketSpace, now: float) -> None:
        ack_frequency.on_ack_frequency(self._config.ack_frequency, frame, space)

    def on_immediate_ack(self, frame: F.ImmediateAckFrame, space: PacketSpace, now: float) -> None:
        ack_frequency.on_immediate_ack(self._config.ack_frequency, space)

    # ---- paths and connection IDs ---------------------------------------------------------
    def on_path_challenge(
        self, frame: F.PathChallengeFrame, space: PacketSpace, now: float
    ) -> None:
        padded = self.rx_size >= MIN_INITIAL_DATAGRAM
        self._migration.on_challenge(
            self.rx_path, bytes(frame.data), padded, self._handshake.confirmed, now
        )

    def on_path_response(self, frame: F.PathResponseFrame, space: PacketSpace, now: float) -> None:
        self._migration.on_response(bytes(frame.data), now)

    def on_new_connection_id(
        self, frame: F.NewConnectionIdFrame, space: PacketSpace, now: float
    ) -> None:
        builder = self._builder
        if not builder.peer_cid:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION, "NEW_CONNECTION_ID with a zero-length CID"
            )
        if self._peer_cids.on_new(frame):
            builder.peer_cid = self._peer_cids.current_cid  # ours was retired (retire_prior_to)

    def on_retire_connection_id(
        self, frame: F.RetireConnectionIdFrame, space: PacketSpace, now: float
    ) -> None:
        cid = self._local_cids.on_retire(frame.seq, bytes(self.rx_dcid))
        if cid is not None:
            self._events.append(ev.ConnectionIdRetired(cid))
            self._handshake.issue_cids()

    #: Frame class -> handler (PADDING and PING need none).
    table: ClassVar[dict[type, Handler]] = {
        F.AckFrame: on_ack,
        F.CryptoFrame: on_crypto,
        F.StreamFrame: on_stream,
        F.ResetStreamFrame: on_reset_stream,
        F.StopSendingFrame: on_stop_sending,
        F.MaxDataFrame: on_max_data,
        F.MaxStreamDataFrame: on_max_stream_data,
        F.MaxStreamsFrame: on_max_streams,
        F.StreamDataBlockedFrame: on_stream_data_blocked,
        F.HandshakeDoneFrame: on_handshake_done,
        F.ConnectionCloseFrame: on_connection_close,
        F.DatagramFrame: on_datagram,
        F.PathChallengeFrame: on_path_challenge,
        F.NewTokenFrame: on_new_token,
        F.NewConnectionIdFrame: on_new_connection_id,
        F.RetireConnectionIdFrame: on_retire_connection_id,
        F.PathResponseFrame: on_path_response,
        F.AckFrequencyFrame: on_ack_frequency,
        F.ImmediateAckFrame: on_immediate_ack,
    }
