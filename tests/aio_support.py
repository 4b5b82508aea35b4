"""Helpers for the asyncio tests: a server + client pair on real loopback UDP, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from support import client_config, server_config

import quicish
from quicish import QuicConnection, QuicStreamReader, QuicStreamWriter, Server

T = TypeVar("T")
Handler = Callable[[QuicStreamReader, QuicStreamWriter], Awaitable[None] | None]

TEST_TIMEOUT = 20.0


def timed(
    seconds: float = TEST_TIMEOUT,
) -> Callable[[Callable[..., Coroutine[Any, Any, T]]], Callable[..., Coroutine[Any, Any, T]]]:
    """Run an async test body under ``asyncio.wait_for(..., seconds)``."""

    def wrap(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> T:
            return await asyncio.wait_for(fn(*args, **kwargs), seconds)

        return run

    return wrap


async def echo(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
    """Send back everything read, then FIN."""
    data = await reader.read()
    writer.write(data)
    writer.write_eof()


async def echo_once(conn: QuicConnection, data: bytes) -> bytes:
    """Send ``data`` on a new stream with FIN; what comes back (an echo server's answer)."""
    reader, writer = await conn.open_stream()
    writer.write(data)
    writer.write_eof()
    return await reader.read()


@contextlib.asynccontextmanager
async def pair(
    on_stream: Handler | None = echo,
    *,
    host: str = "127.0.0.1",
    server_kw: dict[str, Any] | None = None,
    client_kw: dict[str, Any] | None = None,
    on_connection: Callable[[QuicConnection], Any] | None = None,
) -> AsyncIterator[tuple[Server, QuicConnection]]:
    """A listening server and a client connected to it; both closed on exit."""
    server = await quicish.serve(
        host,
        0,
        config=server_config(**(server_kw or {})),
        on_stream=on_stream,
        on_connection=on_connection,
    )
    try:
        async with quicish.connect(
            host, server.address[1], config=client_config(**(client_kw or {}))
        ) as conn:
            yield server, conn
    finally:
        server.close()
        await server.wait_closed()
