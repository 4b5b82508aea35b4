"""Replay the fuzzing corpus: every seed and every crash the fuzzer found
(``tests/corpus/<target>/*.hex``) and the wire regression files (``tests/corpus/wire``)
go through the same target functions ``make fuzz`` runs (``fuzz/<target>.py``), which
raise only on a real bug: an exception other than the acceptable ones or a broken
invariant (see each target's docstring and docs/fuzzing.md).
"""

from __future__ import annotations

from types import ModuleType

import pytest

from fuzz import endpoint, frames, h3, initial, packet, tls, tparams
from fuzz.common import TARGETS
from fuzz.run import all_inputs
from quicish.proto.packet_space import APPLICATION

MODULES: dict[str, ModuleType] = {
    "packet": packet, "frames": frames, "tls": tls, "tparams": tparams, "endpoint": endpoint,
    "initial": initial, "h3": h3,
}  # fmt: skip
CASES = [(name, stem, data) for name in TARGETS for stem, data in all_inputs(name)]


def test_every_target_has_a_corpus() -> None:
    assert set(MODULES) == set(TARGETS)
    for name in TARGETS:
        assert sum(1 for case in CASES if case[0] == name) >= 2, name
    assert sum(1 for _, stem, _ in CASES if stem.startswith("wire-")) >= 40


@pytest.mark.parametrize(("name", "stem", "data"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_corpus_input(name: str, stem: str, data: bytes) -> None:
    MODULES[name].one_input(data)


def test_ack_timer_not_stuck_on_an_amplification_limited_path() -> None:
    """A PING from a new client address makes the server migrate to an unvalidated path
    whose anti-amplification budget its PATH_CHALLENGE uses up; the ACK it owes cannot go
    until the peer sends more, so its deadline must not be reported as a timer (it was:
    next_timer() stayed in the past and a driver spun on handle_timer)."""
    from quicish.wire import frames as F

    session = endpoint.Session()
    session.record(5, b"\x00" + F.encode_frames([F.PingFrame()]))
    server = session.server
    assert server._paths.current.addr == (endpoint.NEW_ADDR, 40000)
    assert not server._paths.current.validated and server._paths.current.amplification_budget() < 64
    session.advance(0.05)  # raised AssertionError: server timer stuck at 0.125 (now 0.125)
    timer = server.next_timer()
    assert timer is not None and timer > session.net.now
    # the ACK goes as soon as the peer's next datagram on that path gives budget
    app = server._spaces[APPLICATION]
    assert app.ack_due_at is not None
    session.record(5, b"\x00" + F.encode_frames([F.PingFrame()]))
    assert app.ack_due_at is None
