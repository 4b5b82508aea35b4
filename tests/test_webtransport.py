"""WebTransport over HTTP/3 (quicish.h3.webtransport) with a raw peer over loopback UDP
(session by extended CONNECT, bidirectional and unidirectional streams both ways, HTTP
datagrams, close with code and reason), and with headless Chromium through
examples/webtransport_echo.py and examples/webtransport_page.html (certificate: ECDSA
P-256, valid 10 days, its SHA-256 passed to the page as serverCertificateHashes)."""

from __future__ import annotations

import asyncio
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pylsqpack
import pytest
from aio_support import timed
from chromium_support import DevToolsPage
from h3_support import block, h3_client_config, raw_peer
from support import server_config
from test_cli import ENV, ROOT

import quicish.h3 as h3
from quicish.h3.frames import (
    FrameDecoder,
    FrameType,
    data_frame_header,
    encode_frame,
    encode_settings,
)
from quicish.h3.frames import encode_varint as v
from quicish.h3.webtransport import WebTransportSession
from quicish.tls.certs import generate_self_signed

CONNECT = [
    (b":method", b"CONNECT"),
    (b":protocol", b"webtransport"),
    (b":scheme", b"https"),
    (b":authority", b"localhost"),
    (b":path", b"/wt"),
]


@timed()
async def test_session_streams_datagrams_and_close_with_a_raw_peer() -> None:
    seen: list[tuple[str, bytes]] = []
    closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def on_session(session: WebTransportSession) -> None:
        assert session.path == "/wt"
        reader, writer = await session.accept_stream()
        data = await reader.read()
        seen.append(("bidi", data))
        writer.write(data[::-1])
        writer.write_eof()
        uni = await session.accept_uni_stream()
        seen.append(("uni", await uni.read()))
        out = await session.open_uni_stream()
        out.write(b"from the server")
        out.write_eof()
        datagram = await session.receive_datagram()
        seen.append(("datagram", datagram))
        session.send_datagram(datagram.upper())
        closed.set_result(await session.wait_closed())

    async with h3.serve("127.0.0.1", 0, config=server_config(), on_session=on_session) as server:
        config = h3_client_config(max_datagram_frame_size=65535)
        import quicish

        async with quicish.connect("127.0.0.1", server.address[1], config=config) as conn:
            from h3_support import RawPeer

            peer = RawPeer(conn)
            await peer.control(encode_settings({0x8: 1, 0x33: 1, 0x2B603742: 1}))
            connect_reader, connect_writer = await peer.request(
                encode_frame(FrameType.HEADERS, block(CONNECT)), fin=False
            )
            sid = connect_writer.stream_id
            decoder = FrameDecoder()
            while (frame := decoder.next()) is None:
                decoder.feed(await connect_reader.read(1 << 16))
            assert frame[0] == FrameType.HEADERS
            fields = pylsqpack.Decoder(0, 0).feed_header(sid, frame[1])[1]
            assert fields[0] == (b":status", b"200")  # the session is accepted
            assert (b"sec-webtransport-http3-draft", b"draft02") in fields
            stream_reader, _ = await peer.request(v(0x41) + v(sid) + b"abc, bidi")
            assert await stream_reader.read() == b"idib ,cba"
            await peer.uni(0x54, v(sid) + b"uni data", fin=True)
            quarter = v(sid // 4)
            conn.send_datagram(quarter + b"datagram!")
            answer = await asyncio.wait_for(conn.receive_datagram(), 5)
            assert answer == quarter + b"DATAGRAM!"
            while True:  # the server's unidirectional streams: control, QPACK, then 0x54
                uni_reader, _ = await conn.accept_stream()
                first = await uni_reader.readexactly(1)
                if first[0] >> 6 == 1:  # a 2-byte type: WebTransport's 0x54 (0x4054)
                    assert first + await uni_reader.readexactly(1) == v(0x54)
                    assert await uni_reader.read() == v(sid) + b"from the server"
                    break
            payload = struct.pack("!I", 42) + b"bye"
            capsule = v(0x2843) + v(len(payload)) + payload
            connect_writer.write(data_frame_header(len(capsule)) + capsule)
            connect_writer.write_eof()
            assert await asyncio.wait_for(closed, 5) == (42, "bye")
    assert seen == [("bidi", b"abc, bidi"), ("uni", b"uni data"), ("datagram", b"datagram!")]


@timed()
async def test_webtransport_settings_only_when_asked() -> None:
    async def hello(request: h3.Request) -> h3.Response:
        return h3.Response(200, body=b"hi")

    for on_session, expected in ((None, False), (lambda s: asyncio.sleep(0), True)):
        async with (
            h3.serve("127.0.0.1", 0, hello, config=server_config(), on_session=on_session) as srv,
            raw_peer(srv.address[1]) as peer,
        ):
            client = h3.H3Client(peer.conn, "localhost")
            await client.start()
            await asyncio.wait_for(client.h3.settings_received.wait(), 5)
            settings = client.h3.peer_settings or {}
            assert (settings.get(0x2B603742) == 1) is expected
            assert (settings.get(0x8) == 1) is expected  # extended CONNECT
            assert (settings.get(0x33) == 1) is expected  # HTTP datagrams
            assert (await client.request("GET", "/")).body == b"hi"


@pytest.fixture
def echo_server(tmp_path: Path) -> Iterator[tuple[int, str, subprocess.Popen[str]]]:
    """examples/webtransport_echo.py with an ECDSA P-256 certificate valid 10 days."""
    cert_pem, key_pem = generate_self_signed(("localhost",), key_type="ec", days=10)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "webtransport_echo.py"), "--host", "127.0.0.1",
         "--port", "0", "--cert", str(tmp_path / "cert.pem"), "--key", str(tmp_path / "key.pem")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = digest = None
        while port is None or digest is None:
            line = proc.stdout.readline()
            assert line, "the echo server exited"
            if m := re.search(r"listening on \S+:(\d+)", line):
                port = int(m.group(1))
            if m := re.search(r"SHA-256: ([0-9a-f]{64})", line):
                digest = m.group(1)
        yield port, digest, proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_chromium_webtransport_echo(
    echo_server: tuple[int, str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    """Chromium's WebTransport: stream echo, datagram echo, 100 concurrent streams, close
    with code and reason; no certificate flags, only serverCertificateHashes."""
    port, digest, proc = echo_server
    page = (ROOT / "examples" / "webtransport_page.html").as_uri()
    url = f"{page}#url=https://localhost:{port}/echo&hash={digest}&streams=100&auto=1"
    chrome = DevToolsPage(url, tmp_path / "profile")
    try:
        chrome.attach()
        text = chrome.wait_for(
            "(t => t.includes('finished') && t)(document.getElementById('out').textContent)", 60
        )
    finally:
        chrome.close()
    lines = text.splitlines()
    assert lines == [
        "connected",
        'stream echo: ok "hello, WebTransport"',
        'datagram echo: ok "hello, WebTransport"',
        "concurrent streams: ok 100/100",
        "closed",
        "finished",
    ], lines
    proc.terminate()
    log = proc.communicate(timeout=10)[0]
    assert re.search(r"session \d+ on /echo", log), log
    assert "closed: 7 'done'" in log, log  # the page's close code and reason arrived


@timed()
async def test_quicish_client_and_server() -> None:
    """quicish's WebTransport client against its server: streams both ways and both kinds,
    datagrams, and a close with code and reason from each side."""
    server_closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    async def on_session(session: WebTransportSession) -> None:
        reader, writer = await session.accept_stream()
        writer.write((await reader.read()).upper())
        writer.write_eof()
        session.send_datagram(b"pong " + await session.receive_datagram())
        out_reader, out_writer = await session.open_stream()  # the server opens one too
        out_writer.write(b"question")
        out_writer.write_eof()
        answer = await out_reader.read()
        uni = await session.accept_uni_stream()
        out = await session.open_uni_stream()
        out.write(answer + b" / " + await uni.read())
        out.write_eof()
        server_closed.set_result(await session.wait_closed())

    settings = h3.H3Settings(webtransport=True)
    async with (
        h3.serve("127.0.0.1", 0, config=server_config(), on_session=on_session) as server,
        h3.connect(
            "localhost", server.address[1], config=h3_client_config(), settings=settings
        ) as client,
    ):
        session = await client.open_webtransport("/chat")
        reader, writer = await session.open_stream()
        writer.write(b"shout this")
        writer.write_eof()
        assert await reader.read() == b"SHOUT THIS"
        session.send_datagram(b"ping")
        assert await asyncio.wait_for(session.receive_datagram(), 5) == b"pong ping"
        in_reader, in_writer = await session.accept_stream()
        assert await in_reader.read() == b"question"
        in_writer.write(b"answer")
        in_writer.write_eof()
        uni = await session.open_uni_stream()
        uni.write(b"uni up")
        uni.write_eof()
        down = await asyncio.wait_for(session.accept_uni_stream(), 5)
        assert await down.read() == b"answer / uni up"
        session.close(3, "client done")
        assert await asyncio.wait_for(server_closed, 5) == (3, "client done")
        assert await session.wait_closed() == (3, "client done")


@timed()
async def test_server_closes_the_session_and_refusals() -> None:
    async def on_session(session: WebTransportSession) -> None:
        session.close(99, "go away")

    settings = h3.H3Settings(webtransport=True)
    async with (
        h3.serve("127.0.0.1", 0, config=server_config(), on_session=on_session) as server,
        h3.connect(
            "localhost", server.address[1], config=h3_client_config(), settings=settings
        ) as client,
    ):
        session = await client.open_webtransport("/x")
        assert await asyncio.wait_for(session.wait_closed(), 5) == (99, "go away")
        with pytest.raises(ConnectionError):
            await session.accept_stream()

    async def hello(request: h3.Request) -> h3.Response:
        return h3.Response(200, body=b"hi")

    async with (
        h3.serve("127.0.0.1", 0, hello, config=server_config()) as plain,
        h3.connect(
            "localhost", plain.address[1], config=h3_client_config(), settings=settings
        ) as client,
    ):
        with pytest.raises(h3.H3ResponseError) as info:
            await client.open_webtransport("/x")  # extended CONNECT not enabled there
        assert info.value.code == h3.H3ErrorCode.H3_MESSAGE_ERROR
        assert (await client.request("GET", "/")).body == b"hi"  # a stream error only
