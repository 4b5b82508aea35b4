"""Spurious losses (proto/spurious.py): a packet declared lost, then acknowledged, undoes
the window reduction it caused and widens the reordering thresholds; and over simlink, a
link that reorders 1% of packets by 5 ms no longer costs CUBIC nine tenths of its rate."""

from __future__ import annotations

import random

import pytest
from pairs import Sender, connected, make_net
from test_proto_recovery import MDS, ack, send

from quicish.proto.congestion import Cubic, create
from quicish.proto.recovery import PACKET_THRESHOLD, TIME_THRESHOLD, LossRecovery
from quicish.simlink import LinkSpec


def _recovery(**kw: bool) -> LossRecovery:
    r = LossRecovery(create("cubic", MDS), max_ack_delay=0.0, **kw)
    r.handshake_confirmed = r.peer_completed_address_validation = True
    return r


def _grow(r: LossRecovery, packets: int) -> tuple[int, float]:
    """Send and ack ``packets`` packets one by one (slow start) from pn 0; (next pn, time)."""
    t = 0.0
    for pn in range(packets):
        send(r, pn, t)
        t += 0.01
        ack(r, [pn], t)
    return packets, t


def test_spurious_loss_undoes_the_reduction_and_widens_the_thresholds() -> None:
    r = _recovery()
    pn, t = _grow(r, 20)
    before = (r.cc.cwnd, r.cc.ssthresh)
    assert r.cc.ssthresh == float("inf")
    for i in range(10):
        send(r, pn + i, t)
    # pn+0 and pn+1 are reordered: 2..9 arrive first, and 0, 1 count as lost.
    acked, lost = ack(r, list(range(pn + 2, pn + 10)), t + 0.05)
    assert lost == [pn, pn + 1]
    assert r.cc.cwnd < before[0] and r.cc.congestion_events == 1
    # They arrive after all: both acknowledged late; the episode is undone.
    acked, lost = ack(r, list(range(pn, pn + 10)), t + 0.06)
    assert acked == [] and lost == []  # (already counted as lost: nothing newly acked)
    assert r.spurious_losses == 2 and r.spurious_undos == 1
    assert (r.cc.cwnd, r.cc.ssthresh) == before
    assert r.cc.undone_events == 1 and r.cc.congestion_events == 1
    assert r.cc.recovery_start_time == -float("inf")
    # The first was 9 below the largest acked when declared lost: 10 packets are tolerated
    # from now on; the time threshold went up 1/8 RTT per spurious loss.
    assert r.packet_threshold == 10
    assert r.time_threshold == pytest.approx(TIME_THRESHOLD + 2 * 0.125)


def test_no_undo_while_part_of_the_episode_is_really_lost() -> None:
    r = _recovery()
    pn, t = _grow(r, 20)
    for i in range(10):
        send(r, pn + i, t)
    ack(r, list(range(pn + 2, pn + 10)), t + 0.05)
    reduced = r.cc.cwnd
    ack(r, [pn + 1, *range(pn + 2, pn + 10)], t + 0.06)  # pn+1 arrived, pn+0 did not
    assert r.spurious_losses == 1 and r.spurious_undos == 0
    assert r.cc.cwnd == reduced


def test_losses_joining_the_episode_must_all_be_spurious() -> None:
    r = _recovery()
    pn, t = _grow(r, 20)
    for i in range(12):
        send(r, pn + i, t)
    ack(r, list(range(pn + 4, pn + 6)), t + 0.05)  # pn+0, +1 lost: reduction
    ack(r, list(range(pn + 4, pn + 12)), t + 0.051)  # pn+2, +3 lost too: same episode
    assert r.cc.congestion_events == 1
    reduced = r.cc.cwnd
    ack(r, [pn, pn + 1, *range(pn + 4, pn + 12)], t + 0.06)
    assert r.spurious_undos == 0 and r.cc.cwnd == reduced
    ack(r, list(range(pn, pn + 12)), t + 0.07)
    assert r.spurious_undos == 1 and r.cc.cwnd > reduced


