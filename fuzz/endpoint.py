"""Whole-endpoint target: a server ``Connection`` after a real in-memory handshake, fed
fuzzed datagrams and fuzzed frames sealed with the client's 1-RTT keys.

Each input starts from a fresh handshake (about 2 ms; connection state holds C objects,
so it cannot be deep-copied) and is a list of records ``kind, length (2 bytes), body``:

====  ===========================================================================
kind  what the record does (kind mod 8)
====  ===========================================================================
0     the body as a raw datagram to the server
1     the body as frames in a 1-RTT packet sealed with the client's keys
2     a short-header datagram to the server's CID: first byte from the body, the rest
3     ``body[0] * 10`` ms pass (timers fire at their deadlines, nothing is delivered)
4     run the network 100 ms: both sides' datagrams are delivered, timers fire
5     as 1, sent from a new address (``10.0.0.3``, port from the body)
6     a client application call: open a stream and send, send a DATAGRAM, start a key
      update, or send on a unidirectional stream (``body[0] mod 4``)
7     the last sealed packet again (a replay), else as 0
====  ===========================================================================

After each record both sides send what they want to (queued on the simulated link), a
small server application echoes every bidirectional stream, and the client reads. The
only acceptable outcomes: the input is dropped or processed, or the server closes with a
QUIC error code other than INTERNAL_ERROR / CRYPTO_ERROR(internal_error). Any exception
escaping ``receive_datagram``, ``datagrams_to_send`` or ``handle_timer`` (either side) is a
crash, as is a read of a stream the engine announced failing with anything but a
stream or connection error, and a timer still due after it fired and the connection sent
what it could (a driver would call ``handle_timer`` again at once, forever: a busy loop).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from quicish import Config
from quicish.errors import ErrorCode, QuicError, StreamError
from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.proto.packet_space import APPLICATION
from quicish.proto.records import SentPacket
from quicish.proto.server_context import ServerContext
from quicish.simlink import SimNetwork
from quicish.tls.alerts import Alert
from quicish.wire import frames as F
from quicish.wire.packet import encode_packet_number, encode_short_header

from .common import cert_files

MAX_RECORDS = 24
MAX_BODY = 1500
NEW_ADDR = "10.0.0.3"
BAD_CODES = {ErrorCode.INTERNAL_ERROR, ErrorCode.CRYPTO_ERROR + Alert.INTERNAL_ERROR}


def _configs() -> tuple[Config, Config]:
    cert, key, pin = cert_files()
    common: dict[str, object] = {"max_datagram_frame_size": 1200, "idle_timeout": 5.0}
    server = Config(certificate_chain=cert, private_key=key, **common)  # type: ignore[arg-type]
    client = Config(pin=pin, server_name="localhost", **common)  # type: ignore[arg-type]
    return server, client


@functools.lru_cache(maxsize=1)
def _setup() -> tuple[Config, Config, ServerContext]:
    server, client = _configs()
    return server, client, ServerContext.from_config(server)


class Session:
    """One handshaken pair on a simulated link, and what the fuzzer does to it."""

    def __init__(self) -> None:
        server_cfg, client_cfg, ctx = _setup()
        self.client = Connection(client_cfg, is_client=True)
        self.server = Connection(server_cfg, is_client=False, server_context=ctx)
        self.net = SimNetwork(self.client, self.server)
        self.net.start()
        done = self.net.run(lambda: self.client.handshake_complete
                            and self.server.handshake_complete, 5.0)  # fmt: skip
        assert done, "the handshake did not complete"
        self.last_sealed: bytes | None = None
        self.pump(0.05)  # HANDSHAKE_DONE and its ACK
        self._apps()

    # ---- what the client sends ----------------------------------------------------------
    def seal(self, payload: bytes) -> bytes | None:
        """``payload`` as a 1-RTT packet from the client, with its next packet number,
        recorded as sent so the server's ACK of it is legitimate (None once the client
        has no 1-RTT keys left)."""
        conn = self.client
        space = conn._spaces[APPLICATION]
        if space.tx is None:
            return None
        pn = space.next_pn
        space.next_pn = pn + 1
        truncated, pn_length = encode_packet_number(pn, conn._recovery.largest_acked(APPLICATION))
        header = encode_short_header(conn.peer_cid, truncated, pn_length, False,
                                     bool(conn._keys.phase))  # fmt: skip
        body = payload + bytes(max(0, 4 - pn_length - len(payload)))
        packet = space.tx.seal_packet(header, body, pn)
        conn._recovery.on_packet_sent(
            SentPacket(pn, self.net.now, len(packet), True, False, APPLICATION)
        )
        self.last_sealed = packet
        return packet

    def to_server(self, data: bytes | None, addr: tuple[str, int] | None = None) -> None:
        if data is not None:
            self.server.receive_datagram(data, addr or self.net.client_addr, self.net.now)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass with no datagram delivered, as a driver would: each due
        timer fires at its own deadline, after which the connection sends what it wants."""
        net = self.net
        end = net.now + seconds
        while True:
            timers = [t for c in (self.client, self.server) if (t := c.next_timer()) is not None]
            if not timers or min(timers) > end:
                break
            net.now = max(net.now, min(timers))
            for conn in (self.client, self.server):
                timer = conn.next_timer()
                if timer is not None and timer <= net.now:
                    conn.handle_timer(net.now)
            net._flush()
            self.check_timers()
        net.now = end

    def check_timers(self) -> None:
        """A timer that has fired, once the connection sent what it wanted to, must have
        moved into the future: one still due would make a driver spin (call handle_timer
        again at once, forever)."""
        now = self.net.now
        for name, conn in (("client", self.client), ("server", self.server)):
            timer = conn.next_timer()
            assert timer is None or timer > now, f"{name} timer stuck at {timer} (now {now})"

    def pump(self, duration: float) -> None:
        """Run the network for ``duration`` virtual seconds (datagrams and timers)."""
        net = self.net
        end = net.now + duration
        while net.now <= end and net.step():
            net._flush()
            self.check_timers()

    def client_call(self, body: bytes) -> None:
        op = body[0] % 4 if body else 0
        rest = body[1:]
        client = self.client
        try:
            if op == 0:
                sid = client.open_stream(True)
                client.send_stream_data(sid, rest, end_stream=True)
            elif op == 1:
                client.send_datagram(rest[:1000])
            elif op == 2:
                client.request_key_update()
            else:
                sid = client.open_stream(False)
                client.send_stream_data(sid, rest, end_stream=True)
        except QuicError:
            pass  # the application's misuse (limits, state): not what is fuzzed here

    # ---- one record ---------------------------------------------------------------------
    def record(self, kind: int, body: bytes) -> None:
        kind %= 8
        net = self.net
        if kind == 0 or (kind == 7 and self.last_sealed is None):
            self.to_server(body)
        elif kind == 1:
            self.to_server(self.seal(body))
        elif kind == 2:
            first = 0x40 | (body[0] & 0x3F) if body else 0x40
            self.to_server(bytes((first,)) + self.server.host_cid + body[1:])
        elif kind == 3:
            self.advance((body[0] if body else 20) * 0.010)
        elif kind == 4:
            self.pump(0.1)
        elif kind == 5:
            port = 40000 + (body[0] if body else 0)
            self.to_server(self.seal(body[1:]), (NEW_ADDR, port))
        elif kind == 6:
            self.client_call(body)
        else:
            assert self.last_sealed is not None
            self.to_server(self.last_sealed)
        net._flush()  # both sides send what they want to (delivered by a later kind 4)
        self._apps()

    def _apps(self) -> None:
        """The server echoes its bidirectional streams; the client reads everything."""
        for conn in (self.server, self.client):
            readable: set[int] = set()
            while (event := conn.next_event()) is not None:
                if isinstance(event, ev.StreamDataAvailable):
                    readable.add(event.stream_id)
                elif (isinstance(event, ev.ConnectionTerminated) and conn is self.server
                      and not event.by_peer):  # fmt: skip
                    assert event.error_code not in BAD_CODES, event
            for sid in sorted(readable):
                try:
                    data, fin = conn.read_stream(sid)
                    if conn is self.server and not sid & 2 and (data or fin):
                        conn.send_stream_data(sid, data, end_stream=fin)
                except (StreamError, QuicError):
                    pass  # reset, stopped or closed meanwhile: an application-level error


