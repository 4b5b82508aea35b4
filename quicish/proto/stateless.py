"""What a server endpoint answers without any connection state (RFC 9000 sections 8.1, 10.3):
Retry for address validation, INVALID_TOKEN closes, and stateless resets.

Pure code, no I/O: the endpoint passes each datagram that no connection owns and sends the
reply it gets back. Also usable directly by sans-IO tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ErrorCode
from ..wire import frames as F
from ..wire.buffer import Buffer
from ..wire.packet import QUIC_V1, PacketHeader, PacketType, encode_long_header, encode_retry
from ..wire.protection import AEAD_TAG_SIZE, PacketProtector, initial_secrets
from .admission import Admission, Admit
from .cid import reset_token
from .server_context import ServerContext
from .tokens import RETRY_TOKEN, open_token, seal_retry_token, token_kind

Address = tuple[str, int]
MIN_RESET_SIZE = 21  # RFC 9000 section 10.3: 5 unpredictable bytes and the 16-byte token
RESET_SIZE = 43


@dataclass(slots=True)
class InitialVerdict:
    """What to do with a client Initial that opens a new connection."""

    accept: bool  # create a connection for it
    reply: bytes | None = None  # a Retry or a CONNECTION_CLOSE to send back statelessly
    original_dcid: bytes | None = None  # from a Retry token: for the connection's parameters
    retry_source_cid: bytes | None = None
    validated: bool = False  # the token proved the client's address


class StatelessResponder:
    """A server's stateless answers; ``retry``: validate new clients with Retry first;
    ``admission`` (instead): decides per client Initial (automatic Retry, half-open cap)."""

    def __init__(
        self,
        context: ServerContext,
        *,
        retry: bool = False,
        admission: Admission | None = None,
        cid_length: int = 8,
        random_bytes: Callable[[int], bytes] = os.urandom,
        new_cid: Callable[[], bytes] | None = None,
    ) -> None:
        """``new_cid``: where a Retry's source CID comes from (the server's QUIC-LB format,
        so the client's next Initial routes to this server; ``cid_length`` its length);
        None: random bytes."""
        self.context = context
        self.retry = retry
        self.admission = admission
        self.cid_length = cid_length
        self._random = random_bytes
        self._new_cid = new_cid
        self.retries_sent = 0
        self.invalid_tokens = 0
        self.resets_sent = 0
        self.tokens_reused = 0  # NEW_TOKEN tokens refused as used already (or register full)

    def check_initial(self, header: PacketHeader, addr: Address, now: float) -> InitialVerdict:
        """Decide on a client Initial for an unknown DCID (RFC 9000 section 8.1)."""
        token = bytes(header.token or b"")
        context = self.context
        if token:
            kind = token_kind(token)
            wall = now + context.clock_offset  # token times are on the fleet's clock
            info = None
            for key in context.token_keys:  # newest first: a fleet may still accept older
                lifetime = context.new_token_lifetime
                info = open_token(key, token, addr, wall, new_token_lifetime=lifetime)
                if info is not None:
                    break
            if kind == RETRY_TOKEN:
                if info is None or info.retry_source_cid != header.dcid:
                    # RFC 9000 8.1.3: the client accepts no second Retry: close at once.
                    self.invalid_tokens += 1
                    return InitialVerdict(False, self._invalid_token_close(header))
                return self._admit(
                    InitialVerdict(
                        True, None, info.original_dcid, info.retry_source_cid, validated=True
                    ),
                    header,
                    addr,
                    now,
                )
            if info is not None:  # a NEW_TOKEN token: the address is validated, once
                if context.new_token_register.use(info.token_id, info.issued, wall):
                    return self._admit(InitialVerdict(True, validated=True), header, addr, now)
                self.tokens_reused += 1
            # Unknown, expired or reused NEW_TOKEN token: as if there were none.
        return self._admit(InitialVerdict(True), header, addr, now)

    def _admit(
        self, verdict: InitialVerdict, header: PacketHeader, addr: Address, now: float
    ) -> InitialVerdict:
        """``verdict`` for a client that may open a connection, unless Retry or the
        admission decision (see :mod:`quicish.proto.admission`) says otherwise."""
        if self.admission is None:
            decision = Admit.RETRY if self.retry and not verdict.validated else Admit.ACCEPT
        else:
            decision = self.admission.decide(verdict.validated)
        if decision is Admit.ACCEPT:
            return verdict
        if decision is Admit.RETRY:
            return InitialVerdict(False, self._retry(header, addr, now))
        return InitialVerdict(False)

    def _retry(self, header: PacketHeader, addr: Address, now: float) -> bytes:
        scid = self._random(self.cid_length) if self._new_cid is None else self._new_cid()
        ctx = self.context
        token = seal_retry_token(
            ctx.token_key, addr, bytes(header.dcid), scid, now + ctx.clock_offset
        )
        self.retries_sent += 1
        return encode_retry(header.version or QUIC_V1, header.scid, scid, header.dcid, token)

    def _invalid_token_close(self, header: PacketHeader) -> bytes:
        """An Initial with CONNECTION_CLOSE(INVALID_TOKEN), under the client's Initial keys."""
        version = header.version or QUIC_V1
        _, server_secret = initial_secrets(bytes(header.dcid), version)
        tx = PacketProtector.from_secret(0x1301, server_secret, version)
        buf = Buffer()
        F.encode_frame(buf, F.ConnectionCloseFrame(ErrorCode.INVALID_TOKEN, 0, "invalid token"))
        payload = buf.data()
        head = encode_long_header(
            PacketType.INITIAL,
            version,
            header.scid,
            header.dcid,
            b"",
            len(payload) + AEAD_TAG_SIZE,
            0,
            1,
        )
        return tx.seal_packet(head, payload, 0)

    def stateless_reset(self, data: bytes) -> bytes | None:
        """A stateless reset for a short-header datagram no connection owns, or None when
        the datagram is too small to answer without risking a reset loop (RFC 9000 10.3.3)."""
        if len(data) <= MIN_RESET_SIZE or data[0] & 0x80:
            return None
        cid = bytes(data[1 : 1 + self.cid_length])
        size = min(len(data) - 1, RESET_SIZE)  # smaller than the trigger: no ping-pong
        head = bytes(((self._random(1)[0] & 0x3F) | 0x40,))
        self.resets_sent += 1
        return head + self._random(size - 1 - 16) + reset_token(self.context.reset_key, cid)