@pytest.mark.parametrize(("undo", "adaptive"), [(False, True), (True, False), (False, False)])
def test_options_off(undo: bool, adaptive: bool) -> None:
    r = _recovery(undo_spurious=undo, adaptive_reordering=adaptive)
    pn, t = _grow(r, 20)
    for i in range(10):
        send(r, pn + i, t)
    ack(r, list(range(pn + 2, pn + 10)), t + 0.05)
    reduced = r.cc.cwnd
    ack(r, list(range(pn, pn + 10)), t + 0.06)
    assert r.spurious_losses == 2  # detected either way
    assert (r.cc.cwnd > reduced) == undo
    assert (r.packet_threshold > PACKET_THRESHOLD) == adaptive


def test_undo_restores_the_cubic_state() -> None:
    cc = Cubic(MDS)
    cc.cwnd = 100 * MDS
    cc._w = float(cc.cwnd)
    state = cc.snapshot()
    assert cc.on_congestion_event(1.0, 2.0)
    assert cc.w_max == 100 * MDS and cc.cwnd == 70 * MDS
    assert cc.undo_congestion_event()
    after = cc.snapshot()
    assert after.pop("undone_events") == 1 and state.pop("undone_events") == 0
    after.pop("congestion_events")
    state.pop("congestion_events")
    assert after == state
    assert not cc.undo_congestion_event()  # once only


# ---- over simlink -----------------------------------------------------------------------------


def _reordering_transfer(undo: bool, adaptive: bool) -> tuple[float, int, int]:
    kw = {"max_data": 64 << 20, "max_stream_data": 32 << 20}
    link = LinkSpec(delay=0.015, bandwidth=50e6, queue=100, reorder=0.01, reorder_delay=0.005)
    net = make_net(link=link, client_kw=kw, server_kw=kw, seed=1)
    for conn in (net.client, net.server):
        spurious = conn._recovery._spurious
        spurious.undo, spurious.adaptive = undo, adaptive
    c, s = connected(net)
    data = random.Random(1).randbytes(4 << 20)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, data)
    start = net.now
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=120, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    r = net.client._recovery
    return len(data) * 8 / (net.now - start), r.spurious_losses, r.spurious_undos


def test_reordering_link_keeps_cubic_fast() -> None:
    """1% of packets 5 ms late on 50 Mbit/s / 30 ms: every late packet was a loss and a
    window cut (measured 4.9 Mbit/s); with undo and adaptive thresholds (the defaults)
    the link stays full (44.8)."""
    fast, spurious, undos = _reordering_transfer(True, True)
    slow, *_ = _reordering_transfer(False, False)
    assert spurious > 0 and undos > 0
    assert fast > 35e6
    assert slow < 10e6


# ---- the loss filter (loss_clusters.py), an option of loss recovery -----------------------------


def test_loss_clusters() -> None:
    from quicish.proto.loss_clusters import LossClusters

    scattered = LossClusters()
    assert not any(scattered.add(i) for i in range(0, 2000, 25))  # 4% evenly spread
    burst = LossClusters()
    assert [burst.add(i) for i in (100, 101, 102, 103)] == [False, False, True, True]
    assert not burst.add(200)  # 97 packets later: decayed (at most 32 packets' worth)


def test_loss_filter_option_answers_only_clustered_loss() -> None:
    r = _recovery(loss_filter=True)
    pn, t = _grow(r, 20)
    for i in range(40):
        send(r, pn + i, t)
    # One loss (pn+0), acked around it: retransmitted, no window reduction.
    _, lost = ack(r, list(range(pn + 1, pn + 20)), t + 0.05)
    assert lost == [pn]
    assert r.cc.congestion_events == 0 and r.cc.ssthresh == float("inf")
    # Four in a row (pn+20..23): a cluster, one reduction.
    _, lost = ack(r, list(range(pn + 24, pn + 40)), t + 0.06)
    assert lost == [pn + 20, pn + 21, pn + 22, pn + 23]
    assert r.cc.congestion_events == 1


def test_loss_filter_off_by_default() -> None:
    r = _recovery()
    pn, t = _grow(r, 20)
    for i in range(10):
        send(r, pn + i, t)
    ack(r, list(range(pn + 1, pn + 10)), t + 0.05)
    assert r.cc.congestion_events == 1
