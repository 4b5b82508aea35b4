"""Bad input ends the handshake with the right alert (CryptoError, QUIC code 0x100 + alert):
bad Finished, bad signature, no ALPN overlap, missing extensions, unknown suites and
groups, wrong order, KeyUpdate, truncation; GREASE and unknown extensions are tolerated."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tls_support import ALPN, aioquic_client, client_engine, pump, server_engine

from quicish.errors import ErrorCode, ProtocolError
from quicish.tls import Epoch, TlsEngine
from quicish.tls import messages as msg
from quicish.tls.alerts import Alert

Tamper = Callable[[bool, Epoch, bytes], bytes]


def split(flight: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(flight):
        length = int.from_bytes(flight[pos + 1 : pos + 4], "big")
        out.append((flight[pos], flight[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return out


def join(messages: list[tuple[int, bytes]]) -> bytes:
    return b"".join(msg.frame(t, body) for t, body in messages)


def rewrite(
    to_server: bool, epoch: Epoch, msg_type: int, change: Callable[[bytes], bytes]
) -> Tamper:
    """A tamper function rewriting the body of one message type in one direction."""

    def tamper(direction: bool, e: Epoch, data: bytes) -> bytes:
        if direction != to_server or e != epoch:
            return data
        return join([(t, change(b) if t == msg_type else b) for t, b in split(data)])

    return tamper


def fails(client: TlsEngine, server: TlsEngine, tamper: Tamper | None = None) -> ProtocolError:
    client.start(0.0)
    server.start(0.0)
    with pytest.raises(ProtocolError) as info:
        pump(client, server, tamper=tamper)
    return info.value


def flip(index: int) -> Callable[[bytes], bytes]:
    def change(body: bytes) -> bytes:
        i = index % len(body)
        return body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]

    return change


def alert_of(exc: ProtocolError) -> int:
    assert exc.code >= 0x100, exc
    return exc.code - 0x100


# ---- Finished and CertificateVerify --------------------------------------------------------------
def test_bad_server_finished() -> None:
    exc = fails(
        client_engine(), server_engine(), rewrite(False, Epoch.HANDSHAKE, msg.FINISHED, flip(-1))
    )
    assert alert_of(exc) == Alert.DECRYPT_ERROR


def test_bad_client_finished() -> None:
    client, server = client_engine(), server_engine()
    exc = fails(client, server, rewrite(True, Epoch.HANDSHAKE, msg.FINISHED, flip(0)))
    assert alert_of(exc) == Alert.DECRYPT_ERROR
    assert client.handshake_complete and not server.handshake_complete


def test_finished_wrong_length() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        rewrite(False, Epoch.HANDSHAKE, msg.FINISHED, lambda b: b + b"\x00"),
    )
    assert alert_of(exc) == Alert.DECODE_ERROR


@pytest.mark.parametrize("key_type", ["ec", "rsa", "ed25519"])
def test_bad_signature(key_type: str) -> None:
    def corrupt(body: bytes) -> bytes:
        cv = msg.decode_certificate_verify(body)
        sig = bytearray(cv.signature)
        sig[len(sig) // 2] ^= 0x40
        return msg.encode_certificate_verify(msg.CertificateVerify(cv.scheme, bytes(sig)))

    exc = fails(
        client_engine(),
        server_engine(key_type),
        rewrite(False, Epoch.HANDSHAKE, msg.CERTIFICATE_VERIFY, corrupt),
    )
    assert alert_of(exc) == Alert.DECRYPT_ERROR


def test_signature_scheme_not_matching_key() -> None:
    def rescheme(body: bytes) -> bytes:
        cv = msg.decode_certificate_verify(body)
        return msg.encode_certificate_verify(msg.CertificateVerify(0x0804, cv.signature))

    exc = fails(
        client_engine(),
        server_engine("ec"),
        rewrite(False, Epoch.HANDSHAKE, msg.CERTIFICATE_VERIFY, rescheme),
    )
    assert alert_of(exc) == Alert.ILLEGAL_PARAMETER


def test_unoffered_signature_scheme() -> None:
    def rescheme(body: bytes) -> bytes:
        cv = msg.decode_certificate_verify(body)
        return msg.encode_certificate_verify(msg.CertificateVerify(0x0401, cv.signature))

    exc = fails(
        client_engine(),
        server_engine("ec"),
        rewrite(False, Epoch.HANDSHAKE, msg.CERTIFICATE_VERIFY, rescheme),
    )
    assert alert_of(exc) == Alert.ILLEGAL_PARAMETER


def test_empty_certificate_message() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        rewrite(
            False,
            Epoch.HANDSHAKE,
            msg.CERTIFICATE,
            lambda b: msg.encode_certificate(msg.Certificate([])),
        ),
    )
    assert alert_of(exc) == Alert.DECODE_ERROR


def test_garbage_certificate() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        rewrite(
            False,
            Epoch.HANDSHAKE,
            msg.CERTIFICATE,
            lambda b: msg.encode_certificate(msg.Certificate([b"\x30\x03junk"])),
        ),
    )
    assert alert_of(exc) == Alert.BAD_CERTIFICATE


# ---- negotiation failures ------------------------------------------------------------------------
def test_no_alpn_overlap() -> None:
    exc = fails(client_engine(alpn_protocols=["h3"]), server_engine())
    assert alert_of(exc) == 120
    assert exc.code == 0x178


def test_no_alpn_overlap_with_aioquic_client() -> None:
    client = aioquic_client()
    client.ctx._alpn_protocols = ["h3"]
    server = server_engine()
    client.start()
    with pytest.raises(ProtocolError) as info:
        pump(client, server)
    assert alert_of(info.value) == Alert.NO_APPLICATION_PROTOCOL


def _edit_hello(change: Callable[[msg.ClientHello], None]) -> Tamper:
    def edit(body: bytes) -> bytes:
        hello = msg.decode_client_hello(body)
        change(hello)
        return msg.encode_client_hello(hello)

    return rewrite(True, Epoch.INITIAL, msg.CLIENT_HELLO, edit)


def _edit_ee(change: Callable[[msg.EncryptedExtensions], None]) -> Tamper:
    def edit(body: bytes) -> bytes:
        ee = msg.decode_encrypted_extensions(body)
        change(ee)
        return msg.encode_encrypted_extensions(ee)

    return rewrite(False, Epoch.HANDSHAKE, msg.ENCRYPTED_EXTENSIONS, edit)


def _edit_sh(change: Callable[[msg.ServerHello], None]) -> Tamper:
    def edit(body: bytes) -> bytes:
        hello = msg.decode_server_hello(body)
        change(hello)
        return msg.encode_server_hello(hello)

    return rewrite(False, Epoch.INITIAL, msg.SERVER_HELLO, edit)


def test_client_without_alpn() -> None:
    exc = fails(
        client_engine(), server_engine(), _edit_hello(lambda h: setattr(h, "alpn_protocols", None))
    )
    assert alert_of(exc) == Alert.NO_APPLICATION_PROTOCOL


def test_server_without_alpn() -> None:
    exc = fails(
        client_engine(), server_engine(), _edit_ee(lambda e: setattr(e, "alpn_protocol", None))
    )
    assert alert_of(exc) == Alert.NO_APPLICATION_PROTOCOL


def test_server_selects_unoffered_alpn() -> None:
    exc = fails(
        client_engine(), server_engine(), _edit_ee(lambda e: setattr(e, "alpn_protocol", b"h9"))
    )
    assert alert_of(exc) == Alert.NO_APPLICATION_PROTOCOL


def test_client_without_transport_parameters() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        _edit_hello(lambda h: setattr(h, "transport_parameters", None)),
    )
    assert alert_of(exc) == 109


def test_server_without_transport_parameters() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        _edit_ee(lambda e: setattr(e, "transport_parameters", None)),
    )
    assert alert_of(exc) == Alert.MISSING_EXTENSION


def test_unsolicited_early_data_in_encrypted_extensions() -> None:
    exc = fails(
        client_engine(), server_engine(), _edit_ee(lambda e: setattr(e, "early_data", True))
    )
    assert alert_of(exc) == Alert.UNSUPPORTED_EXTENSION


def test_forbidden_extension_in_encrypted_extensions() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        _edit_ee(lambda e: e.other_extensions.append((51, b"\x00\x17"))),
    )
    assert alert_of(exc) == Alert.ILLEGAL_PARAMETER


def test_no_common_cipher_suite() -> None:
    exc = fails(client_engine(cipher_suites=[0x1303]), server_engine(cipher_suites=[0x1301]))
    assert alert_of(exc) == 40


def test_server_picks_unoffered_suite() -> None:
    exc = fails(
        client_engine(cipher_suites=[0x1301]),
        server_engine(),
        _edit_sh(lambda h: setattr(h, "cipher_suite", 0x1302)),
    )
    assert alert_of(exc) == 47


def test_server_picks_unoffered_group() -> None:
    def change(h: msg.ServerHello) -> None:
        assert h.key_share is not None
        h.key_share = (0x0018, h.key_share[1])

    exc = fails(client_engine(groups=["x25519"]), server_engine(), _edit_sh(change))
    assert alert_of(exc) == Alert.ILLEGAL_PARAMETER


def test_invalid_key_share() -> None:
    def change(h: msg.ServerHello) -> None:
        assert h.key_share is not None
        h.key_share = (h.key_share[0], b"\x04" + bytes(64))

    exc = fails(client_engine(groups=["secp256r1"]), server_engine(), _edit_sh(change))
    assert alert_of(exc) == Alert.ILLEGAL_PARAMETER


def test_server_hello_without_supported_versions() -> None:
    exc = fails(
        client_engine(), server_engine(), _edit_sh(lambda h: setattr(h, "supported_version", None))
    )
    assert alert_of(exc) == Alert.PROTOCOL_VERSION


def test_client_without_tls13() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        _edit_hello(lambda h: setattr(h, "supported_versions", [0x0303])),
    )
    assert alert_of(exc) == Alert.PROTOCOL_VERSION


def test_client_without_key_share() -> None:
    exc = fails(
        client_engine(), server_engine(), _edit_hello(lambda h: setattr(h, "key_shares", None))
    )
    assert alert_of(exc) == Alert.MISSING_EXTENSION


def test_client_without_signature_algorithms() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        _edit_hello(lambda h: setattr(h, "signature_algorithms", None)),
    )
    assert alert_of(exc) == Alert.MISSING_EXTENSION


def test_no_common_signature_scheme() -> None:
    exc = fails(
        client_engine(),
        server_engine("rsa"),
        _edit_hello(lambda h: setattr(h, "signature_algorithms", [0x0403])),
    )
    assert alert_of(exc) == Alert.HANDSHAKE_FAILURE


def test_legacy_session_id_is_protocol_violation() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        _edit_hello(lambda h: setattr(h, "legacy_session_id", b"x" * 32)),
    )
    assert exc.code == ErrorCode.PROTOCOL_VIOLATION


def test_compression_offered() -> None:
    exc = fails(
        client_engine(),
        server_engine(),
        _edit_hello(lambda h: setattr(h, "compression_methods", b"\x01\x00")),
    )
    assert alert_of(exc) == Alert.ILLEGAL_PARAMETER


def test_psk_not_last_extension() -> None:
    hello = msg.ClientHello(
        random=bytes(32),
        cipher_suites=[0x1301],
        supported_versions=[0x0304],
        pre_shared_key=msg.OfferedPsks([(b"id", 0)], [bytes(32)]),
    )
    encoded = msg.encode_client_hello(hello)
    # version, random, session id, suites (2 + 2), compression (1 + 1), then the block
    block_start = 2 + 32 + 1 + (2 + 2) + (1 + 1)
    block = encoded[block_start + 2 :] + b"\x0a\x0a\x00\x00"  # an extension after the PSK
    tampered = encoded[:block_start] + len(block).to_bytes(2, "big") + block
    with pytest.raises(ProtocolError) as info:
        msg.decode_client_hello(tampered)
    assert alert_of(info.value) == Alert.ILLEGAL_PARAMETER


# ---- order, epochs, KeyUpdate --------------------------------------------------------------------
def test_finished_before_client_hello() -> None:
    server = server_engine()
    with pytest.raises(ProtocolError) as info:
        server.receive(Epoch.INITIAL, msg.frame(msg.FINISHED, bytes(32)), 0.0)
    assert alert_of(info.value) == Alert.UNEXPECTED_MESSAGE


def test_handshake_epoch_before_server_hello() -> None:
    client = client_engine()
    client.start(0.0)
    with pytest.raises(ProtocolError) as info:
        client.receive(Epoch.HANDSHAKE, msg.frame(msg.ENCRYPTED_EXTENSIONS, b"\x00\x00"), 0.0)
    assert alert_of(info.value) == Alert.UNEXPECTED_MESSAGE


def test_certificate_before_encrypted_extensions() -> None:
    def swap(direction: bool, epoch: Epoch, data: bytes) -> bytes:
        if direction or epoch != Epoch.HANDSHAKE:
            return data
        parts = split(data)
        return join([parts[1], parts[0], *parts[2:]])

    exc = fails(client_engine(), server_engine(), swap)
    assert alert_of(exc) == Alert.UNEXPECTED_MESSAGE


def test_data_after_server_hello_in_initial() -> None:
    def extra(direction: bool, epoch: Epoch, data: bytes) -> bytes:
        return data + b"\x08\x00" if not direction and epoch == Epoch.INITIAL else data

    exc = fails(client_engine(), server_engine(), extra)
    assert alert_of(exc) == Alert.UNEXPECTED_MESSAGE


def test_zero_rtt_epoch_carries_no_handshake() -> None:
    server = server_engine()
    with pytest.raises(ProtocolError) as info:
        server.receive(Epoch.ZERO_RTT, b"\x01\x00\x00\x00", 0.0)
    assert alert_of(info.value) == Alert.UNEXPECTED_MESSAGE


@pytest.mark.parametrize("to_client", [True, False])
def test_key_update_forbidden(to_client: bool) -> None:
    client, server = client_engine(), server_engine()
    client.start(0.0)
    pump(client, server)
    target = client if to_client else server
    with pytest.raises(ProtocolError) as info:
        target.receive(Epoch.ONE_RTT, msg.frame(msg.KEY_UPDATE, b"\x00"), 0.0)
    assert alert_of(info.value) == Alert.UNEXPECTED_MESSAGE


def test_end_of_early_data_forbidden() -> None:
    client, server = client_engine(), server_engine()
    client.start(0.0)
    server.receive(Epoch.INITIAL, client.pop_output()[0][1], 0.0)
    with pytest.raises(ProtocolError) as info:
        server.receive(Epoch.HANDSHAKE, msg.frame(msg.END_OF_EARLY_DATA, b""), 0.0)
    assert alert_of(info.value) == Alert.UNEXPECTED_MESSAGE


def test_error_is_latched() -> None:
    server = server_engine()
    with pytest.raises(ProtocolError) as first:
        server.receive(Epoch.INITIAL, msg.frame(msg.FINISHED, b""), 0.0)
    with pytest.raises(ProtocolError) as second:
        server.receive(Epoch.INITIAL, b"\x01", 0.0)
    assert first.value is second.value


def test_oversized_message() -> None:
    server = server_engine()
    with pytest.raises(ProtocolError) as info:
        server.receive(Epoch.INITIAL, b"\x01\xff\xff\xff", 0.0)
    assert info.value.code == ErrorCode.CRYPTO_BUFFER_EXCEEDED


def test_truncated_client_hello() -> None:
    client = client_engine()
    client.start(0.0)
    hello = client.pop_output()[0][1]
    body = hello[4:-10]
    with pytest.raises(ProtocolError) as info:
        server_engine().receive(Epoch.INITIAL, msg.frame(msg.CLIENT_HELLO, body), 0.0)
    assert alert_of(info.value) == Alert.DECODE_ERROR


def test_partial_message_waits() -> None:
    client = client_engine()
    client.start(0.0)
    hello = client.pop_output()[0][1]
    server = server_engine()
    server.receive(Epoch.INITIAL, hello[:-1], 0.0)
    assert server.pop_output() == []
    server.receive(Epoch.INITIAL, hello[-1:], 0.0)
    assert len(server.pop_output()) == 2


# ---- HelloRetryRequest misuse --------------------------------------------------------------------
def _hrr(selected_group: int | None, suite: int = 0x1301) -> bytes:
    hrr = msg.ServerHello(
        random=msg.HRR_RANDOM,
        cipher_suite=suite,
        supported_version=0x0304,
        selected_group=selected_group,
    )
    return msg.frame(msg.SERVER_HELLO, msg.encode_server_hello(hrr))


@pytest.mark.parametrize(
    ("group", "alert"),
    [
        (0x001D, Alert.ILLEGAL_PARAMETER),
        (None, Alert.ILLEGAL_PARAMETER),
        (0x0019, Alert.ILLEGAL_PARAMETER),
    ],
)
def test_bad_hello_retry_request(group: int | None, alert: int) -> None:
    client = client_engine(groups=["x25519", "secp256r1"])
    client.start(0.0)
    with pytest.raises(ProtocolError) as info:
        client.receive(Epoch.INITIAL, _hrr(group), 0.0)
    assert alert_of(info.value) == alert


def test_second_hello_retry_request() -> None:
    client = client_engine(groups=["x25519", "secp256r1", "secp384r1"])
    client.start(0.0)
    client.receive(Epoch.INITIAL, _hrr(0x0017), 0.0)
    assert len(client.pop_output()) == 1
    with pytest.raises(ProtocolError) as info:
        client.receive(Epoch.INITIAL, _hrr(0x0018), 0.0)
    assert alert_of(info.value) == Alert.UNEXPECTED_MESSAGE


def test_client_hello2_without_requested_share() -> None:
    server = server_engine(groups=["secp256r1"])
    client = client_engine(groups=["x25519", "secp256r1"])
    client.start(0.0)
    server.receive(Epoch.INITIAL, client.pop_output()[0][1], 0.0)
    ((_epoch, hrr),) = server.pop_output()
    assert msg.decode_server_hello(hrr[4:]).is_retry_request
    # answer with the original ClientHello again (still only an x25519 share)
    client2 = client_engine(groups=["x25519", "secp256r1"])
    client2.start(0.0)
    with pytest.raises(ProtocolError) as info:
        server.receive(Epoch.INITIAL, client2.pop_output()[0][1], 0.0)
    assert alert_of(info.value) == Alert.ILLEGAL_PARAMETER


# ---- tolerated: GREASE and unknown extensions ----------------------------------------------------
def test_server_tolerates_grease() -> None:
    def grease(h: msg.ClientHello) -> None:
        h.cipher_suites.insert(0, 0x0A0A)
        assert h.supported_groups is not None and h.key_shares is not None
        assert h.supported_versions is not None and h.signature_algorithms is not None
        h.supported_groups.insert(0, 0x1A1A)
        h.key_shares.insert(0, (0x1A1A, b"\x00"))
        h.supported_versions.insert(0, 0x2A2A)
        h.signature_algorithms.insert(0, 0x3A3A)
        assert h.alpn_protocols is not None
        h.alpn_protocols.insert(0, b"\x4a\x4a")
        h.other_extensions.extend([(0x5A5A, b""), (0x6A6A, b"\x00")])
        h.psk_key_exchange_modes = [0x7A, 1]

    client = client_engine()
    server = server_engine()
    client.start(0.0)
    hello = client.pop_output()[0][1]
    tampered = _edit_hello(grease)(True, Epoch.INITIAL, hello)
    server.receive(Epoch.INITIAL, tampered, 0.0)
    out = server.pop_output()
    sh = msg.decode_server_hello(out[0][1][4:])
    assert sh.cipher_suite == 0x1301 and sh.key_share is not None and sh.key_share[0] == 0x001D
    assert server.alpn == ALPN


def test_unknown_extensions_both_ways() -> None:
    client, server = client_engine(), server_engine()
    client._hs.s.extra_extensions = [(0xFF01, b"\x00"), (0x0A0A, b"")]
    server._hs.s.extra_extensions = [(0x1A1A, b""), (0xFFCE, b"abc")]
    client.start(0.0)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete


def test_certificate_request_answered_with_empty_certificate() -> None:
    from tls_support import aioquic_server

    server = aioquic_server()
    server.ctx._request_client_certificate = True
    client = client_engine()
    client.start(0.0)
    pump(client, server)
    assert client.handshake_complete
    assert server.ctx.state.name == "SERVER_POST_HANDSHAKE"
