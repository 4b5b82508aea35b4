"""Where the wall-clock time of a small request/response round trip goes, per side.

Runs the ``rpc`` workload of ``benchmarks/peers/`` (64-byte messages echoed on one stream of
an open connection; server on CPU 0, client on CPU 1) with each quicish process noting the
time (CLOCK_MONOTONIC) of every socket wake (``Endpoint._on_readable``) and every send
(``UdpSocket.send``), and the thread's CPU time at both. Prints one JSON line of medians:

- ``server_turn_us``: a request's wake to its reply's send (all of it on the round trip);
- ``client_turn_us``: a reply's wake to the next request's send (the client's share of the
  round trip: reading the reply, the application, writing and sending the next request);
- ``hop_to_server_us`` / ``hop_to_client_us``: a send's return to the other side's wake
  (the kernel, the loopback, the process wake-up);
- ``server_after_send_cpu_us`` / ``client_after_send_cpu_us``: CPU a side spends after a
  send until its next wake (off the round trip while it is shorter than the peer's turn).

    python benchmarks/rpc_critical_path.py [--count 3000] [--root CHECKOUT]

``--root``: the checkout whose ``quicish`` and peers run (default: this one).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = 200  # round trips at the start (path MTU discovery, warm-up) left out


def trace(out: str, script: list[str]) -> None:
    """Run ``script`` (a peer) with its wakes and sends noted; write them to ``out`` at exit."""
    import atexit
    import runpy
    import time

    from quicish import udp
    from quicish.aio import endpoint

    wakes: list[tuple[int, int]] = []
    sends: list[tuple[int, int]] = []
    on_readable, send = endpoint.Endpoint._on_readable, udp.UdpSocket.send

    def noted_on_readable(self: endpoint.Endpoint[object]) -> None:  # type: ignore[type-var]
        wakes.append((time.monotonic_ns(), time.thread_time_ns()))
        on_readable(self)

    def noted_send(self: udp.UdpSocket, datagrams: list[bytes], addr: udp.Address) -> list[bytes]:
        left = send(self, datagrams, addr)
        sends.append((time.monotonic_ns(), time.thread_time_ns()))
        return left

    endpoint.Endpoint._on_readable = noted_on_readable  # type: ignore[method-assign,assignment]
    udp.UdpSocket.send = noted_send  # type: ignore[method-assign]
    atexit.register(lambda: Path(out).write_text(json.dumps({"wakes": wakes, "sends": sends})))
    sys.argv = script
    sys.path.insert(0, str(Path(script[0]).parent))
    runpy.run_path(script[0], run_name="__main__")


def _median(values: list[float]) -> float:
    values = values[SKIP:-50] or values
    return round(statistics.median(values), 1) if values else float("nan")


def _hops(sends: list[list[int]], wakes: list[list[int]]) -> list[float]:
    """For each wake: µs since the latest send of the other side before it."""
    times = [s[0] for s in sends]
    out = []
    for wake, _ in wakes:
        i = bisect.bisect_left(times, wake) - 1
        if i >= 0:
            out.append((wake - times[i]) / 1e3)
    return out


def _turns(wakes: list[list[int]], sends: list[list[int]]) -> tuple[list[float], list[float]]:
    """For each wake: µs to this side's next send; for each send: CPU µs to the next wake."""
    times = [w[0] for w in wakes]
    turns, after = [], []
    j = 0
    for wake, _ in wakes:
        while j < len(sends) and sends[j][0] < wake:
            j += 1
        if j < len(sends):
            turns.append((sends[j][0] - wake) / 1e3)
    for sent, cpu in sends:
        i = bisect.bisect_right(times, sent)
        if i < len(wakes):
            after.append((wakes[i][1] - cpu) / 1e3)
    return turns, after


def measure(root: Path, count: int) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(root))
    me = [sys.executable, str(Path(__file__).resolve()), "--trace"]
    with tempfile.TemporaryDirectory(prefix="quicish-rpc-path-") as tmp:
        sfile, cfile = f"{tmp}/server.json", f"{tmp}/client.json"
        server = subprocess.Popen(
            ["taskset", "-c", "0", *me, sfile, str(root / "benchmarks" / "rpc_instructions.py"),
             "--serve"],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["port"]
        peer = str(root / "benchmarks" / "peers" / "quicish_peer.py")
        client = subprocess.run(
            ["taskset", "-c", "1", *me, cfile, peer, "client", "--port", str(port),
             "--workload", "rpc", "--size", "64", "--count", str(count)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        result = json.loads(client.stdout.strip().splitlines()[-1])
        server.wait(60)
        s = json.loads(Path(sfile).read_text())
        c = json.loads(Path(cfile).read_text())
    server_turns, server_after = _turns(s["wakes"], s["sends"])
    client_turns, client_after = _turns(c["wakes"], c["sends"])
    return {
        "root": str(root),
        "median_us": round(result["median_us"], 1),
        "server_turn_us": _median(server_turns),
        "client_turn_us": _median(client_turns),
        "hop_to_server_us": _median(_hops(c["sends"], s["wakes"])),
        "hop_to_client_us": _median(_hops(s["sends"], c["wakes"])),
        "server_after_send_cpu_us": _median(server_after),
        "client_after_send_cpu_us": _median(client_after),
    }


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--trace":
        trace(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--root", type=Path, default=HERE.parent)
    args = parser.parse_args()
    print(json.dumps(measure(args.root.resolve(), args.count)))


if __name__ == "__main__":
    main()
