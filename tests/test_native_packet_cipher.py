"""The C packet cipher (quicish.native.PacketCipher, aead.c over the system libcrypto):
RFC 9001 Appendix A through the C path, byte-for-byte agreement with the Python path of
PacketProtector (random keys, headers, packet numbers and payloads), tampering,
truncation, odd arguments, key update, and which path is used (fresh interpreters)."""

from __future__ import annotations

import functools
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
import support
from fresh_python import run_fresh
from support import make_header

from quicish import native
from quicish.errors import DecryptionError
from quicish.native import accelerated
from quicish.wire import protection
from quicish.wire.protection import CipherSuite, HeaderProtection, PacketProtector, initial_secrets

ROOT = Path(__file__).resolve().parent.parent
VECTORS_PATH = ROOT / "tests" / "vectors" / "rfc9001_appendix_a.json"
V: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
QUIC_V1 = 0x00000001
AES128 = CipherSuite.AES_128_GCM_SHA256
AES256 = CipherSuite.AES_256_GCM_SHA384
CHACHA = CipherSuite.CHACHA20_POLY1305_SHA256

# The type itself, whatever the environment of this run says about using it.
PacketCipher: Any = accelerated.PacketCipher
C_USABLE = PacketCipher.available()
FORCED_PYTHON = any(
    os.environ.get(name, "") not in ("", "0") for name in ("QUICISH_PURE", "QUICISH_PURE_CRYPTO")
)

needs_c = pytest.mark.skipif(
    not C_USABLE, reason=f"no libcrypto for the C packet cipher: {PacketCipher.load_error()}"
)


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def long_pn_offset(plain_header: bytes) -> int:
    return len(plain_header) - ((plain_header[0] & 0x03) + 1)


def pair(suite: int, key: bytes, iv: bytes, hp_key: bytes) -> tuple[PacketProtector, Any]:
    """A PacketProtector held on the Python path, and a PacketCipher of the same keys."""
    py = PacketProtector(suite, b"", key, iv, hp_key, accelerate=False)
    assert not py.accelerated
    return py, PacketCipher(key, iv, hp_key)


# ("ok", result) or ("raise", exception type): the two paths' messages may differ.
outcome = functools.partial(support.outcome, catch=(Exception,), detail=False)


def c_open_outcome(cipher: Any, *args: Any) -> tuple[str, Any]:
    """The C open's outcome in the terms of PacketProtector.open_packet."""
    kind, result = outcome(cipher.open, *args)
    if kind == "ok" and result is None:
        return "raise", DecryptionError
    return kind, result


# ---------------------------------------------------------------------------------------
# which path is used


def test_default_build_uses_the_c_cipher() -> None:
    """Fails when the C cipher silently does not load on this machine."""
    assert C_USABLE, PacketCipher.load_error()
    assert "libcrypto" in PacketCipher.backend()
    if FORCED_PYTHON or "QUICISH_NATIVE_MODULE" in os.environ:
        pytest.skip("this run forces the Python path")
    assert native.CRYPTO_ACCELERATED is True
    assert native.PacketCipher is PacketCipher
    assert native.crypto_backend().startswith("C over libcrypto")
    for suite in (AES128, AES256):
        assert PacketProtector.from_secret(suite, bytes(48)).accelerated
    assert not PacketProtector.from_secret(CHACHA, bytes(32)).accelerated


PROBE = """
import logging
records = []
class Grab(logging.Handler):
    def emit(self, record):
        records.append(record)
logger = logging.getLogger("quicish")
logger.addHandler(Grab())
logger.setLevel(logging.DEBUG)
import quicish.native as native
from quicish.wire.protection import PacketProtector
aes = PacketProtector.from_secret(0x1301, bytes(32))
chacha = PacketProtector.from_secret(0x1303, bytes(32))
packet = aes.seal_packet(b"\\x41" + bytes(8) + b"\\x00\\x07", b"abcdefgh", 7)
assert aes.open_packet(packet, 9, 6)[1] == b"abcdefgh"
print(native.CRYPTO_ACCELERATED, aes.accelerated, chacha.accelerated, len(records))
for r in records:
    print(r.levelname, r.getMessage())
"""


