"""Which new clients a server takes on (sans-IO): it counts the half-open connections (those
whose handshake is not complete) and decides, for each client Initial that would open a new
one, whether to accept it, answer it statelessly with a Retry (RFC 9000 8.1.2), or drop it.

A half-open connection costs memory and a handshake's CPU before its client has proved it
receives at its address, so a flood of spoofed Initials must not make them without bound:

* ``"always"``: every client without a validated address gets a Retry first;
* ``"auto"``: only while ``retry_threshold`` or more connections are half-open, so that under
  a flood each further spoofed Initial costs one stateless answer and no state;
* ``"never"``: no Retry; Initials beyond the cap are dropped.

At ``max_half_open`` half-open connections, no new one is made: a client not yet validated
gets a Retry (except with ``"never"``), a validated one (a Retry or NEW_TOKEN token) is
dropped, and its client tries again after a PTO.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import Enum

RETRY_MODES = ("auto", "always", "never")


class Admit(Enum):
    """What to do with a client Initial that would open a connection."""

    ACCEPT = "accept"  # make a connection for it
    RETRY = "retry"  # answer with a Retry, keep no state
    DROP = "drop"  # ignore it


class Admission:
    """Half-open connections of one server, and the admission decision for new ones."""

    def __init__(
        self, mode: str = "auto", retry_threshold: int = 100, max_half_open: int = 1000
    ) -> None:
        if mode not in RETRY_MODES:
            raise ValueError(f"retry mode must be one of {RETRY_MODES}, not {mode!r}")
        self.mode = mode
        self.retry_threshold = retry_threshold
        self.max_half_open = max_half_open
        self._half_open: set[Hashable] = set()
        self.accepted = 0  # decisions, for stats and tests
        self.retried = 0
        self.dropped = 0

    @property
    def half_open(self) -> int:
        """How many connections are half-open now."""
        return len(self._half_open)

    @property
    def retrying(self) -> bool:
        """True while a client without a validated address gets a Retry."""
        n = len(self._half_open)
        return self.mode == "always" or (
            self.mode == "auto" and (n >= self.retry_threshold or n >= self.max_half_open)
        )

    def decide(self, validated: bool) -> Admit:
        """Accept, Retry or drop a client Initial for a new connection; ``validated``: its
        token proved the client's address."""
        full = len(self._half_open) >= self.max_half_open
        if validated:
            decision = Admit.DROP if full else Admit.ACCEPT
        elif self.retrying:
            decision = Admit.RETRY
        else:
            decision = Admit.DROP if full else Admit.ACCEPT
        if decision is Admit.ACCEPT:
            self.accepted += 1
        elif decision is Admit.RETRY:
            self.retried += 1
        else:
            self.dropped += 1
        return decision

    def opened(self, conn: Hashable) -> None:
        """``conn`` was made for an accepted Initial: it is half-open."""
        self._half_open.add(conn)

    def settled(self, conn: Hashable) -> None:
        """``conn``'s handshake completed, or it closed (again: no effect)."""
        self._half_open.discard(conn)
