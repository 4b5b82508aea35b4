"""quicish and aioquic, both writing qlog (quicish's JSON-SEQ, aioquic's QuicFileLogger), over
real loopback UDP: the packets one side logs as sent are, by packet type and number, the
packets the other logs as received, both ways and in both roles."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aio_support import echo, timed
from aioquic.quic.logger import QuicFileLogger
from aioquic_support import aioquic_request, aioquic_server
from support import client_config, server_config
from test_qlog_aio import excused

import quicish
from quicish.qlog import assert_valid, check_packet_numbers, match_packets, read_qlog
from quicish.qlog.reader import QlogTrace

DATA = os.urandom(3 << 20)


async def one_file(directory: Path, suffix: str, timeout: float = 10.0) -> Path:
    """The one file ending in ``suffix`` in ``directory``, once it exists (aioquic writes its
    trace when its closing or draining period ends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = [name for name in os.listdir(directory) if name.endswith(suffix)]
        if found:
            assert len(found) == 1, found
            await asyncio.sleep(0.05)  # (aioquic writes the whole file at once)
            return directory / found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {suffix} file in {directory}")


def check_both_ways(ours: QlogTrace, theirs: QlogTrace) -> None:
    assert check_packet_numbers(ours) == []
    for sender, receiver in ((ours, theirs), (theirs, ours)):
        m = match_packets(sender, receiver)
        assert m.sent > 50 and m.received > 50  # (a transfer's worth each way)
        assert m.unexpected == [] and m.duplicates == 0
        # (loopback does lose packets at these rates: socket buffers overflow in bursts)
        assert set(m.missing) <= excused(sender, receiver)


@timed(60)
async def test_quicish_client_aioquic_server_qlogs_match(tmp_path: Path) -> None:
    ours_dir, theirs_dir = tmp_path / "quicish", tmp_path / "aioquic"
    theirs_dir.mkdir()
    async with aioquic_server(quic_logger=QuicFileLogger(str(theirs_dir))) as server:
        config = client_config(qlog_dir=str(ours_dir), max_data=16 << 20)
        async with quicish.connect("127.0.0.1", server.port, config=config) as conn:
            reader, writer = await conn.open_stream()
            writer.write(DATA)
            writer.write_eof()
            assert await reader.read() == DATA
        await conn.wait_released()
        theirs_file = await one_file(theirs_dir, ".qlog")
    ours_file = await one_file(ours_dir, "_client.sqlog")
    odcid = ours_file.name.split("_")[0]
    assert theirs_file.name == f"{odcid}.qlog"  # both name the connection by its ODCID
    ours = assert_valid(ours_file)
    theirs = read_qlog(theirs_file)
    assert theirs.vantage_point == "server"
    check_both_ways(ours, theirs)


@timed(60)
async def test_aioquic_client_quicish_server_qlogs_match(tmp_path: Path) -> None:
    ours_dir, theirs_dir = tmp_path / "quicish", tmp_path / "aioquic"
    theirs_dir.mkdir()
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(qlog_dir=str(ours_dir), max_data=16 << 20),
        on_stream=echo,
    )
    try:
        answer, _, _ = await aioquic_request(
            server.address[1],
            DATA,
            config_kw={"quic_logger": QuicFileLogger(str(theirs_dir))},
        )
        assert answer == DATA
        theirs_file = await one_file(theirs_dir, ".qlog")
        ours_file = await one_file(ours_dir, "_server.sqlog")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while b"connection_closed" not in ours_file.read_bytes() and loop.time() < deadline:
            await asyncio.sleep(0.02)  # our file is complete when the connection ends
    finally:
        server.close()
        await server.wait_closed()
    assert theirs_file.name == ours_file.name.replace("_server.sqlog", ".qlog")
    ours = assert_valid(ours_file)
    theirs = read_qlog(theirs_file)
    assert theirs.vantage_point == "client"
    check_both_ways(ours, theirs)
