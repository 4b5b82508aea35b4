"""Loss detection, PTO and persistent congestion (RFC 9002 sections 6, 7.6, appendix A)."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from quicish.errors import ErrorCode, ProtocolError
from quicish.proto.congestion import NewReno, create
from quicish.proto.packet_space import APPLICATION, HANDSHAKE, INITIAL
from quicish.proto.records import SentPacket
from quicish.proto.recovery import TIME_THRESHOLD, LossRecovery
from quicish.proto.rtt import TIMER_GRANULARITY, RttEstimator

MDS = 1200


def make(
    *,
    confirmed: bool = True,
    validated: bool = True,
    mad: float = 0.025,
    cc: str = "newreno",
    adaptive: bool = True,
) -> LossRecovery:
    r = LossRecovery(create(cc, MDS), max_ack_delay=mad, adaptive_reordering=adaptive)
    r.handshake_confirmed = confirmed
    r.peer_completed_address_validation = validated
    return r


def send(
    r: LossRecovery,
    pn: int,
    t: float,
    space: int = APPLICATION,
    size: int = MDS,
    eliciting: bool = True,
    in_flight: bool = True,
) -> SentPacket:
    pkt = SentPacket(pn, t, size, eliciting, in_flight, space, [("frame", space, pn)])
    r.on_packet_sent(pkt)
    return pkt


def ack(
    r: LossRecovery, pns: list[int], now: float, space: int = APPLICATION, delay: float = 0.0
) -> tuple[list[int], list[int]]:
    acked, lost = r.on_ack_received(space, to_ranges(pns), delay, now)
    return [p.pn for p in acked], [p.pn for p in lost]


def to_ranges(pns: list[int]) -> list[tuple[int, int]]:
    """Half-open ranges, highest first, as ACK frames carry them."""
    out: list[tuple[int, int]] = []
    for pn in sorted(set(pns)):
        if out and out[-1][1] == pn:
            out[-1] = (out[-1][0], pn + 1)
        else:
            out.append((pn, pn + 1))
    return out[::-1]


# ---- basics -------------------------------------------------------------------------------


def test_sent_packet_fields() -> None:
    pkt = SentPacket(5, 1.5, 1200, True, True, HANDSHAKE, [("x",)])
    assert (pkt.pn, pkt.sent_time, pkt.size, pkt.ack_eliciting, pkt.in_flight, pkt.space) == (
        5,
        1.5,
        1200,
        True,
        True,
        HANDSHAKE,
    )
    assert pkt.frames == [("x",)]
    assert not hasattr(pkt, "__dict__")
    assert SentPacket(0, 0.0, 1, False, False, 0).frames == []


def test_ack_returns_packets_in_order_and_updates_bytes_in_flight() -> None:
    r = make()
    sent = [send(r, pn, pn * 0.01) for pn in range(6)]
    send(r, 6, 0.06, size=50, eliciting=False, in_flight=False)  # an ACK-only packet
    assert r.bytes_in_flight == 6 * MDS
    acked, lost = r.on_ack_received(APPLICATION, [(4, 7), (0, 3)], 0.0, 0.1)
    assert [p.pn for p in acked] == [0, 1, 2, 4, 5, 6]
    assert acked[0] is sent[0] and acked[0].frames == [("frame", APPLICATION, 0)]
    assert [p.pn for p in lost] == [3]  # 6 >= 3 + kPacketThreshold
    assert r.bytes_in_flight == 0
    assert r.largest_acked(APPLICATION) == 6
    assert r.largest_acked(INITIAL) is None


def test_duplicate_ack_acks_nothing() -> None:
    r = make()
    for pn in range(3):
        send(r, pn, 0.0)
    assert ack(r, [0, 1, 2], 0.1) == ([0, 1, 2], [])
    assert ack(r, [0, 1, 2], 0.2) == ([], [])
    assert r.bytes_in_flight == 0


def test_ack_of_unsent_packet_is_protocol_violation() -> None:
    r = make()
    with pytest.raises(ProtocolError) as exc:
        r.on_ack_received(APPLICATION, [(0, 1)], 0.0, 0.1)  # nothing sent at all
    assert exc.value.code == ErrorCode.PROTOCOL_VIOLATION
    send(r, 0, 0.0)
    send(r, 1, 0.0)
    with pytest.raises(ProtocolError) as exc:
        r.on_ack_received(APPLICATION, [(0, 3)], 0.0, 0.1)
    assert exc.value.code == ErrorCode.PROTOCOL_VIOLATION
    # another space's packets do not count
    with pytest.raises(ProtocolError):
        r.on_ack_received(HANDSHAKE, [(0, 1)], 0.0, 0.1)
    assert ack(r, [0, 1], 0.1) == ([0, 1], [])


def test_packet_numbers_must_grow() -> None:
    r = make()
    send(r, 3, 0.0)
    with pytest.raises(ValueError):
        send(r, 3, 0.1)
    send(r, 3, 0.1, space=INITIAL)  # spaces are independent


# ---- packet threshold ---------------------------------------------------------------------


def test_packet_threshold() -> None:
    r = make()
    for pn in range(4):
        send(r, pn, 0.0)
    acked, lost = ack(r, [3], 0.001)
    assert acked == [3]
    assert lost == [0]  # 3 >= 0 + kPacketThreshold; 1 and 2 wait for the time threshold
    assert r.bytes_in_flight == 2 * MDS
    assert r.packets_lost == 1 and r.bytes_lost == MDS
    assert [p.pn for p in r.outstanding(APPLICATION)] == [1, 2]


def test_holes_between_ranges() -> None:
    r = make()
    for pn in range(12):
        send(r, pn, 0.0)
    acked, lost = ack(r, [0, 1, 4, 5, 9, 10], 0.001)
    assert acked == [0, 1, 4, 5, 9, 10]
    assert lost == [2, 3, 6, 7]  # 8 is within 3 of 10
    assert [p.pn for p in r.outstanding(APPLICATION)] == [8, 11]
    acked, lost = ack(r, [11], 0.002)
    assert (acked, lost) == ([11], [8])
    assert r.outstanding(APPLICATION) == []
    assert r.bytes_in_flight == 0


def test_reordered_ack_with_smaller_largest_still_detects() -> None:
    r = make()
    for pn in range(8):
        send(r, pn, 0.0)
    assert ack(r, [7], 0.001) == ([7], [0, 1, 2, 3, 4])
    # An older ACK frame arrives late: acks 5; 6 still waits (7 - 6 < 3)
    assert ack(r, [5], 0.002) == ([5], [])
    assert [p.pn for p in r.outstanding(APPLICATION)] == [6]


# ---- time threshold ---------------------------------------------------------------------


def test_time_threshold_loss_and_timer() -> None:
    r = make()
    send(r, 0, 0.0)
    send(r, 1, 0.001)
    assert ack(r, [1], 0.05) == ([1], [])
    # first sample: latest = smoothed = 0.049
    loss_delay = TIME_THRESHOLD * 0.049
    deadline = r.loss_detection_deadline()
    assert deadline is not None
    assert deadline == pytest.approx(0.0 + loss_delay)
    assert r.on_timeout(deadline - 1e-6) == ([], None)  # early: nothing
    lost, probe = r.on_timeout(deadline)
    assert [p.pn for p in lost] == [0]
    assert probe is None
    assert r.pto_count == 0
    assert r.bytes_in_flight == 0
    assert r.loss_detection_deadline() is None


def test_time_threshold_on_ack() -> None:
    r = make()
    send(r, 0, 0.0)
    send(r, 1, 0.1)
    # sample 0.1; loss_delay = 0.1125; pn 0 sent at 0 <= 0.2 - 0.1125: lost now
    assert ack(r, [1], 0.2) == ([1], [0])


def test_time_threshold_uses_max_of_latest_and_smoothed() -> None:
    r = make()
    send(r, 0, 0.0)
    assert ack(r, [0], 0.2) == ([0], [])  # smoothed 0.2
    send(r, 1, 1.0)
    send(r, 2, 1.15)
    assert ack(r, [2], 1.2) == ([2], [])  # latest 0.05, smoothed ~0.181
    smoothed = 0.875 * 0.2 + 0.125 * 0.05
    assert r.loss_detection_deadline() == pytest.approx(1.0 + TIME_THRESHOLD * smoothed)


def test_time_threshold_granularity_floor() -> None:
    r = make()
    send(r, 0, 0.0)
    send(r, 1, 0.00001)
    ack(r, [1], 0.00002)  # sample of 10 microseconds
    assert r.loss_detection_deadline() == pytest.approx(0.0 + TIMER_GRANULARITY)


# ---- PTO ---------------------------------------------------------------------------------


def test_pto_value_and_backoff_application() -> None:
    r = make(mad=0.025)
    send(r, 0, 10.0)
    pto = 0.333 + 4 * 0.1665 + 0.025
    assert r.loss_detection_deadline() == pytest.approx(10.0 + pto)
    assert r.on_timeout(10.0 + pto - 0.001) == ([], None)
    assert r.on_timeout(10.0 + pto) == ([], APPLICATION)
    assert r.pto_count == 1
    # backoff doubles the whole period (max_ack_delay included), from the last ack-eliciting send
    assert r.loss_detection_deadline() == pytest.approx(10.0 + 2 * pto)
    assert r.on_timeout(10.0 + 2 * pto) == ([], APPLICATION)
    assert r.loss_detection_deadline() == pytest.approx(10.0 + 4 * pto)
    assert r.pto_timeouts == 2
    # a probe sent now restarts from its send time, still backed off
    send(r, 1, 12.0)
    assert r.loss_detection_deadline() == pytest.approx(12.0 + 4 * pto)
    # an ACK resets the backoff; pn 0 is lost by the time threshold (sample 0.1 s)
    assert ack(r, [1], 12.1) == ([1], [0])
    assert r.pto_count == 0
    assert r.bytes_in_flight == 0
    assert r.loss_detection_deadline() is None


def test_pto_after_rtt_sample() -> None:
    r = make(mad=0.02)
    send(r, 0, 0.0)
    ack(r, [0], 0.1)  # smoothed 0.1, rttvar 0.05
    send(r, 1, 1.0)
    assert r.loss_detection_deadline() == pytest.approx(1.0 + 0.1 + 4 * 0.05 + 0.02)
    assert r.pto_duration() == pytest.approx(0.32)
    assert r.pto_duration(HANDSHAKE) == pytest.approx(0.3)


def test_pto_initial_space_has_no_max_ack_delay() -> None:
    r = make(confirmed=False, validated=True, mad=0.5)
    send(r, 0, 0.0, space=INITIAL)
    deadline = r.loss_detection_deadline()
    assert deadline is not None
    assert deadline == pytest.approx(0.999)
    assert r.on_timeout(deadline) == ([], INITIAL)


def test_no_application_pto_before_confirmation() -> None:
    r = make(confirmed=False, validated=True)
    send(r, 0, 0.0, space=APPLICATION)
    assert r.loss_detection_deadline() is None
    assert r.on_timeout(100.0) == ([], None)
    assert r.pto_count == 0
    send(r, 0, 0.5, space=HANDSHAKE)
    assert r.loss_detection_deadline() == pytest.approx(0.5 + 0.999)
    assert r.on_timeout(1.499) == ([], HANDSHAKE)
    r.handshake_confirmed = True
    # application space now considered: sent at 0.0, pto with max_ack_delay, backoff 2
    assert r.loss_detection_deadline() == pytest.approx(min(0.5 + 2 * 0.999, 2 * 1.024))


def test_probe_space_is_earliest_pto() -> None:
    r = make(confirmed=False, validated=True)
    send(r, 0, 0.0, space=INITIAL)
    send(r, 0, 0.5, space=HANDSHAKE)
    assert r.loss_detection_deadline() == pytest.approx(0.999)
    assert r.on_timeout(1.0) == ([], INITIAL)
    r2 = make(confirmed=False, validated=True)
    send(r2, 0, 0.5, space=INITIAL)
    send(r2, 0, 0.2, space=HANDSHAKE)
    assert r2.loss_detection_deadline() == pytest.approx(1.199)
    assert r2.on_timeout(1.2) == ([], HANDSHAKE)


def test_client_anti_deadlock_pto() -> None:
    r = make(confirmed=False, validated=False)
    assert r.loss_detection_deadline() is None  # nothing sent yet
    send(r, 0, 0.0, space=INITIAL)
    send(r, 1, 0.0, space=INITIAL)
    ack(r, [0, 1], 0.1, space=INITIAL)  # smoothed 0.1, rttvar 0.05
    assert r.bytes_in_flight == 0
    # nothing in flight, but the server may be blocked by its amplification limit
    assert r.loss_detection_deadline() == pytest.approx(0.1 + 0.3)
    assert r.on_timeout(0.4) == ([], INITIAL)
    assert r.pto_count == 1
    assert r.loss_detection_deadline() == pytest.approx(0.4 + 0.6)
    r.has_handshake_keys = True
    assert r.on_timeout(1.0) == ([], HANDSHAKE)
    assert r.pto_count == 2
    # an ACK does not reset the backoff until the peer validated our address
    send(r, 2, 1.0, space=INITIAL)
    ack(r, [2], 1.1, space=INITIAL)
    assert r.pto_count == 2
    r.peer_completed_address_validation = True
    assert r.loss_detection_deadline() is None


def test_amplification_limited_server_has_no_pto() -> None:
    r = make(confirmed=False, validated=True)
    send(r, 0, 0.0, space=INITIAL)
    r.amplification_limited = True
    assert r.loss_detection_deadline() is None
    assert r.on_timeout(5.0) == ([], None)
    r.amplification_limited = False
    assert r.loss_detection_deadline() == pytest.approx(0.999)


def test_nothing_in_flight_no_timer() -> None:
    r = make()
    send(r, 0, 0.0)
    ack(r, [0], 0.1)
    assert r.loss_detection_deadline() is None
    send(r, 1, 0.2, eliciting=False, in_flight=False)  # ACK-only packets arm nothing
    assert r.loss_detection_deadline() is None
    assert r.bytes_in_flight == 0


# ---- ack delay ---------------------------------------------------------------------------


def _smoothed_after(space: int, confirmed: bool, delay: float) -> float:
    r = make(confirmed=confirmed, mad=0.025)
    send(r, 0, 0.0, space=space)
    ack(r, [0], 0.1, space=space)  # first sample 0.1
    send(r, 1, 1.0, space=space)
    ack(r, [1], 1.2, space=space, delay=delay)  # sample 0.2
    return r.rtt.smoothed_rtt


def test_ack_delay_ignored_for_initial() -> None:
    assert _smoothed_after(INITIAL, False, 0.05) == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)


def test_ack_delay_not_clamped_before_confirmation() -> None:
    assert _smoothed_after(HANDSHAKE, False, 0.05) == pytest.approx(0.875 * 0.1 + 0.125 * 0.15)


def test_ack_delay_clamped_to_max_ack_delay_once_confirmed() -> None:
    assert _smoothed_after(APPLICATION, True, 0.05) == pytest.approx(
        0.875 * 0.1 + 0.125 * (0.2 - 0.025)
    )


def test_rtt_sample_only_when_largest_newly_acked_and_eliciting() -> None:
    r = make()
    send(r, 0, 0.0)
    send(r, 1, 0.0, eliciting=False, in_flight=False)
    ack(r, [1], 0.5)
    assert not r.rtt.has_sample  # largest acked is not ack-eliciting
    ack(r, [0, 1], 0.6)
    assert not r.rtt.has_sample  # largest (1) was not newly acked
    send(r, 2, 1.0)
    ack(r, [2], 1.25)
    assert r.rtt.latest_rtt == pytest.approx(0.25)


# ---- discard -----------------------------------------------------------------------------


def test_discard_space() -> None:
    r = make(confirmed=False, validated=True)
    send(r, 0, 0.0, space=INITIAL)
    send(r, 1, 0.0, space=INITIAL)
    send(r, 0, 0.1, space=HANDSHAKE)
    assert r.on_timeout(1.0) == ([], INITIAL)
    assert r.pto_count == 1
    dropped = r.discard_space(INITIAL)
    assert [p.pn for p in dropped] == [0, 1]
    assert r.bytes_in_flight == MDS
    assert r.pto_count == 0
    assert r.loss_detection_deadline() == pytest.approx(0.1 + 0.999)
    # a late ACK for the discarded space changes nothing; the space keeps its numbering
    assert ack(r, [0, 1], 1.0, space=INITIAL) == ([], [])
    with pytest.raises(ValueError):
        send(r, 1, 1.0, space=INITIAL)
    send(r, 2, 1.0, space=INITIAL)  # after Retry the client keeps numbering
    assert r.bytes_in_flight == 2 * MDS


def test_discard_clears_pending_loss_timer() -> None:
    r = make(confirmed=False)
    for pn in range(3):
        send(r, pn, 0.0, space=HANDSHAKE)
    ack(r, [2], 0.01, space=HANDSHAKE)
    assert r.loss_detection_deadline() == pytest.approx(TIME_THRESHOLD * 0.01)
    r.discard_space(HANDSHAKE, now=0.011)
    assert r.loss_detection_deadline() is None
    assert r.bytes_in_flight == 0


# ---- congestion interplay ------------------------------------------------------------------


def test_one_reduction_per_recovery_period() -> None:
    r = make()
    cc = r.cc
    for pn in range(20):
        send(r, pn, 0.0)
    ack(r, [4], 0.1)  # pn 0, 1 lost -> congestion event at t = 0.1
    assert cc.congestion_events == 1
    assert cc.cwnd == 6000
    ack(r, [10], 0.12)  # more losses of packets sent before recovery started
    assert cc.congestion_events == 1
    assert cc.cwnd == 6000
    for pn in range(20, 26):
        send(r, pn, 0.2)
    ack(r, [25], 0.3)  # pn 20..22 lost: sent after recovery start -> new period
    assert cc.congestion_events == 2
    assert cc.cwnd == 3000


def test_acks_in_recovery_do_not_grow_window() -> None:
    r = make()
    for pn in range(10):
        send(r, pn, 0.0)
    ack(r, [3], 0.1)  # pn 0 lost
    cwnd = r.cc.cwnd
    ack(r, [1, 2, 3, 4, 5, 6], 0.11)
    assert r.cc.cwnd == cwnd


def test_ecn_ce_triggers_one_congestion_event() -> None:
    r = make()
    for pn in range(4):
        send(r, pn, 0.0)
    r.on_ack_received(APPLICATION, [(0, 2)], 0.0, 0.1, ecn_ce=1)
    assert r.cc.congestion_events == 1
    assert r.cc.cwnd == 6000
    r.on_ack_received(APPLICATION, [(0, 3)], 0.0, 0.11, ecn_ce=1)  # count unchanged
    assert r.cc.congestion_events == 1


def test_metrics_hook() -> None:
    r = make()
    seen: list[dict[str, float]] = []
    times: list[float] = []

    def hook(rec: LossRecovery, now: float) -> None:
        seen.append(rec.metrics())
        times.append(now)

    r.on_metrics = hook
    send(r, 0, 0.0)
    ack(r, [0], 0.1)
    assert len(seen) == 1 and times == [0.1]
    assert seen[0]["smoothed_rtt"] == pytest.approx(0.1)
    assert seen[0]["bytes_in_flight"] == 0
    # one packet in flight out of 12000: app-limited, so the window did not grow
    assert seen[0]["congestion_window"] == 12000


# ---- persistent congestion -----------------------------------------------------------------


def _warm_up(r: LossRecovery, samples: int = 10) -> float:
    """Take several 1-second RTT samples before t = 0 (the RFC example assumes one)."""
    for i in range(samples):
        t = -100.0 + 2 * i
        send(r, 100 + i, t, space=HANDSHAKE)
        ack(r, [100 + i], t + 1.0, space=HANDSHAKE)
    return r.rtt.smoothed_rtt


def _rfc_example(r: LossRecovery, ack_five: bool = False) -> list[int]:
    """RFC 9002 7.6.3: packets at t = 0, 1, 1.2 (ack #1), 2..6, 8 (PTO), 12 (PTO), 12.2."""
    send(r, 1, 0.0)
    send(r, 2, 1.0)
    ack(r, [1], 1.2)
    lost: list[int] = []
    for pn in range(3, 8):
        send(r, pn, pn - 1.0)
        if ack_five and pn == 6:
            _, lost_now = ack(r, [1, 5], 5.05)
            lost += lost_now
    send(r, 8, 8.0)
    send(r, 9, 12.0)
    _, lost_now = ack(r, [9], 12.2)
    return lost + lost_now


def test_persistent_congestion_rfc_example() -> None:
    r = make(mad=0.0)
    _warm_up(r)
    lost = _rfc_example(r)
    assert lost == [2, 3, 4, 5, 6, 7, 8]
    rtt = r.rtt
    period = (rtt.smoothed_rtt + max(4 * rtt.rttvar, TIMER_GRANULARITY)) * 3
    assert period < 7.0  # lost span: 8 - 1
    assert r.persistent_congestion_events == 1
    assert r.cc.persistent_congestion_events == 1
    # cwnd went to kMinimumWindow; then, as in appendix B (OnPacketsLost before
    # OnPacketsAcked), the ack of #9 (sent after recovery was reset) grew slow start by 1 packet
    assert r.cc.cwnd == 2 * MDS + MDS
    assert r.cc.recovery_start_time == -math.inf
    assert r.rtt.min_rtt == pytest.approx(0.2)  # reset to the newest sample


def test_no_persistent_congestion_when_a_packet_between_was_acked() -> None:
    r = make(mad=0.0)
    _warm_up(r)
    _rfc_example(r, ack_five=True)
    assert r.persistent_congestion_events == 0
    assert r.cc.cwnd > 2 * MDS


def test_no_persistent_congestion_without_prior_rtt_sample() -> None:
    r = make(mad=0.0)
    send(r, 0, 0.0)
    send(r, 1, 10.0)
    send(r, 2, 20.0)
    send(r, 3, 20.0)
    send(r, 4, 20.0)
    assert ack(r, [4], 20.1)[1] == [0, 1]  # first RTT sample arrives only now
    assert r.persistent_congestion_events == 0
    assert r.cc.congestion_events == 1
    assert r.cc.cwnd == 6000


def test_no_persistent_congestion_when_span_too_short() -> None:
    r = make(mad=0.0)
    _warm_up(r)
    for pn in range(1, 5):
        send(r, pn, pn * 0.25)  # lost span 0.75 s, far below the ~5.7 s period
    send(r, 5, 2.5)
    assert ack(r, [5], 2.6)[1] == [1, 2, 3, 4]
    assert r.persistent_congestion_events == 0


def test_persistent_congestion_needs_ack_eliciting_endpoints() -> None:
    r = make(mad=0.0)
    _warm_up(r)
    send(r, 1, 0.0, eliciting=False)  # in flight (PADDING only), not ack-eliciting
    send(r, 2, 10.0, eliciting=False)
    send(r, 3, 10.0)
    send(r, 4, 10.5)
    send(r, 5, 11.0)
    send(r, 6, 11.0)
    assert ack(r, [6], 11.1)[1] == [1, 2, 3]
    assert r.persistent_congestion_events == 0
    # the same with ack-eliciting endpoints is persistent congestion
    r2 = make(mad=0.0)
    _warm_up(r2)
    send(r2, 1, 0.0)
    send(r2, 2, 10.0, eliciting=False)
    send(r2, 3, 10.0)
    send(r2, 4, 10.5)
    send(r2, 5, 11.0)
    send(r2, 6, 11.0)
    assert ack(r2, [6], 11.1)[1] == [1, 2, 3]
    assert r2.persistent_congestion_events == 1


def test_packet_number_gap_splits_persistent_congestion_runs() -> None:
    r = make(mad=0.0)
    _warm_up(r)
    send(r, 1, 0.0)
    send(r, 2, 2.0)
    send(r, 4, 4.0)  # pn 3 never sent (skipped): runs are {1, 2} and {4, 5}
    send(r, 5, 6.0)
    send(r, 6, 7.0)
    send(r, 7, 7.0)
    send(r, 8, 7.0)
    send(r, 9, 7.0)
    assert ack(r, [9], 7.1)[1] == [1, 2, 4, 5, 6]
    assert r.persistent_congestion_events == 0


# ---- scale ----------------------------------------------------------------------------------


def test_order_list_stays_compact_under_cumulative_acks() -> None:
    r = make()
    pn = 0
    t = 0.0
    for _ in range(300):
        for _ in range(20):
            send(r, pn, t)
            pn += 1
        t += 0.01
        # ACK frames repeat the recent history (up to 200 packets), minus every 50th packet
        ack(r, [p for p in range(max(0, pn - 200), pn - 10) if p % 50 != 7], t)
    space = r._spaces[APPLICATION]
    assert len(space.order) - space.head == len(space.packets) == len(r.outstanding(APPLICATION))
    assert len(space.order) < 2100
    assert r.bytes_in_flight == sum(p.size for p in r.outstanding(APPLICATION))


# ---- differential test against a literal transcription of RFC 9002 appendix A ---------------


class _Reference:
    """Appendix A for one (application) space, with plain lists: slow but obviously right;
    plus persistent congestion's reset of min_rtt (RFC 9002 5.2 and 7.6, outside Appendix A)."""

    def __init__(self, mad: float) -> None:
        self.sent: dict[int, SentPacket] = {}
        self.largest_acked: int | None = None
        self.loss_time: float | None = None
        self.last_eliciting = 0.0
        self.rtt = RttEstimator()
        self.mad = mad
        self.pto_count = 0
        self.bytes_in_flight = 0

    def on_sent(self, pkt: SentPacket) -> None:
        self.sent[pkt.pn] = pkt
        if pkt.in_flight:
            if pkt.ack_eliciting:
                self.last_eliciting = pkt.sent_time
            self.bytes_in_flight += pkt.size

    def on_ack(self, pns: set[int], delay: float, now: float) -> tuple[list[int], list[int]]:
        largest = max(pns)
        self.largest_acked = (
            largest if self.largest_acked is None else max(self.largest_acked, largest)
        )
        newly = [self.sent.pop(pn) for pn in sorted(pns) if pn in self.sent]
        if not newly:
            return [], []
        if newly[-1].pn == largest and any(p.ack_eliciting for p in newly):
            self.rtt.update(now - newly[-1].sent_time, min(delay, self.mad), now)
        lost = self.detect(now)
        for p in newly + lost:
            if p.in_flight:
                self.bytes_in_flight -= p.size
        self.pto_count = 0
        return [p.pn for p in newly], [p.pn for p in lost]

    def detect(self, now: float) -> list[SentPacket]:
        assert self.largest_acked is not None
        self.loss_time = None
        delay = max(TIME_THRESHOLD * max(self.rtt.latest_rtt, self.rtt.smoothed_rtt), 0.001)
        lost = []
        for pn in sorted(self.sent):
            p = self.sent[pn]
            if pn > self.largest_acked:
                continue
            if p.sent_time + delay <= now or self.largest_acked >= pn + 3:
                lost.append(self.sent.pop(pn))
            else:
                t = p.sent_time + delay
                self.loss_time = t if self.loss_time is None else min(self.loss_time, t)
        if self.persistent_congestion(lost):
            self.rtt.min_rtt = self.rtt.latest_rtt
        return lost

    def persistent_congestion(self, lost: list[SentPacket]) -> bool:
        """RFC 9002 7.6.2: two ack-eliciting packets sent after the first RTT sample and
        more than 3 congestion periods apart, lost with no packet number between them
        acknowledged (nor still outstanding: ``lost`` is in packet number order)."""
        first = self.rtt.first_rtt_sample
        if first is None:
            return False
        period = 3 * (self.rtt.pto_base() + self.mad)
        runs: list[list[SentPacket]] = []
        for p in lost:
            if runs and runs[-1][-1].pn == p.pn - 1:
                runs[-1].append(p)
            else:
                runs.append([p])
        for run in runs:
            times = [p.sent_time for p in run if p.ack_eliciting and p.sent_time > first]
            if times and max(times) - min(times) > period:
                return True
        return False

    def deadline(self) -> float | None:
        if self.loss_time is not None:
            return self.loss_time
        if not any(p.ack_eliciting for p in self.sent.values()):
            return None
        pto = (self.rtt.pto_base() + self.mad) * (1 << self.pto_count)
        return self.last_eliciting + pto

    def on_timeout(self, now: float) -> tuple[list[int], int | None]:
        if self.loss_time is not None:
            lost = self.detect(now)
            for p in lost:
                if p.in_flight:
                    self.bytes_in_flight -= p.size
            return [p.pn for p in lost], None
        self.pto_count += 1
        return [], APPLICATION


_op = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 6), st.booleans(), st.integers(0, 30)),
    st.tuples(
        st.just("ack"),
        st.lists(st.integers(0, 40), min_size=1, max_size=12),
        st.integers(0, 30),
        st.integers(0, 30),
    ),
    st.tuples(st.just("timer"), st.integers(0, 400), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, min_size=1, max_size=60))
