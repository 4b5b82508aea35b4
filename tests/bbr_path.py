"""A packet-level model of one bottleneck for driving a packet-aware controller (BBR) without
connections: the sender sends full-size packets while the window and its pacing rate allow,
the bottleneck serialises them at ``rate`` bytes/s behind a drop-tail queue of ``queue``
bytes, and every packet that gets through is acknowledged one base RTT after it left the
bottleneck. A dropped (or randomly lost) packet is declared lost when the packet sent after
it is acknowledged, as packet-threshold loss detection would. ``ack_jitter`` delays each ACK
by up to that many seconds (uniform; ACKs keep their order, so a delayed one holds those
behind it: clumps), as a relay or a receiver sharing a loaded CPU does. Deterministic
(seeded)."""

from __future__ import annotations

import heapq
import random

from quicish.proto.congestion.base import CongestionController
from quicish.proto.pacing import Pacer
from quicish.proto.records import SentPacket
from quicish.proto.rtt import RttEstimator

MDS = 1200


class BottleneckPath:
    def __init__(
        self,
        cc: CongestionController,
        rate: float,
        rtt: float,
        queue: int,
        loss: float = 0.0,
        seed: int = 1,
    ) -> None:
        self.cc, self.rate, self.base_rtt, self.queue = cc, rate, rtt, queue
        self.loss = loss
        self.rng = random.Random(seed)
        self.rtt = RttEstimator()
        self.pacer = Pacer(MDS)
        self.now = 0.0
        self.pn = 0
        self.in_flight = 0
        self.link_free = 0.0
        self.events: list[tuple[float, int, bool, SentPacket]] = []  # (time, pn, acked, pkt)
        self.pending_loss: list[SentPacket] = []
        self.delivered_bytes = 0
        self.lost_packets = 0
        self.inflight_trace: list[tuple[float, int, int]] = []  # (time, in flight, cwnd)
        self.app_limited_until: float | None = None  # send nothing before this time
        self.standing_queue = 0.0  # seconds of another flow's queue ahead of every packet
        self.queue_delays: list[tuple[float, float]] = []  # (send time, seconds queued)
        self.ack_jitter = 0.0
        self._jitter_rng = random.Random(seed + 1)
        self._last_ack_at = 0.0

    def _send(self) -> None:
        pkt = SentPacket(self.pn, self.now, MDS, True, True, 2)
        self.pn += 1
        self.in_flight += MDS
        self.cc.on_sent_packet(pkt, self.in_flight)
        self.pacer.on_packet_sent(MDS, self.now)
        backlog = max(0.0, self.link_free - self.now) * self.rate
        if backlog + MDS > self.queue or (self.loss and self.rng.random() < self.loss):
            self.pending_loss.append(pkt)
            return
        self.queue_delays.append((self.now, backlog / self.rate))
        self.link_free = max(self.now, self.link_free) + MDS / self.rate
        ack_at = self.link_free + self.base_rtt + self.standing_queue
        if self.ack_jitter:
            ack_at += self._jitter_rng.uniform(0.0, self.ack_jitter)
            ack_at = self._last_ack_at = max(ack_at, self._last_ack_at)
        heapq.heappush(self.events, (ack_at, pkt.pn, True, pkt))

    def _fill(self) -> float | None:
        """Send what may go now; the next pacing release time, if paced."""
        if self.app_limited_until is not None and self.now < self.app_limited_until:
            if self.in_flight + MDS <= self.cc.cwnd:
                self.cc.on_app_limited(self.in_flight)
            return None
        while self.in_flight + MDS <= self.cc.cwnd:
            release = self.pacer.next_send_time(self.now)
            if release is not None:
                return release
            self._send()
        return None

    def _ack(self, pkt: SentPacket) -> None:
        prior = self.in_flight
        self.in_flight -= MDS
        self.delivered_bytes += MDS
        self.rtt.update(self.now - pkt.sent_time, 0.0, self.now)
        lost = [p for p in self.pending_loss if p.pn < pkt.pn]
        if lost:
            self.pending_loss = [p for p in self.pending_loss if p.pn > pkt.pn]
            self.in_flight -= MDS * len(lost)
            self.lost_packets += len(lost)
            self.cc.on_packets_lost(lost, self.now, self.in_flight)
        self.cc.on_packets_acked([pkt], self.now, self.rtt, prior, self.in_flight)
        rate = self.cc.pacing_rate
        if rate is None:
            self.pacer.update(self.cc.cwnd, self.rtt.smoothed_rtt, self.cc.in_slow_start)
        else:
            self.pacer.set_rate(rate)

    def run(self, until: float) -> None:
        while self.now < until:
            release = self._fill()
            self.inflight_trace.append((self.now, self.in_flight, self.cc.cwnd))
            nxt = self.events[0][0] if self.events else None
            if release is not None and (nxt is None or release < nxt):
                self.now = release
                continue
            idle_end = self.app_limited_until
            if idle_end is not None and self.now < idle_end and (nxt is None or idle_end < nxt):
                self.now = idle_end
                continue
            if nxt is None:
                break
            self.now = nxt
            while self.events and self.events[0][0] <= self.now:
                _, _, _, pkt = heapq.heappop(self.events)
                self._ack(pkt)
