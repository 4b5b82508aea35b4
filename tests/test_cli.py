"""``python -m quicish serve`` and ``python -m quicish get`` as real processes on loopback."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Generator, Iterator
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
    lines: queue.Queue[str | None] | None = None  # the rest of the server's stdout


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The server's stdout lines, read by a thread (None at EOF)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("www")
    (root / "data.bin").write_bytes(os.urandom(3 << 20))
    (root / "hello.txt").write_bytes(b"hello from quicish\n")
    yield from serve_files(root)


def serve_files(root: Path, *options: str, duration: int = 30) -> Generator[Served, None, None]:
    """Run ``quicish serve`` on ``root`` (port 0) until the generator is closed."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quicish",
            "serve",
            "--port",
            "0",
            "--root",
            str(root),
            "--duration",
            str(duration),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    try:
        lines = _lines(proc)
        fingerprint = port = None
        while fingerprint is None or port is None:
            line = lines.get(timeout=TIMEOUT)
            assert line is not None, f"server exited early: {proc.wait()}"
            if m := re.search(r"fingerprint: ([0-9a-f]{64})", line):
                fingerprint = m.group(1)
            if m := re.search(r"listening on (\S+):(\d+)", line):
                port = int(m.group(2))
        yield Served(proc, port, fingerprint, root, lines)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(*args: str) -> subprocess.CompletedProcess[str]:
    return quicish_cli("get", *args)


def quicish_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m quicish ARGS`` run to its end, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "quicish", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=TIMEOUT,
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
        url(server, "data.bin"),
        url(server, "hello.txt"),
        "--pin",
        server.fingerprint,
        "--output",
        str(tmp_path),
        "--cipher",
        "chacha20",
    )
    assert result.returncode == 0, result.stderr
    for name in ("data.bin", "hello.txt"):
        assert (tmp_path / name).read_bytes() == (server.root / name).read_bytes()
    assert "fetched 2 file(s)" in result.stdout


def test_get_missing_file_fails(server: Served, tmp_path: Path) -> None:
    result = get(
        url(server, "nope.bin"),
        url(server, "hello.txt"),
        "--pin",
        server.fingerprint,
        "--output",
        str(tmp_path),
    )
    assert result.returncode != 0
    assert "/nope.bin: not found" in result.stderr
    assert not (tmp_path / "nope.bin").exists()  # no partial file left behind
    assert (tmp_path / "hello.txt").read_bytes() == b"hello from quicish\n"
    assert "fetched 1 file(s)" in result.stdout


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


def test_get_key_update_keylog_newreno(server: Served, tmp_path: Path) -> None:
    keylog = tmp_path / "keys.log"
    out = tmp_path / "out"
    result = get(
        url(server, "data.bin"),
        "--pin",
        server.fingerprint,
        "--output",
        str(out),
        "--key-update",
        "--keylog",
        str(keylog),
        "--cc",
        "newreno",
        "--cipher",
        "aes256",
    )
    assert result.returncode == 0, result.stderr
    assert "key_update: yes" in result.stdout
    assert (out / "data.bin").read_bytes() == (server.root / "data.bin").read_bytes()
    labels = {line.split()[0] for line in keylog.read_text().splitlines() if line.strip()}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"} <= labels


# ---- usability: one-line errors, timeouts, help, access log, progress ---------------------


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_get_unresolvable_host_is_one_line(tmp_path: Path) -> None:
    line = _one_line_error(
        get("https://no-such-host.invalid:4433/x", "--insecure", "--output", str(tmp_path))
    )
    assert "cannot resolve" in line


def test_get_timeout_when_nothing_answers(tmp_path: Path) -> None:
    """A port nobody serves: the handshake gives up after --timeout, not the idle timeout."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = get(
            f"https://127.0.0.1:{port}/x", "--insecure", "--timeout", "1", "--output", str(tmp_path)
        )
    line = _one_line_error(result)
    assert "no response from" in line and "within 1 s" in line


def test_version_and_help_for_every_option() -> None:
    from quicish import __version__
    from quicish.cli import build_parser

    out = subprocess.run(
        [sys.executable, "-m", "quicish", "--version"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0 and out.stdout.strip() == f"quicish {__version__}"
    parser = build_parser()
    subparsers = [a.choices for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    commands = subparsers[0]
    assert set(commands) == {"serve", "get", "secrets", "lb"}
    for command in [parser, *commands.values()]:
        for action in command._actions:
            if action.dest in ("help", "command"):
                continue
            assert action.help, f"{command.prog} {action.option_strings or action.dest}"


def test_serve_prints_one_access_log_line_per_request(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"a" * 1234)
    served = serve_files(root, duration=20)
    srv = next(served)
    try:
        result = get(
            url(srv, "a.txt"),
            url(srv, "missing.txt"),
            "--pin",
            srv.fingerprint,
            "--output",
            str(tmp_path / "out"),
        )
        assert result.returncode != 0  # one file is missing
        assert srv.lines is not None
        lines: list[str] = []
        while len(lines) < 2 and (line := srv.lines.get(timeout=TIMEOUT)) is not None:
            if " GET " in line:
                lines.append(line.rstrip())
    finally:
        served.close()
    assert len(lines) == 2, lines
    ok = next(line for line in lines if "/a.txt" in line)
    missing = next(line for line in lines if "/missing.txt" in line)
    assert re.match(r"127\.0\.0\.1:\d+ GET /a\.txt 200 1234 bytes \d+\.\d{3} s$", ok), ok
    assert " 404 0 bytes " in missing


def test_progress_line_counts_bytes_and_files() -> None:
    import io

    from quicish.cli import _Progress

    out = io.StringIO()
    progress = _Progress(["a.bin", "b.bin"], out)
    progress.advance(0, 1_500_000)
    progress.advance(1, 2_000)
    line = progress.line(progress._start + 1.0)
    assert line.startswith("0/2 files, 1.5 MB, 12.0 Mbit/s | a.bin 1.5 MB, b.bin 2.0 KB"), line
    progress.finish(0)
    assert progress.line(progress._start + 1.0).startswith("1/2 files")
    assert "\r" in out.getvalue()  # drawn on the line, not scrolled
    silent = io.StringIO()
    quiet = _Progress(["a.bin"], None)
    quiet.advance(0, 10)
    quiet.close()
    assert silent.getvalue() == ""
