"""Memory of one idle server connection: the sans-IO engine's, or with ``--asyncio`` a real
server's (tracemalloc).

``--count`` client/server ``Connection`` pairs complete their handshake on an in-memory link
(SimNetwork), exchange nothing more for 0.3 s of virtual time, and the clients and links are
dropped; the figure is the memory still allocated per server connection (everything its
objects hold; the server config and ``ServerContext`` are shared, as in a real server, and
not counted). The asyncio layer's share (the ``QuicConnection`` wrapper, the endpoint's
tables) comes on top: ``--asyncio`` serves on 127.0.0.1 in this process and a client
process opens ``--count`` connections and keeps them idle; the figure is then the server
process's Python allocations per connection (RSS adds the allocator's slack).
``--top N`` lists the N source lines that allocate the most of it.

    python benchmarks/bench_conn_memory.py [--count 200] [--top 20] [--asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import quicish  # noqa: E402
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


CLIENT = """
import asyncio, sys
sys.path.insert(0, sys.argv[3])
import quicish
async def main():
    config = quicish.Config(verify=False, idle_timeout=120)
    conns = [await quicish.connect("127.0.0.1", int(sys.argv[1]), config=config)
             for _ in range(int(sys.argv[2]))]
    print("ready", flush=True)
    await asyncio.sleep(120)
asyncio.run(main())
"""


def print_top(first: tracemalloc.Snapshot, count: int, top: int) -> None:
    stats = tracemalloc.take_snapshot().compare_to(first, "lineno")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        name = os.path.relpath(frame.filename, ROOT)
        print(
            f"{stat.size_diff / count:8.0f} B {stat.count_diff / count:5.1f}  {name}:{frame.lineno}"
        )


async def measure_asyncio(count: int, top: int, tmp: str) -> float:
    """Bytes allocated per idle connection of a real server (clients in another process)."""
    config = Config(certificate_chain=f"{tmp}/c.pem", private_key=f"{tmp}/k.pem", idle_timeout=120)
    server = await quicish.serve("127.0.0.1", 0, config=config)

    async def clients(n: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, str(server.address[1]), str(n), str(ROOT),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        await proc.stdout.readline()
        return proc

    try:
        warm = await clients(5)  # caches and the endpoint's tables filled
        warm.kill()
        await warm.wait()
        await asyncio.sleep(0.5)
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.get_traced_memory()[0]
        first = tracemalloc.take_snapshot()
        proc = await clients(count)
        await asyncio.sleep(1.0)
        gc.collect()
        per = (tracemalloc.get_traced_memory()[0] - before) / count
        if top:
            print_top(first, count, top)
        tracemalloc.stop()
        proc.kill()
        await proc.wait()
    finally:
        server.close()
    return per


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
            print_top(first, count, top)
        tracemalloc.stop()
        del kept, warm
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--asyncio", action="store_true", help="a real server over UDP")
    args = parser.parse_args()
    if args.asyncio:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = generate_self_signed(("localhost",))
            (Path(tmp) / "c.pem").write_bytes(cert)
            (Path(tmp) / "k.pem").write_bytes(key)
            per = asyncio.run(measure_asyncio(args.count, args.top, tmp))
        what = "asyncio server"
    else:
        per, what = measure(args.count, args.top), "sans-IO engine"
    print(f"idle server connection, {what}: {per:,.0f} bytes "
          f"(tracemalloc, {args.count} connections)")  # fmt: skip


if __name__ == "__main__":
    main()
