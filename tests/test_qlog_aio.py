"""qlog from the asyncio layer over real loopback UDP: a transfer with both ends writing
files, the public tracers, the server's drops, no file for a spoofed Initial, and the
``--qlog-dir`` option of ``quicish serve`` / ``quicish get``."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aio_support import timed
from support import client_config, server_config
from test_cli import get, serve_files, url

import quicish
from quicish import QuicConnection, QuicStreamReader, QuicStreamWriter
from quicish.qlog import analyze, assert_valid, check_packet_numbers, match_packets, read_qlog
from quicish.qlog.reader import QlogTrace

SIZE = 8 << 20


async def send_back(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
    """Read the request (its length, as ASCII) and answer with that many bytes."""
    size = int((await reader.read()).decode())
    writer.write(bytes(size))
    writer.write_eof()


def close_bytes(trace: QlogTrace) -> int:
    """Bytes of packets carrying CONNECTION_CLOSE (logged as sent, not in stats().bytes_sent:
    see test_qlog_engine.close_bytes)."""
    return sum(
        ev.data["raw"]["length"]
        for ev in trace.named("quic:packet_sent")
        if any(fr["frame_type"] == "connection_close" for fr in ev.data.get("frames", ()))
    )


@timed(60)
async def test_loopback_transfer_writes_valid_qlog_that_agrees_with_stats(tmp_path: Path) -> None:
    """An 8 MB download over real UDP with qlog on both ends: one valid file each, named by
    the ODCID and role; packet numbers rise per space; packets sent/received/lost and bytes
    are stats()'s exactly (sent bytes: plus the CONNECTION_CLOSE packets, which stats counts
    as packets but not as bytes); every packet one side logged as sent the other logged as
    received, except ones it declared lost and the tail that reached a closed peer."""
    server_side: list[QuicConnection] = []
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(qlog_dir=str(tmp_path / "server")),
        on_stream=send_back,
        on_connection=server_side.append,
    )
    try:
        conn = await quicish.connect(
            "127.0.0.1",
            server.address[1],
            config=client_config(qlog_dir=str(tmp_path / "client"), max_data=16 << 20),
        )
        reader, writer = await conn.open_stream()
        writer.write(str(SIZE).encode())
        writer.write_eof()
        assert len(await reader.read()) == SIZE
        conn.close()
        await conn.wait_closed()
        (peer,) = server_side
        await asyncio.wait_for(peer.wait_closed(), 10)  # drained: its file is complete
        await asyncio.wait_for(conn.wait_released(), 10)  # closing period over: same
    finally:
        server.close()
        await server.wait_closed()
    odcid = conn._proto._handshake.original_dcid.hex()
    client_file = tmp_path / "client" / f"{odcid}_client.sqlog"
    server_file = tmp_path / "server" / f"{odcid}_server.sqlog"
    assert os.listdir(tmp_path / "client") == [client_file.name]
    assert os.listdir(tmp_path / "server") == [server_file.name]
    assert conn.qlog_path == str(client_file) and peer.qlog_path == str(server_file)
    traces = {}
    for side, path in ((conn, client_file), (peer, server_file)):
        assert_valid(path)
        trace = traces[side] = read_qlog(path)
        assert check_packet_numbers(trace) == []
        a, stats = analyze(trace), side.stats()
        assert a.packets_sent == stats.packets_sent
        assert a.packets_received == stats.packets_received
        assert a.packets_lost == stats.packets_lost
        assert a.bytes_sent == stats.bytes_sent + close_bytes(trace)
        dropped = sum(ev.data["raw"]["length"] for ev in trace.named("quic:packet_dropped"))
        assert a.bytes_received + dropped == stats.bytes_received
        assert len(trace.named("quic:connection_closed")) == 1
    assert analyze(traces[peer]).stream_bytes_sent == SIZE
    for sender, receiver in ((conn, peer), (peer, conn)):
        m = match_packets(traces[sender], traces[receiver])
        assert m.unexpected == [] and m.duplicates == 0
        assert set(m.missing) <= excused(traces[sender], traces[receiver])


def excused(sender: QlogTrace, receiver: QlogTrace) -> set[tuple[str, int]]:
    """Sent packets a receiver may not have logged: those the sender declared lost; the
    tail sent after the last one the receiver logged in that space (it had closed, or was
    draining, and read nothing more: a closing connection only answers with its close); and
    those above every packet number the sender saw acknowledged in that space, whose loss it
    had no evidence of before it closed (a lost packet whose data a probe then carried)."""
    out: set[tuple[str, int]] = set()
    for ev in sender.named("quic:packet_lost"):
        header = ev.data.get("header") or ev.data  # (aioquic's qlog 0.3: no header object)
        out.add((str(header.get("packet_type", header.get("type"))), header["packet_number"]))
    last: dict[str, int] = {}
    for ev in receiver.named("quic:packet_received"):
        ptype, pn = ev.data["header"]["packet_type"], ev.data["header"]["packet_number"]
        last[ptype] = max(last.get(ptype, -1), pn)
    acked: dict[str, int] = {}  # by packet number space
    for ev in sender.named("quic:packet_received"):
        space = _SPACE.get(ev.data["header"]["packet_type"], "")
        for frame in ev.data.get("frames") or ():
            if frame.get("frame_type") == "ack" and frame.get("acked_ranges"):
                top = max(max(r) for r in frame["acked_ranges"])
                acked[space] = max(acked.get(space, -1), top)
    for ev in sender.named("quic:packet_sent"):
        ptype, pn = ev.data["header"]["packet_type"], ev.data["header"]["packet_number"]
        if pn > last.get(ptype, -1) or pn > acked.get(_SPACE.get(ptype, ""), -1):
            out.add((ptype, pn))
    return out


_SPACE = {"initial": "initial", "handshake": "handshake", "0RTT": "data", "1RTT": "data"}


@timed(30)
async def test_public_tracers_and_abrupt_close(tmp_path: Path) -> None:
    """QuicConnection.tracer set after connecting sees the rest; Server.close() ends a live
    connection at once: its qlog file is flushed and ends with connection_closed."""
    seen: list[str] = []
    server_side: list[QuicConnection] = []
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(qlog_dir=str(tmp_path)),
        on_stream=send_back,
        on_connection=server_side.append,
    )
    conn = await quicish.connect("127.0.0.1", server.address[1], config=client_config())
    try:
        assert conn.tracer is None and conn.qlog_path is None
        conn.tracer = lambda name, data: seen.append(name)
        assert conn.tracer is not None
        reader, writer = await conn.open_stream()
        writer.write(b"100000")
        writer.write_eof()
        assert len(await reader.read()) == 100000
        assert {"packet_sent", "packet_received", "packets_acked"} <= set(seen)
        assert "connection_started" not in seen  # attached after the start
        (peer,) = server_side
        assert peer.qlog_path is not None
        path = Path(peer.qlog_path)
        server.close()  # the server goes away with the connection open
        await server.wait_closed()
        trace = assert_valid(path)
        closed = trace.named("quic:connection_closed")
        assert len(closed) == 1 and closed[0].data["initiator"] == "local"
        assert trace.named("quic:packet_sent")[-1].data["frames"][0]["frame_type"] == (
            "connection_close"
        )
    finally:
        conn.close()
        await conn.wait_closed()


@timed(30)
async def test_spoofed_initials_create_no_file_and_reach_the_server_tracer(
    tmp_path: Path,
) -> None:
    """Garbage Initials (right size, right version, no valid protection) from a spoofed
    source make no connection and so no qlog file; the server's tracer hears of them (and
    of a datagram for an unknown connection); a real client then gets one file."""
    drops: list[dict[str, Any]] = []
    server = await quicish.serve(
        "127.0.0.1", 0, config=server_config(qlog_dir=str(tmp_path)), on_stream=send_back
    )
    server.tracer = lambda name, data: drops.append({"name": name, **data})
    assert server.tracer is not None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoof:
            for _ in range(20):
                header = bytes([0xC3, 0, 0, 0, 1, 8]) + os.urandom(8) + bytes([0, 0])
                header += bytes([0x44, 0xD0])  # length 1232, then what looks like a packet
                spoof.sendto(header + os.urandom(1232), server.address)
            spoof.sendto(bytes([0x40]) + os.urandom(40), server.address)  # unknown CID
            deadline = time.monotonic() + 5
            while len(drops) < 21 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        assert os.listdir(tmp_path) == []
        assert [d["trigger"] for d in drops] == ["decryption_failure"] * 20 + ["connection_unknown"]
        assert {d["name"] for d in drops} == {"packet_dropped"}
        conn = await quicish.connect("127.0.0.1", server.address[1], config=client_config())
        async with conn:
            reader, writer = await conn.open_stream()
            writer.write(b"10")
            writer.write_eof()
            assert len(await reader.read()) == 10
        assert len(os.listdir(tmp_path)) == 1
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def qlog_server(tmp_path: Path) -> Any:
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.bin").write_bytes(os.urandom(1 << 20))
    gen = serve_files(root, "--qlog-dir", str(tmp_path / "server"))
    served = next(gen)
    yield served
    gen.close()


def test_cli_qlog_dir_on_both_ends(qlog_server: Any, tmp_path: Path) -> None:
    """``quicish get --qlog-dir`` prints its file's path; ``quicish serve --qlog-dir``
    writes the server's: both valid, named by the same ODCID, and the packets match."""
    out = tmp_path / "out"
    result = get(
        url(qlog_server, "data.bin"),
        "--pin",
        qlog_server.fingerprint,
        "--output",
        str(out),
        "--qlog-dir",
        str(tmp_path / "client"),
    )
    assert result.returncode == 0, result.stderr
    (client_name,) = os.listdir(tmp_path / "client")
    assert f"qlog: {tmp_path / 'client' / client_name}" in result.stdout
    odcid = client_name.split("_")[0]
    server_file = tmp_path / "server" / f"{odcid}_server.sqlog"
    deadline = time.monotonic() + 10  # the server writes its file when the connection ends
    while time.monotonic() < deadline:
        if server_file.exists() and b"connection_closed" in server_file.read_bytes():
            break
        time.sleep(0.05)
    client = assert_valid(tmp_path / "client" / client_name)
    server = assert_valid(server_file)
    assert analyze(server).stream_bytes_sent == 1 << 20
    for sender, receiver in ((client, server), (server, client)):
        m = match_packets(sender, receiver)
        assert m.unexpected == [] and m.duplicates == 0
        assert set(m.missing) <= excused(sender, receiver)


