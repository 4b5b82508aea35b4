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
# Seconds a NEW_TOKEN token validates (Config.new_token_lifetime): long enough for a client
# that comes back within a session of use; IP-bound tokens go stale as addresses change
# anyway, and the strike register must remember every token used within the lifetime.
NEW_TOKEN_LIFETIME = 2 * 3600.0
NEW_TOKEN_REGISTER_ENTRIES = 100_000  # used tokens remembered, about 130 bytes each (13 MB)
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
    token_id: bytes = b""  # the token's random nonce: what a strike register remembers


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
        + bytes((len(original_dcid),))
        + original_dcid
        + bytes((len(retry_source_cid),))
        + retry_source_cid
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
        return TokenInfo(kind, issued, token_id=nonce) if len(plaintext) == _TIME.size else None
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
    return TokenInfo(kind, issued, cids[0], cids[1], nonce)


class TokenRegister:
    """The NEW_TOKEN tokens already used (RFC 9000 section 8.1.4: limit reuse), each until
    it expires, in buckets by issue time so expiry drops whole buckets. At ``max_entries``
    unexpired entries it refuses new tokens (it fails closed: a token only spares a
    Retry or the 3x limit) rather than forget one that could then be replayed."""

    BUCKETS = 64  # issue-time buckets per lifetime

    def __init__(self, lifetime: float, max_entries: int) -> None:
        self.lifetime = lifetime
        self.max_entries = max_entries
        self._width = lifetime / self.BUCKETS
        self._buckets: dict[int, set[bytes]] = {}
        self._count = 0
        self._next_expiry = 0.0

    def __len__(self) -> int:
        return self._count

    def use(self, token_id: bytes, issued: float, now: float) -> bool:
        """True the first time the (authentic, unexpired) token ``token_id`` issued at
        ``issued`` is used; False when it was used before or the register is full."""
        if now >= self._next_expiry or self._count >= self.max_entries:
            self._expire(now)
        slot = int(issued // self._width)
        bucket = self._buckets.get(slot)
        if bucket is not None and token_id in bucket:
            return False
        if self._count >= self.max_entries:
            return False
        if bucket is None:
            bucket = self._buckets[slot] = set()
        bucket.add(token_id)
        self._count += 1
        return True

    def _expire(self, now: float) -> None:
        """Drop the buckets whose every token has expired (issued before the slot's end)."""
        width = self._width
        for slot in [s for s in self._buckets if (s + 1) * width + self.lifetime < now]:
            self._count -= len(self._buckets.pop(slot))
        self._next_expiry = now + width
