"""A Python with aiopquic for the picoquic peer (aiopquic needs Python >= 3.12).

``picoquic_python(root)`` returns ``(python, None)`` or ``(None, why)``. In order: the
``PICOQUIC_PYTHON`` environment variable (a Python that has aiopquic); ``<root>/.venv-picoquic``
when it has aiopquic and uvloop; else that venv made (or completed) from a Python 3.12 (pyenv's
newest 3.12.x, then ``python3.12`` on PATH) with ``pip install aiopquic uvloop``. uvloop, because
the other peers run on it when it is installed (``common.use_uvloop``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

AIOPQUIC = "aiopquic==0.6.1"  # the version the issue measured
UVLOOP = "uvloop>=0.19"  # as the project's "fast" extra
VENV = ".venv-picoquic"
PROBE = "import aiopquic, importlib.metadata as m; print(m.version('aiopquic'))"


def aiopquic_version(python: str, also: str = "") -> str | None:
    """aiopquic's version as ``python`` imports it (and module ``also``), or None."""
    probe = f"import {also}; {PROBE}" if also else PROBE
    try:
        done = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def pick_pyenv_version(names: list[str]) -> str | None:
    """The newest ``3.12.x`` among pyenv's version directory names (``3.12.1`` ...)."""
    found = []
    for name in names:
        m = re.fullmatch(r"3\.12\.(\d+)", name)
        if m:
            found.append((int(m.group(1)), name))
    return max(found)[1] if found else None


def base_python() -> str | None:
    """A Python 3.12 to make the venv from: pyenv's, else ``python3.12`` on PATH."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            root = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
            versions = Path(root) / "versions"
            name = pick_pyenv_version(sorted(p.name for p in versions.iterdir()))
            if name and (versions / name / "bin" / "python").exists():
                return str(versions / name / "bin" / "python")
        except (OSError, subprocess.SubprocessError):
            pass
    return shutil.which("python3.12")


def picoquic_python(root: Path) -> tuple[str | None, str | None]:
    """``(python with aiopquic, None)``, or ``(None, why not)``."""
    given = os.environ.get("PICOQUIC_PYTHON")
    if given:
        if aiopquic_version(given):
            return given, None
        return None, f"PICOQUIC_PYTHON={given} cannot import aiopquic"
    venv = root / VENV
    python = venv / "bin" / "python"
    if python.exists() and aiopquic_version(str(python), also="uvloop"):
        return str(python), None
    steps = [[str(python), "-m", "pip", "install", "-q", AIOPQUIC, UVLOOP]]
    if not python.exists():
        base = base_python()
        if base is None:
            return None, "no Python 3.12 (pyenv or python3.12 on PATH) for aiopquic"
        steps.insert(0, [base, "-m", "venv", str(venv)])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{' '.join(step[-2:])}: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["failed"]
            return None, f"{' '.join(step[-2:])}: {tail[0][:100]}"
    if not aiopquic_version(str(python)):
        return None, f"{python} cannot import aiopquic after installing it"
    return str(python), None
