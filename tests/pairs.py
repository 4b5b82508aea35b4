"""The client/server pair harness of the sans-IO connection tests (``test_conn_*.py``).

* :class:`Net`: the simulated network of ``quicish.simlink`` that records every datagram put
  on the wire (``wire``), calls tap functions and applies a drop filter (lose exactly the
  datagrams a test picks) before the link impairments; ``run_until`` polls peers;
* :class:`PathNet`: a :class:`Net` where the client has several local addresses;
* :func:`make_net`: a started client/server pair on a :class:`Net`, deterministic CIDs;
  :func:`make_pair`: the same with a :class:`Peer` for each side (``make_path_pair``: on a
  :class:`PathNet`); the ``pair`` fixture of ``conftest.py``: a connected default pair;
* :func:`connected`: run the handshake until both sides confirmed it;
* :class:`Peer`: collects events, reads streams (O(1) per event, fine for 20 MB runs);
* :class:`FrameSpy`: the plaintext frames a connection sealed, per packet;
* :func:`inject`: seal crafted frames with the sender's 1-RTT keys and deliver them;
* :class:`Sender`: keeps a stream's send buffer topped up from a byte string;
* :func:`ticket_and_context`: a session ticket and its server context, for 0-RTT.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from support import client_config, server_config

from quicish.errors import DecodeError, StreamError
from quicish.proto import events as ev
from quicish.proto.built_packet import BuiltPacket
from quicish.proto.connection import Connection
from quicish.proto.packet_builder import PacketBuilder
from quicish.proto.packet_space import APPLICATION
from quicish.proto.records import SentPacket
from quicish.proto.server_context import ServerContext
from quicish.simlink import CLIENT_ADDR, SERVER_ADDR, LinkSpec, SimNetwork, _Direction
from quicish.wire import frames as F
from quicish.wire.buffer import Buffer
from quicish.wire.packet import (
    PacketHeader,
    PacketType,
    encode_packet_number,
    encode_short_header,
    parse_header,
)

__all__ = [
    "CLIENT_ADDR",
    "ONE_RTT",
    "SERVER_ADDR",
    "Address",
    "FrameSpy",
    "Net",
    "Pair",
    "PathNet",
    "Peer",
    "Sender",
    "connected",
    "datagram_types",
    "encode",
    "inject",
    "make_net",
    "make_pair",
    "make_path_pair",
    "packet_kinds",
    "poll",
    "raw",
    "seal_one_rtt",
    "seeded_random",
    "ticket_and_context",
    "transfer",
    "wire_frames",
]

DropFilter = Callable[[str, int, bytes, float], bool]
Tap = Callable[[str, bytes, float], None]
Address = tuple[str, int]
E = TypeVar("E")
ONE_RTT = PacketType.ONE_RTT


class Net(SimNetwork):
    """``SimNetwork`` with a record of the wire, taps and a drop filter.

    ``wire``: ``(now, up, data, source address)`` of every datagram put on the wire, dropped
    or not. ``taps``: functions called as ``tap(direction, data, now)``.
    ``drop(direction, index, data, now)``: direction is "up" (to the server) or "down";
    index counts the datagrams of that direction from 0. True drops the datagram (before
    the link impairments).
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.wire: list[tuple[float, bool, bytes, Address]] = []
        self.taps: list[Tap] = []
        self.drop: DropFilter | None = None
        self.index = {"up": 0, "down": 0}
        self.dropped = {"up": 0, "down": 0}

    def _transmit(self, direction: _Direction, dst: Connection, data: bytes, src: Address) -> None:
        up = direction is self.up
        self.wire.append((self.now, up, data, src))
        name = "up" if up else "down"
        index = self.index[name]
        self.index[name] = index + 1
        for tap in self.taps:
            tap(name, data, self.now)
        if self.drop is not None and self.drop(name, index, data, self.now):
            self.dropped[name] += 1
            return
        super()._transmit(direction, dst, data, src)

    def headers(self, up: bool) -> list[PacketHeader]:
        """Headers of every packet sent in one direction (coalesced packets split)."""
        out: list[PacketHeader] = []
        for _, is_up, data, _ in self.wire:
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

    def next_time(self) -> float | None:
        """When the next delivery or timer is due (after flushing what is ready to send)."""
        self._flush()
        times = [self._heap[0][0]] if self._heap else []
        for conn in (self.client, self.server):
            t = conn.next_timer()
            if t is not None:
                times.append(t)
        return min(times) if times else None

    def run_until(
        self,
        cond: Callable[[], bool],
        *peers: Peer,
        timeout: float = 60.0,
        hook: Callable[[], None] | None = None,
        tick: float | None = None,
    ) -> bool:
        """Step until ``cond()`` (True) or ``timeout`` virtual seconds pass (False), polling
        ``peers`` and calling ``hook`` before each check. Never steps past the timeout;
        ``tick``: also wake up at least that often (for hooks that act on time)."""
        end = self.now + timeout
        last, same = self.now, 0
        while True:
            if self.now == last:
                same += 1
                assert same < 20000, f"no progress at t={self.now}: a timer keeps firing"
            else:
                last, same = self.now, 0
            for peer in peers:
                peer.poll()
            if hook is not None:
                hook()
            if cond():
                return True
            t = self.next_time()
            if tick is not None and (t is None or t > self.now + tick):
                t = self.now + tick
                if t <= end:
                    self.now = t
                    continue
            if t is None or t > end:
                self.now = max(self.now, end)
                return False
            self.step()

    def settle(
        self, *peers: Peer, duration: float = 1.0, hook: Callable[[], None] | None = None
    ) -> None:
        """Run for exactly ``duration`` virtual seconds."""
        self.run_until(lambda: False, *peers, timeout=duration, hook=hook)


