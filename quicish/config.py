"""The one configuration type, for clients and servers alike."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .keyfile import FleetSecrets
from .lb.cids import CidFormat

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
CONGESTION_CONTROLLERS = ("cubic", "newreno", "bbr")
#: ``Config.early_data`` as a check: ``(stream_id, first_bytes) -> bool``, True when a
#: request opened in 0-RTT is safe to run before the handshake completes (replay-safe).
EarlyStreamCheck = Callable[[int, bytes], bool]
GROUP_NAMES = ("x25519", "secp256r1", "secp384r1")


VARINT_MAX = (1 << 62) - 1  # the largest value a transport parameter can carry
MAX_UDP_PAYLOAD = 65527  # RFC 9000 18.2 max_udp_payload_size


@dataclass
class Config:
    """Settings for a quicish client or server; every field is checked when the Config is
    made (``ConfigError`` names the field). Fields marked *server* only matter to a server,
    *client* only to a client. Sizes are bytes, times seconds."""

    # ---- application protocol and TLS ----------------------------------------------------
    #: ALPN protocols offered (client) or accepted (server), in preference order; a str is
    #: one protocol. Default ``["hq-interop"]``.
    alpn: list[str] | str = field(default_factory=lambda: ["hq-interop"])
    #: *server*: the certificate chain, leaf first: a PEM file's path, PEM bytes or text, or
    #: ``cryptography`` certificates.
    certificate_chain: CertificateSource | None = None
    #: *server*: the chain's private key: a PEM file's path, PEM/DER bytes, PEM text, or a
    #: ``cryptography`` key. Errors never repeat its bytes.
    private_key: KeySource | None = None
    #: *client*: True checks the server's chain against the system (or certifi) roots; a CA
    #: file's path or PEM bytes against those; False turns checking off (insecure).
    verify: TrustSource = True
    #: *client*: SHA-256 fingerprint (hex, colons allowed) of the expected leaf certificate,
    #: checked instead of the chain.
    pin: str | None = None
    #: *client*: SNI and the name the certificate must carry; default: the host connected to.
    server_name: str | None = None
    #: Cipher suites in preference order: "aes128", "aes256", "chacha20", the TLS names, or
    #: code points; None: all three.
    cipher_suites: list[str | int] | None = None
    #: Key exchange groups: "x25519", "secp256r1", "secp384r1"; None: all three.
    groups: list[str] | None = None
    #: Append TLS secrets to this file (SSLKEYLOGFILE format, for Wireshark); its directory
    #: must exist and be writable.
    keylog_file: str | os.PathLike[str] | None = None
    #: Write one qlog file per connection in this directory (``<odcid>_<role>.sqlog``,
    #: docs/qlog.md); None: the ``QLOGDIR`` environment variable decides (unset: no qlog).
    qlog_dir: str | os.PathLike[str] | None = None
    #: ``tracer(name, data)`` called with every qlog event of each connection made with
    #: this Config (``name`` without the ``quic:`` namespace, ``data`` the draft's dict).
    tracer: Callable[[str, dict[str, Any]], None] | None = None
    #: *server*: lifetime of the session tickets it issues (at most 7 days, RFC 8446).
    session_ticket_lifetime: int = 86400

    # ---- transport ---------------------------------------------------------------------
    #: "cubic", "newreno" or "bbr" (docs/congestion.md).
    congestion_control: str = "cubic"
    #: ACK frequency (draft-ietf-quic-ack-frequency, docs/congestion.md): advertise
    #: min_ack_delay and obey the peer's ACK_FREQUENCY / IMMEDIATE_ACK; when the peer
    #: advertises it too, ask a bulk receiver to acknowledge every N packets instead of
    #: every second one. False: neither (the frames are then unknown frames).
    ack_frequency: bool = False
    #: Close after this long without traffic (RFC 9000 10.1); 0: no idle timeout.
    idle_timeout: float = 30.0
    #: Send a PING after this long idle, to keep NAT bindings and the connection alive;
    #: None: off.
    keep_alive: float | None = None
    #: Seconds a handshake may go without progress (new handshake data from the peer, or
    #: ours acknowledged) from the connection's start (a client's connect(), a server's
    #: first datagram), and at most three times this in all; then it is dropped (a server
    #: silently; a client's connect() raises HandshakeTimeout). Repeated packets are no
    #: progress. Raise it for very lossy paths. None: only the idle timeout applies.
    handshake_timeout: float | None = 10.0
    #: Initial connection-level receive window (MAX_DATA), at least 1.
    max_data: int = 1 << 20
    #: Initial per-stream receive window (MAX_STREAM_DATA), at least 1.
    max_stream_data: int = 256 << 10
    #: Ceiling for the automatic growth of the connection window (at or below max_data:
    #: the window stays fixed).
    max_data_limit: int = 64 << 20
    #: Ceiling for the automatic growth of a stream's window (at or below max_stream_data:
    #: fixed).
    max_stream_data_limit: int = 16 << 20
    #: Bidirectional streams the peer may open at once.
    max_streams_bidi: int = 128
    #: Unidirectional streams the peer may open at once.
    max_streams_uni: int = 128
    #: Largest UDP payload sent (and the max_udp_payload_size advertised), 1200-65527.
    #: With ``pmtud`` the ceiling of path MTU discovery (the default 1452 fits a 1500-byte
    #: Ethernet MTU under IPv6 and IPv4 headers); without it the fixed size. 1200 fixes it.
    max_datagram_size: int = 1452
    #: Path MTU discovery (RFC 8899, docs/pmtud.md): start at 1200 bytes and probe up to
    #: ``max_datagram_size`` (and the peer's max_udp_payload_size) once the handshake is
    #: confirmed. False: every datagram may be ``max_datagram_size`` from the start.
    pmtud: bool = True
    #: Largest DATAGRAM frame accepted (RFC 9221); None: datagrams off.
    max_datagram_frame_size: int | None = None
    #: Received DATAGRAM payloads not yet read, in bytes (each counted as its length plus
    #: 64); beyond it the oldest are dropped (``stats().datagrams_dropped``).
    datagram_receive_buffer: int = 1 << 20
    #: Connection IDs of ours the peer may hold at once (at least 2, RFC 9000 18.2).
    active_connection_id_limit: int = 4
    #: Ask the peer not to migrate actively (disable_active_migration).
    disable_active_migration: bool = False
    #: Per stream, bytes a writer may queue before ``drain()`` waits.
    send_buffer_size: int = 1 << 20

    # ---- server admission (hardening; docs/security.md) ----------------------------------
    #: *server*: when to answer a new client's Initial with Retry (address validation,
    #: RFC 9000 8.1): "always" (or True), "never" (or False), or "auto": only while at least
    #: ``retry_threshold`` connections are half-open, so a flood of spoofed Initials costs
    #: one stateless answer each, not a connection.
    retry: bool | str = "auto"
    #: *server*: half-open connections from which ``retry="auto"`` sends Retry.
    retry_threshold: int = 100
    #: *server*: at most this many half-open connections (about 60 KB each); beyond, a new
    #: client gets a Retry (or nothing when already validated, or with retry "never").
    max_half_open: int = 1000
    #: *server*: the 32-byte secret stateless reset tokens are made from (HMAC(key, CID),
    #: RFC 9000 10.3.2). None: random per server. Servers behind one address (a cluster,
    #: restarts) share one; it is never derived from the TLS key.
    stateless_reset_key: bytes | None = None
    #: *server*: how long a NEW_TOKEN token validates the client's address (RFC 9000 8.1.3).
    new_token_lifetime: float = 2 * 3600.0
    #: *server*: used tokens remembered to refuse reuse (RFC 9000 8.1.4; about 130 bytes
    #: each); when full, tokens stop validating until some expire.
    new_token_register_entries: int = 100_000
    #: *server*: a :class:`quicish.lb.CidFormat` (QUIC-LB configuration and this server's
    #: ID): every CID the server issues (handshake, NEW_CONNECTION_ID, Retry) follows it,
    #: so a load balancer routes by it (docs/deployment.md). None: random 8-byte CIDs.
    cid_format: CidFormat | None = None
    #: *server*: a fleet's shared secrets: a :class:`quicish.keyfile.FleetSecrets` or the
    #: path of its file (read when the server starts; refused if group/world accessible):
    #: session-ticket keys, Retry/NEW_TOKEN token keys and the stateless-reset key, so a
    #: ticket, token or reset of one server is honoured by every other. None: this
    #: server's own random keys.
    secrets: FleetSecrets | str | os.PathLike[str] | None = None
    #: *server*: 0-RTT. True: accepted. False: refused (a ticket still resumes the session,
    #: one round trip slower). A check ``(stream_id, first_bytes) -> bool``: accepted, and a
    #: stream opened in 0-RTT goes to the application at once when the check passes its
    #: first bytes (a request safe to replay, e.g. a GET), else only once the handshake has
    #: completed, which a replayed flight never does. None: on, except for a fleet
    #: (``secrets`` set) without a fleet-wide strike register (``serve(strike_register=)``),
    #: where a 0-RTT flight can be replayed once per server (docs/deployment.md).
    early_data: bool | EarlyStreamCheck | None = None

    # ---- per-connection bounds (hardening; docs/security.md) -----------------------------
    #: Peer CIDs retired whose RETIRE_CONNECTION_ID is not yet acknowledged; a peer forcing
    #: more is closed with CONNECTION_ID_LIMIT_ERROR (at least twice
    #: active_connection_id_limit is always allowed).
    max_unacked_cid_retirements: int = 32
    #: Sent packets not in flight (ACK-only) tracked per packet-number space; past it the
    #: oldest half are forgotten.
    max_ack_only_packets: int = 512
    #: Mean number of 1-RTT packets between randomly skipped packet numbers; an ACK of a
    #: skipped one is an optimistic ACK, PROTOCOL_VIOLATION (RFC 9000 21.4). 0: no skipping.
    pn_skip_interval: int = 256
    #: Out-of-order fragments (runs of received bytes beyond the first hole) buffered per
    #: stream; more closes the connection with PROTOCOL_VIOLATION. A 16 MiB window at 30%
    #: loss has a few thousand holes.
    max_stream_fragments: int = 8192
    #: The same across all of a connection's streams.
    max_connection_fragments: int = 32768
    #: Out-of-order CRYPTO fragments per encryption level; more closes the connection with
    #: CRYPTO_BUFFER_EXCEEDED.
    max_crypto_fragments: int = 64
    #: CRYPTO bytes buffered above the read offset at the Initial level (a ClientHello or
    #: ServerHello; at least 4096, RFC 9000 7.5); Handshake and 1-RTT keep 64 KiB.
    initial_crypto_buffer: int = 16384

    def __post_init__(self) -> None:
        if isinstance(self.alpn, str):  # one protocol, never its letters
            self.alpn = [self.alpn]
        if not isinstance(self.alpn, list | tuple) or not self.alpn:
            raise ConfigError("alpn must name at least one protocol")
        for proto in self.alpn:
            if not isinstance(proto, str) or not 0 < len(proto.encode()) < 256:
                raise ConfigError(f"alpn: each protocol must be a 1-255 byte string, not {proto!r}")
        _check_credentials(self)
        if self.congestion_control not in CONGESTION_CONTROLLERS:
            raise ConfigError(
                f"congestion_control must be one of {CONGESTION_CONTROLLERS}, "
                f"not {self.congestion_control!r}"
            )
        for name, low, high in _INT_RANGES:
            _check_int(name, getattr(self, name), low, high)
        if self.max_datagram_frame_size is not None:
            _check_int("max_datagram_frame_size", self.max_datagram_frame_size, 1, VARINT_MAX)
        _check_seconds("idle_timeout", self.idle_timeout, allow_zero=True)
        _check_seconds("new_token_lifetime", self.new_token_lifetime)
        for name in ("keep_alive", "handshake_timeout"):
            if getattr(self, name) is not None:
                _check_seconds(name, getattr(self, name))
        for name in ("disable_active_migration", "pmtud", "ack_frequency"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False")
        self.retry_mode()  # validates the value
        self.cipher_suite_ids()  # validates names
        if self.groups is not None:
            unknown = [g for g in self.groups if g not in GROUP_NAMES]
            if unknown or not self.groups:
                raise ConfigError(f"groups must be a non-empty list of {GROUP_NAMES}")
        key = self.stateless_reset_key
        if key is not None and (not isinstance(key, bytes) or len(key) != 32):
            raise ConfigError("stateless_reset_key must be 32 bytes (or None: random)")
        if self.cid_format is not None and not isinstance(self.cid_format, CidFormat):
            raise ConfigError("cid_format must be a quicish.lb.CidFormat (or None)")
        if self.secrets is not None:
            if not isinstance(self.secrets, FleetSecrets | str | os.PathLike):
                raise ConfigError("secrets must be a FleetSecrets or a secrets file's path")
            if self.stateless_reset_key is not None:
                raise ConfigError("stateless_reset_key and secrets both set the reset key")
        early = self.early_data
        if early is not None and not isinstance(early, bool) and not callable(early):
            raise ConfigError("early_data must be True, False, None or a check(stream_id, data)")
        if self.keylog_file is not None:
            _check_writable("keylog_file", self.keylog_file)
        if self.qlog_dir is not None and not isinstance(self.qlog_dir, str | os.PathLike):
            raise ConfigError("qlog_dir must be a directory path (or None)")
        if self.tracer is not None and not callable(self.tracer):
            raise ConfigError("tracer must be a callable tracer(name, data) (or None)")

    @property
    def initial_datagram_size(self) -> int:
        """The datagram size a connection starts with: 1200 with ``pmtud``, else
        ``max_datagram_size``."""
        return 1200 if self.pmtud else self.max_datagram_size

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


# (field, lowest, highest) of the integer fields.
_INT_RANGES = (
    ("max_data", 1, VARINT_MAX),
    ("max_stream_data", 1, VARINT_MAX),
    ("max_data_limit", 0, VARINT_MAX),
    ("max_stream_data_limit", 0, VARINT_MAX),
    ("max_streams_bidi", 0, 1 << 60),
    ("max_streams_uni", 0, 1 << 60),
    ("max_datagram_size", 1200, MAX_UDP_PAYLOAD),
    ("datagram_receive_buffer", 0, VARINT_MAX),
    ("active_connection_id_limit", 2, 1 << 10),
    ("send_buffer_size", 1, VARINT_MAX),
    ("session_ticket_lifetime", 0, 7 * 86400),
    ("retry_threshold", 0, VARINT_MAX),
    ("max_half_open", 1, VARINT_MAX),
    ("new_token_register_entries", 1, VARINT_MAX),
    ("max_unacked_cid_retirements", 1, VARINT_MAX),
    ("max_ack_only_packets", 1, VARINT_MAX),
    ("pn_skip_interval", 0, VARINT_MAX),
    ("max_stream_fragments", 1, VARINT_MAX),
    ("max_connection_fragments", 1, VARINT_MAX),
    ("max_crypto_fragments", 1, VARINT_MAX),
    ("initial_crypto_buffer", 4096, VARINT_MAX),
)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, not {value!r}")


def _check_seconds(name: str, value: object, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        least = "zero or more" if allow_zero else "positive"
        raise ConfigError(f"{name} must be {least} seconds, not {value!r}")


def _check_writable(name: str, path: str | os.PathLike[str]) -> None:
    """A file we will append to: it is writable, or its directory is."""
    path = os.fspath(path)
    target = path if os.path.exists(path) else (os.path.dirname(os.path.abspath(path)))
    if os.path.isdir(path) or not os.access(target, os.W_OK):
        raise ConfigError(f"{name}: cannot write to {path!r}")


def _check_credentials(config: Config) -> None:
    """The credential fields have usable types (they are loaded when a server starts)."""
    if config.pin is not None:
        value = config.pin.replace(":", "").strip().lower() if isinstance(config.pin, str) else ""
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ConfigError("pin must be a SHA-256 fingerprint: 64 hex digits, colons allowed")
    if config.server_name is not None and (
        not isinstance(config.server_name, str) or not config.server_name
    ):
        raise ConfigError("server_name must be a non-empty string (or None)")
    if not isinstance(config.verify, bool | str | bytes | bytearray | os.PathLike):
        raise ConfigError("verify must be True, False, a CA file's path or PEM bytes")
    if (config.certificate_chain is None) != (config.private_key is None):
        raise ConfigError("certificate_chain and private_key go together")
