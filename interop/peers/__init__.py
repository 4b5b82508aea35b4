"""The implementations in the matrix and how to start them.

``quicish``: ``python -m quicish serve|get`` from this tree. ``aioquic``: the test-only
hq-interop peer in ``aioquic_hq.py`` (aioquic's public API). Both print the same lines.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..scenarios import ClientFlags

REPO = Path(__file__).resolve().parents[2]
AIOQUIC_SCRIPT = Path(__file__).resolve().parent / "aioquic_hq.py"


@dataclass(frozen=True)
class Peer:
    name: str
    base: tuple[str, ...]  # argv prefix before "serve"/"get"
    # features this peer is known not to have, role -> feature -> reason (cell not run)
    lacks: dict[str, dict[str, str]] = field(default_factory=dict)
    # features another open issue is building: the cell still runs; a pass counts, a failure
    # is reported "unsupported: <note>; run failed: <why>". Delete entries as features land.
    pending: dict[str, str] = field(default_factory=dict)

    def server_argv(
        self,
        host: str,
        port: int,
        root: Path,
        cert: Path,
        key: Path,
        keylog: Path,
        retry: bool,
        cc: str | None = None,
        handshake_timeout: float | None = None,
    ) -> list[str]:
        argv = [
            *self.base,
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--root",
            str(root),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--keylog",
            str(keylog),
        ]
        if retry:
            argv.append("--retry")
        if cc:
            argv += ["--cc", cc]
        if handshake_timeout is not None and self.name == "quicish":
            argv += ["--handshake-timeout", str(handshake_timeout)]
        return argv

    def client_argv(
        self,
        urls: list[str],
        output: Path,
        pin: str,
        flags: ClientFlags,
        ticket: Path | None,
        handshake_timeout: float | None = None,
    ) -> list[str]:
        argv = [*self.base, "get", *urls, "--output", str(output), "--pin", pin]
        if self.name == "quicish":
            argv.append("--quiet")
            if handshake_timeout is not None:
                argv += ["--timeout", str(handshake_timeout)]
        if flags.cipher:
            argv += ["--cipher", flags.cipher]
        if flags.session_ticket and ticket is not None:
            argv += ["--session-ticket", str(ticket)]
        if flags.zero_rtt:
            argv.append("--0rtt")
        if flags.migrate:
            argv.append("--migrate")
        if flags.key_update:
            argv.append("--key-update")
        if flags.v2:
            argv.append("--v2")
        return argv

    def lacking(self, role: str, needs: tuple[str, ...]) -> str | None:
        """The reason this peer cannot take part in ``role`` for a scenario, if known."""
        for feature in needs:
            reason = self.lacks.get(role, {}).get(feature)
            if reason:
                return reason
        return None

    def pending_note(self, needs: tuple[str, ...]) -> str | None:
        for feature in needs:
            if feature in self.pending:
                return self.pending[feature]
        return None


_ISSUE7 = "issue 7 (0-RTT, Retry, migration, key update, v2) is building it"
QUICISH = Peer(
    "quicish",
    (sys.executable, "-m", "quicish"),
    pending={
        "retry": f"quicish Retry: {_ISSUE7}",
        "migrate": f"quicish active migration: {_ISSUE7}",
        "key_update": f"quicish key update: {_ISSUE7}",
        "v2": f"quicish QUIC v2: {_ISSUE7}",
    },
)
AIOQUIC = Peer(
    "aioquic",
    (sys.executable, str(AIOQUIC_SCRIPT)),
    lacks={
        "client": {
            "migrate": "aioquic 1.7.2 client: no public API to move to a new socket",
            "ecn": "aioquic 1.7.2 does not implement ECN",
        },
        "server": {"ecn": "aioquic 1.7.2 does not implement ECN"},
    },
)
PEERS = {p.name: p for p in (QUICISH, AIOQUIC)}


@dataclass(frozen=True)
class Pair:
    server: Peer
    client: Peer

    @property
    def label(self) -> str:
        return f"{self.server.name}-{self.client.name}"

    @property
    def title(self) -> str:
        return f"{self.server.name} server / {self.client.name} client"


MATRIX_PAIRS = (Pair(QUICISH, QUICISH), Pair(QUICISH, AIOQUIC), Pair(AIOQUIC, QUICISH))
SANITY_PAIR = Pair(AIOQUIC, AIOQUIC)  # harness self-check, not a matrix column


def pair_by_label(label: str) -> Pair:
    for pair in (*MATRIX_PAIRS, SANITY_PAIR):
        if pair.label == label:
            return pair
    raise KeyError(label)
