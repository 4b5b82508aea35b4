"""Handshakes under the interop matrix's handshakeloss conditions, in the simulator.

Each seed runs one client/server handshake (sans-IO ``Connection`` pair on
``quicish.simlink``: 15 ms each way, loss events of 3 datagrams in a row, about 30% of the
datagrams lost) in virtual time, so thousands of handshakes take a minute of CPU and the
same seed gives the same losses. Prints how many completed within ``--timeout`` seconds
(both sides' ``handshake_timeout``, the interop cell's 30 s by default) and the completion
time's percentiles: the tail is what a user on such a link waits for.

    python benchmarks/bench_handshake_loss.py [--seeds 2000] [--timeout 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_handshake import configs

from quicish import Config
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext
from quicish.simlink import LinkSpec, SimNetwork

LINK = LinkSpec(delay=0.015, loss=0.3 / 3, burst=3)  # the interop cell's relay settings


def completion_time(seed: int, client: Config, server: Config, ctx: ServerContext) -> float | None:
    """Virtual seconds until both sides confirmed the handshake, or None (gave up)."""
    net = SimNetwork(
        Connection(client, is_client=True),
        Connection(server, is_client=False, server_context=ctx),
        to_server=LINK,
        to_client=LINK,
        seed=seed,
    )
    net.start()
    done = net.run(
        lambda: net.client.handshake_confirmed and net.server.handshake_confirmed,
        timeout=server.handshake_timeout + 5.0,
    )
    return net.now if done else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2000, help="handshakes (default 2000)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0, help="handshake_timeout (s)")
    args = parser.parse_args()
    client, server, _ = configs()
    client = dataclasses.replace(client, handshake_timeout=args.timeout)
    server = dataclasses.replace(server, handshake_timeout=args.timeout)
    ctx = ServerContext.from_config(server)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    times = [completion_time(seed, client, server, ctx) for seed in seeds]
    done = sorted(t for t in times if t is not None)
    failed = [seed for seed, t in zip(seeds, times, strict=True) if t is None]

    def pct(p: float) -> float:
        return done[min(len(done) - 1, int(len(done) * p))]

    print(f"{len(done)} of {len(times)} handshakes completed within {args.timeout:g} s")
    if failed:
        print(f"gave up: seeds {failed[:20]}")
    print(
        f"completion (s): median {statistics.median(done):.3f}, p90 {pct(0.9):.2f}, "
        f"p95 {pct(0.95):.2f}, p99 {pct(0.99):.2f}, max {done[-1]:.2f}"
    )
    print(", ".join(f"over {s} s: {sum(t > s for t in done)}" for s in (3, 5, 10, 20)))


if __name__ == "__main__":
    main()
