"""Pieces of the packet builder and the migration on their own; the builders themselves are
tested through connections (test_conn_transfer checks the lean builder against the general
one, test_conn_amplification the budget, test_conn_migration the paths)."""

from __future__ import annotations

import itertools

import pytest

from quicish.config import Config
from quicish.proto.connection import Connection
from quicish.proto.packet_builder import next_skip
from quicish.proto.packet_space import INITIAL, PacketSpace
from quicish.proto.rtt import RttEstimator


def test_next_skip_is_random_within_twice_the_interval() -> None:
    counter = itertools.count()

    def random_bytes(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    assert next_skip(10, 0, random_bytes) == -1  # skipping off
    skips = [next_skip(10, 8, random_bytes) for _ in range(32)]
    assert all(11 <= s < 11 + 16 for s in skips)
    assert len(set(skips)) == 16  # every offset in [0, 2 * interval) comes up


def test_discarding_a_space_drops_its_keys_and_ack_state_once() -> None:
    space = PacketSpace(INITIAL, 1 << 16, 64)
    space.ack_due_at = 1.0
    space.unacked_ranges = True
    space.probes = 2
    assert space.discard()
    assert space.discarded and space.tx is None and space.rx is None
    assert space.ack_due_at is None and not space.unacked_ranges and space.probes == 0
    assert not space.discard()


def test_path_validation_timeout_is_three_of_the_larger_pto() -> None:
    conn = Connection(Config(), is_client=True)
    recovery = conn._recovery
    recovery.rtt.update(0.5, 0.0, 0.0)  # a slow path: its PTO is larger than a new path's
    new_path_pto = 3 * recovery.rtt.initial_rtt + recovery.max_ack_delay
    assert recovery.pto_interval() > new_path_pto
    assert conn._migration.validation_timeout() == 3 * recovery.pto_interval()
    recovery.rtt = RttEstimator(recovery.rtt.initial_rtt)  # no sample: a new path's PTO
    assert conn._migration.validation_timeout() == pytest.approx(3 * new_path_pto)
