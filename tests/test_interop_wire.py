"""The interop matrix's own passive decoder and bookkeeping (fast, no network)."""

from __future__ import annotations

import json
import socket
import struct
import sys
from pathlib import Path

import pytest

from interop.analysis import Analyzer, _amplification, parse_keylog
from interop.pcap import read_pcap, write_pcap
from interop.procs import run_client
from interop.quicwire import (
    V1,
    V2,
    Keys,
    WireError,
    initial_keys,
    parse_datagram,
    read_varint,
    walk_frames,
)
from interop.tap import Record, TapSession
from interop.tlsview import CLIENT_HELLO, CryptoStream, parse_message

_VECTOR_FILE = Path(__file__).resolve().parent / "vectors" / "rfc9001_appendix_a.json"
VECTORS = json.loads(_VECTOR_FILE.read_text())


def varint(v: int) -> bytes:
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return struct.pack("!H", 0x4000 | v)
    return struct.pack("!I", 0x80000000 | v)


def long_packet(kind_bits: int, dcid: bytes, scid: bytes, body: int, token: bytes = b"") -> bytes:
    head = bytes([0xC0 | (kind_bits << 4)]) + struct.pack("!I", V1)
    head += bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
    if kind_bits == 0:
        head += varint(len(token)) + token
    return head + varint(body) + b"\x55" * body


def test_rfc9001_initial_packets_decrypt() -> None:
    assert VECTORS is not None
    client, server = initial_keys(bytes.fromhex(VECTORS["client_dcid"]), V1)
    for keys, name, largest in (
        (client, "client_initial_packet", -1),
        (server, "server_initial_packet", 0),
    ):
        vec = VECTORS[name]
        pkt = parse_datagram(bytes.fromhex(vec["protected_packet"]), 8)[0]
        assert pkt.kind == "initial"
        _, pn, payload = keys.unprotect(pkt, largest)
        assert pn == vec["packet_number"]
        assert payload == bytes.fromhex(vec["plain_payload"])
    vec = VECTORS["client_initial_packet"]
    crypto = walk_frames(bytes.fromhex(vec["plain_payload"]))[0]
    assert crypto.type == 0x06
    data = crypto.fields["data"]
    assert isinstance(data, bytes)
    hello = parse_message(data[0], data[4:])
    assert hello is not None and hello.msg_type == CLIENT_HELLO
    assert hello.cipher_suites == [0x1301, 0x1302]  # as in RFC 9001 A.2
    assert 0x39 in hello.extensions and hello.transport_parameters


def test_rfc9001_chacha20_short_header_and_tamper() -> None:
    assert VECTORS is not None
    vec = VECTORS["chacha20_short_header"]
    keys = Keys(0x1303, bytes.fromhex(vec["secret"]))
    raw = bytes.fromhex(vec["protected_packet"])
    pkt = parse_datagram(raw, 0)[0]
    _, pn, payload = keys.unprotect(pkt, 654360560)
    assert (pn, payload) == (vec["packet_number"], bytes.fromhex(vec["plain_payload"]))
    bad = parse_datagram(raw[:-1] + bytes([raw[-1] ^ 1]), 0)[0]
    with pytest.raises(WireError):
        keys.unprotect(bad, 654360560)
    nxt = keys.next_generation()
    assert nxt.secret != keys.secret and nxt.mask(b"\x00" * 16) == keys.mask(b"\x00" * 16)


def test_retry_packet_header() -> None:
    assert VECTORS is not None
    vec = VECTORS["retry_packet"]
    pkt = parse_datagram(bytes.fromhex(vec["packet"]), 8)[0]
    assert pkt.kind == "retry" and pkt.token == bytes.fromhex(vec["token"])
    assert pkt.scid == bytes.fromhex(vec["scid"])


def test_v2_long_header_types() -> None:
    raw = bytearray(long_packet(0, b"\x01" * 8, b"\x02" * 8, 30))
    raw[0] = 0xC0 | (1 << 4)  # v2 Initial type bits
    raw[1:5] = struct.pack("!I", V2)
    assert parse_datagram(bytes(raw), 8)[0].kind == "initial"


def test_frame_walker() -> None:
    payload = (
        b"\x03"
        + varint(100)
        + varint(3)
        + varint(1)
        + varint(5)
        + varint(2)
        + varint(1)
        + varint(7)
        + varint(0)
        + varint(1)  # ACK_ECN
        + b"\x0f"
        + varint(4)
        + varint(1000)
        + varint(3)
        + b"abc"  # STREAM off+len+fin
        + b"\x1a"
        + b"12345678"  # PATH_CHALLENGE
        + b"\x12"
        + varint(300)  # MAX_STREAMS bidi
        + b"\x18"
        + varint(2)
        + varint(1)
        + b"\x04"
        + b"cidx"
        + b"t" * 16  # NEW_CONNECTION_ID
        + b"\x00\x00\x00"  # padding
        + b"\x1d"
        + varint(0)
        + varint(2)
        + b"ok"  # application CONNECTION_CLOSE
    )
    frames = walk_frames(payload)
    assert [f.type for f in frames] == [0x03, 0x08, 0x1A, 0x12, 0x18, 0x1D]
    assert frames[0].fields["ect0"] == 7 and frames[0].fields["ce"] == 1
    assert frames[1].fields == {"stream_id": 4, "offset": 1000, "length": 3, "fin": True}
    assert frames[2].fields["data"] == b"12345678"
    assert frames[4].fields["cid"] == b"cidx"
    assert frames[5].fields["code"] == 0 and frames[5].fields["reason"] == b"ok"
    with pytest.raises(WireError):
        walk_frames(b"\x40\x40")  # frame type 0x40: unknown
    with pytest.raises(WireError):
        walk_frames(b"\x06" + varint(0) + varint(50) + b"short")
    assert read_varint(bytes.fromhex("c2197c5eff14e88c"), 0) == (151288809941952652, 8)


