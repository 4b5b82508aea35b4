"""What every benchmark peer shares: the wire protocol, the workloads, the command line.

The protocol is hq-interop-shaped and identical for all stacks (quicish, aioquic, qh3,
picoquic, TCP, TLS): on a stream the client sends request lines and the server answers each:

- ``GET /<n>\\r\\n``: the server sends ``n`` bytes of a fixed pattern (byte ``i`` is ``i % 256``);
- ``ECHO <m>\\r\\n``: from then on the server echoes every ``m``-byte message until EOF.

At EOF the server sends FIN (QUIC) or closes (TCP/TLS). QUIC stacks use one stream per
request (multiplexed); TCP/TLS have one byte stream per connection, so the "parallel streams"
workload pipelines its requests on one connection there.

The "many" workload holds ``--count`` connections open after one GET each and reads the
server's RSS and CPU time from ``/proc/<--server-pid>`` before and after.

Each peer script is ``python benchmarks/peers/<stack>_peer.py server|client ...``; the server
prints ``{"port": P}`` once listening, the client prints one JSON line with its results.
This module needs only the standard library (picoquic's peer imports it on another Python).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout without installing quicish
    sys.path.insert(0, str(ROOT))

CHUNK = 64 * 1024
READ_CHUNK = 256 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)
PATTERN_VIEW = memoryview(PATTERN)
ALPN = "hq-interop"
HOST = "127.0.0.1"
CONNECT_TIMEOUT = 10.0
WORKLOADS = ("bulk", "streams", "handshake", "rpc", "many")
MANY_WARMUP = 10  # connections opened (and kept) before the "many" baseline is read
MANY_BATCH = 10  # connections the "many" client opens at once
MANY_SETTLE = 0.5  # seconds for the server to finish its side before /proc is read
MANY_OPEN_LIMIT = 20.0  # seconds: the stacks' idle timeouts (30 s) would close the first ones
# The "many" workload's idle timeout (seconds) for the QUIC peers that can set one, when the
# harness sets it (``run_all.py --conns`` above 2,000: opening them outlasts 30 s).
IDLE_TIMEOUT_ENV = "BENCH_IDLE_TIMEOUT"


def idle_timeout() -> float | None:
    """The idle timeout the harness asks of the peers (``IDLE_TIMEOUT_ENV``), or None."""
    value = os.environ.get(IDLE_TIMEOUT_ENV)
    return float(value) if value else None


def many_open_limit() -> float:
    """Seconds the "many" client may take to open its connections: 10 s below the idle
    timeout, which would close the first ones."""
    timeout = idle_timeout()
    return MANY_OPEN_LIMIT if timeout is None else max(MANY_OPEN_LIMIT, timeout - 10.0)


class Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...
    async def readexactly(self, n: int) -> bytes: ...
    async def readline(self) -> bytes: ...


class Writer(Protocol):
    def write(self, data: Any) -> None: ...
    async def drain(self) -> None: ...


class Session(Protocol):
    """One connection of some stack, as the workloads see it."""

    multiplexed: bool  # True: open_stream may be called many times (QUIC)

    async def open_stream(self) -> tuple[Reader, Writer]: ...
    def end_stream(self, writer: Writer) -> None: ...  # FIN on QUIC; nothing on TCP/TLS
    async def close(self) -> None: ...


Dial = Callable[[str, int], Awaitable[Session]]
Serve = Callable[[str, int, "Handler", argparse.Namespace], Awaitable[int]]
Handler = Callable[[Any, Any], Awaitable[None]]


# ---------------------------------------------------------------- statistics


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sample."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, p99, min, max and count of latency samples (same unit as the input)."""
    return {
        "median": statistics.median(samples),
        "p99": percentile(samples, 99.0),
        "min": min(samples),
        "max": max(samples),
        "n": float(len(samples)),
    }


# ---------------------------------------------------------------- server side


def parse_request(line: bytes) -> tuple[str, int] | None:
    """``(command, number)`` from ``GET /<n>`` or ``ECHO <m>``; None when malformed."""
    parts = line.strip().split(b" ")
    if len(parts) != 2:
        return None
    verb, arg = parts
    try:
        if verb == b"GET" and arg.startswith(b"/"):
            return "GET", int(arg[1:])
        if verb == b"ECHO":
            return "ECHO", int(arg)
    except ValueError:
        return None
    return None


async def send_pattern(writer: Writer, n: int) -> None:
    """Write ``n`` bytes of the pattern in ``CHUNK`` pieces, draining after each."""
    remaining = n
    while remaining > 0:
        k = min(CHUNK, remaining)
        writer.write(PATTERN_VIEW[:k])
        remaining -= k
        await writer.drain()


