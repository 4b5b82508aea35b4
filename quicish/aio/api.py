"""``quicish.connect`` and ``quicish.serve``: the asyncio entry points."""

from __future__ import annotations

import asyncio
import atexit
import copy
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from typing import Any, Generic, Protocol, TypeVar, overload

from ..config import Config
from ..errors import ConfigError, ConnectionClosedError, HandshakeTimeout
from ..packet_log import attach_packet_log
from ..proto.admission import Admission
from ..proto.connection import Connection
from ..proto.handshake_stock import HandshakeStock
from ..proto.server_context import ServerContext
from ..proto.stateless import InitialVerdict, StatelessResponder
from ..qlog.sinks import Tracer
from ..tls.tickets import StrikeRegister
from ..udp import Address, UdpSocket
from ..wire.packet import QUIC_V1
from .connection import QuicConnection, StreamHandler
from .early_data import resolve as resolve_early_data
from .endpoint import Endpoint, clock
from .streams import QuicStreamReader, QuicStreamWriter
from .workers import WorkerPool

logger = logging.getLogger("quicish")
T = TypeVar("T")


class Server:
    """A listening QUIC server: one UDP socket, many connections."""

    def __init__(self, endpoint: Endpoint[QuicConnection]) -> None:
        self._endpoint = endpoint
        self._closed = asyncio.get_running_loop().create_future()
        self.accepting = True  # False: new clients' Initials are dropped (draining)

    @property
    def address(self) -> Address:
        """(host, port) actually bound."""
        return self._endpoint.address

    @property
    def tracer(self) -> Tracer | None:
        """``tracer(name, data)`` told of each datagram the server drops before any
        connection takes it (qlog ``packet_dropped``: unknown CID, unsupported version,
        a first Initial that fails its checks, ...); None: off. Connections' own events go
        to ``Config.tracer`` / ``QuicConnection.tracer``."""
        return self._endpoint.router.tracer

    @tracer.setter
    def tracer(self, tracer: Tracer | None) -> None:
        self._endpoint.router.tracer = tracer

    @property
    def connections(self) -> set[QuicConnection]:
        """The connections not yet closed (a closed one leaves as ``wait_closed()`` returns)."""
        return self._endpoint.connections

    def stop_accepting(self) -> None:
        """Take no new connection (their Initials are dropped); the others go on."""
        self.accepting = False

    def close(self) -> None:
        """Stop accepting, close every connection (CONNECTION_CLOSE goes out at once), and
        release the socket; there is no closing period once the socket is gone."""
        if self._closed.done():
            return
        conns = list(self._endpoint.connections)
        for conn in conns:
            conn.close()
        self._endpoint.flush()
        for conn in conns:
            conn.abort()
        self._endpoint.close()
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


class _Closable(Protocol):
    async def __aexit__(self, *exc: object) -> None: ...


C = TypeVar("C", bound=_Closable)


class _Pending(Generic[C]):
    """An object being made: ``await`` it, or use it in ``async with`` (it closes at the
    block's end, as its own ``async with`` would close it)."""

    def __init__(self, coro: Coroutine[Any, Any, C]) -> None:
        self._coro = coro
        self._made: C | None = None

    def __await__(self) -> Generator[Any, None, C]:
        return self._coro.__await__()

    async def __aenter__(self) -> C:
        self._made = await self._coro
        return self._made

    async def __aexit__(self, *exc: object) -> None:
        if self._made is not None:
            await self._made.__aexit__(*exc)


class PendingServer(_Pending[Server]):
    """What :func:`serve` returns: ``await`` it for the :class:`Server`, or use it directly
    in ``async with`` (the server closes at the block's end)."""


class PendingWorkers(_Pending[WorkerPool]):
    """What :func:`serve` with ``workers`` returns: ``await`` it for the
    :class:`~quicish.aio.workers.WorkerPool` (or use it in ``async with``)."""


ConnectionHandler = Callable[[QuicConnection], Awaitable[None] | None]
DRAIN_TIMEOUT = 30.0  # seconds a stopping worker lets its connections go on


