"""``Config(early_data=...)`` over real UDP: 0-RTT on (one server's default), off (the ticket
still resumes; the request arrives once, in 1-RTT), a check that serves replay-safe
requests in 0-RTT and holds the others until the handshake, and the fleet default: servers
sharing secrets without a fleet-wide strike register refuse 0-RTT unless told otherwise.
A recorded 0-RTT flight replayed to a second server of the fleet shows what each choice
risks."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aio_support import timed
from support import client_config, server_config

import quicish
from interop.tap import Tap
from quicish import ConfigError, QuicConnection, QuicStreamReader, QuicStreamWriter, Server
from quicish.keyfile import FleetSecrets
from quicish.tls.tickets import ReplayFilter, SessionTicket


def idempotent(stream_id: int, first: bytes) -> bool:
    return first.startswith(b"GET ")


@dataclass
class Handled:
    request: bytes
    early_data: bool  # the reader's mark: the stream was opened in 0-RTT
    before_handshake: bool  # the handler started before the handshake completed


@dataclass
class Recorder:
    """A server's stream handler: answers ``done <request>`` and notes each request."""

    handled: list[Handled] = field(default_factory=list)

    def on_stream(self, reader: QuicStreamReader, writer: QuicStreamWriter) -> Awaitable[None]:
        conn: QuicConnection = writer.get_extra_info("connection")
        before = not conn.handshake_confirmed  # (a server confirms as it completes)
        return self._answer(reader, writer, before)

    async def _answer(
        self, reader: QuicStreamReader, writer: QuicStreamWriter, before: bool
    ) -> None:
        request = await reader.read()
        self.handled.append(Handled(request, reader.early_data, before))
        writer.write(b"done " + request)
        writer.write_eof()

    def requests(self) -> list[bytes]:
        return [h.request for h in self.handled]


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.json"
    FleetSecrets.generate().save(path)
    return path


@asynccontextmanager
async def server(recorder: Recorder, **kw: Any) -> AsyncIterator[Server]:
    register = kw.pop("strike_register", None)
    async with quicish.serve(
        "127.0.0.1",
        0,
        config=server_config(**kw),
        on_stream=recorder.on_stream,
        strike_register=register,
    ) as srv:
        yield srv


async def ticket_from(address: tuple[str, int]) -> bytes:
    async with quicish.connect(*address, config=client_config()) as conn:
        reader, writer = await conn.open_stream()
        writer.write(b"GET /first")
        writer.write_eof()
        assert await reader.read() == b"done GET /first"
        ticket = await conn.wait_session_ticket()
    assert ticket is not None
    return ticket


async def early_requests(
    address: tuple[str, int], ticket: bytes, *requests: bytes
) -> tuple[QuicConnection, list[bytes]]:
    """Resume with ``requests`` written at once (in 0-RTT when the server takes it), one
    stream each; the connection (handshake done) and the answers."""
    conn = await quicish.connect(
        *address, config=client_config(), session_ticket=ticket, early_data=True
    )
    streams = []
    for request in requests:
        reader, writer = await conn.open_stream()
        writer.write(request)
        writer.write_eof()
        streams.append(reader)
    answers = [await reader.read() for reader in streams]
    await conn.wait_connected()
    return conn, answers


@timed()
async def test_one_server_takes_0rtt_by_default() -> None:
    rec = Recorder()
    async with server(rec) as srv:
        ticket = await ticket_from(srv.address)
        conn, answers = await early_requests(srv.address, ticket, b"POST /x")
        async with conn:
            assert conn.session_resumed and conn.early_data_accepted
    assert answers == [b"done POST /x"]
    assert rec.handled[-1] == Handled(b"POST /x", early_data=True, before_handshake=True)


@timed()
async def test_early_data_off_refuses_0rtt_and_the_request_arrives_once(
    secrets_file: Path,
) -> None:
    """B refuses the 0-RTT of A's ticket: the session resumes, the client sends the request
    again in 1-RTT and B runs it once. B's own tickets offer no 0-RTT at all."""
    a_rec, b_rec = Recorder(), Recorder()
    async with (
        server(a_rec, secrets=secrets_file, early_data=True) as a,
        server(b_rec, secrets=secrets_file, early_data=False) as b,
    ):
        ticket = await ticket_from(a.address)
        assert SessionTicket.from_bytes(ticket).max_early_data_size is not None
        conn, answers = await early_requests(b.address, ticket, b"POST /once")
        async with conn:
            assert conn.session_resumed and not conn.early_data_accepted
        own = await ticket_from(b.address)
    assert answers == [b"done POST /once"]
    assert b_rec.handled[0] == Handled(b"POST /once", early_data=False, before_handshake=False)
    assert b_rec.requests().count(b"POST /once") == 1
    assert SessionTicket.from_bytes(own).max_early_data_size is None


