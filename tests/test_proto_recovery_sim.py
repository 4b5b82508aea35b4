"""Recovery + congestion control + pacing driving a simulated bottleneck (virtual time).

A bulk sender (always has data; lost data goes out again in new packets) talks through a
link with a rate, a drop-tail queue, propagation delay, random loss and an optional blackout
to a receiver that acknowledges every second packet (or after max_ack_delay) with ACK frames
of up to 32 ranges. Checks utilisation, that every packet gets a verdict, and recovery after
a blackout.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

import pytest

from quicish.proto.congestion import create
from quicish.proto.pacing import Pacer
from quicish.proto.packet_space import APPLICATION
from quicish.proto.records import SentPacket
from quicish.proto.recovery import LossRecovery

MDS = 1200


@dataclass
class Result:
    delivered: int = 0  # bytes acknowledged
    lost: int = 0  # packets declared lost
    sent: int = 0
    ptos: int = 0
    persistent_congestion: int = 0
    cwnd_trace: list[tuple[float, int]] = field(default_factory=list)
    acked_pns: set[int] = field(default_factory=set)
    lost_pns: set[int] = field(default_factory=set)


def simulate(
    cc_name: str,
    *,
    rate: float = 1_250_000.0,  # bytes/s (10 Mbit/s)
    delay: float = 0.015,  # one way
    queue: int = 25,
    loss: float = 0.0,
    ack_loss: float = 0.0,
    duration: float = 10.0,
    blackout: tuple[float, float] | None = None,
    seed: int = 7,
) -> Result:
    rng = random.Random(seed)
    cc = create(cc_name, MDS)
    rec = LossRecovery(cc, max_ack_delay=0.025)
    rec.handshake_confirmed = True
    rec.peer_completed_address_validation = True
    pacer = Pacer(MDS)
    res = Result()
    events: list[tuple[float, int, str, object]] = []
    seq = 0

    def push(t: float, kind: str, data: object = None) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, data))

    link_free = 0.0
    departures: deque[float] = deque()
    received: list[list[int]] = []  # receiver: ascending [start, stop) ranges, at most 32
    unacked_count = 0
    ack_timer_armed = False
    next_pn = 0
    probes = 0
    wake_at: float | None = None

    def link_send(pn: int, now: float) -> None:
        nonlocal link_free
        while departures and departures[0] <= now:
            departures.popleft()
        if len(departures) >= queue:
            return  # tail drop
        depart = max(now, link_free) + MDS / rate
        link_free = depart
        departures.append(depart)
        if blackout and blackout[0] <= depart < blackout[1]:
            return
        if rng.random() < loss:
            return
        push(depart + delay, "arrive", pn)

    def ack_frame() -> list[tuple[int, int]]:
        return [(r[0], r[1]) for r in reversed(received)]

    def send_ack(now: float) -> None:
        nonlocal unacked_count
        unacked_count = 0
        frame = ack_frame()
        if blackout and blackout[0] <= now < blackout[1]:
            return
        if ack_loss and rng.random() < ack_loss:
            return
        push(now + delay, "ack", frame)

    def try_send(now: float) -> None:
        nonlocal next_pn, probes, wake_at
        while True:
            probe = probes > 0
            if not probe:
                if not cc.can_send(rec.bytes_in_flight):
                    return
                pacer.update(cc.cwnd, rec.rtt.smoothed_rtt, cc.in_slow_start)
                t = pacer.next_send_time(now)
                if t is not None:
                    if wake_at is None or wake_at <= now or t < wake_at:
                        wake_at = t
                        push(t, "wake")
                    return
            else:
                probes -= 1
            pkt = SentPacket(next_pn, now, MDS, True, True, APPLICATION)
            rec.on_packet_sent(pkt)
            cc.on_packet_sent(MDS, now)
            pacer.on_packet_sent(MDS, now)
            res.sent += 1
            link_send(next_pn, now)
            next_pn += 1

    timer_at: float | None = None

    def arm_timer() -> None:
        nonlocal timer_at
        deadline = rec.loss_detection_deadline()
        if deadline is not None and deadline != timer_at:
            timer_at = deadline
            push(deadline, "timer")

    now = 0.0
    try_send(now)
    arm_timer()
    while events:
        now, _, kind, data = heapq.heappop(events)
        if now > duration:
            break
        if kind == "arrive":
            assert isinstance(data, int)
            # packets arrive in order on this link (it never reorders)
            if received and received[-1][1] == data:
                received[-1][1] = data + 1
            else:
                received.append([data, data + 1])
                if len(received) > 32:
                    del received[0]
            unacked_count += 1
            if unacked_count >= 2:
                send_ack(now)
            elif not ack_timer_armed:
                ack_timer_armed = True
                push(now + 0.025, "ack_timer")
        elif kind == "ack_timer":
            ack_timer_armed = False
            if unacked_count:
                send_ack(now)
        elif kind == "ack":
            assert isinstance(data, list)
            acked, lost = rec.on_ack_received(APPLICATION, data, 0.0, now)
            for p in acked:
                assert p.pn not in res.acked_pns and p.pn not in res.lost_pns
                res.acked_pns.add(p.pn)
                res.delivered += p.size
            for p in lost:
                assert p.pn not in res.acked_pns and p.pn not in res.lost_pns
                res.lost_pns.add(p.pn)
            res.lost += len(lost)
            res.cwnd_trace.append((now, cc.cwnd))
        elif kind == "timer":
            if timer_at is not None and now >= timer_at:
                timer_at = None
                lost, probe_space = rec.on_timeout(now)
                for p in lost:
                    res.lost_pns.add(p.pn)
                res.lost += len(lost)
                if probe_space is not None:
                    assert probe_space == APPLICATION
                    res.ptos += 1
                    probes = 2
        elif kind == "wake":
            wake_at = None
        try_send(now)
        arm_timer()
    res.persistent_congestion = rec.persistent_congestion_events
    # bookkeeping: every sent packet is acked, lost or still outstanding -- never two of them
    outstanding = {p.pn for p in rec.outstanding(APPLICATION)}
    assert not (outstanding & res.acked_pns) and not (outstanding & res.lost_pns)
    assert len(outstanding) + len(res.acked_pns) + len(res.lost_pns) == res.sent
    assert rec.bytes_in_flight == MDS * len(outstanding)
    return res


@pytest.mark.parametrize("cc_name", ["cubic", "newreno"])
def test_bulk_transfer_fills_the_link(cc_name: str) -> None:
    res = simulate(cc_name, duration=10.0)
    goodput = res.delivered / 10.0
    assert goodput > 0.8 * 1_250_000, goodput
    assert res.persistent_congestion == 0
    assert res.lost > 0  # the queue overflowed at least once (loss-based controllers)


@pytest.mark.parametrize("cc_name", ["cubic", "newreno"])
def test_bulk_transfer_with_random_loss(cc_name: str) -> None:
    res = simulate(cc_name, loss=0.01, duration=10.0)
    goodput = res.delivered / 10.0
    assert goodput > 0.25 * 1_250_000, goodput
    assert res.lost > 50


@pytest.mark.parametrize("cc_name", ["cubic", "newreno"])
def test_blackout_recovers_through_pto(cc_name: str) -> None:
    res = simulate(cc_name, duration=10.0, blackout=(3.0, 5.0))
    assert res.ptos >= 3  # exponential backoff through a 2-second outage
    assert res.persistent_congestion >= 1
    before = [cwnd for t, cwnd in res.cwnd_trace if t < 3.0]
    after = [cwnd for t, cwnd in res.cwnd_trace if t > 5.0]
    # The window collapsed to the minimum, then (appendix B order: OnPacketsLost before
    # OnPacketsAcked) grew in slow start by what that same ACK newly acknowledged: packets
    # that arrived just before the outage and whose ACKs the outage ate.
    assert after[0] <= before[-1] / 2
    acks_after = sum(1 for t, _ in res.cwnd_trace if t > 6.0)
    assert acks_after > 100  # acks keep flowing after the link came back
    assert max(after) > after[0]  # and the window grew again


@pytest.mark.parametrize("cc_name", ["cubic", "newreno"])
def test_lost_acks_are_covered_by_later_ranges(cc_name: str) -> None:
    res = simulate(cc_name, ack_loss=0.3, duration=5.0)
    assert res.delivered / 5.0 > 0.75 * 1_250_000
    assert res.ptos == 0
