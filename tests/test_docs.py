"""The documentation matches the code: the README's Config table names every Config field
(and nothing else), its CLI tables every option, and docs/security.md only real knobs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from support import run_readme_example

from quicish import Config
from quicish.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else None]


def test_readme_config_table_names_every_field() -> None:
    table = _section(README, "## Config")
    named = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)?", table, re.M))
    documented = {name for pair in named for name in pair if name}
    fields = {f.name for f in dataclasses.fields(Config)}
    assert documented == fields, (fields - documented, documented - fields)


def test_readme_cli_tables_name_every_option() -> None:
    parser = build_parser()
    commands = next(a.choices for a in parser._actions if isinstance(a.choices, dict))
    for name, sub in commands.items():
        table = _section(README, "## Command line")
        options = {
            o
            for a in sub._actions
            for o in a.option_strings
            if o.startswith("--") and o != "--help"
        }
        missing = {
            o
            for o in options
            if f"`{o}" not in table
            and f", `{o}" not in table
            and not re.search(rf"`[^`]*{re.escape(o)}\b", table)
        }
        assert not missing, f"quicish {name}: {sorted(missing)} not in the README"


def test_security_doc_names_only_real_knobs() -> None:
    """Every ``snake_case`` name in docs/security.md is a Config field or a stats() field
    (or one of the few other names it explains), and the main limits are there."""
    from quicish import Stats

    text = (ROOT / "docs" / "security.md").read_text()
    names = {n for n in re.findall(r"`(?:stats\(\)\.)?([a-z]+(?:_[a-z0-9]+)+)`", text)}
    known = {f.name for kind in (Config, Stats) for f in dataclasses.fields(kind)}
    assert names - known <= {"early_data"}, names - known
    for limit in (
        "max_half_open",
        "handshake_timeout",
        "max_stream_fragments",
        "max_ack_only_packets",
        "datagram_receive_buffer",
        "stateless_reset_key",
    ):
        assert limit in names


def test_readme_library_example_runs(tmp_path: Path) -> None:
    """The README's library example, as a user would paste it (on a free port)."""
    lines = run_readme_example("## Library example", tmp_path)
    assert lines[0] == "b'HELLO, QUIC'" and float(lines[1]) > 0


ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
_SOURCE_SUFFIXES = {".py", ".pyi", ".c", ".h"}


def _package_modules() -> list[str]:
    """Every source file of the package, relative to ``quicish/`` (``__init__.py`` aside)."""
    package = ROOT / "quicish"
    return sorted(
        str(p.relative_to(package))
        for p in package.rglob("*")
        if p.suffix in _SOURCE_SUFFIXES and p.name != "__init__.py" and "__pycache__" not in p.parts
    )


def test_architecture_names_every_module() -> None:
    """A module is named by its path under quicish/ (``proto/endpoint.py``), or by its bare
    name where no other module of the package shares it."""
    modules = _package_modules()
    names = [m.rsplit("/", 1)[-1] for m in modules]
    tokens = set(re.findall(r"[\w./]+\.(?:pyi|py|c|h)\b", ARCHITECTURE))
    unnamed = [
        m
        for m, name in zip(modules, names, strict=True)
        if m not in tokens
        and f"quicish/{m}" not in tokens
        and not (names.count(name) == 1 and name in tokens)
    ]
    assert unnamed == []


def test_architecture_names_only_real_files() -> None:
    modules = _package_modules()
    names = {m.rsplit("/", 1)[-1] for m in modules}
    tokens = set(re.findall(r"[\w./]+\.(?:pyi|py|c|h)\b", ARCHITECTURE))
    missing = [
        t
        for t in sorted(tokens)
        if t not in names
        and t != "Python.h"  # (CPython's, named where the page says which file includes it)
        and not (ROOT / "quicish" / t).exists()
        and not (ROOT / t).exists()
        and not any(m.endswith("/" + t) for m in modules)
    ]
    assert missing == []
