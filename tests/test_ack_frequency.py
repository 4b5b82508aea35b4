"""ACK frequency (draft-ietf-quic-ack-frequency-14): the frames and the min_ack_delay parameter
on the wire, the peer's policy in the application space (thresholds, reordering, stale
sequence numbers, IMMEDIATE_ACK), our requests to a bulk receiver (far fewer ACKs per data
packet, nothing without the peer's min_ack_delay), and both over real UDP, with quicish and
with aioquic (which does not know the extension) as the peer."""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import pytest
from aio_support import timed
from aioquic_support import aioquic_request, aioquic_server
from pairs import (
    FrameSpy,
    Net,
    Peer,
    Sender,
    connected,
    encode,
    inject,
    make_pair,
    wire_frames,
)
from support import client_config, server_config

import quicish
from quicish.errors import DecodeError, ErrorCode
from quicish.proto.ack_frequency import AckFrequencySender
from quicish.proto.packet_space import APPLICATION, AckFrequency, PacketSpace
from quicish.simlink import LinkSpec
from quicish.wire import frames as F
from quicish.wire.packet import PacketType
from quicish.wire.transport_params import TransportParameters

ON = {"ack_frequency": True}
WINDOWS = {"max_data": 16 << 20, "max_stream_data": 16 << 20}
FEE, PV = ErrorCode.FRAME_ENCODING_ERROR, ErrorCode.PROTOCOL_VIOLATION


# ---- wire ------------------------------------------------------------------------------------
def test_frames_round_trip_with_exact_bytes() -> None:
    frame = F.AckFrequencyFrame(5, 9, 20000, 3)
    data = F.encode_frames([frame, F.ImmediateAckFrame()])
    assert data == bytes.fromhex("40af050980004e20031f")
    assert F.decode_frames(data, PacketType.ONE_RTT) == [frame, F.ImmediateAckFrame()]
    big = F.AckFrequencyFrame((1 << 62) - 1, 1 << 40, (1 << 14) * 1000 - 1, 0)
    assert F.decode_frames(F.encode_frames([big])) == [big]
    assert F.frame_type_of(frame) == 0xAF and F.frame_type_of(F.ImmediateAckFrame()) == 0x1F
    assert F.is_ack_eliciting(0xAF) and F.is_ack_eliciting(0x1F)
    assert not F.is_probing(0xAF) and not F.is_probing(0x1F)


@pytest.mark.parametrize("cut", range(1, 8))  # (the type itself stays whole)
def test_truncated_ack_frequency_is_a_frame_encoding_error(cut: int) -> None:
    data = F.encode_frames([F.AckFrequencyFrame(5, 9, 20000, 3)])[:-cut]
    with pytest.raises(DecodeError) as exc:
        F.decode_frames(data)
    assert (exc.value.code, exc.value.frame_type) == (FEE, 0xAF)


@pytest.mark.parametrize(
    "ptype", [PacketType.INITIAL, PacketType.HANDSHAKE, PacketType.ZERO_RTT], ids=str
)
@pytest.mark.parametrize("frame", [F.AckFrequencyFrame(0, 1, 1000, 1), F.ImmediateAckFrame()])
def test_frames_only_in_one_rtt_packets(ptype: PacketType, frame: Any) -> None:
    with pytest.raises(DecodeError) as exc:
        F.decode_frames(F.encode_frames([frame]), ptype)
    assert (exc.value.code, exc.value.frame_type) == (PV, F.frame_type_of(frame))
    assert F.frame_allowed(F.frame_type_of(frame), PacketType.ONE_RTT)


def test_min_ack_delay_parameter() -> None:
    params = TransportParameters(min_ack_delay=1000)
    data = params.encode()
    assert data == bytes.fromhex("c0000000ff04de1b0243e8")  # id, length, 1000
    assert TransportParameters.decode(data, from_server=False).min_ack_delay == 1000
    assert TransportParameters.decode(b"", from_server=False).min_ack_delay is None
    # min_ack_delay (microseconds) above max_ack_delay (milliseconds): TRANSPORT_PARAMETER_ERROR
    assert TransportParameters(min_ack_delay=25000).encode()
    with pytest.raises(ValueError):
        TransportParameters(min_ack_delay=25001).encode()
    two_ms = TransportParameters(max_ack_delay=2).encode()
    ok = two_ms + bytes.fromhex("c0000000ff04de1b0247d0")  # 2000 us: as large, allowed
    assert TransportParameters.decode(ok, from_server=False).min_ack_delay == 2000
    with pytest.raises(DecodeError) as exc:  # 2001 us > 2 ms
        TransportParameters.decode(two_ms + bytes.fromhex("c0000000ff04de1b0247d1"), False)
    assert exc.value.code == ErrorCode.TRANSPORT_PARAMETER_ERROR


