"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings
from pairs import Pair, connected, make_net

from quicish.native import accelerated, pure
from quicish.proto import cid, packet_space

# Property tests: `make test` is deterministic (derandomized: the same examples on every run,
# no per-example deadline, which a loaded CI machine would miss); `make explore` searches
# with fresh random examples, many more of them (HYPOTHESIS_PROFILE=explore).
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "explore", deadline=None, max_examples=3000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=[pytest.param(pure, id="pure"), pytest.param(accelerated, id="c")])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The native core's implementation: the pure-Python twin, then the C core."""
    mod: ModuleType = request.param
    return mod


@pytest.fixture
def pair() -> Pair:
    """A client and a server with default configs, connected on a perfect network:
    ``(net, client peer, server peer)``."""
    net = make_net()
    c, s = connected(net)
    return net, c, s


@pytest.fixture(autouse=True)
def _shared_stand_ins_untouched() -> Iterator[None]:
    """What discarded packet spaces and PeerCids share between connections (issue 19:
    memory per idle connection) is never written to, whatever a test did."""
    yield
    assert not packet_space.SPENT_CRYPTO_SEND.has_pending
    assert packet_space.SPENT_CRYPTO_SEND.next_offset == 0
    assert len(packet_space.SPENT_RANGES) == 0
    assert list(packet_space.SPENT_ECN_COUNTS) == [0, 0, 0]
    assert not cid.NO_SEQUENCES
