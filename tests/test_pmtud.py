"""The path MTU search state machine (quicish/proto/pmtud.py), alone: success, lost probes,
the ceiling, the binary search, the raise timer and black holes."""

from __future__ import annotations

import math

from quicish.proto.pmtud import (
    BASE_PLPMTU,
    BLACK_HOLE_PTOS,
    MAX_PROBES,
    MIN_STEP,
    RAISE_INTERVAL,
    Pmtud,
)


def search(pmtud: Pmtud, path_mtu: int, now: float = 0.0) -> list[int]:
    """Run the search against a path carrying up to ``path_mtu``: the sizes probed."""
    probed: list[int] = []
    while (size := pmtud.next_probe(now)) is not None:
        probed.append(size)
        pmtud.on_probe_sent(size, now)
        if size <= path_mtu:
            pmtud.on_probe_acked(size)
        else:
            pmtud.on_probe_lost(size)
        assert len(probed) < 100
    return probed


def test_the_first_probe_tries_the_ceiling_and_one_ack_ends_the_search() -> None:
    p = Pmtud(1452)
    assert p.size == BASE_PLPMTU and p.next_probe(0.0) == 1452
    p.on_probe_sent(1452, 0.0)
    assert p.next_probe(0.0) is None  # one probe at a time
    assert p.on_probe_acked(1452) == 1452
    assert p.size == 1452 and p.done
    assert p.next_probe(1e9) is None  # at the ceiling: no raise timer


def test_a_size_is_given_up_after_max_probes_losses_then_the_range_is_halved() -> None:
    p = Pmtud(1452)
    for _ in range(MAX_PROBES - 1):
        assert p.next_probe(0.0) == 1452
        p.on_probe_sent(1452, 0.0)
        p.on_probe_lost(1452)
        assert p.high == 1452
    assert p.next_probe(0.0) == 1452
    p.on_probe_sent(1452, 0.0)
    p.on_probe_lost(1452)
    assert p.high == 1451 and p.size == BASE_PLPMTU
    assert p.next_probe(0.0) == (1200 + 1451 + 1) // 2 == 1326


def test_the_search_settles_within_min_step_below_the_path_mtu() -> None:
    for path_mtu in (1200, 1250, 1300, 1399, 1400, 1451):
        p = Pmtud(1452)
        probed = search(p, path_mtu)
        assert p.done
        assert p.size <= path_mtu < p.size + MIN_STEP, (path_mtu, p.size, probed)
        assert p.high - p.low < MIN_STEP
        # three losses of each size given up, one probe for each size acknowledged
        too_big = [s for s in probed if s > path_mtu]
        assert all(too_big.count(s) == MAX_PROBES for s in set(too_big))
        assert len(probed) < 30


def test_a_large_ceiling_is_found_by_halving() -> None:
    p = Pmtud(65527)
    probed = search(p, 9000)
    assert 9000 - MIN_STEP < p.size <= 9000
    assert probed[:3] == [65527] * 3 and len(probed) < 60


def test_the_ceiling_is_at_least_the_base() -> None:
    p = Pmtud(1200)
    assert p.done and p.next_probe(0.0) is None and p.size == BASE_PLPMTU


def test_a_finished_search_below_the_ceiling_starts_again_after_the_raise_interval() -> None:
    p = Pmtud(1452)
    search(p, 1300, now=5.0)
    size = p.size
    assert p.done and p.next_search == 5.0 + RAISE_INTERVAL
    assert p.next_probe(5.0 + RAISE_INTERVAL - 1) is None
    # the path grew meanwhile: the new search tries the ceiling first and takes it
    assert p.next_probe(5.0 + RAISE_INTERVAL) == 1452
    assert p.low == size
    p.on_probe_sent(1452, 700.0)
    assert p.on_probe_acked(1452) == 1452 and p.done and p.next_search == math.inf


def test_late_or_foreign_acknowledgements_change_nothing() -> None:
    p = Pmtud(1452)
    search(p, 1300)
    size = p.size
    assert p.on_probe_acked(1452) is None and p.size == size  # a size given up long ago
    p.on_probe_lost(1400)  # not the probe in flight
    assert p.size == size and p.done


def test_black_hole_after_consecutive_ptos_goes_back_to_base_and_searches_again() -> None:
    p = Pmtud(1452)
    search(p, 1452)
    assert p.size == 1452
    for count in range(1, BLACK_HOLE_PTOS):
        assert not p.on_pto(count)
    assert p.on_pto(BLACK_HOLE_PTOS)
    assert p.size == BASE_PLPMTU and not p.done
    assert not p.on_pto(BLACK_HOLE_PTOS + 1)  # at the base already
    # the path now carries 1280: the new search finds it
    search(p, 1280)
    assert 1280 - MIN_STEP < p.size <= 1280


def test_restart_on_a_new_path() -> None:
    p = Pmtud(1452)
    search(p, 1452)
    p.on_probe_sent(1452, 0.0)  # (a probe in flight on the old path)
    p.restart()
    assert p.size == BASE_PLPMTU and p.probing is None and p.next_probe(0.0) == 1452
