"""NewReno (RFC 9002 section 7 / appendix B) and CUBIC (RFC 9438, HyStart++ RFC 9406).

The controllers take plain values (bytes acked, send times, bytes in flight); which packets
those values count (in flight, sent outside the recovery period, the newest lost one) is
loss recovery's part, tested in test_proto_recovery_cc.py."""

from __future__ import annotations

import math

import pytest

from quicish.errors import ConfigError
from quicish.proto.congestion import Bbr, CongestionController, Cubic, NewReno, create
from quicish.proto.congestion.cubic import CUBIC_ALPHA, CUBIC_BETA, CUBIC_C
from quicish.proto.rtt import RttEstimator

MDS = 1200


def rtt_of(srtt: float) -> RttEstimator:
    rtt = RttEstimator()
    rtt.update(srtt, 0.0, 0.0)
    return rtt


def ack(
    cc: CongestionController,
    now: float,
    sent_time: float,
    count: int = 1,
    rtt: RttEstimator | None = None,
    limited: bool = True,
) -> None:
    """Ack ``count`` full-size packets sent at ``sent_time`` (outside the recovery period,
    as loss recovery counts them); cwnd-limited unless told."""
    assert not cc.in_recovery(sent_time)
    prior = cc.cwnd if limited else 0
    cc.on_ack(count * MDS, sent_time, now, rtt or rtt_of(0.1), prior_in_flight=prior)


# ---- factory and shared behaviour ------------------------------------------------------------


def test_create_by_name() -> None:
    assert isinstance(create("newreno", MDS), NewReno)
    assert isinstance(create("reno", MDS), NewReno)
    assert isinstance(create("cubic", MDS), Cubic)
    assert isinstance(create("CUBIC", MDS), Cubic)
    assert isinstance(create("bbr", MDS), Bbr)
    with pytest.raises(ConfigError):
        create("vegas", MDS)


@pytest.mark.parametrize(
    ("mds", "initial"), [(1200, 12000), (1472, 14720), (1500, 14720), (9000, 18000)]
)
@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_initial_and_minimum_window(name: str, mds: int, initial: int) -> None:
    cc = create(name, mds)
    assert cc.cwnd == initial
    assert cc.minimum_window == 2 * mds
    assert cc.ssthresh == math.inf
    assert cc.in_slow_start


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_can_send(name: str) -> None:
    cc = create(name, MDS)
    assert cc.can_send(0)
    assert cc.can_send(12000 - MDS)
    assert not cc.can_send(12000 - MDS + 1)
    assert cc.can_send(11900, size=100)
    assert cc.available(11000) == 1000
    assert cc.available(13000) == 0


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_slow_start_grows_by_acked_bytes(name: str) -> None:
    cc = create(name, MDS)
    ack(cc, 0.1, 0.0, count=3)
    assert cc.cwnd == 12000 + 3 * MDS
    # no bytes that count (only non-in-flight packets acked): no growth
    cc.on_ack(0, 0.0, 0.2, rtt_of(0.1), prior_in_flight=cc.cwnd)
    assert cc.cwnd == 12000 + 3 * MDS


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_app_limited_does_not_grow(name: str) -> None:
    cc = create(name, MDS)
    ack(cc, 0.1, 0.0, count=3, limited=False)
    assert cc.cwnd == 12000
    # half the window in use counts as cwnd-limited in slow start
    cc.on_ack(MDS, 0.0, 0.2, rtt_of(0.1), prior_in_flight=6000)
    assert cc.cwnd == 12000 + MDS
    assert not cc.is_cwnd_limited(5000)


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_one_reduction_per_recovery_period(name: str) -> None:
    cc = create(name, MDS)
    factor = 0.5 if name == "newreno" else CUBIC_BETA
    cc.on_congestion_event(1.0, now=2.0)
    first = int(12000 * factor)
    assert cc.cwnd == first
    assert cc.recovery_start_time == 2.0
    assert cc.in_recovery(1.5) and cc.in_recovery(2.0) and not cc.in_recovery(2.01)
    assert not cc.on_congestion_event(2.0, now=2.5)  # sent before recovery started
    assert cc.cwnd == first
    assert cc.congestion_events == 1
    cc.on_congestion_event(2.1, now=3.0)  # sent after: a new period
    assert cc.congestion_events == 2
    assert cc.cwnd == int(first * factor)


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_window_never_below_minimum(name: str) -> None:
    cc = create(name, MDS)
    for i in range(20):
        cc.on_congestion_event(float(i) + 0.5, now=float(i + 1))
    assert cc.cwnd == 2 * MDS
    assert cc.congestion_events == 20


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_persistent_congestion(name: str) -> None:
    cc = create(name, MDS)
    ack(cc, 0.1, 0.0, count=20)
    cc.on_congestion_event(0.5, now=1.0)
    ssthresh = cc.ssthresh
    cc.on_persistent_congestion()
    assert cc.cwnd == 2 * MDS
    assert cc.recovery_start_time == -math.inf
    assert cc.ssthresh == ssthresh
    assert cc.persistent_congestion_events == 1
    # slow start again from the minimum window, even for packets sent before
    ack(cc, 1.1, 0.9, count=1)
    assert cc.cwnd == 3 * MDS


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_ecn_ce_is_a_congestion_event(name: str) -> None:
    cc = create(name, MDS)
    assert cc.on_ecn_ce(0.5, 1.0)
    assert cc.congestion_events == 1
    assert not cc.on_ecn_ce(0.9, 1.1)  # same recovery period
    assert cc.cwnd < 12000


