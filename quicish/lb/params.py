"""One QUIC-LB configuration (draft-ietf-quic-load-balancers, "CID format"): what a load
balancer and every server of its pool share to make and read routable connection IDs; and
its file (JSON, mode 600: it holds the key), which ``quicish lb new`` writes and
``quicish serve --quic-lb`` reads."""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..keyfile import read_private, write_private

UNROUTABLE = 0b111  # the config rotation codepoint no configuration may use
MIN_SERVER_ID = 1
MIN_NONCE = 4
MAX_PLAINTEXT = 19  # server ID + nonce: a QUIC v1 CID is at most 20 bytes, one is the first
KEY_SIZE = 16  # AES-128
FORMAT = "quicish-quic-lb"  # the configuration file's "format"


@dataclass(frozen=True, slots=True)
class QuicLbConfig:
    """A QUIC-LB configuration: ``config_id`` (the config rotation bits, 0-6), the server ID
    and nonce lengths in bytes, and the 16-byte AES key of the encrypted algorithms (None:
    the plaintext algorithm, which shows every observer the server ID). With
    ``encode_length`` the first octet's low five bits carry the CID length after it
    (length self-description); otherwise they are random. ``repr`` never shows the key."""

    config_id: int
    server_id_length: int
    nonce_length: int
    key: bytes | None = None
    encode_length: bool = True

    def __post_init__(self) -> None:
        for name in ("config_id", "server_id_length", "nonce_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"QUIC-LB {name} must be an integer, not {value!r}")
        if not 0 <= self.config_id < UNROUTABLE:
            raise ConfigError(
                f"QUIC-LB config_id must be 0-6 (7, 0b111, marks unroutable CIDs), "
                f"not {self.config_id}"
            )
        if self.server_id_length < MIN_SERVER_ID:
            raise ConfigError(
                f"QUIC-LB server_id_length must be at least {MIN_SERVER_ID}, "
                f"not {self.server_id_length}"
            )
        if self.nonce_length < MIN_NONCE:
            raise ConfigError(
                f"QUIC-LB nonce_length must be at least {MIN_NONCE}, not {self.nonce_length}"
            )
        if self.server_id_length + self.nonce_length > MAX_PLAINTEXT:
            raise ConfigError(
                f"QUIC-LB server_id_length + nonce_length must be at most {MAX_PLAINTEXT} "
                f"(a CID is at most 20 bytes), not "
                f"{self.server_id_length} + {self.nonce_length}"
            )
        key = self.key
        if key is not None and (not isinstance(key, bytes) or len(key) != KEY_SIZE):
            raise ConfigError(f"QUIC-LB key must be {KEY_SIZE} bytes (AES-128) or None")
        if not isinstance(self.encode_length, bool):
            raise ConfigError("QUIC-LB encode_length must be True or False")

    def __repr__(self) -> str:
        key = "None" if self.key is None else "<16-byte key>"
        return (
            f"QuicLbConfig(config_id={self.config_id}, "
            f"server_id_length={self.server_id_length}, nonce_length={self.nonce_length}, "
            f"key={key}, encode_length={self.encode_length})"
        )

    def to_json(self) -> str:
        """The configuration file's text (JSON; the key in base64, or null)."""
        doc = {
            "format": FORMAT,
            "version": 1,
            "config_id": self.config_id,
            "server_id_length": self.server_id_length,
            "nonce_length": self.nonce_length,
            "key": None if self.key is None else base64.b64encode(self.key).decode(),
            "encode_length": self.encode_length,
        }
        return json.dumps(doc, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> QuicLbConfig:
        """Parse :meth:`to_json` text; ``ConfigError`` names what is wrong, never the key."""
        try:
            doc: Any = json.loads(text)
        except ValueError:
            raise ConfigError("QUIC-LB configuration: not a JSON document") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1:
            raise ConfigError(f'QUIC-LB configuration: not a "{FORMAT}" version 1 file')
        fields = {"config_id", "server_id_length", "nonce_length", "key", "encode_length"}
        unknown = set(doc) - fields - {"format", "version"}
        if unknown:
            raise ConfigError(f"QUIC-LB configuration: unknown fields {sorted(unknown)}")
        key = doc.get("key")
        if key is not None:
            try:
                key = base64.b64decode(str(key).encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError):
                raise ConfigError("QUIC-LB configuration: key is not valid base64") from None
        missing = fields - {"key", "encode_length"} - set(doc)
        if missing:
            raise ConfigError(f"QUIC-LB configuration: missing {sorted(missing)}")
        return cls(
            doc["config_id"],
            doc["server_id_length"],
            doc["nonce_length"],
            key,
            doc.get("encode_length", True),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QuicLbConfig:
        """Read a configuration file (refused if its group or others may access it)."""
        return cls.from_json(read_private(path, "QUIC-LB configuration"))

    def save(self, path: str | os.PathLike[str], *, replace: bool = False) -> None:
        """Write the configuration file, mode 600."""
        write_private(path, self.to_json(), "QUIC-LB configuration", replace=replace)

    @property
    def plaintext_length(self) -> int:
        """Server ID and nonce: the CID after its first octet."""
        return self.server_id_length + self.nonce_length

    @property
    def cid_length(self) -> int:
        return 1 + self.server_id_length + self.nonce_length

    @property
    def algorithm(self) -> str:
        """ "plaintext", "single-pass" (server ID + nonce is one AES block) or "four-pass"."""
        if self.key is None:
            return "plaintext"
        return "single-pass" if self.plaintext_length == KEY_SIZE else "four-pass"
