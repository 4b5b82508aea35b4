"""The connection lifecycle as an asyncio user meets it: migrate() right after connect(),
leaving ``async with`` after a migration, and close() not holding the caller for the
closing period (RFC 9000 10.2 runs in the background)."""

from __future__ import annotations

import asyncio

from aio_support import echo, echo_once, pair, timed
from support import client_config, server_config

import quicish
from quicish import QuicConnection


@timed()
async def test_migrate_right_after_connect_waits_for_confirmation() -> None:
    """It used to fail at once: 'migration needs a confirmed handshake'."""
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    async with (
        server,
        quicish.connect("127.0.0.1", server.address[1], config=client_config()) as conn,
    ):
        old = conn.local_address
        await conn.migrate()
        assert conn.local_address != old
        assert conn.stats().path_migrations == 1
        await conn.wait_confirmed()  # (returns at once now)


@timed()
async def test_wait_confirmed_fails_with_the_close_error() -> None:
    """A connection that ends before confirmation: wait_confirmed() raises its close error."""
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    async with server:
        conn = await quicish.connect("127.0.0.1", server.address[1], config=client_config())
        conn._confirmed = asyncio.get_running_loop().create_future()  # as before HANDSHAKE_DONE
        conn.close(7, "bye")
        try:
            await conn.wait_confirmed()
        except quicish.ConnectionClosedError as exc:
            assert exc.error_code == 7 and not exc.by_peer
        else:
            raise AssertionError("wait_confirmed() returned")


async def _server_side(server: quicish.Server) -> QuicConnection:
    (sconn,) = server.connections
    return sconn


@timed()
async def test_leaving_async_with_returns_as_close_is_sent() -> None:
    """``__aexit__`` sends CONNECTION_CLOSE and returns: the closing period (three PTOs,
    80-90 ms on loopback before) goes on in the background, and the peer has the close."""
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    async with server:
        async with quicish.connect("127.0.0.1", server.address[1], config=client_config()) as conn:
            assert await echo_once(conn, b"x") == b"x"
            sconn = await _server_side(server)
        released = asyncio.ensure_future(conn.wait_released())
        await asyncio.sleep(0)
        assert not released.done()  # still in its closing period, in the background
        await sconn.wait_closed()  # the server got the CONNECTION_CLOSE
        assert sconn.close_error is not None and sconn.close_error.by_peer
        await released  # and the client's socket is released afterwards
        assert conn._endpoint.closed


@timed()
async def test_close_then_wait_closed_returns_before_the_closing_period_ends() -> None:
    async with pair() as (_, conn):
        conn.close()
        await conn.wait_closed()
        assert not conn._released  # closing period still running
        assert conn.close_error is not None and not conn.close_error.by_peer
        await conn.wait_released()


@timed()
async def test_leaving_async_with_after_a_migration_without_traffic_does_not_block() -> None:
    """A migration with no traffic on the new path left a PTO of about 1 s, so the closing
    period held ``__aexit__`` for about 3 s."""
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    async with server:
        conn = await quicish.connect("127.0.0.1", server.address[1], config=client_config())
        await conn.migrate()
        exit_task = asyncio.ensure_future(conn.__aexit__(None, None, None))
        await asyncio.wait_for(exit_task, 1.0)  # was about 3 s
        await conn.wait_released()


@timed()
async def test_loop_shutdown_during_the_closing_period_releases_the_socket() -> None:
    """The background closing period is a task: cancelled at loop shutdown, it releases the
    client's socket at once."""
    async with pair() as (_, conn):
        pass
    assert not conn._endpoint.closed  # in its closing period
    task = conn._linger_task
    assert task is not None and task in asyncio.all_tasks()
    task.cancel()  # what asyncio.run does to the tasks left at its end
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert conn._endpoint.closed


@timed()
async def test_serve_works_in_async_with_without_await() -> None:
    """``async with quicish.serve(...)`` raised TypeError ('coroutine' object does not support
    the asynchronous context manager protocol); both forms work, as for connect()."""
    async with quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo) as server:
        assert isinstance(server, quicish.Server)
        async with quicish.connect("127.0.0.1", server.address[1], config=client_config()) as conn:
            assert await echo_once(conn, b"ok") == b"ok"
    assert server._closed.done()
    pending = quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    assert isinstance(pending, quicish.PendingServer)
    async with await pending as server:
        assert server.address[1] > 0
    attempt = quicish.connect("127.0.0.1", 1, config=client_config())
    assert isinstance(attempt, quicish.PendingConnection)
    attempt._coro.close()  # never awaited: no connection made