# ---- the peer's policy (packet_space.AckFrequency) -------------------------------------------
def _receive(space: PacketSpace, pn: int, now: float = 0.0) -> bool:
    """Record ack-eliciting ``pn``; True if an ACK is due at once (then "sent")."""
    assert space.record(pn)
    space.on_packet_received(pn, True, now, 0.025)
    due = space.ack_now
    if due:
        space.on_ack_sent()
    return due


def test_rfc9000_values_decide_as_the_default_policy() -> None:
    """AckFrequency(threshold 1, 25 ms, reordering 1) is RFC 9000's policy: the same ACKs
    and deadlines as the inline default on 2000 random arrival orders."""
    rng = random.Random(7)
    for _ in range(2000):
        order = list(range(rng.randrange(1, 12)))
        for i in range(len(order) - 1):
            if rng.random() < 0.3:
                order[i], order[i + 1] = order[i + 1], order[i]
        order = [pn for pn in order if rng.random() > 0.1]
        plain, policy = PacketSpace(APPLICATION), PacketSpace(APPLICATION)
        policy.ack_frequency = AckFrequency(0, 1, 0.025, 1)
        for pn in order:
            now = pn * 0.001
            assert _receive(plain, pn, now) == _receive(policy, pn, now), order
            assert plain.ack_due_at == policy.ack_due_at


def _acks_for(arrivals: list[int], reordering: int) -> list[int]:
    """The arrivals that elicit an immediate ACK when only reordering sends ACKs."""
    space = PacketSpace(APPLICATION)
    space.ack_frequency = AckFrequency(0, 1 << 20, 1.0, reordering)
    return [pn for pn in arrivals if _receive(space, pn)]


def test_reordering_threshold_examples_of_the_draft() -> None:
    """Section 6.2.1, tables 1 and 2."""
    assert _acks_for([0, 1, 3, 4, 5, 8, 9, 10], 3) == [5, 9, 10]
    assert _acks_for([0, 1, 3, 5, 6, 7, 8, 9], 5) == [7, 9]
    assert _acks_for([0, 1, 3, 4, 5, 8, 9, 10], 1) == [3, 8]  # RFC 9000: every gap
    assert _acks_for([0, 1, 3, 4, 5, 8, 9, 10, 2, 6], 0) == []  # 0: reordering never


def test_late_packet_below_the_reported_window_is_acknowledged_at_once() -> None:
    # threshold 3, 2 and 7 missing: ACKs at 5 (5 - 2 >= 3) and 10 (10 - 7 >= 3)
    space = PacketSpace(APPLICATION)
    space.ack_frequency = AckFrequency(0, 1 << 20, 1.0, 3)
    assert [pn for pn in (0, 1, 3, 4, 5, 6, 8, 9, 10) if _receive(space, pn)] == [5, 10]
    assert not _receive(space, 11)  # nothing unreported missing: in order, no ACK
    assert _receive(space, 7)  # late: 7 <= largest acked 10 - 3, maybe declared lost
    assert _receive(space, 2)


def test_ack_eliciting_threshold_and_delay() -> None:
    space = PacketSpace(APPLICATION)
    space.ack_frequency = AckFrequency(0, 9, 0.004, 1)
    due = [pn for pn in range(30) if _receive(space, pn, now=1.0)]
    assert due == [9, 19, 29]  # an ACK after more than 9 ack-eliciting packets
    assert _receive(space, 30, now=2.0) is False
    assert space.ack_due_at == pytest.approx(2.004)  # the requested max_ack_delay
    assert space.wants_ack(2.004) and not space.wants_ack(2.0039)


