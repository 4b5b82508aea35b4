"""Key schedule known answers (RFC 9001 Appendix A, RFC 8448), the transcript hash, and
decoding the real ClientHello and ServerHello of RFC 9001 Appendix A."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from tls_support import server_engine

from quicish.tls import Epoch
from quicish.tls import messages as msg
from quicish.tls.key_schedule import (
    KeySchedule,
    Transcript,
    digest,
    hash_for,
    hkdf_expand_label,
    hkdf_extract,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc9001_appendix_a.json").read_text())


def _crypto_frame_data(payload_hex: str) -> bytes:
    """The data of the CRYPTO frame (type 6, offset 0) at the start of a payload."""
    payload = bytes.fromhex(payload_hex)
    pos = payload.index(0x06)
    assert payload[pos + 1] == 0  # offset 0
    length = int.from_bytes(payload[pos + 2 : pos + 4], "big") & 0x3FFF
    return payload[pos + 4 : pos + 4 + length]


def test_rfc9001_initial_secrets() -> None:
    sha256 = hashes.SHA256()
    initial = hkdf_extract(
        sha256, bytes.fromhex(VECTORS["initial_salt_v1"]), bytes.fromhex(VECTORS["client_dcid"])
    )
    assert initial.hex() == VECTORS["initial_secret"]
    for label, side in ((b"client in", "client_initial"), (b"server in", "server_initial")):
        secret = hkdf_expand_label(sha256, initial, label, b"", 32)
        assert secret.hex() == VECTORS[side]["secret"]
        assert hkdf_expand_label(sha256, secret, b"quic key", b"", 16).hex() == VECTORS[side]["key"]
        assert hkdf_expand_label(sha256, secret, b"quic iv", b"", 12).hex() == VECTORS[side]["iv"]
        assert hkdf_expand_label(sha256, secret, b"quic hp", b"", 16).hex() == VECTORS[side]["hp"]


def test_rfc8448_early_secrets() -> None:
    # section 3: no PSK; section 4: the resumption PSK of the first handshake
    plain = KeySchedule(hashes.SHA256())
    assert plain.secret.hex() == "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"
    psk = bytes.fromhex("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")
    resumed = KeySchedule(hashes.SHA256(), psk)
    assert (
        resumed.secret.hex() == "9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c"
    )


def test_hash_for_suites() -> None:
    assert hash_for(0x1301).name == hash_for(0x1303).name == "sha256"
    assert hash_for(0x1302).name == "sha384"


def test_transcript_buffers_until_selected() -> None:
    t = Transcript()
    t.update(b"hello")
    assert t.digest_with(hashes.SHA256(), b" world") == digest(hashes.SHA256(), b"hello world")
    t.select(hashes.SHA384())
    t.update(b"!")
    assert t.digest() == digest(hashes.SHA384(), b"hello!")
    assert t.digest() == t.digest()  # digest does not consume


def test_transcript_message_hash() -> None:
    t = Transcript()
    t.update(b"client hello 1")
    t.select(hashes.SHA256())
    t.replace_with_message_hash()
    t.update(b"retry")
    inner = digest(hashes.SHA256(), b"client hello 1")
    assert t.digest() == digest(hashes.SHA256(), b"\xfe\x00\x00\x20" + inner + b"retry")


def test_key_schedule_stages_change_secret() -> None:
    ks = KeySchedule(hashes.SHA256())
    early = ks.secret
    ks.to_handshake(bytes(32))
    assert ks.handshake_secret == ks.secret != early
    ks.to_master()
    assert ks.master_secret == ks.secret != ks.handshake_secret
    vd = ks.verify_data(b"k" * 32, bytes(32))
    assert len(vd) == 32 and vd != ks.verify_data(b"j" * 32, bytes(32))


def test_decode_rfc9001_client_hello() -> None:
    data = _crypto_frame_data(VECTORS["client_initial_packet"]["plain_payload"])
    assert data[0] == msg.CLIENT_HELLO
    hello = msg.decode_client_hello(data[4:])
    assert hello.server_name == "example.com"
    assert hello.cipher_suites == [0x1301, 0x1302]
    assert hello.alpn_protocols == [b"alpn"]
    assert hello.supported_versions == [0x0304]
    assert hello.key_shares is not None and [g for g, _ in hello.key_shares] == [0x001D]
    assert hello.transport_parameters is not None and len(hello.transport_parameters) == 50
    assert hello.psk_key_exchange_modes == [1]
    unknown = [t for t, _ in hello.other_extensions]
    assert 0xFF01 in unknown and 0x001C in unknown  # renegotiation_info, record_size_limit
    # a quicish server answers it
    server = server_engine(alpn_protocols=["alpn"])
    server.receive(Epoch.INITIAL, data, 0.0)
    out = server.pop_output()
    assert [e for e, _ in out] == [Epoch.INITIAL, Epoch.HANDSHAKE]
    assert server.server_name == "example.com" and server.alpn == "alpn"


def test_decode_rfc9001_server_hello() -> None:
    data = _crypto_frame_data(VECTORS["server_initial_packet"]["plain_payload"])
    assert data[0] == msg.SERVER_HELLO
    hello = msg.decode_server_hello(data[4:])
    assert not hello.is_retry_request
    assert hello.cipher_suite == 0x1301 and hello.supported_version == 0x0304
    assert hello.key_share is not None and hello.key_share[0] == 0x001D
    again = msg.decode_server_hello(msg.encode_server_hello(hello))
    assert again.key_share == hello.key_share and again.random == hello.random


def test_expand_label_single_block_matches_hkdf_expand() -> None:
    # the one-HMAC path for outputs up to a hash block equals HKDF-Expand (RFC 5869) of the
    # HkdfLabel built here by hand
    from quicish import kdf

    label = b"tls13 c hs traffic"
    for algorithm in (hashes.SHA256(), hashes.SHA384()):
        secret = bytes(range(algorithm.digest_size))
        for context in (b"", b"\x07" * 8, bytes(algorithm.digest_size)):
            for length in (1, 12, 16, 32, algorithm.digest_size, algorithm.digest_size + 1, 100):
                info = (
                    length.to_bytes(2, "big")
                    + bytes((len(label),))
                    + label
                    + bytes((len(context),))
                    + context
                )
                assert hkdf_expand_label(
                    algorithm, secret, b"c hs traffic", context, length
                ) == kdf.hkdf_expand(algorithm.name, secret, info, length)


def test_stocked_key_shares_are_used_once_each() -> None:
    """A handshake stock makes key pairs ahead of need; each KeyShare takes one out of the
    stock (never the same one twice), and a fresh pair is made when the stock is empty."""
    from quicish.proto.handshake_stock import MAX_KEY_PAIRS, HandshakeStock
    from quicish.tls import groups

    stock = HandshakeStock()
    for _ in range(MAX_KEY_PAIRS + 2):
        stock.stock_key_pair(groups.X25519)
    stocked = [pub for _, pub in stock._key_pairs[groups.X25519]]
    assert len(stocked) == MAX_KEY_PAIRS  # bounded
    taken = [groups.KeyShare(groups.X25519, stock).public_bytes for _ in range(len(stocked) + 1)]
    assert sorted(taken[:-1]) == sorted(stocked) and taken[-1] not in stocked
    assert stock.key_pairs(groups.X25519) == 0
    peer = groups.KeyShare(groups.X25519)
    share = groups.KeyShare(groups.X25519)
    assert share.exchange(peer.public_bytes) == peer.exchange(share.public_bytes)