class PathNet(Net):
    """A :class:`Net` where the client may have several local addresses (local path ids) and
    the server's datagrams only arrive when sent to a client address that exists."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.client_addrs: dict[int, Address] = {0: self.client_addr}
        self.lost_to_stale = 0  # server datagrams sent to an address nobody has any more
        self._local_of: dict[int, int] = {}  # seq of a scheduled datagram -> client local id
        self._next_local = 0

    def _flush(self) -> None:
        client, server = self.client, self.server
        for data, _ in client.datagrams_to_send(self.now):
            self._transmit(self.up, server, data, self.client_addrs[client.local_path])
        for local, data, _ in client.probe_datagrams(self.now):
            self._transmit(self.up, server, data, self.client_addrs[local])
        by_addr = {addr: local for local, addr in self.client_addrs.items()}
        for data, addr in server.datagrams_to_send(self.now):
            to_local = by_addr.get(addr)
            if to_local is None:
                self.wire.append((self.now, False, data, SERVER_ADDR))
                self.lost_to_stale += 1
                continue
            self._next_local = to_local
            self._transmit(self.down, client, data, SERVER_ADDR)

    def _schedule(
        self, at: float, dst: Connection, data: bytes, src: Address, ecn: int = 0
    ) -> None:
        super()._schedule(at, dst, data, src, ecn)
        if dst is self.client:
            self._local_of[self._seq] = self._next_local

    def _deliver(self, seq: int, dst: Connection, data: bytes, src: Address, ecn: int) -> None:
        if dst is self.client:
            self.down.counters.delivered += 1
            dst.receive_datagram(data, src, self.now, self._local_of.pop(seq, 0), ecn)
        else:
            self.up.counters.delivered += 1
            dst.receive_datagram(data, src, self.now, 0, ecn)


def seeded_random(seed: int) -> Callable[[int], bytes]:
    """A ``random_bytes`` for ``Connection``: the same bytes for the same seed."""
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


def make_net(
    *,
    client_kw: dict[str, Any] | None = None,
    server_kw: dict[str, Any] | None = None,
    to_server: LinkSpec | None = None,
    to_client: LinkSpec | None = None,
    link: LinkSpec | None = None,
    seed: int = 1,
    connect: bool = True,
    start: float = 0.0,
    context: ServerContext | None = None,
    session_ticket: bytes | None = None,
    early_data: bool = False,
    paths: bool = False,
    client_args: dict[str, Any] | None = None,
    server_args: dict[str, Any] | None = None,
) -> Net:
    """A client/server pair on a :class:`Net` (a :class:`PathNet` with ``paths``).

    ``link``: the same spec both ways; ``seed``: the links' randomness and the connections'
    (CIDs); ``connect``: the client starts its handshake at ``start``; ``context``: the
    server's (else a new one from its config); ``session_ticket``/``early_data``: resumption
    and 0-RTT; ``client_args``/``server_args``: more ``Connection`` arguments (such as
    ``versions``, or ``random_bytes=os.urandom`` for real CIDs)."""
    scfg = server_config(**(server_kw or {}))
    client_args = dict(client_args or {})
    server_args = dict(server_args or {})
    client_args.setdefault("random_bytes", seeded_random(seed * 2 + 1))
    server_args.setdefault("random_bytes", seeded_random(seed * 2 + 2))
    client = Connection(
        client_config(**(client_kw or {})),
        is_client=True,
        session_ticket=session_ticket,
        early_data=early_data,
        **client_args,
    )
    server = Connection(
        scfg,
        is_client=False,
        server_context=context or ServerContext.from_config(scfg),
        **server_args,
    )
    if link is not None:
        to_server = to_server or link
        to_client = to_client or LinkSpec(**link.__dict__)
    kind = PathNet if paths else Net
    net = kind(client, server, to_server=to_server, to_client=to_client, seed=seed, start=start)
    if connect:
        net.start()
    return net


Pair = tuple["Net", "Peer", "Peer"]  # (network, client peer, server peer)


def make_pair(**kw: Any) -> Pair:
    """:func:`make_net` and a :class:`Peer` for the client and for the server."""
    net = make_net(**kw)
    return net, Peer(net.client), Peer(net.server)


def make_path_pair(**kw: Any) -> tuple[PathNet, Peer, Peer]:
    """:func:`make_pair` on a :class:`PathNet`."""
    net, c, s = make_pair(paths=True, **kw)
    assert isinstance(net, PathNet)
    return net, c, s


def connected(
    net: Net, c: Peer | None = None, s: Peer | None = None, timeout: float = 10.0
) -> tuple[Peer, Peer]:
    """Run until both sides have confirmed the handshake; returns the (client, server)
    peers, new ones unless given."""
    c = c or Peer(net.client)
    s = s or Peer(net.server)
    ok = net.run_until(
        lambda: net.client.handshake_confirmed and net.server.handshake_confirmed,
        c,
        s,
        timeout=timeout,
    )
    assert ok, "handshake did not complete"
    return c, s


def poll(*peers: Peer) -> None:
    for peer in peers:
        peer.poll()


def transfer(net: Net, c: Peer, s: Peer, sid: int, timeout: float = 30.0) -> None:
    """Run until the server has the whole of stream ``sid``."""
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=timeout), "stream not delivered"


def ticket_and_context(**server_kw: Any) -> tuple[bytes, ServerContext, float]:
    """Run one connection to get a session ticket; (ticket, server context, end time)."""
    scfg = server_config(**server_kw)
    ctx = ServerContext.from_config(scfg)
    net, c, s = make_pair(server_kw=server_kw, context=ctx)
    connected(net, c, s)
    assert net.run_until(lambda: bool(c.of(ev.SessionTicketReceived)), c, s, timeout=5.0)
    ticket: bytes = c.of(ev.SessionTicketReceived)[0].ticket
    return ticket, ctx, net.now


class Peer:
    """Events and stream data of one connection; reads streams as data arrives
    (set ``reading = False`` to leave the data unread, e.g. to exercise flow control)."""

    def __init__(self, conn: Connection, reading: bool = True) -> None:
        self.conn = conn
        self.reading = reading
        self.events: list[ev.Event] = []
        self.data: dict[int, bytearray] = {}
        self.finished: set[int] = set()
        self.resets: dict[int, tuple[int, int]] = {}
        self.stops: dict[int, int] = {}
        self.terminated: ev.ConnectionTerminated | None = None
        self.handshake: ev.HandshakeCompleted | None = None
        self.pending: set[int] = set()  # streams with unread data
        self.streams_seen: list[int] = []

    def poll(self) -> None:
        conn = self.conn
        while (event := conn.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, ev.StreamDataAvailable):
                sid = event.stream_id
                if sid not in self.data:
                    self.data[sid] = bytearray()
                    self.streams_seen.append(sid)
                self.pending.add(sid)
            elif isinstance(event, ev.StreamReset):
                self.resets[event.stream_id] = (event.error_code, event.final_size)
                self.pending.discard(event.stream_id)
            elif isinstance(event, ev.StopSendingReceived):
                self.stops[event.stream_id] = event.error_code
            elif isinstance(event, ev.ConnectionTerminated):
                assert self.terminated is None, "ConnectionTerminated reported twice"
                self.terminated = event
            elif isinstance(event, ev.HandshakeCompleted):
                self.handshake = event
        if self.reading and self.pending:
            self.read_pending()

    def read_pending(self) -> None:
        for sid in list(self.pending):
            self.read(sid)

    def read(self, sid: int, max_bytes: int = -1) -> int:
        """Read from ``sid`` into ``data``; returns the byte count."""
        try:
            data, fin = self.conn.read_stream(sid, max_bytes)
        except StreamError:
            self.pending.discard(sid)
            return 0
        self.data.setdefault(sid, bytearray()).extend(data)
        if fin:
            self.finished.add(sid)
        if fin or max_bytes < 0 or not data:
            self.pending.discard(sid)
        return len(data)

    def of(self, kind: type[E]) -> list[E]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]


class Sender:
    """Writes ``data`` on ``sid`` keeping at most ``window`` bytes buffered."""

    def __init__(
        self,
        conn: Connection,
        sid: int,
        data: bytes,
        chunk: int = 65536,
        window: int = 2 << 20,
        fin: bool = True,
    ) -> None:
        self.conn, self.sid, self.data = conn, sid, data
        self.chunk, self.window, self.fin = chunk, window, fin
        self.pos = 0
        if not data and fin:
            conn.send_stream_data(sid, b"", end_stream=True)

    def pump(self) -> None:
        conn, data = self.conn, self.data
        while self.pos < len(data) and conn.stream_send_buffered(self.sid) < self.window:
            end = min(self.pos + self.chunk, len(data))
            conn.send_stream_data(self.sid, data[self.pos : end], self.fin and end == len(data))
            self.pos = end

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


class FrameSpy:
    """Records ``(space index, packet type, packet number, payload)`` of every packet a
    connection's general builder seals (wraps ``PacketBuilder.seal_built``)."""

    def __init__(self, conn: Connection) -> None:
        self.packets: list[tuple[int, int, int, bytes]] = []
        packets = self.packets
        builder = conn._builder
        base = type(builder)

        def spy(self: PacketBuilder, built: BuiltPacket, now: float) -> bytes:
            packets.append((built.space.index, built.ptype, built.pn, bytes(built.payload)))
            return base.seal_built(self, built, now)

        # (the builder has __slots__: its class is swapped for a subclass that spies)
        builder.__class__ = type("SpiedBuilder", (base,), {"__slots__": (), "seal_built": spy})

    def frames(self, space: int | None = APPLICATION) -> Iterable[Any]:
        for index, _ptype, _pn, payload in self.packets:
            if space is None or index == space:
                yield from F.decode_frames(payload)

    def of(self, kind: type[E], space: int | None = APPLICATION) -> list[E]:
        """The frames of one type sealed in ``space`` (None: every space), in order."""
        return [f for f in self.frames(space) if isinstance(f, kind)]


