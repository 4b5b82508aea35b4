"""The one configuration type, for clients and servers alike."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import ConfigError

CIPHER_SUITE_NAMES = {
    "aes128": 0x1301,
    "aes256": 0x1302,
    "chacha20": 0x1303,
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
CONGESTION_CONTROLLERS = ("cubic", "newreno")


@dataclass
class Config:
    """Settings for a quicish client or server.

    ``verify``: True checks the peer certificate against the system (or certifi) roots, a
    path checks it against that CA file, False turns verification off (insecure).
    ``pin``: a hex SHA-256 fingerprint of the expected leaf certificate, checked instead of the
    chain. ``cipher_suites``: names from ``CIPHER_SUITE_NAMES`` or TLS code points, in
    preference order; None means all three.
    """

    alpn: list[str] = field(default_factory=lambda: ["hq-interop"])
    certificate_chain: str | os.PathLike[str] | None = None
    private_key: str | os.PathLike[str] | None = None
    verify: bool | str | os.PathLike[str] = True
    pin: str | None = None
    server_name: str | None = None
    cipher_suites: list[str | int] | None = None
    groups: list[str] | None = None  # "x25519", "secp256r1", "secp384r1"; None means all
    congestion_control: str = "cubic"
    idle_timeout: float = 30.0
    keep_alive: float | None = None  # seconds between PINGs when idle; None means off
    max_data: int = 1 << 20
    max_stream_data: int = 256 << 10
    max_data_limit: int = 64 << 20  # ceiling for automatic receive-window growth
    max_stream_data_limit: int = 16 << 20
    max_streams_bidi: int = 128
    max_streams_uni: int = 128
    max_datagram_size: int = 1200
    max_datagram_frame_size: int | None = None  # RFC 9221; None means datagrams disabled
    active_connection_id_limit: int = 4
    disable_active_migration: bool = False
    send_buffer_size: int = 1 << 20  # per stream, bytes the writer may queue before drain() waits
    keylog_file: str | os.PathLike[str] | None = None
    qlog_dir: str | os.PathLike[str] | None = None  # not implemented: ConfigError if set
    retry: bool = False  # server: answer new clients with Retry to validate their address
    session_ticket_lifetime: int = 86400
    # Out-of-order fragments (runs of received bytes beyond the first hole) buffered per
    # stream and across a connection's streams; more closes the connection with
    # PROTOCOL_VIOLATION. A 16 MiB window at 30% loss has a few thousand holes.
    max_stream_fragments: int = 8192
    max_connection_fragments: int = 32768
    # CRYPTO reassembly per encryption level: out-of-order fragments, and the window of
    # bytes above the read offset (Initial: a ClientHello or ServerHello; Handshake and
    # 1-RTT keep 64 KiB for certificate chains and tickets); beyond either limit the
    # connection closes with CRYPTO_BUFFER_EXCEEDED.
    max_crypto_fragments: int = 64
    initial_crypto_buffer: int = 16384

    def __post_init__(self) -> None:
        if not self.alpn:
            raise ConfigError("alpn must name at least one protocol")
        if self.congestion_control not in CONGESTION_CONTROLLERS:
            raise ConfigError(
                f"congestion_control must be one of {CONGESTION_CONTROLLERS}, "
                f"not {self.congestion_control!r}"
            )
        if self.max_datagram_size < 1200:
            raise ConfigError("max_datagram_size must be at least 1200 (RFC 9000 section 14)")
        if self.idle_timeout < 0:
            raise ConfigError("idle_timeout must not be negative")
        for name in ("max_data", "max_stream_data", "max_streams_bidi", "max_streams_uni"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        for name in ("max_stream_fragments", "max_connection_fragments", "max_crypto_fragments"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.initial_crypto_buffer < 4096:  # RFC 9000 section 7.5
            raise ConfigError("initial_crypto_buffer must be at least 4096 (RFC 9000 7.5)")
        self.cipher_suite_ids()  # validates names
        if self.qlog_dir is not None:  # in DESIGN.md's Config, but not built: say so
            raise ConfigError("qlog_dir: qlog output is not implemented yet (see tracer)")

    def cipher_suite_ids(self) -> list[int]:
        """The configured cipher suites as TLS code points, in preference order."""
        if self.cipher_suites is None:
            return [0x1301, 0x1302, 0x1303]
        ids: list[int] = []
        for suite in self.cipher_suites:
            if isinstance(suite, int):
                if suite not in (0x1301, 0x1302, 0x1303):
                    raise ConfigError(f"unsupported cipher suite {suite:#06x}")
                ids.append(suite)
            elif suite in CIPHER_SUITE_NAMES:
                ids.append(CIPHER_SUITE_NAMES[suite])
            else:
                raise ConfigError(f"unknown cipher suite {suite!r}")
        if not ids:
            raise ConfigError("cipher_suites must not be empty")
        return ids
