"""BBR's decisions, step by step, on recorded paths: the digest of every window, pacing
rate, state and bound after each ACK and each loss must stay what it was when the digests
were recorded. The per-ACK and per-send code was made cheaper with the decisions unchanged
(shared stamps, early exits, no builtin calls: docs/congestion.md, "Cost"); this holds it
to that.

A change meant to alter BBR's behaviour changes these digests: record them again then
(``PYTHONPATH=. python tests/test_cc_bbr_trace.py`` prints them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from bbr_path import MDS, BottleneckPath

from quicish.proto.congestion.bbr import Bbr

RATE = 1.25e6  # bytes/s: 10 Mbit/s
RTT = 0.04


@contextmanager
def _recording() -> Iterator[list[object]]:
    """Every Bbr's state after each ACK and loss call goes into one digest; yields
    [digest, steps] (filled in at the end)."""
    digest = hashlib.sha256()
    out: list[object] = [None, 0]
    acked, lost = Bbr.on_packets_acked, Bbr.on_packets_lost

    def record(cc: Bbr) -> None:
        state = (
            cc.cwnd, cc.pacing_rate, cc.state, cc.inflight_hi, cc.inflight_lo, cc.bw_lo,
            cc.max_bw, cc.min_rtt, cc.extra_acked, cc.competing, cc.round_count,
            cc.path_loss_rate, cc.send_loss_rate,
        )  # fmt: skip
        digest.update(repr(state).encode())
        out[1] = int(out[1]) + 1  # type: ignore[call-overload]

    def on_acked(cc: Bbr, *args: object) -> None:
        acked(cc, *args)  # type: ignore[arg-type]
        record(cc)

    def on_lost(cc: Bbr, *args: object) -> None:
        lost(cc, *args)  # type: ignore[arg-type]
        record(cc)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Bbr, "on_packets_acked", on_acked)
        mp.setattr(Bbr, "on_packets_lost", on_lost)
        yield out
    out[0] = digest.hexdigest()[:24]


def _trace(name: str) -> tuple[object, object]:
    with _recording() as out:
        if name == "simlink_1pct_loss":
            # both connections over quicish.simlink: 50 Mbit/s, 30 ms, 1% loss both ways,
            # 2 MB; an ACK there acknowledges many packets at once
            from test_cc_bbr import _transfer

            _, got, data, _ = _transfer("bbr", 0.01, 2 << 20)
            assert got == data
        else:
            cc = Bbr(MDS, seed=1, loss_tolerant=name != "draft_1pct_loss")
            queue = {"jittered_acks": 200 * MDS, "competing": 10 * MDS}.get(name, 100 * MDS)
            loss = {"random_3pct_loss": 0.03, "draft_1pct_loss": 0.01}.get(name, 0.0)
            path = BottleneckPath(cc, RATE, RTT, queue, loss=loss)
            if name == "jittered_acks":
                path.ack_jitter = 0.005
            elif name == "app_limited":
                path.app_limited_until = 3.0
            elif name == "competing":
                # another flow's queue and its losses from 3 s on: BBR competes, its
                # queued losses cut inflight_hi; ProbeRTT comes
                path.run(3.0)
                path.standing_queue = 0.75 * RTT
                path.loss = 0.005
            path.run(8.0 if name != "competing" else 12.0)
    return out[0], out[1]


# (digest, steps), recorded at ecbe0c0 before the cost work; "competing" again at cc31
RECORDED = {
    "random_3pct_loss": ("1c0c7cc551ac4c82924a95d8", 8174),
    "draft_1pct_loss": ("b789f02913e2948596c6ad71", 6795),
    "jittered_acks": ("414ac1a5df7fe0149b70646c", 8128),
    "competing": ("c00386ccd0ba41a887364750", 6400),  # new at cc31: the 40% cut, troughs
    "app_limited": ("e7f475abe857b71a7d439a07", 5067),
    "simlink_1pct_loss": ("a2a49675f3e512b8a97dc20c", 1533),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_bbr_decisions_are_the_recorded_ones(name: str) -> None:
    assert _trace(name) == RECORDED[name]


if __name__ == "__main__":
    for scenario in ("random_3pct_loss", "draft_1pct_loss", "jittered_acks", "competing",
                     "app_limited", "simlink_1pct_loss"):  # fmt: skip
        print(f"    {scenario!r}: {_trace(scenario)!r},")
