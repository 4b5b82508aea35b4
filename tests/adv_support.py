"""Helpers for the tests of the advanced features (0-RTT, Retry, CIDs, migration, reset,
key update, v2): a tapped simulated network and resumption set-ups."""

from __future__ import annotations

from typing import Any

from conn_support import EventLog, client_config, server_config

from quicish.errors import DecodeError
from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext
from quicish.simlink import SERVER_ADDR, LinkSpec, SimNetwork
from quicish.wire.packet import PacketHeader, PacketType, parse_header


class TapNetwork(SimNetwork):
    """A SimNetwork that records every datagram put on the wire, with the time and source."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.tap: list[tuple[float, bool, bytes, tuple[str, int]]] = []  # (now, up, data, src)

    def _transmit(self, direction: Any, dst: Connection, data: bytes, src: tuple[str, int]) -> None:
        self.tap.append((self.now, direction is self.up, data, src))
        super()._transmit(direction, dst, data, src)

    def headers(self, up: bool) -> list[PacketHeader]:
        """Headers of every packet sent in one direction (coalesced packets split)."""
        out: list[PacketHeader] = []
        for _, is_up, data, _ in self.tap:
            if is_up != up:
                continue
            offset = 0
            while offset < len(data):
                try:
                    header = parse_header(data, offset, short_dcid_len=8)
                except DecodeError:
                    break
                out.append(header)
                offset = header.packet_end
        return out

    def packet_types(self, up: bool) -> list[PacketType]:
        """Packet types of every packet sent in one direction."""
        return [PacketType(h.packet_type) for h in self.headers(up)]


def new_pair(
    *,
    client_kw: dict[str, object] | None = None,
    server_kw: dict[str, object] | None = None,
    context: ServerContext | None = None,
    session_ticket: bytes | None = None,
    early_data: bool = False,
    start: float = 0.0,
    to_server: LinkSpec | None = None,
    to_client: LinkSpec | None = None,
    seed: int = 1,
    client_args: dict[str, Any] | None = None,
    server_args: dict[str, Any] | None = None,
) -> tuple[TapNetwork, EventLog, EventLog]:
    """A started client/server pair on a tapped network, with event logs for both."""
    scfg = server_config(**(server_kw or {}))
    ctx = context or ServerContext.from_config(scfg)
    client = Connection(
        client_config(**(client_kw or {})),
        is_client=True,
        session_ticket=session_ticket,
        early_data=early_data,
        **(client_args or {}),
    )
    server = Connection(scfg, is_client=False, server_context=ctx, **(server_args or {}))
    net = TapNetwork(
        client, server, to_server=to_server, to_client=to_client, seed=seed, start=start
    )
    net.start()
    return net, EventLog(client), EventLog(server)


def poll(*logs: EventLog) -> None:
    for log in logs:
        log.poll()


def established(net: SimNetwork, c: EventLog, s: EventLog, timeout: float = 10.0) -> None:
    """Run until both handshakes are confirmed."""

    def done() -> bool:
        poll(c, s)
        return net.client.handshake_confirmed and net.server.handshake_confirmed

    assert net.run(done, timeout), "handshake did not complete"


def ticket_and_context(**server_kw: object) -> tuple[bytes, ServerContext, float]:
    """Run one connection to get a session ticket; (ticket, server context, end time)."""
    net, c, s = new_pair(server_kw=server_kw)
    established(net, c, s)
    assert net.run(lambda: (poll(c, s), bool(c.of(ev.SessionTicketReceived)))[1], 5.0)
    ticket = c.of(ev.SessionTicketReceived)[0].ticket
    ctx = net.server._server_context
    assert ctx is not None
    return ticket, ctx, net.now


def transfer(net: SimNetwork, c: EventLog, s: EventLog, sid: int, timeout: float = 30.0) -> None:
    """Run until the server has the whole of stream ``sid``."""
    assert net.run(lambda: (poll(c, s), sid in s.finished)[1], timeout), "stream not delivered"


__all__ = [
    "SERVER_ADDR",
    "EventLog",
    "TapNetwork",
    "established",
    "new_pair",
    "poll",
    "ticket_and_context",
    "transfer",
]


class PathNetwork(TapNetwork):
    """A TapNetwork where the client may have several local addresses (local path ids) and
    the server's datagrams only arrive when sent to a client address that exists."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.client_addrs: dict[int, tuple[str, int]] = {0: self.client_addr}
        self.lost_to_stale = 0  # server datagrams sent to an address nobody has any more
        self._local_of: dict[int, int] = {}  # seq of a scheduled datagram -> client local id

    def _flush(self) -> None:
        client, server = self.client, self.server
        for data, _ in client.datagrams_to_send(self.now):
            self._transmit(self.up, server, data, self.client_addrs[client.local_path])
        for local, data, _ in client.probe_datagrams(self.now):
            self._transmit(self.up, server, data, self.client_addrs[local])
        by_addr = {addr: local for local, addr in self.client_addrs.items()}
        for data, addr in server.datagrams_to_send(self.now):
            local = by_addr.get(addr)
            if local is None:
                self.tap.append((self.now, False, data, SERVER_ADDR))
                self.lost_to_stale += 1
                continue
            self._next_local = local
            self._transmit(self.down, client, data, SERVER_ADDR)

    _next_local = 0

    def _schedule(
        self, at: float, dst: Connection, data: bytes, src: tuple[str, int], ecn: int = 0
    ) -> None:
        super()._schedule(at, dst, data, src, ecn)
        if dst is self.client:
            self._local_of[self._seq] = self._next_local

    def _deliver(
        self, seq: int, dst: Connection, data: bytes, src: tuple[str, int], ecn: int
    ) -> None:
        if dst is self.client:
            self.down.counters.delivered += 1
            dst.receive_datagram(data, src, self.now, self._local_of.pop(seq, 0), ecn)
        else:
            self.up.counters.delivered += 1
            dst.receive_datagram(data, src, self.now, 0, ecn)


def path_pair(**kw: Any) -> tuple[PathNetwork, EventLog, EventLog]:
    """``new_pair`` on a :class:`PathNetwork`."""
    net, c, s = new_pair(**kw)
    pnet = PathNetwork(
        net.client,
        net.server,
        start=net.now,
        seed=kw.get("seed", 1),
        to_server=kw.get("to_server"),
        to_client=kw.get("to_client"),
    )
    pnet._heap = net._heap  # the client's first flight is already on its way
    pnet._seq = net._seq
    pnet.tap = net.tap
    return pnet, c, s