@example(  # persistent congestion resets min_rtt, then the ACK delay adjusts the sample
    [
        *(("send", 1, e, 0) for e in (True, False, False, True)),
        ("ack", [3], 0, 0),
        ("send", 1, True, 1),
        ("ack", [1], 0, 0),
        ("timer", 30, False),
        ("send", 6, True, 0),
        ("ack", [2], 4, 7),
        ("send", 1, False, 0),
        ("send", 5, True, 3),
        ("ack", [2], 15, 12),
    ]
)
def test_matches_reference_appendix_a(ops: list[tuple[object, ...]]) -> None:
    r = make(mad=0.005, adaptive=False)  # the reference keeps RFC 9002's fixed thresholds
    ref = _Reference(0.005)
    now = 0.0
    next_pn = 0
    for op in ops:
        kind = op[0]
        if kind == "send":
            _, count, eliciting, gap_ms = op
            assert isinstance(count, int) and isinstance(gap_ms, int)
            now += gap_ms / 1024
            for _ in range(count):
                pkt = SentPacket(next_pn, now, 1000 + next_pn, bool(eliciting), True, APPLICATION)
                r.on_packet_sent(pkt)
                ref.on_sent(SentPacket(next_pn, now, 1000 + next_pn, bool(eliciting), True, 2))
                next_pn += 1
        elif kind == "ack":
            _, offsets, delay_ms, gap_ms = op
            assert isinstance(offsets, list) and isinstance(gap_ms, int)
            assert isinstance(delay_ms, int)
            now += gap_ms / 1024
            if next_pn == 0:
                continue
            pns = {next_pn - 1 - (o % next_pn) for o in offsets}
            acked, lost = r.on_ack_received(
                APPLICATION, to_ranges(sorted(pns)), delay_ms / 1024, now
            )
            assert ([p.pn for p in acked], [p.pn for p in lost]) == ref.on_ack(
                pns, delay_ms / 1024, now
            )
        else:
            _, gap_ms, jump = op
            assert isinstance(gap_ms, int)
            deadline = r.loss_detection_deadline()
            expected = ref.deadline()
            if expected is None:
                assert deadline is None
            else:
                assert deadline == pytest.approx(expected)
            if jump and deadline is not None:
                now = max(now, deadline)
            else:
                now += gap_ms / 1024
            if deadline is not None and now >= deadline:
                lost, probe = r.on_timeout(now)
                assert ([p.pn for p in lost], probe) == ref.on_timeout(now)
        assert r.bytes_in_flight == ref.bytes_in_flight
        assert r.pto_count == ref.pto_count
        assert r.rtt.smoothed_rtt == ref.rtt.smoothed_rtt
        assert sorted(p.pn for p in r.outstanding(APPLICATION)) == sorted(ref.sent)


