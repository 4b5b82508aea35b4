"""Congestion control on lossy and shared paths, through the impairment relay (quicish.netem).

Three measurements, each stack with its own client and server processes on loopback:

1. goodput of a 10 MB bulk download (the server's controller sends) at 0, 0.1, 1 and 3%
   random loss both ways, on 50 Mbit/s / 30 ms RTT and 10 Mbit/s / 100 ms RTT, 100-packet
   queue; a run that has not finished by ``--timeout`` counts the bytes it got by then;
2. fairness: two flows (two servers behind one relay: one queue, one rate) for
   ``--duration`` seconds; each flow's bytes over the second half, Jain's index and the
   first flow's share;
3. queueing: one bulk flow on a 200-packet queue; the relay's record of queueing delay
   gives the median RTT against the base RTT.

Stacks: quicish with CUBIC and with BBR (``QUICISH_CC``), aioquic (its defaults), and
picoquic through aiopquic with CUBIC and BBR when ``--picoquic-python`` names a Python
(>= 3.12) that has aiopquic; the picoquic server gets ``--cert``/``--key`` made here.

    python benchmarks/bench_lossy.py [--quick] [--only goodput|fairness|queue]
        [--picoquic-python /path/to/py312/bin/python] [--json out.json] [--cc-trace DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from quicish.netem import LinkConfig, Netem  # noqa: E402
from quicish.tls.certs import generate_self_signed  # noqa: E402

PEERS = HERE / "peers"
LOSSES = (0.0, 0.1, 1.0, 3.0)
PATHS = {"50 Mbit/s, 30 ms": (50.0, 15.0), "10 Mbit/s, 100 ms": (10.0, 50.0)}
BIG = 1_000_000_000  # bytes asked for by flows that run until the deadline
SIZE = 10_000_000  # bytes of one goodput run's download
TIMEOUT, QUICK_TIMEOUT = 30.0, 15.0  # cap on one goodput run (s); --quick's


class Stack:
    """How to run one stack's server and client."""

    def __init__(self, name: str, python: str, script: str, env: dict[str, str], extra: list[str]):
        self.name, self.python, self.script = name, python, str(PEERS / script)
        self.env, self.extra = env, extra
        self.picoquic = script == "picoquic_peer.py"

    def start_server(self, cert: str, key: str) -> tuple[subprocess.Popen[str], int]:
        env = {**os.environ, **self.env}
        cmd = [self.python, self.script, "server", "--cert", cert, "--key", key]
        port = 0
        if self.picoquic:
            port = _free_port()
            cmd += ["--port", str(port), *self.extra]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise RuntimeError(f"{self.name}: server did not start")
        return proc, int(json.loads(line)["port"])

    def client(self, port: int, size: int, timeout: float) -> dict[str, Any]:
        env = {**os.environ, **self.env}
        if self.picoquic:
            cmd = [
                self.python,
                self.script,
                "client",
                "--port",
                str(port),
                "--workload",
                "bulk",
                "--size",
                str(size),
                "--timeout",
                str(timeout),
                *self.extra,
            ]
        else:
            cmd = [
                self.python,
                self.script,
                "client",
                "--port",
                str(port),
                "--workload",
                "bulk",
                "--size",
                str(size),
                "--timeout",
                str(timeout),
            ]
        try:
            out = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=timeout + 20
            ).stdout
        except subprocess.TimeoutExpired:
            return {"ok": False, "bytes": 0, "error": "client hung"}
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if lines else {"ok": False, "bytes": 0, "error": out[-200:]}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stacks(picoquic_python: str | None) -> dict[str, Stack]:
    py = sys.executable
    out = {
        "quicish CUBIC": Stack("quicish CUBIC", py, "quicish_peer.py", {"QUICISH_CC": "cubic"}, []),
        "quicish BBR": Stack("quicish BBR", py, "quicish_peer.py", {"QUICISH_CC": "bbr"}, []),
        "aioquic": Stack("aioquic", py, "aioquic_peer.py", {}, []),
    }
    if picoquic_python:
        for cc, label in (("cubic", "CUBIC"), ("bbr", "BBR")):
            name = f"picoquic {label}"
            out[name] = Stack(name, picoquic_python, "picoquic_peer.py", {}, ["--cc", cc])
    return out