@timed(60)
async def test_through_a_lossy_relay_the_missing_packets_are_the_relays_drops(
    tmp_path: Path,
) -> None:
    """Through ``quicish.netem`` with 3% loss towards the client: the server's sent packets
    the client never logged number exactly what the relay dropped that way (one packet per
    datagram in bulk; loopback itself may lose a few more, which the server then declared
    lost too), and the server's packet_lost events are its stats()'s losses."""
    from quicish.netem import LinkConfig, Netem

    server_side: list[QuicConnection] = []
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(qlog_dir=str(tmp_path)),
        on_stream=send_back,
        on_connection=server_side.append,
    )
    try:
        with Netem(server.address, to_client=LinkConfig(loss_pct=3, delay_ms=5), seed=3) as relay:
            config = client_config(qlog_dir=str(tmp_path), max_data=16 << 20)
            conn = await quicish.connect(*relay.address, config=config)
            reader, writer = await conn.open_stream()
            writer.write(str(2 << 20).encode())
            writer.write_eof()
            assert len(await reader.read()) == 2 << 20
            (peer,) = server_side
            stats = peer.stats()
            conn.close()
            await conn.wait_closed()
            await asyncio.wait_for(conn.wait_released(), 10)
            counters = relay.stop()
    finally:
        server.close()  # (ends the server's connection if the close was lost: file complete)
        await server.wait_closed()
    files = sorted(os.listdir(tmp_path))
    client = assert_valid(tmp_path / files[0])
    ours = assert_valid(tmp_path / files[1])
    assert files[1].endswith("_server.sqlog")
    m = match_packets(ours, client)
    assert m.unexpected == [] and m.duplicates == 0
    dropped = counters.to_client.dropped_loss
    assert dropped > 20
    assert set(m.missing) <= excused(ours, client)
    # every datagram the relay dropped held packets the client never logged: at least one
    # each (the handshake's coalesced datagrams hold several)
    assert len(m.missing) >= dropped
    assert analyze(ours).packets_lost == peer.stats().packets_lost >= stats.packets_lost > 0


