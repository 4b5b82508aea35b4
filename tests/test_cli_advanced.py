"""The CLI's advanced options as real processes: ``serve --retry``, ``get --session-ticket F
--0rtt`` (resumption and 0-RTT on the second run) and ``get --migrate``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import Served, get, serve_files, url


def _serve(tmp_path_factory: pytest.TempPathFactory, *options: str) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("www")
    (root / "data.bin").write_bytes(os.urandom(1 << 20))
    yield from serve_files(root, *options, duration=40)


@pytest.fixture(scope="module")
def retry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory, "--retry")


@pytest.fixture(scope="module")
def v2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory, "--v2")


def test_retry_reported(retry_server: Served, tmp_path: Path) -> None:
    result = get(
        url(retry_server, "data.bin"), "--pin", retry_server.fingerprint, "--output", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "retry: yes" in result.stdout.splitlines()
    assert (tmp_path / "data.bin").read_bytes() == (retry_server.root / "data.bin").read_bytes()


def test_session_ticket_then_zero_rtt(retry_server: Served, tmp_path: Path) -> None:
    ticket = tmp_path / "ticket.bin"
    args = (
        url(retry_server, "data.bin"),
        "--pin",
        retry_server.fingerprint,
        "--output",
        str(tmp_path),
        "--session-ticket",
        str(ticket),
        "--0rtt",
    )
    first = get(*args)
    assert first.returncode == 0, first.stderr
    assert "resumed: no" in first.stdout.splitlines()
    assert ticket.stat().st_size > 0
    second = get(*args)
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert "resumed: yes" in lines and "early_data_accepted: yes" in lines
    assert (tmp_path / "data.bin").read_bytes() == (retry_server.root / "data.bin").read_bytes()


def test_migrate_mid_transfer(retry_server: Served, tmp_path: Path) -> None:
    result = get(
        url(retry_server, "data.bin"),
        "--pin",
        retry_server.fingerprint,
        "--output",
        str(tmp_path),
        "--migrate",
    )
    assert result.returncode == 0, result.stderr
    assert "migrated: yes" in result.stdout.splitlines()
    assert (tmp_path / "data.bin").read_bytes() == (retry_server.root / "data.bin").read_bytes()


def test_v2_negotiated(v2_server: Served, tmp_path: Path) -> None:
    result = get(
        url(v2_server, "data.bin"),
        "--pin",
        v2_server.fingerprint,
        "--output",
        str(tmp_path),
        "--v2",
    )
    assert result.returncode == 0, result.stderr
    assert "version: v2" in result.stdout.splitlines()
    assert (tmp_path / "data.bin").read_bytes() == (v2_server.root / "data.bin").read_bytes()
