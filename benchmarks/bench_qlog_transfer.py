"""Bulk throughput over loopback with qlog on vs off, alternating runs (issue 17).

A server and a client in this process (one event loop, real UDP on 127.0.0.1) move one
stream of ``--size-mb`` MB, with ``Config(qlog_dir=...)`` at both ends or at neither. Runs
alternate off/on ``--pairs`` times. Printed: the median and spread of each and of the
per-pair ratios, as Mbit per CPU second of this process (both ends' work: robust against
other load on the machine), per CPU second of the event loop's thread (without the qlog
writer thread's: what bounds the wall clock when that thread has a CPU of its own) and as
wall-clock Mbit/s. qlog files are deleted after each run.

    python benchmarks/bench_qlog_transfer.py [--size-mb 50] [--pairs 7] [--pin-main CPU]

``--pin-main CPU`` pins the main thread (the event loop, both ends) to one CPU after the
qlog writer thread has started, which keeps the others (with ``taskset -c CPU`` for the
whole process instead, the writer thread shares the loop's CPU). The CPU seconds are the
process's, the writer thread's included.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import quicish  # noqa: E402
from quicish import Config  # noqa: E402
from quicish.tls.certs import generate_self_signed  # noqa: E402


async def send_file(reader: quicish.QuicStreamReader, writer: quicish.QuicStreamWriter) -> None:
    size = int((await reader.read()).decode())
    chunk = bytes(1 << 20)
    while size > 0:
        n = min(size, len(chunk))
        writer.write(chunk[:n])
        await writer.drain()
        size -= n
    writer.write_eof()


async def transfer(size: int, qlog: Path | None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, CPU seconds of this thread) of one download, server and
    client in this process."""
    cert, key = generate_self_signed(("localhost",))
    window = {"max_data": 32 << 20, "max_stream_data": 32 << 20}
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=Config(
            certificate_chain=cert,
            private_key=key,
            qlog_dir=str(qlog / "server") if qlog else None,
            **window,
        ),
        on_stream=send_file,
    )
    try:
        config = Config(verify=False, qlog_dir=str(qlog / "client") if qlog else None, **window)
        async with quicish.connect("127.0.0.1", server.address[1], config=config) as conn:
            reader, writer = await conn.open_stream()
            cpu, wall, main = time.process_time(), time.perf_counter(), time.thread_time()
            writer.write(str(size).encode())
            writer.write_eof()
            got = 0
            while chunk := await reader.read(1 << 20):
                got += len(chunk)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            main = time.thread_time() - main
            assert got == size, got
    finally:
        server.close()
        await server.wait_closed()
    return wall, cpu, main


def one_run(size: int, on: bool) -> tuple[float, float, float]:
    """(Mbit/s, Mbit per CPU second, Mbit per CPU second of the event loop's thread) of one
    download, qlog on at both ends or at neither."""
    qlog = Path(tempfile.mkdtemp(prefix="quicish-qlog-bench-")) if on else None
    try:
        wall, cpu, main = asyncio.run(transfer(size, qlog))
        if qlog is not None:
            files = list(qlog.rglob("*.sqlog"))
            assert len(files) == 2 and all(f.stat().st_size > 0 for f in files), files
    finally:
        if qlog is not None:
            shutil.rmtree(qlog)
    return size * 8 / wall / 1e6, size * 8 / cpu / 1e6, size * 8 / main / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--pin-main", type=int, default=None, metavar="CPU")
    args = parser.parse_args()
    if args.pin_main is not None:
        from quicish.native import QlogSpool

        QlogSpool.start()  # (the qlog writer thread first: it keeps the process's CPUs)
        os.sched_setaffinity(0, {args.pin_main})  # (0: this thread only, on Linux)
    size = args.size_mb << 20
    os.environ.pop("QLOGDIR", None)
    logging.getLogger("quicish").setLevel(logging.ERROR)  # (verify=False warns)
    runs: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for i in range(args.pairs):
        # alternate which goes first, so drift in the machine's load hits both alike
        for flag in (False, True) if i % 2 == 0 else (True, False):
            runs[flag].append(one_run(size, flag))
        (w0, c0, _), (w1, c1, _) = runs[False][-1], runs[True][-1]
        print(
            f"pair {i + 1}: off {w0:.0f} Mbit/s ({c0:.0f} per CPU s), "
            f"on {w1:.0f} Mbit/s ({c1:.0f} per CPU s)",
            flush=True,
        )
    print(f"| {args.size_mb} MB over loopback, {args.pairs} pairs | median | min-max |")
    print("|---|---:|---:|")
    units = (
        (1, "Mbit per CPU second"),
        (2, "Mbit per CPU second of the loop's thread"),
        (0, "Mbit/s, wall clock"),
    )
    for index, unit in units:
        off = [r[index] for r in runs[False]]
        on = [r[index] for r in runs[True]]
        ratios = [b / a for a, b in zip(off, on, strict=True)]
        for label, xs in (("qlog off", off), ("qlog on, both ends", on)):
            print(
                f"| {label} ({unit}) | {statistics.median(xs):.0f} | {min(xs):.0f}-{max(xs):.0f} |"
            )
        print(
            f"| on/off per pair ({unit}) | {statistics.median(ratios):.3f} | "
            f"{min(ratios):.3f}-{max(ratios):.3f} |"
        )


if __name__ == "__main__":
    main()
