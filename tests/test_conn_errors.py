"""Malformed or forbidden frames from the peer close the connection with the right error
code (RFC 9000 sections 4, 11, 12.4, 19, 20): crafted 1-RTT packets sealed with the
sender's real keys are handed to the receiver, which must send CONNECTION_CLOSE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from pairs import Net, Pair, Peer, encode, inject, raw

from quicish.errors import ConnectionClosedError, ErrorCode, wire_reason
from quicish.proto.connection import Connection
from quicish.wire import frames as F

E = ErrorCode


@dataclass
class Case:
    name: str
    to_server: bool  # True: the client misbehaves towards the server
    payload: Callable[[Net], bytes]
    code: int
    frame_type: int | None
    setup: Callable[[Net, Peer, Peer], None] | None = None


def _open_and_send(net: Net, c: Peer, s: Peer) -> None:
    """Client stream 0 carries 100 bytes and its FIN to the server."""
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(100), end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s)


def _server_stream(net: Net, c: Peer, s: Peer) -> None:
    """Server stream 1 exists on both sides (bidi) with 10 bytes sent."""
    sid = net.server.open_stream()
    assert sid == 1
    net.server.send_stream_data(sid, bytes(10))
    assert net.run_until(lambda: len(c.data.get(sid, b"")) == 10, c, s)


CASES = [
    Case(
        "stream on the receiver's own uni stream",
        True,
        lambda net: encode(F.StreamFrame(3, 0, b"x")),
        E.STREAM_STATE_ERROR,
        0x0A,
    ),
    Case(
        "stream on the client's own uni stream (to client)",
        False,
        lambda net: encode(F.StreamFrame(2, 0, b"x")),
        E.STREAM_STATE_ERROR,
        0x0A,
    ),
    Case(
        "stream on a never-opened local bidi stream",
        True,
        lambda net: encode(F.StreamFrame(1, 0, b"x")),
        E.STREAM_STATE_ERROR,
        0x0A,
    ),
    Case(
        "stream id beyond MAX_STREAMS",
        True,
        lambda net: encode(F.StreamFrame(4 * 128, 0, b"x")),
        E.STREAM_LIMIT_ERROR,
        0x0A,
    ),
    Case(
        "uni stream id beyond MAX_STREAMS",
        True,
        lambda net: encode(F.StreamFrame(4 * 128 + 2, 0, b"x")),
        E.STREAM_LIMIT_ERROR,
        0x0A,
    ),
    Case(
        "data beyond the stream window",
        True,
        lambda net: encode(F.StreamFrame(0, (256 << 10) - 5, bytes(10))),
        E.FLOW_CONTROL_ERROR,
        0x0E,
    ),
    Case(
        "data beyond the connection window",
        True,
        lambda net: encode(*[F.StreamFrame(4 * i, 0, bytes(200_000)) for i in range(6)]),
        E.FLOW_CONTROL_ERROR,
        0x0A,
    ),
    Case(
        "reset beyond the stream window",
        True,
        lambda net: encode(F.ResetStreamFrame(0, 1, (256 << 10) + 1)),
        E.FLOW_CONTROL_ERROR,
        0x04,
    ),
    Case(
        "data beyond the final size",
        True,
        lambda net: encode(F.StreamFrame(0, 100, b"more")),
        E.FINAL_SIZE_ERROR,
        0x0E,
        _open_and_send,
    ),
    Case(
        "FIN changes the final size",
        True,
        lambda net: encode(F.StreamFrame(0, 0, bytes(50), fin=True)),
        E.FINAL_SIZE_ERROR,
        0x0B,
        _open_and_send,
    ),
    Case(
        "RESET_STREAM changes the final size",
        True,
        lambda net: encode(F.ResetStreamFrame(0, 3, 50)),
        E.FINAL_SIZE_ERROR,
        0x04,
        _open_and_send,
    ),
    Case(
        "RESET_STREAM on our send-only stream",
        True,
        lambda net: encode(F.ResetStreamFrame(3, 3, 0)),
        E.STREAM_STATE_ERROR,
        0x04,
    ),
    Case(
        "MAX_STREAM_DATA on our receive-only stream",
        True,
        lambda net: encode(F.MaxStreamDataFrame(2, 1000)),
        E.STREAM_STATE_ERROR,
        0x11,
    ),
    Case(
        "STOP_SENDING on our receive-only stream",
        True,
        lambda net: encode(F.StopSendingFrame(2, 1)),
        E.STREAM_STATE_ERROR,
        0x05,
    ),
    Case(
        "STREAM_DATA_BLOCKED on our send-only stream",
        True,
        lambda net: encode(F.StreamDataBlockedFrame(3, 0)),
        E.STREAM_STATE_ERROR,
        0x15,
    ),
    Case(
        "MAX_STREAM_DATA for a never-opened local stream",
        False,
        lambda net: encode(F.MaxStreamDataFrame(8, 1000)),
        E.STREAM_STATE_ERROR,
        0x11,
    ),
    Case(
        "HANDSHAKE_DONE from a client",
        True,
        lambda net: encode(F.HandshakeDoneFrame()),
        E.PROTOCOL_VIOLATION,
        0x1E,
    ),
    Case(
        "NEW_TOKEN from a client",
        True,
        lambda net: encode(F.NewTokenFrame(b"token")),
        E.PROTOCOL_VIOLATION,
        0x07,
    ),
    Case(
        "ACK of a packet never sent (to server)",
        True,
        lambda net: encode(F.AckFrame([(0, net.server._spaces[2].next_pn + 50)])),
        E.PROTOCOL_VIOLATION,
        0x02,
    ),
    Case(
        "ACK of a packet never sent (to client)",
        False,
        lambda net: encode(F.AckFrame([(0, net.client._spaces[2].next_pn + 1)])),
        E.PROTOCOL_VIOLATION,
        0x02,
    ),
    Case("unknown frame type", True, lambda net: raw(0x3F, 1, 2, 3), E.FRAME_ENCODING_ERROR, 0x3F),
    Case(
        "unknown two-byte frame type",
        False,
        lambda net: raw(0x4242),
        E.FRAME_ENCODING_ERROR,
        0x4242,
    ),
    Case(
        "truncated STREAM frame",
        True,
        lambda net: raw(0x0A, 0, 100, tail=b"short"),
        E.FRAME_ENCODING_ERROR,
        0x0A,
    ),
    Case("truncated ACK frame", False, lambda net: raw(0x02, 5), E.FRAME_ENCODING_ERROR, 0x02),
    Case(
        "MAX_STREAMS above 2^60",
        True,
        lambda net: raw(0x12, (1 << 60) + 1),
        E.FRAME_ENCODING_ERROR,
        0x12,
    ),
    Case(
        "DATAGRAM not negotiated",
        True,
        lambda net: encode(F.DatagramFrame(b"dgram")),
        E.PROTOCOL_VIOLATION,
        0x31,
    ),
    Case(
        "CRYPTO data overflowing the buffer",
        True,
        lambda net: encode(F.CryptoFrame(1 << 20, b"x")),
        E.CRYPTO_BUFFER_EXCEEDED,
        0x06,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_frame_closes_with_code(case: Case, pair: Pair) -> None:
    net, c, s = pair
    if case.setup is not None:
        case.setup(net, c, s)
    sender, receiver = (net.client, net.server) if case.to_server else (net.server, net.client)
    victim, culprit = (s, c) if case.to_server else (c, s)
    inject(sender, receiver, case.payload(net), net.now)
    victim.poll()
    term = victim.terminated
    assert term is not None, "receiver did not close"
    assert (term.error_code, term.frame_type, term.by_peer) == (case.code, case.frame_type, False)
    assert receiver.is_terminated and not receiver.is_closed
    # The CONNECTION_CLOSE reaches the peer, which reports it as coming from the peer.
    assert net.run_until(lambda: culprit.terminated is not None, c, s, timeout=2)
    peer_term = culprit.terminated
    assert peer_term is not None and peer_term.by_peer
    assert (peer_term.error_code, peer_term.frame_type) == (case.code, case.frame_type)
    # On the wire, a fixed phrase for the code; the detail stays local (issue 15).
    assert peer_term.reason == wire_reason(case.code) and term.reason
    # Both end up closed; neither raises on further API use.
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=5)
    with pytest.raises(ConnectionClosedError):
        sender.open_stream()


def test_valid_injected_frames_are_accepted(pair: Pair) -> None:
    """The injection path itself is sound: well-formed frames do not close anything."""
    net, c, s = pair
    inject(
        net.client,
        net.server,
        encode(F.PingFrame(), F.StreamFrame(0, 0, b"hi", fin=True), F.MaxDataFrame(1 << 30)),
        net.now,
    )
    s.poll()
    assert s.terminated is None and bytes(s.data[0]) == b"hi" and 0 in s.finished
    inject(net.server, net.client, encode(F.NewTokenFrame(b"tok"), F.HandshakeDoneFrame()), net.now)
    c.poll()
    assert c.terminated is None
    net.settle(c, s, duration=0.5)
    assert c.terminated is None and s.terminated is None


def test_undecryptable_packet_is_dropped_not_fatal(pair: Pair) -> None:
    net, _c, _s = pair
    before = net.server.stats().packets_undecryptable
    good = bytearray(b"\x40" + net.server.host_cid + bytes(40))
    net.server.receive_datagram(bytes(good), ("10.0.0.1", 50000), net.now)
    assert net.server.stats().packets_undecryptable == before + 1
    assert not net.server.is_terminated
    # Garbage that does not even parse, and a packet for an unknown CID, are dropped too.
    dropped = net.server.stats().packets_dropped
    net.server.receive_datagram(b"\xff\x00", ("10.0.0.1", 50000), net.now)
    net.server.receive_datagram(b"\x40" + bytes(8) + bytes(40), ("10.0.0.1", 50000), net.now)
    assert net.server.stats().packets_dropped == dropped + 2
    assert not net.server.is_terminated


def test_reserved_bits_set_is_protocol_violation(pair: Pair) -> None:
    """RFC 9000 17.3.1: non-zero reserved bits after removing header protection."""
    net, _c, s = pair
    _inject_with_first_byte_bits(net.client, net.server, 0x18, encode(F.PingFrame()), net.now)
    s.poll()
    assert s.terminated is not None and s.terminated.error_code == E.PROTOCOL_VIOLATION


def _inject_with_first_byte_bits(
    sender: Connection, receiver: Connection, bits: int, payload: bytes, now: float
) -> None:
    from quicish.wire.packet import encode_packet_number, encode_short_header

    space = sender._spaces[2]
    assert space.tx is not None
    pn = space.next_pn
    space.next_pn = pn + 1
    truncated, pn_length = encode_packet_number(pn, sender._recovery.largest_acked(2))
    header = bytearray(encode_short_header(sender.peer_cid, truncated, pn_length))
    header[0] |= bits
    packet = space.tx.seal_packet(bytes(header), payload + bytes(8), pn)
    receiver.receive_datagram(packet, ("10.0.0.1", 50000), now)


def test_reset_of_peer_opened_bidi_stream_is_valid(pair: Pair) -> None:
    """RESET_STREAM from the client on the server's bidi stream 1 resets the client's
    sending half: legal, reported, not a connection error."""
    net, c, s = pair
    _server_stream(net, c, s)
    inject(net.client, net.server, encode(F.ResetStreamFrame(1, 9, 0)), net.now)
    s.poll()
    assert s.terminated is None and s.resets[1] == (9, 0)
