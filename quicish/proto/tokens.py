"""Address-validation tokens (RFC 9000 section 8.1): Retry tokens and NEW_TOKEN tokens,
sealed with the server's key so that the server keeps no state for them.

A token is ``kind (1 byte) || nonce (12) || AES-GCM(plaintext) || tag (16)`` where the
associated data binds the kind and the client's address (IP and port for Retry tokens,
which are used within a round trip; only the IP for NEW_TOKEN tokens, since the client's
port changes between connections). The plaintext holds the issue time and, for Retry, the
original destination CID and the Retry source CID. Times are the caller's ``now``.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RETRY_TOKEN = 0x52  # "R"
NEW_TOKEN = 0x4E  # "N"
RETRY_TOKEN_LIFETIME = 10.0  # seconds: a Retry token is used one round trip later
NEW_TOKEN_LIFETIME = 24 * 3600.0  # seconds
_NONCE = 12
_TAG = 16
_TIME = struct.Struct("!d")
_MAX_CID = 20


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a valid token says."""

    kind: int  # RETRY_TOKEN or NEW_TOKEN
    issued: float
    original_dcid: bytes = b""  # Retry tokens only
    retry_source_cid: bytes = b""  # Retry tokens only


@functools.lru_cache(maxsize=8)
def _aead(key: bytes) -> AESGCM:
    return AESGCM(key)


def _address(addr: tuple[str, int], with_port: bool) -> bytes:
    try:
        ip = ipaddress.ip_address(addr[0].split("%", 1)[0]).packed
    except ValueError:
        ip = addr[0].encode()
    if isinstance(ip, bytes) and len(ip) == 16 and ip[:12] == bytes(10) + b"\xff\xff":
        ip = ip[12:]  # an IPv4-mapped IPv6 address is the IPv4 address
    return ip + (addr[1].to_bytes(2, "big") if with_port else b"")


def _seal(key: bytes, kind: int, addr: tuple[str, int], plaintext: bytes) -> bytes:
    head = bytes((kind,))
    nonce = os.urandom(_NONCE)
    aad = head + _address(addr, kind == RETRY_TOKEN)
    return head + nonce + _aead(key).encrypt(nonce, plaintext, aad)


def seal_retry_token(
    key: bytes, addr: tuple[str, int], original_dcid: bytes, retry_source_cid: bytes, now: float
) -> bytes:
    """A Retry token for the client at ``addr`` (RFC 9000 section 8.1.2)."""
    if len(original_dcid) > _MAX_CID or len(retry_source_cid) > _MAX_CID:
        raise ValueError("connection IDs are at most 20 bytes")
    plaintext = (
        _TIME.pack(now)
        + bytes((len(original_dcid),)) + original_dcid
        + bytes((len(retry_source_cid),)) + retry_source_cid
    )
    return _seal(key, RETRY_TOKEN, addr, plaintext)


def seal_new_token(key: bytes, addr: tuple[str, int], now: float) -> bytes:
    """A token for a NEW_TOKEN frame: lets the client at ``addr`` skip validation later."""
    return _seal(key, NEW_TOKEN, addr, _TIME.pack(now))


def token_kind(token: bytes) -> int | None:
    """RETRY_TOKEN or NEW_TOKEN when the token looks like one of ours, else None."""
    if len(token) < 1 + _NONCE + _TAG + _TIME.size or token[0] not in (RETRY_TOKEN, NEW_TOKEN):
        return None
    return token[0]


def open_token(
    key: bytes,
    token: bytes,
    addr: tuple[str, int],
    now: float,
    *,
    retry_lifetime: float = RETRY_TOKEN_LIFETIME,
    new_token_lifetime: float = NEW_TOKEN_LIFETIME,
) -> TokenInfo | None:
    """The token's contents when it is authentic, for ``addr`` and not expired; else None."""
    kind = token_kind(token)
    if kind is None:
        return None
    nonce = token[1 : 1 + _NONCE]
    aad = token[:1] + _address(addr, kind == RETRY_TOKEN)
    try:
        plaintext = _aead(key).decrypt(nonce, token[1 + _NONCE :], aad)
    except InvalidTag:
        return None
    if len(plaintext) < _TIME.size:
        return None
    (issued,) = _TIME.unpack_from(plaintext)
    lifetime = retry_lifetime if kind == RETRY_TOKEN else new_token_lifetime
    if not issued <= now <= issued + lifetime:
        return None
    if kind == NEW_TOKEN:
        return TokenInfo(kind, issued) if len(plaintext) == _TIME.size else None
    pos = _TIME.size
    cids: list[bytes] = []
    for _ in range(2):
        if pos >= len(plaintext):
            return None
        n = plaintext[pos]
        if n > _MAX_CID or pos + 1 + n > len(plaintext):
            return None
        cids.append(plaintext[pos + 1 : pos + 1 + n])
        pos += 1 + n
    if pos != len(plaintext):
        return None
    return TokenInfo(kind, issued, cids[0], cids[1])
