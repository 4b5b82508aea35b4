"""Replay the fuzzing corpus: every seed and every crash the fuzzer found
(``tests/corpus/<target>/*.hex``) and the wire regression files (``tests/corpus/wire``)
go through the same target functions ``make fuzz`` runs (``fuzz/<target>.py``), which
raise only on a real bug: an exception other than the acceptable ones or a broken
invariant (see each target's docstring and docs/fuzzing.md).
"""

from __future__ import annotations

from types import ModuleType

import pytest

from fuzz import endpoint, frames, packet, tls, tparams
from fuzz.common import TARGETS
from fuzz.run import all_inputs

MODULES: dict[str, ModuleType] = {
    "packet": packet, "frames": frames, "tls": tls, "tparams": tparams, "endpoint": endpoint,
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
