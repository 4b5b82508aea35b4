"""Fixtures shared by the test modules."""

from __future__ import annotations

from types import ModuleType

import pytest
from pairs import Pair, connected, make_net

from quicish.native import accelerated, pure


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
