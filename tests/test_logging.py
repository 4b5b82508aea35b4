"""Logging (issue 17): lifecycle lines at INFO on ``quicish.connection`` and per-packet lines
at DEBUG on ``quicish.packet``, every line carrying the connection's original DCID; over
real loopback UDP, through the ``quicish`` command, and the packet-line formatter on qlog
events built with :mod:`quicish.qlog.events`."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aio_support import echo_once, pair, timed
from hostile_support import InitialForger
from support import server_config
from test_cli import ENV, ROOT, TIMEOUT, get, serve_files, url

import quicish
from quicish import QuicConnection
from quicish.log import AdmissionLog, ConnectionLogger, cli_logging, close_code
from quicish.packet_log import PacketLog, attach_packet_log, frame_summary, packet_line
from quicish.qlog import events as qe
from quicish.qlog import frames as qf
from quicish.wire import frames as F
from quicish.wire.packet import PacketType

ID = re.compile(r"^\[([0-9a-f]{16})\] ")
COUNTERS = re.compile(
    r"packets sent (\d+), received (\d+), lost (\d+); bytes sent (\d+), received (\d+), "
    r"lost (\d+), stream bytes retransmitted (\d+); RTT \d+\.\d ms$"
)


def _records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


def _counters(line: str) -> tuple[int, ...]:
    m = COUNTERS.search(line)
    assert m, line
    return tuple(int(g) for g in m.groups())


def _expected(conn: QuicConnection) -> tuple[int, ...]:
    s = conn.stats()
    return (
        s.packets_sent,
        s.packets_received,
        s.packets_lost,
        s.bytes_sent,
        s.bytes_received,
        s.bytes_lost,
        s.stream_bytes_retransmitted,
    )


# ---- lifecycle over loopback ------------------------------------------------------------------
@timed()
async def test_lifecycle_lines_of_both_ends_carry_the_original_dcid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quicish")
    accepted: list[QuicConnection] = []
    async with pair(on_connection=accepted.append) as (_, client):
        reader, writer = await client.open_stream()
        writer.write(b"x" * 20000)
        writer.write_eof()
        assert await reader.read() == b"x" * 20000
        server = accepted[0]
        client.close(7, "done\nforged line")  # logged at once, with these counters
        client_at_close = _expected(client)
        await server.wait_closed()
        server_at_close = _expected(server)
        odcid = client.original_dcid.hex()
        assert server.original_dcid.hex() == odcid and len(odcid) == 16
        # Without DEBUG on quicish.packet no connection got the packet sink: no tracer.
        assert client._proto.tracer is None and server._proto.tracer is None

    assert _records(caplog, "quicish.packet") == []
    lines = _records(caplog, "quicish.connection")
    assert lines
    for record in lines:  # every lifecycle line, of either end, starts with the ODCID
        m = ID.match(record.getMessage())
        assert m and m.group(1) == odcid, record.getMessage()
        assert record.connection_id == odcid  # type: ignore[attr-defined]
        assert record.role in ("client", "server")  # type: ignore[attr-defined]
    text = {(r.role, r.getMessage()[19:]) for r in lines}  # type: ignore[attr-defined]
    for role in ("client", "server"):
        done = [t for rl, t in text if rl == role and "handshake done" in t]
        assert len(done) == 1, text
        assert re.fullmatch(
            rf"{role} handshake done with 127\.0\.0\.1:\d+ in \d+\.\d ms: version 0x1, "
            r"cipher TLS_AES_128_GCM_SHA256, ALPN hq-interop, RTT \d+\.\d ms",
            done[0],
        ), done[0]
    (mine,) = [t for rl, t in text if rl == "client" and "closed" in t]
    assert mine.startswith(
        "client closed by us: code 0x7 (application), reason 'done\\nforged line' after "
    ), mine
    assert _counters(mine) == client_at_close
    (theirs,) = [t for rl, t in text if rl == "server" and "closed" in t]
    assert theirs.startswith("server closed by peer: code 0x7 (application), reason"), theirs
    assert _counters(theirs) == server_at_close
    assert client_at_close[0] > 5 and server_at_close[1] > 5  # (a real transfer was counted)


@timed()
async def test_packet_lines_count_every_packet_of_both_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With ``quicish.packet`` at DEBUG when the connections start, each side logs one line
    per packet: as many ``sent`` lines as ``stats().packets_sent`` (and received, lost)."""
    caplog.set_level(logging.DEBUG, logger="quicish.packet")
    accepted: list[QuicConnection] = []
    async with pair(on_connection=accepted.append) as (_, client):
        reader, writer = await client.open_stream()
        writer.write(b"y" * 300_000)
        writer.write_eof()
        assert await reader.read() == b"y" * 300_000
        server = accepted[0]
        assert client._proto.tracer is not None and server._proto.tracer is not None
        client.close()
        await server.wait_released()
    await client.wait_released()
    odcid = client.original_dcid.hex()
    records = _records(caplog, "quicish.packet")
    for conn, role in ((client, "client"), (server, "server")):
        mine = [r for r in records if r.role == role]  # type: ignore[attr-defined]
        assert mine and all(r.connection_id == odcid for r in mine)  # type: ignore[attr-defined]
        assert all(r.levelno == logging.DEBUG for r in mine)

        def count(event: str, lines: list[logging.LogRecord] = mine) -> int:
            return sum(r.qlog_event == event for r in lines)  # type: ignore[attr-defined]

        stats = conn.stats()
        assert count("packet_sent") == stats.packets_sent > 20, role
        assert count("packet_received") == stats.packets_received > 20, role
        assert count("packet_lost") == stats.packets_lost, role
        numbers: dict[str, list[int]] = {}
        for r in mine:
            line = r.getMessage()
            assert line.startswith(f"[{odcid}] "), line
            if r.qlog_event == "packet_sent":  # type: ignore[attr-defined]
                m = re.match(r"\[\w+\] sent (initial|handshake|0RTT|1RTT) #(\d+) (\d+) B", line)
                assert m, line
                assert 20 <= int(m.group(3)) <= 1500, line
                numbers.setdefault(m.group(1), []).append(int(m.group(2)))
        for ptype, pns in numbers.items():  # packet numbers only grow, per type
            assert pns == sorted(set(pns)), (role, ptype)
        assert {"initial", "handshake", "1RTT"} <= numbers.keys()


