"""A server's 0-RTT policy: the default for a fleet, and streams held until the handshake.

0-RTT can be replayed (RFC 8446 8, RFC 9001 9.2). A strike register refuses a ticket used
twice, but only among the servers that share it: servers that share ticket keys (a fleet,
``Config.secrets``) without a fleet-wide register each accept a replayed flight once. So
:func:`resolve` turns 0-RTT off for them unless the configuration asks otherwise.

With a check (``Config.early_data`` callable), 0-RTT is accepted and each stream opened in
it is looked at: :func:`deliver_early` hands it to the application at once when the check
passes its first bytes, else once the handshake has completed. A replayed flight never
completes the handshake (the attacker lacks the client's private key share), so a request
held back runs once, for the real client only, one round trip later, and the client retries
nothing: the data was received in 0-RTT and is simply read later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from ..config import Config, EarlyStreamCheck
from ..proto.server_context import accepts_early_data
from .streams import QuicStreamReader

logger = logging.getLogger("quicish")


def resolve(config: Config, fleet_register: bool) -> Config:
    """``config`` with ``early_data`` decided (never None): the default is on, but off for a
    server with ``secrets`` unless ``fleet_register`` (its strike register spans every
    server holding the ticket keys). 0-RTT turned on explicitly there logs a warning."""
    early = config.early_data
    if early is None:
        return dataclasses.replace(config, early_data=accepts_early_data(config, fleet_register))
    if early is True and config.secrets is not None and not fleet_register:
        logger.warning(
            "0-RTT on with shared secrets and no fleet-wide strike register: each server "
            "accepts a replayed 0-RTT flight once (docs/deployment.md)"
        )
    return config


def deliver_early(
    check: EarlyStreamCheck,
    reader: QuicStreamReader,
    handshake: asyncio.Future[None],
    deliver: Callable[[], None],
) -> None:
    """A stream opened in 0-RTT: ``deliver()`` it now when ``check(stream_id, first
    bytes)`` says it is safe to replay, else when ``handshake`` succeeds (never if it
    fails). A check that raises counts as False."""
    try:
        safe = bool(check(reader.stream_id, reader.peek()))
    except Exception:
        logger.exception("early_data check failed; stream %d waits", reader.stream_id)
        safe = False
    if safe:
        deliver()
        return

    def completed(done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is None:
            deliver()

    handshake.add_done_callback(completed)
