"""How quicish.native picks the C core or the pure twin (fresh interpreters)."""

from __future__ import annotations

import os

from fresh_python import run_fresh

import quicish
from quicish import native
from quicish.native import accelerated, pure

PROBE = """
import logging
records = []
class Grab(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger("quicish").addHandler(Grab())
import quicish, quicish.native, importlib
importlib.import_module("quicish.native")
print(quicish.ACCELERATED, quicish.native.RangeSet.__module__, len(records))
for r in records:
    print(r.levelname, r.name, r.getMessage())
"""


def probe(**env: str) -> list[str]:
    return run_fresh(PROBE, **env)


def test_accelerated_in_this_process() -> None:
    if (
        os.environ.get("QUICISH_PURE", "") in ("", "0")
        and "QUICISH_NATIVE_MODULE" not in os.environ
    ):
        assert quicish.ACCELERATED is True
        loaded: tuple[object, object] = (native.RangeSet, native.ReassemblyBuffer)
        assert loaded == (accelerated.RangeSet, accelerated.ReassemblyBuffer)


def test_default_loads_c_core() -> None:
    assert probe() == ["True quicish.native.accelerated 0"]


def test_pure_forced() -> None:
    assert probe(QUICISH_PURE="1") == ["False quicish.native.pure 0"]
    assert probe(QUICISH_PURE="0") == ["True quicish.native.accelerated 0"]


def test_missing_extension_warns_once() -> None:
    lines = probe(QUICISH_NATIVE_MODULE="quicish.native._no_such_core")
    assert lines[0] == "False quicish.native.pure 1"
    assert lines[1].startswith("WARNING quicish quicish C core not available")
    assert "_no_such_core" in lines[1]


def test_pure_classes_are_the_twin() -> None:
    twin: object = pure.RangeSet
    assert twin is not accelerated.RangeSet
    assert issubclass(accelerated.RangeSet, pure.AbstractRangeSet)