@overload
def serve(
    host: str,
    port: int,
    *,
    config: Config,
    on_stream: StreamHandler | None = None,
    on_connection: ConnectionHandler | None = None,
    versions: Sequence[int] | None = None,
    workers: None = None,
    drain_timeout: float = DRAIN_TIMEOUT,
    strike_register: StrikeRegister | None = None,
) -> PendingServer: ...


@overload
def serve(
    host: str,
    port: int,
    *,
    config: Config,
    on_stream: StreamHandler | None = None,
    on_connection: ConnectionHandler | None = None,
    versions: Sequence[int] | None = None,
    workers: int,
    drain_timeout: float = DRAIN_TIMEOUT,
    strike_register: StrikeRegister | None = None,
) -> PendingWorkers: ...


def serve(
    host: str,
    port: int,
    *,
    config: Config,
    on_stream: StreamHandler | None = None,
    on_connection: ConnectionHandler | None = None,
    versions: Sequence[int] | None = None,
    workers: int | None = None,
    drain_timeout: float = DRAIN_TIMEOUT,
    strike_register: StrikeRegister | None = None,
) -> PendingServer | PendingWorkers:
    """Listen on ``host:port`` (port 0 picks one); ``on_stream(reader, writer)`` per peer
    stream. ``server = await serve(...)``, ``async with await serve(...) as server`` and
    ``async with serve(...) as server`` all work.

    ``versions``: QUIC versions in preference order; ``(QUIC_V2, QUIC_V1)`` answers v1
    clients that offer v2 in v2 (compatible version negotiation, RFC 9368).

    ``workers``: serve from that many forked worker processes on the one port (0: one per
    CPU), the kernel steering each packet to the worker owning its connection; gives a
    :class:`~quicish.aio.workers.WorkerPool`. ``drain_timeout``: how long its graceful
    ``shutdown()`` lets connections go on (docs/deployment.md).

    ``strike_register``: where 0-RTT ticket identities are checked for replays (a
    :class:`~quicish.tls.tickets.StrikeRegister`, e.g. a fleet-wide store); default: one
    per process, or the one the workers share. With ``config.secrets`` (a fleet) and none
    given, 0-RTT is off unless ``config.early_data`` says otherwise."""
    config = resolve_early_data(config, fleet_register=strike_register is not None)
    if workers is None:
        return PendingServer(
            _serve(host, port, config, on_stream, on_connection, versions, strike_register)
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers must be a count (0: one per CPU), not {workers!r}")

    async def start_worker(udp: UdpSocket, cfg: Config, strikes: StrikeRegister) -> Server:
        return await _serve_on(udp, cfg, on_stream, on_connection, versions, strikes)

    async def started() -> WorkerPool:
        pool = WorkerPool(
            host,
            port,
            config,
            start_worker,
            run,
            workers=workers,
            drain_timeout=drain_timeout,
            strike_register=strike_register,
        )
        return await pool.start()

    return PendingWorkers(started())


async def _serve(
    host: str,
    port: int,
    config: Config,
    on_stream: StreamHandler | None,
    on_connection: ConnectionHandler | None,
    versions: Sequence[int] | None,
    strike_register: StrikeRegister | None = None,
) -> Server:
    udp = UdpSocket.bind(host, port)
    return await _serve_on(udp, config, on_stream, on_connection, versions, strike_register)


async def _serve_on(
    udp: UdpSocket,
    config: Config,
    on_stream: StreamHandler | None,
    on_connection: ConnectionHandler | None,
    versions: Sequence[int] | None,
    strike_register: StrikeRegister | None = None,
) -> Server:
    loop = asyncio.get_running_loop()
    context = ServerContext.from_config(config)
    if config.secrets is not None:  # tickets and tokens other servers read: a shared clock
        context.clock_offset = time.time() - clock()
    if versions is not None:
        context.versions = tuple(versions)
    if strike_register is not None:
        context.replay_filter = strike_register
    stock = HandshakeStock()  # this server's key pairs, made ahead of its next clients

    def new_connection() -> Connection:
        proto = Connection(config, is_client=False, server_context=context, handshake_stock=stock)
        proto.split_first_flight = True  # _transmit sends the rest right after the hello
        proto.await_hello(clock())  # its TLS engine, made ahead (between handshakes for a spare)
        return proto

    def accept(
        data: bytes, addr: Address, now: float, verdict: InitialVerdict | None
    ) -> QuicConnection | None:
        if not server.accepting:
            return None
        proto = spare.take()
        attach_packet_log(proto)  # (only with quicish.packet at DEBUG)
        if verdict is not None:
            proto.set_origin(verdict.original_dcid, verdict.retry_source_cid, verdict.validated)
        proto.receive_datagram(data, addr, now)
        if proto.stats_counters.packets_received == 0:
            return None  # nothing authentic in it (undecryptable noise): keep no state
        conn = QuicConnection(proto, endpoint, on_stream=on_stream)
        spare.track(conn)
        if on_connection is not None:
            try:
                result = on_connection(conn)
            except Exception:
                logger.exception("on_connection callback failed")
            else:
                if asyncio.iscoroutine(result):
                    conn.spawn(result)
        return conn

    mode = config.retry_mode()
    admission = Admission(mode, config.retry_threshold, config.max_half_open)
    fmt = config.cid_format  # QUIC-LB: every CID of ours has its length
    cid_length = 8 if fmt is None else fmt.length
    stateless = StatelessResponder(
        context,
        retry=mode == "always",
        admission=admission,
        cid_length=cid_length,
        new_cid=None if fmt is None else fmt.new_cid,
    )
    endpoint = Endpoint(
        loop, udp, accept=accept, cid_length=cid_length, stateless=stateless, admission=admission
    )
    spare = _SpareServerConnection(endpoint, new_connection)
    server = Server(endpoint)
    return server


SPARE_QUIET = 0.001  # seconds without a datagram before a server makes its spare connection


class _SpareServerConnection:
    """One server connection (TLS engine and key pair included) made ahead of the next
    client, so that making it is not on that client's critical path: the ServerHello
    waits for everything before it. It is made when no handshake is in progress: after
    the endpoint's second flush once the last handshake is over (the answers to the
    Finished and to the first request have gone), else when the socket has been quiet
    for ``SPARE_QUIET``. Made during a handshake, it would hold up
    that handshake's datagrams (say, a client's Finished, which follows a quiet spell while
    the client works on the server's flight)."""

    def __init__(self, endpoint: Endpoint[QuicConnection], make: Callable[[], Connection]) -> None:
        self._endpoint = endpoint
        self._make = make
        self._loop = asyncio.get_running_loop()
        self._spare: Connection | None = make()  # nothing to hold up yet
        self._waiting = False
        self._handshakes = 0  # accepted connections whose handshake is not over

    def track(self, conn: QuicConnection) -> None:
        """``conn`` was accepted: no spare is made until its handshake is over."""
        self._handshakes += 1
        conn.on_handshake_over(self._handshake_over)

    def _handshake_over(self) -> None:
        self._handshakes -= 1
        if not self._handshakes:
            # Not right after the answer to the Finished: the first request may follow it
            # (when it did not come with it). After the flush that follows that one (the
            # answer to the request, or the close's): a sequential client's next Initial
            # comes a round trip and its own work later, sooner than any quiet spell.
            self._endpoint.after_next_flush(self._stock_after_next_flush)
        self._check_later(SPARE_QUIET)

    def _stock_after_next_flush(self) -> None:
        self._endpoint.after_next_flush(self._stock_if_idle)

    def _stock_if_idle(self) -> None:
        if self._spare is None and not self._handshakes and not self._endpoint.closed:
            self._spare = self._make()

    def take(self) -> Connection:
        """The spare if there is one, else a new connection; the next spare follows later."""
        proto, self._spare = self._spare, None
        self._check_later(SPARE_QUIET)
        return proto if proto is not None else self._make()

    def _check_later(self, delay: float) -> None:
        if not self._waiting:
            self._waiting = True
            self._loop.call_later(delay, self._stock_if_quiet)

    def _stock_if_quiet(self) -> None:
        self._waiting = False
        endpoint = self._endpoint
        if self._spare is not None or self._handshakes or endpoint.closed:
            return  # (the end of the handshakes checks again)
        wait = endpoint.last_receive + SPARE_QUIET - clock()
        if wait > 0:
            self._check_later(wait)
        else:
            self._spare = self._make()


class PendingConnection(_Pending[QuicConnection]):
    """What :func:`connect` returns: ``await`` it for the :class:`QuicConnection`, or use it
    in ``async with`` (the connection closes at the block's end)."""


def connect(
    host: str,
    port: int,
    *,
    config: Config | None = None,
    session_ticket: bytes | None = None,
    early_data: bool = False,
    wait_connected: bool = True,
    local_host: str | None = None,
    token: bytes | None = None,
    versions: Sequence[int] | None = None,
    timeout: float | None = None,
) -> PendingConnection:
    """Connect to a QUIC server; ``await`` it or use ``async with``.

    ``session_ticket`` resumes an earlier session and with ``early_data`` the call returns
    before the handshake completes, so the first requests go in 0-RTT. ``token``: an
    earlier connection's ``new_token``, which spares a Retry round trip. ``versions``: QUIC
    versions to offer in preference order, e.g. ``(QUIC_V2, QUIC_V1)``; the first flight is
    v1 when offered (any server reads it) and the server may switch to v2 (RFC 9368).
    ``timeout``: seconds for the handshake (default ``config.handshake_timeout``); past it
    ``HandshakeTimeout`` (a ``TimeoutError``) is raised."""
    config = config or Config()
    if timeout is not None:
        if not timeout > 0:
            raise ConfigError(f"timeout must be positive, not {timeout!r}")
        config = dataclasses.replace(config, handshake_timeout=timeout)
    return PendingConnection(
        _connect(
            host,
            port,
            config,
            session_ticket,
            early_data,
            wait_connected,
            local_host,
            token,
            versions,
        )
    )


async def _connect(
    host: str,
    port: int,
    config: Config,
    session_ticket: bytes | None,
    early_data: bool,
    wait_connected: bool,
    local_host: str | None,
    token: bytes | None = None,
    versions: Sequence[int] | None = None,
) -> QuicConnection:
    if early_data and session_ticket is None:
        raise ConfigError("early_data needs a session_ticket from an earlier connection")
    loop = asyncio.get_running_loop()
    family, addr = await _resolve(loop, host, port)
    bind_host = local_host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    version = QUIC_V1
    if versions:
        version = QUIC_V1 if QUIC_V1 in versions else versions[0]
    # The dialled host, IP literals too: no SNI then, but the IP SAN is checked.
    server_name = host if config.server_name is None else config.server_name
    plain = session_ticket is None and not token and not versions
    spare = _spare_client.take(config, server_name, bind_host) if plain else None
    if spare is not None:
        proto, udp = spare
    else:
        udp = UdpSocket.bind(bind_host, 0)
        proto = Connection(
            config,
            is_client=True,
            session_ticket=session_ticket,
            early_data=early_data,
            token=token or b"",
            version=version,
            versions=versions,
            server_name=server_name,
            handshake_stock=_spare_client.handshake_stock,
        )
    attach_packet_log(proto)  # (only with quicish.packet at DEBUG)
    endpoint: Endpoint[QuicConnection] = Endpoint(loop, udp)
    conn = QuicConnection(proto, endpoint, owns_endpoint=True)
    if plain:  # once this connection has ended, make one for the next connect() like it
        conn.on_terminated(lambda: _spare_client.stock(config, server_name, bind_host))
    proto.connect(addr, clock())
    endpoint.register(proto.host_cid, conn)
    conn.transmit(clock())
    if wait_connected and not early_data:  # with 0-RTT the application writes at once
        try:
            # Not wait_connected(): nobody else holds the connection yet, so the future
            # needs no shield (one loop iteration less between the Finished and the caller).
            await conn.handshake_done
        except ConnectionClosedError as exc:
            endpoint.close()
            if not exc.by_peer and exc.reason in ("handshake timeout", "idle timeout"):
                limit = (
                    config.idle_timeout
                    if exc.reason == "idle timeout"
                    else config.handshake_timeout
                )
                what = (
                    f"no response from {host}:{port}"
                    if proto.stats_counters.packets_received == 0
                    else f"the handshake with {host}:{port} did not complete"
                )
                raise HandshakeTimeout(exc.error_code, f"{what} within {limit:g} s") from exc
            raise
        except asyncio.CancelledError:
            endpoint.close()
            raise
    return conn


class _SpareClient:
    """What the process's clients make ahead of need. The handshake stock: key pairs and
    first DCIDs with Initial keys, which each client's ``prepare()`` stocks for the next.
    And one client connection, its ClientHello made, and a bound UDP socket, made while the
    process is idle (when a connection ends), so that none of them is on the next
    ``connect()``'s critical path. Only a plain ``connect()`` (no ticket, token or version
    list) with an equal Config, the same server name and the same local address takes it;
    one per process. Any other ``connect()`` closes the spare's socket."""

    def __init__(self) -> None:
        self.handshake_stock = HandshakeStock()
        self._spare: tuple[Config, str, str, Connection, UdpSocket] | None = None

    def stock(self, config: Config, server_name: str, bind_host: str) -> None:
        self.discard()
        try:
            snapshot = copy.deepcopy(config)  # a later change to ``config`` is seen by take()
        except (TypeError, copy.Error):  # e.g. an exotic path object: no spare then
            return
        proto = Connection(
            snapshot,
            is_client=True,
            server_name=server_name,
            handshake_stock=self.handshake_stock,
        )
        proto.start_hello(clock())
        try:
            udp = UdpSocket.bind(bind_host, 0)
        except OSError:  # e.g. out of file descriptors: connect() reports it, not this
            return
        self._spare = (snapshot, server_name, bind_host, proto, udp)

    def take(
        self, config: Config, server_name: str, bind_host: str
    ) -> tuple[Connection, UdpSocket] | None:
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        snapshot, name, host, proto, udp = spare
        if name != server_name or host != bind_host or snapshot != config:
            udp.close()
            return None
        proto.config = config
        return proto, udp

    def discard(self) -> None:
        """Close the spare's socket (at exit, or when a new spare replaces it)."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare[4].close()


_spare_client = _SpareClient()
atexit.register(_spare_client.discard)


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> tuple[int, Address]:
    """(address family, (address, port)) to dial; IP literals without a resolver call."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family, (host, port)
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise ConfigError(f"cannot resolve {host!r}")
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop when it is installed (``QUICISH_UVLOOP=0`` turns that off)."""
    if os.environ.get("QUICISH_UVLOOP", "1") != "0":
        try:
            import uvloop

            return uvloop.run(main)
        except ImportError:
            pass
    return asyncio.run(main)


async def open_stream(
    host: str, port: int, *, config: Config | None = None, **connect_kwargs: Any
) -> tuple[QuicStreamReader, QuicStreamWriter]:
    """The one-stream shortcut, like ``asyncio.open_connection``: connect, open one
    bidirectional stream and return its reader and writer. The connection closes (code 0)
    once the stream is done both ways: everything written was acknowledged after
    ``writer.write_eof()`` (or ``close()``) and the reader reached the peer's FIN; or when
    the stream fails. ``writer.get_extra_info("connection")`` gives the connection."""
    conn = await connect(host, port, config=config, **connect_kwargs)
    try:
        reader, writer = await conn.open_stream()
    except BaseException:
        conn.close()
        raise
    conn.spawn(_close_when_done(conn, reader, writer))
    return reader, writer


async def _close_when_done(
    conn: QuicConnection, reader: QuicStreamReader, writer: QuicStreamWriter
) -> None:
    eof = asyncio.get_running_loop().create_future()
    reader.add_eof_waiter(eof)
    await writer.wait_closed()
    ended = asyncio.ensure_future(conn.wait_closed())
    await asyncio.wait({eof, ended}, return_when=asyncio.FIRST_COMPLETED)
    ended.cancel()
    conn.close()
