"""A client's local sockets for active migration (RFC 9000 section 9.2).

Each local path is an :class:`Endpoint` of its own (a new UDP socket), known to the sans-IO
connection by the endpoint's ``local_id``. ``migrate()`` opens one, lets the connection
probe the path from it and, once the server answered the PATH_CHALLENGE, the connection
sends from there; the old socket lingers a little for packets still in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any, Generic, Protocol, TypeVar

from ..errors import QuicError
from ..proto import events as ev
from ..proto.connection import Connection
from ..udp import UdpSocket
from .endpoint import Driven, Endpoint, clock

LINGER = 2.0  # seconds an abandoned socket keeps receiving


class Migrating(Driven, Protocol):
    """What the local paths need of their connection (``QuicConnection``)."""

    def rebind(self, endpoint: Endpoint[Any]) -> None:
        """Send from ``endpoint`` (a validated new local path) from now on."""


M = TypeVar("M", bound=Migrating)


class LocalPaths(Generic[M]):
    """The sockets of one client connection, by local path id: ``conn`` drives ``proto``
    over ``endpoint`` (the current socket) and routes the CIDs in ``cids`` (kept up to date)."""

    def __init__(
        self,
        conn: M,
        proto: Connection,
        endpoint: Endpoint[M],
        cids: Collection[bytes],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._conn = conn
        self._proto = proto
        self._cids = cids
        self._loop = loop
        self.current = endpoint  # the socket the connection sends from
        self.endpoints: dict[int, Endpoint[M]] = {endpoint.local_id: endpoint}
        self._waiters: dict[int, asyncio.Future[None]] = {}

    async def migrate(self, local_host: str | None = None) -> None:
        conn = self._conn
        loop = self._loop
        current = self.current
        udp = UdpSocket.bind(local_host or current.address[0], 0)
        local = max(self.endpoints) + 1
        endpoint: Endpoint[M] = Endpoint(loop, udp, local_id=local)
        for cid in self._cids:
            endpoint.register(cid, conn)
        self.endpoints[local] = endpoint
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters[local] = waiter
        try:
            self._proto.probe_path(local, clock())
        except QuicError:
            self._drop(local)
            raise
        current.mark_dirty(conn)
        await asyncio.shield(waiter)

    def register(self, cid: bytes) -> None:
        for endpoint in self.endpoints.values():
            endpoint.register(cid, self._conn)

    def unregister(self, cid: bytes) -> None:
        for endpoint in self.endpoints.values():
            endpoint.unregister(cid)

    def send_probes(self, now: float) -> None:
        for local, datagram, addr in self._proto.probe_datagrams(now):
            endpoint = self.endpoints.get(local)
            if endpoint is not None:
                endpoint.send([datagram], addr)

    def on_path_event(self, event: ev.PathValidated | ev.PathValidationFailed) -> None:
        conn = self._conn
        local = event.local
        waiter = self._waiters.pop(local, None)
        if isinstance(event, ev.PathValidated):
            endpoint = self.endpoints.get(local)
            if endpoint is not None and endpoint is not self.current:
                old, self.current = self.current, endpoint
                conn.rebind(endpoint)
                self._loop.call_later(LINGER, self._drop, old.local_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        else:
            if local != self.current.local_id:
                self._drop(local)
            if waiter is not None and not waiter.done():
                waiter.set_exception(QuicError(f"path validation failed for local path {local}"))

    def _drop(self, local: int) -> None:
        endpoint = self.endpoints.get(local)
        if endpoint is None or endpoint is self.current:
            return
        del self.endpoints[local]
        endpoint.forget(self._conn)
        endpoint.close()

    def close_all(self) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(QuicError("connection closed during migration"))
                waiter.exception()
        self._waiters.clear()
        for local in list(self.endpoints):
            endpoint = self.endpoints[local]
            if endpoint is not self.current:
                del self.endpoints[local]
                endpoint.forget(self._conn)
                endpoint.close()
