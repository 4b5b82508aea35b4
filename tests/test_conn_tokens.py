"""NEW_TOKEN reuse (RFC 9000 section 8.1.4): a token proves the client's address once. A
second Initial with the same token (a replay, by the client or by anyone who saw it) is
treated as carrying no token: Retry when the server asks for one, else an unvalidated
address. The strike register of used tokens is bounded (entries and lifetime), and when it
is full tokens stop validating (they are an optimisation; the fallback is safe).
"""

from __future__ import annotations

import pytest
from support import client_config, server_config

from quicish import Config, ConfigError
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext
from quicish.proto.stateless import StatelessResponder
from quicish.proto.tokens import (
    NEW_TOKEN_LIFETIME,
    TokenRegister,
    open_token,
    seal_new_token,
    seal_retry_token,
)
from quicish.simlink import CLIENT_ADDR, SERVER_ADDR
from quicish.wire.packet import PacketHeader, PacketType, parse_header


def _initial_header(token: bytes, now: float = 0.0) -> PacketHeader:
    """A fresh client's first Initial (new DCID each time) carrying ``token``."""
    client = Connection(client_config(), is_client=True, token=token)
    client.connect(SERVER_ADDR, now)
    datagram = client.datagrams_to_send(now)[0][0]
    return parse_header(datagram)


def test_new_token_validates_once_then_retry() -> None:
    ctx = ServerContext.from_config(server_config())
    responder = StatelessResponder(ctx, retry=True)
    token = seal_new_token(ctx.token_key, CLIENT_ADDR, 10.0)
    first = responder.check_initial(_initial_header(token), CLIENT_ADDR, 11.0)
    assert first.accept and first.validated and first.reply is None
    for i in range(20):  # replays, each a new connection attempt (new DCID)
        again = responder.check_initial(_initial_header(token), CLIENT_ADDR, 12.0 + i)
        assert not again.accept and not again.validated
        assert again.reply is not None
        assert parse_header(again.reply).packet_type == PacketType.RETRY
    assert responder.tokens_reused == 20
    assert responder.invalid_tokens == 0  # no INVALID_TOKEN close: just as if no token


def test_reused_new_token_leaves_the_address_unvalidated_without_retry() -> None:
    ctx = ServerContext.from_config(server_config())
    responder = StatelessResponder(ctx, retry=False)
    token = seal_new_token(ctx.token_key, CLIENT_ADDR, 0.0)
    assert responder.check_initial(_initial_header(token), CLIENT_ADDR, 1.0).validated
    again = responder.check_initial(_initial_header(token), CLIENT_ADDR, 2.0)
    assert again.accept and not again.validated  # served, but under the 3x limit


def test_new_token_lifetime_is_a_config_knob() -> None:
    assert Config().new_token_lifetime == NEW_TOKEN_LIFETIME == 2 * 3600.0
    ctx = ServerContext.from_config(server_config(new_token_lifetime=60.0))
    responder = StatelessResponder(ctx, retry=True)
    token = seal_new_token(ctx.token_key, CLIENT_ADDR, 0.0)
    late = responder.check_initial(_initial_header(token), CLIENT_ADDR, 61.0)
    assert not late.accept and not late.validated  # expired: a Retry
    fresh = seal_new_token(ctx.token_key, CLIENT_ADDR, 100.0)
    assert responder.check_initial(_initial_header(fresh), CLIENT_ADDR, 159.0).validated


@pytest.mark.parametrize(
    "kwargs",
    [{"new_token_lifetime": 0}, {"new_token_lifetime": -1.0}, {"new_token_register_entries": 0}],
)
def test_token_knobs_are_validated(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        Config(**kwargs)  # type: ignore[arg-type]


def test_register_is_bounded_and_fails_closed_when_full() -> None:
    register = TokenRegister(lifetime=100.0, max_entries=50)
    for i in range(50):
        assert register.use(i.to_bytes(12, "big"), issued=float(i), now=60.0)
    assert len(register) == 50
    # Full of unexpired entries: a fresh token does not validate (and is not remembered).
    assert not register.use(b"fresh-token!", issued=59.0, now=60.0)
    assert len(register) == 50
    # Tokens issued at 0..49 expire at 100..149; by 130 the first 30 or so are gone.
    assert register.use(b"fresh-token!", issued=59.0, now=130.0)
    assert len(register) <= 21
    assert not register.use(b"fresh-token!", issued=59.0, now=131.0)  # and it is single-use
    # Everything expired: the register is empty again.
    assert register.use(b"late-token!!", issued=200.0, now=300.0)
    assert len(register) == 1


def test_register_memory_stays_bounded_under_a_flood_of_tokens() -> None:
    """20,000 distinct valid tokens through a register of 1,000 entries: never more kept."""
    ctx = ServerContext.from_config(server_config(new_token_register_entries=1000))
    responder = StatelessResponder(ctx, retry=True)
    accepted = 0
    header = _initial_header(b"")
    for i in range(20_000):
        now = i / 100
        header.token = seal_new_token(ctx.token_key, CLIENT_ADDR, now)
        accepted += responder.check_initial(header, CLIENT_ADDR, now).validated
        assert len(ctx.new_token_register) <= 1000
    assert accepted == 1000  # then full until the first of them expire (in 2 hours)


def test_retry_token_is_short_lived_and_bound_to_the_retry_cid() -> None:
    """Retry tokens: 10 s, the client's address and port, and the Retry's SCID as the
    DCID (a replay inside those bounds reaches the connection that DCID now routes to)."""
    key = bytes(32)
    token = seal_retry_token(key, CLIENT_ADDR, b"odcid-01", b"retry-id", 0.0)
    assert open_token(key, token, CLIENT_ADDR, 10.0) is not None
    assert open_token(key, token, CLIENT_ADDR, 10.5) is None
    assert open_token(key, token, (CLIENT_ADDR[0], CLIENT_ADDR[1] + 1), 1.0) is None
