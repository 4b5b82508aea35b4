"""``serve(..., workers=2)``: real worker processes on one UDP port, real sockets.

The server's stream handler answers a request ``<token> <size> [slow]`` with a line naming
its worker (index and pid), then ``size`` bytes of a fixed pattern; and each worker writes
the tokens it served to a report file of its own (``worker-<i>.log``), so a test can see
which worker served what, and that a 0-RTT request ran once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aio_support import timed
from support import client_config, server_config

import quicish
from interop.tap import Tap
from quicish import Config, QuicStreamReader, QuicStreamWriter, hq
from quicish.aio import workers as workers_module
from quicish.aio.workers import WorkerError, WorkerPool, current_worker
from quicish.errors import ConfigError, QuicError
from quicish.keyfile import FleetSecrets
from quicish.lb import CidFormat, QuicLbConfig, decode
from quicish.netem import Netem
from quicish.tls.certs import generate_self_signed
from quicish.tls.tickets import ReplayFilter

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="kernel steering needs Linux"
)

ROOT = Path(__file__).resolve().parent.parent
PATTERN = hashlib.sha256(b"quicish workers").digest() * 2048  # 64 KiB
REPORTS: Path | None = None  # the workers' report directory (set before they are forked)


def body(size: int) -> bytes:
    reps, rest = divmod(size, len(PATTERN))
    return PATTERN * reps + PATTERN[:rest]


async def handler(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
    token, size, *mode = (await reader.read()).decode().split()
    worker = current_worker()
    worker = -1 if worker is None else worker  # -1: not a worker (one process)
    assert REPORTS is not None
    with open(REPORTS / f"worker-{worker}.log", "a") as report:
        report.write(f"{token} {os.getpid()}\n")
    writer.write(f"{worker} {os.getpid()}\n".encode())
    data = memoryview(body(int(size)))
    chunk = 16384 if mode else 1 << 20
    for start in range(0, len(data), chunk):
        writer.write(bytes(data[start : start + chunk]))
        await writer.drain()
        if mode:  # slow: about 1.6 MB/s, so that a transfer is in progress for a while
            await asyncio.sleep(0.01)
    writer.write_eof()


def reports() -> dict[int, list[str]]:
    """Tokens each worker served, in order."""
    assert REPORTS is not None
    return {
        int(p.stem.split("-", 1)[1]): [line.split()[0] for line in p.read_text().splitlines()]
        for p in sorted(REPORTS.glob("worker-*.log"))
    }


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[WorkerPool]:
    global REPORTS
    REPORTS = tmp_path
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(idle_timeout=5.0),
        on_stream=handler,
        workers=2,
        drain_timeout=3.0,
    )
    assert server.steered and server.count == 2 and None not in server.pids
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def request(
    conn: quicish.QuicConnection, token: str, size: int = 0, slow: bool = False
) -> tuple[int, int, bytes]:
    """(worker index, worker pid, body) of one request on a new stream."""
    reader, writer = await conn.open_stream()
    writer.write(f"{token} {size}{' slow' if slow else ''}".encode())
    writer.write_eof()
    head = await reader.readline()
    worker, pid = map(int, head.split())
    return worker, pid, await reader.read()


def client(**kw: object) -> quicish.Config:
    kw.setdefault("idle_timeout", 5.0)
    return client_config(**kw)


@timed(30)
async def test_connections_spread_over_both_workers_each_served_by_one(
    pool: WorkerPool,
) -> None:
    async def one(n: int) -> tuple[str, set[tuple[int, int]]]:
        served = set()
        async with quicish.connect(*pool.address, config=client()) as conn:
            for i in range(3):
                worker, pid, data = await request(conn, f"c{n}", 20000 * i)
                assert data == body(20000 * i)
                served.add((worker, pid))
                await asyncio.sleep(0.02)
        return f"c{n}", served

    results: list[tuple[str, set[tuple[int, int]]]] = []
    for batch in range(4):
        results += await asyncio.gather(*(one(batch * 10 + n) for n in range(10)))
    # every connection: one worker end to end
    assert all(len(served) == 1 for _, served in results), results
    by_worker = Counter(next(iter(served))[0] for _, served in results)
    # each worker's own report agrees: each token three times, in one report only
    report = reports()
    share = {w: len(set(tokens)) for w, tokens in report.items()}
    print(f"connections per worker: {dict(by_worker)} (reports: {share})")
    assert share == dict(by_worker)
    assert set(share) == {0, 1} and min(share.values()) > 0 and sum(share.values()) == 40
    for tokens in report.values():
        assert all(count == 3 for count in Counter(tokens).values())
    assert not set(report[0]) & set(report[1])
    assert {pid for _, s in results for _, pid in s} == set(pool.pids)


@timed(40)
async def test_20mb_transfer_survives_rebinding_and_migration_on_one_worker(
    pool: WorkerPool,
) -> None:
    size = 20 << 20
    with Netem(pool.address, rebind_port=(0.2, 0.4)) as relay:
        # keep_alive: while the reader holds on for the rebinding below, flow control stops
        # the transfer; PINGs keep the connection (and the relay's traffic) going meanwhile.
        async with quicish.connect(
            "127.0.0.1", relay.address[1], config=client(max_data=32 << 20, keep_alive=1.0)
        ) as conn:
            first, _, _ = await request(conn, "warmup")
            reader, writer = await conn.open_stream()
            writer.write(f"bulk {size}".encode())
            writer.write_eof()
            head = await reader.readline()
            worker, pid = map(int, head.split())
            digest = hashlib.sha256()
            got = 0
            rebound = migrated = False
            while chunk := await reader.read(1 << 16):
                digest.update(chunk)
                got += len(chunk)
                if not rebound and got >= size // 3:
                    while relay.counters().rebinds == 0:  # hold on until the NAT rebinds
                        await asyncio.sleep(0.05)
                    rebound = True
                if not migrated and got >= size // 2:
                    await conn.migrate()  # a new local socket: a new source at the relay
                    migrated = True
            last, last_pid, _ = await request(conn, "after")
            stats = conn.stats()
    assert got == size and digest.digest() == hashlib.sha256(body(size)).digest()
    assert first == worker == last and pid == last_pid
    assert stats.path_migrations >= 1
    assert relay.final_counters is not None and relay.final_counters.rebinds >= 1
    report = reports()
    assert report[worker] == ["warmup", "bulk", "after"]
    assert "bulk" not in report.get(1 - worker, [])


@timed(40)
async def test_sigkill_ends_that_workers_connections_only_and_it_is_replaced(
    pool: WorkerPool,
) -> None:
    size = 2 << 20  # about 1.3 s each at the slow pace
    conns: list[quicish.QuicConnection] = []
    owners: list[int] = []
    while min(Counter(owners).get(0, 0), Counter(owners).get(1, 0)) < 2 and len(conns) < 30:
        conn = await quicish.connect(*pool.address, config=client(idle_timeout=3.0))
        worker, _, _ = await request(conn, f"probe{len(conns)}")
        conns.append(conn)
        owners.append(worker)

    async def transfer(conn: quicish.QuicConnection, n: int) -> bytes:
        reader, writer = await conn.open_stream()
        writer.write(f"t{n} {size} slow".encode())
        writer.write_eof()
        await reader.readline()
        started.release()
        return await reader.read()

    started = asyncio.Semaphore(0)
    tasks = [asyncio.ensure_future(transfer(c, n)) for n, c in enumerate(conns)]
    for _ in conns:
        await started.acquire()
    victim = 0
    old_pid = pool.pids[victim]
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for owner, result in zip(owners, results, strict=True):
        if owner == victim:
            # ended: a stateless reset from the replacement, or (no datagram it could
            # answer) the client's idle timeout
            assert isinstance(result, QuicError), result
            assert "stateless reset" in str(result) or "idle timeout" in str(result), result
        else:
            assert result == body(size)  # byte-exact
    for conn in conns:
        conn.close()
    # a replacement with the same index takes new connections
    deadline = time.monotonic() + 5
    while pool.pids[victim] in (None, old_pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    new_pid = pool.pids[victim]
    assert new_pid not in (None, old_pid) and pool.restarts == 1
    seen = set()
    for n in range(24):
        async with quicish.connect(*pool.address, config=client()) as conn:
            seen.add((await request(conn, f"new{n}"))[:2])
        if (victim, new_pid) in seen and len(seen) == 2:
            break
    assert (victim, new_pid) in seen and (1 - victim, pool.pids[1 - victim]) in seen


async def one_ticket(address: tuple[str, int]) -> bytes:
    async with quicish.connect(*address, config=client()) as conn:
        await request(conn, "full")
        ticket = await conn.wait_session_ticket()
    assert ticket is not None
    return ticket


async def tickets_by_worker(pool: WorkerPool, want: int) -> list[tuple[int, bytes]]:
    """Session tickets of ``want`` connections, with the worker that issued each."""
    out = []
    for n in range(want):
        async with quicish.connect(*pool.address, config=client()) as conn:
            worker, _, _ = await request(conn, f"full{n}")
            ticket = await conn.wait_session_ticket()
            assert ticket is not None
            out.append((worker, ticket))
    return out


async def zero_rtt(
    address: tuple[str, int], ticket: bytes, token: str
) -> tuple[int, bool, quicish.QuicConnection]:
    conn = await quicish.connect(*address, config=client(), session_ticket=ticket, early_data=True)
    worker, _, _ = await request(conn, token)
    await conn.wait_connected()
    return worker, conn.early_data_accepted, conn


@timed(30)
async def test_a_ticket_from_one_worker_resumes_with_0rtt_on_the_other(pool: WorkerPool) -> None:
    issued = await tickets_by_worker(pool, 10)
    assert {w for w, _ in issued} == {0, 1}
    outcomes = []
    for n, (issuer, ticket) in enumerate(issued):
        worker, accepted, conn = await zero_rtt(pool.address, ticket, f"early{n}")
        assert conn.session_resumed
        conn.close()
        outcomes.append((issuer, worker, accepted))
    assert all(accepted for _, _, accepted in outcomes), outcomes
    assert any(issuer != worker for issuer, worker, _ in outcomes), outcomes  # cross-worker
    for n in range(10):  # each 0-RTT request ran once
        assert sum(tokens.count(f"early{n}") for tokens in reports().values()) == 1


def replay(address: tuple[str, int], flight: list[bytes], copies: int) -> Counter[int]:
    """Send ``flight`` again from ``copies`` new sockets (new 4-tuples); the workers that
    answered, read from the server CID of their Initial (its server ID is the index)."""
    answered: Counter[int] = Counter()
    socks = []
    for _ in range(copies):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
        for datagram in flight:
            sock.sendto(datagram, address)
    deadline = time.monotonic() + 1.0
    pending = set(socks)
    while pending and time.monotonic() < deadline:
        for sock in select.select(list(pending), [], [], 0.1)[0]:
            data = sock.recv(65535)
            dcid_len = data[5]
            scid = data[7 + dcid_len : 7 + dcid_len + data[6 + dcid_len]]
            answered[scid[1]] += 1  # the default format: the server ID is CID octet 1
            pending.discard(sock)
    for sock in socks:
        sock.close()
    return answered


async def replay_0rtt_flight(pool: WorkerPool) -> tuple[int, Counter[int], int]:
    """Resume with a 0-RTT request through a recording tap, then replay the client's
    first flight (its Initial and 0-RTT datagrams) from 16 new addresses: the worker of the
    original, the workers that answered a replay, and how many times the request ran.
    (A worker answers the first copy; it routes the later ones, same DCID, to the
    half-open connection that copy made.)"""
    (_, ticket), *_ = await tickets_by_worker(pool, 1)
    with Tap(pool.address) as tap:
        worker, accepted, conn = await zero_rtt(tap.address, ticket, "replayed")
        conn.close()
        await conn.wait_closed()
    assert accepted
    sent = [r.data for r in tap.records if r.to_server]
    dcid = sent[0][6 : 6 + sent[0][5]]
    flight = [d for d in sent if d[0] & 0x80 and d[6 : 6 + d[5]] == dcid]
    assert len(flight) >= 2 and any((d[0] >> 4) & 3 == 1 for d in flight)  # a 0-RTT packet
    await asyncio.sleep(0.5)  # the original connection's CIDs are gone
    answered = await asyncio.get_running_loop().run_in_executor(
        None, replay, pool.address, flight, 16
    )
    await asyncio.sleep(0.5)
    runs = sum(tokens.count("replayed") for tokens in reports().values())
    return worker, answered, runs


@timed(30)
async def test_a_replayed_0rtt_flight_is_rejected_whichever_worker_it_reaches(
    pool: WorkerPool,
) -> None:
    original, answered, runs = await replay_0rtt_flight(pool)
    assert 1 - original in answered, answered  # a replay reached the other worker
    assert runs == 1  # the request ran once: the original


class PerProcessFilter(ReplayFilter):
    """Each forked worker gets its own copy: what the workers would have without sharing."""

    def close(self) -> None:
        pass


@timed(30)
async def test_without_the_shared_register_the_other_worker_runs_a_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    global REPORTS
    REPORTS = tmp_path
    monkeypatch.setattr(workers_module, "SharedStrikeRegister", PerProcessFilter)
    async with quicish.serve(
        "127.0.0.1", 0, config=server_config(), on_stream=handler, workers=2
    ) as server:
        original, answered, runs = await replay_0rtt_flight(server)
    assert 1 - original in answered, answered
    assert runs == 2  # once more, on the worker that had not seen the ticket


@timed(30)
async def test_shutdown_drains_then_exits(pool: WorkerPool) -> None:
    conn = await quicish.connect(*pool.address, config=client())
    reader, writer = await conn.open_stream()
    writer.write(b"drained 1000000 slow")
    writer.write_eof()
    await reader.readline()
    pids = list(pool.pids)
    stopping = asyncio.ensure_future(pool.shutdown())
    await asyncio.sleep(0.1)
    with pytest.raises(QuicError):  # no new connection is accepted meanwhile
        await quicish.connect(*pool.address, config=client(), timeout=0.5)
    assert await reader.read() == body(1000000)  # the open transfer completes
    conn.close()
    await asyncio.wait_for(stopping, 6)
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- formats, fallback, failures ------------------------------------------------------------


@timed(30)
async def test_workers_cids_carry_the_machines_server_id_and_their_index(
    tmp_path: Path,
) -> None:
    global REPORTS
    REPORTS = tmp_path
    lb = QuicLbConfig(config_id=2, server_id_length=2, nonce_length=6)
    fmt = CidFormat(lb, b"\x07\x00")  # this machine's server ID; its last octet: the worker
    async with quicish.serve(
        "127.0.0.1", 0, config=server_config(cid_format=fmt), on_stream=handler, workers=2
    ) as pool:
        with Tap(pool.address) as tap:
            served = set()
            for n in range(8):
                async with quicish.connect(*tap.address, config=client()) as conn:
                    served.add((await request(conn, f"f{n}"))[0])
        given: Counter[bytes | None] = Counter()
        for rec in tap.records:
            if not rec.to_server and rec.data[0] & 0x80:
                scid = rec.data[7 + rec.data[5] : 7 + rec.data[5] + rec.data[6 + rec.data[5]]]
                given[decode(scid, lb)] += 1
    assert set(given) == {b"\x07" + bytes((w,)) for w in served}


@timed(30)
async def test_without_kernel_steering_one_worker_serves_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    global REPORTS
    REPORTS = tmp_path

    def no_cbpf(sock: socket.socket, program: object) -> None:
        raise OSError("Protocol not available")

    monkeypatch.setattr(workers_module, "attach", no_cbpf)
    async with quicish.serve(
        "127.0.0.1", 0, config=server_config(), on_stream=handler, workers=3
    ) as pool:
        assert pool.count == 1 and not pool.steered and len(pool.pids) == 1
        for n in range(3):
            async with quicish.connect(*pool.address, config=client()) as conn:
                assert (await request(conn, f"one{n}", 1000))[::2] == (0, body(1000))
    assert "cannot attach the reuseport steering program" in caplog.text
    assert "one worker serves instead of 3" in caplog.text


async def test_refusals() -> None:
    encrypted = CidFormat(QuicLbConfig(1, 2, 6, key=os.urandom(16)), b"\x07\x00")
    with pytest.raises(ConfigError, match="encrypted QUIC-LB format cannot be steered"):
        await quicish.serve("127.0.0.1", 0, config=server_config(cid_format=encrypted), workers=2)
    with pytest.raises(ConfigError, match="workers must be"):
        await quicish.serve("127.0.0.1", 0, config=server_config(), workers=-1)


@timed(30)
async def test_a_worker_that_cannot_start_fails_the_pool() -> None:
    _, other_key = generate_self_signed()
    config = server_config(private_key=other_key)  # not the certificate's key
    with pytest.raises(WorkerError, match="failed to start"):
        await quicish.serve("127.0.0.1", 0, config=config, workers=2)


# -- the command line ----------------------------------------------------------------------


WORKERS = ("--workers", "2", "--drain-timeout", "2")


def test_cli_serve_workers_serves_from_both_and_drains_on_sigterm(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.bin").write_bytes(body(300000))
    proc = subprocess.Popen(
        [sys.executable, "-m", "quicish", "serve", "--port", "0", "--root", str(root), *WORKERS],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # the self-signed certificate's fingerprint
        listening = proc.stdout.readline()
        match = re.search(r"listening on 127.0.0.1:(\d+) with 2 workers \(steered", listening)
        assert match, listening
        port = int(match.group(1))

        async def fetch_all() -> None:
            for n in range(12):
                config = client_config(alpn=["hq-interop"], verify=False, pin=None)
                async with quicish.connect("127.0.0.1", port, config=config) as conn:
                    reader, writer = await conn.open_stream()
                    await hq.fetch(reader, writer, "/data.bin", tmp_path / f"got{n}")
                assert (tmp_path / f"got{n}").read_bytes() == body(300000)

        asyncio.run(fetch_all())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        log = proc.stdout.read().splitlines()
    finally:
        proc.kill()
    workers = Counter(line.split("]")[0] for line in log if "GET /data.bin 200" in line)
    assert set(workers) == {"[worker 0", "[worker 1"} and sum(workers.values()) == 12


class _SelfStoppingPool:
    """A worker pool whose workers all stop at once, as on a Ctrl-C to the process group."""

    address = ("127.0.0.1", 4433)
    steered = False
    count = 2

    def __init__(self) -> None:
        self.closed = asyncio.get_running_loop().create_future()
        self.closed.set_result(None)  # (the workers' exits seen first)
        self.shutdowns = 0

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    async def shutdown(self) -> None:
        self.shutdowns += 1

    def close(self) -> None:
        pass


def test_cli_workers_stopping_with_the_supervisor_s_sigint_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C reaches the workers and the supervisor together; the supervisor may see every
    worker gone before its own SIGINT handler runs: it still exits with 130 (interrupted)
    and skips the graceful drain, as when its handler runs first."""
    from quicish import cli

    pools: list[_SelfStoppingPool] = []

    async def fake_serve(*args: object, **kw: object) -> _SelfStoppingPool:
        pools.append(_SelfStoppingPool())
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, os.kill, os.getpid(), signal.SIGINT)  # its own, a moment later
        return pools[0]

    monkeypatch.setattr(cli, "serve", fake_serve)
    args = cli.build_parser().parse_args(["serve", "--root", str(tmp_path), "--workers", "2"])
    assert asyncio.run(cli._serve_workers(args, Config(), hq.FileServer(tmp_path), None)) == 130
    assert pools[0].shutdowns == 0