@timed()
async def test_packet_lines_stop_with_the_level_and_start_only_with_a_new_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The sink is attached when a connection starts and only if DEBUG is on then; turned
    off later it stops writing (one level check per event)."""
    caplog.set_level(logging.DEBUG, logger="quicish.packet")
    async with pair() as (_, client):
        caplog.set_level(logging.INFO, logger="quicish.packet")
        before = len(_records(caplog, "quicish.packet"))
        assert before > 0
        reader, writer = await client.open_stream()
        writer.write(b"z" * 50_000)
        writer.write_eof()
        assert await reader.read() == b"z" * 50_000
        assert len(_records(caplog, "quicish.packet")) == before


# ---- admission pressure (real UDP) --------------------------------------------------------------
@timed()
async def test_admission_pressure_is_one_warning_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="quicish.endpoint")
    server = await quicish.serve(
        "127.0.0.1", 0, config=server_config(retry_threshold=2, handshake_timeout=0.3)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        port = server.address[1]
        forger = InitialForger(port)
        for i in range(5):  # 2 half-open connections, then 3 Retries
            sock.sendto(forger.make(bytes([i]) * 8), ("127.0.0.1", port))
            await asyncio.sleep(0.05)
        warnings = [r for r in _records(caplog, "quicish.endpoint") if r.levelno >= 30]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert re.fullmatch(
            rf"\[127\.0\.0\.1:{port}\] admission pressure: 2 handshakes in progress "
            r"\(retry_threshold 2, max_half_open \d+\): new clients get a Retry",
            warnings[0].getMessage(),
        )
        await asyncio.sleep(0.6)  # the two half-open handshakes time out
        sock.sendto(b"\x40" + bytes(30), ("127.0.0.1", port))  # any datagram: a receive round
        await asyncio.sleep(0.05)
        infos = [r.getMessage() for r in _records(caplog, "quicish.endpoint") if r.levelno == 20]
        assert infos == [
            f"[127.0.0.1:{port}] admission pressure over: 0 handshakes in progress; "
            "3 Retries, 0 clients dropped meanwhile"
        ]
    finally:
        sock.close()
        server.close()


class _Admission:
    def __init__(self, mode: str = "auto") -> None:
        self.mode, self.retry_threshold, self.max_half_open = mode, 2, 4
        self.retried = self.dropped = 0
        self.half_open = 0


def test_admission_log_episodes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="quicish.endpoint")
    a = _Admission()
    watch = AdmissionLog(a, "srv")
    watch.check()
    a.half_open, a.dropped = 4, 1  # at the cap: dropped
    watch.check()
    a.dropped = 3
    watch.check()
    a.half_open = 2  # below the cap, not below the Retry threshold: still pressure
    watch.check()
    a.half_open = 1
    watch.check()
    watch.check()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "[srv] admission pressure: 4 handshakes in progress (retry_threshold 2, "
            "max_half_open 4): new clients get a Retry or are dropped",
        ),
        (
            "INFO",
            "[srv] admission pressure over: 1 handshakes in progress; 0 Retries, "
            "3 clients dropped meanwhile",
        ),
    ]
    caplog.clear()
    always = _Admission("always")
    watch = AdmissionLog(always, "srv")
    always.retried, always.half_open = 50, 3  # Retry for everyone is that mode's normal work
    watch.check()
    assert caplog.records == []


# ---- the packet-line formatter ---------------------------------------------------------------
def test_packet_line_of_draft_events() -> None:
    sent = qe.packet_event(
        qe.packet_header(PacketType.ONE_RTT, 42),
        [
            F.AckFrame([(18, 21), (0, 16)], delay=100),
            F.StreamFrame(4, 1200, b"s" * 1150, fin=True),
            F.CryptoFrame(0, b"c" * 300),
            F.MaxDataFrame(1 << 20),
            F.NewConnectionIdFrame(3, 1, bytes.fromhex("0102030405060708"), bytes(16)),
            F.ConnectionCloseFrame(0xA, 0x08, "bad frame"),
        ],
        size=1252,
    )
    assert packet_line("packet_sent", sent) == (
        "sent 1RTT #42 1252 B: ACK[0-15,18-20] STREAM(id=4 off=1200 len=1150 fin) "
        "CRYPTO(off=0 len=300) MAX_DATA(1048576) "
        "NEW_CONNECTION_ID(seq=3 retire_prior_to=1 cid=0102030405060708) "
        "CONNECTION_CLOSE(transport protocol_violation 'bad frame')"
    )
    received = qe.packet_event(
        qe.packet_header(PacketType.INITIAL, 0, dcid=bytes(8), scid=bytes(8), version=1),
        [F.CryptoFrame(0, b"h" * 280), F.PaddingFrame(900), F.PingFrame()],
        size=1200,
    )
    assert packet_line("packet_received", received) == (
        "received initial #0 1200 B: CRYPTO(off=0 len=280) PADDING(900) PING"
    )
    lost = qe.packet_event(qe.packet_header("handshake", 3), size=1180, trigger="time_threshold")
    assert packet_line("packet_lost", lost) == "lost handshake #3 1180 B (time_threshold)"
    assert packet_line("packets_acked", qe.packets_acked(2, [9, 0, 1, 2, 3, 7, 10])) == (
        "acked application_data [0-3,7,9-10]"
    )
    dropped = qe.packet_dropped(
        "decryption_failure", header=qe.packet_header("1RTT", 77), size=1252
    )
    assert packet_line("packet_dropped", dropped) == "dropped 1RTT #77 1252 B: decryption_failure"
    assert packet_line("recovery_metrics_updated", {"cwnd": 1}) is None
    assert packet_line("connection_closed", qe.connection_closed(error_code=0)) is None


def test_frame_summaries() -> None:
    def one(frame: F.Frame) -> str:
        return frame_summary(qf.frame_to_qlog(frame))

    assert one(F.StreamFrame(8, 0, b"abc")) == "STREAM(id=8 off=0 len=3)"
    assert one(F.AckFrame([(5, 6)])) == "ACK[5]"
    assert one(F.AckFrame([(0, 4)], ecn=(4, 0, 1))) == "ACK[0-3] ce=1"
    assert one(F.ConnectionCloseFrame(5, None, "bye", application=True)) == (
        "CONNECTION_CLOSE(application code=0x5 'bye')"
    )
    assert one(F.ConnectionCloseFrame(0x128, 6)) == "CONNECTION_CLOSE(transport crypto_error_0x128)"
    assert one(F.MaxStreamDataFrame(4, 65536)) == "MAX_STREAM_DATA(id=4 max=65536)"
    assert one(F.MaxStreamsFrame(True, 100)) == "MAX_STREAMS(bidi 100)"
    assert one(F.StreamsBlockedFrame(False, 3)) == "STREAMS_BLOCKED(uni 3)"
    assert one(F.RetireConnectionIdFrame(2)) == "RETIRE_CONNECTION_ID(seq=2)"
    assert one(F.HandshakeDoneFrame()) == "HANDSHAKE_DONE"
    assert one(F.ResetStreamFrame(4, 0x10, 999)) == "RESET_STREAM(id=4 code=0x10 final=999)"
    assert one(F.PathChallengeFrame(bytes(range(8)))) == "PATH_CHALLENGE(0001020304050607)"
    assert one(F.DatagramFrame(b"d" * 10)) == "DATAGRAM(len=10)"
    assert one(F.NewTokenFrame(b"t" * 40)) == "NEW_TOKEN(len=40)"
    assert frame_summary(qf.unknown_frame(0x42)) == "UNKNOWN(type=66)"
    assert frame_summary({"frame_type": "reset_stream_at"}) == "RESET_STREAM_AT"


def test_packet_line_of_the_engines_small_dicts() -> None:
    """Today's engine events (before the draft shapes): space index, pn, size, records."""
    sent = {"space": 2, "pn": 7, "size": 1200, "frames": ["AckRecord", "StreamRecord"]}
    assert packet_line("packet_sent", sent) == "sent 1RTT #7 1200 B: ACK STREAM"
    sent = {"space": 0, "pn": 0, "size": 1200, "frames": ["CryptoRecord"], "path": ("::1", 443)}
    assert packet_line("packet_sent", sent) == "sent initial #0 1200 B via [::1]:443: CRYPTO"
    frames = ["MaxStreamDataRecord", "NewConnectionIdRecord", "HandshakeDoneRecord"]
    assert packet_line("packet_sent", {"space": 2, "pn": 1, "size": 90, "frames": frames}) == (
        "sent 1RTT #1 90 B: MAX_STREAM_DATA NEW_CONNECTION_ID HANDSHAKE_DONE"
    )
    assert packet_line("packet_received", {"space": 1, "pn": 2, "size": 745}) == (
        "received handshake #2 745 B"
    )
    assert packet_line("packet_lost", {"space": 2, "pn": 9, "size": 1252}) == "lost 1RTT #9 1252 B"
    assert packet_line("metrics_updated", {"cwnd": 12000}) is None