def encode(*frames: Any) -> bytes:
    """The wire bytes of ``frames``, one after the other."""
    buf = Buffer()
    for frame in frames:
        F.encode_frame(buf, frame)
    return bytes(buf.data())


def raw(*varints: int, tail: bytes = b"") -> bytes:
    """Hand-made wire bytes: ``varints`` encoded one after the other, then ``tail``."""
    buf = Buffer()
    for v in varints:
        buf.push_varint(v)
    return bytes(buf.data()) + tail


def seal_one_rtt(sender: Connection, payload: bytes, now: float, in_flight: bool = True) -> bytes:
    """``payload`` (raw frame bytes) sealed in a 1-RTT packet with ``sender``'s keys and its
    next packet number, and recorded in its recovery (so the peer's ACK is legitimate)."""
    space = sender._spaces[APPLICATION]
    assert space.tx is not None, "sender has no 1-RTT keys"
    pn = space.next_pn
    space.next_pn = pn + 1
    truncated, pn_length = encode_packet_number(pn, sender._recovery.largest_acked(APPLICATION))
    header = encode_short_header(
        sender.peer_cid, truncated, pn_length, False, bool(sender._keys.phase)
    )
    body = payload + bytes(max(0, 4 - pn_length - len(payload)))
    packet = space.tx.seal_packet(header, body, pn)
    sender._recovery.on_packet_sent(SentPacket(pn, now, len(packet), True, in_flight, APPLICATION))
    return packet


