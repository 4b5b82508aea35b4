"""The relay's IO loop: loopback UDP sockets, selectors and a heap of scheduled sends.

Clients send to the listen socket; each client address gets its own upstream socket
(as a NAT mapping), so the server sees one source address per client. Decisions come
from `impairments.LinkModel`; this module only moves bytes at the times it is told.

With ``more_upstreams`` the relay has one more listen socket per extra server (on the
listen host, a free port each): every client of every server goes through the same two
link models, so the flows share one bottleneck (queue and rate) per direction. Each client
session is a flow with its own byte counts (``Counters.flows``).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import random
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .config import Address, RelaySettings
from .counters import Counters, FlowCounters
from .impairments import LinkModel, RebindSchedule

_BUFFER_BYTES = 4 * 1024 * 1024
_READ_BATCH = 128
_MAX_DATAGRAM = 65535
_SWEEP_EVERY = 10.0

logger = logging.getLogger("quicish.netem")

# A scheduled send: (due, seq, towards the server?, datagram, session).
_Entry = tuple[float, int, bool, bytes, "_Session"]


class _Session:
    __slots__ = ("client", "closed", "flow", "last_seen", "listen", "sock", "upstream")

    def __init__(
        self,
        client: Any,
        sock: socket.socket,
        now: float,
        listen: socket.socket,
        upstream: Address,
        flow: FlowCounters,
    ) -> None:
        self.client = client
        self.sock = sock
        self.last_seen = now
        self.closed = False
        self.listen = listen  # where the client sends (and gets answers from)
        self.upstream = upstream
        self.flow = flow


def _udp_socket(family: socket.AddressFamily, bind: Address) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER_BYTES)
        sock.setblocking(False)
        sock.bind(bind)
    except OSError:
        sock.close()
        raise
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Relay:
    """A UDP relay with impairments; `start` then `run` (blocking) in one process."""

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings.validate()
        if self.settings.rebind_addr:
            try:
                _udp_socket(socket.AF_INET, ("127.0.0.2", 0)).close()
            except OSError as exc:
                raise ConfigError(f"rebind_addr: cannot bind 127.0.0.2 here ({exc})") from exc
        self._seed = (
            self.settings.seed
            if self.settings.seed is not None
            else random.SystemRandom().randrange(2**31)
        )
        self._upstream = self.settings.upstream
        self._up_family = _family(self._upstream[0])
        self._sel = selectors.DefaultSelector()
        listen_family = _family(self.settings.listen[0])
        self._listen = _udp_socket(listen_family, self.settings.listen)
        host, port = self._listen.getsockname()[:2]
        self.address: Address = (host, port)
        #: (listen socket, its server) per server: ``settings.upstream`` first
        self._routes: list[tuple[socket.socket, Address]] = [(self._listen, self._upstream)]
        for upstream in self.settings.more_upstreams:
            self._routes.append((_udp_socket(listen_family, (host, 0)), upstream))
        #: where clients send, one address per server, in the order of ``_routes``
        self.addresses: list[Address] = [
            (sock.getsockname()[0], sock.getsockname()[1]) for sock, _ in self._routes
        ]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        for index, (sock, _) in enumerate(self._routes):
            self._sel.register(sock, selectors.EVENT_READ, self._reader_of(index))
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._read_wakeup)
        self.counters = Counters(seed=self._seed)
        self._sessions: dict[tuple[int, Any], _Session] = {}  # (route, client address)
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._stop = False
        self._rebind_host_n = 1
        self.started_at = 0.0
        self._models: tuple[LinkModel[_Session], LinkModel[_Session]] | None = None
        self._rebind: RebindSchedule | None = None
        self._next_sweep = 0.0

    # -- lifecycle -----------------------------------------------------------------

    def start(self, now: float | None = None) -> None:
        """Start the clock: blackhole and rebinding schedules count from here."""
        now = time.monotonic() if now is None else now
        self.started_at = now
        s = self.settings
        self._models = (
            LinkModel(
                s.link("to_server"),
                seed=self._seed,
                direction="to_server",
                start=now,
                counters=self.counters.to_server,
            ),
            LinkModel(
                s.link("to_client"),
                seed=self._seed,
                direction="to_client",
                start=now,
                counters=self.counters.to_client,
            ),
        )
        if s.rebind_port is not None:
            self._rebind = RebindSchedule(s.rebind_port[0], s.rebind_port[1], now)
        self._next_sweep = now + _SWEEP_EVERY

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the loop) whenever ``fd`` is readable."""
        self._sel.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        self._sel.unregister(fd)

    def request_stop(self) -> None:
        """Make `run` return soon; safe from a signal handler."""
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def run(self, duration: float | None = None) -> Counters:
        """Relay until `request_stop` or ``duration`` seconds after `start`."""
        if self._models is None:
            self.start()
        deadline = self.started_at + duration if duration is not None else None
        try:
            while not self._stop:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                self._flush(now)
                self._timers(now)
                timeout = self._timeout(now, deadline)
                for key, _ in self._sel.select(timeout):
                    key.data()
                    if self._stop:
                        break
        finally:
            self.close()
        return self.counters

    def close(self) -> None:
        for session in self._sessions.values():
            session.closed = True
            session.sock.close()
        self._sessions.clear()
        self._sel.close()
        for sock, _ in self._routes:
            sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def snapshot(self) -> Counters:
        """A copy of the counters now."""
        return Counters.from_dict(self.counters.to_dict())

    # -- loop pieces -----------------------------------------------------------------

    def _timeout(self, now: float, deadline: float | None) -> float | None:
        assert self._models is not None
        candidates = [deadline] if deadline is not None else []
        if self._heap:
            candidates.append(self._heap[0][0])
        for model in self._models:
            held = model.next_deadline()
            if held is not None:
                candidates.append(held)
        if self._rebind is not None and self._sessions:
            candidates.append(self._rebind.next_at)
        if self._sessions:
            candidates.append(self._next_sweep)
        if not candidates:
            return None
        return max(0.0, min(candidates) - now)

    def _schedule(self, sends: list[tuple[float, bytes, _Session]], to_server: bool) -> None:
        for due, data, session in sends:
            heapq.heappush(self._heap, (due, next(self._seq), to_server, data, session))

    def _flush(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, to_server, data, session = heapq.heappop(heap)
            if session.closed:
                continue
            flow = session.flow
            if to_server:
                counters = self.counters.to_server
                sock, dest = session.sock, session.upstream
            else:
                counters = self.counters.to_client
                sock, dest = session.listen, session.client
            try:
                sock.sendto(data, dest)
            except OSError:
                counters.send_errors += 1
                continue
            counters.forwarded += 1
            counters.forwarded_bytes += len(data)
            if to_server:
                flow.to_server_packets += 1
                flow.to_server_bytes += len(data)
            else:
                flow.to_client_packets += 1
                flow.to_client_bytes += len(data)

    def _timers(self, now: float) -> None:
        assert self._models is not None
        for to_server, model in zip((True, False), self._models, strict=True):
            if model.next_deadline() is not None:
                self._schedule(model.expire(now), to_server)
        if self._rebind is not None and self._rebind.due(now):
            for session in list(self._sessions.values()):
                self._rebind_session(session)
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        idle = self.settings.idle_timeout
        if idle is None:
            return
        for key, session in list(self._sessions.items()):
            if now - session.last_seen > idle:
                self._close_session(key, session)

    def _close_session(self, key: tuple[int, Any], session: _Session) -> None:
        session.closed = True
        self._sel.unregister(session.sock)
        session.sock.close()
        del self._sessions[key]

    def _bind_address(self) -> Address:
        if self._up_family == socket.AF_INET6:
            return ("::1", 0)
        if self.settings.rebind_addr and self._rebind_host_n > 1:
            return (f"127.0.0.{self._rebind_host_n}", 0)
        return ("127.0.0.1", 0)

    def _rebind_session(self, session: _Session) -> None:
        """As a NAT rebinding: later packets leave from a new port (and address)."""
        if self.settings.rebind_addr:
            n = self._rebind_host_n  # 127.0.0.2 .. 127.0.0.254, then around again
            self._rebind_host_n = n + 1 if n < 254 else 2
        old = session.sock
        try:
            session.sock = _udp_socket(self._up_family, self._bind_address())
        except OSError as exc:
            logger.warning("netem: rebinding failed, keeping the old socket: %s", exc)
            return
        self._sel.register(session.sock, selectors.EVENT_READ, lambda: self._read_upstream(session))
        self._drain(old, session)  # what arrived before the rebinding still counts
        self._sel.unregister(old)
        old.close()
        self.counters.rebinds += 1

    def _read_wakeup(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)

    def _reader_of(self, route: int) -> Callable[[], None]:
        return lambda: self._read_clients(route)

    def _read_clients(self, route: int = 0) -> None:
        assert self._models is not None
        model = self._models[0]
        listen = self._routes[route][0]
        for _ in range(_READ_BATCH):
            try:
                data, client = listen.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            now = time.monotonic()
            session = self._sessions.get((route, client))
            if session is None:
                try:
                    session = self._new_session(route, client, now)
                except OSError as exc:  # out of sockets: drop, keep serving the others
                    logger.warning("netem: no upstream socket for %s: %s", client, exc)
                    self.counters.to_server.send_errors += 1
                    continue
            session.last_seen = now
            self._schedule(model.packet(data, session, now), True)

    def _new_session(self, route: int, client: Any, now: float) -> _Session:
        listen, upstream = self._routes[route]
        flow = FlowCounters(f"{client[0]}:{client[1]}", f"{upstream[0]}:{upstream[1]}")
        self.counters.flows.append(flow)
        sock = _udp_socket(self._up_family, self._bind_address())
        session = _Session(client, sock, now, listen, upstream, flow)
        self._sessions[(route, client)] = session
        self._sel.register(session.sock, selectors.EVENT_READ, lambda: self._read_upstream(session))
        self.counters.clients += 1
        return session

    def _read_upstream(self, session: _Session) -> None:
        self._drain(session.sock, session)

    def _drain(self, sock: socket.socket, session: _Session) -> None:
        assert self._models is not None
        model = self._models[1]
        for _ in range(_READ_BATCH):
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            now = time.monotonic()
            session.last_seen = now
            self._schedule(model.packet(data, session, now), False)
