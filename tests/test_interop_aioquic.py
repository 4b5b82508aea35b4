"""Live interop with aioquic (from PyPI, tests only) over real UDP on loopback, hq-interop.

Both directions: quicish client -> aioquic server and aioquic client -> quicish server.
Each: handshake, a 10 MB transfer (SHA-256 compared), 1,000 small files on one connection
(beyond the 128-stream limits, so MAX_STREAMS must flow), ChaCha20-only, AES-256-only, and an
aioquic-initiated key update in the middle of a transfer that quicish must follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aio_support import timed
from aioquic.asyncio.client import connect as aq_connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve as aq_serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import CipherSuite
from aioquic_support import client_configuration, server_configuration
from support import client_config, server_config

import quicish
from quicish import hq

BIG = 10 << 20
SMALL_FILES = 1000
SUITES = {
    "chacha20": (CipherSuite.CHACHA20_POLY1305_SHA256, 0x1303),
    "aes256": (CipherSuite.AES_256_GCM_SHA384, 0x1302),
}


# ---- shared fixtures ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A document root: big.bin (10 MB), mid.bin (4 MB) and f0000..f0999 (small)."""
    root = tmp_path_factory.mktemp("www")
    rng = random.Random(5)
    (root / "big.bin").write_bytes(rng.randbytes(BIG))
    (root / "mid.bin").write_bytes(rng.randbytes(4 << 20))
    for i in range(SMALL_FILES):
        (root / f"f{i:04d}").write_bytes(rng.randbytes(rng.randrange(1, 3000)))
    return root


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quicish_cipher(conn: quicish.QuicConnection) -> int:
    suite = conn._proto.cipher_suite
    assert suite is not None
    return int(suite)


# ---- aioquic peer ------------------------------------------------------------------------
def aq_client_configuration(**kw: Any) -> QuicConfiguration:
    """The aioquic client's configuration, with windows large enough for the bulk tests."""
    kw.setdefault("max_data", 32 << 20)
    kw.setdefault("max_stream_data", 16 << 20)
    return client_configuration(**kw)


class AqFileServerProtocol(QuicConnectionProtocol):
    """aioquic connection serving hq-interop GETs from ``root`` (one task per stream)."""

    root: Path
    instances: list[AqFileServerProtocol]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._stream_handler = self._on_stream
        self._tasks: set[asyncio.Task[None]] = set()
        self.instances.append(self)

    def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = hq.parse_request(await reader.read())
        target = hq.resolve(self.root, path) if path else None
        if target is None:
            self._quic.reset_stream(writer.get_extra_info("stream_id"), hq.ERROR_NOT_FOUND)
            self.transmit()
            writer.transport._closing = True  # type: ignore[attr-defined]  # no FIN on GC
            return
        writer.write(target.read_bytes())
        writer.write_eof()

    def cipher_suite(self) -> int:
        return int(self._quic.tls.key_schedule.cipher_suite)  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def aioquic_file_server(
    root: Path, **config_kw: Any
) -> AsyncIterator[tuple[int, list[AqFileServerProtocol]]]:
    instances: list[AqFileServerProtocol] = []
    protocol = type("Proto", (AqFileServerProtocol,), {"root": root, "instances": instances})
    server = await aq_serve(
        "127.0.0.1",
        0,
        configuration=server_configuration(**config_kw),
        create_protocol=protocol,
    )
    assert server._transport is not None
    port = server._transport.get_extra_info("sockname")[1]
    try:
        yield port, instances
    finally:
        server.close()


async def aq_get(protocol: QuicConnectionProtocol, path: str) -> bytes:
    reader, writer = await protocol.create_stream()
    writer.write(hq.request_line(path))
    writer.write_eof()
    return await reader.read()


# ---- quicish peer ------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def quicish_file_server(
    root: Path, **config_kw: Any
) -> AsyncIterator[tuple[quicish.Server, hq.FileServer]]:
    files = hq.FileServer(root)
    async with await quicish.serve(
        "127.0.0.1", 0, config=server_config(**config_kw), on_stream=files.handle
    ) as server:
        yield server, files


