"""Loss recovery throughput: packets per second through on_packet_sent + on_ack_received.

Run: ``python benchmarks/bench_recovery.py [--packets N] [--repeat R] [--cc cubic|newreno]``.
A virtual sender keeps sending full-size packets; the peer acknowledges every second packet
with an ACK frame whose ranges cover the recent history (as frames do before ACK-of-ACK
pruning catches up). Scenarios: no loss; 1% random loss (holes in the ranges, loss detection,
congestion events); the same with frames repeating up to 256 packets of history.
Prints a markdown table of packets per second (best of ``repeat`` runs) and µs per packet.
"""

from __future__ import annotations

import argparse
import random
import time

from quicish.proto.congestion import create
from quicish.proto.records import SentPacket
from quicish.proto.recovery import APPLICATION, LossRecovery

MDS = 1200


def _ranges(received: list[int], low: int) -> list[tuple[int, int]]:
    """Descending half-open ranges of the received packet numbers at or above ``low``."""
    out: list[tuple[int, int]] = []
    for pn in received:
        if pn < low:
            continue
        if out and out[-1][1] == pn:
            out[-1] = (out[-1][0], pn + 1)
        else:
            out.append((pn, pn + 1))
    return out[::-1]


def _noop_sent(pkt: SentPacket) -> None:
    return None


def _noop_ack(space: int, ranges: object, delay: float, now: float) -> None:
    return None


def run(
    packets: int, loss: float, history: int, cc_name: str, seed: int = 1, baseline: bool = False
) -> float:
    """Seconds for ``packets`` through recovery (SentPacket creation included); with
    ``baseline`` the same loop with no-op calls (the harness's own cost)."""
    rng = random.Random(seed)
    recovery = LossRecovery(create(cc_name, MDS), max_ack_delay=0.025)
    recovery.handshake_confirmed = True
    recovery.peer_completed_address_validation = True
    # Precompute the peer's view so only recovery work is timed.
    plan: list[list[tuple[int, int]] | None] = []
    received: list[int] = []
    for pn in range(packets):
        if rng.random() >= loss:
            received.append(pn)
        if pn % 2 == 1:
            recent = received[-history:] if history else received[-2:]
            plan.append(_ranges(recent, recent[0]) if recent else None)
        else:
            plan.append(None)
        if len(received) > 4 * history + 8:
            del received[: -2 * history - 4]
    on_sent = recovery.on_packet_sent
    on_ack = recovery.on_ack_received
    if baseline:
        on_sent = _noop_sent
        on_ack = _noop_ack  # type: ignore[assignment]
    now = 0.0
    step = 1e-5  # 100,000 packets/s of virtual time; the ACK arrives ~1 ms later
    rtt_lag = 100
    pending: list[list[tuple[int, int]]] = []
    start = time.perf_counter()
    for pn in range(packets):
        now += step
        on_sent(SentPacket(pn, now, MDS, True, True, APPLICATION, []))
        ranges = plan[pn]
        if ranges is not None:
            pending.append(ranges)
        if len(pending) > rtt_lag // 2:
            on_ack(APPLICATION, pending.pop(0), 0.0, now)
    elapsed = time.perf_counter() - start
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cc", default="cubic")
    args = parser.parse_args()
    scenarios = [
        ("no loss, 2-packet ranges", 0.0, 0),
        ("no loss, 256-packet history", 0.0, 256),
        ("1% loss, 2-packet ranges", 0.01, 0),
        ("1% loss, 256-packet history", 0.01, 256),
    ]
    print(
        f"| scenario ({args.cc}, {args.packets} packets) | packets/s | µs per packet "
        "| µs per packet minus harness |"
    )
    print("|---|---:|---:|---:|")
    for name, loss, history in scenarios:
        best = min(run(args.packets, loss, history, args.cc) for _ in range(args.repeat))
        base = min(
            run(args.packets, loss, history, args.cc, baseline=True) for _ in range(args.repeat)
        )
        us = best / args.packets * 1e6
        net = (best - base) / args.packets * 1e6
        print(f"| {name} | {args.packets / best:,.0f} | {us:.2f} | {net:.2f} |")


if __name__ == "__main__":
    main()