class _Conn:
    def __init__(self, tracer: Any = None) -> None:
        self.tracer = tracer
        self.is_client = True
        self.original_dcid = bytes.fromhex("6b3a0f1c2d4e5f60")


def test_sink_prefix_records_and_attachment(caplog: pytest.LogCaptureFixture) -> None:
    event = qe.packet_event(qe.packet_header("1RTT", 5), [qf.stream_frame(0, 0, 10)], size=60)
    conn = _Conn()
    caplog.set_level(logging.INFO, logger="quicish.packet")
    assert attach_packet_log(conn) is None and conn.tracer is None  # off: nothing attached
    PacketLog(b"\x01" * 8)("packet_sent", event)  # a sink whose logger is off writes nothing
    assert caplog.records == []

    caplog.set_level(logging.DEBUG, logger="quicish.packet")
    seen: list[str] = []
    conn = _Conn(lambda name, data: seen.append(name))
    sink = attach_packet_log(conn)
    assert sink is not None and conn.tracer is not None
    conn.tracer("packet_sent", event)
    conn.tracer("recovery_metrics_updated", {"cwnd": 1})
    assert seen == ["packet_sent", "recovery_metrics_updated"]  # the earlier tracer kept both
    (record,) = caplog.records
    assert record.getMessage() == "[6b3a0f1c2d4e5f60] sent 1RTT #5 60 B: STREAM(id=0 off=0 len=10)"
    assert (record.name, record.levelno) == ("quicish.packet", logging.DEBUG)
    assert record.connection_id == "6b3a0f1c2d4e5f60"  # type: ignore[attr-defined]
    assert record.role == "client" and record.qlog_event == "packet_sent"  # type: ignore[attr-defined]


