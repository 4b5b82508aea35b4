"""RttEstimator against the RFC 9002 section 5 formulas."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicish.proto.rtt import TIMER_GRANULARITY, RttEstimator


def test_initial_state_uses_initial_rtt() -> None:
    rtt = RttEstimator()
    assert rtt.smoothed_rtt == 0.333
    assert rtt.rttvar == 0.333 / 2
    assert not rtt.has_sample
    assert rtt.first_rtt_sample is None
    # PTO before any sample: smoothed + 4 * rttvar = 3 * initial_rtt
    assert rtt.pto_base() == pytest.approx(0.999)


def test_custom_initial_rtt() -> None:
    rtt = RttEstimator(0.1)
    assert rtt.smoothed_rtt == 0.1
    assert rtt.rttvar == 0.05


def test_first_sample_ignores_ack_delay() -> None:
    rtt = RttEstimator()
    rtt.update(0.1, 0.05, now=7.0)
    assert rtt.latest_rtt == 0.1
    assert rtt.min_rtt == 0.1
    assert rtt.smoothed_rtt == 0.1
    assert rtt.rttvar == 0.05
    assert rtt.first_rtt_sample == 7.0
    assert rtt.samples == 1


def test_ack_delay_subtracted_when_not_below_min_rtt() -> None:
    rtt = RttEstimator()
    rtt.update(0.1, 0.0, now=1.0)
    rtt.update(0.2, 0.05, now=2.0)  # adjusted = 0.15
    assert rtt.min_rtt == 0.1
    assert rtt.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * abs(0.1 - 0.15))
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.15)
    assert rtt.first_rtt_sample == 1.0  # only the first sample sets it


def test_ack_delay_not_subtracted_below_min_rtt() -> None:
    rtt = RttEstimator()
    rtt.update(0.1, 0.0, now=1.0)
    rtt.update(0.12, 0.05, now=2.0)  # 0.12 < min_rtt + ack_delay: use 0.12 as is
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.12)
    assert rtt.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.02)


def test_min_rtt_never_adjusted_for_ack_delay() -> None:
    rtt = RttEstimator()
    rtt.update(0.1, 0.0, now=1.0)
    rtt.update(0.08, 0.05, now=2.0)
    assert rtt.min_rtt == 0.08
    rtt.update(0.5, 0.4, now=3.0)
    assert rtt.min_rtt == 0.08
    assert rtt.latest_rtt == 0.5


def test_pto_base_has_granularity_floor() -> None:
    rtt = RttEstimator()
    rtt.update(0.01, 0.0, now=0.0)
    rtt.rttvar = 0.0
    assert rtt.pto_base() == pytest.approx(0.01 + TIMER_GRANULARITY)


def test_reset_min_rtt_takes_latest_sample() -> None:
    rtt = RttEstimator()
    rtt.reset_min_rtt()  # no sample yet: no-op
    assert rtt.min_rtt == 0.0
    rtt.update(0.05, 0.0, now=0.0)
    rtt.update(0.3, 0.0, now=1.0)
    assert rtt.min_rtt == 0.05
    rtt.reset_min_rtt()
    assert rtt.min_rtt == 0.3


def test_negative_sample_clamped() -> None:
    rtt = RttEstimator()
    rtt.update(-0.5, 0.0, now=0.0)
    assert rtt.latest_rtt == 0.0
    assert rtt.smoothed_rtt == 0.0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=2.0, allow_nan=False),
            st.floats(min_value=0.0, max_value=0.5, allow_nan=False),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_matches_rfc_formulas(samples: list[tuple[float, float]]) -> None:
    rtt = RttEstimator()
    smoothed = rttvar = min_rtt = 0.0
    for i, (latest, delay) in enumerate(samples):
        rtt.update(latest, delay, now=float(i))
        if i == 0:
            min_rtt, smoothed, rttvar = latest, latest, latest / 2
        else:
            min_rtt = min(min_rtt, latest)
            adjusted = latest - delay if latest >= min_rtt + delay else latest
            rttvar = 3 / 4 * rttvar + 1 / 4 * abs(smoothed - adjusted)
            smoothed = 7 / 8 * smoothed + 1 / 8 * adjusted
        assert rtt.min_rtt == min_rtt
        assert rtt.smoothed_rtt == pytest.approx(smoothed, abs=1e-12)
        assert rtt.rttvar == pytest.approx(rttvar, abs=1e-12)
        assert rtt.latest_rtt == latest
    assert rtt.first_rtt_sample == 0.0
    assert rtt.samples == len(samples)
