"""What loss recovery hands the congestion controller: plain values (bytes acked, send times,
bytes in flight) that count only in-flight packets, and of acknowledged ones only those sent
outside the recovery period (RFC 9002 7.3.2, appendix B.5-B.8)."""

from __future__ import annotations

import math

import pytest

from quicish.proto.congestion import NewReno, create
from quicish.proto.packet_space import APPLICATION
from quicish.proto.records import SentPacket
from quicish.proto.recovery import LossRecovery
from quicish.proto.rtt import RttEstimator

MDS = 1200


class Recording(NewReno):
    """NewReno that records the plain values it is given."""

    def __init__(self) -> None:
        super().__init__(MDS)
        self.acks: list[tuple[int, float, float, int | None]] = []
        self.events: list[tuple[float, float]] = []

    def on_ack(
        self,
        acked_bytes: int,
        largest_sent_time: float,
        now: float,
        rtt: RttEstimator,
        prior_in_flight: int | None = None,
    ) -> None:
        self.acks.append((acked_bytes, largest_sent_time, now, prior_in_flight))
        super().on_ack(acked_bytes, largest_sent_time, now, rtt, prior_in_flight)

    def on_congestion_event(self, sent_time: float, now: float) -> bool:
        self.events.append((sent_time, now))
        return super().on_congestion_event(sent_time, now)


def make() -> tuple[LossRecovery, Recording]:
    cc = Recording()
    r = LossRecovery(cc, max_ack_delay=0.025)
    r.handshake_confirmed = True
    r.peer_completed_address_validation = True
    return r, cc


def send(r: LossRecovery, pn: int, t: float, size: int = MDS, in_flight: bool = True) -> SentPacket:
    pkt = SentPacket(pn, t, size, in_flight, in_flight, APPLICATION)
    r.on_packet_sent(pkt)
    return pkt


def test_ack_hands_over_bytes_newest_send_time_and_prior_in_flight() -> None:
    r, cc = make()
    send(r, 0, 0.00, 1000)
    send(r, 1, 0.01, 1100)
    for pn in range(2, 10):
        send(r, pn, 0.02)
    r.on_ack_received(APPLICATION, [(0, 2)], 0.0, 0.1)
    assert cc.acks == [(2100, 0.01, 0.1, 2100 + 8 * MDS)]
    assert cc.cwnd == 12000 + 2100  # slow start (and cwnd-limited): + bytes acked


def test_non_in_flight_packets_count_for_nothing() -> None:
    r, cc = make()
    send(r, 0, 0.0, in_flight=False)  # an ACK-only packet
    send(r, 1, 0.0)
    r.on_ack_received(APPLICATION, [(0, 1)], 0.0, 0.1)
    assert cc.acks == [(0, -math.inf, 0.1, MDS)]
    assert cc.cwnd == 12000
    # lost without being in flight: no congestion event either
    for pn in range(2, 6):
        send(r, pn, 0.2, in_flight=False)
    _, lost = r.on_ack_received(APPLICATION, [(5, 6), (1, 2)], 0.0, 0.3)
    assert [p.pn for p in lost] == [2]  # 3 below the largest acknowledged
    assert r.packets_lost == 0 and cc.events == [] and cc.congestion_events == 0
    assert cc.cwnd == 12000


def test_packets_sent_in_recovery_do_not_grow_the_window() -> None:
    r, cc = make()
    for pn in range(10):
        send(r, pn, 0.0)
    r.on_ack_received(APPLICATION, [(4, 5)], 0.0, 0.1)  # 0 and 1 lost: recovery from 0.1
    assert cc.recovery_start_time == 0.1
    window = cc.cwnd
    send(r, 10, 0.15)  # sent after recovery started
    cc.acks.clear()
    r.on_ack_received(APPLICATION, [(5, 11)], 0.0, 0.2)  # 2..3 lost too: same period
    assert cc.congestion_events == 1
    # Only pn 10 counts: 5..9 were sent before the recovery period started.
    assert cc.acks == [(MDS, 0.15, 0.2, 8 * MDS)]
    assert cc.cwnd == window  # congestion avoidance: MDS of a window's worth is no growth yet


def test_one_congestion_event_for_the_newest_lost_in_flight_packet() -> None:
    r, cc = make()
    send(r, 0, 1.0)
    send(r, 1, 1.9)
    send(r, 2, 2.0)
    send(r, 3, 2.05, in_flight=False)
    for pn in range(4, 7):
        send(r, pn, 2.1)
    r.on_ack_received(APPLICATION, [(6, 7)], 0.0, 2.5)  # 0..3 lost (pn threshold 3)
    assert cc.events == [(2.0, 2.5)]  # not 2.05: that one was not in flight
    assert cc.congestion_events == 1 and cc.recovery_start_time == 2.5


def test_ack_that_starts_recovery_counts_against_the_new_period() -> None:
    """A loss declared by the same ACK starts recovery first: what that ACK acknowledges
    was sent before it and does not grow the window (as when the controller saw packets)."""
    r, cc = make()
    for pn in range(6):
        send(r, pn, 0.0)
    r.on_ack_received(APPLICATION, [(3, 6)], 0.0, 0.1)  # pn 0..2 lost in the same ACK
    assert cc.congestion_events == 1
    assert cc.acks == [(0, -math.inf, 0.1, 6 * MDS)]
    assert cc.cwnd == 6000


def test_ecn_ce_in_the_ack_counts_against_the_new_period() -> None:
    r, cc = make()
    for pn in range(3):
        send(r, pn, 0.0)
    r.on_ack_received(APPLICATION, [(0, 3)], 0.0, 0.1, ecn_ce=1)
    assert cc.congestion_events == 1
    assert cc.acks == [(0, -math.inf, 0.1, 3 * MDS)]
    assert cc.cwnd == 6000


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_persistent_congestion_in_the_ack_counts_everything_acked(name: str) -> None:
    """Persistent congestion leaves recovery (start -inf): the packets this ACK
    acknowledges then grow the minimum window in slow start."""
    r = LossRecovery(create(name, MDS), max_ack_delay=0.0)
    r.handshake_confirmed = True
    r.peer_completed_address_validation = True
    send(r, 0, 0.0)
    r.on_ack_received(APPLICATION, [(0, 1)], 0.0, 0.1)  # first RTT sample: 0.1
    for pn in range(1, 6):
        send(r, pn, 0.2 + pn)  # ack-eliciting, seconds apart: longer than the period
    send(r, 6, 6.0)
    r.on_ack_received(APPLICATION, [(6, 7)], 0.0, 6.2)  # 1..5 lost: persistent congestion
    assert r.persistent_congestion_events == 1
    assert r.cc.recovery_start_time == -math.inf
    assert r.cc.cwnd == 2 * MDS + MDS  # the minimum window, then + pn 6 in slow start
