"""quicish.h3 client against quicish.h3 server over loopback UDP: GETs (small and 10 MB,
byte-exact), POST echo, 404, concurrent requests, streaming both ways, HEAD, the ASGI
adapter, GOAWAY on shutdown."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

from aio_support import timed
from h3_support import h3_client_config, h3_server
from support import run_readme_example

import quicish.h3 as h3
from quicish.h3.asgi import ASGIHandler, Receive, Scope, Send

STREAMED = b"".join(f"chunk {i}\n".encode() for i in range(5))
BIG = hashlib.shake_256(b"h3").digest(10 << 20)  # 10 MB, not compressible


async def handler(request: h3.Request) -> h3.Response:
    if request.path == "/small":
        return h3.Response(200, [("content-type", "text/plain")], b"hello, HTTP/3\n")
    if request.path == "/big":
        return h3.Response(200, body=BIG)
    if request.path == "/echo":
        data = await request.body.read()
        return h3.Response(201, {"x-method": request.method, "x-length": str(len(data))}, data)
    if request.path.startswith("/stream"):

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(5):
                await asyncio.sleep(0.01)
                yield f"chunk {i}\n".encode()

        return h3.Response(200, body=chunks())
    if request.path == "/slow":
        await asyncio.sleep(0.3)
        return h3.Response(200, body=b"slow done")
    return h3.Response(404, body=b"not here")


def url(server: h3.H3Server, path: str) -> str:
    return f"https://localhost:{server.address[1]}{path}"


@timed()
async def test_get_small_and_404() -> None:
    async with h3_server(handler) as server:
        response = await h3.request(url(server, "/small"), config=h3_client_config())
        assert response.status == 200
        assert response.body == b"hello, HTTP/3\n"
        assert response.header("content-type") == "text/plain"
        assert response.header("content-length") == "14"
        missing = await h3.request(url(server, "/nope"), config=h3_client_config())
        assert (missing.status, missing.body) == (404, b"not here")


@timed(60)
async def test_get_10mb_byte_exact() -> None:
    async with h3_server(handler) as server:
        response = await h3.request(url(server, "/big"), config=h3_client_config())
        assert response.status == 200
        assert response.header("content-length") == str(len(BIG))
        assert isinstance(response.body, bytes)
        assert len(response.body) == len(BIG)
        assert response.body == BIG


@timed()
async def test_post_echo_bytes_and_streamed_body() -> None:
    async with h3_server(handler) as server:
        port = server.address[1]
        async with h3.connect("localhost", port, config=h3_client_config()) as client:
            body = bytes(range(256)) * 1000
            response = await client.request("POST", "/echo", body=body)
            assert response.status == 201
            assert response.header("x-method") == "POST"
            assert response.header("x-length") == str(len(body))
            assert response.body == body

            async def parts() -> AsyncIterator[bytes]:
                for i in range(10):
                    yield bytes([i]) * 10_000

            streamed = await client.request("PUT", "/echo", body=parts())
            assert streamed.body == b"".join(bytes([i]) * 10_000 for i in range(10))
            assert streamed.header("x-method") == "PUT"


@timed()
async def test_concurrent_requests_on_one_connection() -> None:
    async with h3_server(handler) as server:
        port = server.address[1]
        async with h3.connect("localhost", port, config=h3_client_config()) as client:
            paths = ["/small", "/echo", "/nope", "/stream"] * 10
            results = await asyncio.gather(
                *(client.request("POST" if p == "/echo" else "GET", p, body=p.encode()
                                 if p == "/echo" else b"") for p in paths)
            )  # fmt: skip
            statuses = [r.status for r in results]
            assert statuses == [200, 201, 404, 200] * 10
            assert all(r.body == b"/echo" for r in results[1::4])
            assert all(r.body == STREAMED for r in results[3::4])


@timed()
async def test_streaming_response_and_head() -> None:
    async with h3_server(handler) as server:
        config = h3_client_config()
        async with h3.stream(url(server, "/stream"), config=config) as response:
            assert response.status == 200
            assert response.header("content-length") is None  # streamed: no length
            chunks = [chunk async for chunk in response.body]
        assert b"".join(chunks) == b"".join(f"chunk {i}\n".encode() for i in range(5))
        assert len(chunks) >= 2  # it arrived in pieces
        head = await h3.request(url(server, "/small"), "HEAD", config=config)
        assert (head.status, head.body, head.header("content-length")) == (200, b"", "14")


@timed()
async def test_goaway_on_shutdown_lets_the_request_in_progress_finish() -> None:
    async with h3_server(handler) as server:
        port = server.address[1]
        async with h3.connect("localhost", port, config=h3_client_config()) as client:
            slow = asyncio.ensure_future(client.request("GET", "/slow"))
            await asyncio.sleep(0.1)
            closing = asyncio.ensure_future(server.shutdown(grace=2.0))
            await asyncio.sleep(0.05)
            assert client.h3.goaway_received == 4  # the first request not processed
            response = await slow
            assert (response.status, response.body) == (200, b"slow done")
            await closing
            await asyncio.wait_for(client.quic.wait_closed(), 2)
            assert client.quic.close_error is not None
            assert client.quic.close_error.error_code == h3.H3ErrorCode.H3_NO_ERROR


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = f"{scope['method']} {scope['path']} q={scope['query_string'].decode()} {len(body)}"
    await send({"type": "http.response.start", "status": 202,
                "headers": [(b"content-type", b"text/plain"), (b"x-asgi", b"yes")]})  # fmt: skip
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b" end"})


@timed()
async def test_asgi_adapter() -> None:
    async with h3_server(ASGIHandler(asgi_app)) as server:
        response = await h3.request(
            url(server, "/app/x?a=1"), "POST", body=b"12345", config=h3_client_config()
        )
        assert response.status == 202
        assert response.header("x-asgi") == "yes"
        assert response.body == b"POST /app/x q=a=1 5 end"


def test_readme_http3_example_runs(tmp_path: Path) -> None:
    """The README's HTTP/3 example, as a user would paste it (on a free port)."""
    assert run_readme_example("## HTTP/3", tmp_path) == ["200 b'HELLO, H3'"]


@timed()
async def test_goaway_from_an_idle_server_names_stream_0() -> None:
    async with h3_server(handler) as server:
        port = server.address[1]
        async with h3.connect("localhost", port, config=h3_client_config()) as client:
            await asyncio.wait_for(client.h3.settings_received.wait(), 5)
            await server.shutdown(grace=0.1)
            await asyncio.wait_for(client.quic.wait_closed(), 2)
            assert client.h3.goaway_received == 0
            assert client.quic.close_error is not None
            assert client.quic.close_error.error_code == h3.H3ErrorCode.H3_NO_ERROR
            assert client.h3.error is None  # the GOAWAY id was valid
