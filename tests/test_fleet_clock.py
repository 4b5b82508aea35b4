"""Servers of a fleet have different monotonic clocks (each counts from its own boot): the
times sealed in session tickets and NEW_TOKEN tokens are on a shared clock
(``ServerContext.clock_offset``, which ``serve()`` sets to wall minus monotonic when
``Config.secrets`` is set), so a ticket or token from server A is judged fresh on server
B. Sans-IO: A's monotonic clock reads 600,000 s and B's 100,000 s at the same instant."""

from __future__ import annotations

import pytest
from pairs import CLIENT_ADDR, connected, make_pair
from support import server_config
from test_conn_tokens import _initial_header

from quicish.keyfile import FleetSecrets
from quicish.proto import events as ev
from quicish.proto.server_context import ServerContext
from quicish.proto.stateless import StatelessResponder
from quicish.tls.tickets import SessionTicket

A_NOW = 600_000.0  # A's monotonic clock when the test starts
B_SKEW = 500_000.0  # B booted that much later: its clock reads this much less
WALL = 1.8e9  # wall clock (Unix time) at A_NOW


def _context(secrets: FleetSecrets, offset: float) -> ServerContext:
    # 0-RTT on explicitly (a fleet's default is off): the ticket's freshness is checked.
    ctx = ServerContext.from_config(server_config(secrets=secrets, early_data=True))
    ctx.clock_offset = offset
    return ctx


def _from_a(secrets: FleetSecrets) -> tuple[bytes, bytes, float]:
    """A session ticket (in the client's own clock, which is B's here) and a NEW_TOKEN
    from server A; and A's time at the end."""
    ctx = _context(secrets, WALL - A_NOW)
    net, c, s = make_pair(context=ctx, start=A_NOW)
    connected(net, c, s)
    assert net.run_until(
        lambda: bool(c.of(ev.SessionTicketReceived)) and net.client.new_token is not None,
        c,
        s,
        timeout=5.0,
    )
    ticket = SessionTicket.from_bytes(c.of(ev.SessionTicketReceived)[0].ticket)
    ticket.received_at -= B_SKEW  # the client's clock: the same as B's in this test
    token = net.client.new_token
    assert token is not None
    return ticket.to_bytes(), token, net.now


@pytest.mark.parametrize("shared_clock", [True, False])
def test_ticket_and_token_from_a_are_fresh_on_b(shared_clock: bool) -> None:
    secrets = FleetSecrets.generate()
    ticket, token, a_end = _from_a(secrets)
    b_now = a_end - B_SKEW + 1.0  # one second later, on B's clock
    b_offset = WALL - A_NOW + B_SKEW if shared_clock else 0.0
    ctx_b = _context(secrets, b_offset)
    verdict = StatelessResponder(ctx_b, retry=True).check_initial(
        _initial_header(token, b_now), CLIENT_ADDR, b_now
    )
    assert verdict.validated == shared_clock
    net, c, s = make_pair(context=ctx_b, start=b_now, session_ticket=ticket, early_data=True)
    connected(net, c, s)
    assert net.client.session_resumed == shared_clock
    assert net.client.early_data_accepted == shared_clock
