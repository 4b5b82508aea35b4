"""``serve(..., workers=N)``: handshakes per second and aggregate bulk with 1 and 2 workers.

The supervisor and its workers run from this process (forked); the load comes from
``--clients`` client processes (forked before any loop runs), each making handshakes back
to back (connect, one 64-byte request, close) for ``--seconds``, then each downloading
``--bulk-mb`` MB on each of ``--bulk-conns`` connections at once. The server's CPU is the
workers' user + system time (from /proc) over the phase. On a 2-core machine the clients
share the cores with the workers: read the server's CPU per handshake along with the rates.

    .venv/bin/python benchmarks/bench_workers.py [--workers 1,2] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509

import quicish
from quicish.aio.workers import WorkerPool
from quicish.tls.certs import certificate_fingerprint, generate_self_signed

CERT, KEY = generate_self_signed(("localhost",))
PIN = certificate_fingerprint(x509.load_pem_x509_certificate(CERT))
BLOCK = os.urandom(1 << 20)
TICK = os.sysconf("SC_CLK_TCK")


async def handler(reader: quicish.QuicStreamReader, writer: quicish.QuicStreamWriter) -> None:
    size = int(await reader.read())
    while size > 0:
        n = min(size, len(BLOCK))
        writer.write(BLOCK[:n])
        size -= n
        await writer.drain()
    writer.write_eof()


def client_config() -> quicish.Config:
    return quicish.Config(pin=PIN, server_name="localhost", max_data=64 << 20)


async def fetch(conn: quicish.QuicConnection, size: int) -> int:
    reader, writer = await conn.open_stream()
    writer.write(str(size).encode())
    writer.write_eof()
    got = 0
    while chunk := await reader.read(1 << 20):
        got += len(chunk)
    return got


async def handshakes(port: int, seconds: float) -> int:
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        async with quicish.connect("127.0.0.1", port, config=client_config()) as conn:
            await fetch(conn, 64)
        done += 1
    return done


async def bulk(port: int, conns: int, size: int) -> int:
    async def one() -> int:
        async with quicish.connect("127.0.0.1", port, config=client_config()) as conn:
            return await fetch(conn, size)

    return sum(await asyncio.gather(*(one() for _ in range(conns))))


def client_main(
    mode: str, port: int, arg: float, size: int, out: multiprocessing.Queue[int]
) -> None:
    logging.disable(logging.WARNING)
    if mode == "handshakes":
        out.put(quicish.run(handshakes(port, arg)))
    else:
        out.put(quicish.run(bulk(port, int(arg), size)))


def cpu_seconds(pids: list[int | None]) -> float:
    total = 0
    for pid in pids:
        if pid is None:
            continue
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


async def phase(
    pool: WorkerPool, clients: int, mode: str, arg: float, size: int
) -> tuple[int, float, float]:
    """(count, wall seconds, server CPU seconds) of one load phase."""
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[int] = ctx.Queue()
    cpu0 = cpu_seconds(pool.pids)
    start = time.perf_counter()
    procs = [
        ctx.Process(target=client_main, args=(mode, pool.address[1], arg, size, out))
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    loop = asyncio.get_running_loop()
    results = [await loop.run_in_executor(None, out.get) for _ in procs]
    wall = time.perf_counter() - start
    for proc in procs:
        proc.join()
    return sum(results), wall, cpu_seconds(pool.pids) - cpu0


async def measure(args: argparse.Namespace, workers: int) -> dict[str, float]:
    config = quicish.Config(certificate_chain=CERT, private_key=KEY, max_data=64 << 20)
    async with quicish.serve(
        "127.0.0.1", 0, config=config, on_stream=handler, workers=workers
    ) as pool:
        await phase(pool, 1, "handshakes", 0.5, 0)  # warm up
        count, wall, cpu = await phase(pool, args.clients, "handshakes", args.seconds, 0)
        size = args.bulk_mb << 20
        total, bulk_wall, bulk_cpu = await phase(pool, args.clients, "bulk", args.bulk_conns, size)
    return {
        "hs_rate": count / wall,
        "hs_cpu_ms": cpu / count * 1000,
        "bulk_mbit": total * 8 / bulk_wall / 1e6,
        "bulk_cpu_ms": bulk_cpu / (total / 1e6) * 1000,
        "handshakes": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="handshake phase length")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--bulk-conns", type=int, default=2, help="bulk connections a client")
    parser.add_argument("--bulk-mb", type=int, default=20, help="MB per bulk connection")
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPUs; {args.clients} client processes; handshakes for "
        f"{args.seconds:g} s; bulk: {args.clients}x{args.bulk_conns} connections x "
        f"{args.bulk_mb} MB"
    )
    print(
        "| workers | handshakes/s | server CPU per handshake (ms) | bulk, aggregate (Mbit/s) "
        "| server CPU per MB (ms) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for workers in (int(w) for w in args.workers.split(",")):
        r = asyncio.run(measure(args, workers))
        print(
            f"| {workers} | {r['hs_rate']:.0f} | {r['hs_cpu_ms']:.2f} | "
            f"{r['bulk_mbit']:.0f} | {r['bulk_cpu_ms']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