async def handle(reader: Any, writer: Any) -> None:
    """Serve one stream (QUIC) or one connection (TCP/TLS) until the client's EOF."""
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            request = parse_request(line)
            if request is None:
                break
            verb, n = request
            if verb == "GET":
                await send_pattern(writer, n)
                continue
            count = 0
            while True:
                try:
                    message = await reader.readexactly(n)
                except asyncio.IncompleteReadError:
                    break
                writer.write(message)
                count += 1
                if count % 64 == 0:
                    await writer.drain()
            break
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        writer.close()  # after write_eof: a no-op on QUIC streams, closes a TCP connection
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    except Exception as exc:  # a peer bug must not kill the server process
        if not _is_peer_close(exc):
            print(f"server handler: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _is_peer_close(exc: BaseException) -> bool:
    return type(exc).__name__ in ("ConnectionClosedError", "StreamResetError")


# ---------------------------------------------------------------- client side


async def read_pattern(reader: Reader, n: int, progress: dict[str, int]) -> None:
    """Read ``n`` pattern bytes, checking chunk boundaries against the pattern."""
    got = 0
    while got < n:
        chunk = await reader.read(min(READ_CHUNK, n - got))
        if not chunk:
            raise ConnectionError(f"EOF after {got} of {n} bytes")
        if chunk[0] != got % 256 or chunk[-1] != (got + len(chunk) - 1) % 256:
            raise ValueError(f"payload corrupted near offset {got}")
        got += len(chunk)
        progress["bytes"] += len(chunk)


async def expect_eof(reader: Reader) -> None:
    extra = await reader.read(1)
    if extra:
        raise ValueError("server sent more bytes than requested")


async def connect_within(awaitable: Awaitable[Any], what: str) -> Any:
    """Await a connection attempt; a timeout becomes a ConnectionError that says so."""
    try:
        return await asyncio.wait_for(awaitable, CONNECT_TIMEOUT)
    except asyncio.TimeoutError:
        raise ConnectionError(f"{what} not done after {CONNECT_TIMEOUT:g} s") from None


CLOSE_TIMEOUTS = [0]  # closes that did not finish within CONNECT_TIMEOUT (reported, not fatal)


async def close_within(awaitable: Awaitable[Any]) -> None:
    """Await a connection close; one that hangs is counted and abandoned, not fatal."""
    try:
        await asyncio.wait_for(awaitable, CONNECT_TIMEOUT)
    except asyncio.TimeoutError:
        CLOSE_TIMEOUTS[0] += 1


def request_get(n: int) -> bytes:
    return f"GET /{n}\r\n".encode()


async def bulk(
    dial: Dial, host: str, port: int, size: int, progress: dict[str, int]
) -> dict[str, Any]:
    """One stream, ``size`` bytes from server to client."""
    session = await dial(host, port)
    try:
        reader, writer = await session.open_stream()
        start = time.perf_counter()
        writer.write(request_get(size))
        session.end_stream(writer)
        await writer.drain()
        await read_pattern(reader, size, progress)
        elapsed = time.perf_counter() - start
        if session.multiplexed:
            await expect_eof(reader)
    finally:
        await session.close()
    return {"bytes": size, "seconds": elapsed, "mbps": size * 8 / elapsed / 1e6}


async def streams(
    dial: Dial, host: str, port: int, count: int, size: int, progress: dict[str, int]
) -> dict[str, Any]:
    """``count`` parallel streams of ``size`` bytes (pipelined on one connection for TCP/TLS)."""
    session = await dial(host, port)
    try:
        if session.multiplexed:

            async def one() -> None:
                reader, writer = await session.open_stream()
                writer.write(request_get(size))
                session.end_stream(writer)
                await writer.drain()
                await read_pattern(reader, size, progress)
                await expect_eof(reader)

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(count)))
        else:
            reader, writer = await session.open_stream()
            start = time.perf_counter()
            writer.write(request_get(size) * count)
            await writer.drain()
            for _ in range(count):
                await read_pattern(reader, size, progress)
        elapsed = time.perf_counter() - start
    finally:
        await session.close()
    total = count * size
    return {
        "bytes": total,
        "streams": count,
        "seconds": elapsed,
        "mbps": total * 8 / elapsed / 1e6,
        "pipelined": not session.multiplexed,
    }


