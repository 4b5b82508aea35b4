"""Handshake work made ahead of need (sans-IO): one explicit stock, owned by a driver.

A driver that waits for its peer (or is idle between connections) can make what the next
handshake needs before it is needed: ephemeral key pairs (per key-exchange group) and, for
a client, a first DCID with its Initial packet protection (per QUIC version; Initial keys
protect nothing secret, RFC 9001 5.2). The driver makes one :class:`HandshakeStock` and
passes it to the connections it makes (``Connection(handshake_stock=...)``, as it passes a
``ServerContext``); their ``prepare()`` and ``await_hello()`` fill it and their handshakes
take from it. Each item is taken out once, never shared; the stock is bounded. A
connection without a stock makes everything when needed (the deterministic choice for
tests with their own ``random_bytes``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..tls.groups import KeyExchangePrivate, generate_key_pair
from ..wire.protection import PacketProtector, initial_secrets

CID_LENGTH = 8  # the length of a client's first DCID
MAX_KEY_PAIRS = 4  # key pairs per group, at most
MAX_INITIALS = 2  # first DCIDs with Initial keys per version, at most

KeyPair = tuple[KeyExchangePrivate, bytes]
Initial = tuple[bytes, PacketProtector, PacketProtector]  # (DCID, send, receive)


def initial_protectors(
    dcid: bytes, version: int, is_client: bool
) -> tuple[PacketProtector, PacketProtector]:
    """(send, receive) Initial packet protection for the client's first DCID ``dcid``."""
    client_secret, server_secret = initial_secrets(dcid, version)
    client = PacketProtector.from_secret(0x1301, client_secret, version)
    server = PacketProtector.from_secret(0x1301, server_secret, version)
    return (client, server) if is_client else (server, client)


class HandshakeStock:
    """Key pairs and client Initials made ahead of need, each used once."""

    def __init__(
        self,
        *,
        max_key_pairs: int = MAX_KEY_PAIRS,
        max_initials: int = MAX_INITIALS,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.max_key_pairs = max_key_pairs
        self.max_initials = max_initials
        self._random = random_bytes
        self._key_pairs: dict[int, list[KeyPair]] = {}
        self._initials: dict[int, list[Initial]] = {}

    # ---- ephemeral key pairs (TLS key shares) ------------------------------------------
    def stock_key_pair(self, group: int) -> None:
        """Make one key pair of ``group`` now, unless the stock of that group is full."""
        pairs = self._key_pairs.setdefault(group, [])
        if len(pairs) < self.max_key_pairs:
            pairs.append(generate_key_pair(group))

    def take_key_pair(self, group: int) -> KeyPair | None:
        """A stocked key pair of ``group`` (out of the stock), or None."""
        try:  # (pop, not check-then-pop: event loops in other threads may share a stock)
            return self._key_pairs[group].pop()
        except (KeyError, IndexError):
            return None

    def key_pairs(self, group: int) -> int:
        """How many key pairs of ``group`` are stocked."""
        return len(self._key_pairs.get(group, ()))

    # ---- a client's first DCID and Initial keys ----------------------------------------
    def stock_initial(self, version: int) -> None:
        """Pick a first DCID and make its client Initial protection for ``version`` now,
        unless the stock of that version is full."""
        initials = self._initials.setdefault(version, [])
        if len(initials) < self.max_initials:
            dcid = self._random(CID_LENGTH)
            initials.append((dcid, *initial_protectors(dcid, version, True)))

    def take_initial(self, version: int) -> Initial | None:
        """A stocked (DCID, send, receive) for a client of ``version``, or None."""
        try:
            return self._initials[version].pop()
        except (KeyError, IndexError):
            return None

    def initials(self, version: int) -> int:
        """How many first DCIDs with Initial keys of ``version`` are stocked."""
        return len(self._initials.get(version, ()))
