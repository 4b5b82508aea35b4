"""Pacer (RFC 9002 section 7.7): rate N * cwnd / smoothed_rtt, small bursts, virtual clock."""

from __future__ import annotations

import pytest

from quicish.proto.pacing import PACING_GAIN, Pacer

MDS = 1200


def drain(p: Pacer, now: float) -> int:
    """Send full-size packets while the pacer allows at ``now``; returns how many."""
    sent = 0
    while p.next_send_time(now) is None:
        p.on_packet_sent(MDS, now)
        sent += 1
        assert sent < 10_000
    return sent


def test_unpaced_without_rate() -> None:
    p = Pacer(MDS)
    assert p.rate == 0.0
    for _ in range(100):
        assert p.next_send_time(0.0) is None
        p.on_packet_sent(MDS, 0.0)
    p.update(12000, 0.0)  # no RTT: no pacing
    assert p.next_send_time(0.0) is None


def test_rate_and_first_burst() -> None:
    p = Pacer(MDS)
    p.update(12000, 0.1)
    assert p.rate == pytest.approx(PACING_GAIN * 12000 / 0.1)  # 150 kB/s
    assert p.capacity == 10 * MDS
    assert drain(p, 0.0) == 10  # a burst of 10 packets
    wait = p.next_send_time(0.0)
    assert wait == pytest.approx(MDS / p.rate)  # 8 ms
    assert p.next_send_time(0.004) == pytest.approx(MDS / p.rate)  # still the same deadline
    assert wait is not None
    assert drain(p, wait) == 1
    assert drain(p, wait) == 0


def test_average_rate_over_time() -> None:
    p = Pacer(MDS)
    p.update(60000, 0.05)  # 1.25 * 60000 / 0.05 = 1.5 MB/s
    now = 0.0
    sent = 0
    while now < 1.0:
        sent += drain(p, now)
        nxt = p.next_send_time(now)
        assert nxt is not None and nxt > now
        now = nxt
    # one second of rate plus the initial burst, within a packet
    assert sent * MDS == pytest.approx(p.rate * 1.0 + p.capacity, abs=2 * MDS)


def test_idle_refills_only_one_burst() -> None:
    p = Pacer(MDS)
    p.update(120000, 0.1)
    drain(p, 0.0)
    assert drain(p, 100.0) == p.capacity // MDS


def test_burst_grows_with_rate_but_stays_bounded() -> None:
    p = Pacer(MDS, burst_packets=10, burst_interval=0.001, max_burst_packets=64)
    p.update(12000, 0.1)
    assert p.capacity == 10 * MDS  # low rate: minimum burst
    p.update(4_000_000, 0.1)  # 50 MB/s -> 50 kB per millisecond = 41 packets
    assert p.capacity == pytest.approx(p.rate * 0.001)
    p.update(100_000_000, 0.01)  # 12.5 GB/s -> capped
    assert p.capacity == 64 * MDS


def test_slow_start_gain() -> None:
    p = Pacer(MDS)
    p.update(12000, 0.1, slow_start=True)
    assert p.rate == pytest.approx(2.0 * 12000 / 0.1)
    p.update(12000, 0.1)
    assert p.rate == pytest.approx(1.25 * 12000 / 0.1)


def test_update_shrinks_tokens_to_capacity() -> None:
    p = Pacer(MDS, burst_packets=10)
    p.update(40_000_000, 0.1)  # large burst allowed
    assert p.next_send_time(0.0) is None
    big = p.tokens
    p.update(12000, 0.1)
    assert p.tokens <= p.capacity < big


def test_probes_borrow_at_most_one_burst() -> None:
    p = Pacer(MDS)
    p.update(12000, 0.1)
    for _ in range(100):  # sent regardless of the pacer (e.g. PTO probes)
        p.on_packet_sent(MDS, 0.0)
    assert p.tokens == -p.capacity
    wait = p.next_send_time(0.0)
    assert wait == pytest.approx((p.capacity + MDS) / p.rate)


def test_small_packets() -> None:
    p = Pacer(MDS)
    p.update(12000, 0.1)
    drain(p, 0.0)
    assert p.next_send_time(0.0, size=100) == pytest.approx(100 / p.rate)
    assert p.next_send_time(100 / p.rate, size=100) is None


@pytest.mark.parametrize("mbit", [50, 1500])
def test_following_a_rate_wakes_once_a_millisecond_at_the_same_rate(mbit: int) -> None:
    """A controller's rate (BBR): a waiting sender is woken when a millisecond of tokens
    (at most a burst) is in the bucket, not for every packet, and one second still carries
    the rate (plus the first bucket)."""
    p = Pacer(MDS)
    p.set_rate(mbit * 1e6 / 8)
    assert p.wake_tokens == pytest.approx(min(p.rate * 0.001, p.max_burst_packets * MDS))
    now, sent, wakes = 0.0, 0, 0
    while now < 1.0:
        sent += drain(p, now)
        nxt = p.next_send_time(now)
        assert nxt is not None and nxt > now
        now, wakes = nxt, wakes + 1
    # (within one wake's worth: the tokens of the last one)
    assert sent * MDS == pytest.approx(p.rate * 1.0 + p.capacity, abs=p.wake_tokens + MDS)
    packets_per_wake = int(p.wake_tokens // MDS)
    assert packets_per_wake >= 5
    assert wakes == pytest.approx(sent / packets_per_wake, rel=0.2)
    # From a window (CUBIC) a waiting sender is woken for the next packet, as before.
    p.update(60000, 0.05)
    assert p.wake_tokens == 0.0
    drain(p, now)
    wait = p.next_send_time(now)
    assert wait is not None and wait - now == pytest.approx((MDS - p.tokens) / p.rate)


@pytest.mark.parametrize("mbit", [1000, 2500])
def test_following_a_fast_rate_keeps_the_time_a_late_timer_missed(mbit: int) -> None:
    """Above a GSO burst per millisecond (a loopback's rate): a sender whose timer fires on
    the next 1 ms tick, or later still, finds the time it missed in the bucket and keeps the
    rate; a wake-up still lets out at most one burst's worth before the sender waits."""
    p = Pacer(MDS)
    p.set_rate(mbit * 1e6 / 8)
    assert p.wake_tokens <= p.max_burst_packets * MDS
    now, sent, late = 0.0, 0, [0.001, 0.002, 0.003]
    drain(p, now)  # the first bucket
    for i in range(300):
        nxt = p.next_send_time(now)
        assert nxt is not None
        now = (int(nxt * 1000) + 1) / 1000 + late[i % 3]  # a tick late, and busier still
        p.on_packet_sent(MDS, now)  # (an ACK's packet, say: the bucket is refilled to now)
        p.set_rate(mbit * 1e6 / 8)  # an ACK sets the rate again: what the bucket kept stays
        sent += 1 + drain(p, now)
    assert sent * MDS == pytest.approx(p.rate * now, rel=0.03)
