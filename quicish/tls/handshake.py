"""What the client and server handshakes share: settings, epochs, message framing per
encryption level, output and secret queues, key logging and error latching."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from cryptography import x509

from ..errors import CryptoError, ErrorCode, ProtocolError
from .alerts import Alert, alert
from .certs import TrustSource
from .credentials import ServerCredentials
from .groups import KeyPairSource
from .key_schedule import KeySchedule, Transcript
from .keylog import KeyLog, keylog_line
from .messages import frame, message_name
from .signatures import PrivateKey
from .tickets import SessionTicket, StrikeRegister, TicketKeys

logger = logging.getLogger("quicish")

MAX_MESSAGE_SIZE = 1 << 17  # largest handshake message buffered (certificate chains)


class Epoch(IntEnum):
    """QUIC encryption levels (RFC 9001 section 4.1.4)."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    ONE_RTT = 3


_EPOCHS = tuple(Epoch)

READ = "read"
WRITE = "write"


@dataclass
class Settings:
    """Validated configuration of one handshake (built by :class:`TlsEngine`)."""

    is_client: bool
    alpn_protocols: list[bytes]
    cipher_suites: list[int]
    groups: list[int]
    server_name: str | None
    verify: TrustSource
    pin: str | None
    certificate_chain: list[x509.Certificate]
    private_key: PrivateKey | None
    credentials: ServerCredentials | None  # server: checked key, encoded chain
    transport_parameters: bytes
    session_ticket: SessionTicket | None
    early_data: bool
    ticket_keys: TicketKeys | None
    replay_filter: StrikeRegister | None
    keylog: KeyLog | None
    ticket_lifetime: int
    accept_early_data: Callable[[bytes], bool] | None
    key_pairs: KeyPairSource | None = None  # ephemeral key pairs made ahead of need
    clock_offset: float = 0.0  # server: added to now for ticket times (fleet-wide clock)
    extra_extensions: list[tuple[int, bytes]] = field(default_factory=list)


# (handshake, body, whole message, now): the class's function, not a bound method, so a
# handshake does not reference itself and is freed without the cycle collector
Handler = Callable[[Any, bytes, bytes, float], None]


class Handshake:
    """Base of :class:`ClientHandshake` and :class:`ServerHandshake`.

    Subclasses set ``_expect_epoch`` and ``_expect`` (message type -> handler) as the
    handshake advances; :meth:`receive` reassembles messages per epoch and dispatches.
    """

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.output: list[tuple[Epoch, bytes]] = []
        self.secrets: list[tuple[Epoch, str, int, bytes]] = []
        self.transcript = Transcript()
        self.ks: KeySchedule | None = None
        self.cipher_suite: int | None = None
        self.alpn: str | None = None
        self.peer_transport_parameters: bytes | None = None
        self.peer_certificates: list[x509.Certificate] = []
        self.session_resumed = False
        self.early_data_accepted = False
        self.handshake_complete = False
        self.client_random = b""
        self.resumption_master_secret = b""
        self._buffers: dict[Epoch, bytearray] = {e: bytearray() for e in _EPOCHS}
        self._expect_epoch: Epoch | None = None
        self._expect: dict[int, Handler] = {}
        self._state = "start"
        self._error: ProtocolError | None = None

    # ---- framing -----------------------------------------------------------------------
    def receive(self, epoch: Epoch, data: bytes, now: float) -> None:
        if self._error is not None:
            raise self._error
        if not data:
            return
        self._guarded(self._receive, epoch if type(epoch) is Epoch else Epoch(epoch), data, now)

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """Run one step of the handshake; any failure ends it for good, with an alert."""
        try:
            step(*args)
        except ProtocolError as exc:
            self._error = exc
            raise
        except Exception as exc:  # a bug, never a peer's fault: still end with an alert
            logger.exception("TLS internal error")
            # (The text stays in the log: the reason names only the exception's type.)
            self._error = alert(Alert.INTERNAL_ERROR, type(exc).__name__)
            raise self._error from exc

    def _receive(self, epoch: Epoch, data: bytes, now: float) -> None:
        if epoch != self._expect_epoch:
            raise alert(
                Alert.UNEXPECTED_MESSAGE,
                f"handshake data at {epoch.name} while {self._state}",
            )
        buf = self._buffers[epoch]
        buf += data
        while len(buf) >= 4:
            length = int.from_bytes(buf[1:4], "big")
            if length > MAX_MESSAGE_SIZE:
                raise ProtocolError(
                    ErrorCode.CRYPTO_BUFFER_EXCEEDED, f"handshake message of {length} bytes"
                )
            if len(buf) < 4 + length:
                return
            message = bytes(buf[: 4 + length])
            del buf[: 4 + length]
            handler = self._expect.get(message[0])
            if handler is None:
                raise alert(
                    Alert.UNEXPECTED_MESSAGE,
                    f"{message_name(message[0])} at {epoch.name} while {self._state}",
                )
            handler(self, message[4:], message, now)
            if buf and self._expect_epoch != epoch:
                raise alert(Alert.UNEXPECTED_MESSAGE, f"data after a key change at {epoch.name}")

    def _expect_next(self, state: str, epoch: Epoch | None, handlers: dict[int, Handler]) -> None:
        self._state = state
        self._expect_epoch = epoch
        self._expect = handlers

    # ---- output ------------------------------------------------------------------------
    def _send(self, epoch: Epoch, msg_type: int, body: bytes, transcript: bool = True) -> bytes:
        message = frame(msg_type, body)
        if transcript:
            self.transcript.update(message)
        self._output(epoch, message)
        return message

    def _output(self, epoch: Epoch, message: bytes) -> None:
        if self.output and self.output[-1][0] == epoch:
            self.output[-1] = (epoch, self.output[-1][1] + message)
        else:
            self.output.append((epoch, message))

    def _install(
        self, epoch: Epoch, direction: str, secret: bytes, label: str, suite: int | None = None
    ) -> None:
        suite = self.cipher_suite if suite is None else suite
        assert suite is not None
        self.secrets.append((epoch, direction, suite, secret))
        if self.s.keylog is not None:
            self.s.keylog(keylog_line(label, self.client_random, secret))

    @property
    def failed(self) -> CryptoError | ProtocolError | None:
        return self._error