def test_recovery_works_with_cubic_too() -> None:
    r = make(cc="cubic")
    assert not isinstance(r.cc, NewReno)
    for pn in range(10):
        send(r, pn, 0.0)
    ack(r, [9], 0.1)
    assert r.cc.cwnd == int(12000 * 0.7)


def test_packets_not_in_flight_are_tracked_up_to_a_cap() -> None:
    """ACK-only packets nobody acknowledges: past ``max_not_in_flight`` the oldest half are
    forgotten; packets in flight are never dropped, and ACKs of forgotten ones are harmless."""
    r = LossRecovery(create("newreno", MDS), max_ack_delay=0.025, max_not_in_flight=8)
    r.handshake_confirmed = r.peer_completed_address_validation = True
    send(r, 0, 0.0)  # in flight, oldest of all
    for pn in range(1, 20):
        send(r, pn, 0.001 * pn, size=50, eliciting=False, in_flight=False)
    outstanding = [p.pn for p in r.outstanding(APPLICATION)]
    assert outstanding[0] == 0
    assert len(outstanding) - 1 <= 8
    assert outstanding[1:] == list(range(20 - len(outstanding) + 1, 20))
    assert r.packets_forgotten == 19 - (len(outstanding) - 1)
    assert r.bytes_in_flight == MDS
    acked, lost = ack(r, [1, 2, 3, 0], 0.05)  # 1..3 forgotten: only 0 is found
    assert acked == [0]
    assert lost == []
    acked, _ = ack(r, [19], 0.06)
    assert acked == [19]
    assert r.bytes_in_flight == 0


