"""``quicish serve --early-data on|off|idempotent`` and the default (on; off with
``--secrets``; on with ``--workers``) as real processes: ``quicish get --session-ticket F
--0rtt`` twice, the second run saying whether the server took its 0-RTT request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_cli import get, serve_files, url

from quicish.keyfile import FleetSecrets

SECRETS = "{secrets}"  # replaced by a fresh secrets file's path


@pytest.mark.parametrize(
    ("options", "accepted", "warned"),
    [
        ((), True, False),
        (("--early-data", "off"), False, False),
        (("--secrets", SECRETS), False, False),
        (("--secrets", SECRETS, "--early-data", "on"), True, True),
        (("--secrets", SECRETS, "--early-data", "idempotent"), True, False),
        (("--workers", "2"), True, False),
        (("--workers", "2", "--secrets", SECRETS), False, False),
    ],
)
def test_serve_early_data(
    tmp_path: Path, options: tuple[str, ...], accepted: bool, warned: bool
) -> None:
    secrets = tmp_path / "fleet.json"
    FleetSecrets.generate().save(secrets)
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.bin").write_bytes(os.urandom(100_000))
    out = tmp_path / "out"
    out.mkdir()
    served = serve_files(root, *(str(secrets) if o == SECRETS else o for o in options))
    server = next(served)
    try:
        args = (url(server, "data.bin"), "--pin", server.fingerprint, "--output", str(out))
        ticket = ("--session-ticket", str(tmp_path / "ticket.bin"), "--0rtt")
        assert get(*args, *ticket).returncode == 0
        second = get(*args, *ticket)
        assert second.returncode == 0, second.stderr
        lines = second.stdout.splitlines()
        assert "resumed: yes" in lines
        assert f"early_data_accepted: {'yes' if accepted else 'no'}" in lines
        assert (out / "data.bin").read_bytes() == (root / "data.bin").read_bytes()
    finally:
        served.close()
    assert server.proc.stderr is not None
    stderr = server.proc.stderr.read()
    assert ("replayed 0-RTT flight once" in stderr) == warned, stderr