def inject(sender: Connection, receiver: Connection, payload: bytes, now: float) -> None:
    """Seal ``payload`` (raw frame bytes) in a 1-RTT packet with ``sender``'s keys and its
    next packet number, and hand it to ``receiver`` as if it came over the network."""
    packet = seal_one_rtt(sender, payload, now)
    addr = CLIENT_ADDR if sender.is_client else SERVER_ADDR
    receiver.receive_datagram(packet, addr, now)


def wire_frames(receiver: Connection, datagram: bytes) -> list[Any] | None:
    """The frames of a 1-RTT datagram on its way to ``receiver``, decrypted with the
    receiver's current keys without changing its state; None if it is not 1-RTT or does
    not decrypt."""
    if datagram[0] & 0x80:
        return None
    space = receiver._spaces[APPLICATION]
    if space.rx is None:
        return None
    try:
        _, payload, _ = space.rx.open_packet(
            datagram, 1 + len(receiver.host_cid), space.largest_received
        )
    except Exception:
        return None
    return F.decode_frames(payload)


def datagram_types(datagram: bytes) -> list[PacketType]:
    """The types of every packet of a datagram (coalesced packets split; 8-byte CIDs)."""
    types: list[PacketType] = []
    offset = 0
    while offset < len(datagram):
        header = parse_header(datagram, offset, short_dcid_len=8)
        types.append(PacketType(header.packet_type))
        offset = header.packet_end
    return types


def packet_kinds(datagram: bytes) -> list[str]:
    """Rough packet types of a datagram's first packet: "initial", "handshake", "0rtt",
    "retry", "1rtt" (only the first; coalesced ones follow but are not parsed)."""
    first = datagram[0]
    if not first & 0x80:
        return ["1rtt"]
    return [("initial", "0rtt", "handshake", "retry")[(first >> 4) & 3]]