def test_first_ce_mark_after_unmarked_packets_is_acknowledged_at_once() -> None:
    """Section 6.3: with a threshold above 1, the onset of CE marks elicits an ACK (the
    connection counts a packet's ECN before scheduling its ACK)."""

    def acks(threshold: int, marks: str) -> list[int]:
        space = PacketSpace(APPLICATION)
        space.ack_frequency = AckFrequency(0, threshold, 1.0, 1)
        due = []
        for pn, mark in enumerate(marks):
            if mark == "C":
                space.ecn_counts[2] += 1
            if _receive(space, pn):
                due.append(pn)
        return due

    assert acks(10, "..CC.C...CCC") == [2, 5, 9]  # onsets only, not every marked packet
    assert acks(10, "..........") == []  # 10 packets: not more than the threshold
    assert acks(1, "..C.C.C") == [1, 3, 5]  # threshold 1: every 2nd, as RFC 9000 here


# ---- a bulk transfer between two quicish engines (tests/pairs.py) ------------------------
def _bulk(client_on: bool, server_on: bool, size: int = 4 << 20, **link: Any) -> dict[str, Any]:
    """Client -> server upload over a 10 ms link; counts of datagrams each way."""
    net, c, s = make_pair(
        client_kw={"ack_frequency": client_on, **WINDOWS},
        server_kw={"ack_frequency": server_on, **WINDOWS},
        link=LinkSpec(delay=0.01, **link),
    )
    connected(net, c, s)
    spy = FrameSpy(net.client)
    up0, down0 = net.index["up"], net.index["down"]
    data = random.Random(3).randbytes(size)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, data)
    net.taps.append(lambda *_: sender.pump())
    sender.pump()
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=120)
    assert hashlib.sha256(bytes(s.data[sid])).digest() == hashlib.sha256(data).digest()
    up, down = net.index["up"] - up0, net.index["down"] - down0
    return {
        "net": net,
        "up": up,
        "down": down,
        "ratio": down / up,
        "requests": spy.of(F.AckFrequencyFrame),
        "immediate": spy.of(F.ImmediateAckFrame),
        "seconds": net.now,
    }


def test_negotiated_bulk_receiver_sends_far_fewer_acks() -> None:
    off, on = _bulk(False, False), _bulk(True, True)
    print(f"ACK datagrams per data datagram: off {off['ratio']:.3f}, on {on['ratio']:.3f}")
    assert off["ratio"] > 0.4  # RFC 9000: one ACK every second packet
    assert on["ratio"] < 0.1 and on["down"] * 5 < off["down"]
    assert on["up"] <= off["up"] * 1.02  # no extra packets to speak of
    assert on["seconds"] <= off["seconds"] * 1.05  # and no slower
    requests = on["requests"]
    assert requests and [r.sequence for r in requests] == list(range(len(requests)))
    assert max(r.ack_eliciting_threshold for r in requests) == 15  # every 16 packets at most
    assert all(r.reordering_threshold == 3 for r in requests)  # the packet threshold
    assert all(1000 <= r.request_max_ack_delay <= 25000 for r in requests)
    net: Net = on["net"]
    policy = net.server._spaces[APPLICATION].ack_frequency
    assert policy is not None and policy.sequence == requests[-1].sequence
    # the newest request acknowledged: the PTO allows for its delay, not 25 ms
    assert net.client._recovery.max_ack_delay == pytest.approx(
        requests[-1].request_max_ack_delay / 1e6, abs=1e-6
    )


@pytest.mark.parametrize(("client_on", "server_on"), [(True, False), (False, True)])
def test_without_the_peer_advertising_nothing_changes(client_on: bool, server_on: bool) -> None:
    """The server (receiver) without min_ack_delay, or the client not asking: the same
    datagrams as with the extension off on both sides, and no ACK_FREQUENCY sent."""
    off, one = _bulk(False, False, 1 << 20), _bulk(client_on, server_on, 1 << 20)
    assert (one["up"], one["down"]) == (off["up"], off["down"])
    assert one["requests"] == [] and one["immediate"] == []
    assert one["net"].client._builder.ack_frequency is None
    assert one["net"].server._spaces[APPLICATION].ack_frequency is None


def test_bulk_with_loss_still_recovers() -> None:
    """1% loss: loss detection with the reordering threshold and fewer ACKs still repairs
    everything (byte-exact in _bulk)."""
    on = _bulk(True, True, 2 << 20, loss=0.01)
    assert on["net"].client.stats().packets_lost > 0


