"""The engine's side of tracing: :class:`Trace`, one method per thing worth logging.

A connection holds a ``Trace`` only while something listens (a qlog file from
``Config.qlog_dir`` or ``QLOGDIR``, ``Config.tracer``, ``Connection.tracer``, extra sinks);
otherwise its parts hold None and a ``trace is None`` check per packet is the whole cost.
The methods take the engine's own values (packet payloads, sent-packet records, the parts'
state) and hand compact values to a :class:`~quicish.qlog.sinks.TraceSink`: the qlog
writer renders them later, off the connection's path; the callback sink makes the draft's
dicts. Rarely changing state (handshake progress, keys, the peer's CID, the path, the
congestion state) is compared against what was last logged at each packet (a few attribute
reads once the handshake is confirmed) rather than hooked where it changes.

Nothing here is imported by the parts it looks at: they are passed in (``Any``), so the
modules that call the trace import this one and not the other way round.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from ..errors import ErrorCode
from ..native import QlogTap, acked_record, packet_record
from ..qlog import events as qe
from ..qlog.frames import frame_to_qlog
from ..qlog.schema import (
    ALPN_INFORMATION,
    CONGESTION_STATE_UPDATED,
    CONNECTION_CLOSED,
    CONNECTION_ID_UPDATED,
    CONNECTION_STARTED,
    CONNECTION_STATE_UPDATED,
    KEY_DISCARDED,
    KEY_UPDATED,
    MIGRATION_STATE_UPDATED,
    MTU_UPDATED,
    PACKET_DROPPED,
    PACKET_LOST,
    PACKET_RECEIVED,
    PACKET_SENT,
    PACKETS_ACKED,
    PARAMETERS_SET,
    RECOVERY_PARAMETERS_SET,
    SPACE_NAMES,
    STREAM_STATE_UPDATED,
    TUPLE_ASSIGNED,
    VERSION_INFORMATION,
)
from ..qlog.sinks import CallbackSink, Tracer, TraceSink, fan_out
from ..qlog.writer import QlogDirectory, QlogWriter
from ..wire import frames as F
from ..wire.packet import PacketType
from .records import Record, SentPacket, StreamRecord

# recovery.py's constants, repeated (this module must not import the parts it traces)
_PACKET_THRESHOLD = 3
_TIME_THRESHOLD = 9 / 8
_GRANULARITY = 0.001
_INITIAL_RTT = 0.333
_PERSISTENT_CONGESTION_THRESHOLD = 3
_ACK_DELAY_EXPONENT = 3  # ours (packet_space.ACK_DELAY_EXPONENT)

_TYPE_NAME = {
    int(PacketType.INITIAL): "initial",
    int(PacketType.ZERO_RTT): "0RTT",
    int(PacketType.HANDSHAKE): "handshake",
    int(PacketType.ONE_RTT): "1RTT",
}
_SPACE_TYPE = ("initial", "handshake", "1RTT")
_ONE_RTT = int(PacketType.ONE_RTT)
_LEVEL = ("initial", "handshake", "1rtt")
_STREAM_FRAME = F.StreamFrame
_TAPPED = ("stream_sent", "burst_sent", "packet_received", "stream_received")  # (see _tap)


def _compact(frames: Iterable[Any], ack_exponent: int) -> list[Any]:
    """Wire frames as the writer's compact tuples (no frame data kept)."""
    out: list[Any] = []
    for fr in frames:
        kind = type(fr)
        if kind is F.StreamFrame:
            out.append(("stream", fr.stream_id, fr.offset, len(fr.data), fr.fin))
        elif kind is F.AckFrame:
            ms = fr.delay * (1 << ack_exponent) / 1000.0
            out.append(("ack", [(a, b) for a, b in fr.ranges], ms, fr.ecn))
        elif kind is F.PaddingFrame:
            out.append(("padding", fr.length))
        elif kind is F.CryptoFrame:
            out.append(("crypto", fr.offset, len(fr.data)))
        elif kind is F.PingFrame:
            out.append(("ping",))
        elif kind is F.HandshakeDoneFrame:
            out.append(("handshake_done",))
        else:
            out.append(frame_to_qlog(fr, ack_exponent))
    return out


