"""Packet number decoding (RFC 9000 Appendix A.3): the one Python definition
(quicish.wire.pn), the C decoder of the packet cipher's open (qr_pn_decode in aead.c) and both
paths of PacketProtector.open_packet agree, on the RFC example and around every edge."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from quicish.native import accelerated
from quicish.wire import packet, pn
from quicish.wire.pn import PN_MAX, decode_packet_number
from quicish.wire.protection import CipherSuite, PacketProtector

VECTORS = Path(__file__).resolve().parent / "vectors"
A9000: dict[str, Any] = json.loads((VECTORS / "rfc9000_appendix_a.json").read_text())
EXAMPLES = A9000["pn_decoding"]
PacketCipher: Any = accelerated.PacketCipher
needs_c = pytest.mark.skipif(not PacketCipher.available(), reason="no libcrypto for the C cipher")


def c_decode(largest: int, truncated: int, pn_bits: int) -> int:
    result: int = accelerated.lib.qr_pn_decode(largest, truncated, pn_bits // 8)
    return result


def test_packet_module_re_exports_the_one_definition() -> None:
    assert packet.decode_packet_number is pn.decode_packet_number
    assert packet.encode_packet_number is pn.encode_packet_number


@pytest.mark.parametrize("ex", EXAMPLES, ids=lambda e: str(e["full_pn"]))
def test_rfc_example_in_python_and_c(ex: dict[str, Any]) -> None:
    largest, truncated, bits = ex["largest_received"], ex["truncated"], ex["bits"]
    assert decode_packet_number(truncated, bits, largest) == ex["full_pn"]
    assert c_decode(largest, truncated, bits) == ex["full_pn"]


def _sealed(full_pn: int, pn_len: int) -> tuple[bytes, bytes, PacketProtector]:
    rng = random.Random(full_pn)
    key, iv, hp_key = rng.randbytes(16), rng.randbytes(12), rng.randbytes(16)
    py = PacketProtector(CipherSuite.AES_128_GCM_SHA256, b"", key, iv, hp_key, accelerate=False)
    header = bytes((0x40 | (pn_len - 1),)) + b"\x05" * 8
    header += (full_pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    return header, py.seal_packet(header, b"payload" * 3, full_pn), py


@pytest.mark.parametrize("ex", EXAMPLES, ids=lambda e: str(e["full_pn"]))
def test_rfc_example_through_both_open_paths(ex: dict[str, Any]) -> None:
    header, sealed, py = _sealed(ex["full_pn"], ex["bits"] // 8)
    want = (header, b"payload" * 3, ex["full_pn"])
    assert py.open_packet(sealed, 9, ex["largest_received"]) == want
    if PacketCipher.available():
        c = PacketCipher(py.key, py.iv, py.hp_key)
        assert c.open(sealed, 9, ex["largest_received"]) == want


def _cases() -> list[tuple[int, int, int]]:
    rng = random.Random(18)
    cases = []
    for pn_len in range(1, 5):
        win = 1 << (8 * pn_len)
        edges = [-1, 0, 1, win // 2 - 1, win // 2, win - 1, win, PN_MAX - 1, PN_MAX - win]
        edges += [PN_MAX - win // 2, PN_MAX - 2 * win, PN_MAX, -(PN_MAX)]
        for largest in edges + [rng.randrange(-1, PN_MAX) for _ in range(200)]:
            for truncated in (0, 1, win // 2 - 1, win // 2, win - 1, rng.randrange(win)):
                cases.append((largest, truncated, 8 * pn_len))
    return cases


def test_c_decoder_matches_the_python_definition() -> None:
    """Every largest_pn the C decoder takes ([-2^62, 2^62]); for any other PacketCipher.open
    raises OverflowError and PacketProtector takes its Python path
    (test_native_packet_cipher.test_odd_largest_pn)."""
    for largest, truncated, bits in _cases():
        assert c_decode(largest, truncated, bits) == decode_packet_number(
            truncated, bits, largest
        ), (largest, truncated, bits)


def test_none_means_no_packet_yet() -> None:
    for bits in (8, 16, 24, 32):
        for truncated in (0, 5, (1 << bits) - 1):
            assert decode_packet_number(truncated, bits, None) == decode_packet_number(
                truncated, bits, -1
            )


@needs_c
def test_c_open_declines_beyond_its_decoder_and_the_protector_decides_in_python() -> None:
    """A largest_pn beyond 2^62: the C open raises OverflowError (it calls nothing above
    it), and an accelerated PacketProtector opens the packet on its Python path: same
    decoded number as the Python path (seen through a packet sealed with that number)."""
    largest = PN_MAX + 1000
    full = decode_packet_number(0x1234, 16, largest)
    assert full > PN_MAX
    header, sealed, py = _sealed(full, 2)
    c = PacketCipher(py.key, py.iv, py.hp_key)
    want = (header, b"payload" * 3, full)
    assert py.open_packet(sealed, 9, largest) == want
    with pytest.raises(OverflowError):
        c.open(sealed, 9, largest)
    fast = PacketProtector(py.suite, b"", py.key, py.iv, py.hp_key)
    assert fast.accelerated
    assert fast.open_packet(sealed, 9, largest) == want