async def handshake(
    dial: Dial, host: str, port: int, count: int, size: int, progress: dict[str, int]
) -> dict[str, Any]:
    """``count`` sequential connections: connect + open stream + small request/response.

    One extra connection first warms up the process (lazy imports, first-use setup); it is
    not timed.
    """
    samples: list[float] = []
    for i in range(count + 1):
        start = time.perf_counter()
        session = await dial(host, port)
        try:
            reader, writer = await session.open_stream()
            writer.write(request_get(size))
            session.end_stream(writer)
            await writer.drain()
            await read_pattern(reader, size, progress)
            if i > 0:
                samples.append((time.perf_counter() - start) * 1e3)
            if session.multiplexed:
                await expect_eof(reader)
        finally:
            await session.close()
        progress["done"] = i
    stats = summarize(samples)
    return {f"{k}_ms": v for k, v in stats.items() if k != "n"} | {"n": count}


async def rpc(
    dial: Dial, host: str, port: int, count: int, size: int, progress: dict[str, int]
) -> dict[str, Any]:
    """``count`` sequential ``size``-byte request/response round trips on one stream."""
    session = await dial(host, port)
    samples: list[float] = []
    try:
        reader, writer = await session.open_stream()
        writer.write(f"ECHO {size}\r\n".encode())
        for i in range(count):
            message = i.to_bytes(8, "big") * (size // 8) + b"x" * (size % 8)
            start = time.perf_counter()
            writer.write(message)
            await writer.drain()
            answer = await reader.readexactly(size)
            samples.append((time.perf_counter() - start) * 1e6)
            if answer != message:
                raise ValueError(f"echo mismatch at message {i}")
            progress["done"] += 1
        if session.multiplexed:
            session.end_stream(writer)
            await writer.drain()
            await expect_eof(reader)
    finally:
        await session.close()
    stats = summarize(samples)
    return {f"{k}_us": v for k, v in stats.items() if k != "n"} | {"n": count}


def rss_bytes(status: str) -> int:
    """Resident set size from the text of ``/proc/<pid>/status`` (its ``VmRSS`` line, kB)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError("no VmRSS line")


def cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """User + system CPU time of all threads from the text of ``/proc/<pid>/stat``."""
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / ticks_per_second  # utime, stime


def process_usage(pid: int) -> tuple[int, float]:
    """``(RSS bytes, CPU seconds)`` of a process on this machine (Linux ``/proc``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    stat = Path(f"/proc/{pid}/stat").read_text()
    return rss_bytes(status), cpu_seconds(stat, os.sysconf("SC_CLK_TCK"))


def per_connection(
    before: tuple[int, float],
    after: tuple[int, float],
    count: int,
    seconds: float,
    tick: float = 0.01,
) -> dict[str, Any]:
    """The "many" figures from the server's usage before and after ``count`` connections.

    CPU time comes in clock ticks (``tick`` seconds): less than one counts as one, so the
    handshake rate is then a lower bound (``cpu_ticks`` says how coarse the figure is)."""
    rss = (after[0] - before[0]) / count
    cpu = max(after[1] - before[1], tick)
    return {
        "connections": count,
        "rss_per_conn_kb": rss / 1000,
        "server_cpu_ms_per_handshake": cpu / count * 1e3,
        "handshakes_per_core_s": count / cpu,
        "cpu_ticks": round(cpu / tick),
        "handshakes_per_s": count / seconds,
        "server_rss_mb": after[0] / 1e6,
    }


async def many(
    dial: Dial,
    host: str,
    port: int,
    count: int,
    size: int,
    progress: dict[str, int],
    server_pid: int,
) -> dict[str, Any]:
    """``count`` connections held open at once, each after one ``size``-byte GET: the server's
    RSS growth per idle connection and its CPU time per handshake (so per core).

    ``MANY_WARMUP`` connections first (kept open) so the baseline has the server's first-use
    setup; then ``MANY_BATCH`` at a time. The server's ``/proc`` is read after a short settle.
    """
    sessions: list[Session] = []

    async def open_one() -> None:
        session = await dial(host, port)
        sessions.append(session)
        reader, writer = await session.open_stream()
        writer.write(request_get(size))
        session.end_stream(writer)
        await writer.drain()
        await read_pattern(reader, size, progress)
        if session.multiplexed:
            await expect_eof(reader)
        progress["done"] += 1

    try:
        for _ in range(MANY_WARMUP):
            await open_one()
        progress["done"] = 0
        await asyncio.sleep(MANY_SETTLE)
        before = process_usage(server_pid)
        start = time.perf_counter()
        for first in range(0, count, MANY_BATCH):
            await asyncio.gather(*(open_one() for _ in range(min(MANY_BATCH, count - first))))
        elapsed = time.perf_counter() - start
        if elapsed > many_open_limit():
            raise RuntimeError(
                f"opening took {elapsed:.1f} s, near the idle timeout of the first ones: "
                "fewer connections (--conns)"
            )
        await asyncio.sleep(MANY_SETTLE)
        after = process_usage(server_pid)
    finally:
        with contextlib.suppress(asyncio.TimeoutError):  # closing is not measured
            await asyncio.wait_for(
                asyncio.gather(*(s.close() for s in sessions), return_exceptions=True),
                2 * CONNECT_TIMEOUT,
            )
    return per_connection(before, after, count, elapsed, 1 / os.sysconf("SC_CLK_TCK"))


async def run_client(dial: Dial, args: argparse.Namespace) -> dict[str, Any]:
    progress = {"bytes": 0, "done": 0}
    w = args.workload
    if w == "bulk":
        coro = bulk(dial, args.host, args.port, args.size, progress)
    elif w == "streams":
        coro = streams(dial, args.host, args.port, args.count, args.size, progress)
    elif w == "handshake":
        coro = handshake(dial, args.host, args.port, args.count, args.size, progress)
    elif w == "many":
        if args.server_pid is None:
            return {"ok": False, "error": "the many workload needs --server-pid"}
        coro = many(dial, args.host, args.port, args.count, args.size, progress, args.server_pid)
    else:
        coro = rpc(dial, args.host, args.port, args.count, args.size, progress)
    try:
        result = await asyncio.wait_for(coro, args.timeout)
    except asyncio.TimeoutError:
        detail = f"{progress['bytes'] / 1e6:.1f} MB received" if progress["bytes"] else ""
        if progress["done"]:
            detail = f"{progress['done']} of {args.count} done"
        return {
            "ok": False,
            "error": f"timeout after {args.timeout:g} s" + (f" ({detail})" if detail else ""),
            "bytes": progress["bytes"],
        }
    if CLOSE_TIMEOUTS[0]:
        result["close_timeouts"] = CLOSE_TIMEOUTS[0]
    return {"ok": True, "workload": w, "loop": loop_name()} | result


# ---------------------------------------------------------------- processes


def loop_name() -> str:
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


def use_uvloop() -> bool:
    """uvloop when installed unless ``QUICISH_UVLOOP=0`` (the same rule as quicish.aio.api.run)."""
    if os.environ.get("QUICISH_UVLOOP", "1") == "0":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run(coro: Awaitable[Any]) -> Any:
    if use_uvloop():
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    return asyncio.run(coro)  # type: ignore[arg-type]


def ensure_cert(args: argparse.Namespace) -> tuple[str, str]:
    """The server's certificate and key paths; a fresh self-signed pair when none was given."""
    if args.cert and args.key:
        return args.cert, args.key
    import tempfile

    cert_pem, key_pem = generate_cert()
    directory = tempfile.mkdtemp(prefix="quicish-bench-")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    Path(cert).write_bytes(cert_pem)
    Path(key).write_bytes(key_pem)
    return cert, key


def generate_cert() -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate for localhost/127.0.0.1 as PEM ``(cert, key)``."""
    try:
        from quicish.tls.certs import generate_self_signed

        return generate_self_signed(("localhost",))
    except ImportError:
        pass
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def main(
    name: str,
    dial: Dial,
    serve: Serve,
    argv: list[str] | None = None,
    extra: Callable[[], dict[str, Any]] | None = None,
) -> int:
    """Command line of a peer script: ``server`` or ``client``; ``extra()`` adds result fields."""
    parser = argparse.ArgumentParser(prog=f"{name}_peer.py", description=f"{name} benchmark peer")
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server", help='serve until killed; prints {"port": P}')
    server.add_argument("--host", default=HOST)
    server.add_argument("--port", type=int, default=0)
    server.add_argument("--cert", help="PEM certificate (default: a fresh self-signed one)")
    server.add_argument("--key", help="PEM private key")
    client = sub.add_parser("client", help="run one workload; prints one JSON line")
    client.add_argument("--host", default=HOST)
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--workload", choices=WORKLOADS, required=True)
    client.add_argument("--size", type=int, required=True, help="bytes per response / message")
    client.add_argument("--count", type=int, default=1, help="streams, connections or messages")
    client.add_argument("--timeout", type=float, default=120.0, help="seconds for the workload")
    client.add_argument(
        "--server-pid", type=int, help="many: the server process whose /proc is read"
    )
    args = parser.parse_args(argv)

    if args.role == "server":

        async def serve_forever() -> None:
            port = await serve(args.host, args.port, handle, args)
            emit({"port": port, "pid": os.getpid(), "loop": loop_name()})
            await asyncio.Event().wait()

        with contextlib.suppress(KeyboardInterrupt):
            run(serve_forever())
        return 0

    try:
        result = run(run_client(dial, args))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()}
    result["stack"] = name
    if extra is not None and result.get("ok"):
        result |= extra()
    emit(result)
    return 0 if result.get("ok") else 1