def _varint(b: Any, p: int) -> tuple[int, int]:
    v = b[p]
    n = 1 << (v >> 6)
    v &= 0x3F
    for i in range(p + 1, p + n):
        v = (v << 8) | b[i]
    return v, p + n


_BULK_HEAD = struct.Struct("!BBLH")  # (wire/frames.py's bulk STREAM header, stream id < 64)


def _bulk_stream(b: Any) -> tuple[int, int, int, bool] | None:
    """(stream id, offset, length, fin) of a payload that is one STREAM frame with the
    8-byte header quicish writes in bulk (1-byte id, 4-byte offset, 2-byte length)."""
    if len(b) < 8:
        return None
    t, sid, offset, n = _BULK_HEAD.unpack_from(b)
    if (
        t & 0xFE == 0x0E
        and sid < 0x40
        and offset >> 30 == 2
        and n >> 14 == 1
        and (n & 0x3FFF) + 8 == len(b)
    ):
        return sid, offset & 0x3FFFFFFF, n & 0x3FFF, t & 1 == 1
    return None


def _lone_stream(b: Any) -> tuple[int, int, int, bool] | None:
    """(stream id, offset, length, fin) of a payload that is one STREAM frame, else None
    (read from its header only: the packet was decoded already)."""
    t = b[0]
    if t & 0xF8 != 0x08:
        return None
    sid, p = _varint(b, 1)
    offset = 0
    if t & 0x04:
        offset, p = _varint(b, p)
    if t & 0x02:
        length, p = _varint(b, p)
        if p + length != len(b):
            return None
    else:
        length = len(b) - p
    return sid, offset, length, bool(t & 0x01)


def close_trigger(code: int, reason: str, by_peer: bool, application: bool) -> str:
    """The qlog ``connection_closed`` trigger of how a connection ended."""
    if reason == "idle timeout":
        return "idle_timeout"
    if reason == "stateless reset":
        return "stateless_reset"
    if reason.startswith("server supports only"):  # (a Version Negotiation packet)
        return "version_mismatch"
    if application:
        return "application"
    return "error" if code != ErrorCode.NO_ERROR or reason == "handshake timeout" else "unspecified"