_bounded_op = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 6), st.booleans(), st.integers(0, 30)),
    st.tuples(st.just("skip")),
    st.tuples(
        st.just("ack"), st.lists(st.integers(0, 40), min_size=1, max_size=8), st.integers(0, 30)
    ),
    st.tuples(st.just("timer"), st.integers(0, 300)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_bounded_op, min_size=1, max_size=60))
def test_bookkeeping_with_a_cap_and_skipped_numbers(ops: list[tuple[object, ...]]) -> None:
    """Packets not in flight (capped at 4) and skipped packet numbers mixed with ordinary
    traffic: the counters always match the packets still tracked."""
    r = LossRecovery(create("newreno", MDS), max_ack_delay=0.005, max_not_in_flight=4)
    r.handshake_confirmed = r.peer_completed_address_validation = True
    now = 0.0
    next_pn = 0
    skipped: set[int] = set()
    for op in ops:
        if op[0] == "send":
            _, count, in_flight, gap_ms = op
            assert isinstance(count, int) and isinstance(gap_ms, int)
            now += gap_ms / 1024
            for _ in range(count):
                send(
                    r, next_pn, now, size=100, eliciting=bool(in_flight), in_flight=bool(in_flight)
                )
                next_pn += 1
        elif op[0] == "skip":
            r.on_packet_number_skipped(APPLICATION, next_pn)
            skipped.add(next_pn)
            next_pn += 1
        elif op[0] == "ack":
            _, offsets, gap_ms = op
            assert isinstance(offsets, list) and isinstance(gap_ms, int)
            now += gap_ms / 1024
            if next_pn == 0:
                continue
            pns = {next_pn - 1 - (o % next_pn) for o in offsets} - skipped
            sent = r.largest_sent(APPLICATION)
            pns = {pn for pn in pns if sent is not None and pn <= sent}
            if pns:
                ack(r, sorted(pns), now)
        else:
            _, gap_ms = op
            assert isinstance(gap_ms, int)
            now += gap_ms / 1024
            r.on_timeout(now)
        outstanding = r.outstanding(APPLICATION)
        not_in_flight = [p for p in outstanding if not p.in_flight]
        assert len(not_in_flight) <= 4
        assert r._spaces[APPLICATION].not_in_flight == len(not_in_flight)
        assert r.bytes_in_flight == sum(p.size for p in outstanding if p.in_flight)
        assert r.ack_eliciting_in_flight(APPLICATION) == sum(
            1 for p in outstanding if p.ack_eliciting
        )
        assert not skipped & {p.pn for p in outstanding}


def test_ack_covering_a_skipped_packet_number_is_a_protocol_violation() -> None:
    r = make()
    for pn in range(5):
        send(r, pn, 0.0)
    r.on_packet_number_skipped(APPLICATION, 5)
    for pn in range(6, 9):
        send(r, pn, 0.0)
    assert r.skipped_packet_numbers(APPLICATION) == [5]
    assert ack(r, [0, 1, 2, 3], 0.05) == ([0, 1, 2, 3], [])  # below the skip: no check
    with pytest.raises(ProtocolError) as info:
        r.on_ack_received(APPLICATION, [(4, 8)], 0.0, 0.06)
    assert info.value.code == ErrorCode.PROTOCOL_VIOLATION
    assert [p.pn for p in r.outstanding(APPLICATION)] == [4, 6, 7, 8]  # nothing changed
    assert ack(r, [4, 6, 7], 0.07) == ([4, 6, 7], [])  # an honest ACK, around the hole
    with pytest.raises(ValueError):
        r.on_packet_number_skipped(APPLICATION, 8)