def test_probe_carries_immediate_ack() -> None:
    net, c, s = make_pair(client_kw={**ON, **WINDOWS}, server_kw={**ON, **WINDOWS})
    connected(net, c, s)
    spy = FrameSpy(net.client)
    net.drop = lambda direction, *_: direction == "down"  # every ACK lost: a PTO follows
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"x" * 5000, end_stream=True)
    assert net.run_until(lambda: net.client.stats().pto_count > 0, c, s, timeout=5)
    net.run_until(lambda: bool(spy.of(F.ImmediateAckFrame)), c, s, timeout=1)
    assert spy.of(F.ImmediateAckFrame)


# ---- received ACK_FREQUENCY / IMMEDIATE_ACK ---------------------------------------------------
def _pair(server_on: bool = True) -> tuple[Net, Peer, Peer]:
    net, c, s = make_pair(client_kw=ON, server_kw={"ack_frequency": server_on})
    connected(net, c, s)
    net.settle(c, s, duration=0.2)
    return net, c, s


def _acks_sent(net: Net) -> list[Any]:
    """The ACK frames of what the server would send now."""
    out = []
    for data, _ in net.server.datagrams_to_send(net.now):
        out += [f for f in wire_frames(net.client, data) or () if isinstance(f, F.AckFrame)]
    return out


def test_immediate_ack_is_answered_at_once() -> None:
    net, c, s = _pair()
    inject(net.client, net.server, encode(F.AckFrequencyFrame(0, 100, 20000, 0)), net.now)
    assert _acks_sent(net) == []  # its own packet is the first of up to 100
    net.settle(c, s, duration=0.1)
    inject(net.client, net.server, encode(F.PingFrame()), net.now)
    assert _acks_sent(net) == []  # threshold 100: the PING waits (up to 20 ms)
    assert net.server._spaces[APPLICATION].ack_due_at == pytest.approx(net.now + 0.02)
    inject(net.client, net.server, encode(F.PingFrame(), F.ImmediateAckFrame()), net.now)
    assert len(_acks_sent(net)) == 1


def test_stale_sequence_numbers_are_ignored() -> None:
    net, _c, _s = _pair()
    space = net.server._spaces[APPLICATION]
    inject(net.client, net.server, encode(F.AckFrequencyFrame(5, 10, 8000, 2)), net.now)
    assert space.ack_frequency is not None
    assert (space.ack_frequency.sequence, space.ack_frequency.threshold) == (5, 10)
    for seq in (3, 5, 0):  # older and repeated: ignored
        inject(net.client, net.server, encode(F.AckFrequencyFrame(seq, 0, 1000, 1)), net.now)
        assert (space.ack_frequency.sequence, space.ack_frequency.threshold) == (5, 10)
        assert space.ack_frequency.max_delay == pytest.approx(0.008)
    inject(net.client, net.server, encode(F.AckFrequencyFrame(6, 3, 1000, 0)), net.now)
    policy = space.ack_frequency
    assert (policy.sequence, policy.threshold, policy.max_delay, policy.reordering) == (
        6,
        3,
        0.001,
        0,
    )


@pytest.mark.parametrize(
    ("payload", "code", "frame_type", "server_on"),
    [
        (encode(F.AckFrequencyFrame(0, 1, 999, 1)), PV, 0xAF, True),  # below min_ack_delay
        (encode(F.AckFrequencyFrame(0, 1, (1 << 14) * 1000, 1)), PV, 0xAF, True),  # >= 2^14 ms
        (encode(F.AckFrequencyFrame(0, 1, 1000, 1)), FEE, 0xAF, False),  # not advertised
        (encode(F.ImmediateAckFrame()), FEE, 0x1F, False),
    ],
    ids=["delay-too-small", "delay-too-large", "ack-frequency-unknown", "immediate-unknown"],
)
def test_bad_frames_close_the_connection(
    payload: bytes, code: int, frame_type: int, server_on: bool
) -> None:
    net, c, s = _pair(server_on)
    inject(net.client, net.server, payload, net.now)
    s.poll()
    assert s.terminated is not None
    assert (s.terminated.error_code, s.terminated.frame_type) == (code, frame_type)
    assert net.run_until(lambda: c.terminated is not None, c, s, timeout=2)
    assert c.terminated is not None and c.terminated.error_code == code


