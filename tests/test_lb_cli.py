"""QUIC-LB and fleet secrets from the command line: ``quicish lb new|decode``, and
``quicish serve --quic-lb FILE --server-id HEX --secrets FILE`` as a real process whose
every CID routes to its server ID and whose session tickets a second server honours."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import cert_files
from test_cli import ENV, ROOT, TIMEOUT, quicish_cli

import quicish
from quicish import ConfigError
from quicish.hq import request_line
from quicish.keyfile import FleetSecrets
from quicish.lb import CidFormat, QuicLbConfig, decode, encode

SERVE = (sys.executable, "-m", "quicish", "serve", "--port", "0")


def lb(*args: str) -> subprocess.CompletedProcess[str]:
    return quicish_cli("lb", *args)


def test_lb_new_and_decode(tmp_path: Path) -> None:
    path = tmp_path / "lb.json"
    made = lb("new", str(path), "--config-id", "3", "--server-id-length", "3")
    assert made.returncode == 0, made.stderr
    assert "four-pass, CIDs of 10 bytes" in made.stdout
    assert path.stat().st_mode & 0o777 == 0o600
    config = QuicLbConfig.load(path)
    assert (config.config_id, config.server_id_length, config.nonce_length) == (3, 3, 6)
    assert config.key is not None and json.loads(path.read_text())["key"] not in made.stdout
    cid = encode(config, b"\x0a\x0b\x0c", os.urandom(6))
    other = bytes([7 << 5]) + cid[1:]
    out = lb("decode", str(path), cid.hex(), other.hex(), "zz")
    assert out.returncode == 0
    assert out.stdout.splitlines() == [
        f"{cid.hex()}: 0a0b0c",
        f"{other.hex()}: unroutable",
        "zz: not hex",
    ]
    assert lb("new", str(path)).returncode == 1  # never over an existing file
    plain = lb("new", str(tmp_path / "plain.json"), "--plaintext", "--nonce-length", "4")
    assert plain.returncode == 0 and "plaintext, CIDs of 7 bytes" in plain.stdout
    bad = lb("new", str(tmp_path / "bad.json"), "--config-id", "7")
    assert bad.returncode == 1 and "0-6" in bad.stderr
    path.chmod(0o640)
    refused = lb("decode", str(path), cid.hex())
    assert refused.returncode == 1 and "chmod 600" in refused.stderr


def test_lb_config_file_errors_never_show_the_key() -> None:
    config = QuicLbConfig(1, 2, 6, os.urandom(16))
    doc = json.loads(config.to_json())
    assert QuicLbConfig.from_json(config.to_json()) == config
    for change, message in (
        ({"key": doc["key"][:-2] + "!!"}, "not valid base64"),
        ({"key": doc["key"][:8]}, "16 bytes"),
        ({"version": 2}, "version 1"),
        ({"nonce_length": 2}, "nonce_length"),
        ({"extra": 1}, "unknown fields"),
    ):
        with pytest.raises(ConfigError, match=message) as info:
            QuicLbConfig.from_json(json.dumps({**doc, **change}))
        assert doc["key"][:10] not in str(info.value)
    del doc["config_id"]
    with pytest.raises(ConfigError, match="missing"):
        QuicLbConfig.from_json(json.dumps(doc))


def test_serve_needs_both_quic_lb_and_server_id(tmp_path: Path) -> None:
    path = tmp_path / "lb.json"
    QuicLbConfig(0, 2, 6, os.urandom(16)).save(path)
    alone = subprocess.run(
        [*SERVE, "--quic-lb", str(path)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert alone.returncode == 2 and "go together" in alone.stderr
    short = subprocess.run(
        [*SERVE, "--quic-lb", str(path), "--server-id", "0a0b0c", "--duration", "1"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=TIMEOUT,
    )
    assert short.returncode == 1 and "server_id must be 2 bytes" in short.stderr


async def _get_hello(
    port: int, fingerprint: str, ticket: bytes | None = None
) -> tuple[bytes, list[bytes], bytes | None, bool]:
    config = quicish.Config(pin=fingerprint, server_name="localhost")
    async with quicish.connect("127.0.0.1", port, config=config, session_ticket=ticket) as conn:
        reader, writer = await conn.open_stream()
        writer.write(request_line("/hello.txt"))
        writer.write_eof()
        body = await reader.read()
        new_ticket = await conn.wait_session_ticket()
        cids = [cid for cid, _ in conn._proto._peer_cids.entries.values()]
        return body, cids, new_ticket, conn.session_resumed


@contextlib.contextmanager
def _serve(root: Path, *options: str) -> Iterator[int]:
    """``quicish serve`` with the test certificate; yields its port."""
    cert, key, _ = cert_files()
    proc = subprocess.Popen(
        [*SERVE, "--root", str(root), "--cert", cert, "--key", key, "--duration", "30", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"listening on (\S+):(\d+)", line)
        assert m is not None, (line, proc.stderr.read() if proc.stderr else "")
        yield int(m.group(2))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_with_quic_lb_and_secrets(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello from a fleet\n")
    lb_file, secrets_file = tmp_path / "lb.json", tmp_path / "fleet.json"
    config = QuicLbConfig(2, 2, 6, os.urandom(16))
    config.save(lb_file)
    FleetSecrets.generate().save(secrets_file)
    pin = cert_files()[2]
    options = ("--quic-lb", str(lb_file), "--secrets", str(secrets_file))
    with (
        _serve(root, *options, "--server-id", "0a01") as a,
        _serve(root, *options, "--server-id", "0b02") as b,
    ):
        body, cids, ticket, _ = asyncio.run(_get_hello(a, pin))
        assert body == b"hello from a fleet\n" and ticket is not None
        assert len(cids) >= 2  # the handshake CID and NEW_CONNECTION_ID ones
        assert {decode(cid, config) for cid in cids} == {b"\x0a\x01"}
        body, cids, _, resumed = asyncio.run(_get_hello(b, pin, ticket))
        assert body == b"hello from a fleet\n" and resumed  # A's ticket, on B
        assert {decode(cid, config) for cid in cids} == {b"\x0b\x02"}


def test_cid_format_validation() -> None:
    with pytest.raises(ConfigError, match="2 bytes"):
        CidFormat(QuicLbConfig(0, 2, 6, None), b"\x01")
