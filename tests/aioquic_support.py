"""aioquic (tests only) as the peer of quicish over loopback UDP: an hq-interop-like echo
server and a client, with the events each side saw, in order."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import serve
from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.tls import SessionTicket
from support import cert_files

ALPN = ["hq-interop"]


class TicketStore:
    """aioquic server-side ticket store (single-use, as 0-RTT anti-replay wants)."""

    def __init__(self) -> None:
        self.tickets: dict[bytes, SessionTicket] = {}

    def add(self, ticket: SessionTicket) -> None:
        self.tickets[ticket.ticket] = ticket

    def pop(self, label: bytes) -> SessionTicket | None:
        return self.tickets.pop(label, None)


class EchoProtocol(QuicConnectionProtocol):
    """Echo every stream back when its FIN arrives; log events (kind, handshake done?)."""

    log: list[tuple[str, Any]]
    echo = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.log = []
        self.buffers: dict[int, bytearray] = {}
        self.handshake_done = False
        self.early_data_accepted: bool | None = None
        self.session_resumed: bool | None = None

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        if isinstance(event, qe.HandshakeCompleted):
            self.handshake_done = True
            self.early_data_accepted = event.early_data_accepted
            self.session_resumed = event.session_resumed
            self.log.append(("handshake", None))
        elif isinstance(event, qe.StreamDataReceived):
            self.log.append(("data", self.handshake_done))
            buf = self.buffers.setdefault(event.stream_id, bytearray())
            buf.extend(event.data)
            if self.echo:  # the server answers here, without aioquic's stream objects
                if event.end_stream:
                    self._quic.send_stream_data(event.stream_id, bytes(buf), end_stream=True)
                    self.transmit()
                return
        elif isinstance(event, qe.ConnectionTerminated):
            self.log.append(("terminated", event.error_code))
        super().quic_event_received(event)


class ClientProtocol(EchoProtocol):
    echo = False


class AioquicServer:
    def __init__(self) -> None:
        self.protocols: list[EchoProtocol] = []
        self.tickets = TicketStore()
        self.server: Any = None
        self.port = 0

    def _create(self, *args: Any, **kw: Any) -> EchoProtocol:
        proto = EchoProtocol(*args, **kw)
        self.protocols.append(proto)
        return proto

    async def settle(self, timeout: float = 1.0) -> None:
        """Let the server read what its clients sent last (a quicish client's close returns
        as its CONNECTION_CLOSE leaves): until every connection logged its end, or timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not all(
            any(kind == "terminated" for kind, _ in proto.log) for proto in self.protocols
        ):
            await asyncio.sleep(0.005)


def server_configuration(**kw: Any) -> QuicConfiguration:
    cert, key, _ = cert_files()
    config = QuicConfiguration(is_client=False, alpn_protocols=ALPN, **kw)
    config.load_cert_chain(cert, key)
    return config


def client_configuration(**kw: Any) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=ALPN, server_name="localhost", **kw)
    config.verify_mode = ssl.CERT_NONE
    return config


@contextlib.asynccontextmanager
async def aioquic_server(*, retry: bool = False, **config_kw: Any) -> AsyncIterator[AioquicServer]:
    """An aioquic echo server on 127.0.0.1 issuing single-use session tickets."""
    holder = AioquicServer()
    holder.server = await serve(
        "127.0.0.1",
        0,
        configuration=server_configuration(**config_kw),
        create_protocol=holder._create,
        session_ticket_fetcher=holder.tickets.pop,
        session_ticket_handler=holder.tickets.add,
        retry=retry,
    )
    holder.port = holder.server._transport.get_extra_info("sockname")[1]
    try:
        yield holder
        await holder.settle()
    finally:
        holder.server.close()


async def aioquic_request(
    port: int,
    data: bytes,
    *,
    ticket: SessionTicket | None = None,
    early: bool = False,
    config_kw: dict[str, Any] | None = None,
    during: Any = None,
    token_handler: Any = None,
) -> tuple[bytes, EchoProtocol, list[SessionTicket]]:
    """Send ``data`` on one stream with an aioquic client and read the echo.

    ``early``: write before the handshake (0-RTT with ``ticket``). ``during(protocol)``:
    an optional coroutine run while the answer is awaited."""
    config = client_configuration(**(config_kw or {}))
    config.session_ticket = ticket
    tickets: list[SessionTicket] = []
    async with connect(
        "127.0.0.1",
        port,
        configuration=config,
        create_protocol=ClientProtocol,
        session_ticket_handler=tickets.append,
        wait_connected=not early,
        token_handler=token_handler,
    ) as client:
        assert isinstance(client, EchoProtocol)
        reader, writer = await client.create_stream()
        writer.write(data)
        writer.write_eof()
        task = asyncio.ensure_future(during(client)) if during is not None else None
        answer = await reader.read()
        if task is not None:
            await task
        # (aioquic's wait_connected() never returns after wait_connected=False.)
        for _ in range(100):  # the handshake and the ticket may trail the answer
            if client.handshake_done and tickets:
                break
            await client.ping()
        return answer, client, tickets
