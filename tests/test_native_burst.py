"""The bulk paths in C, against their pure twins and the Python encoders and decoders.

Sending: the burst (native/burst.c through ``PacketCipher.seal_stream_burst``, and
``pure.seal_stream_burst``) gives the same packets, byte for byte, as the lean builder's
one-at-a-time encoding (``encode_short_header``, the STREAM frame sized as
``StreamManager.write_stream_frames`` sizes it, ``PacketProtector.seal_packet``), and stops
where it would (window, pacer, data, count, skipped packet number). Receiving:
``PacketCipher.open_stream`` opens as ``open`` and decodes a lone STREAM frame as
``decode_lone_stream_frame`` (``pure.lone_stream_fields``)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from quicish import native
from quicish.errors import DecodeError, DecryptionError
from quicish.native import accelerated, pure
from quicish.wire.buffer import Buffer
from quicish.wire.frames import (
    decode_lone_stream_frame,
    push_stream_frame,
    stream_frame_overhead,
)
from quicish.wire.packet import encode_short_header
from quicish.wire.pn import encode_packet_number
from quicish.wire.protection import CipherSuite, PacketProtector

PacketCipher: Any = accelerated.PacketCipher
needs_c = pytest.mark.skipif(not PacketCipher.available(), reason="no libcrypto for C")
# PacketProtector takes the C cipher (not under QUICISH_PURE=1 / QUICISH_PURE_CRYPTO=1)
protector_c = pytest.mark.skipif(not native.CRYPTO_ACCELERATED, reason="C cipher not in use")
AES128 = CipherSuite.AES_128_GCM_SHA256
AES256 = CipherSuite.AES_256_GCM_SHA384


def keys(suite: int, seed: int) -> tuple[bytes, bytes, bytes]:
    rng = random.Random(seed)
    n = 16 if suite == AES128 else 32
    return rng.randbytes(n), rng.randbytes(12), rng.randbytes(n)


def reference(
    seal: Any,
    dcid: bytes,
    first: int,
    pn: int,
    largest_acked: int | None,
    skip_pn: int,
    datagram_size: int,
    stream_id: int,
    offset: int,
    data: bytes,
    final_size: int | None,
    in_flight: int,
    cwnd: float,
    pacer: tuple[float, float, float, float] | None,
    now: float,
    max_count: int,
) -> tuple[list[bytes], list[int], float]:
    """Packet after packet as PacketBuilder.build_stream_datagram (with the pacer's and
    the window's checks, and only full packets of data) builds them."""
    packets: list[bytes] = []
    lengths: list[int] = []
    tokens, need, capacity, rate = pacer or (0.0, 0.0, 0.0, 0.0)
    end = offset + len(data)
    pos = 0
    while len(packets) < max_count and in_flight < cwnd and pn != skip_pn:
        if pacer is not None:
            missing = need - tokens
            if missing > 0.5 and now + missing / rate > now:
                break
        try:
            truncated, pn_length = encode_packet_number(pn, largest_acked)
        except ValueError:  # (the lean builder raises: a burst leaves that packet to it)
            break
        room = datagram_size - (1 + len(dcid) + pn_length) - 16
        max_len = room - stream_frame_overhead(stream_id, offset, room)
        if max_len < 1 or offset + max_len > end:
            break
        buf = Buffer()
        fin = offset + max_len == final_size
        push_stream_frame(buf, stream_id, offset, data[pos : pos + max_len], fin)
        header = encode_short_header(
            dcid, truncated, pn_length, bool(first & 0x20), bool(first & 0x04)
        )
        packet = seal(header, buf.take(), pn)
        packets.append(packet)
        lengths.append(max_len)
        in_flight += len(packet)
        if pacer is not None:
            tokens = max(tokens - len(packet), -capacity)
        pos += max_len
        offset += max_len
        pn += 1
    return packets, lengths, tokens


def random_case(rng: random.Random) -> tuple[Any, ...]:
    """Arguments of one burst: CIDs of 0-20 bytes, packet numbers and offsets across the
    varint and pn-length boundaries, datagram sizes from 1200 to jumbo, limits that end
    the burst anywhere."""
    dcid = rng.randbytes(rng.choice((0, 4, 8, 20)))
    first = 0x40 | rng.choice((0, 0x20)) | rng.choice((0, 0x04))
    pn = rng.choice((0, 1, 60, 250, 255, 256, 0x7FFF, 70_000, 1 << 30, (1 << 40) + 3))
    gap = rng.choice((1, 2, 100, 127, 128, 200, 40_000, 1 << 23, 1 << 31))
    largest: int | None = pn - gap if pn - gap >= 0 else None
    skip_pn = rng.choice((-1, pn + rng.randrange(0, 40)))
    size = rng.choice((1200, 1252, 1350, 1452, 1500, 9000))
    sid = rng.choice((0, 3, 63, 64, 1000, 16383, 16384, 1 << 30))
    offset = rng.choice((0, 1, 0x3FFF - 500, 0x4000, 0x3FFFFFFF - 3000, 1 << 31, 1 << 50))
    data = rng.randbytes(rng.choice((0, 500, 1200, 5000, 40_000)))
    final_size = rng.choice((None, offset + len(data), offset + len(data) + 1))
    if final_size is not None and rng.random() < 0.3:
        data = data[: rng.randrange(0, len(data) + 1)]  # a burst that ends short of the FIN
    in_flight = rng.randrange(0, 50_000)
    cwnd = rng.choice((float(in_flight), in_flight + 1.5, in_flight + 20_000.0, 1e12))
    pacer = None
    if rng.random() < 0.5:
        capacity = float(rng.choice((12_000, 14_520, 90_000)))
        pacer = (rng.uniform(-capacity, capacity), min(float(size), capacity), capacity, 1e7)
    max_count = rng.choice((0, 1, 5, 64))
    return (dcid, first, pn, largest, skip_pn, size, sid, offset, data, final_size,
            in_flight, cwnd, pacer, 1000.0, max_count)  # fmt: skip


@needs_c
@pytest.mark.parametrize("suite", [AES128, AES256])
def test_c_twin_and_lean_builder_encoding_agree(suite: int) -> None:
    key, iv, hp = keys(suite, suite)
    py = PacketProtector(suite, b"", key, iv, hp, accelerate=False)
    cipher = PacketCipher(key, iv, hp)
    rng = random.Random(suite)
    built = 0
    for _ in range(3000):
        args = random_case(rng)
        expected = reference(py.seal_packet, *args)
        assert pure.seal_stream_burst(py.seal_packet, *args) == expected, args
        got = cipher.seal_stream_burst(*args)
        assert got == expected, args
        built += len(got[0])
    assert built > 1200  # (the cases are not all empty bursts)


@protector_c
def test_protector_takes_c_when_accelerated() -> None:
    key, iv, hp = keys(AES128, 1)
    c = PacketProtector(AES128, b"", key, iv, hp)
    py = PacketProtector(AES128, b"", key, iv, hp, accelerate=False)
    assert c.accelerated and not py.accelerated
    args = (b"\x01" * 8, 0x40, 5, 2, -1, 1200, 0, 0x4000, bytes(10_000), None, 0, 1e9,
            None, 0.0, 64)  # fmt: skip
    packets, lengths, _ = c.seal_stream_burst(*args)
    assert len(packets) == 8 and all(len(p) == 1200 for p in packets)
    assert sum(lengths) == 8 * (1200 - (1 + 8 + 1) - 16 - 8)
    assert (packets, lengths) == py.seal_stream_burst(*args)[:2]


@needs_c
@pytest.mark.parametrize("impl", ["c", "pure"])
def test_where_a_burst_stops(impl: str) -> None:
    key, iv, hp = keys(AES128, 2)
    py = PacketProtector(AES128, b"", key, iv, hp, accelerate=False)
    cipher = PacketCipher(key, iv, hp)

    def burst(**kw: Any) -> tuple[list[bytes], list[int], float]:
        args: dict[str, Any] = dict(
            dcid=b"\xaa" * 8, first=0x40, pn=10, largest_acked=9, skip_pn=-1,
            datagram_size=1200, stream_id=0, offset=0x4000, data=bytes(100_000),
            final_size=None, in_flight=0, cwnd=1e9, pacer=None, now=5.0, max_count=64,
        )  # fmt: skip
        args.update(kw)
        if impl == "c":
            return cipher.seal_stream_burst(*args.values())  # type: ignore[no-any-return]
        return pure.seal_stream_burst(py.seal_packet, *args.values())

    full = 1200 - (1 + 8 + 1) - 16 - 8  # data bytes of a full packet (1-byte pn)
    assert len(burst()[0]) == 64
    assert len(burst(max_count=3)[0]) == 3
    assert len(burst(skip_pn=13)[0]) == 3  # pn 10, 11, 12: the burst ends before 13
    assert len(burst(cwnd=1200.0 * 5)[0]) == 5  # sent while in flight < cwnd
    assert len(burst(cwnd=1200.0 * 5 + 1)[0]) == 6
    assert len(burst(data=bytes(full * 4 + full - 1))[0]) == 4  # no short packet
    packets, lengths, _ = burst(data=bytes(full * 4), final_size=0x4000 + full * 4)
    assert len(packets) == 4 and lengths == [full] * 4
    # the FIN bit is in the last frame only: packets are identical up to it
    assert burst(data=bytes(full * 4))[0][:3] == packets[:3]
    assert burst(data=bytes(full * 4))[0][3] != packets[3]
    # the pacer: 3,500 tokens for packets needing 1,200: 2 go, the tokens left are returned
    packets, _, tokens = burst(pacer=(3500.0, 1200.0, 12_000.0, 1e6))
    assert len(packets) == 2 and tokens == 3500.0 - 2 * 1200
    assert len(burst(pacer=(3599.5, 1200.0, 12_000.0, 1e6))[0]) == 3  # within half a byte
    assert len(burst(pacer=(1199.4, 1200.0, 12_000.0, 1e6))[0]) == 0
    assert burst(pacer=(-5000.0, 1200.0, 2000.0, 1e6))[2] == -5000.0  # (nothing sent)
    assert burst(pacer=(2000.0, 1200.0, 2000.0, 1e6))[2] == 800.0
    assert burst(pacer=(500.0, 500.0, 500.0, 1e6))[2] == -500.0  # owed: one burst at most
    assert burst(largest_acked=None, pn=0, offset=0)[1][0] == 1200 - (1 + 8 + 1) - 16 - 4


# ---- the receive side: a packet opened with its lone STREAM frame decoded --------------------


def stream_payloads(rng: random.Random) -> bytes:
    """STREAM frames alone, with trailing bytes, truncated, at the varint limits, other
    frame types and junk: everything decode_lone_stream_frame answers for."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 40))
    buf = Buffer()
    sid = rng.choice((0, 5, 63, 64, 16383, 16384, (1 << 62) - 1))
    offset = rng.choice((0, 1, 0x3FFF, 0x4000, 0x3FFFFFFF, 1 << 40, (1 << 62) - 10))
    data = rng.randbytes(rng.choice((0, 1, 20, 1200)))
    if offset + len(data) >= 1 << 62:
        offset = (1 << 62) - 1 - len(data)
    push_stream_frame(buf, sid, offset, data, rng.random() < 0.3, rng.random() < 0.8)
    payload = bytes(buf.take())
    if kind == 2:
        payload += rng.randbytes(rng.randrange(1, 5))  # more after the frame: not lone
    elif kind == 3:
        payload = payload[: rng.randrange(0, len(payload) + 1)]  # truncated
    elif kind == 4:
        payload = bytes((rng.randrange(256),)) + payload[1:]  # another type byte
    elif kind == 5 and payload[0] & 0x04:
        payload = payload[:1] + rng.randbytes(9) + payload[10:]  # a random offset varint
    return payload


def reference_fields(payload: bytes) -> Any:
    try:
        frame = decode_lone_stream_frame(payload)
    except DecodeError:
        return None  # (the general path raises it again)
    if frame is None:
        return None
    return (frame.stream_id, frame.offset, bytes(frame.data), frame.fin, frame.with_length)


def as_comparable(fields: Any) -> Any:
    return None if fields is None else (*fields[:2], bytes(fields[2]), *fields[3:])


@protector_c
def test_open_stream_decodes_as_the_frame_decoder() -> None:
    """C (``PacketCipher.open_stream``), the twin (``pure.lone_stream_fields``) and
    ``decode_lone_stream_frame`` agree on every payload, malformed ones included; the
    packet itself opens exactly as ``open`` opens it."""
    key, iv, hp = keys(AES128, 7)
    py = PacketProtector(AES128, b"", key, iv, hp, accelerate=False)
    c = PacketProtector(AES128, b"", key, iv, hp)
    rng = random.Random(7)
    lone = 0
    for i in range(4000):
        payload = stream_payloads(rng)
        expected = reference_fields(payload)
        assert as_comparable(pure.lone_stream_fields(payload)) == expected, payload
        lone += expected is not None
        if len(payload) < 4:
            continue
        packet = py.seal_packet(encode_short_header(b"\x07" * 8, i & 0xFF, 1), payload, i)
        opened = c.open_stream_packet(packet, 9, i - 1)
        assert opened[:3] == py.open_packet(packet, 9, i - 1) == (opened[0], payload, i)
        assert as_comparable(opened[3]) == expected, payload
        assert py.open_stream_packet(packet, 9, i - 1) == (*opened[:3], None, None)  # (not decoded)
        if opened[3] is not None:
            assert isinstance(opened[3][2], memoryview) and opened[3][2].obj is opened[1]
    assert lone > 1000
    packet = py.seal_packet(encode_short_header(b"\x07" * 8, 1, 1), bytes(30), 1)
    for protector in (c, py):
        with pytest.raises(DecryptionError):
            protector.open_stream_packet(packet[:-1] + b"\x00", 9, 0)
        with pytest.raises(DecryptionError):
            protector.open_stream_packet(packet[:20], 9, 0)  # too short to sample
