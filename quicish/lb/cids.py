"""QUIC-LB connection IDs (draft-ietf-quic-load-balancers): ``encode`` and ``decode`` of
one CID, and :class:`CidFormat`, the generator a server issues its CIDs from.

A CID is the first octet (config rotation bits, then the length of the rest or random
bits), then server ID and nonce: as they are (plaintext algorithm), or encrypted (one AES
block when they are 16 bytes, the four-pass Feistel network otherwise).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterable

from ..errors import ConfigError
from .cipher import LbCipher
from .params import UNROUTABLE, QuicLbConfig

logger = logging.getLogger("quicish")


@functools.lru_cache(maxsize=32)
def _cipher(key: bytes, length: int) -> LbCipher:
    return LbCipher(key, length)


def first_octet(config: QuicLbConfig, random_bits: int = 0) -> int:
    """Config rotation bits, then the length of the rest (or ``random_bits``' low five)."""
    low = config.plaintext_length if config.encode_length else random_bits & 0x1F
    return (config.config_id << 5) | low


def encode(config: QuicLbConfig, server_id: bytes, nonce: bytes, random_bits: int = 0) -> bytes:
    """The CID of ``server_id`` and ``nonce`` under ``config``; ``random_bits``: the first
    octet's low bits when it does not carry the length."""
    if len(server_id) != config.server_id_length or len(nonce) != config.nonce_length:
        raise ConfigError(
            f"QUIC-LB: server ID and nonce must be {config.server_id_length} and "
            f"{config.nonce_length} bytes, not {len(server_id)} and {len(nonce)}"
        )
    body = bytes(server_id) + bytes(nonce)
    if config.key is not None:
        body = _cipher(config.key, len(body)).encrypt(body)
    return bytes((first_octet(config, random_bits),)) + body


def config_id_of(cid: bytes) -> int | None:
    """The config rotation bits of ``cid`` (None for an empty CID)."""
    return cid[0] >> 5 if cid else None


def decode(cid: bytes, config: QuicLbConfig | Iterable[QuicLbConfig]) -> bytes | None:
    """The server ID ``cid`` encodes, as a load balancer reads it; ``config``: one
    configuration, or the active ones (picked by the config rotation bits).

    None when the CID is unroutable (the draft's "Unroutable Connection IDs"): its config
    rotation bits are 0b111 or name no given configuration, or it is too short for its
    configuration. A load balancer then routes by its fallback algorithm (the 4-tuple).
    Bytes past the configured length (a server's own) are ignored."""
    cid = bytes(cid)
    if not cid:
        return None
    cr = cid[0] >> 5
    if cr == UNROUTABLE:
        return None
    found = _pick(cr, config)
    if found is None or len(cid) < found.cid_length:
        return None
    body = cid[1 : found.cid_length]
    if found.key is None:
        return body[: found.server_id_length]
    cipher = _cipher(found.key, found.plaintext_length)
    return cipher.decrypt(body, found.server_id_length)[: found.server_id_length]


def decode_nonce(cid: bytes, config: QuicLbConfig) -> bytes | None:
    """The nonce of ``cid`` (the server's view; None when unroutable under ``config``)."""
    if decode(cid, config) is None:
        return None
    body = bytes(cid[1 : config.cid_length])
    if config.key is not None:
        body = _cipher(config.key, config.plaintext_length).decrypt(body)
    return body[config.server_id_length :]


def _pick(cr: int, config: QuicLbConfig | Iterable[QuicLbConfig]) -> QuicLbConfig | None:
    if isinstance(config, QuicLbConfig):
        return config if config.config_id == cr else None
    for candidate in config:
        if candidate.config_id == cr:
            return candidate
    return None


class CidFormat:
    """What a server issues its connection IDs from (``Config.cid_format``): ``config``
    and this server's ``server_id``. Every CID is :meth:`new_cid`: length
    ``config.cid_length``, the server ID routable by a load balancer holding ``config``.

    Nonces never repeat: they are a counter from a random start, passed through a random
    permutation of this process (the four-pass network under a key of its own), so they
    show no relation to each other (the plaintext algorithm requires it) and are hard to
    guess (which the draft asks against known-plaintext attacks on the four-pass
    algorithm). About 5-9 us per CID. When the counter comes back to its start (2^32 CIDs
    with a 4-byte nonce), the nonce space is spent: the draft then wants a new
    configuration. Until one is set, running connections get no new CIDs
    (:meth:`next_cid` is None) and a new connection's CID is unroutable (config rotation
    0b111, random bytes; :meth:`new_cid`), which a load balancer routes by 4-tuple.
    """

    __slots__ = ("_count", "_counter", "_permute", "_random", "_space", "config", "server_id")

    def __init__(
        self,
        config: QuicLbConfig,
        server_id: bytes,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not isinstance(config, QuicLbConfig):
            raise ConfigError("CidFormat needs a QuicLbConfig")
        if not isinstance(server_id, bytes) or len(server_id) != config.server_id_length:
            raise ConfigError(
                f"QUIC-LB server_id must be {config.server_id_length} bytes "
                f"(the configuration's server_id_length)"
            )
        self.config = config
        self.server_id = server_id
        self._random = random_bytes
        n = config.nonce_length
        self._space = 1 << (8 * n)
        self._counter = int.from_bytes(random_bytes(n), "big")
        self._count = 0
        self._permute = LbCipher(random_bytes(16), n).encrypt

    def __repr__(self) -> str:
        return f"CidFormat({self.config!r}, server_id={self.server_id.hex()})"

    @property
    def length(self) -> int:
        """The length of every CID issued (routing by short header needs it fixed)."""
        return self.config.cid_length

    @property
    def exhausted(self) -> bool:
        """Every nonce was used: until a new configuration, no new CID for a running
        connection, and an unroutable one for a new connection."""
        return self._count >= self._space

    def next_cid(self) -> bytes | None:
        """A routable CID never issued before, or None once the nonces are spent: a
        running connection then gets no new CID (no NEW_CONNECTION_ID), as the draft
        wants a server never to reuse a nonce."""
        config = self.config
        n = config.nonce_length
        if self._count >= self._space:
            return None
        nonce = self._permute(self._counter.to_bytes(n, "big"))
        self._counter = (self._counter + 1) % self._space
        self._count += 1
        random_bits = 0 if config.encode_length else self._random(1)[0]
        return encode(config, self.server_id, nonce, random_bits)

    def new_cid(self) -> bytes:
        """A CID never issued before by this format: :meth:`next_cid`, or once the nonces
        are spent an unroutable one (for what cannot go without a CID: a new connection's
        first, a Retry's)."""
        cid = self.next_cid()
        if cid is not None:
            return cid
        if self._count == self._space:
            logger.warning(
                "QUIC-LB nonces spent: new connections get unroutable CIDs (config 0b111), "
                "running ones no new CIDs"
            )
            self._count += 1
        rest = self._random(self.config.cid_length)
        return bytes(((UNROUTABLE << 5) | (rest[0] & 0x1F),)) + rest[1:]