def probe(**env: str) -> list[str]:
    return run_fresh(PROBE, **env)


def test_fresh_interpreter_uses_the_c_cipher() -> None:
    assert probe() == ["True True False 0"]
    assert probe(QUICISH_PURE_CRYPTO="0") == ["True True False 0"]


def test_pure_crypto_env_forces_python_path() -> None:
    assert probe(QUICISH_PURE_CRYPTO="1") == ["False False False 0"]


def test_pure_env_implies_python_crypto() -> None:
    assert probe(QUICISH_PURE="1") == ["False False False 0"]


def test_missing_libcrypto_falls_back_with_one_debug_message() -> None:
    lines = probe(QUICISH_LIBCRYPTO="/nonexistent/libcrypto.so.3")
    assert lines[0] == "False False False 1"
    assert lines[1].startswith("DEBUG quicish C packet cipher not available (cannot dlopen")
    assert "/nonexistent/libcrypto.so.3" in lines[1]


def test_missing_libcrypto_constructor_raises_import_error() -> None:
    code = (
        "from quicish.native.accelerated import PacketCipher as P\n"
        "print(P.available(), P.backend(), repr(P.load_error()))\n"
        "try:\n    P(bytes(16), bytes(12), bytes(16))\n"
        "except ImportError as exc:\n    print('ImportError', exc)\n"
    )
    first, second = run_fresh(code, QUICISH_LIBCRYPTO="/nonexistent/libcrypto.so")
    assert first == "False None 'cannot dlopen /nonexistent/libcrypto.so'"
    assert second.startswith("ImportError PacketCipher: libcrypto is not available")


# ---------------------------------------------------------------------------------------
# RFC 9001 Appendix A (AES-128-GCM Initial keys) through the C path

INITIAL_CASES = [
    ("client_initial", "client_initial_packet"),
    ("server_initial", "server_initial_packet"),
]


@needs_c
@pytest.mark.parametrize(("keys", "packet"), INITIAL_CASES)
def test_rfc9001_initial_packets(keys: str, packet: str) -> None:
    k, vec = V[keys], V[packet]
    cipher = PacketCipher(h(k["key"]), h(k["iv"]), h(k["hp"]))
    header, payload = h(vec["plain_header"]), h(vec["plain_payload"])
    pn = int(vec["packet_number"])
    protected = h(vec["protected_packet"])
    assert cipher.seal(header, payload, pn) == protected
    assert cipher.seal(memoryview(header), bytearray(payload), pn) == protected
    pn_offset = long_pn_offset(header)
    for largest in (-1, 0, pn - 1, pn, pn + 100):
        assert cipher.open(protected, pn_offset, largest) == (header, payload, pn)
    datagram = memoryview(b"\xee" * 5 + protected + b"\x00" * 9)
    got = cipher.open(datagram[5 : 5 + len(protected)], pn_offset, -1)
    assert got == (header, payload, pn)
    assert isinstance(got[0], bytes) and isinstance(got[1], bytes)


@needs_c
def test_rfc9001_initial_packets_through_packet_protector() -> None:
    if FORCED_PYTHON or "QUICISH_NATIVE_MODULE" in os.environ:
        pytest.skip("this run forces the Python path")
    client, server = initial_secrets(h(V["client_dcid"]))
    for secret, name in ((client, "client_initial_packet"), (server, "server_initial_packet")):
        prot = PacketProtector.from_secret(AES128, secret)
        assert prot.accelerated
        vec = V[name]
        header, payload = h(vec["plain_header"]), h(vec["plain_payload"])
        pn = int(vec["packet_number"])
        assert prot.seal_packet(header, payload, pn).hex() == vec["protected_packet"]
        assert prot.open_packet(h(vec["protected_packet"]), long_pn_offset(header), -1) == (
            header,
            payload,
            pn,
        )