def test_connection_logger_and_close_codes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="quicish.connection")
    out = ConnectionLogger(logging.getLogger("quicish.connection"), b"\xab" * 8, "server")
    out.info("hello %d", 5)
    (record,) = caplog.records
    assert record.getMessage() == "[abababababababab] hello 5"
    assert record.connection_id == "abababababababab"  # type: ignore[attr-defined]
    assert close_code(0, False) == "0x0 (NO_ERROR)"
    assert close_code(0xA, False) == "0xa (PROTOCOL_VIOLATION)"
    assert close_code(0x128, False) == "0x128 (CRYPTO_ERROR handshake_failure)"
    assert close_code(0x1FF, False) == "0x1ff (CRYPTO_ERROR alert 255)"
    assert close_code(0x99, False) == "0x99 (unknown)"
    assert close_code(0x10, True) == "0x10 (application)"


# ---- defaults and the command line -----------------------------------------------------------
def test_library_alone_shows_warnings_only_and_cli_logging_is_undone() -> None:
    """No handler of its own: with logging not configured by the application, a connection's
    INFO lines stay invisible and a WARNING reaches stderr (Python's last-resort handler)."""
    code = (
        "import asyncio, logging, sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from aio_support import pair, echo_once\n"
        "async def main():\n"
        "    async with pair() as (_, conn):\n"
        "        assert await echo_once(conn, b'hi') == b'hi'\n"
        "asyncio.run(main())\n"
        "logging.getLogger('quicish.endpoint').warning('an operator must see this')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT
    )
    assert out.returncode == 0 and out.stderr == "an operator must see this\n", out.stderr
    ours, root = logging.getLogger("quicish"), logging.getLogger()
    before = (ours.level, root.level, list(root.handlers))
    with cli_logging(2) as handler:
        assert ours.getEffectiveLevel() == logging.DEBUG and handler in root.handlers
    assert (ours.level, root.level, list(root.handlers)) == before