async def qq_get(conn: quicish.QuicConnection, path: str) -> bytes:
    reader, writer = await conn.open_stream()
    writer.write(hq.request_line(path))
    writer.write_eof()
    return await reader.read()


def qq_client(**kw: Any) -> quicish.Config:
    kw.setdefault("max_data", 32 << 20)
    kw.setdefault("max_stream_data", 16 << 20)
    return client_config(**kw)


# ---- quicish client -> aioquic server ----------------------------------------------------
@timed(30)
async def test_quicish_client_handshake_and_10mb(www: Path, tmp_path: Path) -> None:
    async with (
        aioquic_file_server(www) as (port, servers),
        quicish.connect("127.0.0.1", port, config=qq_client()) as conn,
    ):
        assert conn.alpn == "hq-interop"
        reader, writer = await conn.open_stream()
        size = await hq.fetch(reader, writer, "/big.bin", tmp_path / "big.bin")
        assert size == BIG
        assert sha((tmp_path / "big.bin").read_bytes()) == sha((www / "big.bin").read_bytes())
        assert len(servers) == 1


@timed(40)
async def test_quicish_client_1000_files(www: Path) -> None:
    async with (
        aioquic_file_server(www) as (port, _),
        quicish.connect("127.0.0.1", port, config=qq_client()) as conn,
    ):
        names = [f"/f{i:04d}" for i in range(SMALL_FILES)]
        bodies = await asyncio.gather(*(qq_get(conn, n) for n in names))
        for name, body in zip(names, bodies, strict=True):
            assert body == (www / name[1:]).read_bytes(), name
        # 1,000 bidi streams on one connection: past aioquic's limit of 128.
        assert conn._proto._streams._next_local[1] == SMALL_FILES


@pytest.mark.parametrize("suite", sorted(SUITES))
@timed()
async def test_quicish_client_single_cipher(www: Path, suite: str) -> None:
    aq_suite, code = SUITES[suite]
    # The aioquic server allows only this suite; quicish offers all three.
    async with (
        aioquic_file_server(www, cipher_suites=[aq_suite]) as (port, servers),
        quicish.connect("127.0.0.1", port, config=qq_client()) as conn,
    ):
        assert await qq_get(conn, "/mid.bin") == (www / "mid.bin").read_bytes()
        assert quicish_cipher(conn) == code
        assert servers[0].cipher_suite() == code
    # quicish offers only this suite; aioquic (all suites) must pick it.
    async with (
        aioquic_file_server(www) as (port, servers),
        quicish.connect("127.0.0.1", port, config=qq_client(cipher_suites=[suite])) as conn,
    ):
        assert await qq_get(conn, "/f0001") == (www / "f0001").read_bytes()
        assert quicish_cipher(conn) == code
        assert servers[0].cipher_suite() == code


@timed(30)
async def test_quicish_client_follows_aioquic_key_update(www: Path) -> None:
    async with (
        aioquic_file_server(www) as (port, servers),
        quicish.connect(
            "127.0.0.1",
            port,
            config=qq_client(max_stream_data=256 << 10, max_stream_data_limit=256 << 10),
        ) as conn,
    ):
        reader, writer = await conn.open_stream()
        writer.write(hq.request_line("/big.bin"))
        writer.write_eof()
        got = bytearray(await reader.readexactly(2 << 20))
        assert conn.stats().key_updates == 0
        received_before = conn.stats().bytes_received
        servers[0]._quic.request_key_update()  # aioquic starts a key update mid-transfer
        servers[0].transmit()
        got += await reader.read()
        assert sha(bytes(got)) == sha((www / "big.bin").read_bytes())
        assert conn.stats().key_updates >= 1
        # The window (256 KiB) kept most of the file for after the update.
        assert conn.stats().bytes_received - received_before > 7 << 20
        # The connection keeps working in the new key phase.
        assert await qq_get(conn, "/f0002") == (www / "f0002").read_bytes()