@needs_c
def test_rfc9001_mask() -> None:
    k = V["client_initial"]
    cipher = PacketCipher(h(k["key"]), h(k["iv"]), h(k["hp"]))
    assert cipher.mask(h("d1b1c98dd7689fb8ec11d242b123dc9b")) == h("437b9aec36")
    assert cipher.mask(memoryview(h("d1b1c98dd7689fb8ec11d242b123dc9b"))) == h("437b9aec36")
    for bad in (b"", bytes(15), bytes(17)):
        with pytest.raises(ValueError, match="16 bytes"):
            cipher.mask(bad)
    rng = random.Random(5)
    for key_len in (16, 32):
        hp_key = rng.randbytes(key_len)
        c = PacketCipher(bytes(key_len), bytes(12), hp_key)
        ref = HeaderProtection(AES128 if key_len == 16 else AES256, hp_key)
        for _ in range(50):
            sample = rng.randbytes(16)
            assert c.mask(sample) == ref.mask(sample)


# ---------------------------------------------------------------------------------------
# differential: C against the Python path


def random_header(rng: random.Random, long: bool, pn: int, pn_len: int) -> tuple[bytes, int]:
    """A header of random type, reserved bits and CIDs (long: up to 2 stray bytes before
    the Length) ending in ``pn`` truncated to ``pn_len`` bytes, and the packet number offset."""
    if long:
        first = (rng.randrange(4) << 4) | (rng.randrange(4) << 2)
        dcid, scid = rng.randbytes(rng.randrange(21)), rng.randbytes(rng.randrange(21))
        extra = rng.randbytes(rng.randrange(3))
        return make_header(
            True,
            pn,
            pn_len,
            first_bits=first,
            dcid=dcid,
            scid=scid,
            before_length=extra,
            length=b"\x44\xd0",
        )
    first = rng.randrange(8) << 2
    return make_header(False, pn, pn_len, first_bits=first, dcid=rng.randbytes(rng.randrange(21)))


@needs_c
@pytest.mark.parametrize("key_len", [16, 32])
def test_differential_random_packets(key_len: int) -> None:
    rng = random.Random(9001 + key_len)
    suite = AES128 if key_len == 16 else AES256
    for i in range(600):
        if i % 50 == 0:
            py, c = pair(suite, rng.randbytes(key_len), rng.randbytes(12), rng.randbytes(key_len))
        pn_len = 1 + i % 4
        pn = rng.choice([rng.randrange(1 << 62), rng.randrange(1 << (8 * pn_len)), i])
        header, pn_offset = random_header(rng, i % 3 == 0, pn, pn_len)
        payload = rng.randbytes(rng.randint(20, 1400))
        sealed = py.seal_packet(header, payload, pn)
        assert c.seal(header, payload, pn) == sealed
        assert c.seal(bytearray(header), memoryview(payload), pn) == sealed
        want = py.open_packet(sealed, pn_offset, pn - 1)
        assert want == (header, payload, pn)
        assert c.open(sealed, pn_offset, pn - 1) == want
        # as a slice of a datagram, as the receive path passes it
        before = rng.randbytes(rng.randrange(30))
        datagram = memoryview(before + sealed + rng.randbytes(rng.randrange(30)))
        assert c.open(datagram[len(before) : len(before) + len(sealed)], pn_offset, pn - 1) == want
        # other largest_pn values: the same decoded number, or the same failure
        for largest in (-1, 0, pn, pn + rng.randrange(1 << 10), rng.randrange(1 << 62)):
            assert c_open_outcome(c, sealed, pn_offset, largest) == outcome(
                py.open_packet, sealed, pn_offset, largest
            )


