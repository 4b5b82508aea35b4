"""quicish's HTTP/3 against aioquic's, both roles, byte-exact: aioquic's HTTP/3 client
(aioquic.h3 over aioquic's asyncio client) against ``quicish serve --http3`` (a real
process, hq-interop on the same port), and ``quicish get --http3`` and ``quicish.h3``
against aioquic's HTTP/3 server."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aio_support import timed
from aioquic_h3_support import aioquic_h3_client, aioquic_h3_file_server
from h3_support import h3_client_config
from test_cli import ENV, ROOT, Served, get, serve_files

import quicish.h3 as h3

SMALL = hashlib.shake_256(b"small").digest(1024)
BIG = hashlib.shake_256(b"big").digest(10 << 20)


def _files(root: Path) -> Path:
    (root / "small.bin").write_bytes(SMALL)
    (root / "big.bin").write_bytes(BIG)
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serve_files(_files(tmp_path_factory.mktemp("h3www")), "--http3", duration=60)


@timed(60)
async def test_aioquic_h3_client_against_quicish_serve_http3(served: Served) -> None:
    async with aioquic_h3_client(served.port) as client:
        authority = f"localhost:{served.port}"
        results = await asyncio.gather(
            client.request("GET", authority, "/small.bin"),
            client.request("GET", authority, "/big.bin"),
            client.request("GET", authority, "/missing.bin"),
        )
        await asyncio.sleep(0.05)
        assert client.close_code is None  # no error closed the connection
    (small_head, small), (big_head, big), (missing_head, _) = results
    assert dict(small_head)[b":status"] == b"200"
    assert dict(small_head)[b"content-length"] == b"1024"
    assert small == SMALL
    assert dict(big_head)[b":status"] == b"200"
    assert dict(big_head)[b"content-length"] == str(len(BIG)).encode()
    assert len(big) == len(BIG)
    assert big == BIG
    assert dict(missing_head)[b":status"] == b"404"


def test_serve_http3_still_speaks_hq_interop(served: Served, tmp_path: Path) -> None:
    result = get(
        f"https://127.0.0.1:{served.port}/small.bin", "--insecure", "--output", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "small.bin").read_bytes() == SMALL


def test_quicish_get_http3_against_quicish_serve_http3(served: Served, tmp_path: Path) -> None:
    result = get(
        f"https://127.0.0.1:{served.port}/big.bin",
        f"https://127.0.0.1:{served.port}/small.bin",
        "--http3",
        "--pin",
        served.fingerprint,
        "--output",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "big.bin").read_bytes() == BIG
    assert (tmp_path / "small.bin").read_bytes() == SMALL
    assert "fetched 2 file(s)" in result.stdout


async def _quicish_get(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quicish",
        "get",
        "--http3",
        "--insecure",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
        cwd=ROOT,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@timed(60)
async def test_quicish_get_http3_against_aioquic_h3_server(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    _files(root)
    out = tmp_path / "out"
    async with aioquic_h3_file_server(root) as port:
        base = f"https://127.0.0.1:{port}"
        code, stdout, stderr = await _quicish_get(
            f"{base}/small.bin", f"{base}/big.bin", "--output", str(out)
        )
        assert code == 0, stderr
        assert (out / "small.bin").read_bytes() == SMALL
        assert (out / "big.bin").read_bytes() == BIG
        assert "fetched 2 file(s)" in stdout
        code, _, stderr = await _quicish_get(f"{base}/missing.bin", "--output", str(out))
        assert code == 1
        assert "HTTP status 404" in stderr
        assert not (out / "missing.bin").exists()


@timed(60)
async def test_quicish_h3_request_against_aioquic_h3_server(tmp_path: Path) -> None:
    async with aioquic_h3_file_server(_files(tmp_path)) as port:
        client = await h3.connect("localhost", port, config=h3_client_config())
        async with client:
            small, big, missing = await asyncio.gather(
                client.request("GET", "/small.bin"),
                client.request("GET", "/big.bin"),
                client.request("GET", "/missing.bin"),
            )
    assert (small.status, small.body) == (200, SMALL)
    assert big.status == 200
    assert big.body == BIG
    assert missing.status == 404


def test_http3_without_pylsqpack_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "pylsqpack.py").write_text("raise ImportError('hidden for this test')\n")
    env = {**ENV, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    for command in (["serve", "--http3", "--port", "0"], ["get", "--http3", "https://h:1/x"]):
        result = subprocess.run(
            [sys.executable, "-m", "quicish", *command],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=30,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "--http3 needs pylsqpack: pip install 'quicish[h3]'" in result.stderr
        assert "Traceback" not in result.stderr


def test_serve_http3_with_workers_serves_both_protocols(tmp_path: Path) -> None:
    """``serve --http3 --workers 2``: each worker picks HTTP/3 or hq-interop by ALPN."""
    (tmp_path / "www").mkdir()
    root = _files(tmp_path / "www")
    out = tmp_path / "out"
    served = serve_files(root, "--http3", "--workers", "2")
    srv = next(served)
    try:
        for extra in (("--http3",), ()):
            dest = out / (extra[0].strip("-") if extra else "hq")
            result = get(
                f"https://127.0.0.1:{srv.port}/small.bin",
                *extra,
                "--pin",
                srv.fingerprint,
                "--output",
                str(dest),
            )
            assert result.returncode == 0, result.stderr
            assert (dest / "small.bin").read_bytes() == SMALL
    finally:
        served.close()
