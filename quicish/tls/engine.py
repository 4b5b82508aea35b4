"""``TlsEngine``: the sans-IO TLS 1.3 handshake for QUIC (RFC 8446, RFC 9001 section 4).

The connection feeds CRYPTO bytes per encryption level with :meth:`TlsEngine.receive`,
sends what :meth:`TlsEngine.pop_output` returns in CRYPTO frames of those levels, and
derives packet keys from :meth:`TlsEngine.pop_secrets`. Failures raise
``CryptoError(alert)`` (QUIC error 0x100 + alert); the engine then stays failed.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509

from ..errors import ConfigError
from .certs import TrustSource, normalize_fingerprint, trust_store
from .client import ClientHandshake
from .credentials import ServerCredentials, server_credentials
from .groups import KeyPairSource, group_ids
from .handshake import Epoch, Settings
from .key_schedule import SUPPORTED_SUITES
from .keylog import KeyLog
from .server import ServerHandshake
from .signatures import PrivateKey
from .tickets import SessionTicket, StrikeRegister, TicketKeys

__all__ = ["Epoch", "TlsEngine"]


class TlsEngine:
    """One endpoint's TLS 1.3 handshake, client or server.

    Client: ``server_name`` is sent as SNI and checked against the certificate;
    ``verify`` is True (system roots), a CA file path, or False (no check, logged);
    ``pin`` (SHA-256 hex of the leaf) replaces chain checking. ``session_ticket`` resumes
    and ``early_data`` offers 0-RTT with it.

    Server: ``certificate_chain`` (leaf first) and ``private_key`` are required;
    ``ticket_keys`` enables resumption; ``early_data`` allows 0-RTT, which also needs a
    ``replay_filter``. ``accept_early_data(remembered_transport_parameters) -> bool``
    decides whether 0-RTT fits the current settings (default: the ticket's transport
    parameters equal ``transport_parameters``). ``split_flight`` queues the ServerHello
    alone; :meth:`finish_flight` then builds the rest of the first flight. ``key_pairs``:
    ephemeral key pairs made ahead of need, taken before one is generated. ``clock_offset``
    (server): added to ``now`` for the times sealed in tickets and checked in them, so
    servers sharing ticket keys agree (the driver's wall clock minus its monotonic one).
    """

    def __init__(
        self,
        *,
        is_client: bool,
        alpn_protocols: list[str],
        cipher_suites: list[int] | None = None,
        groups: list[str] | None = None,
        server_name: str | None = None,
        verify: TrustSource = True,
        pin: str | None = None,
        certificate_chain: list[x509.Certificate] | None = None,
        private_key: PrivateKey | None = None,
        transport_parameters: bytes = b"",
        session_ticket: SessionTicket | None = None,
        early_data: bool = False,
        ticket_keys: TicketKeys | None = None,
        replay_filter: StrikeRegister | None = None,
        keylog: KeyLog | None = None,
        now: float = 0.0,
        ticket_lifetime: int = 86400,
        accept_early_data: Callable[[bytes], bool] | None = None,
        split_flight: bool = False,
        key_pairs: KeyPairSource | None = None,
        clock_offset: float = 0.0,
    ) -> None:
        if not alpn_protocols:
            raise ConfigError("alpn_protocols must name at least one protocol (QUIC needs ALPN)")
        alpn = [p.encode() for p in alpn_protocols]
        if any(not 0 < len(p) < 256 for p in alpn):
            raise ConfigError("each ALPN protocol must be 1 to 255 bytes")
        suites = (
            list(SUPPORTED_SUITES) if cipher_suites is None else [int(c) for c in cipher_suites]
        )
        if not suites or any(c not in SUPPORTED_SUITES for c in suites):
            raise ConfigError(f"cipher_suites must be a non-empty list of {SUPPORTED_SUITES}")
        try:
            group_list = group_ids(groups)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if pin is not None:
            pin = normalize_fingerprint(pin)
        chain = list(certificate_chain or [])
        credentials: ServerCredentials | None = None
        if not is_client:
            if not chain or private_key is None:
                raise ConfigError("a server needs certificate_chain and private_key")
            credentials = server_credentials(private_key, tuple(chain))
        elif pin is None and verify is not False:
            if not server_name:
                raise ConfigError("server_name is needed to verify the certificate")
            trust_store(verify)  # load (and cache) the roots now: errors are config errors
        settings = Settings(
            is_client=is_client,
            alpn_protocols=alpn,
            cipher_suites=suites,
            groups=group_list,
            server_name=server_name,
            verify=verify,
            pin=pin,
            certificate_chain=chain,
            private_key=private_key,
            credentials=credentials,
            transport_parameters=bytes(transport_parameters),
            session_ticket=session_ticket,
            early_data=early_data,
            ticket_keys=ticket_keys,
            replay_filter=replay_filter,
            keylog=keylog,
            ticket_lifetime=ticket_lifetime,
            accept_early_data=accept_early_data,
            key_pairs=key_pairs,
            clock_offset=clock_offset,
        )
        self.is_client = is_client
        self._hs: ClientHandshake | ServerHandshake = (
            ClientHandshake(settings) if is_client else ServerHandshake(settings)
        )
        if isinstance(self._hs, ServerHandshake):
            self._hs.split_flight = split_flight
        self._started = False
        self._created = now

    # ---- driving -----------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Begin: a client queues its ClientHello; a server waits for one."""
        if self._started:
            return
        self._started = True
        self._hs.start(now)

    def receive(self, epoch: Epoch, data: bytes, now: float) -> None:
        """Handshake bytes received in CRYPTO frames at ``epoch`` (any fragmentation)."""
        if not self._started:
            self.start(now)
        self._hs.receive(epoch, bytes(data), now)

    def pop_output(self) -> list[tuple[Epoch, bytes]]:
        """Handshake bytes to send, per epoch, in order."""
        out, self._hs.output = self._hs.output, []
        return out

    def pop_secrets(self) -> list[tuple[Epoch, str, int, bytes]]:
        """New traffic secrets as ``(epoch, "read" | "write", cipher suite, secret)``."""
        out, self._hs.secrets = self._hs.secrets, []
        return out

    def issue_session_ticket(self, now: float, transport_parameters: bytes) -> bool:
        """Server, after the handshake: queue a NewSessionTicket at ONE_RTT remembering
        ``transport_parameters``. False when no ticket can be issued (no ``ticket_keys``,
        or the client did not offer psk_dhe_ke)."""
        if not isinstance(self._hs, ServerHandshake):
            raise ConfigError("only a server issues session tickets")
        return self._hs.issue_session_ticket(now, transport_parameters)

    @property
    def split_flight(self) -> bool:
        """Server: queue the ServerHello alone; :meth:`finish_flight` builds the rest."""
        return isinstance(self._hs, ServerHandshake) and self._hs.split_flight

    @split_flight.setter
    def split_flight(self, value: bool) -> None:
        if isinstance(self._hs, ServerHandshake):
            self._hs.split_flight = value

    def set_transport_parameters(self, data: bytes) -> None:
        """Server: our encoded transport parameters, when they are known only after the
        engine was made; needed before the EncryptedExtensions is built (with
        ``split_flight``, before :meth:`finish_flight`)."""
        self._hs.s.transport_parameters = bytes(data)

    @property
    def flight_pending(self) -> bool:
        """Server with ``split_flight``: the ServerHello went out alone and the rest of the
        first flight waits for :meth:`finish_flight`."""
        return isinstance(self._hs, ServerHandshake) and self._hs.flight_pending

    def finish_flight(self) -> None:
        """Server: build the rest of a split first flight (EncryptedExtensions to Finished)."""
        if isinstance(self._hs, ServerHandshake):
            self._hs.finish_flight()

    def prepare_ticket(self, now: float, transport_parameters: bytes) -> None:
        """Server, while waiting for the client's Finished: make the resumption secret and
        the first session ticket ahead of need (optional; nothing is sent)."""
        if isinstance(self._hs, ServerHandshake):
            self._hs.prepare_ticket(now, transport_parameters)

    def next_read_secret(self) -> tuple[int, bytes] | None:
        """Server, waiting for the client's Finished: (suite, secret) of the 1-RTT read key
        it will install once that Finished verifies, so a caller can make the key ahead of
        need; None otherwise."""
        hs = self._hs
        return hs.next_read_secret() if isinstance(hs, ServerHandshake) else None

    @property
    def key_share_group(self) -> int:
        """The group of our first key share (of a stocked key pair: see ``key_pairs``)."""
        return self._hs.s.groups[0]

    def pop_session_tickets(self) -> list[SessionTicket]:
        """Client: tickets received since the last call."""
        if not isinstance(self._hs, ClientHandshake):
            return []
        out, self._hs.tickets = self._hs.tickets, []
        return out

    # ---- state -------------------------------------------------------------------------
    @property
    def handshake_complete(self) -> bool:
        return self._hs.handshake_complete

    @property
    def alpn(self) -> str | None:
        return self._hs.alpn

    @property
    def peer_transport_parameters(self) -> bytes | None:
        return self._hs.peer_transport_parameters

    @property
    def session_resumed(self) -> bool:
        return self._hs.session_resumed

    @property
    def early_data_accepted(self) -> bool:
        return self._hs.early_data_accepted

    @property
    def cipher_suite(self) -> int | None:
        return self._hs.cipher_suite

    @property
    def peer_certificates(self) -> list[x509.Certificate]:
        return list(self._hs.peer_certificates)

    @property
    def client_random(self) -> bytes:
        return self._hs.client_random

    @property
    def server_name(self) -> str | None:
        """Server: the SNI the client sent. Client: the configured name."""
        if isinstance(self._hs, ServerHandshake):
            return self._hs.server_name
        return self._hs.s.server_name
