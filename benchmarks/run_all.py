"""All transport benchmarks in one run (``make bench``): quicish, aioquic, qh3, picoquic
(through aiopquic), TCP and TLS over TCP.

Workloads (each for each stack; a fresh server process per stack and workload, the client in
another process, both on 127.0.0.1):

1. bulk goodput: one stream, ``--size-mb`` MB from server to client (Mbit/s);
2. ``--streams`` parallel streams of ``--stream-mb`` MB each (Mbit/s; TCP/TLS pipeline the
   requests on one connection);
3. handshake latency: ``--handshakes`` sequential connections, each timed from connect to the
   64-byte answer of a first request (median, p99);
4. RPC latency: ``--rpcs`` sequential ``--rpc-size``-byte request/response round trips on one
   stream (median, p99);
5. many connections: ``--conns`` connections opened (10 at a time, each with one 64-byte GET)
   and held open idle: the server's RSS growth per connection and its CPU time per handshake
   (handshakes per second per core), read from its ``/proc``; above 2,000 the QUIC peers get
   a longer idle timeout (``many_env``: 10,000 take 40-90 s to open);
6. lossy paths (``lossy``, ``harness_lossy``): bench_lossy's goodput through the impairment
   relay at 0/0.1/1/3% random loss on its two paths, quicish (per congestion controller) beside
   aioquic and picoquic CUBIC/BBR, the median of ``--repeat`` runs per point.

picoquic runs under a Python >= 3.12 with aiopquic (``picoquic_env``: ``PICOQUIC_PYTHON``, else
a ``.venv-picoquic`` made from pyenv's 3.12 or ``python3.12``); without one, or without qh3
installed, the stack's rows say "skipped" and why.

Writes the table between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in
``benchmarks/RESULTS.md`` (the rest of the file is kept) and a chart to
``benchmarks/results.png``. ``--quick`` uses small sizes for a smoke run; ``--only`` picks
stacks; ``--no-write`` only prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import selectors
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import harness_chart as chart
import harness_report as report
import picoquic_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peers"
STACK_ORDER = ["quicish", "quicish-1200", "aioquic", "qh3", "picoquic", "tcp", "tls"]
# A stack run by another stack's peer with settings of its own: (peer, environment).
VARIANTS = {"quicish-1200": ("quicish", {"QUICISH_MAX_DATAGRAM_SIZE": "1200"})}
COLORS = {
    "quicish": (230, 110, 30),
    "quicish-1200": (240, 170, 100),
    "aioquic": (50, 100, 190),
    "qh3": (140, 80, 170),
    "picoquic": (190, 50, 60),
    "tcp": (120, 120, 120),
    "tls": (60, 150, 80),
}
SHORT = {
    "quicish": "quicish",
    "quicish-1200": "quicish 1200",
    "aioquic": "aioquic",
    "qh3": "qh3",
    "picoquic": "picoquic",
    "tcp": "TCP",
    "tls": "TLS/TCP",
}
SERVER_START_TIMEOUT = 30.0
PRIMARY = {  # the figure that picks the best of repeated runs
    "bulk": report.Metric("bulk", "mbps", "bulk (Mbit/s)", True),
    "streams": report.Metric("streams", "mbps", "parallel streams (Mbit/s)", True),
    "handshake": report.Metric("handshake", "median_ms", "handshake + 1st RTT median (ms)", False),
    "rpc": report.Metric("rpc", "median_us", "RPC median (µs)", False),
    "many": report.Metric("many", "rss_per_conn_kb", "RSS per idle connection (KB)", False),
}
MB = 1_000_000
WORKLOADS = ("bulk", "streams", "handshake", "rpc", "many")  # as peers/common.py
IDLE_TIMEOUT_ENV = "BENCH_IDLE_TIMEOUT"  # as peers/common.py
LOSSY = "lossy"  # harness_lossy's workload: not a peer workload, the relay drives it
ALL_WORKLOADS = (*WORKLOADS, LOSSY)
LOSSY_STACKS = ("quicish", "aioquic", "picoquic")  # the stacks with lossy-path rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size-mb", type=float, default=None, help="bulk transfer size (default 100)")
    p.add_argument("--streams", type=int, default=None, help="parallel streams (default 100)")
    p.add_argument("--stream-mb", type=float, default=None, help="MB per stream (default 1)")
    p.add_argument("--handshakes", type=int, default=None, help="connections (default 50)")
    p.add_argument("--rpcs", type=int, default=None, help="round trips (default 1000)")
    p.add_argument("--rpc-size", type=int, default=64, help="RPC message bytes (default 64)")
    p.add_argument(
        "--conns", type=int, default=None, help="idle connections held at once (default 2000)"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per stack and workload; the best is reported (default 3)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin server and client processes to two different CPUs",
    )
    p.add_argument(
        "--only",
        default=",".join(STACK_ORDER),
        help="comma-separated stacks (default: " + ",".join(STACK_ORDER) + ")",
    )
    p.add_argument(
        "--timeout-scale", type=float, default=1.0, help="multiply every per-run timeout by this"
    )
    p.add_argument(
        "--workloads",
        default=",".join(ALL_WORKLOADS),
        help="comma-separated workloads (default: " + ",".join(ALL_WORKLOADS) + ")",
    )
    p.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--chart", type=Path, default=HERE / "results.png")
    p.add_argument(
        "--chart-backend",
        choices=["auto", "builtin", "matplotlib"],
        default="auto",
        help="auto: matplotlib when installed, else the built-in PNG writer",
    )
    p.add_argument("--no-write", action="store_true", help="print the table only")
    args = p.parse_args(argv)
    quick = {
        "size_mb": 5.0,
        "streams": 100,
        "stream_mb": 0.05,
        "handshakes": 10,
        "rpcs": 200,
        "conns": 100,
    }
    full = {
        "size_mb": 100.0,
        "streams": 100,
        "stream_mb": 1.0,
        "handshakes": 50,
        "rpcs": 1000,
        "conns": 2000,
    }
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    stacks = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in stacks if s not in STACK_ORDER]
    if unknown or not stacks:
        p.error(f"--only: unknown stack(s) {unknown}; choose from {STACK_ORDER}")
    args.stacks = [s for s in STACK_ORDER if s in stacks]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not workloads or set(workloads) - set(ALL_WORKLOADS):
        p.error(f"--workloads: choose from {list(ALL_WORKLOADS)}")
    args.workloads = [w for w in ALL_WORKLOADS if w in workloads]
    return args


# ---------------------------------------------------------------- processes


def client_plan(args: argparse.Namespace) -> dict[str, tuple[list[str], float]]:
    """Per workload: the client's arguments and its timeout in seconds."""
    floor_bps = 4e6  # a run slower than 4 Mbit/s (plus 30 s) counts as failed
    bulk = round(args.size_mb * MB)
    per_stream = round(args.stream_mb * MB)
    total = per_stream * args.streams
    plan = {
        "bulk": (["--size", str(bulk)], 30 + bulk * 8 / floor_bps),
        "streams": (
            ["--size", str(per_stream), "--count", str(args.streams)],
            30 + total * 8 / floor_bps,
        ),
        "handshake": (
            ["--size", "64", "--count", str(args.handshakes)],
            20 + 2.0 * args.handshakes,
        ),
        "rpc": (["--size", str(args.rpc_size), "--count", str(args.rpcs)], 20 + 0.05 * args.rpcs),
        "many": (["--size", "64", "--count", str(args.conns)], 30 + 0.05 * args.conns),
    }
    return {w: (a, t * args.timeout_scale) for w, (a, t) in plan.items()}


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " / ".join(line.strip() for line in text[-lines:])


