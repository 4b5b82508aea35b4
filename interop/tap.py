"""A recording UDP forwarder between the netem relay (or a client) and a server.

The checkers need to see what the server really sent and received: the relay drops and
corrupts packets, so the tap sits on the server's side of it. Each distinct source address
gets its own upstream socket bound to the same IP, so a NAT rebinding (new port, and with
``rebind_addr`` a new 127.0.0.x address) stays visible to the server. Every datagram is
recorded with a monotonic timestamp, direction, session and its IP ECN bits (read with
IP_RECVTOS / IPV6_RECVTCLASS); with ``preserve_ecn`` the bits are copied on forwarding.
Runs in a thread of the runner process.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Address = tuple[str, int]

_MAX = 65535
_CMSG_SPACE = socket.CMSG_SPACE(4)


@dataclass(slots=True)
class Record:
    t: float
    to_server: bool
    session: int
    data: bytes
    ecn: int  # the IP ECN field: 0 not-ECT, 2 ECT(0), 1 ECT(1), 3 CE


@dataclass(slots=True)
class TapSession:
    index: int
    peer: Address  # the relay's (or client's) address, as the tap sees it
    local: Address  # the tap's upstream address, as the server sees the client
    upstream: Address
    first_seen: float
    sock: socket.socket


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _enable_tos(sock: socket.socket, family: socket.AddressFamily) -> None:
    with contextlib.suppress(OSError, AttributeError):
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)


def _ecn_of(ancdata: list[tuple[int, int, bytes]]) -> int:
    for level, kind, value in ancdata:
        if level == socket.IPPROTO_IP and kind == socket.IP_TOS and value:
            return value[0] & 3
        if level == socket.IPPROTO_IPV6 and kind == getattr(socket, "IPV6_TCLASS", -1) and value:
            return int.from_bytes(value[:4], "little") & 3
    return 0


def _set_ecn(sock: socket.socket, ecn: int) -> None:
    with contextlib.suppress(OSError):
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, ecn)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, ecn)


class Tap:
    """``with Tap(server_address) as tap: ...`` then read ``tap.records``/``tap.sessions``.

    ``route(session_index)`` may send a session to another upstream (cross traffic).
    """

    def __init__(
        self,
        upstream: Address,
        *,
        listen_host: str | None = None,
        route: Callable[[int], Address | None] | None = None,
        preserve_ecn: bool = False,
    ) -> None:
        self.upstream = upstream
        self.route = route
        self.preserve_ecn = preserve_ecn
        host = listen_host or upstream[0]
        self._family = _family(host)
        self._listen = socket.socket(self._family, socket.SOCK_DGRAM)
        self._listen.bind((host, 0))
        self._listen.setblocking(False)
        _enable_tos(self._listen, self._family)
        self.address: Address = self._listen.getsockname()[:2]
        self.records: list[Record] = []
        self.sessions: list[TapSession] = []
        self._by_peer: dict[Address, TapSession] = {}
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="interop-tap", daemon=True)
        self._last_ecn: dict[int, int] = {}
        self.errors = 0

    def __enter__(self) -> Tap:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._sel.register(self._listen, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(5.0)
        for s in self.sessions:
            s.sock.close()
        for sock in (self._listen, self._wake_r, self._wake_w):
            sock.close()
        self._sel.close()

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop:
            for key, _ in self._sel.select(1.0):
                if key.data == "wake":
                    return
                if key.data is None:
                    self._from_clients()
                else:
                    self._from_server(key.data)

    def _recv(self, sock: socket.socket) -> tuple[bytes, int, Address] | None:
        try:
            data, anc, _flags, addr = sock.recvmsg(_MAX, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self.errors += 1
            return b"", 0, ("", 0)
        return data, _ecn_of(anc), (str(addr[0]), int(addr[1]))

    def _from_clients(self) -> None:
        for _ in range(64):
            got = self._recv(self._listen)
            if got is None:
                return
            data, ecn, peer = got
            if not data:
                continue
            session = self._by_peer.get(peer) or self._new_session(peer)
            self.records.append(Record(time.monotonic(), True, session.index, data, ecn))
            if self.preserve_ecn:
                self._mark(session.sock, ecn)
            try:
                session.sock.send(data)
            except OSError:
                self.errors += 1

    def _from_server(self, session: TapSession) -> None:
        for _ in range(64):
            got = self._recv(session.sock)
            if got is None:
                return
            data, ecn, _ = got
            if not data:
                continue
            self.records.append(Record(time.monotonic(), False, session.index, data, ecn))
            if self.preserve_ecn:
                self._mark(self._listen, ecn)
            try:
                self._listen.sendto(data, session.peer)
            except OSError:
                self.errors += 1

    def _mark(self, sock: socket.socket, ecn: int) -> None:
        if self._last_ecn.get(sock.fileno()) != ecn:
            _set_ecn(sock, ecn)
            self._last_ecn[sock.fileno()] = ecn

    def _new_session(self, peer: Address) -> TapSession:
        index = len(self.sessions)
        upstream = (self.route(index) if self.route else None) or self.upstream
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:  # keep the peer's IP so an address change reaches the server
            sock.bind((peer[0], 0))
        except OSError:
            sock.bind((self.address[0], 0))
        sock.connect(upstream)
        sock.setblocking(False)
        _enable_tos(sock, self._family)
        session = TapSession(index, peer, sock.getsockname()[:2], upstream, time.monotonic(), sock)
        self.sessions.append(session)
        self._by_peer[peer] = session
        self._sel.register(sock, selectors.EVENT_READ, session)
        return session
