"""The server side of the TLS 1.3 handshake for QUIC, with stateless (sealed) tickets."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ErrorCode, ProtocolError
from . import extensions as ext
from . import keylog
from . import messages as msg
from .alerts import Alert, alert
from .groups import KeyShare
from .handshake import READ, WRITE, Epoch, Handshake, Settings
from .key_schedule import KeySchedule, constant_time_equal, hash_for
from .signatures import SERVER_CONTEXT, sign, signed_content
from .tickets import MAX_TICKET_LIFETIME, QUIC_MAX_EARLY_DATA, TicketContents

logger = logging.getLogger("quicish")


@dataclass
class _Psk:
    index: int
    identity: bytes
    obfuscated_age: int
    contents: TicketContents


class ServerHandshake(Handshake):
    """Answers a ClientHello (or asks for another with HelloRetryRequest)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.server_name: str | None = None
        self._retry_group: int | None = None
        self._retry_suite: int | None = None
        self._client_hs_secret = b""
        self._client_ap_secret = b""
        self._psk_modes_offered = False
        self._ticket_nonce = 0
        #: Send the ServerHello before building the rest of the first flight (the client
        #: derives its handshake keys meanwhile); :meth:`finish_flight` builds the rest.
        self.split_flight = False
        self._flight: Callable[[], None] | None = None
        # Made ahead of the client's Finished by prepare_ticket(): the Finished we expect,
        # the resumption master secret it leads to, and the first ticket's message.
        self._expected_finished = b""
        self._prepared_secret = b""
        self._prepared_ticket: tuple[bytes, bytes] | None = None  # (transport params, body)

    def start(self, now: float) -> None:
        self._expect_next(
            "waiting for ClientHello",
            Epoch.INITIAL,
            {msg.CLIENT_HELLO: ServerHandshake._on_client_hello},
        )

    # ---- ClientHello ------------------------------------------------------------------------
    def _on_client_hello(self, body: bytes, message: bytes, now: float) -> None:
        s = self.s
        ch = msg.decode_client_hello(body)
        retried = self._retry_group is not None
        if ch.supported_versions is None or ext.TLS1_3 not in ch.supported_versions:
            raise alert(Alert.PROTOCOL_VERSION, "client does not offer TLS 1.3")
        if ch.legacy_session_id:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION, "ClientHello with a legacy_session_id (RFC 9001 8.4)"
            )
        if ch.compression_methods != b"\x00":
            raise alert(Alert.ILLEGAL_PARAMETER, "ClientHello offers compression")
        if ch.transport_parameters is None:
            raise alert(Alert.MISSING_EXTENSION, "no quic_transport_parameters from the client")
        if not ch.alpn_protocols:
            raise alert(Alert.NO_APPLICATION_PROTOCOL, "client offered no ALPN protocol")
        alpn = next((p for p in s.alpn_protocols if p in ch.alpn_protocols), None)
        if alpn is None:
            raise alert(Alert.NO_APPLICATION_PROTOCOL, "no ALPN protocol in common")
        if ch.supported_groups is None or ch.key_shares is None:
            raise alert(Alert.MISSING_EXTENSION, "ClientHello without supported_groups/key_share")
        for share_group, _ in ch.key_shares:
            if share_group not in ch.supported_groups:
                raise alert(Alert.ILLEGAL_PARAMETER, f"key share for unlisted group {share_group}")
        if ch.pre_shared_key is not None:
            if ch.psk_key_exchange_modes is None:
                raise alert(
                    Alert.MISSING_EXTENSION, "pre_shared_key without psk_key_exchange_modes"
                )
            if len(ch.pre_shared_key.identities) != len(ch.pre_shared_key.binders):
                raise alert(Alert.ILLEGAL_PARAMETER, "PSK identities and binders differ in number")
        if retried and ch.early_data:
            raise alert(Alert.ILLEGAL_PARAMETER, "early_data after HelloRetryRequest")
        self._psk_modes_offered = bool(
            ch.psk_key_exchange_modes and ext.PSK_DHE_KE in ch.psk_key_exchange_modes
        )

        psk = self._find_psk(ch, now)
        if retried:
            suite = self._retry_suite
            assert suite is not None
            if suite not in ch.cipher_suites:
                raise alert(
                    Alert.ILLEGAL_PARAMETER, "cipher suite of HelloRetryRequest not offered"
                )
            if psk is not None and hash_for(psk.contents.cipher_suite).name != hash_for(suite).name:
                psk = None
        elif psk is not None:
            suite = psk.contents.cipher_suite
        else:
            found = next((c for c in s.cipher_suites if c in ch.cipher_suites), None)
            if found is None:
                raise alert(Alert.HANDSHAKE_FAILURE, "no cipher suite in common")
            suite = found
        algorithm = hash_for(suite)

        shares = dict(ch.key_shares)
        group = next((g for g in s.groups if g in shares), None)
        if retried and group != self._retry_group:
            raise alert(
                Alert.ILLEGAL_PARAMETER, "no key share for the group HelloRetryRequest chose"
            )
        if group is None:
            common = next((g for g in s.groups if g in ch.supported_groups), None)
            if common is None:
                raise alert(Alert.HANDSHAKE_FAILURE, "no key exchange group in common")
            self._send_retry(suite, common, message)
            return

        if psk is not None and not self._binder_valid(ch, psk, message):
            raise alert(Alert.DECRYPT_ERROR, "PSK binder does not verify")

        scheme = 0
        if psk is None:
            scheme = self._choose_scheme(ch)
        self.client_random = ch.random
        self.server_name = ch.server_name
        self.cipher_suite = suite
        self.alpn = alpn.decode("utf-8", "replace")
        self.peer_transport_parameters = ch.transport_parameters
        if not retried:
            self.transcript.select(algorithm)
        self.transcript.update(message)
        self.ks = ks = KeySchedule(algorithm, psk.contents.psk if psk else None)
        self.session_resumed = psk is not None

        if psk is not None and ch.early_data and self._accept_early_data(psk, suite, alpn, now):
            self.early_data_accepted = True
            early = ks.derive_secret(b"c e traffic", self.transcript.digest())
            self._install(Epoch.ZERO_RTT, READ, early, keylog.CLIENT_EARLY)

        key_share = KeyShare(group, self.s.key_pairs)
        shared = key_share.exchange(shares[group])
        hello = msg.ServerHello(
            random=os.urandom(32),
            cipher_suite=suite,
            legacy_session_id=ch.legacy_session_id,
            supported_version=ext.TLS1_3,
            key_share=(group, key_share.public_bytes),
            pre_shared_key=psk.index if psk is not None else None,
        )
        self._send(Epoch.INITIAL, msg.SERVER_HELLO, msg.encode_server_hello(hello))

        ks.to_handshake(shared)
        th = self.transcript.digest()
        self._client_hs_secret = ks.derive_secret(b"c hs traffic", th)
        server_hs = ks.derive_secret(b"s hs traffic", th)
        self._install(Epoch.HANDSHAKE, WRITE, server_hs, keylog.SERVER_HANDSHAKE)
        flight = functools.partial(self._send_flight, alpn, None if psk else scheme, server_hs)
        if self.split_flight:
            self._flight = flight
            self._expect_next("sending the rest of the first flight", None, {})
        else:
            flight()

    def _send_flight(self, alpn: bytes, scheme: int | None, server_hs: bytes) -> None:
        """EncryptedExtensions, Certificate and CertificateVerify (unless resuming with a
        PSK: ``scheme`` None), Finished; then the 1-RTT write key. The handshake read key
        is installed here too: nothing from the client needs it before this flight."""
        s = self.s
        ks = self.ks
        assert ks is not None
        self._install(Epoch.HANDSHAKE, READ, self._client_hs_secret, keylog.CLIENT_HANDSHAKE)
        ee = msg.EncryptedExtensions(
            alpn_protocol=alpn,
            transport_parameters=s.transport_parameters,
            early_data=self.early_data_accepted,
            other_extensions=list(s.extra_extensions),
        )
        self._send(Epoch.HANDSHAKE, msg.ENCRYPTED_EXTENSIONS, msg.encode_encrypted_extensions(ee))
        if scheme is not None:
            self._send_certificate(scheme)
        finished = ks.verify_data(server_hs, self.transcript.digest())
        self._send(Epoch.HANDSHAKE, msg.FINISHED, finished)

        ks.to_master()
        th = self.transcript.digest()
        self._client_ap_secret = ks.derive_secret(b"c ap traffic", th)
        server_ap = ks.derive_secret(b"s ap traffic", th)
        self._install(Epoch.ONE_RTT, WRITE, server_ap, keylog.SERVER_TRAFFIC_0)
        self._expect_next(
            "waiting for client Finished",
            Epoch.HANDSHAKE,
            {msg.FINISHED: ServerHandshake._on_finished},
        )

    @property
    def flight_pending(self) -> bool:
        """True between a ServerHello sent alone (``split_flight``) and :meth:`finish_flight`."""
        return self._flight is not None

    def finish_flight(self) -> None:
        """The rest of a split first flight: EncryptedExtensions through Finished."""
        flight, self._flight = self._flight, None
        if flight is not None:
            self._guarded(flight)

    def _send_retry(self, suite: int, group: int, client_hello: bytes) -> None:
        self._retry_suite = suite
        self._retry_group = group
        self.transcript.select(hash_for(suite))
        self.transcript.update(client_hello)
        self.transcript.replace_with_message_hash()
        hrr = msg.ServerHello(
            random=msg.HRR_RANDOM,
            cipher_suite=suite,
            supported_version=ext.TLS1_3,
            selected_group=group,
        )
        self._send(Epoch.INITIAL, msg.SERVER_HELLO, msg.encode_server_hello(hrr))
        self._expect_next(
            "waiting for ClientHello after HelloRetryRequest",
            Epoch.INITIAL,
            {msg.CLIENT_HELLO: ServerHandshake._on_client_hello},
        )

    def _choose_scheme(self, ch: msg.ClientHello) -> int:
        if ch.signature_algorithms is None:
            raise alert(Alert.MISSING_EXTENSION, "ClientHello without signature_algorithms")
        assert self.s.credentials is not None
        for scheme in self.s.credentials.schemes:
            if scheme in ch.signature_algorithms:
                return scheme
        raise alert(Alert.HANDSHAKE_FAILURE, "no signature scheme in common for our key")

    def _send_certificate(self, scheme: int) -> None:
        key = self.s.private_key
        assert key is not None and self.s.credentials is not None
        self._send(Epoch.HANDSHAKE, msg.CERTIFICATE, self.s.credentials.certificate_body)
        signature = sign(key, scheme, signed_content(SERVER_CONTEXT, self.transcript.digest()))
        cv = msg.CertificateVerify(scheme, signature)
        self._send(Epoch.HANDSHAKE, msg.CERTIFICATE_VERIFY, msg.encode_certificate_verify(cv))

    # ---- PSK and 0-RTT ---------------------------------------------------------------------
    def _find_psk(self, ch: msg.ClientHello, now: float) -> _Psk | None:
        """The first offered ticket we sealed that is still usable here, if any."""
        keys = self.s.ticket_keys
        if keys is None or ch.pre_shared_key is None or not self._psk_modes_offered:
            return None
        now += self.s.clock_offset  # ticket times are on the fleet's clock
        for index, (identity, age) in enumerate(ch.pre_shared_key.identities[:8]):
            plain = keys.open(identity)
            contents = TicketContents.decode(plain) if plain is not None else None
            if contents is None:
                continue
            if not contents.created_at <= now < contents.created_at + contents.lifetime:
                continue
            if contents.cipher_suite not in ch.cipher_suites:
                continue
            if contents.cipher_suite not in self.s.cipher_suites:
                continue
            if contents.server_name != ch.server_name:
                continue
            return _Psk(index, identity, age, contents)
        return None

    def _binder_valid(self, ch: msg.ClientHello, psk: _Psk, message: bytes) -> bool:
        offered = ch.pre_shared_key
        assert offered is not None
        truncated = message[: len(message) - offered.binders_size]
        psk_hash = hash_for(psk.contents.cipher_suite)
        schedule = KeySchedule(psk_hash, psk.contents.psk)
        expected = schedule.verify_data(
            schedule.binder_key(), self.transcript.digest_with(psk_hash, truncated)
        )
        return constant_time_equal(expected, offered.binders[psk.index])

    def _accept_early_data(self, psk: _Psk, suite: int, alpn: bytes, now: float) -> bool:
        s = self.s
        contents = psk.contents
        if psk.index != 0 or not s.early_data or s.replay_filter is None:
            return False
        if contents.max_early_data_size != QUIC_MAX_EARLY_DATA or contents.cipher_suite != suite:
            return False
        if contents.alpn.encode() != alpn:
            logger.debug("0-RTT rejected: ALPN differs from the ticket's")
            return False
        check = s.accept_early_data
        if check is not None:
            if not check(contents.transport_parameters):
                logger.debug("0-RTT rejected: transport parameters incompatible")
                return False
        elif contents.transport_parameters != s.transport_parameters:
            logger.debug("0-RTT rejected: transport parameters differ from the ticket's")
            return False
        client_age_ms = (psk.obfuscated_age - contents.age_add) & 0xFFFFFFFF
        server_age_ms = (now + s.clock_offset - contents.created_at) * 1000
        if abs(server_age_ms - client_age_ms) > s.replay_filter.window * 1000:
            logger.debug("0-RTT rejected: ticket age outside the freshness window")
            return False
        if not s.replay_filter.check_and_add(psk.identity, now):
            logger.debug("0-RTT rejected: ticket already used (replay)")
            return False
        return True

    # ---- client Finished and tickets -------------------------------------------------------
    def _on_finished(self, body: bytes, message: bytes, now: float) -> None:
        ks = self.ks
        assert ks is not None
        verify_data = msg.decode_finished(body, ks.hash_len)
        expected = self._expected_finished or ks.verify_data(
            self._client_hs_secret, self.transcript.digest()
        )
        if not constant_time_equal(verify_data, expected):
            raise alert(Alert.DECRYPT_ERROR, "client Finished does not verify")
        self.transcript.update(message)
        # The same transcript prepare_ticket() assumed, since the Finished is the expected one.
        self.resumption_master_secret = self._prepared_secret or ks.derive_secret(
            b"res master", self.transcript.digest()
        )
        self._install(Epoch.ONE_RTT, READ, self._client_ap_secret, keylog.CLIENT_TRAFFIC_0)
        self.handshake_complete = True
        self._expect_next("connected", None, {})

    def next_read_secret(self) -> tuple[int, bytes] | None:
        """(suite, secret) of the 1-RTT read key a verified client Finished installs, while
        that Finished is awaited."""
        if not self._awaiting_finished():
            return None
        assert self.cipher_suite is not None
        return self.cipher_suite, self._client_ap_secret

    def _awaiting_finished(self) -> bool:
        """The whole first flight is out and the client's Finished has not arrived."""
        return bool(self._client_ap_secret) and self._flight is None and not self.handshake_complete

    def prepare_ticket(self, now: float, transport_parameters: bytes) -> None:
        """While the client works on its Finished: derive the resumption master secret it
        will lead to (the Finished is predictable; ``_on_finished`` checks it) and seal the
        first session ticket, so that neither waits on the critical path."""
        ks = self.ks
        algorithm = self.transcript.algorithm
        if (
            ks is None
            or algorithm is None
            or self._expected_finished  # (prepared already)
            or not self._awaiting_finished()
        ):
            return
        expected = ks.verify_data(self._client_hs_secret, self.transcript.digest())
        finished = msg.frame(msg.FINISHED, expected)
        self._expected_finished = expected
        self._prepared_secret = ks.derive_secret(
            b"res master", self.transcript.digest_with(algorithm, finished)
        )
        if self._tickets_wanted():
            body = self._ticket_message(now, transport_parameters, self._prepared_secret, 1)
            self._prepared_ticket = (bytes(transport_parameters), body)

    def _tickets_wanted(self) -> bool:
        return self.s.ticket_keys is not None and self._psk_modes_offered

    def issue_session_ticket(self, now: float, transport_parameters: bytes) -> bool:
        """Queue a NewSessionTicket at ONE_RTT; False when tickets are off or not wanted."""
        if not self.handshake_complete or not self._tickets_wanted():
            return False
        self._ticket_nonce += 1
        prepared, self._prepared_ticket = self._prepared_ticket, None
        if prepared is not None and self._ticket_nonce == 1 and prepared[0] == transport_parameters:
            body = prepared[1]
        else:
            body = self._ticket_message(
                now, transport_parameters, self.resumption_master_secret, self._ticket_nonce
            )
        self._send(Epoch.ONE_RTT, msg.NEW_SESSION_TICKET, body, False)
        return True

    def _ticket_message(
        self, now: float, transport_parameters: bytes, resumption_secret: bytes, number: int
    ) -> bytes:
        """The body of NewSessionTicket number ``number`` (its nonce), sealed with our keys."""
        s = self.s
        ks = self.ks
        assert ks is not None and s.ticket_keys is not None
        assert self.cipher_suite is not None and self.alpn is not None
        now += s.clock_offset  # ticket times are on the fleet's clock
        nonce = number.to_bytes(8, "big")
        lifetime = min(s.ticket_lifetime, MAX_TICKET_LIFETIME)
        contents = TicketContents(
            psk=ks.resumption_psk(resumption_secret, nonce),
            cipher_suite=self.cipher_suite,
            alpn=self.alpn,
            server_name=self.server_name,
            created_at=now,
            age_add=int.from_bytes(os.urandom(4), "big"),
            lifetime=lifetime,
            max_early_data_size=QUIC_MAX_EARLY_DATA if s.early_data else 0,
            transport_parameters=bytes(transport_parameters),
        )
        nst = msg.NewSessionTicket(
            lifetime=lifetime,
            age_add=contents.age_add,
            nonce=nonce,
            ticket=s.ticket_keys.seal(contents.encode(), now),
            max_early_data_size=QUIC_MAX_EARLY_DATA if s.early_data else None,
        )
        return msg.encode_new_session_ticket(nst)
