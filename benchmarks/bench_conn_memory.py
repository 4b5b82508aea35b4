"""Memory of one idle server connection in the sans-IO engine (tracemalloc).

``--count`` client/server ``Connection`` pairs complete their handshake on an in-memory link
(SimNetwork), exchange nothing more for 0.3 s of virtual time, and the clients and links are
dropped; the figure is the memory still allocated per server connection (everything its
objects hold; the server config and ``ServerContext`` are shared, as in a real server, and
not counted). The asyncio layer's share (the ``QuicConnection`` wrapper, the endpoint's
tables) comes on top: ``make bench``'s many-connections row measures RSS over real UDP.
``--top N`` lists the N source lines that allocate the most of it.

    python benchmarks/bench_conn_memory.py [--count 200] [--top 20]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quicish import Config  # noqa: E402
from quicish.proto.connection import Connection  # noqa: E402
from quicish.proto.server_context import ServerContext  # noqa: E402
from quicish.simlink import LinkSpec, SimNetwork  # noqa: E402
from quicish.tls.certs import generate_self_signed  # noqa: E402


def idle_server(scfg: Config, ccfg: Config, ctx: ServerContext, seed: int) -> Connection:
    """A server connection whose handshake completed, idle since; its client is dropped."""
    client = Connection(ccfg, is_client=True)
    server = Connection(scfg, is_client=False, server_context=ctx)
    net = SimNetwork(client, server, to_server=LinkSpec(delay=0.001), seed=seed)
    net.start()
    net.run(lambda: client.handshake_confirmed and server.handshake_confirmed, 5.0)
    end = net.now + 0.3
    net.run(lambda: net.now >= end, 1.0)
    return server


def measure(count: int, top: int) -> float:
    """Bytes allocated per idle server connection; prints the ``top`` lines."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = generate_self_signed(("localhost",))
        (Path(tmp) / "c.pem").write_bytes(cert)
        (Path(tmp) / "k.pem").write_bytes(key)
        scfg = Config(certificate_chain=f"{tmp}/c.pem", private_key=f"{tmp}/k.pem")
        ccfg = Config(verify=False)
        ctx = ServerContext.from_config(scfg)
        warm = [idle_server(scfg, ccfg, ctx, seed) for seed in range(2)]  # caches filled
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.get_traced_memory()[0]
        first = tracemalloc.take_snapshot()
        kept = [idle_server(scfg, ccfg, ctx, seed + 2) for seed in range(count)]
        gc.collect()
        per = (tracemalloc.get_traced_memory()[0] - before) / count
        if top:
            stats = tracemalloc.take_snapshot().compare_to(first, "lineno")
            for stat in stats[:top]:
                frame = stat.traceback[0]
                name = os.path.relpath(frame.filename, ROOT)
                print(f"{stat.size_diff / count:8.0f} B {stat.count_diff / count:5.1f}  "
                      f"{name}:{frame.lineno}")  # fmt: skip
        tracemalloc.stop()
        del kept, warm
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args()
    per = measure(args.count, args.top)
    print(f"idle server connection: {per:,.0f} bytes (tracemalloc, {args.count} connections)")


if __name__ == "__main__":
    main()
