"""TLS target: every handshake message and extension decoder, and a fresh server
handshake engine fed a fuzzed ClientHello flight.

Input: one selector byte (which decoder, or the engine), then the bytes. Acceptable:
a decoded value, or CryptoError with a decode-type alert (decode_error,
illegal_parameter, missing_extension); the engine may also fail with any CryptoError or
ProtocolError except internal_error (an exception the engine caught from a bug).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from quicish.errors import CryptoError, ProtocolError
from quicish.tls import Epoch, TlsEngine
from quicish.tls import extensions as ext
from quicish.tls import messages as msg
from quicish.tls.alerts import Alert
from quicish.tls.certs import load_certificate_chain, load_private_key
from quicish.tls.codec import encode_u16s

from .common import cert_files

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "ClientHello": msg.decode_client_hello,
    "ServerHello": msg.decode_server_hello,
    "EncryptedExtensions": msg.decode_encrypted_extensions,
    "Certificate": msg.decode_certificate,
    "CertificateRequest": msg.decode_certificate_request,
    "CertificateVerify": msg.decode_certificate_verify,
    "Finished": lambda b: msg.decode_finished(b, 32),
    "NewSessionTicket": msg.decode_new_session_ticket,
    "server_name": ext.decode_server_name,
    "supported_groups": lambda b: ext.decode_u16_list(b, 2, "supported_groups"),
    "supported_versions": lambda b: ext.decode_u16_list(b, 1, "supported_versions"),
    "client key_share": ext.decode_client_key_shares,
    "server key_share": ext.decode_server_key_share,
    "alpn": ext.decode_alpn,
    "psk_key_exchange_modes": ext.decode_psk_modes,
    "early_data": ext.decode_max_early_data,
    "cookie": ext.decode_cookie,
    "pre_shared_key": ext.decode_offered_psks,
}
NAMES = [*DECODERS, "server engine"]
DECODE_ALERTS = {Alert.DECODE_ERROR, Alert.ILLEGAL_PARAMETER, Alert.MISSING_EXTENSION}
ALPN = ["hq-interop"]
TP = bytes.fromhex("0104000075300504001000000f08aabbccdd")


@functools.lru_cache(maxsize=1)
def _credentials() -> tuple[list[Any], Any]:
    cert, key, _ = cert_files()
    return load_certificate_chain(cert), load_private_key(key)


def server_engine() -> TlsEngine:
    chain, key = _credentials()
    return TlsEngine(is_client=False, alpn_protocols=ALPN, certificate_chain=chain,
                     private_key=key, transport_parameters=TP)  # fmt: skip


def client_engine() -> TlsEngine:
    return TlsEngine(is_client=True, alpn_protocols=ALPN, server_name="localhost",
                     pin=cert_files()[2], transport_parameters=TP)  # fmt: skip


def one_input(data: bytes) -> None:
    if not data:
        return
    name = NAMES[data[0] % len(NAMES)]
    body = data[1:]
    if name == "server engine":
        engine = server_engine()
        engine.start(0.0)
        try:
            engine.receive(Epoch.INITIAL, body, 0.0)
        except CryptoError as exc:
            assert exc.alert != Alert.INTERNAL_ERROR, exc
        except ProtocolError:
            pass
        return
    try:
        DECODERS[name](body)
    except CryptoError as exc:
        assert exc.alert in DECODE_ALERTS, exc


def encode(name: str, body: bytes) -> bytes:
    """An input of this target."""
    return bytes((NAMES.index(name),)) + body


def _handshake_messages() -> dict[str, bytes]:
    """Message bodies of a real handshake between the two engines, by message name."""
    client, server = client_engine(), server_engine()
    client.start(0.0)
    server.start(0.0)
    found: dict[str, bytes] = {}
    flights = {"ClientHello flight": b""}
    for _ in range(10):
        moved = False
        for src, dst in ((client, server), (server, client)):
            for epoch, flight in src.pop_output():
                moved = True
                if src is client and epoch == Epoch.INITIAL:
                    flights["ClientHello flight"] += flight
                pos = 0
                while pos + 4 <= len(flight):
                    length = int.from_bytes(flight[pos + 1 : pos + 4], "big")
                    found[msg.message_name(flight[pos])] = flight[pos + 4 : pos + 4 + length]
                    pos += 4 + length
                dst.receive(epoch, flight, 0.0)
        if not moved:
            break
    found.update(flights)
    return found


def built_samples() -> dict[str, bytes]:
    """Valid bodies of the messages and extensions a plain handshake does not carry (or
    carries in one form only), by decoder name: for the seeds and tests/test_tls_fuzz.py."""
    found: dict[str, bytes] = {}
    found["NewSessionTicket"] = msg.encode_new_session_ticket(
        msg.NewSessionTicket(3600, 5, b"\x00" * 8, b"ticket" * 10, 0xFFFFFFFF)
    )
    found["CertificateRequest"] = msg.encode_certificate_request(
        msg.CertificateRequest(b"ctx", [0x0403, 0x0804])
    )
    found["server_name"] = ext.encode_server_name("example.com")
    found["supported_groups"] = encode_u16s([29, 23, 24], 2)
    found["supported_versions"] = encode_u16s([0x0304, 0x0A0A], 1)
    found["client key_share"] = ext.encode_client_key_shares([(29, bytes(32)), (23, b"\x04" * 65)])
    found["server key_share"] = ext.encode_server_key_share(29, bytes(32))
    found["alpn"] = ext.encode_alpn([b"h3", b"hq-interop"])
    found["psk_key_exchange_modes"] = b"\x01\x01"
    found["early_data"] = b"\xff\xff\xff\xff"
    found["cookie"] = ext.encode_cookie(b"cookie")
    found["pre_shared_key"] = ext.encode_offered_psks([(b"id", 1)], [bytes(32)])
    return found


def seeds() -> Iterator[tuple[str, bytes]]:
    found = _handshake_messages()
    yield "seed-server-engine", encode("server engine", found.pop("ClientHello flight"))
    found.update(built_samples())
    for name, body in sorted(found.items()):
        if name in DECODERS:
            slug = name.replace(" ", "_")
            yield f"seed-{slug}", encode(name, body)