def parse(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The records of an input."""
    pos = 0
    count = 0
    while pos < len(data) and count < MAX_RECORDS:
        kind = data[pos]
        n = int.from_bytes(data[pos + 1 : pos + 3], "big") % (MAX_BODY + 1)
        body = data[pos + 3 : pos + 3 + n]
        pos += 3 + n
        count += 1
        yield kind, body


def one_input(data: bytes) -> None:
    session = Session()
    for kind, body in parse(data):
        session.record(kind, body)
    # the end of the connection: idle timeout or closing period, whatever was left
    for _ in range(3):
        session.advance(30.0)
    session._apps()


def encode(*records: tuple[int, bytes]) -> bytes:
    """An input of this target."""
    return b"".join(bytes((kind,)) + len(body).to_bytes(2, "big") + body
                    for kind, body in records)  # fmt: skip


def _frames(*frames: F.Frame) -> bytes:
    return F.encode_frames(list(frames))


def seeds() -> Iterator[tuple[str, bytes]]:
    get = _frames(F.StreamFrame(0, 0, b"GET /index.html\r\n", True))
    ack = _frames(F.AckFrame([(0, 3)], 0, None))
    yield "seed-stream-echo", encode((1, get), (4, b""), (1, ack))
    yield (
        "seed-stream-fragments",
        encode(
            (1, _frames(F.StreamFrame(4, 5, b"world", True))),
            (1, _frames(F.StreamFrame(4, 0, b"hello", False))),
            (4, b""),
        ),
    )
    yield (
        "seed-control",
        encode(
            (
                1,
                _frames(
                    F.MaxDataFrame(1 << 22),
                    F.MaxStreamDataFrame(0, 1 << 20),
                    F.MaxStreamsFrame(True, 200),
                    F.DataBlockedFrame(10),
                    F.StreamDataBlockedFrame(0, 10),
                    F.StreamsBlockedFrame(False, 3),
                    F.PingFrame(),
                ),
            ),
            (3, b"\x05"),
        ),
    )
    yield (
        "seed-reset",
        encode(
            (1, _frames(F.StreamFrame(8, 0, b"abc", False), F.ResetStreamFrame(8, 7, 3))),
            (1, _frames(F.StopSendingFrame(0, 9))),
            (4, b""),
        ),
    )
    yield (
        "seed-cids",
        encode(
            (1, _frames(F.NewConnectionIdFrame(5, 2, bytes(range(8)), bytes(range(16))))),
            (1, _frames(F.RetireConnectionIdFrame(1))),
            (4, b""),
        ),
    )
    yield (
        "seed-path",
        encode(
            (5, b"\x07" + _frames(F.PathChallengeFrame(b"abcdefgh"))),
            (1, _frames(F.PathResponseFrame(b"12345678"))),
            (4, b""),
        ),
    )
    yield (
        "seed-datagram-crypto",
        encode(
            (1, _frames(F.DatagramFrame(b"dgram"), F.CryptoFrame(0, b"\x04\x00\x00\x01\x00"))),
            (6, b"\x01hello"),
            (4, b""),
        ),
    )
    close = _frames(F.ConnectionCloseFrame(0x0A, 0x08, "bye"))
    yield "seed-close", encode((1, close), (3, b"\x10"))
    yield (
        "seed-app-keyupdate",
        encode(
            (6, b"\x00request"),
            (6, b"\x02"),
            (4, b""),
            (7, b""),
            (2, b"\x41" + bytes(40)),
            (0, bytes(30)),
        ),
    )