@needs_c
@pytest.mark.parametrize("key_len", [16, 32])
def test_differential_tampering(key_len: int) -> None:
    rng = random.Random(77 + key_len)
    suite = AES128 if key_len == 16 else AES256
    key, iv, hp_key = rng.randbytes(key_len), rng.randbytes(12), rng.randbytes(key_len)
    py, c = pair(suite, key, iv, hp_key)
    prot = PacketProtector(suite, b"", key, iv, hp_key)
    for i in range(300):
        pn_len = 1 + i % 4
        pn = rng.randrange(1 << 30)
        header, pn_offset = random_header(rng, i % 2 == 0, pn, pn_len)
        packet = bytearray(py.seal_packet(header, rng.randbytes(rng.randint(20, 300)), pn))
        region = ["header", "pn", "ciphertext", "tag"][i % 4]
        pos = {
            "header": rng.randrange(pn_offset),
            "pn": pn_offset + rng.randrange(pn_len),
            "ciphertext": rng.randrange(len(header), len(packet) - 16),
            "tag": rng.randrange(len(packet) - 16, len(packet)),
        }[region]
        packet[pos] ^= 1 << rng.randrange(8)
        bad = bytes(packet)
        assert c.open(bad, pn_offset, pn - 1) is None, (region, pos)
        assert c.open(memoryview(bad), pn_offset, pn - 1) is None
        with pytest.raises(DecryptionError):
            py.open_packet(bad, pn_offset, pn - 1)
        with pytest.raises(DecryptionError):
            prot.open_packet(bad, pn_offset, pn - 1)
        # a failure leaves the contexts usable
        good = py.seal_packet(header, b"still fine" * 3, pn)
        assert c.open(good, pn_offset, pn - 1) == (header, b"still fine" * 3, pn)


@needs_c
def test_every_bit_flip_of_an_initial_packet_fails() -> None:
    vec, k = V["server_initial_packet"], V["server_initial"]
    cipher = PacketCipher(h(k["key"]), h(k["iv"]), h(k["hp"]))
    packet = h(vec["protected_packet"])
    pn_offset = long_pn_offset(h(vec["plain_header"]))
    for pos in range(len(packet)):
        for bit in range(8):
            bad = bytearray(packet)
            bad[pos] ^= 1 << bit
            assert cipher.open(bytes(bad), pn_offset, 0) is None
    assert cipher.open(packet, pn_offset, 0) is not None


@needs_c
@pytest.mark.parametrize("key_len", [16, 32])
def test_too_short(key_len: int) -> None:
    suite = AES128 if key_len == 16 else AES256
    py, c = pair(suite, bytes(range(key_len)), bytes(12), bytes(key_len))
    prot = PacketProtector(suite, b"", bytes(range(key_len)), bytes(12), bytes(key_len))
    header = b"\x40" + b"\x11" * 8 + b"\x00"
    packet = c.seal(header, b"\x01\x02\x03", 0)
    assert packet == py.seal_packet(header, b"\x01\x02\x03", 0)
    assert len(packet) == 9 + 4 + 16  # exactly long enough to sample
    assert c.open(packet, 9, -1) == (header, b"\x01\x02\x03", 0)
    for cut in range(len(packet)):
        assert c.open(packet[:cut], 9, -1) is None
        assert c.open(memoryview(packet)[:cut], 9, -1) is None
        with pytest.raises(DecryptionError, match="too short"):
            prot.open_packet(packet[:cut], 9, -1)
    for pn_offset in (-(2**70), -5, 0, 10, 100, 10**6, 2**63, 2**70):
        assert c.open(packet, pn_offset, -1) is None
        with pytest.raises(DecryptionError, match="too short"):
            prot.open_packet(packet, pn_offset, -1)
        with pytest.raises(DecryptionError):
            py.open_packet(packet, pn_offset, -1)
    # seal: the payload must cover the sample (pn_length + len(payload) >= 4)
    for pn_len in range(1, 5):
        hdr = bytes((0x40 | (pn_len - 1),)) + b"\x22" * 8 + bytes(pn_len)
        for plen in range(4 - pn_len):
            for fn in (c.seal, py.seal_packet, prot.seal_packet):
                with pytest.raises(ValueError, match="too short"):
                    fn(hdr, bytes(plen), 0)
        assert c.seal(hdr, bytes(4 - pn_len), 0) == py.seal_packet(hdr, bytes(4 - pn_len), 0)


