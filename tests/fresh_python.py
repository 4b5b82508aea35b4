"""Run code in a fresh interpreter whose environment has no QUICISH_* settings but the
given ones: for tests of what importing quicish picks (C core, packet cipher, fallbacks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_fresh(code: str, **env: str) -> list[str]:
    """The lines ``code`` printed; fails the test if it exited non-zero."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("QUICISH_")}
    full.update(env)
    full["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], env=full, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()