# ---- NewReno ------------------------------------------------------------------------------


def test_newreno_congestion_avoidance_one_packet_per_window() -> None:
    cc = NewReno(MDS)
    cc.on_congestion_event(0.0, now=0.1)
    assert (cc.cwnd, cc.ssthresh) == (6000, 6000)
    # 5 packets (one window) acked: + 1 packet
    for i in range(4):
        ack(cc, 1.0 + i, 0.5 + i)
        assert cc.cwnd == 6000
    ack(cc, 5.0, 4.5)
    assert cc.cwnd == 7200
    # the next window is 6 packets
    ack(cc, 6.0, 5.5, count=5)
    assert cc.cwnd == 7200
    ack(cc, 7.0, 6.5)
    assert cc.cwnd == 8400


def test_newreno_slow_start_stops_at_ssthresh() -> None:
    cc = NewReno(MDS)
    cc.on_congestion_event(0.0, now=0.1)  # ssthresh 6000
    cc.on_persistent_congestion()  # cwnd 2400, slow start up to 6000
    ack(cc, 1.0, 0.5, count=5)  # 3600 bytes reach ssthresh, 2400 count for CA
    assert cc.cwnd == 6000
    assert not cc.in_slow_start
    ack(cc, 1.1, 0.5, count=2)  # 4800 of the 6000 needed
    assert cc.cwnd == 6000
    ack(cc, 1.2, 0.5, count=1)
    assert cc.cwnd == 7200


def test_newreno_loss_halves() -> None:
    cc = NewReno(MDS)
    ack(cc, 0.1, 0.0, count=10)
    assert cc.cwnd == 24000
    cc.on_congestion_event(0.05, now=0.2)
    assert cc.ssthresh == 12000
    assert cc.cwnd == 12000


# ---- CUBIC ----------------------------------------------------------------------------------


def _cubic_after_loss(window_packets: int, fast_convergence: bool = True) -> Cubic:
    cc = Cubic(MDS, hystart=False, fast_convergence=fast_convergence)
    if window_packets > 10:
        ack(cc, 0.05, 0.0, count=window_packets - 10)
    assert cc.cwnd == window_packets * MDS
    cc.on_congestion_event(0.06, now=0.1)
    return cc


def test_cubic_multiplicative_decrease() -> None:
    cc = _cubic_after_loss(100)
    assert cc.w_max == 100 * MDS
    assert cc.cwnd == int(100 * MDS * CUBIC_BETA)
    assert cc.ssthresh == cc.cwnd
    assert cc.cwnd_prior == 100 * MDS


