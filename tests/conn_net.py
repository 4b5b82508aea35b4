"""Helpers for the sans-IO connection tests (``test_conn_*.py``).

* :class:`Net`: the simulated network of ``quicish.simlink`` plus taps (see every datagram
  on the wire) and a drop filter (lose exactly the datagrams a test picks);
* :func:`make_net`: a started client/server pair on a :class:`Net`, deterministic CIDs;
* :class:`Peer`: collects events, reads streams (O(1) per event, fine for 20 MB runs);
* :class:`FrameSpy`: the plaintext frames a connection sealed, per packet;
* :func:`inject`: seal crafted frames with the sender's 1-RTT keys and deliver them;
* :class:`Sender`: keeps a stream's send buffer topped up from a byte string.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from conn_support import client_config, server_config

from quicish.errors import StreamError
from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.proto.packet_space import APPLICATION
from quicish.proto.recovery import SentPacket
from quicish.proto.server_context import ServerContext
from quicish.simlink import CLIENT_ADDR, SERVER_ADDR, LinkSpec, SimNetwork, _Direction
from quicish.wire import frames as F
from quicish.wire.buffer import Buffer
from quicish.wire.packet import PacketType, encode_packet_number, encode_short_header

DropFilter = Callable[[str, int, bytes, float], bool]
Tap = Callable[[str, bytes, float], None]

_CONTEXT: list[ServerContext] = []


class Net(SimNetwork):
    """``SimNetwork`` with taps and a drop filter applied before the link impairments.

    ``drop(direction, index, data, now)``: direction is "up" (to the server) or "down";
    index counts the datagrams of that direction from 0. True drops the datagram.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.taps: list[Tap] = []
        self.drop: DropFilter | None = None
        self.index = {"up": 0, "down": 0}
        self.dropped = {"up": 0, "down": 0}

    def _transmit(
        self, direction: _Direction, dst: Connection, data: bytes, src: tuple[str, int]
    ) -> None:
        name = "up" if direction is self.up else "down"
        index = self.index[name]
        self.index[name] = index + 1
        for tap in self.taps:
            tap(name, data, self.now)
        if self.drop is not None and self.drop(name, index, data, self.now):
            self.dropped[name] += 1
            return
        super()._transmit(direction, dst, data, src)

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


def seeded_random(seed: int) -> Callable[[int], bytes]:
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
    start: bool = True,
) -> Net:
    """A client/server pair on a :class:`Net` (``link``: the same spec both ways)."""
    scfg = server_config(**(server_kw or {}))
    if not _CONTEXT:
        _CONTEXT.append(ServerContext.from_config(scfg))
    client = Connection(
        client_config(**(client_kw or {})),
        is_client=True,
        random_bytes=seeded_random(seed * 2 + 1),
    )
    server = Connection(
        scfg,
        is_client=False,
        server_context=_CONTEXT[0],
        random_bytes=seeded_random(seed * 2 + 2),
    )
    if link is not None:
        to_server = to_server or link
        to_client = to_client or LinkSpec(**link.__dict__)
    net = Net(client, server, to_server=to_server, to_client=to_client, seed=seed)
    if start:
        net.start()
    return net


def connected(net: Net, timeout: float = 10.0) -> tuple[Peer, Peer]:
    """Run the handshake to completion on both sides; returns (client peer, server peer)."""
    c, s = Peer(net.client), Peer(net.server)
    ok = net.run_until(
        lambda: net.client.handshake_confirmed and net.server.handshake_complete,
        c,
        s,
        timeout=timeout,
    )
    assert ok, "handshake did not complete"
    return c, s


class Peer:
    """Events and stream data of one connection; reads streams as data arrives
    (set ``reading = False`` to leave the data unread, e.g. to exercise flow control)."""

    def __init__(self, conn: Connection, reading: bool = True) -> None:
        self.conn = conn
        self.reading = reading
        self.events: list[ev.Event] = []  # everything except StreamDataAvailable
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
            kind = type(event)
            if kind is ev.StreamDataAvailable:
                sid = event.stream_id  # type: ignore[attr-defined]
                if sid not in self.data:
                    self.data[sid] = bytearray()
                    self.streams_seen.append(sid)
                self.pending.add(sid)
                continue
            self.events.append(event)
            if isinstance(event, ev.StreamReset):
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

    def of(self, kind: type) -> list[Any]:
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
    connection's general builder seals (wraps ``PacketBuilder.seal_built`` on the instance)."""

    def __init__(self, conn: Connection) -> None:
        self.packets: list[tuple[int, int, int, bytes]] = []
        original = conn._builder.seal_built

        def spy(*args: Any) -> bytes:
            first = args[0]
            if hasattr(first, "payload"):  # seal_built(built, now)
                space, ptype, payload = first.space, first.ptype, first.payload
            else:  # _seal_packet(space, ptype, payload, records, eliciting, now)
                space, ptype, payload = args[:3]
            self.packets.append((space.index, ptype, space.next_pn, bytes(payload)))
            result: bytes = original(*args)
            return result

        setattr(conn._builder, "seal_built", spy)  # noqa: B010 (instance override of a method)

    def frames(self, space: int | None = APPLICATION) -> Iterable[Any]:
        for index, _ptype, _pn, payload in self.packets:
            if space is None or index == space:
                yield from F.decode_frames(payload)

    def of(self, kind: type, space: int | None = APPLICATION) -> list[Any]:
        return [f for f in self.frames(space) if isinstance(f, kind)]


def encode(*frames: Any) -> bytes:
    buf = Buffer()
    for frame in frames:
        F.encode_frame(buf, frame)
    return bytes(buf.data())


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


def packet_kinds(datagram: bytes) -> list[str]:
    """Rough packet types of a datagram's first packet: "initial", "handshake", "0rtt",
    "retry", "1rtt" (only the first; coalesced ones follow but are not parsed)."""
    first = datagram[0]
    if not first & 0x80:
        return ["1rtt"]
    return [("initial", "0rtt", "handshake", "retry")[(first >> 4) & 3]]


ONE_RTT = PacketType.ONE_RTT