@timed(30)
async def test_retry_is_logged_and_the_file_keeps_the_first_dcid(tmp_path: Path) -> None:
    """A server that always asks for a Retry: the client logs the Retry packet as received,
    its file is named by its first DCID, and the server's file by the same ODCID."""
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(retry="always", qlog_dir=str(tmp_path)),
        on_stream=send_back,
    )
    seen: list[tuple[str, dict[str, Any]]] = []
    try:
        config = client_config(qlog_dir=str(tmp_path), tracer=lambda n, d: seen.append((n, d)))
        async with quicish.connect("127.0.0.1", server.address[1], config=config) as conn:
            reader, writer = await conn.open_stream()
            writer.write(b"10")
            writer.write_eof()
            assert len(await reader.read()) == 10
            odcid = conn._proto._handshake.original_dcid.hex()
        await conn.wait_released()
    finally:
        server.close()
        await server.wait_closed()
    retries = [
        d for n, d in seen if n == "packet_received" and d["header"]["packet_type"] == "retry"
    ]
    assert len(retries) == 1 and retries[0]["raw"]["length"] > 0
    assert sorted(os.listdir(tmp_path)) == [f"{odcid}_client.sqlog", f"{odcid}_server.sqlog"]
    for name in os.listdir(tmp_path):
        assert_valid(tmp_path / name)
