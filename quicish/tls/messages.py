"""Handshake messages (RFC 8446 section 4): dataclasses, encoders and decoders.

Decoders take the message body (without the 4-byte handshake header) and raise
``CryptoError`` (decode_error, illegal_parameter) on malformed input. Semantic checks
that need connection state live in the client and server handshakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import extensions as ext
from .alerts import Alert, alert
from .codec import Reader, Writer, encode_opaque, encode_u16s

CLIENT_HELLO = 1
SERVER_HELLO = 2
NEW_SESSION_TICKET = 4
END_OF_EARLY_DATA = 5
ENCRYPTED_EXTENSIONS = 8
CERTIFICATE = 11
CERTIFICATE_REQUEST = 13
CERTIFICATE_VERIFY = 15
FINISHED = 20
KEY_UPDATE = 24

MESSAGE_NAMES = {
    CLIENT_HELLO: "ClientHello",
    SERVER_HELLO: "ServerHello",
    NEW_SESSION_TICKET: "NewSessionTicket",
    END_OF_EARLY_DATA: "EndOfEarlyData",
    ENCRYPTED_EXTENSIONS: "EncryptedExtensions",
    CERTIFICATE: "Certificate",
    CERTIFICATE_REQUEST: "CertificateRequest",
    CERTIFICATE_VERIFY: "CertificateVerify",
    FINISHED: "Finished",
    KEY_UPDATE: "KeyUpdate",
}

# SHA-256("HelloRetryRequest"), the ServerHello.random of a HelloRetryRequest
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def message_name(msg_type: int) -> str:
    return MESSAGE_NAMES.get(msg_type, f"message type {msg_type}")


def frame(msg_type: int, body: bytes) -> bytes:
    """A complete handshake message: type, 24-bit length, body."""
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


@dataclass
class OfferedPsks:
    identities: list[tuple[bytes, int]]  # (identity, obfuscated_ticket_age)
    binders: list[bytes]
    binders_size: int = 0  # bytes of the binders vector incl. length (set by the decoder)


@dataclass
class ClientHello:
    random: bytes
    cipher_suites: list[int]
    legacy_session_id: bytes = b""
    compression_methods: bytes = b"\x00"
    legacy_version: int = ext.TLS1_2
    server_name: str | None = None
    supported_groups: list[int] | None = None
    signature_algorithms: list[int] | None = None
    key_shares: list[tuple[int, bytes]] | None = None
    supported_versions: list[int] | None = None
    alpn_protocols: list[bytes] | None = None
    transport_parameters: bytes | None = None
    psk_key_exchange_modes: list[int] | None = None
    early_data: bool = False
    cookie: bytes | None = None
    pre_shared_key: OfferedPsks | None = None
    other_extensions: ext.Extensions = field(default_factory=list)


def encode_client_hello(hello: ClientHello) -> bytes:
    """The ClientHello body; ``pre_shared_key`` goes last as RFC 8446 requires."""
    exts: ext.Extensions = []
    if hello.server_name is not None:
        exts.append((ext.SERVER_NAME, ext.encode_server_name(hello.server_name)))
    if hello.supported_versions is not None:
        exts.append((ext.SUPPORTED_VERSIONS, encode_u16s(hello.supported_versions, 1)))
    if hello.supported_groups is not None:
        exts.append((ext.SUPPORTED_GROUPS, encode_u16s(hello.supported_groups, 2)))
    if hello.signature_algorithms is not None:
        exts.append((ext.SIGNATURE_ALGORITHMS, encode_u16s(hello.signature_algorithms, 2)))
    if hello.key_shares is not None:
        exts.append((ext.KEY_SHARE, ext.encode_client_key_shares(hello.key_shares)))
    if hello.alpn_protocols is not None:
        exts.append((ext.ALPN, ext.encode_alpn(hello.alpn_protocols)))
    if hello.transport_parameters is not None:
        exts.append((ext.QUIC_TRANSPORT_PARAMETERS, hello.transport_parameters))
    if hello.psk_key_exchange_modes is not None:
        exts.append(
            (ext.PSK_KEY_EXCHANGE_MODES, encode_opaque(1, bytes(hello.psk_key_exchange_modes)))
        )
    if hello.cookie is not None:
        exts.append((ext.COOKIE, ext.encode_cookie(hello.cookie)))
    if hello.early_data:
        exts.append((ext.EARLY_DATA, b""))
    exts.extend(hello.other_extensions)
    if hello.pre_shared_key is not None:
        psk = hello.pre_shared_key
        exts.append((ext.PRE_SHARED_KEY, ext.encode_offered_psks(psk.identities, psk.binders)))
    return b"".join(
        (
            hello.legacy_version.to_bytes(2, "big"),
            hello.random,
            encode_opaque(1, hello.legacy_session_id),
            encode_u16s(hello.cipher_suites, 2),
            encode_opaque(1, hello.compression_methods),
            ext.encode_extensions(exts),
        )
    )


def decode_client_hello(body: bytes) -> ClientHello:
    r = Reader(body)
    legacy_version = r.u16()
    random = r.raw(32)
    session_id = r.opaque(1, what="legacy_session_id")
    if len(session_id) > 32:
        raise alert(Alert.DECODE_ERROR, "legacy_session_id longer than 32 bytes")
    suites = r.u16_list(2, "cipher_suites")
    compression = r.opaque(1, 1, "legacy_compression_methods")
    hello = ClientHello(
        random=random,
        cipher_suites=suites,
        legacy_session_id=session_id,
        compression_methods=compression,
        legacy_version=legacy_version,
    )
    exts = ext.read_extensions(r, "ClientHello", optional=True)
    r.expect_end("ClientHello")
    for index, (ext_type, data) in enumerate(exts):
        if ext_type == ext.SERVER_NAME:
            hello.server_name = ext.decode_server_name(data)
        elif ext_type == ext.SUPPORTED_GROUPS:
            hello.supported_groups = ext.decode_u16_list(data, 2, "supported_groups")
        elif ext_type == ext.SIGNATURE_ALGORITHMS:
            hello.signature_algorithms = ext.decode_u16_list(data, 2, "signature_algorithms")
        elif ext_type == ext.KEY_SHARE:
            hello.key_shares = ext.decode_client_key_shares(data)
        elif ext_type == ext.SUPPORTED_VERSIONS:
            hello.supported_versions = ext.decode_u16_list(data, 1, "supported_versions")
        elif ext_type == ext.ALPN:
            hello.alpn_protocols = ext.decode_alpn(data)
        elif ext_type == ext.QUIC_TRANSPORT_PARAMETERS:
            hello.transport_parameters = data
        elif ext_type == ext.PSK_KEY_EXCHANGE_MODES:
            hello.psk_key_exchange_modes = ext.decode_psk_modes(data)
        elif ext_type == ext.EARLY_DATA:
            ext.decode_empty(data, "early_data")
            hello.early_data = True
        elif ext_type == ext.COOKIE:
            hello.cookie = ext.decode_cookie(data)
        elif ext_type == ext.PRE_SHARED_KEY:
            if index != len(exts) - 1:
                raise alert(Alert.ILLEGAL_PARAMETER, "pre_shared_key is not the last extension")
            identities, binders, size = ext.decode_offered_psks(data)
            hello.pre_shared_key = OfferedPsks(identities, binders, size)
        else:
            hello.other_extensions.append((ext_type, data))
    return hello


@dataclass
class ServerHello:
    """A ServerHello or, when ``random == HRR_RANDOM``, a HelloRetryRequest."""

    random: bytes
    cipher_suite: int
    legacy_session_id: bytes = b""
    compression_method: int = 0
    legacy_version: int = ext.TLS1_2
    supported_version: int | None = None
    key_share: tuple[int, bytes] | None = None  # ServerHello
    selected_group: int | None = None  # HelloRetryRequest
    cookie: bytes | None = None  # HelloRetryRequest
    pre_shared_key: int | None = None
    extension_types: list[int] = field(default_factory=list)

    @property
    def is_retry_request(self) -> bool:
        return self.random == HRR_RANDOM


def encode_server_hello(hello: ServerHello) -> bytes:
    w = Writer()
    w.u16(hello.legacy_version)
    w.raw(hello.random)
    w.opaque(1, hello.legacy_session_id)
    w.u16(hello.cipher_suite)
    w.u8(hello.compression_method)
    exts: ext.Extensions = []
    if hello.supported_version is not None:
        exts.append((ext.SUPPORTED_VERSIONS, hello.supported_version.to_bytes(2, "big")))
    if hello.key_share is not None:
        exts.append((ext.KEY_SHARE, ext.encode_server_key_share(*hello.key_share)))
    if hello.selected_group is not None:
        exts.append((ext.KEY_SHARE, hello.selected_group.to_bytes(2, "big")))
    if hello.cookie is not None:
        exts.append((ext.COOKIE, ext.encode_cookie(hello.cookie)))
    if hello.pre_shared_key is not None:
        exts.append((ext.PRE_SHARED_KEY, hello.pre_shared_key.to_bytes(2, "big")))
    ext.write_extensions(w, exts)
    return w.data()


def decode_server_hello(body: bytes) -> ServerHello:
    r = Reader(body)
    legacy_version = r.u16()
    random = r.raw(32)
    session_id = r.opaque(1, what="legacy_session_id_echo")
    if len(session_id) > 32:
        raise alert(Alert.DECODE_ERROR, "legacy_session_id_echo longer than 32 bytes")
    hello = ServerHello(
        random=random,
        cipher_suite=r.u16(),
        legacy_session_id=session_id,
        compression_method=r.u8(),
        legacy_version=legacy_version,
    )
    exts = ext.read_extensions(r, "ServerHello", optional=True)
    r.expect_end("ServerHello")
    retry = hello.is_retry_request
    for ext_type, data in exts:
        hello.extension_types.append(ext_type)
        if ext_type == ext.SUPPORTED_VERSIONS:
            hello.supported_version = ext.decode_u16(data, "supported_versions")
        elif ext_type == ext.KEY_SHARE and retry:
            hello.selected_group = ext.decode_u16(data, "key_share")
        elif ext_type == ext.KEY_SHARE:
            hello.key_share = ext.decode_server_key_share(data)
        elif ext_type == ext.COOKIE and retry:
            hello.cookie = ext.decode_cookie(data)
        elif ext_type == ext.PRE_SHARED_KEY and not retry:
            hello.pre_shared_key = ext.decode_u16(data, "pre_shared_key")
    return hello


@dataclass
class EncryptedExtensions:
    alpn_protocol: bytes | None = None
    transport_parameters: bytes | None = None
    early_data: bool = False
    other_extensions: ext.Extensions = field(default_factory=list)
    extension_types: list[int] = field(default_factory=list)


def encode_encrypted_extensions(ee: EncryptedExtensions) -> bytes:
    exts: ext.Extensions = []
    if ee.alpn_protocol is not None:
        exts.append((ext.ALPN, ext.encode_alpn([ee.alpn_protocol])))
    if ee.transport_parameters is not None:
        exts.append((ext.QUIC_TRANSPORT_PARAMETERS, ee.transport_parameters))
    if ee.early_data:
        exts.append((ext.EARLY_DATA, b""))
    exts.extend(ee.other_extensions)
    w = Writer()
    ext.write_extensions(w, exts)
    return w.data()


def decode_encrypted_extensions(body: bytes) -> EncryptedExtensions:
    r = Reader(body)
    exts = ext.read_extensions(r, "EncryptedExtensions")
    r.expect_end("EncryptedExtensions")
    ee = EncryptedExtensions()
    for ext_type, data in exts:
        ee.extension_types.append(ext_type)
        if ext_type == ext.ALPN:
            protocols = ext.decode_alpn(data)
            if len(protocols) != 1:
                raise alert(Alert.DECODE_ERROR, "server ALPN must name exactly one protocol")
            ee.alpn_protocol = protocols[0]
        elif ext_type == ext.QUIC_TRANSPORT_PARAMETERS:
            ee.transport_parameters = data
        elif ext_type == ext.EARLY_DATA:
            ext.decode_empty(data, "early_data")
            ee.early_data = True
        else:
            ee.other_extensions.append((ext_type, data))
    return ee


@dataclass
class Certificate:
    certificates: list[bytes]  # DER, leaf first
    request_context: bytes = b""


def encode_certificate(cert: Certificate) -> bytes:
    entries = Writer()
    for der in cert.certificates:
        entries.opaque(3, der)
        entries.u16(0)  # no per-certificate extensions
    w = Writer()
    w.opaque(1, cert.request_context)
    w.opaque(3, entries.data())
    return w.data()


def decode_certificate(body: bytes) -> Certificate:
    r = Reader(body)
    context = r.opaque(1, what="certificate_request_context")
    entries = r.block(3, what="certificate_list")
    r.expect_end("Certificate")
    certificates = []
    while not entries.eof():
        certificates.append(entries.opaque(3, 1, "cert_data"))
        entries.block(2, what="certificate entry extensions")
    return Certificate(certificates, context)


@dataclass
class CertificateRequest:
    request_context: bytes
    signature_algorithms: list[int]


def decode_certificate_request(body: bytes) -> CertificateRequest:
    r = Reader(body)
    context = r.opaque(1, what="certificate_request_context")
    exts = ext.read_extensions(r, "CertificateRequest")
    r.expect_end("CertificateRequest")
    schemes: list[int] | None = None
    for ext_type, data in exts:
        if ext_type == ext.SIGNATURE_ALGORITHMS:
            schemes = ext.decode_u16_list(data, 2, "signature_algorithms")
    if schemes is None:
        raise alert(Alert.MISSING_EXTENSION, "CertificateRequest without signature_algorithms")
    return CertificateRequest(context, schemes)


def encode_certificate_request(req: CertificateRequest) -> bytes:
    w = Writer()
    w.opaque(1, req.request_context)
    ext.write_extensions(w, [(ext.SIGNATURE_ALGORITHMS, encode_u16s(req.signature_algorithms, 2))])
    return w.data()


@dataclass
class CertificateVerify:
    scheme: int
    signature: bytes


def encode_certificate_verify(cv: CertificateVerify) -> bytes:
    w = Writer()
    w.u16(cv.scheme)
    w.opaque(2, cv.signature)
    return w.data()


def decode_certificate_verify(body: bytes) -> CertificateVerify:
    r = Reader(body)
    cv = CertificateVerify(r.u16(), r.opaque(2, 1, "signature"))
    r.expect_end("CertificateVerify")
    return cv


def decode_finished(body: bytes, hash_len: int) -> bytes:
    if len(body) != hash_len:
        raise alert(Alert.DECODE_ERROR, f"Finished is {len(body)} bytes, expected {hash_len}")
    return body


@dataclass
class NewSessionTicket:
    lifetime: int
    age_add: int
    nonce: bytes
    ticket: bytes
    max_early_data_size: int | None = None


def encode_new_session_ticket(nst: NewSessionTicket) -> bytes:
    w = Writer()
    w.u32(nst.lifetime)
    w.u32(nst.age_add)
    w.opaque(1, nst.nonce)
    w.opaque(2, nst.ticket)
    exts: ext.Extensions = []
    if nst.max_early_data_size is not None:
        exts.append((ext.EARLY_DATA, nst.max_early_data_size.to_bytes(4, "big")))
    ext.write_extensions(w, exts)
    return w.data()


def decode_new_session_ticket(body: bytes) -> NewSessionTicket:
    r = Reader(body)
    nst = NewSessionTicket(
        lifetime=r.u32(),
        age_add=r.u32(),
        nonce=r.opaque(1, what="ticket_nonce"),
        ticket=r.opaque(2, 1, "ticket"),
    )
    for ext_type, data in ext.read_extensions(r, "NewSessionTicket"):
        if ext_type == ext.EARLY_DATA:
            nst.max_early_data_size = ext.decode_max_early_data(data)
    r.expect_end("NewSessionTicket")
    return nst