# ---- aioquic client -> quicish server ----------------------------------------------------
@contextlib.asynccontextmanager
async def aioquic_client(port: int, **config_kw: Any) -> AsyncIterator[QuicConnectionProtocol]:
    async with aq_connect(
        "127.0.0.1", port, configuration=aq_client_configuration(**config_kw)
    ) as protocol:
        yield protocol


@timed(30)
async def test_aioquic_client_handshake_and_10mb(www: Path) -> None:
    async with (
        quicish_file_server(www) as (server, files),
        aioquic_client(server.address[1]) as client,
    ):
        await client.ping()
        body = await aq_get(client, "/big.bin")
        assert len(body) == BIG
        assert sha(body) == sha((www / "big.bin").read_bytes())
        assert files.files_served == 1
        (sconn,) = server.connections
        assert sconn.alpn == "hq-interop"


@timed(40)
async def test_aioquic_client_1000_files(www: Path) -> None:
    async with (
        quicish_file_server(www) as (server, files),
        aioquic_client(server.address[1]) as client,
    ):
        names = [f"/f{i:04d}" for i in range(SMALL_FILES)]
        bodies = await asyncio.gather(*(aq_get(client, n) for n in names))
        for name, body in zip(names, bodies, strict=True):
            assert body == (www / name[1:]).read_bytes(), name
        assert files.files_served == SMALL_FILES
        # quicish's limit is 128 concurrent streams: it raised it as streams closed.
        assert client._quic._remote_max_streams_bidi >= SMALL_FILES


@pytest.mark.parametrize("suite", sorted(SUITES))
@timed()
async def test_aioquic_client_single_cipher(www: Path, suite: str) -> None:
    aq_suite, code = SUITES[suite]
    # The aioquic client offers only this suite; the quicish server allows all three.
    async with (
        quicish_file_server(www) as (server, _),
        aioquic_client(server.address[1], cipher_suites=[aq_suite]) as client,
    ):
        assert await aq_get(client, "/mid.bin") == (www / "mid.bin").read_bytes()
        (sconn,) = server.connections
        assert quicish_cipher(sconn) == code
    # The quicish server allows only this suite; aioquic (all suites) must agree to it.
    async with (
        quicish_file_server(www, cipher_suites=[suite]) as (server, _),
        aioquic_client(server.address[1]) as client,
    ):
        assert await aq_get(client, "/f0003") == (www / "f0003").read_bytes()
        (sconn,) = server.connections
        assert quicish_cipher(sconn) == code


@timed(30)
async def test_quicish_server_follows_aioquic_key_update(www: Path) -> None:
    async with (
        quicish_file_server(www) as (server, _),
        aioquic_client(server.address[1], max_stream_data=256 << 10, max_data=512 << 10) as client,
    ):
        reader, writer = await client.create_stream()
        writer.write(hq.request_line("/big.bin"))
        writer.write_eof()
        got = bytearray(await reader.readexactly(2 << 20))
        (sconn,) = server.connections
        assert sconn.stats().key_updates == 0
        sent_before = sconn.stats().bytes_sent
        client.request_key_update()  # aioquic starts a key update mid-transfer
        got += await reader.read()
        assert sha(bytes(got)) == sha((www / "big.bin").read_bytes())
        assert sconn.stats().key_updates >= 1
        assert sconn.stats().bytes_sent - sent_before > 4 << 20  # the transfer went on
        assert await aq_get(client, "/f0004") == (www / "f0004").read_bytes()


@timed()
async def test_quicish_client_missing_file_on_aioquic(www: Path) -> None:
    async with (
        aioquic_file_server(www) as (port, _),
        quicish.connect("127.0.0.1", port, config=qq_client()) as conn,
    ):
        with pytest.raises(quicish.StreamResetError) as info:
            await qq_get(conn, "/does-not-exist")
        assert info.value.error_code == hq.ERROR_NOT_FOUND


def test_file_sizes(www: Path) -> None:
    assert os.path.getsize(www / "big.bin") == BIG
