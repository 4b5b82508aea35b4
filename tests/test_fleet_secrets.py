"""A fleet's shared secrets (``Config(secrets=...)``, quicish.keyfile): the file format,
its checks, and two servers on different ports loaded from one file honouring each
other's session tickets, NEW_TOKEN tokens and stateless resets (and, from different
files, none of them)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aio_support import echo, echo_once, timed
from support import client_config, server_config

import quicish
from quicish import ConfigError, Server
from quicish.keyfile import FleetSecrets
from quicish.proto.server_context import ServerContext
from quicish.tls.tickets import TicketKeys

ROOT = Path(__file__).resolve().parent.parent


def _new_file(path: Path) -> Path:
    FleetSecrets.generate().save(path)
    return path


# ---- the file ------------------------------------------------------------------------------
def test_file_round_trip_mode_and_rotation(tmp_path: Path) -> None:
    path = _new_file(tmp_path / "fleet.json")
    assert path.stat().st_mode & 0o777 == 0o600
    secrets = FleetSecrets.load(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "quicish-secrets" and doc["version"] == 1
    assert base64.b64decode(doc["reset_key"]) == secrets.reset_key
    with pytest.raises(ConfigError, match="exists"):
        secrets.save(path)
    rotated = secrets.rotated(keep=2)
    assert rotated.ticket_keys[1:] == secrets.ticket_keys
    assert rotated.token_keys[1:] == secrets.token_keys
    assert rotated.reset_key == secrets.reset_key
    assert len(rotated.rotated(keep=2).ticket_keys) == 2
    staged = secrets.rotated(stage=True)
    assert staged.ticket_keys[0] == secrets.ticket_keys[0]  # still sealing with the current
    assert staged.token_keys[0] == secrets.token_keys[0]
    promoted = staged.promoted()
    assert promoted.ticket_keys == (staged.ticket_keys[1], secrets.ticket_keys[0])
    assert promoted.token_keys == (staged.token_keys[1], secrets.token_keys[0])
    with pytest.raises(ConfigError, match="nothing staged"):
        secrets.promoted()
    rotated.save(path, replace=True)
    assert FleetSecrets.load(path) == rotated
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660])
def test_group_or_world_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = _new_file(tmp_path / "fleet.json")
    path.chmod(mode)
    with pytest.raises(ConfigError, match=f"mode {mode:o}.*chmod 600"):
        FleetSecrets.load(path)


def _document(secrets: FleetSecrets, **change: Any) -> str:
    doc = json.loads(secrets.to_json())
    doc.update(change)
    return json.dumps(doc)


def test_bad_files_name_the_problem_never_a_key(tmp_path: Path) -> None:
    secrets = FleetSecrets.generate()
    key_texts = [base64.b64encode(k).decode() for k in (*secrets.ticket_keys, secrets.reset_key)]
    short = base64.b64encode(secrets.reset_key[:20]).decode()
    cases = [
        ("{not json", "not a JSON document"),
        (_document(secrets, format="other"), "not a secrets file"),
        (_document(secrets, version=2), "version 2 unknown"),
        (_document(secrets, extra=1), "unknown fields"),
        (_document(secrets, ticket_keys=[]), "1 to 8"),
        (_document(secrets, ticket_keys=key_texts[:1] * 2), "twice"),
        (_document(secrets, token_keys="x"), "token_keys must be a list"),
        (_document(secrets, reset_key=short), "reset_key must be 32 bytes, not 20"),
        (_document(secrets, reset_key=key_texts[1] + "!"), "reset_key is not valid base64"),
        (_document(secrets, ticket_keys=[key_texts[0], "%%%"]), r"ticket_keys\[1\]"),
    ]
    for text, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            FleetSecrets.from_json(text)
        shown = str(info.value)
        assert not any(k in shown or k[:12] in shown for k in key_texts), shown
    for shown in (repr(secrets), str(secrets), repr(quicish.Config(secrets=secrets))):
        assert not any(k[:12] in shown for k in key_texts)
        assert not any(k.hex()[:16] in shown for k in (*secrets.ticket_keys, secrets.reset_key))
        assert secrets.fingerprint in shown or "Config" in shown
    with pytest.raises(ConfigError, match="cannot open"):
        FleetSecrets.load(tmp_path / "missing.json")


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="both set the reset key"):
        quicish.Config(secrets=FleetSecrets.generate(), stateless_reset_key=os.urandom(32))
    with pytest.raises(ConfigError, match="secrets must be"):
        quicish.Config(secrets=b"raw bytes")  # type: ignore[arg-type]


def test_server_context_takes_every_key(tmp_path: Path) -> None:
    secrets = FleetSecrets.generate().rotated()
    path = tmp_path / "fleet.json"
    secrets.save(path)
    ctx = ServerContext.from_config(server_config(secrets=str(path)))
    assert ctx.reset_key == secrets.reset_key
    assert ctx.token_keys == secrets.token_keys and ctx.token_key == secrets.token_keys[0]
    old_only = TicketKeys(rotation_interval=None, keys=[secrets.ticket_keys[1]])
    sealed = old_only.seal(b"sealed under the older key", 0.0)
    assert ctx.ticket_keys.open(sealed) == b"sealed under the older key"  # any key opens
    fresh = ctx.ticket_keys.seal(b"new", 1e9)  # (never rotates by itself)
    assert TicketKeys(None, [secrets.ticket_keys[0]]).open(fresh) == b"new"  # newest seals
    assert TicketKeys(None, [secrets.ticket_keys[1]]).open(fresh) is None
    with pytest.raises(ConfigError, match="group or others"):
        path.chmod(0o644)
        ServerContext.from_config(server_config(secrets=str(path)))


def test_cli_new_rotate_show(tmp_path: Path) -> None:
    path = tmp_path / "fleet.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "quicish", "secrets", *args, str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    made = cli("new")
    assert made.returncode == 0, made.stderr
    secrets = FleetSecrets.load(path)
    assert secrets.fingerprint in made.stdout and "1 ticket keys" in made.stdout
    again = cli("new")
    assert again.returncode == 1 and "exists" in again.stderr
    staged = cli("stage")
    assert staged.returncode == 0 and "2 ticket keys, 2 token keys" in staged.stdout
    assert FleetSecrets.load(path).ticket_keys[0] == secrets.ticket_keys[0]
    assert cli("promote").returncode == 0
    assert FleetSecrets.load(path).ticket_keys[1] == secrets.ticket_keys[0]
    rotated = cli("rotate", "--keep", "2")
    assert rotated.returncode == 0 and "2 ticket keys, 2 token keys" in rotated.stdout
    assert secrets.ticket_keys[0] not in FleetSecrets.load(path).ticket_keys  # oldest gone
    shown = cli("show")
    text = path.read_text()
    assert shown.returncode == 0 and FleetSecrets.load(path).fingerprint in shown.stdout
    assert not any(part in shown.stdout for part in json.loads(text)["ticket_keys"])
    path.chmod(0o644)
    refused = cli("show")
    assert refused.returncode == 1 and "chmod 600" in refused.stderr


# ---- two servers, one file -----------------------------------------------------------------
@asynccontextmanager
async def _servers(a_file: Path, b_file: Path, **b_kw: Any) -> AsyncIterator[tuple[Server, Server]]:
    """A and B, 0-RTT on explicitly (a fleet's default is off: test_early_data_policy.py)."""
    a = await quicish.serve(
        "127.0.0.1", 0, config=server_config(secrets=a_file, early_data=True), on_stream=echo
    )
    b_kw.setdefault("early_data", True)
    b = await quicish.serve(
        "127.0.0.1", 0, config=server_config(secrets=b_file, **b_kw), on_stream=echo
    )
    async with a, b:
        yield a, b


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return _new_file(tmp_path / "fleet.json"), _new_file(tmp_path / "other.json")


async def _ticket_and_token(port: int) -> tuple[bytes, bytes]:
    async with quicish.connect("127.0.0.1", port, config=client_config()) as conn:
        assert await echo_once(conn, b"first") == b"first"
        ticket = await conn.wait_session_ticket()
        for _ in range(100):
            if conn.new_token is not None:
                break
            await asyncio.sleep(0.01)
        assert ticket is not None and conn.new_token is not None
        return ticket, conn.new_token


async def _resume(port: int, ticket: bytes) -> tuple[bool, bool]:
    conn = await quicish.connect(
        "127.0.0.1", port, config=client_config(), session_ticket=ticket, early_data=True
    )
    try:
        assert await echo_once(conn, b"early") == b"early"
        await conn.wait_connected()
        return conn.session_resumed, conn.early_data_accepted
    finally:
        conn.close()
        await conn.wait_closed()


@pytest.mark.parametrize(
    ("early_data_on_b", "accepted"), [(True, True), (False, False), (None, False)]
)
@timed()
async def test_ticket_from_a_resumes_on_b(
    files: tuple[Path, Path], early_data_on_b: bool | None, accepted: bool
) -> None:
    """B's Config.early_data: on, off, or the default, which is off for servers sharing
    secrets without a fleet-wide strike register."""
    shared, _ = files
    async with _servers(shared, shared, early_data=early_data_on_b) as (a, b):
        ticket, _ = await _ticket_and_token(a.address[1])
        resumed, early = await _resume(b.address[1], ticket)
    assert resumed
    assert early == accepted


@timed()
async def test_ticket_from_a_does_not_resume_on_b_with_another_file(
    files: tuple[Path, Path],
) -> None:
    async with _servers(*files) as (a, b):
        ticket, _ = await _ticket_and_token(a.address[1])
        resumed, early = await _resume(b.address[1], ticket)
        assert (resumed, early) == (False, False)
        assert await _resume(a.address[1], ticket) == (True, True)  # A itself still does


@pytest.mark.parametrize("same_file", [True, False])
@timed()
async def test_new_token_from_a_validates_the_address_on_b(
    files: tuple[Path, Path], same_file: bool
) -> None:
    shared, other = files
    async with _servers(shared, shared if same_file else other, retry="always") as (a, b):
        _, token = await _ticket_and_token(a.address[1])
        async with quicish.connect(
            "127.0.0.1", b.address[1], config=client_config(), token=token
        ) as conn:
            assert await echo_once(conn, b"validated?") == b"validated?"
        stateless = b._endpoint.stateless
        assert stateless is not None
        assert stateless.retries_sent == (0 if same_file else 1)


class _Switch(asyncio.DatagramProtocol):
    """A one-client UDP forwarder whose server side can be switched (a load balancer that
    sends a connection's packets to another server)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.client: tuple[str, int] | None = None
        self.listen: asyncio.DatagramTransport | None = None
        self.up: asyncio.DatagramTransport | None = None

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.listen, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self, True), local_addr=("127.0.0.1", 0)
        )
        self.up, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self, False), local_addr=("127.0.0.1", 0)
        )
        address: tuple[str, int] = self.listen.get_extra_info("sockname")[:2]
        return address

    def close(self) -> None:
        for t in (self.listen, self.up):
            if t is not None:
                t.close()


class _Side(asyncio.DatagramProtocol):
    def __init__(self, switch: _Switch, from_client: bool) -> None:
        self.switch, self.from_client = switch, from_client

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        s = self.switch
        if self.from_client:
            s.client = addr
            assert s.up is not None
            s.up.sendto(data, s.upstream)
        elif s.client is not None:
            assert s.listen is not None
            s.listen.sendto(data, s.client)


@pytest.mark.parametrize("same_file", [True, False])
@timed()
async def test_reset_from_b_ends_a_connection_of_a(
    files: tuple[Path, Path], same_file: bool
) -> None:
    shared, other = files
    async with _servers(shared, shared if same_file else other) as (a, b):
        switch = _Switch(a.address)
        port = (await switch.start())[1]
        conn = await quicish.connect("127.0.0.1", port, config=client_config(idle_timeout=1.5))
        try:
            assert await echo_once(conn, b"on A") == b"on A"
            switch.upstream = b.address  # the balancer now sends this connection to B
            _, writer = await conn.open_stream()
            writer.write(b"x" * 100)
            writer.write_eof()
            await asyncio.wait_for(conn.wait_closed(), 5)
            stateless = b._endpoint.stateless
            assert stateless is not None and stateless.resets_sent >= 1
            assert conn.close_error is not None
            if same_file:
                assert conn.close_error.reason == "stateless reset"
                assert conn.close_error.by_peer
            else:  # B's reset is not recognised: the connection just times out
                assert conn.close_error.reason != "stateless reset"
        finally:
            conn.close()
            switch.close()