def test_sender_asks_for_an_eighth_window_and_a_quarter_rtt() -> None:
    from quicish.proto.congestion import create
    from quicish.proto.recovery import LossRecovery

    recovery = LossRecovery(create("cubic", 1200), max_ack_delay=0.025)
    af = AckFrequencySender(0.0005, recovery)
    af.update(12000, 1200, False, 0.1, 3, 0.0)  # 10 packets: every 2nd, RFC 9000's
    assert af.pending is None and af.requested is None
    af.update(120000, 1200, True, 0.1, 3, 0.0)  # slow start: cwnd / 16 packets
    assert af.pending == (6, 0.025, 3)  # 100 / 16; delay min(0.1 / 4, 25 ms)
    af.pending = None
    af.update(240000, 1200, False, 0.02, 3, 0.05)  # within the RTT: no new request
    assert af.pending is None
    af.update(240000, 1200, False, 0.02, 3, 0.2)
    assert af.pending == (16, 0.005, 3)  # 200 / 8 capped at 16; 20 ms / 4
    af.pending = None
    af.update(230000, 1200, False, 0.021, 3, 0.5)  # small moves: nothing
    assert af.pending is None
    af.update(100000, 1200, False, 0.021, 3, 0.6)  # 83 packets: every 10th (a 37% move)
    assert af.pending == (10, 0.00525, 3)
    af.pending = None
    af.update(100000, 1200, False, 0.021, 5, 0.7)  # the packet threshold grew (reordering)
    assert af.pending == (10, 0.00525, 5)
    af.pending = None
    assert af.pending is None
    af.update(6000, 1200, False, 0.0001, 3, 0.8)  # the window collapsed; a tiny RTT
    assert af.pending == (2, 0.001, 3)  # back to every 2nd; at least 1 ms (our timers)


# ---- over real UDP -----------------------------------------------------------------------------
BIG = 3 << 20


@timed(30)
async def test_udp_quicish_pair_negotiates_and_transfers_byte_exact() -> None:
    data = os.urandom(BIG)
    conns: list[quicish.QuicConnection] = []

    async def sink(reader: quicish.QuicStreamReader, writer: quicish.QuicStreamWriter) -> None:
        got = await reader.read()
        writer.write(hashlib.sha256(got).digest())
        writer.write_eof()

    server = await quicish.serve(
        "127.0.0.1", 0, config=server_config(**ON, **WINDOWS), on_stream=sink,
        on_connection=conns.append,
    )  # fmt: skip
    try:
        config = client_config(**ON, **WINDOWS)
        async with quicish.connect("127.0.0.1", server.address[1], config=config) as conn:
            reader, writer = await conn.open_stream()
            writer.write(data)
            writer.write_eof()
            assert await reader.read() == hashlib.sha256(data).digest()
            assert conn._proto._builder.ack_frequency is not None  # the server advertised
            policy = conns[0]._proto._spaces[APPLICATION].ack_frequency
            assert policy is not None and policy.threshold >= 2  # and obeys our request
            # (on loopback a receive round of many datagrams already ends in one ACK, so
            # the ACK count shows little difference here: see the simulated link above)
            assert conns[0].stats().packets_received > BIG // 1452  # (1452: the path MTU)
    finally:
        server.close()
        await server.wait_closed()


@timed(30)
async def test_udp_quicish_client_with_aioquic_server() -> None:
    data = os.urandom(1 << 20)
    async with aioquic_server(max_data=8 << 20, max_stream_data=8 << 20) as server:
        config = client_config(**ON, **WINDOWS)
        async with quicish.connect("127.0.0.1", server.port, config=config) as conn:
            reader, writer = await conn.open_stream()
            writer.write(data)
            writer.write_eof()
            assert await reader.read() == data
            assert conn._proto._builder.ack_frequency is None  # aioquic has no min_ack_delay


@timed(30)
async def test_udp_aioquic_client_with_quicish_server() -> None:
    data = os.urandom(1 << 20)

    async def echo(reader: quicish.QuicStreamReader, writer: quicish.QuicStreamWriter) -> None:
        writer.write(await reader.read())
        writer.write_eof()

    server = await quicish.serve(
        "127.0.0.1", 0, config=server_config(**ON, **WINDOWS), on_stream=echo
    )
    try:
        answer, _client, _ = await aioquic_request(
            server.address[1], data, config_kw={"max_data": 8 << 20, "max_stream_data": 8 << 20}
        )
        assert answer == data
    finally:
        server.close()
        await server.wait_closed()
