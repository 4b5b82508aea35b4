"""The handshake's CPU savings keep their answers: keyed HMACs and HKDF pad reuse equal the
plain derivations, cached transport parameter encodings follow every change of the values,
reset tokens under a server's shared MAC equal the plain ones, and the C packet cipher's
per-direction contexts made at first use seal and open as before."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicish import kdf, native
from quicish.errors import DecodeError, ErrorCode
from quicish.proto.cid import LocalCids, reset_token
from quicish.proto.records import CryptoRecord, PingRecord, RecordTable
from quicish.proto.server_context import ServerContext
from quicish.tls.certs import generate_self_signed, load_certificate_chain, load_private_key
from quicish.tls.key_schedule import KeySchedule
from quicish.wire import transport_params as tp
from quicish.wire.protection import PacketProtector
from quicish.wire.transport_params import TransportParameters, VersionInformation

names = st.sampled_from(["sha256", "sha384"])


# ---- kdf -----------------------------------------------------------------------------------
@given(names, st.binary(max_size=200), st.lists(st.binary(max_size=100), max_size=4))
def test_hmac_keyed_equals_stdlib_hmac(name: str, key: bytes, msgs: list[bytes]) -> None:
    mac = kdf.hmac_keyed(name, key)
    for msg in msgs:  # (the same keyed function, several messages)
        assert mac(msg) == hmac.digest(key, msg, name)


@given(names, st.binary(min_size=1, max_size=80), st.binary(max_size=60), st.binary(max_size=64))
def test_prk_expand_label_equals_expand_label(
    name: str, secret: bytes, label: bytes, context: bytes
) -> None:
    prk = kdf.Prk(name, secret)
    size = kdf.digest_size(name)
    for length in (1, 12, 16, size):
        want = kdf.expand_label(name, secret, label, context, length)
        assert prk.expand_label(label, context, length) == want
    assert prk.secret is secret


def test_prk_refuses_more_than_one_hash_block() -> None:
    with pytest.raises(ValueError):
        kdf.Prk("sha256", b"s" * 32).expand_label(b"key", b"", 33)


def test_key_schedule_derives_from_the_current_secret_after_each_step() -> None:
    from cryptography.hazmat.primitives import hashes

    ks = KeySchedule(hashes.SHA256())
    th = bytes(range(32))
    early = ks.derive_secret(b"c e traffic", th)
    assert early == kdf.expand_label("sha256", ks.secret, b"c e traffic", th, 32)
    ks.to_handshake(b"\x07" * 32)
    got = [ks.derive_secret(label, th) for label in (b"c hs traffic", b"s hs traffic")]
    assert got == [
        kdf.expand_label("sha256", ks.handshake_secret, label, th, 32)
        for label in (b"c hs traffic", b"s hs traffic")
    ]
    ks.to_master()
    assert ks.derive_secret(b"c ap traffic", th) == kdf.expand_label(
        "sha256", ks.master_secret, b"c ap traffic", th, 32
    )
    ks.secret = b"\x01" * 32  # assigned from outside: the next derivation follows it
    assert ks.derive_secret(b"x", th) == kdf.expand_label("sha256", b"\x01" * 32, b"x", th, 32)
    other = b"\x02" * 32
    assert ks.derive_secret(b"x", th, other) == kdf.expand_label("sha256", other, b"x", th, 32)


# ---- transport parameters ------------------------------------------------------------------
def _params(**changes: object) -> TransportParameters:
    params = TransportParameters(
        initial_source_connection_id=os.urandom(8),
        max_idle_timeout=30_000,
        initial_max_data=1 << 20,
        initial_max_stream_data_bidi_local=1 << 18,
        initial_max_streams_bidi=100,
        max_udp_payload_size=1452,
        active_connection_id_limit=8,
        max_datagram_frame_size=1200,
        version_information=VersionInformation(1, [1, 0x6B3343CF]),
        min_ack_delay=1000,
    )
    for name, value in changes.items():
        setattr(params, name, value)
    return params


def _uncached(params: TransportParameters) -> bytes:
    """The encoding without the cache: CIDs and token, then _encode_rest."""
    head = TransportParameters(
        original_destination_connection_id=params.original_destination_connection_id,
        initial_source_connection_id=params.initial_source_connection_id,
        retry_source_connection_id=params.retry_source_connection_id,
        stateless_reset_token=params.stateless_reset_token,
        max_udp_payload_size=65527,
        unknown={},
    )
    return head.encode() + params._encode_rest()


def test_cached_encoding_is_the_uncached_one_and_decodes_back() -> None:
    tp._REST_CACHE.clear()
    first = _params(stateless_reset_token=b"t" * 16, original_destination_connection_id=b"o" * 8)
    again = _params(stateless_reset_token=b"u" * 16, original_destination_connection_id=b"p" * 8)
    wires = [params.encode() for params in (first, again, first)]
    assert len(tp._REST_CACHE) == 1  # the second and third encodings reused the first's rest
    for params, wire in zip((first, again, first), wires, strict=True):
        assert wire == _uncached(params)
        assert TransportParameters.decode(wire, from_server=True) == params
    assert wires[0] != wires[1]  # (their CIDs and tokens differ)


@pytest.mark.parametrize(
    "change",
    [
        {"max_idle_timeout": 10_000},
        {"initial_max_streams_uni": 3},
        {"disable_active_migration": True},
        {"grease_quic_bit": True},
        {"max_datagram_frame_size": None},
        {"min_ack_delay": None},
        {"version_information": VersionInformation(0x6B3343CF, [0x6B3343CF, 1])},
        {"version_information": None},
    ],
)
def test_a_changed_value_is_never_served_from_the_cache(change: dict[str, object]) -> None:
    base = _params()
    base.encode()  # cached
    changed = _params(**change)
    assert changed.encode() == _uncached(changed) != _uncached(base)


def test_parameters_with_unknown_or_preferred_address_bypass_the_cache() -> None:
    tp._REST_CACHE.clear()
    params = _params(unknown={0x1B: b"grease"})
    wire = params.encode()
    assert tp._REST_CACHE == {}
    assert wire == _uncached(params)
    assert wire.endswith(bytes.fromhex("1b06") + b"grease")


def test_an_out_of_range_value_still_raises_after_a_cached_encoding() -> None:
    _params().encode()
    with pytest.raises(ValueError):
        _params(max_udp_payload_size=1000).encode()


def test_the_cache_stays_bounded() -> None:
    tp._REST_CACHE.clear()
    for timeout in range(tp._REST_CACHE_SIZE * 2):
        _params(max_idle_timeout=timeout + 1).encode()
    assert 0 < len(tp._REST_CACHE) <= tp._REST_CACHE_SIZE


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (bytes.fromhex("0101 050101 05"), "duplicate"),
        (bytes.fromhex("0102 0500"), "length does not match"),  # a 1-byte varint in 2 bytes
        (bytes.fromhex("0a01 15"), "ack_delay_exponent"),
        (bytes.fromhex("0e01 01"), "active_connection_id_limit"),
        (bytes.fromhex("0205") + bytes(5), "server-only"),
        (bytes.fromhex("0105 01"), "truncated"),
    ],
)
def test_decode_errors_unchanged(wire: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        TransportParameters.decode(wire, from_server=False)
    assert info.value.code == ErrorCode.TRANSPORT_PARAMETER_ERROR
    if reason != "truncated":
        assert reason in info.value.reason


# ---- reset tokens --------------------------------------------------------------------------
def test_local_cids_tokens_equal_reset_token_with_a_key_or_a_mac() -> None:
    key = os.urandom(32)
    counter = iter(range(1, 1000))
    fresh = lambda n: next(counter).to_bytes(n, "big")  # noqa: E731
    for source in (key, kdf.hmac_keyed("sha256", key)):
        cids = LocalCids(b"\x00" * 8, source, fresh)
        cids.peer_limit = 4
        issued = cids.top_up()
        assert len(issued) == 3
        for entry in cids.active.values():
            assert entry.token == reset_token(key, entry.cid)
            assert cids.token_of(entry.cid) == entry.token
        assert cids.token_of(b"\xff" * 8) == reset_token(key, b"\xff" * 8)


def test_server_context_reset_mac_follows_the_reset_key(tmp_path: object) -> None:
    cert, key = generate_self_signed(("localhost",))
    ctx = ServerContext(load_certificate_chain(cert), load_private_key(key))
    cid = b"\x05" * 8
    mac = ctx.reset_mac()
    assert ctx.reset_mac() is mac  # made once
    assert mac(cid)[:16] == reset_token(ctx.reset_key, cid)
    ctx.reset_key = b"\x09" * 32  # (as use_secrets does)
    assert ctx.reset_mac()(cid)[:16] == reset_token(b"\x09" * 32, cid)


# ---- records -------------------------------------------------------------------------------
def test_register_all_fills_both_tables_and_refuses_a_second_owner() -> None:
    table = RecordTable()
    seen: list[tuple[str, object]] = []
    table.register_all(
        {
            PingRecord: (lambda r: seen.append(("acked", r)), None),
            CryptoRecord: (None, lambda r: seen.append(("lost", r))),
        }
    )
    crypto = CryptoRecord(0, 0, 10)
    table.on_acked([PingRecord(), crypto])
    table.on_lost([PingRecord(), crypto])
    assert seen == [("acked", PingRecord()), ("lost", crypto)]
    with pytest.raises(ValueError, match="PingRecord"):
        table.register(PingRecord)
    with pytest.raises(ValueError, match="CryptoRecord"):
        table.register_all({CryptoRecord: (None, None)})


# ---- the C packet cipher's contexts --------------------------------------------------------
@pytest.mark.skipif(not native.CRYPTO_ACCELERATED, reason="no C packet cipher")
@pytest.mark.parametrize("suite", [0x1301, 0x1302])
def test_a_key_used_first_to_open_then_to_seal_gives_the_python_paths_bytes(suite: int) -> None:
    secret = bytes(range(48))[: 48 if suite == 0x1302 else 32]
    fast = PacketProtector.from_secret(suite, secret)
    slow = PacketProtector.from_secret(suite, secret, accelerate=False)
    assert fast.accelerated and not slow.accelerated
    header = bytes.fromhex("41") + b"\x11" * 8 + b"\x00\x07"
    sealed = slow.seal_packet(header, b"payload-" * 4, 7)
    # open first (the decrypt context is made), then seal (the encrypt one)
    opened = fast.open_packet(sealed, len(header) - 2, 6)
    assert opened == slow.open_packet(sealed, len(header) - 2, 6)
    assert fast.seal_packet(header, b"payload-" * 4, 7) == sealed
    assert fast.seal_packet(header, b"other---" * 4, 8) == slow.seal_packet(
        header, b"other---" * 4, 8
    )


@pytest.mark.parametrize("version", [0x00000001, 0x6B3343CF])
def test_initial_secrets_under_the_cached_salt_mac_are_rfc_9001s(version: int) -> None:
    from quicish.wire.protection import INITIAL_SALT_V1, INITIAL_SALT_V2, initial_secrets

    salt = INITIAL_SALT_V1 if version == 1 else INITIAL_SALT_V2
    for dcid in (bytes.fromhex("8394c8f03e515708"), os.urandom(20), os.urandom(8)):
        initial = hmac.digest(salt, dcid, "sha256")
        want = tuple(
            kdf.expand_label("sha256", initial, lab, b"", 32)
            for lab in (b"client in", b"server in")
        )
        assert initial_secrets(dcid, version) == want
    if version == 1:  # RFC 9001 A.1
        client, _ = initial_secrets(bytes.fromhex("8394c8f03e515708"), version)
        assert client.hex().startswith("c00cf151ca5be075ed0ebfb5c80323c4")


def test_new_hash_is_the_named_hash() -> None:
    h = kdf.new_hash("sha384", b"abc")
    h.update(b"def")
    assert h.digest() == hashlib.sha384(b"abcdef").digest()
    assert kdf.new_hash("sha256").digest() == hashlib.sha256().digest()