def test_cli_ctrl_c_to_the_process_group_stops_everything(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quicish",
            "serve",
            "--port",
            "0",
            "--root",
            str(tmp_path),
            *WORKERS,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        start_new_session=True,  # its own process group, as a terminal's job
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        assert "with 2 workers" in proc.stdout.readline()
        workers = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        assert len(workers) == 2
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(10) == 130
        assert proc.stderr is not None
        assert "restarting" not in proc.stderr.read()  # stopped workers are not replaced
    finally:
        proc.kill()
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@timed(20)
async def test_a_worker_stopped_from_outside_is_not_replaced(pool: WorkerPool) -> None:
    pid = pool.pids[1]
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # an operator's graceful stop of one worker
    deadline = time.monotonic() + 5
    while pool.pids[1] is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert pool.pids[1] is None and pool.pids[0] is not None and pool.restarts == 0


class Refuser:
    """A strike register that takes nothing: every 0-RTT attempt is refused."""

    window = 10.0

    def check_and_add(self, identity: bytes, now: float) -> bool:
        return False


@pytest.mark.parametrize("workers", [None, 2])
@timed(30)
async def test_serve_uses_the_strike_register_given(tmp_path: Path, workers: int | None) -> None:
    global REPORTS
    REPORTS = tmp_path
    for register, expected in ((None, True), (Refuser(), False)):
        if workers is None:
            server: quicish.Server | WorkerPool = await quicish.serve(
                "127.0.0.1", 0, config=server_config(), on_stream=handler, strike_register=register
            )
        else:
            server = await quicish.serve(
                "127.0.0.1",
                0,
                config=server_config(),
                on_stream=handler,
                strike_register=register,
                workers=workers,
            )
        async with server:
            ticket = await one_ticket(server.address)
            _, accepted, conn = await zero_rtt(server.address, ticket, "early")
            assert conn.session_resumed
            conn.close()
        assert accepted is expected


@pytest.mark.parametrize("early_data", [None, True])
@timed(30)
async def test_workers_of_a_fleet_refuse_0rtt_unless_asked(
    tmp_path: Path, early_data: bool | None
) -> None:
    """With fleet secrets, the workers' shared register does not span the fleet: 0-RTT of a
    ticket from another server of the fleet is refused by default, taken when asked."""
    global REPORTS
    REPORTS = tmp_path
    secrets = tmp_path / "fleet.json"
    FleetSecrets.generate().save(secrets)
    peer = await quicish.serve(
        "127.0.0.1", 0, config=server_config(secrets=secrets, early_data=True), on_stream=handler
    )
    config = server_config(secrets=secrets, early_data=early_data, idle_timeout=5.0)
    fleet = quicish.serve("127.0.0.1", 0, config=config, on_stream=handler, workers=2)
    async with peer, fleet as pool:
        ticket = await one_ticket(peer.address)
        _, accepted, conn = await zero_rtt(pool.address, ticket, "fleet")
        assert conn.session_resumed
        conn.close()
    assert accepted == (early_data is True)
    assert sum(tokens.count("fleet") for tokens in reports().values()) == 1