def test_crypto_stream_out_of_order() -> None:
    message = bytes([8]) + (6).to_bytes(3, "big") + b"\x00\x04\x00\x2a\x00\x00"
    stream = CryptoStream()
    assert stream.add(5, message[5:]) == []
    assert stream.add(0, message[:5]) == [(8, message[4:])]
    ee = parse_message(8, message[4:])
    assert ee is not None and ee.has_early_data
    assert stream.add(0, message[:3]) == []  # a duplicate changes nothing


def _rec(t: float, to_server: bool, data: bytes) -> Record:
    return Record(t, to_server, 0, data, 0)


def test_amplification_counts_until_validated() -> None:
    dcid, scid = b"\x01" * 8, b"\x02" * 8
    client_initial = long_packet(0, dcid, scid, 1200 - 29)
    server_flight = long_packet(0, scid, dcid, 1100)
    records = [_rec(0.0, True, client_initial)] + [_rec(0.1, False, server_flight)] * 3
    (amp,) = _amplification(records)
    assert amp.violation is None and amp.sent == 3 * len(server_flight)
    (amp,) = _amplification([*records, _rec(0.2, False, server_flight)])
    assert amp.violation is not None and "before validating" in amp.violation
    validated = [*records, _rec(0.2, True, long_packet(2, dcid, scid, 50))]
    (amp,) = _amplification(validated + [_rec(0.3, False, server_flight)] * 5)
    assert amp.validated and amp.violation is None


def test_analyzer_reads_the_client_hello_and_pcap_round_trip(tmp_path: Path) -> None:
    assert VECTORS is not None
    raw = bytes.fromhex(VECTORS["client_initial_packet"]["protected_packet"])
    records = [Record(1.5, True, 0, raw, 2)]
    analyzer = Analyzer({})
    analyzer.feed(records[0])
    (conn,) = analyzer.conns
    assert conn.client_hello is not None and conn.client_hello.cipher_suites[0] == 0x1301
    assert conn.decrypted["initial"] == 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        session = TapSession(
            0, ("127.0.0.1", 1111), ("127.0.0.1", 2222), ("127.0.0.1", 4433), 0.0, sock
        )
    write_pcap(tmp_path / "x.pcap", records, [session])
    (back,) = read_pcap(tmp_path / "x.pcap")
    assert (back.to_server, back.data, back.ecn) == (True, raw, 2)


def test_keylog_parsing() -> None:
    text = "# comment\nCLIENT_TRAFFIC_SECRET_0 aabb 0011\nbad line\nX zz 00\n"
    assert parse_keylog(text) == {b"\xaa\xbb": {"CLIENT_TRAFFIC_SECRET_0": b"\x00\x11"}}


def test_client_run_reads_lines_and_not_implemented(tmp_path: Path) -> None:
    script = (
        "import sys; print('resumed: yes'); "
        "print('fetched 2 file(s), 1000 bytes in 0.5 s: 0.0 Mbit/s'); "
        "print('quicish get: --migrate not implemented yet', file=sys.stderr); sys.exit(2)"
    )
    run = run_client([sys.executable, "-c", script], 20, tmp_path / "log")
    assert run.values["resumed"] == "yes"
    assert (run.fetched_bytes, run.fetched_seconds, run.kbps) == (1000, 0.5, 16.0)
    assert run.unsupported == "quicish get: --migrate not implemented yet"
    slow = run_client([sys.executable, "-c", "import time; time.sleep(30)"], 0.5, tmp_path / "l2")
    assert slow.timed_out and slow.failure() == "client killed after 0 s"


def test_short_header_after_a_coalesced_long_packet_finds_its_connection() -> None:
    analyzer = Analyzer({})
    dcid, scid = b"\x01" * 8, b"\x02" * 8
    analyzer.feed(_rec(0.0, True, long_packet(0, dcid, scid, 1171)))  # creates the connection
    analyzer.feed(_rec(0.1, False, long_packet(0, scid, b"\x03" * 8, 40)))  # server CID 0x03..
    (conn,) = analyzer.conns
    handshake = long_packet(2, b"\x03" * 8, scid, 40)
    short = b"\x40" + b"\x03" * 8 + b"\x00" * 30
    found, length = analyzer._short_conn(_rec(0.2, True, handshake + short), len(handshake))
    assert (found, length) == (conn, 8)
    assert analyzer._short_conn(_rec(0.2, True, b"\x40" + b"\x09" * 8 + b"\x00" * 30), 0)[0] is None


def test_server_exception_is_reported() -> None:
    from interop.harness import _server_exception

    lines = [
        "listening on 127.0.0.1:1",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in f',
        "AttributeError: no attribute '_path_of'",
        "more",
    ]
    assert _server_exception(lines) == "AttributeError: no attribute '_path_of'"
    assert _server_exception(lines[:1]) is None


def test_a_corrupted_first_initial_does_not_hide_the_connection() -> None:
    assert VECTORS is not None
    raw = bytes.fromhex(VECTORS["client_initial_packet"]["protected_packet"])
    broken = bytearray(raw)
    broken[6] ^= 0x01  # first DCID byte: the relay corrupted it
    analyzer = Analyzer({})
    analyzer.feed(Record(0.0, True, 0, bytes(broken), 0))
    analyzer.feed(Record(0.1, True, 0, raw, 0))  # the client's retransmission
    (conn,) = analyzer.conns
    assert conn.client_hello is not None and conn.failures["initial"] == 1
    assert conn.key_dcid == bytes.fromhex(VECTORS["client_dcid"])