@timed()
async def test_a_check_serves_get_in_0rtt_and_holds_post_until_the_handshake() -> None:
    rec = Recorder()
    async with server(rec, early_data=idempotent) as srv:
        ticket = await ticket_from(srv.address)
        conn, answers = await early_requests(srv.address, ticket, b"GET /a", b"POST /b")
        async with conn:
            assert conn.session_resumed and conn.early_data_accepted
    assert answers == [b"done GET /a", b"done POST /b"]
    assert rec.handled[1:] == [
        Handled(b"GET /a", early_data=True, before_handshake=True),
        Handled(b"POST /b", early_data=True, before_handshake=False),
    ] or rec.handled[1:] == [  # (the order the two handlers finished in)
        Handled(b"POST /b", early_data=True, before_handshake=False),
        Handled(b"GET /a", early_data=True, before_handshake=True),
    ]


async def replay_to_second_server(secrets_file: Path, **b_config: Any) -> list[Handled]:
    """Resume on A with GET and POST in 0-RTT through a recording tap, replay the client's
    first flight (Initial and 0-RTT datagrams) to B, a server with the same secrets and no
    shared strike register; what B ran."""
    a_rec, b_rec = Recorder(), Recorder()
    async with (
        server(a_rec, secrets=secrets_file, early_data=idempotent) as a,
        server(b_rec, secrets=secrets_file, **b_config) as b,
    ):
        ticket = await ticket_from(a.address)
        with Tap(a.address) as tap:
            conn, answers = await early_requests(tap.address, ticket, b"GET /a", b"POST /b")
            assert conn.early_data_accepted and answers == [b"done GET /a", b"done POST /b"]
            await conn.__aexit__()
        assert sorted(a_rec.requests()[1:]) == [b"GET /a", b"POST /b"]
        sent = [r.data for r in tap.records if r.to_server]
        dcid = sent[0][6 : 6 + sent[0][5]]
        flight = [d for d in sent if d[0] & 0x80 and d[6 : 6 + d[5]] == dcid]
        assert any((d[0] >> 4) & 3 == 1 for d in flight)  # a 0-RTT packet
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for datagram in flight:
                sock.sendto(datagram, b.address)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:  # the replay gets B's answer, and no more
                await asyncio.sleep(0.05)
        return b_rec.handled


@timed()
async def test_replayed_flight_on_a_fleet_server(secrets_file: Path) -> None:
    """What a fleet without a shared store risks, by B's setting: the default refuses the
    replayed 0-RTT (nothing runs); the check runs the GET again but never the POST, whose
    handshake the attacker cannot complete; 0-RTT on runs both again."""
    assert await replay_to_second_server(secrets_file) == []
    assert await replay_to_second_server(secrets_file, early_data=idempotent) == [
        Handled(b"GET /a", early_data=True, before_handshake=True)
    ]
    both = await replay_to_second_server(secrets_file, early_data=True)
    assert sorted(h.request for h in both) == [b"GET /a", b"POST /b"]


@timed()
async def test_fleet_default_and_the_warning(
    secrets_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With secrets: 0-RTT off by default; on when asked (one warning line) or when the
    server is given a strike register (a fleet-wide store: no warning)."""
    a_rec = Recorder()
    with caplog.at_level(logging.WARNING, logger="quicish"):
        async with (
            server(a_rec, secrets=secrets_file, early_data=True) as a,
            server(Recorder(), secrets=secrets_file) as default,
            server(Recorder(), secrets=secrets_file, strike_register=ReplayFilter()) as shared,
        ):
            ticket = await ticket_from(a.address)
            outcomes = []
            for srv in (default, shared):
                conn, _ = await early_requests(srv.address, ticket, b"GET /x")
                async with conn:
                    outcomes.append((conn.session_resumed, conn.early_data_accepted))
    assert outcomes == [(True, False), (True, True)]
    warnings = [r.getMessage() for r in caplog.records if "0-RTT on" in r.getMessage()]
    assert len(warnings) == 1 and "replayed 0-RTT flight once" in warnings[0]


def test_config_checks_early_data() -> None:
    with pytest.raises(ConfigError, match="early_data"):
        server_config(early_data="yes")
    assert server_config(early_data=idempotent).early_data is idempotent


def picky(stream_id: int, first: bytes) -> bool:
    if first.startswith(b"BOOM"):
        raise RuntimeError("a check that fails")
    return idempotent(stream_id, first)


@timed()
async def test_peeked_bytes_are_read_whole_and_a_failing_check_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Large requests (the check sees their first bytes, the handler reads them all), and a
    check that raises: logged, and the stream waits for the handshake."""
    rec = Recorder()
    big_get = b"GET /big " + os.urandom(150_000)
    big_post = b"POST /big " + os.urandom(150_000)
    async with server(rec, early_data=picky) as srv:
        ticket = await ticket_from(srv.address)
        conn, answers = await early_requests(srv.address, ticket, big_get, big_post, b"BOOM /c")
        async with conn:
            assert conn.early_data_accepted
    assert answers == [b"done " + big_get, b"done " + big_post, b"done BOOM /c"]
    by_request = {h.request[:8]: h.before_handshake for h in rec.handled[1:]}
    assert by_request == {b"GET /big": True, b"POST /bi": False, b"BOOM /c": False}
    assert any("early_data check failed" in r.getMessage() for r in caplog.records)