def test_cubic_k_and_first_increment_follow_formulas() -> None:
    cc = _cubic_after_loss(1000)
    w0 = cc.cwnd
    rtt = rtt_of(0.1)
    ack(cc, 1.0, 0.5, rtt=rtt)  # the first ACK in congestion avoidance starts the epoch
    k: float = ((1000 * MDS - w0) / (CUBIC_C * MDS)) ** (1 / 3)
    assert cc.k == pytest.approx(k)
    assert k == pytest.approx((1000 * (1 - CUBIC_BETA) / CUBIC_C) ** (1 / 3))
    assert cc.t_epoch == 1.0

    def w_cubic(t: float) -> float:
        d = t - k
        return CUBIC_C * MDS * d * d * d + 1000 * MDS

    assert cc.w_cubic(0.0) == pytest.approx(w0)
    # t = 0: W_cubic(0) = cwnd_epoch < W_est, so the Reno-friendly estimate wins
    w_est = w0 + CUBIC_ALPHA * MDS * MDS / w0
    assert cc._w == pytest.approx(w_est)
    # t = 2 s later W_cubic is far above W_est: concave growth toward W_cubic(t + RTT)
    w = cc._w
    ack(cc, 3.0, 2.5, rtt=rtt)
    assert w_cubic(2.0) > cc.w_est
    target = min(max(w_cubic(2.1), w), 1.5 * w)
    assert cc._w == pytest.approx(w + (target - w) * MDS / w)
    assert cc.cwnd == int(cc._w)


