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
``--top N`` lists the N source lines that allocate the most of it. ``--types`` breaks an
asyncio server's idle connection down by object type instead (:func:`footprint`: the
objects reachable from one connection and from no other, sizes rounded up to pymalloc's
16-byte blocks).

``--rss`` accounts for a real server's whole RSS instead (no tracemalloc, whose own tables
would be counted): ``quicish.serve`` with the benchmark peers' handler on 127.0.0.1 (uvloop
when installed, as ``make bench``), a client process opening ``--count`` connections, each
after one 64-byte GET as ``make bench``'s "many" row, and per connection the growth of RSS,
of malloc's bytes in use and free inside its heap (glibc ``mallinfo2``: libcrypto's
contexts, C core buffers, Python objects over 512 bytes) and of pymalloc's arenas, blocks
in use and free (``sys._debugmallocstats``).

    python benchmarks/bench_conn_memory.py [--count 200] [--top 20] [--asyncio] [--types]
    python benchmarks/bench_conn_memory.py --rss [--count 2000]

``--cc`` names the server's congestion controller (else the ``Config`` default, CUBIC) for
the sans-IO engine, ``--rss`` and ``--types``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import gc
import os
import sys
import tempfile
import tracemalloc
import types
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import quicish  # noqa: E402
from benchmarks.peers import common  # noqa: E402
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


RSS_CLIENT = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[3])
sys.path.insert(0, sys.argv[3] + "/benchmarks/peers")
import common, quicish
async def one(port):
    config = quicish.Config(alpn=[common.ALPN], verify=False, idle_timeout=300)
    conn = await quicish.connect("127.0.0.1", port, config=config)
    reader, writer = await conn.open_stream()
    writer.write(common.request_get(64))
    writer.write_eof()
    await reader.read()
    return conn
async def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    start = time.perf_counter()
    conns = []
    for first in range(0, count, 10):
        conns += await asyncio.gather(*(one(port) for _ in range(min(10, count - first))))
    print(f"ready {time.perf_counter() - start:.1f}", flush=True)
    await asyncio.sleep(600)
common.run(main())
"""


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]  # fmt: skip


def mallinfo2() -> _MallInfo2:
    """glibc's malloc statistics (AttributeError without glibc 2.33 or later)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info: _MallInfo2 = libc.mallinfo2()
    return info


def malloc_in_use() -> int:
    """Bytes malloc has handed out and not had back (glibc)."""
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def memory_now() -> dict[str, int]:
    """RSS, malloc's heap (glibc) and pymalloc's arenas of this process, in bytes."""
    with open("/proc/self/status") as status:
        rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
    info = mallinfo2()
    figures = {
        "RSS": rss,
        "malloc in use": info.uordblks + info.hblkhd,
        "malloc free in its heap": info.fordblks,
    }
    with tempfile.TemporaryFile("w+") as out:  # _debugmallocstats writes to C's stderr
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        stats = out.read()
    for line in stats.splitlines():
        name, _, value = line.partition("=")
        name = name.strip().lstrip("# ")
        if name.endswith("bytes/arena"):
            figures["pymalloc arenas"] = int(value.replace(",", ""))
        elif name == "bytes in allocated blocks":
            figures["pymalloc blocks in use"] = int(value.replace(",", ""))
        elif name == "bytes in available blocks" or name.endswith("unused pools * 16384 bytes"):
            figures["pymalloc free"] = figures.get("pymalloc free", 0) + int(value.replace(",", ""))
    return figures


async def _serve(tmp: str, cc: str = Config.congestion_control) -> quicish.Server:
    """The measured server: ``quicish.serve`` with the peers' handler on 127.0.0.1."""
    config = Config(
        alpn=[common.ALPN],
        certificate_chain=f"{tmp}/c.pem",
        private_key=f"{tmp}/k.pem",
        idle_timeout=300,
        congestion_control=cc,
    )
    return await quicish.serve("127.0.0.1", 0, config=config, on_stream=common.handle)


async def measure_rss(
    count: int, top: int, tmp: str, cc: str = Config.congestion_control
) -> tuple[dict[str, float], float]:
    """Per idle connection of a real server: the growth of each figure of memory_now(), and
    the seconds the client took to open them; ``top``: tracemalloc on (its tables then
    count in the figures), the ``top`` lines printed."""
    server = await _serve(tmp, cc)

    async def clients(n: int) -> tuple[asyncio.subprocess.Process, float]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RSS_CLIENT, str(server.address[1]), str(n), str(ROOT),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        return proc, float(line.split()[1])

    try:
        warm, _ = await clients(10)  # first-use setup, as make bench's warm-up connections
        await asyncio.sleep(0.5)
        if top:
            tracemalloc.start(1)
            first = tracemalloc.take_snapshot()
        before = memory_now()
        proc, seconds = await clients(count)
        await asyncio.sleep(0.5)
        after = memory_now()
        if top:
            print_top(first, count, top)
            tracemalloc.stop()
        for p in (warm, proc):
            p.kill()
            await p.wait()
    finally:
        server.close()
    return {name: (after[name] - before[name]) / count for name in after}, seconds


_SHARED_KINDS = (type, types.ModuleType, types.BuiltinFunctionType, asyncio.AbstractEventLoop)