@needs_c
def test_packet_protector_open_raises_authentication_failed() -> None:
    if FORCED_PYTHON or "QUICISH_NATIVE_MODULE" in os.environ:
        pytest.skip("this run forces the Python path")
    prot = PacketProtector.from_secret(AES256, bytes(range(48)))
    assert prot.accelerated
    header = b"\x41" + b"\x33" * 8 + b"\x00\x05"
    packet = bytearray(prot.seal_packet(header, bytes(50), 5))
    packet[-1] ^= 1
    with pytest.raises(DecryptionError, match="authentication failed"):
        prot.open_packet(bytes(packet), 9, 4)


# ---------------------------------------------------------------------------------------
# odd arguments: the same result or the same exception type as the Python path


@needs_c
def test_odd_packet_numbers_and_headers() -> None:
    rng = random.Random(3)
    py, c = pair(AES128, rng.randbytes(16), rng.randbytes(12), rng.randbytes(16))
    header = b"\x43" + b"\x44" * 8 + b"\x00\x00\x00\x07"
    payload = bytes(40)
    for pn in (
        0,
        7,
        2**62 - 1,
        2**63,
        2**64 - 1,
        2**64,
        2**64 + 5,
        2**95 + 3,
        2**96 - 1,
        2**96,
        2**200,
        -1,
        -(2**70),
        True,
    ):
        assert outcome(c.seal, header, payload, pn) == outcome(py.seal_packet, header, payload, pn)
    # a big (but < 2^96) packet number: the nonce uses all 12 bytes
    big = c.seal(header, payload, 2**80 + 9)
    assert big == py.seal_packet(header, payload, 2**80 + 9)
    assert big != c.seal(header, payload, 9)
    for bad in (1.0, "1", None):
        assert outcome(c.seal, header, payload, bad)[0] == "raise"
    # empty header: IndexError, as header[0]
    assert outcome(c.seal, b"", payload, 1) == outcome(py.seal_packet, b"", payload, 1)
    assert outcome(c.seal, b"", payload, 1) == ("raise", IndexError)
    # headers no longer than their packet number (a caller's bug): Python's integer
    # arithmetic overlaps the masks and may overflow; C mirrors it
    for i in range(400):
        pn_len = 1 + i % 4
        hlen = 1 + rng.randrange(pn_len)
        hdr = bytes((rng.randrange(256) & ~0x03 | (pn_len - 1),)) + rng.randbytes(hlen - 1)
        body = rng.randbytes(rng.randint(4, 40))
        assert outcome(c.seal, hdr, body, i) == outcome(py.seal_packet, hdr, body, i)
    # non-buffers
    for args in ((None, payload, 1), (header, None, 1), (header, "text", 1)):
        assert outcome(c.seal, *args)[0] == "raise"
        assert outcome(c.seal, *args)[1] is TypeError