def test_cli_verbose_lines_on_stderr(tmp_path: Path) -> None:
    """``quicish serve -v`` logs lifecycle lines, ``quicish -vv get`` packet lines too, on
    stderr with time, level and logger; both ends' lines share the connection ID; without
    ``-v`` no INFO line is shown."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "f.bin").write_bytes(bytes(100_000))
    served = serve_files(root, "-v", "--quiet", duration=20)
    srv = next(served)
    try:
        quiet = get(url(srv, "f.bin"), "--pin", srv.fingerprint, "--output", str(tmp_path))
        assert quiet.returncode == 0, quiet.stderr
        assert " INFO " not in quiet.stderr and " DEBUG " not in quiet.stderr, quiet.stderr
        out = tmp_path / "out"
        options = ["--pin", srv.fingerprint, "--output", str(out), "--quiet"]
        loud = subprocess.run(
            [sys.executable, "-m", "quicish", "-vv", "get", url(srv, "f.bin"), *options],
            capture_output=True,
            text=True,
            env=ENV,
            cwd=ROOT,
            timeout=TIMEOUT,
        )
        assert loud.returncode == 0, loud.stderr
        assert (out / "f.bin").stat().st_size == 100_000
    finally:
        served.close()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    client = loud.stderr.splitlines()
    done = [ln for ln in client if "handshake done" in ln]
    assert len(done) == 1, loud.stderr[:3000]
    m = re.match(
        stamp + r"INFO    quicish\.connection: \[([0-9a-f]{16})\] client handshake done with "
        r"127\.0\.0\.1:\d+ in [\d.]+ ms: version 0x1, cipher TLS_\w+, ALPN hq-interop, RTT",
        done[0],
    )
    assert m, done[0]
    odcid = m.group(1)
    packets = [ln for ln in client if " quicish.packet: " in ln]
    assert packets and all(
        re.match(stamp + rf"DEBUG   quicish\.packet: \[{odcid}\] ", ln) for ln in packets
    )
    assert any(re.search(r"\] sent initial #0 1\d{3} B: CRYPTO", ln) for ln in packets)
    # 100 kB in 1RTT packets (of up to 1452 bytes: path MTU discovery)
    assert sum(" received 1RTT #" in ln for ln in packets) >= 100_000 // 1452
    assert any(f"[{odcid}] client closed by us: code 0x0 (application)" in ln for ln in client)
    assert srv.proc.stderr is not None
    server = srv.proc.stderr.read().splitlines()
    assert not any(" quicish.packet: " in ln for ln in server)  # -v: no packet lines
    assert any(
        re.match(stamp + rf"INFO    quicish\.connection: \[{odcid}\] server handshake done", ln)
        for ln in server
    ), server
    assert any(f"[{odcid}] server closed by peer: code 0x0 (application)" in ln for ln in server)


@timed(30)
async def test_migration_is_one_path_changed_line_on_each_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Active migration: the client logs its local address change, the server its peer's,
    both with the connection's ID."""
    caplog.set_level(logging.INFO, logger="quicish.connection")
    accepted: list[QuicConnection] = []
    async with pair(on_connection=accepted.append) as (_, client):
        assert await echo_once(client, b"before") == b"before"
        old = client.local_address[1]
        await client.migrate()
        new = client.local_address[1]
        assert new != old
        assert await echo_once(client, b"after") == b"after"
        server = accepted[0]
        for _ in range(100):  # the server switches once the new path is validated
            if server.remote_address == ("127.0.0.1", new):
                break
            await asyncio.sleep(0.01)
        odcid = client.original_dcid.hex()
    changes = {
        (r.role, r.getMessage())  # type: ignore[attr-defined]
        for r in _records(caplog, "quicish.connection")
        if "path changed" in r.getMessage()
    }
    assert changes == {
        ("client", f"[{odcid}] path changed: local 0.0.0.0:{old} -> 0.0.0.0:{new}"),
        ("server", f"[{odcid}] path changed: peer 127.0.0.1:{old} -> 127.0.0.1:{new}"),
    }


@timed()
async def test_a_failing_stream_handler_is_an_error_line_with_the_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(reader: Any, writer: Any) -> None:
        await reader.read()
        raise RuntimeError("handler bug")

    caplog.set_level(logging.ERROR, logger="quicish")
    async with pair(broken) as (_, client):
        reader, writer = await client.open_stream()
        writer.write_eof()
        with pytest.raises(quicish.StreamResetError):
            await reader.read()
        odcid = client.original_dcid.hex()
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.name == "quicish" and record.role == "server"  # type: ignore[attr-defined]
    assert record.getMessage() == f"[{odcid}] stream handler failed"
    assert record.exc_info is not None and "handler bug" in str(record.exc_info[1])
