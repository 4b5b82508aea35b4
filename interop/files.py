"""Random payload files for the scenarios (deterministic per seed, so runs compare)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path


def make_files(directory: Path, spec: list[tuple[str, int]], seed: int) -> dict[str, str]:
    """Write each ``(name, size)``; return {name: hex SHA-256}. Reuses identical files."""
    directory.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    for name, size in spec:
        path = directory / name
        rng = random.Random(f"{seed}:{name}:{size}")
        if not (path.exists() and path.stat().st_size == size):
            path.write_bytes(rng.randbytes(size))
        digests[name] = sha256_file(path)
    return digests


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_files(out_dir: Path, expected: dict[str, str]) -> str | None:
    """None when every expected file is in ``out_dir`` with the right hash, else why not."""
    missing, wrong = [], []
    for name, digest in expected.items():
        path = out_dir / name
        if not path.is_file():
            missing.append(name)
        elif sha256_file(path) != digest:
            wrong.append(f"{name} ({path.stat().st_size} bytes)")
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"{len(missing)} of {len(expected)} file(s) missing: {', '.join(missing[:3])}{more}"
    if wrong:
        return f"SHA-256 mismatch: {', '.join(wrong[:3])}"
    return None
