"""Session tickets: the client's stored ticket, the server's sealed ticket contents,
rotating ticket sealing keys and the 0-RTT replay filter (RFC 8446 sections 4.6.1, 8)."""

from __future__ import annotations

import hashlib
import os
import struct
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError, CryptoError
from .codec import Reader, Writer

MAX_TICKET_LIFETIME = 604800  # seven days (RFC 8446 section 4.6.1)
QUIC_MAX_EARLY_DATA = 0xFFFFFFFF  # RFC 9001 section 4.6.1

_CLIENT_FORMAT = 1
_SERVER_FORMAT = 1
_DOUBLE = struct.Struct("!d")


def _write_str(w: Writer, value: str | None) -> None:
    if value is None:
        w.u8(0)
    else:
        w.u8(1)
        w.opaque(2, value.encode())


def _read_str(r: Reader) -> str | None:
    if r.u8() == 0:
        return None
    return r.opaque(2).decode()


@dataclass
class SessionTicket:
    """What a client keeps to resume a session (and send 0-RTT) later.

    ``received_at`` is the client's monotonic ``now`` when the ticket arrived; the
    ticket age sent to the server is measured from it.
    """

    ticket: bytes
    psk: bytes
    cipher_suite: int
    server_name: str | None
    alpn: str | None
    age_add: int
    lifetime: int
    received_at: float
    max_early_data_size: int | None
    transport_parameters: bytes

    def is_valid(self, now: float) -> bool:
        return self.received_at <= now < self.received_at + self.lifetime

    def obfuscated_age(self, now: float) -> int:
        age_ms = max(0, round((now - self.received_at) * 1000))
        return (age_ms + self.age_add) & 0xFFFFFFFF

    def to_bytes(self) -> bytes:
        w = Writer()
        w.u8(_CLIENT_FORMAT)
        w.opaque(2, self.ticket)
        w.opaque(1, self.psk)
        w.u16(self.cipher_suite)
        _write_str(w, self.server_name)
        _write_str(w, self.alpn)
        w.u32(self.age_add)
        w.u32(self.lifetime)
        w.raw(_DOUBLE.pack(self.received_at))
        w.u8(self.max_early_data_size is not None)
        w.u32(self.max_early_data_size or 0)
        w.opaque(3, self.transport_parameters)
        return w.data()

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionTicket:
        """Parse :meth:`to_bytes` output; ``ConfigError`` when it is not a ticket."""
        try:
            r = Reader(bytes(data))
            if r.u8() != _CLIENT_FORMAT:
                raise ConfigError("unknown session ticket format")
            ticket = r.opaque(2)
            psk = r.opaque(1)
            suite = r.u16()
            server_name = _read_str(r)
            alpn = _read_str(r)
            age_add = r.u32()
            lifetime = r.u32()
            (received_at,) = _DOUBLE.unpack(r.raw(8))
            has_early = r.u8()
            max_early = r.u32()
            params = r.opaque(3)
            r.expect_end("session ticket")
        except (CryptoError, UnicodeDecodeError) as exc:
            raise ConfigError(f"invalid session ticket: {exc}") from None
        return cls(
            ticket=ticket,
            psk=psk,
            cipher_suite=suite,
            server_name=server_name,
            alpn=alpn,
            age_add=age_add,
            lifetime=lifetime,
            received_at=received_at,
            max_early_data_size=max_early if has_early else None,
            transport_parameters=params,
        )


@dataclass
class TicketContents:
    """What the server seals into a ticket so that it keeps no per-ticket state."""

    psk: bytes
    cipher_suite: int
    alpn: str
    server_name: str | None
    created_at: float
    age_add: int
    lifetime: int
    max_early_data_size: int
    transport_parameters: bytes

    def encode(self) -> bytes:
        w = Writer()
        w.u8(_SERVER_FORMAT)
        w.opaque(1, self.psk)
        w.u16(self.cipher_suite)
        _write_str(w, self.alpn)
        _write_str(w, self.server_name)
        w.raw(_DOUBLE.pack(self.created_at))
        w.u32(self.age_add)
        w.u32(self.lifetime)
        w.u32(self.max_early_data_size)
        w.opaque(3, self.transport_parameters)
        return w.data()

    @classmethod
    def decode(cls, data: bytes) -> TicketContents | None:
        """None when ``data`` is not a ticket of this format."""
        try:
            r = Reader(data)
            if r.u8() != _SERVER_FORMAT:
                return None
            psk = r.opaque(1)
            suite = r.u16()
            alpn = _read_str(r)
            server_name = _read_str(r)
            (created_at,) = _DOUBLE.unpack(r.raw(8))
            contents = cls(
                psk=psk,
                cipher_suite=suite,
                alpn=alpn or "",
                server_name=server_name,
                created_at=created_at,
                age_add=r.u32(),
                lifetime=r.u32(),
                max_early_data_size=r.u32(),
                transport_parameters=r.opaque(3),
            )
            r.expect_end("ticket")
        except (CryptoError, UnicodeDecodeError):
            return None
        return contents