@needs_c
def test_odd_largest_pn() -> None:
    rng = random.Random(4)
    py, c = pair(AES256, rng.randbytes(32), rng.randbytes(12), rng.randbytes(32))
    fast = PacketProtector(py.suite, b"", py.key, py.iv, py.hp_key)
    assert fast.accelerated
    for pn_len in range(1, 5):
        pn = 1 << (8 * pn_len + 3)
        header = bytes((0x40 | (pn_len - 1),)) + b"\x01" * 8
        header += (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
        packet = py.seal_packet(header, bytes(30), pn)
        for largest in (
            -1,
            -2,
            -300,
            -(2**40),
            -(2**62),
            -(2**62) - 1,
            -(2**63),
            -(2**70),
            2**62 - 1,
            2**62,
            2**62 + 1,
            2**63,
            2**70,
            2**100,
            pn - 1,
            pn + 5,
            True,
            False,
        ):
            want = outcome(py.open_packet, packet, 9, largest)
            if type(largest) is int and -(2**62) <= largest <= 2**62:
                assert c_open_outcome(c, packet, 9, largest) == want, largest
            else:  # beyond the C decoder: it declines; the protector decides in Python
                assert c_open_outcome(c, packet, 9, largest) == ("raise", OverflowError)
            assert outcome(fast.open_packet, packet, 9, largest) == want, largest
        for bad in (1.5, "x", None):
            assert c_open_outcome(c, packet, 9, bad)[0] == "raise"
            assert outcome(py.open_packet, packet, 9, bad)[0] == "raise"
        # too short wins over a bad largest_pn, as in Python
        assert c.open(packet[:20], 9, None) is None
    with pytest.raises(TypeError):
        c.open(None, 9, 0)
    with pytest.raises(TypeError):
        c.open(b"\x40" * 40, "9", 0)


@needs_c
def test_pn_decoding_at_the_top_of_the_pn_space() -> None:
    """RFC 9000 A.3 near 2^62, where a candidate must not be moved past the largest pn."""
    rng = random.Random(6)
    py, c = pair(AES128, rng.randbytes(16), rng.randbytes(12), rng.randbytes(16))
    top = 1 << 62
    checked = 0
    for pn_len in range(1, 5):
        win = 1 << (8 * pn_len)
        for pn in (top - 1, top - 2, top - win, top - win - 1, top - win // 2, top - 2 * win + 3):
            header = bytes((0x40 | (pn_len - 1),)) + b"\x02" * 8
            header += (pn & (win - 1)).to_bytes(pn_len, "big")
            packet = py.seal_packet(header, bytes(24), pn)
            for largest in (pn - 1, pn, pn + 1, top - 2, top - 1, top, pn - win // 2, pn - win):
                want = outcome(py.open_packet, packet, 9, largest)
                assert c_open_outcome(c, packet, 9, largest) == want, (pn_len, pn, largest)
                checked += want[0] == "ok"
    assert checked > 50


@needs_c
def test_constructor_checks_lengths() -> None:
    PacketCipher(bytes(16), bytes(12), bytes(16))
    PacketCipher(key=bytearray(32), iv=memoryview(bytes(12)), hp_key=bytes(32))
    for key, iv, hp_key in (
        (bytes(16), bytes(12), bytes(32)),
        (bytes(32), bytes(12), bytes(16)),
        (bytes(24), bytes(12), bytes(24)),
        (bytes(16), bytes(11), bytes(16)),
        (b"", bytes(12), b""),
    ):
        with pytest.raises(ValueError):
            PacketCipher(key, iv, hp_key)
    with pytest.raises(TypeError):
        PacketCipher("k" * 16, bytes(12), bytes(16))
    with pytest.raises(TypeError):
        PacketCipher(bytes(16), bytes(12))


@needs_c
def test_keyword_arguments() -> None:
    c = PacketCipher(bytes(16), bytes(12), bytes(16))
    header = b"\x40" + bytes(8) + b"\x01"
    sealed = c.seal(header=header, payload=bytes(20), pn=1)
    assert sealed == c.seal(header, bytes(20), 1)
    assert c.open(packet=sealed, pn_offset=9, largest_pn=0) == (header, bytes(20), 1)
    with pytest.raises(TypeError):
        c.seal(header, bytes(20))
    with pytest.raises(TypeError):
        c.open(sealed, 9, 0, 1)


# ---------------------------------------------------------------------------------------
# key update and the Python helpers beside the C path


@needs_c
@pytest.mark.parametrize("suite", [AES128, AES256])
def test_key_update_with_c_cipher(suite: CipherSuite) -> None:
    gen0 = PacketProtector.from_secret(suite, bytes(range(48))[: 32 if suite == AES128 else 48])
    gen0._cipher = PacketCipher(gen0.key, gen0.iv, gen0.hp_key)
    gen1 = gen0.next_generation()
    assert gen1.hp is gen0.hp and gen1.hp_key == gen0.hp_key
    assert gen1.key != gen0.key and gen1.iv != gen0.iv
    if not FORCED_PYTHON and "QUICISH_NATIVE_MODULE" not in os.environ:
        assert gen1.accelerated
    gen1._cipher = PacketCipher(gen1.key, gen1.iv, gen1.hp_key)
    gen2 = gen1.next_generation()
    header = bytes((0x40 | 0x04 | 0x01,)) + b"\xaa" * 8 + (77).to_bytes(2, "big")
    packet = gen1.seal_packet(header, b"payload" * 3, 77)
    py1 = PacketProtector(suite, gen1.secret, gen1.key, gen1.iv, gen1.hp_key, accelerate=False)
    assert packet == py1.seal_packet(header, b"payload" * 3, 77)
    # any generation removes header protection (Python helpers, same hp key)
    plain, truncated, pn_len = gen0.remove_header_protection(packet, 9)
    assert (plain, truncated, pn_len) == (header, 77, 2)
    with pytest.raises(DecryptionError):
        gen0.open_payload(plain, packet, 77)
    with pytest.raises(DecryptionError):
        gen0.open_packet(packet, 9, 76)
    with pytest.raises(DecryptionError):
        gen2.open_packet(packet, 9, 76)
    assert gen1.open_payload(plain, packet, 77) == b"payload" * 3
    assert gen1.open_packet(packet, 9, 76) == (header, b"payload" * 3, 77)
    assert gen1.hp.mask(packet[13:29]) == gen1._cipher.mask(packet[13:29])


def test_chacha_stays_on_the_python_path() -> None:
    prot = PacketProtector.from_secret(CHACHA, bytes(32))
    assert not prot.accelerated
    assert protection.PacketProtector.from_secret(CHACHA, bytes(32))._cipher is None


@needs_c
def test_many_packets_one_cipher_both_ways() -> None:
    rng = random.Random(11)
    key, iv, hp_key = rng.randbytes(16), rng.randbytes(12), rng.randbytes(16)
    sender = PacketCipher(key, iv, hp_key)
    receiver = PacketCipher(key, iv, hp_key)
    largest = -1
    for pn in range(2000):
        header = bytes((0x40 | (pn % 4),)) + b"c" * 8
        header += (pn & ((1 << (8 * (pn % 4 + 1))) - 1)).to_bytes(pn % 4 + 1, "big")
        payload = rng.randbytes(3 + pn % 1300)
        packet = sender.seal(header, payload, pn)
        if pn % 7 == 3:
            assert receiver.open(packet[:-1] + bytes((packet[-1] ^ 1,)), 9, largest) is None
        assert receiver.open(packet, 9, largest) == (header, payload, pn)
        largest = pn


@needs_c
def test_python_contexts_are_made_only_when_needed() -> None:
    """With the C cipher, sealing, opening and removing header protection make no
    cryptography context; open_payload (the key-update path) makes them once."""
    prot = PacketProtector.from_secret(AES128, bytes(range(32)))
    header = bytes((0x41,)) + b"\xbb" * 8 + (5).to_bytes(2, "big")
    packet = prot.seal_packet(header, b"data" * 8, 5)
    assert prot.open_packet(packet, 9, 4) == (header, b"data" * 8, 5)
    plain, truncated, pn_len = prot.remove_header_protection(packet, 9)
    assert (plain, truncated, pn_len) == (header, 5, 2)
    assert prot._aead is None and prot._hp is None
    assert prot.open_payload(plain, packet, 5) == b"data" * 8
    aead = prot._aead
    assert aead is not None and prot.aead is aead and prot._hp is not None
