"""Packet protection: RFC 9001 Appendix A (every value), RFC 9369 Appendix A (QUIC v2),
key update, tampering, truncation, round trips, AEAD limits, interop with aioquic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given, settings
from hypothesis import strategies as st
from support import make_header

from quicish.errors import ConfigError, DecryptionError
from quicish.wire import protection
from quicish.wire.protection import (
    AEAD_TAG_SIZE,
    INITIAL_SALT_V1,
    Aead,
    CipherSuite,
    HeaderProtection,
    PacketProtector,
    confidentiality_limit,
    hash_for,
    hkdf_expand_label,
    hkdf_extract,
    initial_secrets,
    integrity_limit,
    retry_integrity_tag,
)

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF

VECTORS_PATH = Path(__file__).resolve().parent / "vectors" / "rfc9001_appendix_a.json"
V: dict[str, Any] = json.loads(VECTORS_PATH.read_text())


def h(s: str) -> bytes:
    return bytes.fromhex(s)


DCID = h(V["client_dcid"])
AES128 = CipherSuite.AES_128_GCM_SHA256
AES256 = CipherSuite.AES_256_GCM_SHA384
CHACHA = CipherSuite.CHACHA20_POLY1305_SHA256
ALL_SUITES = list(CipherSuite)


def long_pn_offset(plain_header: bytes) -> int:
    """pn offset of a plain long header: everything before the trailing packet number."""
    return len(plain_header) - ((plain_header[0] & 0x03) + 1)


# ---------------------------------------------------------------------------------------
# RFC 9001 A.1: keys


def test_initial_salt_and_initial_secret() -> None:
    assert h(V["initial_salt_v1"]) == INITIAL_SALT_V1
    assert hkdf_extract(hashes.SHA256(), INITIAL_SALT_V1, DCID) == h(V["initial_secret"])


def test_client_and_server_initial_secrets() -> None:
    client, server = initial_secrets(DCID)
    assert client == h(V["client_initial"]["secret"])
    assert server == h(V["server_initial"]["secret"])
    assert initial_secrets(DCID, QUIC_V1) == (client, server)


@pytest.mark.parametrize("side", ["client_initial", "server_initial"])
def test_initial_keys_ivs_hp_keys(side: str) -> None:
    vec = V[side]
    prot = PacketProtector.from_secret(AES128, h(vec["secret"]))
    assert prot.secret == h(vec["secret"])
    assert prot.key == h(vec["key"])
    assert prot.iv == h(vec["iv"])
    assert prot.hp_key == h(vec["hp"])
    assert prot.suite is AES128 and prot.version == QUIC_V1


def test_labels_derive_keys_directly() -> None:
    secret = h(V["client_initial"]["secret"])
    sha = hashes.SHA256()
    assert hkdf_expand_label(sha, secret, b"quic key", b"", 16) == h(V["client_initial"]["key"])
    assert hkdf_expand_label(sha, secret, b"quic iv", b"", 12) == h(V["client_initial"]["iv"])
    assert hkdf_expand_label(sha, secret, b"quic hp", b"", 16) == h(V["client_initial"]["hp"])


# ---------------------------------------------------------------------------------------
# RFC 9001 A.2 / A.3: the Initial packets


def client_protector() -> PacketProtector:
    return PacketProtector.from_secret(AES128, initial_secrets(DCID)[0])


def server_protector() -> PacketProtector:
    return PacketProtector.from_secret(AES128, initial_secrets(DCID)[1])


INITIAL_CASES = [
    ("client_initial_packet", client_protector, "d1b1c98dd7689fb8ec11d242b123dc9b", "437b9aec36"),
    ("server_initial_packet", server_protector, "2cd0991cd25b0aac406a5816b6394100", "2ec0d8356a"),
]


@pytest.mark.parametrize(("name", "make", "sample", "mask"), INITIAL_CASES)
def test_initial_packet_seal(name: str, make: Any, sample: str, mask: str) -> None:
    vec = V[name]
    prot: PacketProtector = make()
    header, payload = h(vec["plain_header"]), h(vec["plain_payload"])
    protected = prot.seal_packet(header, payload, vec["packet_number"])
    assert protected.hex() == vec["protected_packet"]
    # the RFC's intermediate values: sample and mask
    pn_offset = long_pn_offset(header)
    assert protected[pn_offset + 4 : pn_offset + 20] == h(sample)
    assert prot.hp.mask(h(sample)) == h(mask)


@pytest.mark.parametrize(("name", "make", "sample", "mask"), INITIAL_CASES)
def test_initial_packet_open(name: str, make: Any, sample: str, mask: str) -> None:
    vec = V[name]
    prot: PacketProtector = make()
    header, payload = h(vec["plain_header"]), h(vec["plain_payload"])
    packet = h(vec["protected_packet"])
    pn_offset = long_pn_offset(header)
    pn = vec["packet_number"]
    for largest in (-1, 0, pn - 1, pn, pn + 100):
        assert prot.open_packet(packet, pn_offset, largest) == (header, payload, pn)
    assert prot.open_packet(memoryview(packet), pn_offset, -1) == (header, payload, pn)
    pn_len = (header[0] & 0x03) + 1
    assert prot.remove_header_protection(packet, pn_offset) == (header, pn, pn_len)
    assert prot.open_payload(header, packet, pn) == payload


def test_open_packet_slice_of_coalesced_datagram() -> None:
    client = V["client_initial_packet"]
    server = V["server_initial_packet"]
    first, second = h(server["protected_packet"]), h(client["protected_packet"])
    datagram = memoryview(first + second + b"\x00" * 7)
    cp, sp = client_protector(), server_protector()
    s_header = h(server["plain_header"])
    got = sp.open_packet(datagram[: len(first)], long_pn_offset(s_header), -1)
    assert got == (s_header, h(server["plain_payload"]), 1)
    c_header = h(client["plain_header"])
    got = cp.open_packet(
        datagram[len(first) : len(first) + len(second)], long_pn_offset(c_header), -1
    )
    assert got == (c_header, h(client["plain_payload"]), 2)


def test_seal_accepts_memoryview_and_bytearray() -> None:
    vec = V["client_initial_packet"]
    prot = client_protector()
    out = prot.seal_packet(
        memoryview(h(vec["plain_header"])), bytearray(h(vec["plain_payload"])), 2
    )
    assert isinstance(out, bytes)
    assert out.hex() == vec["protected_packet"]


# ---------------------------------------------------------------------------------------
# RFC 9001 A.4: Retry


def retry_pseudo_packet(odcid: bytes, retry_packet: bytes) -> bytes:
    return bytes((len(odcid),)) + odcid + retry_packet[:-AEAD_TAG_SIZE]


def test_retry_integrity_tag_v1() -> None:
    vec = V["retry_packet"]
    packet = h(vec["packet"])
    odcid = h(vec["original_dcid"])
    # the packet's own fields are what the JSON says
    assert packet[-16:] == h(vec["integrity_tag"])
    assert h(vec["scid"]) in packet and packet[-21:-16] == h(vec["token"])
    tag = retry_integrity_tag(retry_pseudo_packet(odcid, packet))
    assert tag == h(vec["integrity_tag"])
    assert retry_integrity_tag(retry_pseudo_packet(odcid, packet), QUIC_V1) == tag
    # the key and nonce of RFC 9001 5.8 (as listed in the vector file) produce it
    aead = AESGCM(h(V["retry_integrity_key_v1"]))
    nonce = h(V["retry_integrity_nonce_v1"])
    assert aead.encrypt(nonce, b"", retry_pseudo_packet(odcid, packet)) == tag
    # a different original DCID gives a different tag
    assert retry_integrity_tag(retry_pseudo_packet(b"\x00" * 8, packet)) != tag


# ---------------------------------------------------------------------------------------
# RFC 9001 A.5: ChaCha20-Poly1305 short header

CH = V["chacha20_short_header"]
# RFC 9001 A.5 intermediate values: the header protection sample and mask, and "ku".
CH_SAMPLE = "5e5cd55c41f69080575d7999c25a5bfb"
CH_MASK = "aefefe7d03"
CH_KU_V1 = "1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9"
CHACHA_PROT = PacketProtector.from_secret(CHACHA, h(CH["secret"]))


def test_chacha20_keys() -> None:
    prot = PacketProtector.from_secret(CHACHA, h(CH["secret"]))
    assert prot.key == h(CH["key"])
    assert prot.iv == h(CH["iv"])
    assert prot.hp_key == h(CH["hp"])


def test_chacha20_short_header_seal_and_open() -> None:
    prot = PacketProtector.from_secret(CHACHA, h(CH["secret"]))
    header, payload, pn = h(CH["plain_header"]), h(CH["plain_payload"]), CH["packet_number"]
    protected = prot.seal_packet(header, payload, pn)
    assert protected.hex() == CH["protected_packet"]
    assert protected[5:21] == h(CH_SAMPLE)
    assert prot.hp.mask(h(CH_SAMPLE)) == h(CH_MASK)
    packet = h(CH["protected_packet"])
    for largest in (pn - 1, pn - 1000, pn + 1000):
        assert prot.open_packet(packet, 1, largest) == (header, payload, pn)
    assert prot.remove_header_protection(packet, 1) == (header, pn & 0xFFFFFF, 3)


def test_chacha20_mask_without_reset_nonce_matches() -> None:
    hp = HeaderProtection(CHACHA, h(CH["hp"]))
    assert hp._chacha_mask_slow(h(CH_SAMPLE))[:5] == h(CH_MASK)
    for i in range(20):
        sample = bytes((i * 7 + j) & 0xFF for j in range(16))
        ref = Cipher(algorithms.ChaCha20(h(CH["hp"]), sample), mode=None).encryptor()
        assert hp.mask(sample) == ref.update(bytes(5))
        assert hp._chacha_mask_slow(sample)[:5] == hp.mask(sample)


# ---------------------------------------------------------------------------------------
# RFC 9369 Appendix A: QUIC v2 (same DCID, secrets and payloads as RFC 9001 Appendix A)

V2_INITIAL_SECRET = "2062e8b3cd8d52092614b8071d0aa1fb7c2e3ac193f78b280e72d8f5751f6aba"
V2_CLIENT = (
    "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b",
    "8b1a0bc121284290a29e0971b5cd045d",
    "91f73e2351d8fa91660e909f",
    "45b95e15235d6f45a6b19cbcb0294ba9",
)
V2_SERVER = (
    "0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1",
    "82db637861d55e1d011f19ea71d5d2a7",
    "dd13c276499c0249d3310652",
    "edf6d05c83121201b436e16877593c3a",
)
V2_SERVER_HEADER = "d16b3343cf0008f067a5502a4262b50040750001"
V2_SERVER_PACKET = (
    "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698"
    "baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17"
    "f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
    "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8"
    "4bed8521e2e140"
)
V2_RETRY = "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6"
V2_CHACHA = (
    "3bfcddd72bcf02541d7fa0dd1f5f9eeea817e09a6963a0e6c7df0f9a1bab90f2",
    "a6b5bc6ab7dafce30ffff5dd",
    "d659760d2ba434a226fd37b35c69e2da8211d10c4f12538787d65645d5d1b8e2",
)
V2_CHACHA_KU = "c69374c49e3d2a9466fa689e49d476db5d0dfbc87d32ceeaa6343fd0ae4c7d88"
V2_CHACHA_MASK = "97580e32bf"  # first byte has 0x10 set: short headers mask 5 bits
V2_CHACHA_PACKET = "5558b1c60ae7b6b932bc27d786f4bc2bb20f2162ba"


def test_v2_initial_secrets_and_keys() -> None:
    assert h("0dede3def700a6db819381be6e269dcbf9bd2ed9") == protection.INITIAL_SALT_V2
    assert hkdf_extract(hashes.SHA256(), protection.INITIAL_SALT_V2, DCID) == h(V2_INITIAL_SECRET)
    client, server = initial_secrets(DCID, QUIC_V2)
    for secret, (want_secret, key, iv, hp) in ((client, V2_CLIENT), (server, V2_SERVER)):
        assert secret == h(want_secret)
        prot = PacketProtector.from_secret(AES128, secret, QUIC_V2)
        assert (prot.key, prot.iv, prot.hp_key) == (h(key), h(iv), h(hp))


def test_v2_server_initial_packet() -> None:
    prot = PacketProtector.from_secret(AES128, initial_secrets(DCID, QUIC_V2)[1], QUIC_V2)
    header = h(V2_SERVER_HEADER)
    payload = h(V["server_initial_packet"]["plain_payload"])
    assert prot.seal_packet(header, payload, 1).hex() == V2_SERVER_PACKET
    assert prot.open_packet(h(V2_SERVER_PACKET), long_pn_offset(header), 0) == (
        header,
        payload,
        1,
    )


def test_v2_retry_integrity_tag() -> None:
    packet = h(V2_RETRY)
    tag = retry_integrity_tag(retry_pseudo_packet(DCID, packet), QUIC_V2)
    assert tag == packet[-16:]
    assert tag != retry_integrity_tag(retry_pseudo_packet(DCID, packet), QUIC_V1)


def test_v2_chacha20_short_header() -> None:
    prot = PacketProtector.from_secret(CHACHA, h(CH["secret"]), QUIC_V2)
    assert (prot.key, prot.iv, prot.hp_key) == tuple(h(x) for x in V2_CHACHA)
    header, payload, pn = h(CH["plain_header"]), h(CH["plain_payload"]), CH["packet_number"]
    protected = prot.seal_packet(header, payload, pn)
    assert protected.hex() == V2_CHACHA_PACKET
    assert prot.hp.mask(protected[5:21]) == h(V2_CHACHA_MASK)
    assert prot.open_packet(protected, 1, pn - 1) == (header, payload, pn)
    assert prot.next_generation().secret == h(V2_CHACHA_KU)


def test_unsupported_version_and_suite() -> None:
    with pytest.raises(ConfigError):
        initial_secrets(DCID, 0xFF00001D)
    with pytest.raises(ConfigError):
        retry_integrity_tag(b"\x00", 0x0A0A0A0A)
    with pytest.raises(ConfigError):
        PacketProtector.from_secret(0x1304, bytes(32))
    with pytest.raises(ConfigError):
        PacketProtector.from_secret(AES128, bytes(32), version=2)
    with pytest.raises(ConfigError):
        Aead(AES128, bytes(32), bytes(12))
    with pytest.raises(ConfigError):
        HeaderProtection(CHACHA, bytes(16))


# ---------------------------------------------------------------------------------------
# HKDF and key update (RFC 9001 6.1)


def independent_expand_label(
    algorithm: hashes.HashAlgorithm, secret: bytes, label: bytes, length: int
) -> bytes:
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + b"\x00"
    return HKDFExpand(algorithm=algorithm, length=length, info=info).derive(secret)


@pytest.mark.parametrize("algorithm", [hashes.SHA256(), hashes.SHA384()])
@pytest.mark.parametrize("length", [1, 12, 16, 32, 48, 64, 100])
def test_hkdf_expand_label_matches_cryptography(
    algorithm: hashes.HashAlgorithm, length: int
) -> None:
    secret = bytes(range(algorithm.digest_size))
    got = hkdf_expand_label(algorithm, secret, b"quic ku", b"", length)
    assert got == independent_expand_label(algorithm, secret, b"quic ku", length)
    ctx = b"\x01\x02\x03"
    full = b"tls13 abc"
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((3,)) + ctx
    want = HKDFExpand(algorithm=algorithm, length=length, info=info).derive(secret)
    assert hkdf_expand_label(algorithm, secret, b"abc", ctx, length) == want


def test_hkdf_extract_matches_hmac() -> None:
    mac = hmac.HMAC(b"salt", hashes.SHA384())
    mac.update(b"ikm")
    assert hkdf_extract(hashes.SHA384(), b"salt", b"ikm") == mac.finalize()


def test_hash_for() -> None:
    assert isinstance(hash_for(AES128), hashes.SHA256)
    assert isinstance(hash_for(AES256), hashes.SHA384)
    assert isinstance(hash_for(CHACHA), hashes.SHA256)
    with pytest.raises(ConfigError):
        hash_for(0x1305)


def test_key_update_rfc9001_a5_ku() -> None:
    prot = PacketProtector.from_secret(CHACHA, h(CH["secret"]))
    assert prot.next_generation().secret == h(CH_KU_V1)


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_key_update_derivation(suite: CipherSuite) -> None:
    algorithm = hash_for(suite)
    key_len = 16 if suite == AES128 else 32
    secret = bytes(range(algorithm.digest_size))
    gen0 = PacketProtector.from_secret(suite, secret)
    gen1 = gen0.next_generation()
    want = independent_expand_label(algorithm, secret, b"quic ku", algorithm.digest_size)
    assert gen1.secret == want
    assert gen1.key == independent_expand_label(algorithm, want, b"quic key", key_len)
    assert gen1.iv == independent_expand_label(algorithm, want, b"quic iv", 12)
    # the header protection key is not updated, and its context is shared
    assert gen1.hp_key == gen0.hp_key
    assert gen1.hp is gen0.hp
    assert gen1.key != gen0.key and gen1.iv != gen0.iv
    gen2 = gen1.next_generation()
    assert gen2.secret == independent_expand_label(
        algorithm, want, b"quic ku", algorithm.digest_size
    )
    assert gen2.secret != gen0.secret and gen2.hp_key == gen0.hp_key
    # a packet of generation 1: any generation removes header protection, only gen1 opens
    header = bytes((0x40 | 0x04 | 0x01,)) + b"\xaa" * 8 + (77).to_bytes(2, "big")
    packet = gen1.seal_packet(header, b"payload" * 3, 77)
    plain, truncated, pn_len = gen0.remove_header_protection(packet, 9)
    assert (plain, truncated, pn_len) == (header, 77, 2)
    assert plain[0] & 0x04  # key phase bit visible after unmasking
    with pytest.raises(DecryptionError):
        gen0.open_payload(plain, packet, 77)
    with pytest.raises(DecryptionError):
        gen2.open_packet(packet, 9, 76)
    assert gen1.open_payload(plain, packet, 77) == b"payload" * 3
    assert gen1.open_packet(packet, 9, 76) == (header, b"payload" * 3, 77)


def test_key_update_v2_label() -> None:
    secret = bytes(32)
    gen1 = PacketProtector.from_secret(AES128, secret, QUIC_V2).next_generation()
    assert gen1.secret == independent_expand_label(hashes.SHA256(), secret, b"quicv2 ku", 32)
    assert gen1.key == independent_expand_label(hashes.SHA256(), gen1.secret, b"quicv2 key", 16)
    assert gen1.version == QUIC_V2


# ---------------------------------------------------------------------------------------
# tampering and truncation


def _every_bit_flip_fails(prot: PacketProtector, packet: bytes, pn_offset: int) -> int:
    failures = 0
    for pos in range(len(packet)):
        for bit in (0x01, 0x10, 0x80):
            bad = bytearray(packet)
            bad[pos] ^= bit
            with pytest.raises(DecryptionError):
                prot.open_packet(bytes(bad), pn_offset, 0)
            failures += 1
    return failures


def test_tampering_server_initial() -> None:
    vec = V["server_initial_packet"]
    packet = h(vec["protected_packet"])
    n = _every_bit_flip_fails(server_protector(), packet, long_pn_offset(h(vec["plain_header"])))
    assert n == 3 * len(packet)


def test_tampering_chacha_short_header() -> None:
    prot = PacketProtector.from_secret(CHACHA, h(CH["secret"]))
    packet = h(CH["protected_packet"])
    assert _every_bit_flip_fails(prot, packet, 1) == 3 * len(packet)


@pytest.mark.parametrize("where", ["header", "pn", "ciphertext", "tag"])
@pytest.mark.parametrize("suite", ALL_SUITES)
def test_tampered_regions(suite: CipherSuite, where: str) -> None:
    prot = PacketProtector.from_secret(suite, bytes(range(48)))
    header = bytes((0xC3,)) + QUIC_V1.to_bytes(4, "big") + b"\x04abcd\x00\x00\x40\x30"
    header += (5).to_bytes(4, "big")
    packet = bytearray(prot.seal_packet(header, bytes(40), 5))
    pos = {"header": 7, "pn": len(header) - 1, "ciphertext": len(header) + 3, "tag": -1}[where]
    packet[pos] ^= 0x20
    with pytest.raises(DecryptionError):
        prot.open_packet(bytes(packet), len(header) - 4, 4)


def test_wrong_key_fails() -> None:
    vec = V["client_initial_packet"]
    header = h(vec["plain_header"])
    with pytest.raises(DecryptionError):
        server_protector().open_packet(h(vec["protected_packet"]), long_pn_offset(header), 0)


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_too_short_packets_raise_decryption_error(suite: CipherSuite) -> None:
    prot = PacketProtector.from_secret(suite, bytes(48))
    header = b"\x40" + b"\x11" * 8 + b"\x00"
    packet = prot.seal_packet(header, b"\x01\x02\x03", 0)
    assert len(packet) == 10 + 3 + 16 == 9 + 20  # exactly long enough to sample
    assert prot.open_packet(packet, 9, -1) == (header, b"\x01\x02\x03", 0)
    for cut in range(len(packet)):
        with pytest.raises(DecryptionError):
            prot.open_packet(packet[:cut], 9, -1)
        with pytest.raises(DecryptionError):
            prot.remove_header_protection(memoryview(packet)[:cut], 9)
    for pn_offset in (-5, 0, 10, 100, 10**6):
        with pytest.raises(DecryptionError):
            prot.open_packet(packet, pn_offset, -1)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=80), pn_offset=st.integers(-2, 90), largest=st.integers(-1, 2**40))
def test_random_bytes_only_raise_decryption_error(
    data: bytes, pn_offset: int, largest: int
) -> None:
    for prot in (client_protector(), CHACHA_PROT):
        with pytest.raises(DecryptionError):
            prot.open_packet(data, pn_offset, largest)


def test_seal_rejects_payload_too_short_for_sample() -> None:
    prot = client_protector()
    header = b"\x40" + b"\x11" * 8 + b"\x00"  # 1-byte pn: needs 3 payload bytes
    with pytest.raises(ValueError):
        prot.seal_packet(header, b"\x01\x02", 0)
    with pytest.raises(ValueError):
        prot.hp.mask(b"\x00" * 15)
    # the ECB context was not left holding a partial block
    assert prot.hp.mask(h("d1b1c98dd7689fb8ec11d242b123dc9b")) == h("437b9aec36")


# ---------------------------------------------------------------------------------------
# round trips


@settings(max_examples=300, deadline=None)
@given(
    suite=st.sampled_from(ALL_SUITES),
    version=st.sampled_from([QUIC_V1, QUIC_V2]),
    long=st.booleans(),
    pn_len=st.integers(1, 4),
    pn=st.integers(0, 2**62 - 1),
    payload=st.binary(min_size=3, max_size=1300),
    key_phase=st.booleans(),
    secret=st.binary(min_size=48, max_size=48),
)
def test_round_trip(
    suite: CipherSuite,
    version: int,
    long: bool,
    pn_len: int,
    pn: int,
    payload: bytes,
    key_phase: bool,
    secret: bytes,
) -> None:
    prot = PacketProtector.from_secret(suite, secret[: hash_for(suite).digest_size], version)
    header, pn_offset = make_header(long, pn, pn_len, key_phase=key_phase)
    packet = prot.seal_packet(header, payload, pn)
    assert len(packet) == len(header) + len(payload) + AEAD_TAG_SIZE
    assert packet[len(header) : -AEAD_TAG_SIZE] != payload or len(payload) == 0
    # largest_pn = pn - 1 always decodes back, whatever the pn length
    assert prot.open_packet(packet, pn_offset, pn - 1) == (header, payload, pn)
    assert prot.open_packet(memoryview(packet), pn_offset, pn - 1) == (header, payload, pn)
    plain, truncated, got_len = prot.remove_header_protection(packet, pn_offset)
    assert (plain, got_len) == (header, pn_len)
    assert truncated == pn & ((1 << (8 * pn_len)) - 1)


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_all_suites_round_trip_many_packets(suite: CipherSuite) -> None:
    # reused contexts stay correct across many packets (no state carried over)
    sender = PacketProtector.from_secret(suite, bytes(range(48))[: hash_for(suite).digest_size])
    receiver = PacketProtector.from_secret(suite, sender.secret)
    largest = -1
    for pn in range(300):
        header, pn_offset = make_header(pn % 2 == 0, pn, 1 + pn % 4)
        payload = bytes((pn & 0xFF,)) * (3 + pn * 3)
        packet = sender.seal_packet(header, payload, pn)
        assert receiver.open_packet(packet, pn_offset, largest) == (header, payload, pn)
        largest = pn


def reference_decode_pn(truncated: int, pn_bits: int, largest_pn: int) -> int:
    """RFC 9000 Appendix A.3, written out independently of the module."""
    expected = largest_pn + 1
    win = 1 << pn_bits
    hwin = win // 2
    candidate = (expected & ~(win - 1)) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


PN_VECTORS = json.loads((VECTORS_PATH.parent / "rfc9000_appendix_a.json").read_text())[
    "pn_decoding"
]


def open_with_truncated(pn: int, pn_len: int, largest: int) -> int:
    """Seal a packet carrying ``pn`` truncated to ``pn_len`` bytes; open it."""
    prot = CHACHA_PROT
    header, pn_offset = make_header(False, pn, pn_len)
    packet = prot.seal_packet(header, b"xyz", pn)
    got_header, payload, got_pn = prot.open_packet(packet, pn_offset, largest)
    assert (got_header, payload) == (header, b"xyz")
    return got_pn


@pytest.mark.parametrize("vec", PN_VECTORS)
def test_pn_decoding_rfc9000_a3(vec: dict[str, int]) -> None:
    pn_len = vec["bits"] // 8
    full = vec["full_pn"]
    assert full & ((1 << vec["bits"]) - 1) == vec["truncated"]
    assert open_with_truncated(full, pn_len, vec["largest_received"]) == full


@pytest.mark.parametrize(
    ("pn", "pn_len", "largest"),
    [
        (0x10001, 2, 0xFFFE),  # window moves up
        (0xFFFE, 2, 0x10005),  # reordered: window moves down
        (0xFF, 1, 0x101),  # down, 1 byte
        (2**62 - 256, 1, 2**62 - 2),  # near 2^62: must not go past the maximum
        (0, 1, -1),
        (0, 4, 2**31 - 2),
    ],
)
def test_pn_decoding_edges(pn: int, pn_len: int, largest: int) -> None:
    truncated = pn & ((1 << (8 * pn_len)) - 1)
    assert reference_decode_pn(truncated, 8 * pn_len, largest) == pn
    assert open_with_truncated(pn, pn_len, largest) == pn


@settings(max_examples=300, deadline=None)
@given(
    pn_len=st.integers(1, 4),
    largest=st.integers(-1, 2**62 - 2),
    truncated=st.integers(0, 2**32 - 1),
)
def test_pn_decoding_matches_reference(pn_len: int, largest: int, truncated: int) -> None:
    truncated &= (1 << (8 * pn_len)) - 1
    want = reference_decode_pn(truncated, 8 * pn_len, largest)
    assert open_with_truncated(want, pn_len, largest) == want


def test_aead_seal_open() -> None:
    vec = V["client_initial"]
    aead = Aead(AES128, h(vec["key"]), h(vec["iv"]))
    ct = aead.seal(2, b"hdr", b"hello")
    assert len(ct) == 5 + AEAD_TAG_SIZE
    assert aead.open(2, b"hdr", ct) == b"hello"
    with pytest.raises(DecryptionError):
        aead.open(3, b"hdr", ct)
    with pytest.raises(DecryptionError):
        aead.open(2, b"hdX", ct)
    with pytest.raises(DecryptionError):
        aead.open(2, b"hdr", ct[:10])
    # nonce = iv XOR left-padded pn
    nonce = (int.from_bytes(h(vec["iv"]), "big") ^ 2).to_bytes(12, "big")
    assert AESGCM(h(vec["key"])).encrypt(nonce, b"hello", b"hdr") == ct


# ---------------------------------------------------------------------------------------
# AEAD limits (RFC 9001 6.6)


def test_aead_limits() -> None:
    assert confidentiality_limit(AES128) == 2**23
    assert confidentiality_limit(AES256) == 2**23
    assert confidentiality_limit(CHACHA) == 2**62  # larger than any packet count
    assert integrity_limit(AES128) == 2**52
    assert integrity_limit(AES256) == 2**52
    assert integrity_limit(CHACHA) == 2**36
    with pytest.raises(ConfigError):
        integrity_limit(0x1304)


# ---------------------------------------------------------------------------------------
# interop with aioquic (independent implementation; tests only)


@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
@pytest.mark.parametrize("suite", ALL_SUITES)
def test_interop_with_aioquic(suite: CipherSuite, version: int) -> None:
    aio_crypto = pytest.importorskip("aioquic.quic.crypto")
    from aioquic.tls import CipherSuite as AioSuite

    secret = bytes(range(100, 100 + hash_for(suite).digest_size))
    ours = PacketProtector.from_secret(suite, secret, version)
    theirs = aio_crypto.CryptoContext()
    theirs.setup(cipher_suite=AioSuite(int(suite)), secret=secret, version=version)
    for pn, (long, pn_len) in enumerate([(True, 4), (False, 1), (False, 2), (True, 3)]):
        header, pn_offset = make_header(long, pn + 1000, pn_len)
        payload = bytes(range(pn, pn + 200))
        packet = ours.seal_packet(header, payload, pn + 1000)
        assert packet == theirs.encrypt_packet(header, payload, pn + 1000)
        plain, got_payload, got_pn, _ = theirs.decrypt_packet(packet, pn_offset, pn + 1000)
        assert (plain, got_payload, got_pn) == (header, payload, pn + 1000)
    # key update agrees
    nxt = aio_crypto.next_key_phase(theirs)
    assert ours.next_generation().secret == nxt.secret
