"""The bulk send path: a burst of full 1-RTT STREAM packets in one C call.

While the packet builder's lean path holds (``PacketBuilder.lean_ready``) and one stream
alone has new data to send, every packet is the same shape: a short header and one STREAM
frame filling the datagram. ``PacketProtector.seal_stream_burst`` (``native/burst.c``, or
the pure twin) plans, writes and seals a run of them at once, stopping where the window,
the pacer, the data, the datagram count or the next skipped packet number would, and
returns the packets with each one's data length. This module then records them as the
lean builder records each of its packets (recovery, congestion control, pacer, idle
timer, counters): the same packets and the same state as packet after packet would give.
With a qlog file as the trace's only sink (``Trace.bulk``), the burst is then logged in
one call, each packet as the lean builder logs it (``Trace.burst_sent``, the C ``QlogTap``
in its place: the records written from the lists the sealer returned). A
packet-aware controller (BBR) gets its per-packet stamps through recovery, as from the lean
builder. Anything else (lost data, a limit reached, a short last packet, several streams,
another tracer) stays with the lean builder.
"""

from __future__ import annotations

from typing import Protocol

from .congestion.base import CongestionController
from .idle import IdleTimer
from .keys import KeyState
from .pacing import Pacer
from .packet_space import APPLICATION, PacketSpace
from .path import Address, PathManager
from .records import SentPacket, StreamRecord, new_record
from .recovery import LossRecovery
from .stats import ConnectionStats
from .stream_manager import StreamManager
from .trace import Trace

_SPIN_BIT = 0x20
_KEY_PHASE_BIT = 0x04


class BurstHeader(Protocol):
    """What a burst reads of the packet builder each time (it may change between bursts)."""

    @property
    def peer_cid(self) -> bytes: ...
    @property
    def spin(self) -> bool: ...
    @property
    def max_datagram_size(self) -> int: ...
    @property
    def cc(self) -> CongestionController: ...
    @property
    def trace(self) -> Trace | None: ...


class StreamBurst:
    """A connection's bulk send path (made by the packet builder at its first lean burst)."""

    __slots__ = ("_idle", "_keys", "_pacer", "_paths", "_recovery", "_space", "_stats", "_streams")

    def __init__(
        self,
        space: PacketSpace,
        streams: StreamManager,
        recovery: LossRecovery,
        pacer: Pacer,
        keys: KeyState,
        paths: PathManager,
        idle: IdleTimer,
        stats: ConnectionStats,
    ) -> None:
        self._space = space
        self._streams = streams
        self._recovery = recovery
        self._pacer = pacer
        self._keys = keys
        self._paths = paths
        self._idle = idle
        self._stats = stats

    def fill(
        self,
        b: BurstHeader,
        out: list[tuple[bytes, Address]],
        addr: Address,
        now: float,
        max_count: int,
    ) -> int:
        """Append up to ``max_count`` full STREAM packets to ``out``; how many (0: the
        lean builder decides the next packet)."""
        cc = b.cc
        trace = b.trace
        if trace is not None and trace.bulk is None:
            return 0
        streams = self._streams
        stream = streams.lone_stream()
        if stream is None:
            return 0
        send = stream.send
        assert send is not None
        credit = streams.send_credit
        span = send.burst_span(credit.limit - credit.used)
        if span is None:
            return 0
        recovery = self._recovery
        in_flight = recovery.bytes_in_flight
        if in_flight >= cc.cwnd:
            return 0
        pacer = self._pacer
        if pacer.next_send_time(now) is not None:
            return 0
        paced = None
        if pacer.rate > 0.0:
            capacity = pacer.capacity
            need = float(pacer.max_datagram_size)
            paced = (pacer.tokens, need if need <= capacity else capacity, capacity, pacer.rate)
        space = self._space
        tx = space.tx
        assert tx is not None
        first = 0x40 | (_SPIN_BIT if b.spin else 0) | (_KEY_PHASE_BIT if self._keys.phase else 0)
        offset, data, final_size = span
        pn = space.next_pn
        sid = stream.stream_id
        packets, lengths, tokens = tx.seal_stream_burst(
            b.peer_cid, first, pn, recovery.largest_acked(APPLICATION), space.skip_pn,
            b.max_datagram_size, sid, offset, data, final_size, in_flight, cc.cwnd, paced,
            now, max_count,
        )  # fmt: skip
        n = len(packets)
        if not n:
            return 0
        space.next_pn = pn + n
        total = 0
        sent = []
        for packet, length in zip(packets, lengths, strict=True):
            size = len(packet)
            stop = offset + length
            record = new_record(StreamRecord, (sid, offset, length, stop == final_size))
            sent.append(SentPacket(pn, now, size, True, True, APPLICATION, [record]))
            out.append((packet, addr))
            total += size
            offset = stop
            pn += 1
        recovery.on_packets_sent(APPLICATION, sent)
        if trace is not None:  # (the qlog file's: the burst's packets, as the lean builder's)
            trace.burst_sent(now, pn - n, sid, span[0], final_size, packets, lengths)
        send.on_burst_sent(offset, n)
        credit.used += offset - span[0]
        cc.on_packet_sent(total, now)
        if paced is not None:
            pacer.tokens = tokens
        pacer.updated_at = now
        idle = self._idle
        if idle.restart_pending:  # (IdleTimer.on_eliciting_sent inlined)
            idle.last_activity = now
            idle.restart_pending = False
        stats = self._stats
        stats.packets_sent += n
        stats.datagrams_sent += n
        stats.bytes_sent += total
        self._paths.current.bytes_sent += total
        return n