def test_cubic_window_tracks_w_cubic_over_time() -> None:
    cc = _cubic_after_loss(1000)
    srtt = 0.1
    rtt = rtt_of(srtt)
    now = 1.0
    ack(cc, now, now - srtt, rtt=rtt)
    assert cc.t_epoch is not None
    epoch = cc.t_epoch
    k = cc.k
    checked = 0
    while now < epoch + 2 * k:
        # one round trip: the whole window acked in 20 even ACKs
        step = srtt / 20
        per_ack = max(1, cc.cwnd // MDS // 20)
        for _ in range(20):
            now += step
            ack(cc, now, now - srtt, count=per_ack, rtt=rtt)
        t = now - epoch
        expected = cc.w_cubic(t)
        if t > 1.0:
            assert abs(cc.cwnd - expected) / expected < 0.02, (t, cc.cwnd, expected)
            checked += 1
        assert cc.cwnd <= cc.w_cubic(t + srtt) + MDS
    assert checked > 100
    # concave then plateau near W_max at t = K, convex after
    assert cc.cwnd > 1000 * MDS


def test_cubic_reno_friendly_region() -> None:
    cc = _cubic_after_loss(10)  # small window: Reno-friendly growth dominates
    w0 = cc.cwnd
    assert w0 == 8400
    rtt = rtt_of(0.1)
    ack(cc, 1.0, 0.9, rtt=rtt)
    w_est = w0 + CUBIC_ALPHA * MDS * MDS / w0
    assert cc.w_est == pytest.approx(w_est)
    assert cc.w_cubic(0.0) == pytest.approx(w0) and cc.w_cubic(0.0) < w_est
    assert cc._w == pytest.approx(w_est)  # cwnd set to W_est
    # keep acking one packet at a time for a while, all the same instant: W_cubic stays put,
    # W_est grows by alpha per window until it passes cwnd_prior, then by 1 per window
    for _ in range(200):
        w = cc._w
        alpha = 1.0 if cc.w_est >= cc.cwnd_prior else CUBIC_ALPHA
        w_est += alpha * MDS * MDS / w
        ack(cc, 1.0, 0.9, rtt=rtt)
        assert cc.w_est == pytest.approx(w_est)
    assert cc.w_est > cc.cwnd_prior
    assert cc._w == pytest.approx(w_est)


def test_cubic_fast_convergence() -> None:
    cc = _cubic_after_loss(100)
    assert cc.w_max == 120000
    # a second loss while still below the previous W_max: remember less
    w = cc._w
    cc.on_congestion_event(0.2, now=0.3)
    assert cc.w_max == pytest.approx(w * (1 + CUBIC_BETA) / 2)
    assert cc.cwnd == int(w * CUBIC_BETA)
    # without fast convergence W_max is the window at the loss
    cc2 = _cubic_after_loss(100, fast_convergence=False)
    w = cc2._w
    cc2.on_congestion_event(0.2, now=0.3)
    assert cc2.w_max == w


def test_cubic_app_limited_freezes_growth_and_clock() -> None:
    cc = _cubic_after_loss(1000)
    rtt = rtt_of(0.1)
    ack(cc, 1.0, 0.9, rtt=rtt)
    epoch = cc.t_epoch
    assert epoch is not None
    w = cc.cwnd
    for i in range(1, 51):  # 5 s of app-limited ACKs
        ack(cc, 1.0 + i * 0.1, 0.9 + i * 0.1, rtt=rtt, limited=False)
    assert cc.cwnd == w
    assert cc.t_epoch == pytest.approx(epoch + 5.0)
    # growth resumes where it stopped (W_cubic at t ~ 0, not at t = 5 s)
    ack(cc, 6.1, 6.0, rtt=rtt)
    assert cc.cwnd - w < 2 * MDS


def test_cubic_persistent_congestion_restarts_from_minimum() -> None:
    cc = _cubic_after_loss(100)
    cc.on_persistent_congestion()
    assert cc.cwnd == 2 * MDS
    assert cc._w == 2 * MDS
    ack(cc, 1.0, 0.5)
    assert cc.cwnd == 3 * MDS


# ---- HyStart++ ------------------------------------------------------------------------------


def _round(cc: Cubic, rtt: RttEstimator, start: float, samples: list[float]) -> float:
    """One round: packets sent at ``start`` acked one by one with the given RTTs."""
    now = start
    for sample in samples:
        now = start + sample
        rtt.update(sample, 0.0, now)
        cc.on_ack(MDS, start, now, rtt, prior_in_flight=cc.cwnd)
    return now


def test_hystart_enters_css_on_rtt_increase_then_congestion_avoidance() -> None:
    cc = Cubic(MDS, hystart=True)
    rtt = RttEstimator()
    t = _round(cc, rtt, 0.0, [0.1] * 10)
    t = _round(cc, rtt, t, [0.1] * 10)
    assert not cc.in_css
    assert cc.cwnd == 12000 + 20 * MDS
    # RTT up by 20 ms (threshold: max(4 ms, min(100/8 ms, 16 ms)) = 12.5 ms)
    w = cc.cwnd
    t = _round(cc, rtt, t, [0.12] * 10)
    assert cc.in_css
    # 7 ACKs at full slow start; the 8th sample switches to CSS: it and 2 more grow by 1/4
    assert cc.cwnd == w + 7 * MDS + 3 * (MDS // 4)
    for _ in range(4):
        t = _round(cc, rtt, t, [0.12] * 10)
        assert cc.in_css
        assert cc.in_slow_start
    w = cc._w
    t = _round(cc, rtt, t, [0.12] * 10)  # the fifth CSS round ends slow start
    assert not cc.in_css
    assert not cc.hystart
    assert cc.ssthresh == int(w)
    assert cc.w_max == w
    assert not cc.in_slow_start


def test_hystart_spurious_css_returns_to_slow_start() -> None:
    cc = Cubic(MDS, hystart=True)
    rtt = RttEstimator()
    t = _round(cc, rtt, 0.0, [0.1] * 10)
    t = _round(cc, rtt, t, [0.1] * 10)
    t = _round(cc, rtt, t, [0.12] * 10)
    assert cc.in_css
    t = _round(cc, rtt, t, [0.11] * 10)  # below the CSS baseline (0.12): back to slow start
    assert not cc.in_css
    assert cc.hystart
    w = cc.cwnd
    _round(cc, rtt, t, [0.11] * 9)
    assert cc.cwnd == w + 9 * MDS


def test_hystart_ignores_small_rtt_changes_and_stops_after_loss() -> None:
    cc = Cubic(MDS, hystart=True)
    rtt = RttEstimator()
    t = _round(cc, rtt, 0.0, [0.1] * 10)
    t = _round(cc, rtt, t, [0.11] * 10)  # +10 ms < 12.5 ms threshold
    assert not cc.in_css
    cc.on_congestion_event(t - 0.05, now=t)
    assert not cc.hystart


def test_newreno_has_no_hystart_effect() -> None:
    cc = NewReno(MDS)
    rtt = RttEstimator()
    now = 0.0
    for r, sample in enumerate([0.1, 0.1, 0.2, 0.2]):
        for _ in range(10):
            now = r + sample
            rtt.update(sample, 0.0, now)
            cc.on_ack(MDS, float(r), now, rtt, prior_in_flight=cc.cwnd)
    assert cc.cwnd == 12000 + 40 * MDS
