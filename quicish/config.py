"""The one configuration type, for clients and servers alike."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .tls.certs import CertificateSource, KeySource, TrustSource

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

    alpn: list[str] | str = field(default_factory=lambda: ["hq-interop"])
    certificate_chain: CertificateSource | None = None
    private_key: KeySource | None = None
    verify: TrustSource = True
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
    # Received DATAGRAM payloads the application has not read yet, in bytes (each counted as
    # its length plus 64); beyond it the oldest are dropped (stats: datagrams_dropped).
    datagram_receive_buffer: int = 1 << 20
    active_connection_id_limit: int = 4
    # Peer CIDs retired whose RETIRE_CONNECTION_ID is not yet acknowledged; a peer forcing
    # more is closed with CONNECTION_ID_LIMIT_ERROR (RFC 9000 5.1.2). At least twice
    # active_connection_id_limit is allowed whatever this says.
    max_unacked_cid_retirements: int = 32
    disable_active_migration: bool = False
    send_buffer_size: int = 1 << 20  # per stream, bytes the writer may queue before drain() waits
    keylog_file: str | os.PathLike[str] | None = None
    qlog_dir: str | os.PathLike[str] | None = None  # not implemented: ConfigError if set
    # Server: when to answer a new client's Initial with Retry (address validation, RFC 9000
    # 8.1): "always" (or True), "never" (or False), or "auto": only while at least
    # ``retry_threshold`` connections are half-open (handshake not complete), so that a flood
    # of spoofed Initials costs one stateless answer each, not a connection.
    retry: bool | str = "auto"
    retry_threshold: int = 100
    # Server: at most this many half-open connections; beyond it a new client's Initial is
    # answered with Retry (dropped when its address is validated already, or retry is
    # "never"), never with a connection. Each half-open connection holds about 60 KB (RSS
    # measured with `quicish serve`), so the cap bounds them to some 60 MB.
    max_half_open: int = 1000
    # Seconds from a connection's start (a client's connect(), a server's first datagram)
    # to the end of its handshake; then the connection is dropped: a server discards its
    # state silently, a client's handshake fails. None: no deadline but the idle timeout.
    handshake_timeout: float | None = 10.0
    session_ticket_lifetime: int = 86400
    # Server: the 32-byte secret stateless reset tokens are made from (HMAC(key, CID), RFC 9000
    # 10.3.2). None: a random key per server, so a restarted server cannot reset its
    # predecessor's connections (they end by idle timeout). Servers behind one address (a
    # cluster, or restarts) share a key of their own; never derive it from the TLS key.
    stateless_reset_key: bytes | None = None
    # Server: seconds a NEW_TOKEN token validates the client's address (RFC 9000 8.1.3), and
    # how many used tokens are remembered to refuse their reuse (RFC 9000 8.1.4; about 130
    # bytes each). When that many unexpired tokens were used, tokens stop validating until
    # some expire (clients then get a Retry or the 3x limit, as without a token).
    new_token_lifetime: float = 2 * 3600.0
    new_token_register_entries: int = 100_000
    # Sent packets not in flight (ACK-only) tracked per packet-number space, at most: past
    # it the oldest half are forgotten, so a peer that never acknowledges costs bounded state.
    max_ack_only_packets: int = 512
    # Mean number of 1-RTT packets between skipped packet numbers (chosen at random): an
    # ACK of a skipped number is an optimistic ACK, PROTOCOL_VIOLATION (RFC 9000 21.4).
    # 0 turns skipping off.
    pn_skip_interval: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.alpn, str):  # one protocol, never its letters
            self.alpn = [self.alpn]
        if not self.alpn:
            raise ConfigError("alpn must name at least one protocol")
        for proto in self.alpn:
            if not isinstance(proto, str) or not 0 < len(proto.encode()) < 256:
                raise ConfigError(f"alpn: each protocol must be a 1-255 byte string, not {proto!r}")
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
        if self.datagram_receive_buffer < 0:
            raise ConfigError("datagram_receive_buffer must not be negative")
        if self.max_unacked_cid_retirements < 1:
            raise ConfigError("max_unacked_cid_retirements must be at least 1")
        if self.max_ack_only_packets < 1:
            raise ConfigError("max_ack_only_packets must be at least 1")
        if self.pn_skip_interval < 0:
            raise ConfigError("pn_skip_interval must not be negative")
        if self.handshake_timeout is not None and not self.handshake_timeout > 0:
            raise ConfigError("handshake_timeout must be positive (or None for no deadline)")
        self.retry_mode()  # validates the value
        if self.retry_threshold < 0:
            raise ConfigError("retry_threshold must not be negative")
        if self.max_half_open < 1:
            raise ConfigError("max_half_open must be at least 1")
        self.cipher_suite_ids()  # validates names
        if not self.new_token_lifetime > 0:
            raise ConfigError("new_token_lifetime must be positive (seconds)")
        if self.new_token_register_entries < 1:
            raise ConfigError("new_token_register_entries must be at least 1")
        key = self.stateless_reset_key
        if key is not None and (not isinstance(key, bytes) or len(key) != 32):
            raise ConfigError("stateless_reset_key must be 32 bytes (or None: random)")
        if self.qlog_dir is not None:  # in DESIGN.md's Config, but not built: say so
            raise ConfigError("qlog_dir: qlog output is not implemented yet (see tracer)")

    def retry_mode(self) -> str:
        """``retry`` as one of "auto", "always", "never" (True is "always", False "never")."""
        retry = self.retry
        if retry is True or retry == "always":
            return "always"
        if retry is False or retry == "never":
            return "never"
        if retry == "auto":
            return "auto"
        raise ConfigError(f'retry must be "auto", "always", "never", True or False, not {retry!r}')

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
