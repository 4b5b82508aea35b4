"""The package as a user installs it: ``python -m build`` makes an sdist and a wheel; the wheel
installs into a fresh venv without a compiler and has the C core; the sdist builds the C core;
without a compiler the sdist still installs and runs on the pure twin with one warning.

Slow (three fresh venvs and isolated builds; dependencies come from the package index or
pip's cache), so marked ``slow``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import quicish, quicish.native as n; rs = n.RangeSet(); rs.add(1, 3); "
    "print('ACCELERATED', quicish.ACCELERATED, 'ranges', list(rs))"
)
NO_COMPILER = {"CC": "false", "CXX": "false", "LDSHARED": "false"}


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("QUICISH_")}
    full_env.pop("PYTHONPATH", None)
    full_env.update(env or {})
    done = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _source_copy(dest: Path) -> Path:
    """The project's files as a clone has them (no venv, no build products)."""
    ignore = shutil.ignore_patterns(
        ".venv",
        ".git",
        "build",
        "dist",
        "*.egg-info",
        "*.so",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".hypothesis",
        "_core*.c",
        "demo",
    )
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("pkg")
    src = _source_copy(work / "src")
    _run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(src)], cwd=work)
    wheels = list((work / "dist").glob("quicish-*.whl"))
    sdists = list((work / "dist").glob("quicish-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    return wheels[0], sdists[0]


def _install_and_probe(dist: Path, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """Install ``dist`` into a fresh venv (with ``env``) and run PROBE there: its output."""
    py = _venv(tmp_path / "venv")
    _run([str(py), "-m", "pip", "install", "-q", str(dist)], cwd=tmp_path, env=env)
    return _run([str(py), "-c", PROBE], cwd=tmp_path)


def test_wheel_installs_without_a_compiler_with_the_c_core(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    out = _install_and_probe(dists[0], tmp_path, NO_COMPILER)
    assert "ACCELERATED True ranges [(1, 3)]" in out
    assert "WARNING" not in out.upper().replace("ACCELERATED", "")


def test_sdist_builds_the_c_core(dists: tuple[Path, Path], tmp_path: Path) -> None:
    out = _install_and_probe(dists[1], tmp_path)
    assert "ACCELERATED True ranges [(1, 3)]" in out


def test_sdist_without_a_compiler_runs_on_the_pure_twin_with_one_warning(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    out = _install_and_probe(dists[1], tmp_path, NO_COMPILER)
    assert "ACCELERATED False ranges [(1, 3)]" in out
    warnings = [line for line in out.splitlines() if "C core not available" in line]
    assert len(warnings) == 1, out
    assert "pure-Python twin" in warnings[0]


def test_sdist_without_a_compiler_fails_when_the_c_core_is_required(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    """QUICISH_REQUIRE_C=1 (set by the Makefile) turns the pure-twin fallback into an error."""
    py = _venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUICISH_")}
    env.pop("PYTHONPATH", None)
    env.update(NO_COMPILER, QUICISH_REQUIRE_C="1")
    done = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(dists[1])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert "quicish" in done.stdout + done.stderr
    probe = subprocess.run([str(py), "-c", "import quicish"], capture_output=True, timeout=60)
    assert probe.returncode != 0  # nothing was installed
