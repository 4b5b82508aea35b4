"""quicish/native/_core.pyi, the stub mypy checks callers of the extension types against,
matches the types: every public method and property of the C types and of the pure twin's
classes is declared, with the twin's parameter names."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

from quicish.native import accelerated, pure

STUB = Path(pure.__file__).with_name("_core.pyi")
EXTENSION_TYPES = (
    "RangeSet",
    "ReassemblyBuffer",
    "PacketCipher",
    "QlogTap",
    "BulkRecords",
    "QlogSpool",
)


def stub_classes() -> dict[str, dict[str, list[str]]]:
    """Class name -> member name -> parameter names (without self), from the stub."""
    classes: dict[str, dict[str, list[str]]] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.ClassDef):
            members = classes.setdefault(node.name, {})
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    params = [a.arg for a in item.args.args if a.arg != "self"]
                    members.setdefault(item.name, params)
    return classes


def public(cls: Any) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") or n in ("__init__", "__contains__")}


def test_stub_declares_each_extension_type() -> None:
    assert set(stub_classes()) == set(EXTENSION_TYPES)


@pytest.mark.parametrize("name", EXTENSION_TYPES)
def test_stub_members_are_the_c_types(name: str) -> None:
    declared = set(stub_classes()[name])
    c_type = getattr(accelerated, name)
    missing = {n for n in public(c_type) if not n.startswith("_")} - declared
    assert not missing, f"{name}: not in _core.pyi: {sorted(missing)}"
    extra = {n for n in declared if not n.startswith("_") and not hasattr(c_type, n)}
    assert not extra, f"{name}: in _core.pyi but not in C: {sorted(extra)}"


@pytest.mark.parametrize("name", ["RangeSet", "ReassemblyBuffer"])
def test_stub_signatures_are_the_twins(name: str) -> None:
    declared = stub_classes()[name]
    twin = getattr(pure, name)
    for member, params in declared.items():
        if member == "memory":  # C-only diagnostic
            assert not hasattr(twin, member)
            continue
        attr = inspect.getattr_static(twin, member)
        if isinstance(attr, property):
            continue
        got = [p for p in inspect.signature(attr).parameters if p != "self"]
        assert params == got, (name, member)
    twin_public = {n for n in public(twin) if not n.startswith("_")}
    assert twin_public <= set(declared), sorted(twin_public - set(declared))