class Trace:
    """Events of one connection, to one sink (or several, fanned out).

    Made by :meth:`of` / :meth:`begin_for` from the connection, whose parts it reads
    (never changes) to log state changes and whose parts it installs itself in
    (``trace`` attributes, ``LossRecovery.on_metrics``) while it has a sink."""

    def __init__(self, conn: Any) -> None:
        self.is_client: bool = conn.is_client
        self._conn_config = conn.config
        self._hs = conn._handshake
        self._keys = conn._keys
        self._spaces: tuple[Any, ...] = conn._spaces
        self._builder = conn._builder
        self._recovery = conn._recovery
        self._paths = conn._paths
        self._pacer = conn._pacer
        self._hooked = (conn._builder, conn._frames, conn._lifecycle, conn._migration)
        self.sink: TraceSink | None = None
        self.writer: QlogWriter | None = None  # the qlog file, when one is written
        # The writer's bulk list while it is the only sink: bulk packets are appended to it
        # here as the writer's stream_packet records (one tuple per packet, nothing else).
        self.bulk: list[tuple[Any, ...]] | None = None
        self.bulk_limit = 0  # (its bulk_limit: when to flush)
        self.qlog_error: OSError | None = None  # why the qlog file could not be opened
        self.callback: Tracer | None = None  # Connection.tracer
        self.config_tracer: Tracer | None = None  # Config.tracer
        self.extra: list[TraceSink] = []  # Connection.add_trace_sink()
        self.begun = False
        self.ended = False
        self._close_logged = False
        self._now = 0.0  # the time of the last event logged here (see now)
        self._tapped: Any = None  # the QlogTap in this trace's place, if any (see _tap)
        # The tap's stream_received while there is one, else None: the lean receiver calls
        # it per packet as an instance attribute (a method shadowed in the instance's dict
        # costs the call site a generic lookup, about 100 ns).
        self.lone_received: Any = None
        # What was last logged of the state compared at each packet.
        self._complete = False
        self._confirmed = False
        self._phase = 0
        self._peer_cid: bytes | None = None
        self._path: Any = None
        self._keys_seen: set[tuple[bool, str]] = set()
        self._discarded: set[str] = set()
        self._cc_state: str | None = None
        self._acked_sent_time = float("-inf")  # newest send time of a packet acknowledged
        self._streams: set[int] = set()
        self._fin: set[tuple[int, bool]] = set()

    # ---- making, installing ------------------------------------------------------------------
    @classmethod
    def of(cls, conn: Any, trace: Trace | None) -> Trace:
        """``trace``, or a new one for ``conn``."""
        return cls(conn) if trace is None else trace

    @classmethod
    def begin_for(cls, conn: Any, trace: Trace | None, now: float) -> Trace | None:
        """The connection starts (client: connect; server: its first authenticated
        packet): open the qlog file (``Config.qlog_dir``, else ``QLOGDIR``) and add
        ``Config.tracer``; returns the installed trace, None (and nothing made) when
        nothing listens."""
        if trace is not None and trace.begun:
            return trace
        config = conn.config
        directory = QlogDirectory.resolve(config.qlog_dir)
        if trace is None and directory is None and config.tracer is None:
            return None
        trace = cls.of(conn, trace)
        trace.config_tracer = config.tracer
        if directory is not None and trace.writer is None:
            try:
                odcid = conn._handshake.original_dcid
                trace.writer = directory.writer(odcid, trace.is_client, start=now)
            except OSError as exc:  # an unwritable directory costs the file, not the connection
                trace.qlog_error = exc
        installed = trace.install()
        if installed is not None:
            installed.begin(now, None, conn.peer_addr)
        return installed

    def set_callback(self, tracer: Tracer | None) -> Trace | None:
        self.callback = tracer
        return self.install()

    def add_sink(self, sink: TraceSink) -> Trace | None:
        self.extra.append(sink)
        return self.install()

    def install(self) -> Trace | None:
        """Put this trace in the connection's parts when it has a sink, else take it out;
        returns what is installed."""
        sinks: list[TraceSink] = []
        if self.writer is not None:
            sinks.append(self.writer)
        sinks.extend(self.extra)
        for tracer in (self.config_tracer, self.callback):
            if tracer is not None:
                sinks.append(CallbackSink(tracer))
        self.sink = fan_out(sinks)
        writer = self.writer
        only_writer = writer is not None and self.sink is writer
        self.bulk = writer.bulk if writer is not None and only_writer else None
        self.bulk_limit = writer.bulk_limit if writer is not None else 0
        self._tap(writer if only_writer else None)
        on = self if self.sink is not None else None
        for part in self._hooked:
            part.trace = on
        self._recovery.on_metrics = None if on is None else on.on_metrics
        return on

    @property
    def now(self) -> float:
        """The time of the last event (for the few without a time of their own): the C tap
        keeps its packets' time itself (no attribute set here per packet)."""
        tap = self._tapped
        if tap is not None and tap.now is not None and tap.now > self._now:
            return float(tap.now)
        return self._now

    @now.setter
    def now(self, now: float) -> None:
        self._now = now

    @property
    def qlog_path(self) -> str | None:
        return None if self.writer is None else self.writer.path

    def end(self) -> None:
        """The connection is over: flush and close the sinks (once). A connection that
        ends without a close (its driver dropped it) is logged as ``aborted``."""
        if self.ended:
            return
        self.ended = True
        sink = self.sink
        if sink is not None:
            if self.begun and not self._close_logged:
                data = qe.connection_closed(trigger="aborted")
                sink.event(CONNECTION_CLOSED, data, self.now)
            sink.close()
        # Out of the parts, which hold no reference back to it then: a closed connection
        # stays free of reference cycles (reference counting frees it).
        for part in self._hooked:
            part.trace = None
        self._recovery.on_metrics = None
        self.bulk = None
        self._tap(None)

    def _tap(self, writer: QlogWriter | None) -> None:
        """With the C core, the bulk case of :meth:`stream_sent`, :meth:`burst_sent`,
        :meth:`packet_received` and :meth:`stream_received` is done by a ``QlogTap`` (C) in
        this trace's place while ``writer`` is the only sink (its methods shadow the four,
        handing it every other case); without, none."""
        shadowed = self.__dict__
        for name in _TAPPED:
            shadowed.pop(name, None)
        self._now, self._tapped = self.now, None  # (the tap's last time kept)
        self.lone_received = None
        if writer is None or QlogTap is None:
            return
        tap = QlogTap(
            self,
            writer.bulk,
            self._streams,
            self._keys,
            writer.flush,
            writer.bulk_limit,
            F.StreamFrame,
            self.stream_sent,
            self.packet_received,
            self.stream_received,
            self.burst_sent,
        )
        tap.phase = self._phase
        shadowed["stream_sent"] = tap.sent
        shadowed["burst_sent"] = tap.burst
        shadowed["packet_received"] = tap.received
        shadowed["stream_received"] = self.lone_received = tap.stream_received
        self._tapped = tap

    # ---- lifecycle ---------------------------------------------------------------------------
    def begin(self, now: float, local: Any, remote: Any) -> None:
        """The connection starts (client: connect; server: the first authenticated packet)."""
        sink = self.sink
        self.begun = True
        self._now = now
        if sink is None:
            return
        hs = self._hs
        peer_cid = self._builder.peer_cid or None
        sink.event(
            CONNECTION_STARTED,
            qe.connection_started(local, remote, self._builder.host_cid, peer_cid),
            now,
        )
        if self.is_client:
            data = qe.version_information(None, client_versions=hs.versions)
            sink.event(VERSION_INFORMATION, data, now)
        cc = self._recovery.cc
        data = qe.recovery_parameters_set(
            reordering_threshold=_PACKET_THRESHOLD,
            time_threshold=_TIME_THRESHOLD,
            timer_granularity=_GRANULARITY,
            initial_rtt=self._recovery.rtt.initial_rtt,
            max_datagram_size=cc.max_datagram_size,
            initial_congestion_window=cc.initial_window,
            minimum_congestion_window=cc.minimum_window,
            loss_reduction_factor=0.7 if type(cc).__name__ == "Cubic" else 0.5,
            persistent_congestion_threshold=_PERSISTENT_CONGESTION_THRESHOLD,
            congestion_control=type(cc).__name__.lower(),
        )
        sink.event(RECOVERY_PARAMETERS_SET, data, now)
        if self.is_client:
            sink.event(PARAMETERS_SET, qe.parameters_set(hs.local_params, "local"), now)
        self.poll(now)

    def closed(
        self,
        code: int,
        reason: str,
        frame_type: int | None,
        by_peer: bool,
        application: bool,
        now: float | None,
    ) -> None:
        sink = self.sink
        if now is not None:
            self._now = now
        if sink is None:
            return
        self._close_logged = True
        data = qe.connection_closed(
            initiator="remote" if by_peer else "local",
            error_code=code,
            application=application,
            reason=reason,
            trigger=close_trigger(code, reason, by_peer, application),
        )
        sink.event(CONNECTION_CLOSED, data, self.now)

    # ---- packets -----------------------------------------------------------------------------
    def packet_sent(
        self, now: float, ptype: int, pn: int, size: int, payload: Any, records: list[Record]
    ) -> None:
        self._now = now
        bulk = self.bulk
        if bulk is not None and ptype == _ONE_RTT and len(records) == 1:
            record = records[0]
            if type(record) is StreamRecord:
                sid, offset, length, fin = record
                if len(payload) - length == 8 and payload[0] & 0xFE == 0x0E and payload[1] < 64:
                    # the bulk case, as the lean builder writes it (see below): one tuple
                    bulk.append((now, PACKET_SENT, "1RTT", pn, sid, offset, fin, length, size))
                    if fin or sid not in self._streams:
                        self._stream_frame(sid, fin, True, now)
                    if len(bulk) >= self.bulk_limit:
                        self.writer.flush()  # type: ignore[union-attr]
                    return
        sink = self.sink
        if sink is None:
            return
        if ptype == _ONE_RTT:
            if len(records) == 1 and type(records[0]) is StreamRecord:
                sid, offset, length, fin = records[0]
                if len(payload) - length == 8 and payload[0] & 0xFE == 0x0E and payload[1] < 64:
                    # the bulk case, as the lean builder writes it: the payload is one
                    # STREAM frame with the 8-byte header (1-byte id, 4-byte offset, length)
                    sink.stream_packet(PACKET_SENT, now, "1RTT", pn, size, sid, offset, length, fin)
                    if fin or sid not in self._streams:
                        self._stream_frame(sid, fin, True, now)
                    return
            one = _lone_stream(payload)
            if one is not None:  # one STREAM frame, the whole payload
                sid, offset, length, fin = one
                sink.stream_packet(PACKET_SENT, now, "1RTT", pn, size, sid, offset, length, fin)
                if fin or sid not in self._streams:
                    self._stream_frame(sid, fin, True, now)
                return
        if bulk is not None and packet_record is not None:  # (the writer is the only sink)
            text = packet_record(
                self.writer.start,  # type: ignore[union-attr]
                now,
                PACKET_SENT,
                _TYPE_NAME[ptype],
                pn,
                size,
                payload,
                _ACK_DELAY_EXPONENT,
                self._streams,
            )
            if text is not None:  # the record made in C: nothing decoded here
                self.writer.record(now, PACKET_SENT, text)  # type: ignore[union-attr]
                self.poll(now)
                return
        frames = _compact(F.decode_frames(payload), _ACK_DELAY_EXPONENT)
        sink.packet(PACKET_SENT, now, _TYPE_NAME[ptype], pn, size, frames)
        self._stream_states(frames, True, now)
        self.poll(now)

    def stream_sent(
        self, now: float, pn: int, size: int, payload: Any, records: list[Record]
    ) -> None:
        """A 1-RTT packet of the bulk path (``PacketBuilder.build_stream_datagram``): its
        payload is the STREAM frames of ``records``, nothing else, so one record is the
        whole packet: one tuple for the writer, nothing read from the payload."""
        bulk = self.bulk
        if bulk is None or len(records) != 1:
            self.packet_sent(now, _ONE_RTT, pn, size, payload, records)
            return
        self._now = now
        sid, offset, length, fin = records[0]
        bulk.append((now, PACKET_SENT, "1RTT", pn, sid, offset, fin, length, size))
        if fin or sid not in self._streams:
            self._stream_frame(sid, fin, True, now)
        if len(bulk) >= self.bulk_limit:
            self.writer.flush()  # type: ignore[union-attr]

    def burst_sent(
        self,
        now: float,
        pn: int,
        stream_id: int,
        offset: int,
        final_size: int | None,
        packets: list[bytes],
        lengths: list[int],
    ) -> None:
        """A burst of the bulk send path (``StreamBurst.fill``, while :attr:`bulk` is set):
        packet ``i`` is ``pn + i``, ``len(packets[i])`` bytes, one STREAM frame of
        ``lengths[i]`` bytes from where the previous one ended (FIN where it ends at
        ``final_size``); each logged as :meth:`stream_sent` logs the lean builder's."""
        stream_sent = self.stream_sent
        for packet, length in zip(packets, lengths, strict=True):
            stop = offset + length
            fin = stop == final_size
            stream_sent(now, pn, len(packet), b"", [(stream_id, offset, length, fin)])
            offset = stop
            pn += 1

    def stream_received(
        self, now: float, pn: int, size: int, payload: Any, lone: tuple[Any, ...]
    ) -> None:
        """A 1-RTT packet that is one STREAM frame, as the lean receiver got it: ``lone``
        the C opener's ``(stream_id, offset, data, fin, with_length)`` (no frame object
        made); logged as :meth:`packet_received` logs that frame."""
        if self.bulk is None:  # (another sink listens: the frame, as the general path)
            self.packet_received(now, _ONE_RTT, pn, size, payload, _STREAM_FRAME(*lone))
            return
        self._now = now
        self._bulk_received(now, pn, size, lone[0], lone[1], len(lone[2]), lone[3])

    def _bulk_received(
        self, now: float, pn: int, size: int, sid: int, offset: int, length: int, fin: bool
    ) -> None:
        bulk = self.bulk
        assert bulk is not None
        bulk.append((now, PACKET_RECEIVED, "1RTT", pn, sid, offset, fin, length, size))
        if fin or sid not in self._streams:
            self._stream_frame(sid, fin, False, now)
        if self._keys.phase != self._phase:  # (the peer's key update comes in bulk)
            self.poll(now)
        if len(bulk) >= self.bulk_limit:
            self.writer.flush()  # type: ignore[union-attr]

    def packet_received(
        self, now: float, ptype: int, pn: int, size: int, payload: Any, lone: object = None
    ) -> None:
        """``lone``: the packet's only frame, a STREAM frame, when the connection decoded it
        so (its bulk path), else anything else."""
        self._now = now
        bulk = self.bulk
        if bulk is not None and type(lone) is _STREAM_FRAME:
            self._bulk_received(
                now, pn, size, lone.stream_id, lone.offset, len(lone.data), lone.fin
            )
            return
        sink = self.sink
        if sink is None:
            return
        if ptype == _ONE_RTT:
            one = _bulk_stream(payload) or _lone_stream(payload)
            if one is not None:
                sid, offset, length, fin = one
                sink.stream_packet(PACKET_RECEIVED, now, "1RTT", pn, size, sid, offset, length, fin)
                if fin or sid not in self._streams:
                    self._stream_frame(sid, fin, False, now)
                if self._keys.phase != self._phase:  # (the peer's key update comes in bulk)
                    self.poll(now)
                return
        params = self._hs.peer_params
        exponent = params.ack_delay_exponent if params is not None else _ACK_DELAY_EXPONENT
        if bulk is not None and packet_record is not None:  # (as in packet_sent)
            name = _TYPE_NAME[int(ptype)]
            text = packet_record(
                self.writer.start,  # type: ignore[union-attr]
                now,
                PACKET_RECEIVED,
                name,
                pn,
                size,
                payload,
                exponent,
                self._streams,
            )
            if text is not None:
                self.writer.record(now, PACKET_RECEIVED, text)  # type: ignore[union-attr]
                self.poll(now)
                return
        frames = _compact(F.decode_frames(payload), exponent)
        sink.packet(PACKET_RECEIVED, now, _TYPE_NAME[int(ptype)], pn, size, frames)
        self._stream_states(frames, False, now)
        self.poll(now)

    def unnumbered_received(self, now: float, ptype: Any, size: int) -> None:
        """A Retry or Version Negotiation packet arrived (logged before it is acted on)."""
        sink = self.sink
        if sink is not None:
            name = "retry" if ptype == PacketType.RETRY else "version_negotiation"
            data = qe.packet_event(qe.packet_header(name), size=size)
            sink.event(PACKET_RECEIVED, data, now)

    def packets_acked(self, space: int, acked: list[SentPacket], now: float) -> None:
        sink = self.sink
        if sink is None or not acked:
            return
        text = None
        if self.bulk is not None and acked_record is not None:  # (the writer the only sink)
            writer = self.writer
            text = acked_record(writer.start, now, PACKETS_ACKED, SPACE_NAMES[space], acked)  # type: ignore[union-attr]
            if text is not None:  # the record made in C from the packets' numbers
                writer.record(now, PACKETS_ACKED, text)  # type: ignore[union-attr]
        if text is None:
            numbers = [p.pn for p in acked]  # (qe.packets_acked's dict, without its copy)
            data = {"packet_number_space": SPACE_NAMES[space], "packet_numbers": numbers}
            sink.event(PACKETS_ACKED, data, now)
        newest = acked[-1].sent_time
        if newest > self._acked_sent_time:
            self._acked_sent_time = newest
        self._congestion_state(sink, now)

    def packets_lost(self, lost: list[SentPacket], now: float) -> None:
        """Declared lost by an ACK (reordering or time threshold) or the loss timer."""
        sink = self.sink
        if sink is None:
            return
        recovery = self._recovery
        for pkt in lost:
            largest = recovery.largest_acked(pkt.space)
            if largest is not None and pkt.pn <= largest - _PACKET_THRESHOLD:
                trigger = "reordering_threshold"
            else:
                trigger = "time_threshold"
            ptype = _SPACE_TYPE[pkt.space]
            sink.packet(PACKET_LOST, now, ptype, pkt.pn, pkt.size, (), None, trigger)

    def dropped(self, now: float, reason: str, ptype: Any = None, size: int | None = None) -> None:
        """A received packet was dropped; ``reason`` one of qlog.events.DROP_TRIGGERS."""
        sink = self.sink
        if sink is None:
            return
        header = None
        if ptype is not None and int(ptype) in _TYPE_NAME:
            header = qe.packet_header(_TYPE_NAME[int(ptype)])
        trigger = qe.DROP_TRIGGERS.get(reason, "general")
        sink.event(PACKET_DROPPED, qe.packet_dropped(trigger, header=header, size=size), now)

    # ---- recovery ----------------------------------------------------------------------------
    def on_metrics(self, recovery: Any, now: float) -> None:
        """After an ACK, a loss timer or a PTO (``LossRecovery.on_metrics``)."""
        sink = self.sink
        if sink is None:
            return
        metrics = recovery.metrics()
        metrics["pacing_rate"] = self._pacer.rate
        sink.metrics(now, metrics)
        self._congestion_state(sink, now)

    def _congestion_state(self, sink: TraceSink, now: float) -> None:
        """The controller's state as it acts on it: recovery until a packet sent after
        the last reduction is acknowledged (RFC 9002 7.3.2), then slow start below
        ssthresh, congestion avoidance above; application-limited while nothing is in
        flight after the handshake (the sender has nothing to send)."""
        recovery = self._recovery
        cc = recovery.cc
        if recovery.bytes_in_flight == 0 and self._hs.complete:
            state = "application_limited"
        elif cc.recovery_start_time >= self._acked_sent_time:
            state = "recovery"
        elif cc.cwnd < cc.ssthresh:
            state = "slow_start"
        else:
            state = "congestion_avoidance"
        if state != self._cc_state:
            data = qe.congestion_state_updated(state, self._cc_state)
            self._cc_state = state
            sink.event(CONGESTION_STATE_UPDATED, data, now)

    # ---- paths -------------------------------------------------------------------------------
    def migration(self, state: str, path: Any, now: float) -> None:
        """``state`` one of the draft's migration states, for ``path`` (the one probed or
        moved to)."""
        sink = self.sink
        if sink is not None:
            data = qe.migration_state_updated(state, remote=path.addr)
            sink.event(MIGRATION_STATE_UPDATED, data, now)

    def mtu_updated(self, now: float, old: int, new: int, done: bool) -> None:
        """Path MTU discovery changed the datagram size."""
        sink = self.sink
        if sink is not None:
            sink.event(MTU_UPDATED, qe.mtu_updated(new, old, done), now)

    # ---- streams -----------------------------------------------------------------------------
    def _stream_states(self, frames: list[Any], sending: bool, now: float) -> None:
        for fr in frames:
            if type(fr) is tuple:
                if fr[0] == "stream" and (fr[4] or fr[1] not in self._streams):
                    self._stream_frame(fr[1], fr[4], sending, now)
            elif fr.get("frame_type") == "reset_stream":
                side = "sending" if sending else "receiving"
                new = "reset_sent" if sending else "reset_received"
                self._stream_event(fr["stream_id"], new, side, now)

    def _stream_frame(self, sid: int, fin: bool, sending: bool, now: float) -> None:
        side = "sending" if sending else "receiving"
        if sid not in self._streams:
            self._streams.add(sid)
            self._stream_event(sid, "open", side, now)
        if fin and (sid, sending) not in self._fin:
            self._fin.add((sid, sending))
            self._stream_event(sid, "data_sent" if sending else "size_known", side, now)

    def _stream_event(self, sid: int, new: str, side: str, now: float) -> None:
        if self.sink is not None:
            self.sink.event(STREAM_STATE_UPDATED, qe.stream_state_updated(sid, new, side), now)

    # ---- state compared at each packet -------------------------------------------------------
    def poll(self, now: float) -> None:
        """Log what changed since the last look (cheap once the handshake is confirmed)."""
        if (
            self._confirmed
            and self._keys.phase == self._phase
            and self._builder.peer_cid is self._peer_cid
            and self._paths.current is self._path
        ):
            return
        self._poll(now)

    def _poll(self, now: float) -> None:
        sink = self.sink
        if sink is None:
            return
        hs, keys, builder = self._hs, self._keys, self._builder
        self._keys_state(sink, now)
        if hs.complete and not self._complete:
            self._complete = True
            self._handshake_done(sink, now)
        if hs.confirmed and not self._confirmed:
            self._confirmed = True
            sink.event(
                CONNECTION_STATE_UPDATED, qe.connection_state_updated("handshake_confirmed"), now
            )
        if keys.phase != self._phase:
            self._phase = keys.phase
            if self._tapped is not None:
                self._tapped.phase = keys.phase  # (the tap compares its packets' with it)
            trigger = "remote_update" if getattr(keys, "remote_update", False) else "local_update"
            for is_client in (True, False):
                data = qe.key_event(is_client, 2, key_phase=keys.phase, trigger=trigger)
                sink.event(KEY_UPDATED, data, now)
        peer_cid = builder.peer_cid
        if peer_cid != self._peer_cid and peer_cid and self._peer_cid is not None:
            data = qe.connection_id_updated("remote", peer_cid, self._peer_cid or None)
            sink.event(CONNECTION_ID_UPDATED, data, now)
        self._peer_cid = peer_cid
        path = self._paths.current
        if path is not self._path:
            if self._path is not None and path.addr is not None:
                data = qe.tuple_assigned(
                    f"{path.addr[0]}:{path.addr[1]}/{path.local}", None, path.addr
                )
                sink.event(TUPLE_ASSIGNED, data, now)
            self._path = path

    def _keys_state(self, sink: TraceSink, now: float) -> None:
        """Keys installed (``tls``) and discarded since the last look."""
        seen, client = self._keys_seen, self.is_client
        for index, space in enumerate(self._spaces):
            level = _LEVEL[index]
            if level in self._discarded:
                continue
            if space.discarded:
                self._discarded.add(level)
                for is_client in (True, False):
                    sink.event(KEY_DISCARDED, qe.key_event(is_client, index, trigger="tls"), now)
                continue
            for own, key in ((True, space.tx), (False, space.rx)):
                which = (own, level)
                if key is not None and which not in seen:
                    seen.add(which)
                    data = qe.key_event(own == client, index, trigger="tls")
                    if index == 2:
                        data["key_phase"] = 0
                    sink.event(KEY_UPDATED, data, now)
        zero = self._keys.zero_rtt_tx if client else self._keys.zero_rtt_rx
        if zero is not None and (True, "0rtt") not in seen:
            seen.add((True, "0rtt"))
            sink.event(KEY_UPDATED, qe.key_event(True, "0rtt", trigger="tls"), now)
        elif zero is None and (True, "0rtt") in seen and "0rtt" not in self._discarded:
            self._discarded.add("0rtt")
            sink.event(KEY_DISCARDED, qe.key_event(True, "0rtt", trigger="tls"), now)

    def _handshake_done(self, sink: TraceSink, now: float) -> None:
        hs = self._hs
        sink.event(CONNECTION_STATE_UPDATED, qe.connection_state_updated("handshake_complete"), now)
        server_versions = () if self.is_client else hs.versions
        data = qe.version_information(hs.version, server_versions=server_versions)
        sink.event(VERSION_INFORMATION, data, now)
        if self.is_client:
            offered = self._conn_config.alpn
            offered = [offered] if isinstance(offered, str) else offered
            alpn = qe.alpn_information(hs.alpn, client_alpns=offered)
        else:
            alpn = qe.alpn_information(hs.alpn)
        sink.event(ALPN_INFORMATION, alpn, now)
        tls = hs.tls
        cipher = _suite_name(tls.cipher_suite) if tls is not None else None
        if not self.is_client:
            sink.event(PARAMETERS_SET, qe.parameters_set(hs.local_params, "local"), now)
        if hs.peer_params is not None:
            data = qe.parameters_set(hs.peer_params, "remote", tls_cipher=cipher)
            sink.event(PARAMETERS_SET, data, now)


_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}


def _suite_name(suite: int | None) -> str | None:
    return None if suite is None else _SUITES.get(suite, f"{suite:#06x}")