def footprint(conns: Sequence[object], shared: Iterable[object] = ()) -> dict[str, list[int]]:
    """Per object type, [count, bytes] of what ``conns[0]`` alone holds: the objects it
    reaches that none of ``conns[1:]`` reaches (what a server shares among its connections
    is reached by each), not walking through ``shared`` (the endpoint, the server), types,
    modules or the loop. Bytes are ``sys.getsizeof`` rounded up to pymalloc's 16-byte size
    classes (objects of 512 bytes or less), so Python objects only: no C allocations."""
    stop = {id(o) for o in shared}
    stop.update(id(m.__dict__) for m in list(sys.modules.values()) if m is not None)

    def reach(root: object) -> dict[int, object]:
        seen: dict[int, object] = {}
        todo = [root]
        while todo:
            obj = todo.pop()
            if id(obj) in seen or id(obj) in stop or isinstance(obj, _SHARED_KINDS):
                continue
            seen[id(obj)] = obj
            todo.extend(gc.get_referents(obj))
        return seen

    stop.update(id(c) for c in conns)
    mine = {}
    for i, conn in enumerate(conns):
        stop.discard(id(conn))
        seen = reach(conn)
        stop.add(id(conn))
        if i == 0:
            mine = seen
        else:
            for key in seen.keys() & mine.keys():
                del mine[key]
    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for obj in mine.values():
        kind = type(obj)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else kind.__module__ + "." + kind.__qualname__
        )
        size = sys.getsizeof(obj)
        entry = out[name.removeprefix("quicish.")]
        entry[0] += 1
        entry[1] += -(-size // 16) * 16 if size <= 512 else size
    return dict(out)


def print_types(figures: dict[str, list[int]]) -> None:
    total = sum(size for _, size in figures.values())
    count = sum(n for n, _ in figures.values())
    print(f"{total:8,} B {count:4} objects  (Python objects of one idle connection)")
    for name, (n, size) in sorted(figures.items(), key=lambda item: -item[1][1]):
        print(f"{size:8,} B {n:4}  {name}")


def print_top(first: tracemalloc.Snapshot, count: int, top: int) -> None:
    stats = tracemalloc.take_snapshot().compare_to(first, "lineno")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        name = os.path.relpath(frame.filename, ROOT)
        print(
            f"{stat.size_diff / count:8.0f} B {stat.count_diff / count:5.1f}  {name}:{frame.lineno}"
        )


async def measure_types(
    count: int, tmp: str, cc: str = Config.congestion_control
) -> dict[str, list[int]]:
    """:func:`footprint` of an idle connection of a real server (``quicish.serve`` with the
    peers' handler, ``count`` connections after one GET each, as ``--rss``)."""
    server = await _serve(tmp, cc)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RSS_CLIENT, str(server.address[1]), str(count), str(ROOT),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        await proc.stdout.readline()
        await asyncio.sleep(0.5)
        gc.collect()
        conns = sorted(server.connections, key=id)
        figures = footprint(conns, shared_of(server))
    finally:
        proc.kill()
        await proc.wait()
        server.close()
    return figures


def shared_of(server: Any) -> list[object]:
    """What a server shares among its connections, not to be walked through: the server,
    its endpoint and the endpoint's attributes (routing tables, timer heap, socket)."""
    endpoint = server._endpoint
    return [server, endpoint, *(getattr(endpoint, n, None) for n in dir(endpoint) if n[:2] != "__")]


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


def measure(count: int, top: int, cc: str = Config.congestion_control) -> float:
    """Bytes allocated per idle server connection (its controller ``cc``); prints the ``top``
    lines."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = generate_self_signed(("localhost",))
        (Path(tmp) / "c.pem").write_bytes(cert)
        (Path(tmp) / "k.pem").write_bytes(key)
        scfg = Config(
            certificate_chain=f"{tmp}/c.pem", private_key=f"{tmp}/k.pem", congestion_control=cc
        )
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
    parser.add_argument("--rss", action="store_true", help="a real server's whole RSS")
    parser.add_argument("--types", action="store_true", help="by object type (a real server)")
    parser.add_argument(
        "--cc", default=Config.congestion_control, help="the server's congestion controller"
    )
    args = parser.parse_args()
    if args.types:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = generate_self_signed(("localhost",))
            (Path(tmp) / "c.pem").write_bytes(cert)
            (Path(tmp) / "k.pem").write_bytes(key)
            print_types(common.run(measure_types(min(args.count, 20), tmp, args.cc)))
        return
    if args.rss:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = generate_self_signed(("localhost",))
            (Path(tmp) / "c.pem").write_bytes(cert)
            (Path(tmp) / "k.pem").write_bytes(key)
            figures, seconds = common.run(measure_rss(args.count, args.top, tmp, args.cc))
        loop = "uvloop" if common.use_uvloop() else "asyncio"
        print(f"idle server connection, {args.count} connections after one GET each ({loop}; "
              f"opened in {seconds:.1f} s), bytes per connection:")  # fmt: skip
        for name, value in figures.items():
            print(f"{value:10,.0f}  {name}")
        return
    if args.asyncio:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = generate_self_signed(("localhost",))
            (Path(tmp) / "c.pem").write_bytes(cert)
            (Path(tmp) / "k.pem").write_bytes(key)
            per = asyncio.run(measure_asyncio(args.count, args.top, tmp))
        what = "asyncio server"
    else:
        per, what = measure(args.count, args.top, args.cc), "sans-IO engine"
    print(f"idle server connection, {what}: {per:,.0f} bytes "
          f"(tracemalloc, {args.count} connections)")  # fmt: skip


if __name__ == "__main__":
    main()
