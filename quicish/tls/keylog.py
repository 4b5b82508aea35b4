"""SSLKEYLOGFILE output (NSS key log format) so Wireshark can decrypt quicish traffic."""

from __future__ import annotations

import os
from collections.abc import Callable

CLIENT_EARLY = "CLIENT_EARLY_TRAFFIC_SECRET"
CLIENT_HANDSHAKE = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
SERVER_HANDSHAKE = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
CLIENT_TRAFFIC_0 = "CLIENT_TRAFFIC_SECRET_0"
SERVER_TRAFFIC_0 = "SERVER_TRAFFIC_SECRET_0"

KeyLog = Callable[[str], None]


def keylog_line(label: str, client_random: bytes, secret: bytes) -> str:
    """``<label> <client_random hex> <secret hex>`` (no newline)."""
    return f"{label} {client_random.hex()} {secret.hex()}"


def keylog_file(path: str | os.PathLike[str]) -> KeyLog:
    """A key log callback appending lines to ``path`` (flushed per line)."""

    def write(line: str) -> None:
        with open(path, "a", encoding="ascii") as f:
            f.write(line + "\n")

    return write