def trace_stacks(all_stacks: dict[str, Stack], directory: Path) -> None:
    """quicish's servers log their BBR's state (``QUICISH_CC_TRACE``; one JSON object a
    line, each controller's ``cc`` field apart) to ``directory``/<stack name>.jsonl."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, stack in all_stacks.items():
        if stack.script.endswith("quicish_peer.py"):
            path = directory / (name.replace(" ", "_") + ".jsonl")
            stack.env = {**stack.env, "QUICISH_CC_TRACE": str(path)}


def goodput_mbit(result: dict[str, Any], timeout: float) -> float:
    if result.get("ok"):
        return float(result["bytes"]) * 8 / float(result["seconds"]) / 1e6
    return float(result.get("bytes", 0)) * 8 / timeout / 1e6


def jain(xs: list[float]) -> float:
    total = sum(xs)
    squares = sum(x * x for x in xs)
    return total * total / (len(xs) * squares) if squares else 0.0


# ---- the three measurements ---------------------------------------------------------------------


def measure_goodput(
    args: argparse.Namespace, all_stacks: dict[str, Stack], cert: tuple[str, str]
) -> dict[str, Any]:
    table: dict[str, Any] = {}
    paths = list(PATHS.items())[:1] if args.quick else list(PATHS.items())
    for path_name, (rate, delay) in paths:
        for name, stack in all_stacks.items():
            if args.stacks and name not in args.stacks.split(","):
                continue
            server, port = stack.start_server(*cert)
            try:
                for loss in LOSSES:
                    runs = []
                    for _ in range(args.repeat):
                        link = LinkConfig(
                            rate_mbit=rate, delay_ms=delay, queue=100, loss_pct=loss or None
                        )
                        with Netem(("127.0.0.1", port), both=link) as relay:
                            port_in = relay.address[1]
                            result = stack.client(port_in, args.size, args.timeout)
                        runs.append(goodput_mbit(result, args.timeout))
                    table.setdefault(path_name, {}).setdefault(name, {})[str(loss)] = runs
                    print(
                        f"goodput {path_name} {name} loss {loss}%: "
                        + ", ".join(f"{r:.1f}" for r in runs),
                        flush=True,
                    )
            finally:
                server.kill()
                server.wait()
    return table


def two_flows(
    a: Stack, b: Stack, cert: tuple[str, str], duration: float, queue: int = 100
) -> dict[str, Any]:
    sa, pa = a.start_server(*cert)
    sb, pb = b.start_server(*cert)
    try:
        link = LinkConfig(rate_mbit=50.0, delay_ms=15.0, queue=queue)
        with Netem(("127.0.0.1", pa), more_upstreams=(("127.0.0.1", pb),), both=link) as relay:
            clients = []
            for stack, address in ((a, relay.addresses[0]), (b, relay.addresses[1])):
                env = {**os.environ, **stack.env}
                if stack.picoquic:
                    cmd = [
                        stack.python,
                        stack.script,
                        "client",
                        "--port",
                        str(address[1]),
                        "--workload",
                        "bulk",
                        "--size",
                        str(BIG),
                        "--timeout",
                        str(duration),
                        *stack.extra,
                    ]
                else:
                    cmd = [
                        stack.python,
                        stack.script,
                        "client",
                        "--port",
                        str(address[1]),
                        "--workload",
                        "bulk",
                        "--size",
                        str(BIG),
                        "--timeout",
                        str(duration),
                    ]
                clients.append(
                    subprocess.Popen(
                        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
                    )
                )
            start = time.monotonic()
            time.sleep(duration / 2)
            half = relay.counters()
            half_at = time.monotonic()
            time.sleep(max(0.0, start + duration - 0.5 - time.monotonic()))
            end = relay.counters()
            end_at = time.monotonic()
            for proc in clients:
                proc.kill()
                proc.wait()
    finally:
        for s in (sa, sb):
            s.kill()
            s.wait()
    rates = []
    for port in (pa, pb):
        key = f"127.0.0.1:{port}"
        got = sum(f.to_client_bytes for f in end.flows if f.upstream == key)
        got -= sum(f.to_client_bytes for f in half.flows if f.upstream == key)
        rates.append(got * 8 / (end_at - half_at) / 1e6)
    delay = end.to_client.queue_delay
    return {
        "rates": rates,
        "jain": jain(rates),
        "share": rates[0] / sum(rates) if sum(rates) else 0.0,
        "queue_p50_ms": delay.percentile(50) * 1000,
    }


def measure_fairness(
    args: argparse.Namespace, all_stacks: dict[str, Stack], cert: tuple[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mine = ["quicish BBR"] if args.quick else ["quicish CUBIC", "quicish BBR"]
    for first in mine:
        others = [first, "aioquic"] + [n for n in ("picoquic CUBIC",) if n in all_stacks]
        for second in others:
            r = two_flows(all_stacks[first], all_stacks[second], cert, args.duration)
            out[f"{first} + {second}"] = r
            print(
                f"fairness {first} + {second}: {r['rates'][0]:.1f} / {r['rates'][1]:.1f} "
                f"Mbit/s, Jain {r['jain']:.3f}, share {r['share']:.2f}",
                flush=True,
            )
    return out


def measure_queue(
    args: argparse.Namespace, all_stacks: dict[str, Stack], cert: tuple[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    duration = min(args.duration, 15.0)
    for name in ("quicish CUBIC", "quicish BBR", "aioquic"):
        stack = all_stacks[name]
        server, port = stack.start_server(*cert)
        try:
            link = LinkConfig(rate_mbit=50.0, delay_ms=15.0, queue=200)
            with Netem(("127.0.0.1", port), both=link) as relay:
                result = stack.client(relay.address[1], BIG, duration)
                counters = relay.counters()
        finally:
            server.kill()
            server.wait()
        delay = counters.to_client.queue_delay
        base = 30.0
        r = {
            "goodput": goodput_mbit(result, duration),
            "queue_p50_ms": delay.percentile(50) * 1000,
            "queue_p90_ms": delay.percentile(90) * 1000,
            "median_rtt_ms": base + delay.percentile(50) * 1000,
        }
        r["rtt_ratio"] = r["median_rtt_ms"] / base
        out[name] = r
        print(
            f"queue {name}: {r['goodput']:.1f} Mbit/s, queueing p50 {r['queue_p50_ms']:.1f} ms "
            f"p90 {r['queue_p90_ms']:.1f} ms, median RTT {r['median_rtt_ms']:.1f} ms "
            f"({r['rtt_ratio']:.2f}x base)",
            flush=True,
        )
    return out


def _cell(runs: list[float]) -> str:
    if len(runs) == 1:
        return f"{runs[0]:.1f}"
    return f"{min(runs):.1f}-{max(runs):.1f}"


def markdown(results: dict[str, Any]) -> str:
    """The tables of RESULTS.md's "Lossy paths" section."""
    out: list[str] = []
    for path_name, by_stack in results.get("goodput", {}).items():
        out.append(f"Goodput (Mbit/s), 10 MB download, {path_name}, 100-packet queue:\n")
        out.append("| random loss | " + " | ".join(by_stack) + " |")
        out.append("|---|" + "---:|" * len(by_stack))
        for loss in LOSSES:
            cells = [_cell(by_stack[name][str(loss)]) for name in by_stack]
            out.append(f"| {loss:g}% | " + " | ".join(cells) + " |")
        out.append("")
    fairness = results.get("fairness", {})
    if fairness:
        out.append(
            "Two flows through one bottleneck (50 Mbit/s, 30 ms, 100-packet queue), "
            "second half of the run:\n"
        )
        out.append("| flows | first (Mbit/s) | second (Mbit/s) | Jain index | first's share |")
        out.append("|---|---:|---:|---:|---:|")
        for pair, r in fairness.items():
            a, b = r["rates"]
            out.append(f"| {pair} | {a:.1f} | {b:.1f} | {r['jain']:.3f} | {r['share']:.2f} |")
        out.append("")
    queue = results.get("queue", {})
    if queue:
        out.append(
            "Queueing during a bulk transfer (50 Mbit/s, 30 ms base RTT, 200-packet queue):\n"
        )
        out.append(
            "| stack | goodput (Mbit/s) | queueing p50 (ms) | p90 (ms) | median RTT (ms) "
            "| x base RTT |"
        )
        out.append("|---|---:|---:|---:|---:|---:|")
        for name, r in queue.items():
            out.append(
                f"| {name} | {r['goodput']:.1f} | {r['queue_p50_ms']:.1f} | "
                f"{r['queue_p90_ms']:.1f} | {r['median_rtt_ms']:.1f} | {r['rtt_ratio']:.2f} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", choices=["goodput", "fairness", "queue"])
    p.add_argument("--quick", action="store_true", help="one path, fewer pairs, short runs")
    p.add_argument("--size", type=int, default=SIZE, help="bulk bytes (default 10 MB)")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="cap on one bulk run (s)")
    p.add_argument("--duration", type=float, default=30.0, help="fairness run length (s)")
    p.add_argument("--repeat", type=int, default=1, help="runs per goodput point")
    p.add_argument("--picoquic-python", default=os.environ.get("PICOQUIC_PYTHON"))
    p.add_argument("--stacks", help="comma-separated stack names (goodput only)")
    p.add_argument("--losses", help="comma-separated loss percentages (goodput only)")
    p.add_argument("--json", type=Path, help="write the numbers here")
    p.add_argument("--report", type=Path, help="only print the tables of a --json file")
    p.add_argument(
        "--cc-trace",
        type=Path,
        help="quicish servers append BBR's state every 50 ms to DIR/<stack>.jsonl",
    )
    args = p.parse_args(argv)
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return 0
    if args.quick:
        args.timeout, args.duration = min(args.timeout, QUICK_TIMEOUT), min(args.duration, 10.0)
    all_stacks = stacks(args.picoquic_python)
    if args.cc_trace:
        trace_stacks(all_stacks, args.cc_trace)
    if args.losses:
        global LOSSES
        LOSSES = tuple(float(x) for x in args.losses.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="quicish-lossy-"))
    cert_pem, key_pem = generate_self_signed(("localhost",))
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    cert = (str(tmp / "cert.pem"), str(tmp / "key.pem"))
    results: dict[str, Any] = {}
    if args.only in (None, "goodput"):
        results["goodput"] = measure_goodput(args, all_stacks, cert)
    if args.only in (None, "fairness"):
        results["fairness"] = measure_fairness(args, all_stacks, cert)
    if args.only in (None, "queue"):
        results["queue"] = measure_queue(args, all_stacks, cert)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
