"""Server handshake target: a fresh server ``Connection`` (no address validation, as a
server without Retry) fed fuzzed client Initials, i.e. what any off-path sender can reach.

Input: one byte for the DCID length (8 + ``b mod 13``), that many DCID bytes, the client's
8-byte SCID (its ClientHello's transport parameters name it), then records
``kind, length (2 bytes), body`` (as the endpoint target):

====  ===========================================================================
kind  what the record does (kind mod 5)
====  ===========================================================================
0     the body as a raw datagram to the server
1     the body as frames in a QUIC v1 Initial to the DCID, sealed with the Initial keys
      derived from it, in a datagram padded to 1200 bytes
2     as 1, not padded
3     ``body[0] * 10`` ms pass (timers fire at their deadlines)
4     as 1, QUIC v2
====  ===========================================================================

Acceptable outcomes as for the endpoint target: dropped, processed, or closed with a QUIC
error code other than INTERNAL_ERROR / CRYPTO_ERROR(internal_error); no exception escapes
``receive_datagram``, ``datagrams_to_send`` or ``handle_timer``; no timer stays due after
it fired.
"""

from __future__ import annotations

from collections.abc import Iterator

from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.simlink import CLIENT_ADDR
from quicish.wire import frames as F
from quicish.wire.packet import QUIC_V1, QUIC_V2, PacketType, encode_long_header, parse_header
from quicish.wire.protection import CipherSuite, PacketProtector, initial_secrets

from .endpoint import BAD_CODES, _setup, encode, parse

DATAGRAM = 1200


def seal_initial(
    dcid: bytes, scid: bytes, payload: bytes, version: int, pn: int, pad: bool
) -> bytes:
    """``payload`` (frames) in a client Initial to ``dcid``, optionally padded to 1200."""
    key = PacketProtector.from_secret(
        CipherSuite.AES_128_GCM_SHA256, initial_secrets(dcid, version)[0], version
    )
    payload = payload or b"\x01"  # PING: an Initial needs a frame
    if pad:  # PADDING frames inside the packet, up to a full datagram
        overhead = 1 + 4 + 1 + len(dcid) + 1 + len(scid) + 1 + 2 + 2 + 16
        payload += bytes(max(0, DATAGRAM - overhead - len(payload)))
    payload += bytes(max(0, 2 - len(payload)))  # room for the header protection sample
    header = encode_long_header(PacketType.INITIAL, version, dcid, scid, b"",
                                len(payload) + 16, pn, 2)  # fmt: skip
    return key.seal_packet(header, payload, pn)


class Server:
    """A fresh server connection and its virtual clock."""

    def __init__(self, dcid: bytes, scid: bytes) -> None:
        server_cfg, _, ctx = _setup()
        self.conn = Connection(server_cfg, is_client=False, server_context=ctx)
        self.dcid = dcid
        self.scid = scid
        self.now = 0.0
        self.pn = 0

    def send(self, data: bytes) -> None:
        self.conn.receive_datagram(data, CLIENT_ADDR, self.now)

    def record(self, kind: int, body: bytes) -> None:
        kind %= 5
        if kind == 0:
            self.send(body)
        elif kind == 3:
            self.advance((body[0] if body else 20) * 0.010)
            return
        else:
            version = QUIC_V2 if kind == 4 else QUIC_V1
            self.send(seal_initial(self.dcid, self.scid, body, version, self.pn, pad=kind != 2))
            self.pn += 1
        self.after(fired=False)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: each due timer fires at its own deadline."""
        end = self.now + seconds
        while (timer := self.conn.next_timer()) is not None and timer <= end:
            self.now = max(self.now, timer)
            self.conn.handle_timer(self.now)
            self.after()
        self.now = end

    def after(self, fired: bool = True) -> None:
        """Send and check the events; a timer due at once (a PTO re-armed in the past when
        a datagram reopens the anti-amplification budget, RFC 9002 A.8) fires, and then no
        timer may stay due (a driver would spin)."""
        conn = self.conn
        conn.datagrams_to_send(self.now)
        while (event := conn.next_event()) is not None:
            if isinstance(event, ev.ConnectionTerminated) and not event.by_peer:
                assert event.error_code not in BAD_CODES, event
        timer = conn.next_timer()
        if not fired and timer is not None and timer <= self.now:
            conn.handle_timer(self.now)
            self.after()
            return
        assert timer is None or timer > self.now, f"timer stuck at {timer} (now {self.now})"


def one_input(data: bytes) -> None:
    if not data:
        return
    n = 8 + data[0] % 13
    dcid, scid = data[1 : 1 + n], data[1 + n : 9 + n]
    if len(scid) < 8:
        return
    server = Server(dcid, scid)
    for kind, body in parse(data[9 + n :]):
        server.record(kind, body)
    server.advance(60.0)  # handshake timeout, idle timeout or closing period


def client_initial_payload() -> tuple[bytes, bytes]:
    """The SCID and the frames of a real client's first Initial (its ClientHello)."""
    _, client_cfg, _ = _setup()
    client = Connection(client_cfg, is_client=True)
    client.connect(("10.0.0.2", 4433), 0.0)
    datagram = client.datagrams_to_send(0.0)[0][0]
    dcid = datagram[6 : 6 + datagram[5]]
    key = PacketProtector.from_secret(CipherSuite.AES_128_GCM_SHA256, initial_secrets(dcid)[0])
    header = parse_header(datagram, 0)
    packet = datagram[: header.packet_end]
    _, payload, _ = key.open_packet(packet, header.pn_offset, -1)
    frames = [f for f in F.decode_frames(payload) if not isinstance(f, F.PaddingFrame)]
    return header.scid, F.encode_frames(frames)


def seeds() -> Iterator[tuple[str, bytes]]:
    dcid = bytes(range(8))
    scid, hello = client_initial_payload()
    head = bytes((0,)) + dcid + scid
    yield "seed-client-hello", head + encode((1, hello), (3, b"\x05"), (1, b"\x01"))
    yield "seed-client-hello-v2", head + encode((4, hello))
    crypto = F.decode_frames(hello)[0]
    assert isinstance(crypto, F.CryptoFrame)
    half = len(crypto.data) // 2
    later = F.encode_frames([F.CryptoFrame(half, crypto.data[half:])])
    first = F.encode_frames([F.CryptoFrame(0, crypto.data[:half])])
    yield "seed-crypto-split", head + encode((1, later), (2, first), (3, b"\x30"))
    yield "seed-ack-ping", head + encode((1, hello), (1, F.encode_frames(
        [F.AckFrame([(0, 1)], 0, None), F.PingFrame()])), (0, bytes(40)))  # fmt: skip
