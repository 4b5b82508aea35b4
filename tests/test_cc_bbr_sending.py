"""A burst recorded in one call (``LossRecovery.on_packets_sent``, the bulk path's) leaves
recovery, the controller and every packet's delivery-rate stamp exactly as one call per
packet (``on_packet_sent``) does, for BBR and for a controller without a burst hook."""

from __future__ import annotations

import pytest

from quicish.proto.congestion.bbr import Bbr
from quicish.proto.congestion.cubic import Cubic
from quicish.proto.records import SentPacket, StreamRecord, new_record
from quicish.proto.recovery import LossRecovery

MDS = 1452
APP = 2


def _packets(first_pn: int, n: int, now: float) -> list[SentPacket]:
    out = []
    for pn in range(first_pn, first_pn + n):
        record = new_record(StreamRecord, (0, pn * 1400, 1400, False))
        out.append(SentPacket(pn, now, MDS - (pn % 3), True, True, APP, [record]))
    return out


def _state(r: LossRecovery, pkts: list[SentPacket]) -> tuple[object, ...]:
    sp = r._spaces[APP]
    cc = r.cc
    stamps = []
    if isinstance(cc, Bbr):
        stamps = [cc.sampler.stamp_of(p) for p in pkts]
        sampler = cc.sampler
        cc_state: tuple[object, ...] = (
            cc.idle_restart, cc.last_sent_time, cc._extra_interval_start, cc._extra_delivered,
            sampler.sent, sampler.first_sent_time, sampler.delivered_time, sampler.app_limited,
        )  # fmt: skip
    else:
        cc_state = (cc.cwnd,)
    return (
        r.bytes_in_flight, sp.largest_sent, list(sp.order), sorted(sp.packets),
        sp.last_ack_eliciting_time, sp.ack_eliciting_in_flight, r._anchor,
        [(s.delivered, s.delivered_time, s.first_sent_time, s.app_limited, s.tx_in_flight,
          s.lost, s.sent_index) if s else None for s in stamps],
        cc_state,
    )  # fmt: skip


@pytest.mark.parametrize("controller", ["bbr", "cubic"])
@pytest.mark.parametrize("app_limited", [False, True])
def test_a_burst_in_one_call_records_what_one_call_per_packet_does(
    controller: str, app_limited: bool
) -> None:
    results = []
    for burst in (False, True):
        cc = Bbr(MDS) if controller == "bbr" else Cubic(MDS)
        r = LossRecovery(cc, 0.025)
        sent = []
        # a quiet start (nothing in flight), then a second burst on top of the first
        for first_pn, now in ((0, 1.0), (64, 1.001)):
            if app_limited and first_pn == 0:
                cc.on_app_limited(0)
            pkts = _packets(first_pn, 64, now)
            sent += pkts
            if burst:
                r.on_packets_sent(APP, pkts)
            else:
                for p in pkts:
                    r.on_packet_sent(p)
        results.append(_state(r, sent))
    assert results[0] == results[1]
    if controller == "bbr":
        assert isinstance(results[1][-1], tuple) and results[1][-1][0] is app_limited


def test_a_burst_must_follow_the_packets_already_sent() -> None:
    r = LossRecovery(Bbr(MDS), 0.025)
    r.on_packets_sent(APP, _packets(0, 4, 1.0))
    with pytest.raises(ValueError):
        r.on_packets_sent(APP, _packets(3, 4, 1.0))
