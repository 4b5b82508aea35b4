"""Extension code points and the payload codecs of the extensions quicish understands."""

from __future__ import annotations

import struct

from .alerts import Alert, alert
from .codec import Reader, Writer, encode_opaque

SERVER_NAME = 0
SUPPORTED_GROUPS = 10
SIGNATURE_ALGORITHMS = 13
ALPN = 16
PRE_SHARED_KEY = 41
EARLY_DATA = 42
SUPPORTED_VERSIONS = 43
COOKIE = 44
PSK_KEY_EXCHANGE_MODES = 45
SIGNATURE_ALGORITHMS_CERT = 50
KEY_SHARE = 51
QUIC_TRANSPORT_PARAMETERS = 0x39

TLS1_2 = 0x0303
TLS1_3 = 0x0304
PSK_DHE_KE = 1

Extensions = list[tuple[int, bytes]]

_EXTENSION_HEADER = struct.Struct(">HH")  # extension_type, extension_data length


def read_extensions(r: Reader, what: str, optional: bool = False) -> Extensions:
    """An extension block; duplicate types give ``illegal_parameter``.

    ``optional``: a hello may end before the block (legacy TLS 1.2 encodings).
    """
    if optional and r.eof():
        return []
    block = r.block(2)
    out: Extensions = []
    seen: set[int] = set()
    while not block.eof():
        ext_type = block.u16()
        data = block.opaque(2)
        if ext_type in seen:
            raise alert(Alert.ILLEGAL_PARAMETER, f"duplicate extension {ext_type} in {what}")
        seen.add(ext_type)
        out.append((ext_type, data))
    return out


def encode_extensions(extensions: Extensions) -> bytes:
    """An extension block: a 2-byte length, then type, 2-byte length and data of each."""
    parts: list[bytes] = []
    for ext_type, data in extensions:
        if len(data) > 0xFFFF:
            raise ValueError(f"{len(data)} bytes do not fit a 2-byte length")
        parts.append(_EXTENSION_HEADER.pack(ext_type, len(data)))
        parts.append(data)
    block = b"".join(parts)
    if len(block) > 0xFFFF:
        raise ValueError(f"{len(block)} bytes do not fit a 2-byte length")
    return len(block).to_bytes(2, "big") + block


def write_extensions(w: Writer, extensions: Extensions) -> None:
    w.raw(encode_extensions(extensions))


# ---- individual payloads --------------------------------------------------------------------
def decode_server_name(data: bytes) -> str | None:
    """The host_name entry of a ClientHello's server_name list."""
    r = Reader(data)
    names = r.block(2, 1, "server_name list")
    r.expect_end("server_name")
    host: str | None = None
    while not names.eof():
        name_type = names.u8()
        name = names.opaque(2, 1, "host_name")
        if name_type == 0 and host is None:
            try:
                host = name.decode("ascii")
            except UnicodeDecodeError:
                raise alert(Alert.DECODE_ERROR, "server_name is not ASCII") from None
    return host


def encode_server_name(host: str) -> bytes:
    return encode_opaque(2, b"\x00" + encode_opaque(2, host.encode("ascii")))


def decode_u16_list(data: bytes, len_size: int, what: str) -> list[int]:
    r = Reader(data)
    values = r.u16_list(len_size, what)
    r.expect_end(what)
    return values


def decode_client_key_shares(data: bytes) -> list[tuple[int, bytes]]:
    r = Reader(data)
    block = r.block(2, what="client_shares")
    r.expect_end("key_share")
    shares: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    while not block.eof():
        group = block.u16()
        key = block.opaque(2, 1, "key_exchange")
        if group in seen:
            raise alert(Alert.ILLEGAL_PARAMETER, f"duplicate key share for group {group:#06x}")
        seen.add(group)
        shares.append((group, key))
    return shares


def encode_client_key_shares(shares: list[tuple[int, bytes]]) -> bytes:
    return encode_opaque(2, b"".join([encode_server_key_share(g, key) for g, key in shares]))


def decode_server_key_share(data: bytes) -> tuple[int, bytes]:
    r = Reader(data)
    group = r.u16()
    key = r.opaque(2, 1, "key_exchange")
    r.expect_end("key_share")
    return group, key


def encode_server_key_share(group: int, key: bytes) -> bytes:
    return group.to_bytes(2, "big") + encode_opaque(2, key)


def decode_u16(data: bytes, what: str) -> int:
    r = Reader(data)
    value = r.u16()
    r.expect_end(what)
    return value


def decode_alpn(data: bytes) -> list[bytes]:
    r = Reader(data)
    block = r.block(2, 2, "ALPN list")
    r.expect_end("ALPN")
    protocols = []
    while not block.eof():
        protocols.append(block.opaque(1, 1, "ALPN protocol"))
    return protocols


def encode_alpn(protocols: list[bytes]) -> bytes:
    return encode_opaque(2, b"".join([encode_opaque(1, p) for p in protocols]))


def decode_psk_modes(data: bytes) -> list[int]:
    r = Reader(data)
    modes = list(r.opaque(1, 1, "ke_modes"))
    r.expect_end("psk_key_exchange_modes")
    return modes


def decode_empty(data: bytes, what: str) -> None:
    if data:
        raise alert(Alert.DECODE_ERROR, f"{what} extension must be empty")


def decode_max_early_data(data: bytes) -> int:
    r = Reader(data)
    value = r.u32()
    r.expect_end("early_data")
    return value


def decode_cookie(data: bytes) -> bytes:
    r = Reader(data)
    cookie = r.opaque(2, 1, "cookie")
    r.expect_end("cookie")
    return cookie


def encode_cookie(cookie: bytes) -> bytes:
    w = Writer()
    w.opaque(2, cookie)
    return w.data()


def decode_offered_psks(data: bytes) -> tuple[list[tuple[bytes, int]], list[bytes], int]:
    """``(identities, binders, binders_size)``; binders_size counts the binders vector
    including its length, i.e. what Truncate(ClientHello) removes."""
    r = Reader(data)
    ids = r.block(2, 7, "PSK identities")
    identities: list[tuple[bytes, int]] = []
    while not ids.eof():
        identity = ids.opaque(2, 1, "PSK identity")
        identities.append((identity, ids.u32()))
    binders_start = r.pos
    block = r.block(2, 33, "PSK binders")
    binders: list[bytes] = []
    while not block.eof():
        binders.append(block.opaque(1, 32, "PSK binder"))
    r.expect_end("pre_shared_key")
    return identities, binders, r.pos - binders_start


def encode_binders(binders: list[bytes]) -> bytes:
    block = Writer()
    for b in binders:
        block.opaque(1, b)
    w = Writer()
    w.opaque(2, block.data())
    return w.data()


def encode_offered_psks(identities: list[tuple[bytes, int]], binders: list[bytes]) -> bytes:
    block = Writer()
    for identity, age in identities:
        block.opaque(2, identity)
        block.u32(age)
    w = Writer()
    w.opaque(2, block.data())
    return w.data() + encode_binders(binders)
