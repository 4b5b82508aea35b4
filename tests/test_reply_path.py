"""The request/response paths: a reply's packet built without the general builder's walk
(proto/reply_packet.py) and an ACK + STREAM payload decoded without the general decoder's
loop (wire/ack_stream.py). Both are only shortcuts: the packets and the frames are the
same with them and without them."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pairs import make_net

from quicish.errors import DecodeError
from quicish.native import pure_reply
from quicish.proto import lean_receive
from quicish.proto.events import StreamDataAvailable
from quicish.proto.packet_builder import PacketBuilder
from quicish.proto.recovery import LossRecovery
from quicish.proto.reply_packet import ReplyPacket
from quicish.simlink import LinkSpec
from quicish.wire import frames as F
from quicish.wire.ack_stream import decode_ack_stream
from quicish.wire.buffer import Buffer
from quicish.wire.packet import PacketType, encode_short_header
from quicish.wire.protection import CipherSuite, PacketProtector

ROUND_TRIPS = 300


def _echo(
    monkeypatch: Any,
    reply: bool,
    decode: bool | str,
    link: LinkSpec,
    native: bool = True,
    ack_one: bool = True,
) -> tuple[Any, ...]:
    """``ROUND_TRIPS`` 64-byte request/response round trips on one stream over ``link``:
    every packet each side seals (packet number, type, plaintext, ack-eliciting, in flight,
    time), both sides' stats, and how many packets the reply path and the ACK + STREAM
    decoders took. ``reply``/``decode``: those paths on, else forced off; ``decode="py"``:
    the C decoder of ``PacketCipher.open_stream`` forced off, ``wire/ack_stream.py`` on;
    ``native``: a reply's packet of one STREAM frame sealed in one C call
    (``ReplyPacket.sealed``), else forced off. The counts: packets the reply path built,
    payloads the decoders took, packets ``ReplyPacket.sealed`` sealed, ACKs
    ``LossRecovery.ack_one_packet`` took (``ack_one``: else forced off). Last: both sides'
    RTT estimates and congestion windows at the end."""
    with monkeypatch.context() as m:
        counts = {"reply": 0, "decoded": 0, "native": 0, "ack_one": 0}
        one = LossRecovery.ack_one_packet

        def counting_one(self: LossRecovery, *args: Any) -> Any:
            out = one(self, *args)
            counts["ack_one"] += out is not None
            return out

        build, seal, decoder = ReplyPacket.build, PacketBuilder._seal, decode_ack_stream
        opener, sealer = PacketProtector.open_stream_packet, ReplyPacket.sealed
        seal_reply = PacketProtector.seal_reply
        plain: list[bytes] = []  # (the last payload seal_reply sealed)

        def recording_seal_reply(self: PacketProtector, *args: Any) -> bytes:
            plain[:] = [pure_reply.reply_payload(*args[4:])]
            return seal_reply(self, *args)

        def recording_sealer(self: ReplyPacket, b: Any, *args: Any) -> bytes | None:
            if not native:
                return None
            out = sealer(self, b, *args)
            pn, records, now = args[1], args[5], args[6]
            if out and recording:
                counts["native"] += 1
                packet = (pn, PacketType.ONE_RTT, plain[0], True, True, now, tuple(records))
                sealed.setdefault(id(b), []).append(packet)
            return out

        def counting_opener(self: PacketProtector, *args: Any) -> Any:
            out = opener(self, *args)
            if out[4] is not None:  # (the C decoder's ACK + STREAM)
                if decode is not True:
                    return (*out[:3], None, None)  # (as without the C cipher)
                counts["decoded"] += 1
            return out

        def counting_build(self: ReplyPacket, b: Any, now: float) -> bytes | None:
            out = build(self, b, now) if reply else None
            counts["reply"] += out is not None
            return out

        def counting_decoder(payload: Any) -> Any:
            out = decoder(payload) if decode is not False else None
            counts["decoded"] += out is not None
            return out

        sealed: dict[int, list[tuple[Any, ...]]] = {}
        recording = False

        def recording_seal(self: PacketBuilder, space: Any, tx: Any, ptype: int, pn: int,
                           truncated: int, pn_length: int, payload: Any, records: Any,
                           eliciting: bool, in_flight: bool, now: float,
                           *rest: Any) -> bytes:  # fmt: skip
            if recording:  # (not the handshake's packets: they hold random values)
                packet = (pn, ptype, bytes(payload), eliciting, in_flight, now, tuple(records))
                sealed.setdefault(id(self), []).append(packet)
            return seal(self, space, tx, ptype, pn, truncated, pn_length, payload, records,
                        eliciting, in_flight, now, *rest)  # fmt: skip

        m.setattr(ReplyPacket, "build", counting_build)
        m.setattr(PacketBuilder, "_seal", recording_seal)
        m.setattr(lean_receive, "decode_ack_stream", counting_decoder)
        m.setattr(PacketProtector, "open_stream_packet", counting_opener)
        m.setattr(PacketProtector, "seal_reply", recording_seal_reply)
        m.setattr(ReplyPacket, "sealed", recording_sealer)
        m.setattr(LossRecovery, "ack_one_packet", counting_one)
        m.setattr(LossRecovery, "ack_one", ack_one)
        net = make_net(link=link, seed=5)
        client, server = net.client, net.server
        assert net.run(lambda: client.handshake_complete and server.handshake_complete, 5.0)
        net.settle(duration=1.0)  # (the handshake's last packets, tickets and CIDs)
        recording = True
        sid = client.open_stream()
        answers: list[bytes] = []
        state = {"sent": 0, "waiting": False}

        def step() -> bool:
            while (event := server.next_event()) is not None:
                if isinstance(event, StreamDataAvailable):
                    data, _ = server.read_stream(event.stream_id)
                    if data:
                        server.send_stream_data(event.stream_id, data)
            while (event := client.next_event()) is not None:
                if isinstance(event, StreamDataAvailable):
                    data, _ = client.read_stream(event.stream_id)
                    answers.append(data)
            got = sum(map(len, answers))
            if state["waiting"] and got == 64 * state["sent"]:
                state["waiting"] = False
            if not state["waiting"] and state["sent"] < ROUND_TRIPS:
                message = state["sent"].to_bytes(8, "big") * 8
                client.send_stream_data(sid, message)
                state["sent"] += 1
                state["waiting"] = True
            return state["sent"] == ROUND_TRIPS and not state["waiting"]

        assert net.run(step, 120.0)
        expected = b"".join(i.to_bytes(8, "big") * 8 for i in range(ROUND_TRIPS))
        assert b"".join(answers) == expected
        ids = (id(client._builder), id(server._builder))
        return (
            [sealed[i] for i in ids],
            client.stats(),
            server.stats(),
            counts["reply"],
            counts["decoded"],
            counts["native"],
            counts["ack_one"],
            [_recovery_state(c) for c in (client, server)],
        )


@pytest.mark.parametrize(
    "link",
    [LinkSpec(delay=0.005), LinkSpec(delay=0.005, loss=0.05, reorder=0.05)],
    ids=["clean", "lossy"],
)
def test_reply_path_seals_what_the_general_builder_would(monkeypatch: Any, link: LinkSpec) -> None:
    """Round trips with the reply path and without it: the same packets (plaintext bytes,
    numbers, times, records) on both sides, and the same counters."""
    on = _echo(monkeypatch, reply=True, decode=True, link=link)
    off = _echo(monkeypatch, reply=False, decode=True, link=link)
    assert off[3] == 0
    assert on[3] >= ROUND_TRIPS  # (every request and every response, less the first ones)
    assert sum(len(side) for side in on[0]) >= 2 * ROUND_TRIPS
    assert on[:3] == off[:3]


def _recovery_state(conn: Any) -> tuple[Any, ...]:
    recovery = conn._recovery
    rtt = recovery.rtt
    return (
        rtt.latest_rtt, rtt.min_rtt, rtt.smoothed_rtt, rtt.rttvar, recovery.cc.cwnd,
        recovery.bytes_in_flight, recovery.pto_count, recovery.loss_detection_deadline(),
    )  # fmt: skip


@pytest.mark.parametrize(
    "link",
    [LinkSpec(delay=0.005), LinkSpec(delay=0.005, loss=0.05, reorder=0.05)],
    ids=["clean", "lossy"],
)
def test_ack_of_the_one_packet_outstanding_changes_nothing(
    monkeypatch: Any, link: LinkSpec
) -> None:
    """Round trips with recovery's path for an ACK of the one packet outstanding
    (``LossRecovery.ack_one_packet``) and with it forced off: the same packets, counters, RTT
    estimates, windows and loss timers; it takes most ACKs of a clean link (after a loss,
    the general path judges ACKs until the lost packets' record is done with)."""
    on = _echo(monkeypatch, reply=True, decode=True, link=link)
    off = _echo(monkeypatch, reply=True, decode=True, link=link, ack_one=False)
    assert off[6] == 0
    assert on[6] >= (ROUND_TRIPS if link.loss == 0 else 10)
    assert on[:3] == off[:3]
    assert on[7] == off[7]


@pytest.mark.parametrize(
    "link",
    [LinkSpec(delay=0.005), LinkSpec(delay=0.005, loss=0.05, reorder=0.05)],
    ids=["clean", "lossy"],
)
def test_native_reply_seals_what_the_python_path_would(monkeypatch: Any, link: LinkSpec) -> None:
    """Round trips with a reply's packet sealed in one C call (``ReplyPacket.sealed``,
    ``PacketCipher.seal_reply``) and with that forced off: the same packets (plaintext,
    numbers, times, records) both sides, and the same counters; it seals most of them."""
    on = _echo(monkeypatch, reply=True, decode=True, link=link)
    off = _echo(monkeypatch, reply=True, decode=True, link=link, native=False)
    assert off[5] == 0
    assert on[5] >= ROUND_TRIPS
    assert on[:3] == off[:3]


@pytest.mark.parametrize(
    "link",
    [LinkSpec(delay=0.005), LinkSpec(delay=0.005, loss=0.05, reorder=0.05)],
    ids=["clean", "lossy"],
)
def test_ack_stream_decoder_changes_nothing(monkeypatch: Any, link: LinkSpec) -> None:
    """Round trips with the ACK + STREAM decoders (C in ``PacketCipher.open_stream``, else
    Python's) and without them: the same packets and counters; they take most requests
    and responses."""
    on = _echo(monkeypatch, reply=True, decode=True, link=link)
    python = _echo(monkeypatch, reply=True, decode="py", link=link)
    off = _echo(monkeypatch, reply=True, decode=False, link=link)
    assert off[4] == 0
    assert on[4] >= ROUND_TRIPS and python[4] >= ROUND_TRIPS
    assert on[:3] == python[:3] == off[:3]


def _payload(ack: F.AckFrame, stream: F.StreamFrame) -> bytes:
    buf = Buffer()
    F.encode_frame(buf, ack)
    F.encode_frame(buf, stream)
    return bytes(buf.data())


def _frames(payload: bytes) -> list[Any]:
    """``decode_frames``' frames with the STREAM data as bytes (comparable)."""
    frames = F.decode_frames(payload, PacketType.ONE_RTT)
    return [_with_bytes(f) if isinstance(f, F.StreamFrame) else f for f in frames]


def _with_bytes(frame: F.StreamFrame) -> F.StreamFrame:
    return F.StreamFrame(
        frame.stream_id, frame.offset, bytes(frame.data), frame.fin, frame.with_length
    )


def _random_frames(rng: random.Random) -> tuple[F.AckFrame, F.StreamFrame]:
    """An ACK frame (one range or several, ECN counts or none, every varint size) and a
    STREAM frame (every varint size, FIN, with and without a length) to follow it."""
    sizes = (0x3F, 0x3FFF, 0x3FFFFFFF, (1 << 62) - 1)
    largest = rng.randrange(rng.choice(sizes))
    ranges = [(largest - rng.randrange(min(largest, 40) + 1), largest + 1)]
    for _ in range(rng.choice((0, 0, 1, 3))):
        stop = ranges[-1][0] - 2 - rng.randrange(3)
        if stop < 1:
            break
        ranges.append((stop - 1 - rng.randrange(min(stop - 1, 5) + 1), stop))
    ecn = None if rng.random() < 0.5 else tuple(rng.randrange(s) for s in sizes[:3])
    ack = F.AckFrame(ranges, rng.randrange(rng.choice(sizes)), ecn)  # type: ignore[arg-type]
    data = rng.randbytes(rng.choice((0, 1, 64, 300)))
    stream = F.StreamFrame(
        rng.randrange(rng.choice(sizes)), rng.randrange(rng.choice(sizes[:3])), data,
        rng.random() < 0.3, rng.random() < 0.7,
    )  # fmt: skip
    return ack, stream


def test_ack_stream_decoder_decodes_as_decode_frames() -> None:
    """Random ACK + STREAM payloads (one range or several, ECN counts or none, every varint
    size, FIN, with and without a length): the frames decode_frames gives."""
    rng = random.Random(7)
    for _ in range(2000):
        ack, stream = _random_frames(rng)
        payload = _payload(ack, stream)
        pair = decode_ack_stream(payload)
        assert pair is not None
        ack_got, stream_got = pair
        got = [ack_got, _with_bytes(stream_got)]
        assert got == _frames(payload)


def test_ack_stream_decoder_declines_anything_else() -> None:
    """Other payloads, and malformed ones (which decode_frames rejects), are not decoded
    (None): the general decoder then takes them, and says what is wrong."""
    ack = F.AckFrame([(3, 10)], 5, None)
    stream = F.StreamFrame(4, 100, b"x" * 20, False, True)
    good = _payload(ack, stream)
    alone = Buffer()
    F.encode_frame(alone, ack)
    buf = Buffer()
    F.encode_frame(buf, stream)
    F.encode_frame(buf, ack)
    others = [
        bytes(alone.data()),  # an ACK alone (what a bulk sender receives)
        b"",
        b"\x02",
        bytes(buf.data()),  # STREAM first
        good + b"\x01",  # a PING after
        good[:-1],  # truncated STREAM data
        _payload(ack, F.StreamFrame(4, 100, b"x" * 20, False, True))[:4],  # truncated ACK
        _payload(F.AckFrame([(3, 10)], 5, None), F.StreamFrame(0, 0, b"", True, True))[:-1],
        bytes([0x02, 0x05, 0x00, 0x00, 0x06, 0x08, 0x00]),  # first range below zero
        bytes([0x02, 0x05, 0x00, 0x00, 0x00, 0x01]),  # a PING where STREAM would be
    ]
    for payload in others:
        assert decode_ack_stream(payload) is None, payload.hex()
    with pytest.raises(DecodeError):
        F.decode_frames(bytes([0x02, 0x05, 0x00, 0x00, 0x06, 0x08, 0x00]))
    assert decode_ack_stream(good) is not None


def _random_ack_stream(rng: random.Random) -> bytes:
    """An ACK + STREAM payload (as the random cases above), or one of its corruptions:
    truncated, bytes after, another type byte, random bytes in it, an ACK alone."""
    ack, stream = _random_frames(rng)
    payload = _payload(ack, stream)
    kind = rng.randrange(8)
    if kind == 1:
        payload = payload[: rng.randrange(len(payload) + 1)]
    elif kind == 2:
        payload += rng.randbytes(rng.randrange(1, 4))
    elif kind == 3:
        at = rng.randrange(len(payload))
        payload = payload[:at] + bytes((rng.randrange(256),)) + payload[at + 1 :]
    elif kind == 4:
        at = rng.randrange(len(payload))
        payload = payload[:at] + rng.randbytes(rng.randrange(1, 9)) + payload[at + 9 :]
    elif kind == 5:
        buf = Buffer()
        F.encode_frame(buf, ack)
        payload = bytes(buf.data())
    return payload


def _expected(payload: bytes) -> Any:
    """What the Python decoders make of ``payload``: (STREAM fields, ACK fields)."""
    lone = F.decode_lone_stream_frame(payload) if payload[:1] not in (b"\x02", b"\x03") else None
    if lone is not None:
        return (lone.stream_id, lone.offset, bytes(lone.data), lone.fin, lone.with_length), None
    pair = decode_ack_stream(payload)
    if pair is None:
        return None, None
    ack, s = pair
    return (s.stream_id, s.offset, bytes(s.data), s.fin, s.with_length), (
        ack.ranges,
        ack.delay,
        ack.ecn,
    )


def _comparable(lone: Any, ack: Any) -> Any:
    return (None if lone is None else (*lone[:2], bytes(lone[2]), *lone[3:])), ack


def test_native_open_decodes_ack_stream_as_the_python_decoders() -> None:
    """``PacketCipher.open_stream`` (C), its twin ``pure.ack_stream_fields`` and
    ``decode_ack_stream``/``decode_lone_stream_frame`` agree on random ACK + STREAM
    payloads and their corruptions (every varint size, ranges, ECN counts, truncations):
    the same ranges, delay, ECN counts and STREAM fields, or the same refusal."""
    rng = random.Random(11)
    key, iv, hp = rng.randbytes(16), rng.randbytes(12), rng.randbytes(16)
    suite = CipherSuite.AES_128_GCM_SHA256
    py = PacketProtector(suite, b"", key, iv, hp, accelerate=False)
    c = PacketProtector(suite, b"", key, iv, hp)
    decoded = malformed = 0
    for i in range(3000):
        payload = _random_ack_stream(rng)
        try:
            expected = _expected(payload)
        except DecodeError:  # (a malformed lone STREAM frame: both decline it)
            expected = None, None
        assert _comparable(*pure_reply.ack_stream_fields(payload)) == expected, payload.hex()
        decoded += expected[1] is not None
        malformed += expected == (None, None)
        if len(payload) < 4 or not c.accelerated:
            continue
        packet = py.seal_packet(encode_short_header(b"\x07" * 8, i & 0xFF, 1), payload, i)
        opened = c.open_stream_packet(packet, 9, i - 1)
        assert opened[:3] == py.open_packet(packet, 9, i - 1)
        assert _comparable(opened[3], opened[4]) == expected, payload.hex()
        if opened[3] is not None:
            assert isinstance(opened[3][2], memoryview) and opened[3][2].obj is opened[1]
    assert decoded > 1000 and malformed > 500


def test_native_seal_reply_seals_what_the_python_encoders_do() -> None:
    """``PacketCipher.seal_reply`` (C) and its twin ``pure_reply.seal_reply`` give the bytes
    of ``encode_short_header`` + an ACK's bytes + ``push_stream_frame`` sealed by
    ``seal_packet``, for random CIDs, packet numbers, ACKs, stream ids, offsets (every
    varint size), data and FIN; both raise ValueError where the encoders do."""
    rng = random.Random(13)
    key, iv, hp = rng.randbytes(16), rng.randbytes(12), rng.randbytes(16)
    suite = CipherSuite.AES_128_GCM_SHA256
    py = PacketProtector(suite, b"", key, iv, hp, accelerate=False)
    c = PacketProtector(suite, b"", key, iv, hp)
    sizes = (0x3F, 0x3FFF, 0x3FFFFFFF, (1 << 62) - 1)
    for i in range(2000):
        dcid = rng.randbytes(rng.choice((0, 4, 8, 20)))
        pn = rng.randrange(rng.choice(sizes))
        pn_len = rng.randrange(1, 5)
        spin, phase = rng.random() < 0.5, rng.random() < 0.5
        first = 0x40 | (0x20 if spin else 0) | (0x04 if phase else 0)
        ack = b""
        if rng.random() < 0.8:
            buf = Buffer()
            ecn = None if rng.random() < 0.7 else (1, 2, 3)
            F.encode_frame(buf, F.AckFrame([(max(0, pn - 3), pn + 1)], rng.randrange(999), ecn))
            ack = bytes(buf.data())
        sid = rng.randrange(rng.choice(sizes))
        data = rng.randbytes(rng.choice((0, 1, 64, 70, 1100)))
        offset = rng.choice((0, rng.randrange(rng.choice(sizes))))
        offset = min(offset, (1 << 62) - 1 - len(data))
        fin = rng.random() < 0.3
        buf = Buffer()
        buf.push_bytes(ack)
        F.push_stream_frame(buf, sid, offset, data, fin)
        header = encode_short_header(dcid, pn, pn_len, spin, phase)
        expected = py.seal_packet(header, bytes(buf.data()), pn)
        args = (dcid, first, pn, pn_len, ack, sid, offset, data, fin)
        assert py.seal_reply(*args) == expected
        assert pure_reply.reply_payload(ack, sid, offset, data, fin) == bytes(buf.data())
        if c.accelerated:
            assert c.seal_reply(*args) == expected, i
            assert (
                c.seal_reply(dcid, first, pn, pn_len, ack, sid, offset, memoryview(data), fin)
                == expected
            )
    bad = [
        (b"x" * 21, 0x40, 1, 1, b"", 0, 0, b"abcd", False),  # a CID too long
        (b"", 0x40, 1, 5, b"", 0, 0, b"abcd", False),  # pn_len 5
        (b"", 0x40, 1, 1, b"", 0, (1 << 62) - 2, b"abc", False),  # beyond 2^62 - 1
        (b"", 0x40, 1, 1, b"", 1 << 62, 0, b"abc", False),  # a stream id too large
    ]
    for args in bad:
        for protector in (py, c):
            with pytest.raises(ValueError):
                protector.seal_reply(*args)
