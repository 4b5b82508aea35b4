"""Where the wall-clock time of a new connection's handshake and first echo goes, per side.

Runs the ``handshake`` workload of ``benchmarks/peers/`` (a new connection, a 64-byte request
and its answer; server on CPU 0, client on CPU 1) with each quicish process noting the time
(CLOCK_MONOTONIC, shared by both processes) and the thread's CPU time of every socket wake
(``Endpoint._on_readable``) and every send (``UdpSocket.send``); the client also notes its
``connect()``'s start and return and the end of reading the answer. Each connection's events
are put in order and named by side, kind and ordinal (``client send 2``); the connections
with the most common sequence give a median time (µs from ``connect()``) for each event and
the CPU the side spent since its previous event. Prints one JSON object:
``{"median_ms", "connections", "typical", "steps": [{"event", "at_us", "cpu_us"}, ...]}``.

    python benchmarks/handshake_critical_path.py [--count 200] [--root CHECKOUT]

``--root``: the checkout whose ``quicish`` and peers run (default: this one).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SKIP = 5  # connections at the start (warm-up) left out

Event = tuple[int, int, str]  # (monotonic ns, thread CPU ns, name)


def trace(out: str, script: list[str]) -> None:
    """Run ``script`` (a peer) with its wakes, sends and (client) marks noted; write them to
    ``out`` at exit."""
    import atexit
    import runpy
    import time

    sys.path.insert(0, str(Path(script[0]).parent))
    import common  # type: ignore[import-not-found]  # (the peers directory, put on the path above)

    from quicish import udp
    from quicish.aio import api, endpoint

    events: list[Event] = []

    def note(name: str) -> None:
        events.append((time.monotonic_ns(), time.thread_time_ns(), name))

    on_readable, send = endpoint.Endpoint._on_readable, udp.UdpSocket.send
    connect, read_pattern = api.connect, common.read_pattern

    def noted_on_readable(self: Any) -> None:
        note("wake")
        on_readable(self)

    def noted_send(self: udp.UdpSocket, datagrams: list[bytes], addr: udp.Address) -> Any:
        left = send(self, datagrams, addr)
        note("send")
        return left

    async def noted_connect(*args: Any, **kwargs: Any) -> Any:
        note("connect")
        conn = await connect(*args, **kwargs)
        note("connected")
        return conn

    async def noted_read_pattern(*args: Any, **kwargs: Any) -> None:
        await read_pattern(*args, **kwargs)
        note("answer read")

    endpoint.Endpoint._on_readable = noted_on_readable  # type: ignore[method-assign]
    udp.UdpSocket.send = noted_send  # type: ignore[method-assign]
    api.connect = noted_connect  # type: ignore[assignment]
    common.read_pattern = noted_read_pattern
    atexit.register(lambda: Path(out).write_text(json.dumps(events)))
    sys.argv = script
    runpy.run_path(script[0], run_name="__main__")


def timelines(client: list[Event], server: list[Event]) -> list[list[tuple[str, int, int]]]:
    """Per connection: its events (name, ns from ``connect``, CPU ns since the same side's
    previous event), both sides, from ``connect`` to ``answer read``."""
    merged = sorted([(t, c, "client " + n) for t, c, n in client] +
                    [(t, c, "server " + n) for t, c, n in server])  # fmt: skip
    times = [e[0] for e in merged]
    starts = [e for e in client if e[2] == "connect"]
    ends = [e for e in client if e[2] == "answer read"]
    out = []
    for start, end in zip(starts, ends, strict=False):
        lo, hi = bisect.bisect_left(times, start[0]), bisect.bisect_right(times, end[0])
        last_cpu: dict[str, int] = {}
        counts: collections.Counter[str] = collections.Counter()
        line = []
        for t, cpu, name in merged[lo:hi]:
            side = name.split()[0]
            counts[name] += 1
            since = cpu - last_cpu.get(side, cpu)
            last_cpu[side] = cpu
            marked = name.endswith(("connect", "connected", "read"))
            label = name if marked else f"{name} {counts[name]}"
            line.append((label, t - start[0], since))
        out.append(line)
    return out


def summary(lines: list[list[tuple[str, int, int]]]) -> dict[str, Any]:
    """The most common sequence of events and, for it, each event's medians."""
    lines = lines[SKIP:] or lines
    shapes = collections.Counter(tuple(e[0] for e in line) for line in lines)
    shape, typical = shapes.most_common(1)[0]
    same = [line for line in lines if tuple(e[0] for e in line) == shape]
    steps = []
    for i, name in enumerate(shape):
        steps.append({
            "event": name,
            "at_us": round(statistics.median(line[i][1] for line in same) / 1e3, 1),
            "cpu_us": round(statistics.median(line[i][2] for line in same) / 1e3, 1),
        })  # fmt: skip
    total = statistics.median(line[-1][1] for line in lines) / 1e6
    return {"median_ms": round(total, 3), "connections": len(lines), "typical": typical,
            "steps": steps}  # fmt: skip


def measure(root: Path, count: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(root))
    me = [sys.executable, str(Path(__file__).resolve()), "--trace"]
    peer = str(root / "benchmarks" / "peers" / "quicish_peer.py")
    with tempfile.TemporaryDirectory(prefix="quicish-hs-path-") as tmp:
        sfile, cfile = f"{tmp}/server.json", f"{tmp}/client.json"
        server = subprocess.Popen(
            ["taskset", "-c", "0", *me, sfile, peer, "server"],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        client = subprocess.run(
            ["taskset", "-c", "1", *me, cfile, peer, "client", "--port", str(port),
             "--workload", "handshake", "--size", "64", "--count", str(count)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        server.send_signal(signal.SIGINT)  # (atexit writes its events)
        server.wait(60)
        result = json.loads(client.stdout.strip().splitlines()[-1])
        if not result.get("ok", True):
            raise RuntimeError(f"client failed: {result}")
        c = [tuple(e) for e in json.loads(Path(cfile).read_text())]
        s = [tuple(e) for e in json.loads(Path(sfile).read_text())]
    return {"root": str(root)} | summary(timelines(c, s))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--trace":
        trace(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--root", type=Path, default=HERE.parent)
    args = parser.parse_args()
    print(json.dumps(measure(args.root.resolve(), args.count)))


if __name__ == "__main__":
    main()
