"""What a server loads once and shares among all its connections."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from .. import kdf
from ..config import Config
from ..errors import ConfigError
from ..keyfile import FleetSecrets
from ..tls.certs import load_certificate_chain, load_private_key
from ..tls.credentials import server_credentials
from ..tls.keylog import keylog_file
from ..tls.signatures import PrivateKey
from ..tls.tickets import ReplayFilter, StrikeRegister, TicketKeys
from .tokens import NEW_TOKEN_LIFETIME, NEW_TOKEN_REGISTER_ENTRIES, TokenRegister


@dataclass
class ServerContext:
    """Certificate, key, session-ticket keys and the 0-RTT replay filter of one server."""

    certificate_chain: list[x509.Certificate]
    private_key: PrivateKey
    ticket_keys: TicketKeys = field(default_factory=TicketKeys)
    replay_filter: StrikeRegister = field(default_factory=ReplayFilter)
    keylog: Callable[[str], None] | None = None
    issue_tickets: bool = True
    token_key: bytes = field(default_factory=lambda: os.urandom(32))  # seals Retry/NEW_TOKEN
    old_token_keys: tuple[bytes, ...] = ()  # still open tokens (a fleet's rotation)
    # Accept 0-RTT: tickets are single use, checked by replay_filter (per process, or the
    # workers' shared register). Servers sharing ticket_keys without a shared register each
    # accept a replayed 0-RTT flight once: off there by default (accepts_early_data).
    early_data: bool = True
    new_tokens: bool = True  # send NEW_TOKEN after the handshake (RFC 9000 section 8.1.3)
    # Stateless reset tokens are HMAC(reset_key, CID): Config.stateless_reset_key, or a random
    # key of this server's own. Never derived from the TLS key: every instance holding the
    # certificate could then forge resets for the others' connections.
    reset_key: bytes = field(default_factory=lambda: os.urandom(32))
    # NEW_TOKEN tokens: how long they validate and which were used already (single use).
    new_token_lifetime: float = NEW_TOKEN_LIFETIME
    new_token_register: TokenRegister = field(
        default_factory=lambda: TokenRegister(NEW_TOKEN_LIFETIME, NEW_TOKEN_REGISTER_ENTRIES)
    )
    # QUIC versions in the server's preference order for compatible version negotiation
    # (RFC 9368): (QUIC_V2, QUIC_V1) answers every client that offers v2 in v2. None: both
    # versions, in the order the client prefers them.
    versions: tuple[int, ...] | None = None
    # Added to the driver's monotonic now for the times sealed in tickets and tokens and
    # checked in them: the driver sets its wall clock minus its monotonic clock, so that
    # servers sharing the keys (whose monotonic clocks differ) agree on ages.
    clock_offset: float = 0.0
    # reset_mac(): (the key it was made for, HMAC-SHA256 under it)
    _reset_mac: tuple[bytes, Callable[[bytes], bytes]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def reset_mac(self) -> Callable[[bytes], bytes]:
        """HMAC-SHA256 under ``reset_key`` (its pads hashed once for all connections)."""
        made = self._reset_mac
        if made is None or made[0] is not self.reset_key:
            made = self._reset_mac = (self.reset_key, kdf.hmac_keyed("sha256", self.reset_key))
        return made[1]

    @property
    def token_keys(self) -> tuple[bytes, ...]:
        """The keys a token may be sealed with, newest (the one we seal with) first."""
        return (self.token_key, *self.old_token_keys)

    @classmethod
    def from_config(cls, config: Config) -> ServerContext:
        if config.certificate_chain is None or config.private_key is None:
            raise ConfigError("a server needs certificate_chain and private_key")
        keylog = keylog_file(config.keylog_file) if config.keylog_file is not None else None
        private_key = load_private_key(config.private_key)
        chain = load_certificate_chain(config.certificate_chain)
        server_credentials(private_key, tuple(chain))  # a key that does not fit fails here
        context = cls(
            certificate_chain=chain,
            private_key=private_key,
            keylog=keylog,
            early_data=accepts_early_data(config),
            reset_key=config.stateless_reset_key or os.urandom(32),
            new_token_lifetime=config.new_token_lifetime,
            new_token_register=TokenRegister(
                config.new_token_lifetime, config.new_token_register_entries
            ),
        )
        if config.secrets is not None:
            context.use_secrets(config.secrets)
        return context

    def use_secrets(self, secrets: FleetSecrets | str | os.PathLike[str]) -> None:
        """Take the ticket, token and reset keys of a fleet's secrets file (or object)."""
        if not isinstance(secrets, FleetSecrets):
            secrets = FleetSecrets.load(secrets)
        self.ticket_keys = TicketKeys(rotation_interval=None, keys=list(secrets.ticket_keys))
        self.token_key, *old = secrets.token_keys
        self.old_token_keys = tuple(old)
        self.reset_key = secrets.reset_key


def accepts_early_data(config: Config, fleet_register: bool = False) -> bool:
    """Whether a server takes 0-RTT at all: ``Config.early_data`` True or a check; None
    (the default): yes, unless it shares ``secrets`` with other servers (a fleet) and
    ``fleet_register`` is False (its strike register does not span the fleet)."""
    if config.early_data is None:
        return config.secrets is None or fleet_register
    return config.early_data is not False
