"""``python -m quicish serve`` and ``python -m quicish get`` as real processes on loopback."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "QUICISH_UVLOOP": "1"}
TIMEOUT = 30.0


class Served(NamedTuple):
    proc: subprocess.Popen[str]
    port: int
    fingerprint: str
    root: Path


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"server exited early: {proc.wait()}")
            return line
    raise AssertionError("server did not print its address in time")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("www")
    (root / "data.bin").write_bytes(os.urandom(3 << 20))
    (root / "hello.txt").write_bytes(b"hello from quicish\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "quicish", "serve", "--port", "0", "--root", str(root),
         "--duration", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        fingerprint = port = None
        while fingerprint is None or port is None:
            line = _read_line(proc, deadline)
            if m := re.search(r"fingerprint: ([0-9a-f]{64})", line):
                fingerprint = m.group(1)
            if m := re.search(r"listening on (\S+):(\d+)", line):
                port = int(m.group(2))
        yield Served(proc, port, fingerprint, root)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quicish", "get", *args],
        capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=TIMEOUT,
    )


def url(server: Served, name: str) -> str:
    return f"https://127.0.0.1:{server.port}/{name}"


def test_get_with_pin(server: Served, tmp_path: Path) -> None:
    result = get(url(server, "data.bin"), "--pin", server.fingerprint, "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data.bin").read_bytes() == (server.root / "data.bin").read_bytes()
    assert "fetched 1 file(s)" in result.stdout


def test_get_several_urls_on_one_connection(server: Served, tmp_path: Path) -> None:
    result = get(
        url(server, "data.bin"), url(server, "hello.txt"), "--pin", server.fingerprint,
        "--output", str(tmp_path), "--cipher", "chacha20",
    )
    assert result.returncode == 0, result.stderr
    for name in ("data.bin", "hello.txt"):
        assert (tmp_path / name).read_bytes() == (server.root / name).read_bytes()
    assert "fetched 2 file(s)" in result.stdout


def test_get_missing_file_fails(server: Served, tmp_path: Path) -> None:
    result = get(url(server, "nope.bin"), "--pin", server.fingerprint, "--output", str(tmp_path))
    assert result.returncode != 0
    assert "nope.bin" in result.stderr


def test_get_insecure(server: Served, tmp_path: Path) -> None:
    result = get(url(server, "hello.txt"), "--insecure", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "hello.txt").read_bytes() == b"hello from quicish\n"


def test_get_wrong_pin_fails(server: Served, tmp_path: Path) -> None:
    result = get(url(server, "hello.txt"), "--pin", "ab" * 32, "--output", str(tmp_path))
    assert result.returncode != 0
    assert "certificate" in result.stderr.lower()
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "hello.txt").exists()


def test_get_untrusted_self_signed_fails(server: Served, tmp_path: Path) -> None:
    result = get(url(server, "hello.txt"), "--output", str(tmp_path))
    assert result.returncode != 0
    assert "certificate" in result.stderr.lower()
    assert "Traceback" not in result.stderr


def test_get_bad_url(tmp_path: Path) -> None:
    result = get("http://127.0.0.1:1/x", "--insecure", "--output", str(tmp_path))
    assert result.returncode != 0
    assert "https://" in result.stderr