def _read_port(proc: subprocess.Popen[str], timeout: float) -> int | None:
    """The port from the server's first JSON line, or None if it died or stayed silent."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                return None
            try:
                return int(json.loads(line)["port"])
            except (ValueError, KeyError, TypeError):
                continue
    return None


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def cpu_pair() -> tuple[int, int] | None:
    """(server CPU, client CPU): two different CPUs this process may use, or None.

    Without pinning the scheduler sometimes runs both processes on one CPU for a whole run
    (wake-affine placement), halving a CPU-bound transfer at random: measured 230 vs 460
    Mbit/s for the same build, with identical CPU time. Every stack is pinned alike.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return None
    cpus = sorted(getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def _pinned(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpu`` (None: no pinning)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def many_env(conns: int) -> dict[str, str]:
    """The "many" workload's environment: above 2,000 connections, opening them outlasts
    the stacks' 30 s idle timeouts (10,000 take 40-90 s on a 2-core machine), so the QUIC
    peers get an idle timeout of ``conns / 50`` seconds (10,000: 200 s)."""
    if conns <= 2000:
        return {}
    return {IDLE_TIMEOUT_ENV: f"{max(60.0, conns / 50):g}"}


def run_one(
    stack: str,
    workload: str,
    client_args: list[str],
    timeout: float,
    cert: str,
    key: str,
    workdir: Path,
    cpus: tuple[int, int] | None = None,
    python: str = sys.executable,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start the stack's server, run one client workload against it, stop the server.

    ``cpus``: pin the server to the first CPU and the client to the second. ``python`` runs
    both (picoquic's is another interpreter). ``extra_env``: more environment for both."""
    peer, settings = VARIANTS.get(stack, (stack, {}))
    script = str(PEERS / f"{peer}_peer.py")
    server_err = workdir / f"{stack}-{workload}-server.err"
    client_err = workdir / f"{stack}-{workload}-client.err"
    env = dict(os.environ, PYTHONUNBUFFERED="1", **settings, **(extra_env or {}))
    with open(server_err, "w") as err:
        server = subprocess.Popen(
            [python, script, "server", "--cert", cert, "--key", key],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            cwd=ROOT,
            preexec_fn=_pinned(cpus[0] if cpus else None),
        )
    try:
        port = _read_port(server, SERVER_START_TIMEOUT)
        if port is None:
            reason = _tail(server_err) or f"no port within {SERVER_START_TIMEOUT:g} s"
            return {"ok": False, "error": f"server did not start: {reason}"}
        command = [
            python,
            script,
            "client",
            "--port",
            str(port),
            "--workload",
            workload,
            "--timeout",
            f"{timeout:g}",
            *client_args,
            *(["--server-pid", str(server.pid)] if workload == "many" else []),
        ]
        try:
            with open(client_err, "w") as err:
                done = subprocess.run(
                    command,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    env=env,
                    cwd=ROOT,
                    timeout=timeout + 20,
                    preexec_fn=_pinned(cpus[1] if cpus else None),
                )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"client killed after {timeout + 20:.0f} s"}
        result = _last_json(done.stdout)
        if result is None:
            reason = _tail(client_err, 1) or f"exit status {done.returncode}"
            result = {"ok": False, "error": f"client crashed: {reason}"}
        if not result.get("ok") and server.poll() is not None:
            result["error"] = f"{result.get('error')}; server exited: {_tail(server_err, 1)}"
        return result
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# ---------------------------------------------------------------- machine and output


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(picoquic: str | None = None) -> list[str]:
    sys.path.insert(0, str(PEERS))
    import common

    cpus = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    uv = _version("uvloop")
    loop = f"uvloop {uv}" if common.use_uvloop() and uv else "asyncio default loop"
    try:
        import quicish

        accelerated = (
            f"quicish {quicish.__version__} (C core: {quicish.ACCELERATED}, "
            f"C packet cipher: {quicish.CRYPTO_ACCELERATED})"
        )
    except Exception as exc:  # a broken tree still gets its numbers for the others
        accelerated = f"quicish not importable ({type(exc).__name__})"
    return [
        f"nproc {usable} (of {cpus}), {_cpu_model()}",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"event loop: {loop}",
        accelerated,
        f"aioquic {_version('aioquic') or 'not installed'}",
        f"qh3 {_version('qh3') or 'not installed'}",
        f"aiopquic {picoquic or 'not available'}",
        ssl.OPENSSL_VERSION,
        f"cryptography {_version('cryptography')}",
        f"load average at start {load}",
    ]


def reproduce_command(argv: list[str]) -> str:
    return " ".join([".venv/bin/python", "benchmarks/run_all.py", *map(shlex.quote, argv)])


def notes_for(
    args: argparse.Namespace, results: report.Results, lossy: report.Lossy | None = None
) -> list[str]:
    tls_cipher = next(
        (r.get("cipher") for r in results.get("tls", {}).values() if r.get("cipher")), None
    )
    notes = [
        "QUIC stacks: AES-128-GCM only, no DATAGRAM frames, each stack's defaults otherwise: "
        "flow-control windows, congestion control (quicish CUBIC, aioquic NewReno, qh3 its "
        "built-in one, picoquic BBRv1 as aiopquic sets it) and datagram size (aioquic 1200 "
        "bytes, qh3 1280 with its probing, picoquic with path MTU discovery, quicish its "
        "`Config` default).",
        "picoquic: aiopquic on its own Python >= 3.12 (`.venv-picoquic` with aiopquic and "
        "uvloop, made by the harness, or `PICOQUIC_PYTHON`); its C network thread runs beside "
        "the Python thread in each process, and each client connection has its own thread and "
        "socket.",
        f"TLS over TCP: TLS 1.3, OpenSSL's default suite (negotiated: {tls_cipher or 'n/a'}); "
        "Python's ssl module cannot choose TLS 1.3 suites.",
        "Parallel streams: QUIC stacks open one stream per request on one connection; TCP and "
        "TLS have no streams, so the same requests are pipelined on one connection.",
        "Handshake + first round trip: connect, open a stream, send `GET /64`, receive the 64 "
        "bytes; connections are sequential, closing is not timed, and one untimed connection "
        "first warms up the client process.",
        "RPC: one stream, `ECHO n` then n-byte messages, each written and its echo read before "
        "the next; TCP_NODELAY on TCP/TLS.",
        f"Many connections: {args.conns:,} connections from one client process, opened 10 at "
        "a time, each with one `GET /64`, then held open idle; 10 more first (not counted) for "
        "the server's first-use setup"
        + (
            f" (QUIC idle timeouts of {many_env(args.conns)[IDLE_TIMEOUT_ENV]} s, as "
            "opening them all outlasts the usual 30 s)"
            if many_env(args.conns)
            else ""
        )
        + ". The server's RSS and CPU time (all threads) are read "
        "from /proc 0.5 s after the last one opened: RSS growth ÷ connections, and connections "
        "÷ CPU seconds as handshakes per second per core (the GET included; CPU time comes in "
        "10 ms clock ticks, so a cheap server's figure, TCP's, is coarse). Wall: the same "
        "connections ÷ the seconds to open them, the client's speed included.",
        "All figures come from one invocation on a machine that may be shared with other "
        "work; compare ratios within it, not absolute numbers across invocations.",
    ]
    if lossy is not None:
        notes.insert(-1, report.lossy_note(lossy))
    loops = {
        stack: {run.get("loop") for run in runs.values() if run.get("loop")}
        for stack, runs in results.items()
    }
    odd = sorted(f"{s}: {', '.join(sorted(n))}" for s, n in loops.items() if n - {"uvloop"})
    if odd:
        notes.append("Stacks not on uvloop in this run (event loop): " + "; ".join(odd) + ".")
    hung = sorted(
        f"{stack}/{workload}: {run['close_timeouts']}"
        for stack, runs in results.items()
        for workload, run in runs.items()
        if run.get("close_timeouts")
    )
    if hung:
        notes.append(
            "Connection closes that did not finish within 10 s (abandoned, not timed): "
            + ", ".join(hung)
            + "."
        )
    pair = None if args.no_pin else cpu_pair()
    notes.append(
        f"Each server process was pinned to CPU {pair[0]} and each client to CPU {pair[1]}, "
        "for every stack (the scheduler otherwise sometimes shares one CPU between them for "
        "a whole run)."
        if pair
        else "Processes were not pinned to CPUs (`--no-pin`, or fewer than 2 CPUs)."
    )
    if args.repeat > 1:
        notes.insert(
            0,
            f"Each figure is the best of {args.repeat} runs (by throughput or by "
            "median latency), the runs interleaved across stacks.",
        )
    if args.quick:
        notes.insert(0, "**Quick smoke run (`--quick`): sizes too small to be representative.**")
    return notes


def chart_panels(
    results: report.Results, stacks: list[str], wanted: list[report.Metric]
) -> list[chart.Panel]:
    """One panel per metric in ``wanted``, one bar per stack."""
    panels = []
    for m in wanted:
        better = "higher is better" if m.higher_is_better else "lower is better"
        panel = chart.Panel(f"{m.label}, {better}")
        for stack in stacks:
            value = report.value_of(results, stack, m)
            if value is None:
                text = "skipped" if report.skipped(results, stack, m.workload) else "failed"
            else:
                r = report.ratio(
                    value, report.value_of(results, report.REFERENCE, m), m.higher_is_better
                )
                text = report.fmt_number(value) + _chart_ratio(
                    r, m.higher_is_better, memory=m.workload == "many"
                )
            panel.bars.append(chart.Bar(SHORT[stack], value, text, COLORS[stack]))
        panels.append(panel)
    return panels


def _chart_ratio(r: float | None, higher_is_better: bool, memory: bool = False) -> str:
    if r is None:
        return ""
    if higher_is_better:
        return f" ({report.fmt_ratio(r)} aioquic)"
    better, worse = ("less", "more") if memory else ("faster", "slower")
    if r >= 1:
        return f" ({report.fmt_ratio(r)} {better} than aioquic)"
    return f" ({report.fmt_ratio(1 / r)} {worse} than aioquic)"


def write_chart(
    args: argparse.Namespace, panels: list[chart.Panel | chart.LinePanel], subtitle: str
) -> str:
    title = "quicish transport benchmarks (loopback, one run)"
    if args.chart_backend in ("auto", "matplotlib") and chart.render_matplotlib(
        title, panels, args.chart, subtitle
    ):
        return "matplotlib"
    if args.chart_backend == "matplotlib":
        print("note: matplotlib is not installed; using the built-in PNG writer", file=sys.stderr)
    args.chart.write_bytes(chart.render_png(title, panels, subtitle=subtitle))
    return "built-in PNG writer"


def stack_pythons(stacks: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The interpreter for each stack that can run here, and why each other one cannot."""
    pythons: dict[str, str] = {}
    skips: dict[str, str] = {}
    for stack in stacks:
        if stack in ("aioquic", "qh3") and _version(stack) is None:
            skips[stack] = f"{stack} is not installed (`pip install -e '.[bench]'`, as make bench)"
        elif stack == "picoquic":
            python, why = picoquic_env.picoquic_python(ROOT)
            if python is None:
                skips[stack] = why or "no Python with aiopquic"
            else:
                pythons[stack] = python
        else:
            pythons[stack] = sys.executable
    return pythons, skips


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    sys.path.insert(0, str(PEERS))
    import common

    if args.repeat < 1:
        print("--repeat must be at least 1", file=sys.stderr)
        return 2
    columns = report.metrics(
        args.size_mb, args.streams, args.stream_mb, args.handshakes, args.rpcs, args.rpc_size
    )
    many = report.many_metrics(args.conns)
    charted = [columns[0], columns[1], columns[2], columns[4], many[0], many[1]]
    columns = [m for m in columns if m.workload in args.workloads]
    many = [m for m in many if m.workload in args.workloads]
    pythons, skips = stack_pythons(args.stacks)
    machine = machine_info(
        picoquic_env.aiopquic_version(pythons["picoquic"]) if "picoquic" in pythons else None
    )
    results: report.Results = {
        stack: {w: {"ok": False, "error": f"skipped: {why}"} for w in common.WORKLOADS}
        for stack, why in skips.items()
    }
    running = [stack for stack in args.stacks if stack not in skips]
    for stack, why in skips.items():
        print(f"{stack}: skipped: {why}", flush=True)
    plan = client_plan(args)
    with tempfile.TemporaryDirectory(prefix="quicish-bench-") as tmp:
        workdir = Path(tmp)
        cert_pem, key_pem = common.generate_cert()
        cert, key = workdir / "cert.pem", workdir / "key.pem"
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        cpus = None if args.no_pin else cpu_pair()
        for workload in [w for w in args.workloads if w in WORKLOADS]:
            client_args, timeout = plan[workload]
            runs: dict[str, list[dict[str, Any]]] = {stack: [] for stack in running}
            for attempt in range(args.repeat):  # interleaved, so load drifts hit all stacks
                for stack in running:
                    started = time.monotonic()
                    label = f" #{attempt + 1}" if args.repeat > 1 else ""
                    print(f"[{workload}] {stack}{label} ...", end=" ", flush=True)
                    result = run_one(
                        stack,
                        workload,
                        client_args,
                        timeout,
                        str(cert),
                        str(key),
                        workdir,
                        cpus,
                        pythons[stack],
                        many_env(args.conns) if workload == "many" else None,
                    )
                    runs[stack].append(result)
                    print(_summary(result), f"({time.monotonic() - started:.1f} s)", flush=True)
            key_metric = PRIMARY[workload]
            for stack in running:
                results.setdefault(stack, {})[workload] = report.best_run(
                    runs[stack], key_metric.field, key_metric.higher_is_better
                )
        lossy, lossy_panels = None, []
        if LOSSY in args.workloads and set(args.stacks) & set(LOSSY_STACKS):
            import harness_lossy  # imports quicish (bench_lossy's relay): only when asked for

            lossy = harness_lossy.run(
                args.stacks,
                pythons.get("picoquic"),
                skips,
                (str(cert), str(key)),
                args.repeat,
                args.quick,
            )
            lossy_panels = harness_lossy.panels(lossy)
    table = report.compose_tables(results, columns, many, args.stacks)
    lossy_tables = report.lossy_tables(lossy) if lossy else ""
    print()
    print("\n\n".join(t for t in (table, lossy_tables) if t))
    checks = []
    peer_workloads = set(args.workloads) & set(WORKLOADS)  # the lossy one has its own line
    if {"quicish", "aioquic"} <= set(args.stacks) and peer_workloads:
        checks += report.must_show(results)
    if "quicish" in args.stacks and peer_workloads:
        checks += report.must_show_c_stacks(results)
    if lossy:
        checks += report.lossy_must_show(lossy)
    for line in checks:
        print(line)
    if args.no_write:
        return 0
    primary = [PRIMARY[w] for w in args.workloads if w in PRIMARY]
    if args.repeat > 1 and primary:
        spread = report.spread_table(results, primary, args.stacks)
        table += "\n\nEvery run behind the best figures, in order:\n\n" + spread
    table = "\n\n".join(t for t in (table, lossy_tables) if t)
    section = report.render_section(
        table,
        machine,
        reproduce_command(argv),
        notes_for(args, results, lossy),
        extra=["Issue targets in this run:", *checks] if checks else None,
        chart_path=os.path.relpath(args.chart.resolve(), args.output.resolve().parent),
    )
    existing = args.output.read_text() if args.output.exists() else None
    args.output.write_text(report.update_section(existing, section))
    subtitle = f"{machine[0]}; {machine[3]}"
    wanted = [m for m in charted if m.workload in args.workloads]
    panels: list[chart.Panel | chart.LinePanel] = [*chart_panels(results, args.stacks, wanted)]
    panels += lossy_panels
    backend = write_chart(args, panels, subtitle)
    print(f"\nwrote {args.output} and {args.chart} ({backend})")
    return 0


def _summary(result: dict[str, Any]) -> str:
    if not result.get("ok"):
        return f"failed: {result.get('error')}"
    if "mbps" in result:
        return f"{result['mbps']:.1f} Mbit/s"
    if "rss_per_conn_kb" in result:
        per_core = result.get("handshakes_per_core_s") or 0.0
        return (
            f"{result['rss_per_conn_kb']:.1f} KB per connection, "
            f"{per_core:.0f} handshakes/s per core"
        )
    if "median_ms" in result:
        return f"median {result['median_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
    return f"median {result['median_us']:.0f} µs, p99 {result['p99_us']:.0f} µs"


if __name__ == "__main__":
    sys.exit(main())