class TicketKeys:
    """AES-256-GCM keys sealing server tickets: a current key and the previous one.

    The current key is replaced every ``rotation_interval`` seconds (checked when
    sealing); tickets sealed under the previous key still open. Share one instance
    between all connections of a server (or pass the same ``keys`` to several servers).

    Sharing keys across servers lets a ticket resume on any of them, but 0-RTT anti-replay
    is per process: each server's :class:`ReplayFilter` knows only the tickets used on that
    server, so one ClientHello with early data can be accepted once by *each* server that
    shares the keys (RFC 8446 8; RFC 9001 9.2). Servers sharing ticket keys therefore
    have 0-RTT off by default (``Config.early_data``) unless the replay state is shared;
    a check can limit 0-RTT to requests safe to replay.

    With ``rotation_interval=None`` the keys never change by themselves: ``keys`` (1 to 8,
    newest first) come from a fleet's secrets file (:mod:`quicish.keyfile`), which every
    server loads alike; the first seals, any opens.
    """

    __slots__ = ("_keys", "_since", "rotation_interval")

    def __init__(
        self, rotation_interval: float | None = 86400.0, keys: list[bytes] | None = None
    ) -> None:
        if rotation_interval is not None and rotation_interval <= 0:
            raise ConfigError("rotation_interval must be positive")
        self.rotation_interval = rotation_interval
        raw = keys if keys else [AESGCM.generate_key(256)]
        most = 2 if rotation_interval is not None else 8
        if len(raw) > most or any(len(k) != 32 for k in raw):
            raise ConfigError(f"TicketKeys takes 1 to {most} 32-byte keys (current first)")
        self._keys: list[tuple[bytes, AESGCM]] = [(self._key_id(k), AESGCM(k)) for k in raw]
        self._since: float | None = None

    @staticmethod
    def _key_id(key: bytes) -> bytes:
        return hashlib.sha256(b"quicish ticket key" + key).digest()[:4]

    def rotate(self, now: float) -> None:
        """Start sealing with a fresh key; the current one becomes the previous one."""
        key = AESGCM.generate_key(256)
        self._keys = [(self._key_id(key), AESGCM(key)), self._keys[0]]
        self._since = now

    def seal(self, plaintext: bytes, now: float) -> bytes:
        if self._since is None:
            self._since = now
        elif self.rotation_interval is not None and now - self._since >= self.rotation_interval:
            self.rotate(now)
        key_id, aead = self._keys[0]
        nonce = os.urandom(12)
        return key_id + nonce + aead.encrypt(nonce, plaintext, key_id)

    def open(self, sealed: bytes) -> bytes | None:
        """The plaintext, or None when no current key opens it."""
        if len(sealed) < 4 + 12 + 16:
            return None
        key_id = sealed[:4]
        for kid, aead in self._keys:
            if kid == key_id:
                try:
                    return aead.decrypt(sealed[4:16], sealed[16:], key_id)
                except InvalidTag:
                    return None
        return None


class StrikeRegister(Protocol):
    """What 0-RTT anti-replay needs of a store of used ticket identities: a server accepts
    early data under a ticket only when ``check_and_add`` says its identity is new, and only
    when the ticket's age is within ``window`` seconds of what the client reports (so an
    identity need be remembered ``window`` seconds, no longer). ``now``: monotonic seconds.

    :class:`ReplayFilter` is one process's; ``quicish.workers.SharedStrikeRegister`` is
    shared by the workers of a machine. A fleet-wide store (shared by every server holding
    the ticket keys) implements the same two members; it must answer in the handshake's
    time, and when it cannot answer, answer False (0-RTT rejected, the session still
    resumes)."""

    window: float

    def check_and_add(self, identity: bytes, now: float) -> bool:
        """True when ``identity`` is new (and now remembered); False for a replay."""
        ...


class ReplayFilter:
    """Remembers single-use ticket identities for ``window`` seconds (0-RTT anti-replay).

    The server only accepts 0-RTT when the ticket age the client reports is within
    ``window`` of the age the server computes, so a replay arriving later fails that
    check and the filter need not remember it. When ``max_entries`` identities are
    held, new ones are refused (0-RTT rejected, resumption still fine) until old
    ones expire.
    """

    __slots__ = ("_order", "_seen", "max_entries", "window")

    def __init__(self, window: float = 10.0, max_entries: int = 100_000) -> None:
        if window <= 0 or max_entries <= 0:
            raise ConfigError("window and max_entries must be positive")
        self.window = window
        self.max_entries = max_entries
        self._seen: dict[bytes, float] = {}
        self._order: deque[tuple[float, bytes]] = deque()

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        order, seen = self._order, self._seen
        while order and now - order[0][0] > self.window:
            _, key = order.popleft()
            seen.pop(key, None)

    def check_and_add(self, identity: bytes, now: float) -> bool:
        """True when ``identity`` is new (and now remembered); False for a replay."""
        self._expire(now)
        key = hashlib.sha256(identity).digest()[:16]
        if key in self._seen or len(self._seen) >= self.max_entries:
            return False
        self._seen[key] = now
        self._order.append((now, key))
        return True
