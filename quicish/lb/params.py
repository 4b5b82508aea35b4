"""One QUIC-LB configuration (draft-ietf-quic-load-balancers, "CID format"): what a load
balancer and every server of its pool share to make and read routable connection IDs."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

UNROUTABLE = 0b111  # the config rotation codepoint no configuration may use
MIN_SERVER_ID = 1
MIN_NONCE = 4
MAX_PLAINTEXT = 19  # server ID + nonce: a QUIC v1 CID is at most 20 bytes, one is the first
KEY_SIZE = 16  # AES-128


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
