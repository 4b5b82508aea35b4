"""The client side of the TLS 1.3 handshake for QUIC."""

from __future__ import annotations

import functools
import ipaddress
import os

from cryptography.exceptions import UnsupportedAlgorithm

from ..errors import CertificateError, ErrorCode, ProtocolError
from . import extensions as ext
from . import keylog
from . import messages as msg
from .alerts import Alert, alert
from .certs import parse_chain, public_key_of, verify_certificate
from .groups import KeyShare
from .handshake import READ, WRITE, Epoch, Handshake, Settings
from .key_schedule import KeySchedule, constant_time_equal, hash_for
from .signatures import SERVER_CONTEXT, SUPPORTED_SCHEMES, signed_content, verify
from .tickets import MAX_TICKET_LIFETIME, QUIC_MAX_EARLY_DATA, SessionTicket

MAX_KEPT_TICKETS = 8
"""Tickets kept between two ``pop_session_tickets`` calls (the newest win)."""

_SERVER_HELLO_EXTENSIONS = {ext.SUPPORTED_VERSIONS, ext.KEY_SHARE, ext.PRE_SHARED_KEY}
_RETRY_EXTENSIONS = {ext.SUPPORTED_VERSIONS, ext.KEY_SHARE, ext.COOKIE}
_NOT_IN_ENCRYPTED_EXTENSIONS = {
    ext.KEY_SHARE,
    ext.PRE_SHARED_KEY,
    ext.SUPPORTED_VERSIONS,
    ext.PSK_KEY_EXCHANGE_MODES,
    ext.SIGNATURE_ALGORITHMS,
    ext.SIGNATURE_ALGORITHMS_CERT,
    ext.COOKIE,
}


@functools.lru_cache(maxsize=64)
def _sni(server_name: str | None) -> str | None:
    """The server_name to send: none for IP literals (RFC 6066 section 3). Cached: parsing
    a host name as an IP address costs two exceptions."""
    if server_name is None:
        return None
    try:
        ipaddress.ip_address(server_name)
    except ValueError:
        return server_name
    return None


class ClientHandshake(Handshake):
    """Sends the ClientHello, processes the server's flight, answers with Finished."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.tickets: list[SessionTicket] = []
        self._hello: msg.ClientHello | None = None
        self._key_shares: dict[int, KeyShare] = {}
        self._ticket: SessionTicket | None = None
        self._early_data_offered = False
        self._retry_suite: int | None = None
        self._certificate_request: msg.CertificateRequest | None = None
        self._server_hs_secret = b""
        self._client_hs_secret = b""

    # ---- ClientHello ------------------------------------------------------------------------
    def start(self, now: float) -> None:
        s = self.s
        self.client_random = os.urandom(32)
        first_group = s.groups[0]
        self._key_shares = {first_group: KeyShare(first_group, s.key_pairs)}
        self._ticket = self._usable_ticket(now)
        self._hello = msg.ClientHello(
            random=self.client_random,
            cipher_suites=list(s.cipher_suites),
            server_name=_sni(s.server_name),
            supported_groups=list(s.groups),
            signature_algorithms=list(SUPPORTED_SCHEMES),
            key_shares=[(first_group, self._key_shares[first_group].public_bytes)],
            supported_versions=[ext.TLS1_3],
            alpn_protocols=list(s.alpn_protocols),
            transport_parameters=s.transport_parameters,
            psk_key_exchange_modes=[ext.PSK_DHE_KE],
            other_extensions=list(s.extra_extensions),
        )
        ticket = self._ticket
        self._early_data_offered = bool(
            ticket is not None
            and s.early_data
            and ticket.max_early_data_size == QUIC_MAX_EARLY_DATA
            and ticket.alpn is not None
            and ticket.alpn.encode() in s.alpn_protocols
        )
        self._hello.early_data = self._early_data_offered
        self._send_client_hello(now)
        if self._early_data_offered and ticket is not None:
            algorithm = hash_for(ticket.cipher_suite)
            early = KeySchedule(algorithm, ticket.psk)
            secret = early.derive_secret(b"c e traffic", self.transcript.digest_with(algorithm))
            self._install(Epoch.ZERO_RTT, WRITE, secret, keylog.CLIENT_EARLY, ticket.cipher_suite)
        self._expect_next(
            "waiting for ServerHello",
            Epoch.INITIAL,
            {msg.SERVER_HELLO: ClientHandshake._on_server_hello},
        )

    def _usable_ticket(self, now: float) -> SessionTicket | None:
        ticket = self.s.session_ticket
        if ticket is None or not ticket.is_valid(now):
            return None
        if ticket.cipher_suite not in self.s.cipher_suites:
            return None
        if ticket.server_name != self.s.server_name:
            return None
        return ticket

    def _send_client_hello(self, now: float) -> None:
        hello = self._hello
        assert hello is not None
        ticket = self._ticket
        if ticket is None:
            hello.pre_shared_key = None
            self._send(Epoch.INITIAL, msg.CLIENT_HELLO, msg.encode_client_hello(hello))
            return
        algorithm = hash_for(ticket.cipher_suite)
        placeholder = bytes(algorithm.digest_size)
        hello.pre_shared_key = msg.OfferedPsks(
            [(ticket.ticket, ticket.obfuscated_age(now))], [placeholder]
        )
        message = msg.frame(msg.CLIENT_HELLO, msg.encode_client_hello(hello))
        truncated = message[: len(message) - len(ext.encode_binders([placeholder]))]
        psk_schedule = KeySchedule(algorithm, ticket.psk)
        binder = psk_schedule.verify_data(
            psk_schedule.binder_key(), self.transcript.digest_with(algorithm, truncated)
        )
        message = truncated + ext.encode_binders([binder])
        self.transcript.update(message)
        self._output(Epoch.INITIAL, message)

    # ---- ServerHello / HelloRetryRequest ----------------------------------------------------
    def _on_server_hello(self, body: bytes, message: bytes, now: float) -> None:
        sh = msg.decode_server_hello(body)
        hello = self._hello
        assert hello is not None
        if sh.supported_version is None:
            raise alert(Alert.PROTOCOL_VERSION, "server did not negotiate TLS 1.3")
        if sh.supported_version != ext.TLS1_3:
            raise alert(Alert.ILLEGAL_PARAMETER, f"server chose version {sh.supported_version:#x}")
        if sh.legacy_session_id != hello.legacy_session_id:
            raise alert(Alert.ILLEGAL_PARAMETER, "legacy_session_id_echo does not match")
        if sh.compression_method != 0:
            raise alert(Alert.ILLEGAL_PARAMETER, "server chose a compression method")
        if sh.cipher_suite not in self.s.cipher_suites:
            raise alert(
                Alert.ILLEGAL_PARAMETER, f"server chose cipher suite {sh.cipher_suite:#06x}"
            )
        allowed = _RETRY_EXTENSIONS if sh.is_retry_request else _SERVER_HELLO_EXTENSIONS
        for ext_type in sh.extension_types:
            if ext_type not in allowed:
                raise alert(Alert.UNSUPPORTED_EXTENSION, f"extension {ext_type} in a ServerHello")
        if sh.is_retry_request:
            self._on_retry(sh, message, now)
            return
        if self._retry_suite is not None and sh.cipher_suite != self._retry_suite:
            raise alert(Alert.ILLEGAL_PARAMETER, "cipher suite differs from HelloRetryRequest")
        if sh.key_share is None:
            raise alert(Alert.MISSING_EXTENSION, "ServerHello without key_share")
        group, peer_key = sh.key_share
        if group not in self._key_shares:
            raise alert(Alert.ILLEGAL_PARAMETER, f"server key share for unoffered group {group}")
        algorithm = hash_for(sh.cipher_suite)
        if sh.pre_shared_key is not None:
            ticket = self._ticket
            if ticket is None or sh.pre_shared_key != 0:
                raise alert(Alert.ILLEGAL_PARAMETER, "server selected a PSK we did not offer")
            if hash_for(ticket.cipher_suite).name != algorithm.name:
                raise alert(Alert.ILLEGAL_PARAMETER, "cipher suite hash differs from the PSK's")
            self.ks = KeySchedule(algorithm, ticket.psk)
            self.session_resumed = True
        else:
            self.ks = KeySchedule(algorithm)
        shared = self._key_shares[group].exchange(peer_key)
        self._key_shares = {}
        self.cipher_suite = sh.cipher_suite
        if self.transcript.algorithm is None:
            self.transcript.select(algorithm)
        self.transcript.update(message)
        self.ks.to_handshake(shared)
        th = self.transcript.digest()
        self._client_hs_secret = self.ks.derive_secret(b"c hs traffic", th)
        self._server_hs_secret = self.ks.derive_secret(b"s hs traffic", th)
        self._install(Epoch.HANDSHAKE, READ, self._server_hs_secret, keylog.SERVER_HANDSHAKE)
        self._install(Epoch.HANDSHAKE, WRITE, self._client_hs_secret, keylog.CLIENT_HANDSHAKE)
        self._expect_next(
            "waiting for EncryptedExtensions",
            Epoch.HANDSHAKE,
            {msg.ENCRYPTED_EXTENSIONS: ClientHandshake._on_encrypted_extensions},
        )

    def _on_retry(self, hrr: msg.ServerHello, message: bytes, now: float) -> None:
        hello = self._hello
        assert hello is not None
        if self._retry_suite is not None:
            raise alert(Alert.UNEXPECTED_MESSAGE, "second HelloRetryRequest")
        if hrr.selected_group is None and hrr.cookie is None:
            raise alert(Alert.ILLEGAL_PARAMETER, "HelloRetryRequest would not change anything")
        group = hrr.selected_group
        if group is not None and (group not in self.s.groups or group in self._key_shares):
            raise alert(Alert.ILLEGAL_PARAMETER, f"HelloRetryRequest chose group {group}")
        self._retry_suite = hrr.cipher_suite
        algorithm = hash_for(hrr.cipher_suite)
        self.transcript.select(algorithm)
        self.transcript.replace_with_message_hash()
        self.transcript.update(message)
        if group is not None:
            self._key_shares = {group: KeyShare(group, self.s.key_pairs)}
            hello.key_shares = [(group, self._key_shares[group].public_bytes)]
        hello.cookie = hrr.cookie
        hello.early_data = False  # RFC 8446 section 4.2.10: no 0-RTT after HRR
        if self._ticket is not None and hash_for(self._ticket.cipher_suite).name != algorithm.name:
            self._ticket = None
        self._send_client_hello(now)
        self._expect_next(
            "waiting for ServerHello after HelloRetryRequest",
            Epoch.INITIAL,
            {msg.SERVER_HELLO: ClientHandshake._on_server_hello},
        )

    # ---- server's encrypted flight ----------------------------------------------------------
    def _on_encrypted_extensions(self, body: bytes, message: bytes, now: float) -> None:
        ee = msg.decode_encrypted_extensions(body)
        hello = self._hello
        assert hello is not None
        for ext_type in ee.extension_types:
            if ext_type in _NOT_IN_ENCRYPTED_EXTENSIONS:
                raise alert(Alert.ILLEGAL_PARAMETER, f"extension {ext_type} in EncryptedExtensions")
        if ee.alpn_protocol is None:
            raise alert(Alert.NO_APPLICATION_PROTOCOL, "server selected no ALPN protocol")
        if ee.alpn_protocol not in self.s.alpn_protocols:
            raise alert(Alert.NO_APPLICATION_PROTOCOL, "server selected an ALPN we did not offer")
        if ee.transport_parameters is None:
            raise alert(Alert.MISSING_EXTENSION, "no quic_transport_parameters from the server")
        if ee.early_data:
            if not hello.early_data:
                raise alert(Alert.UNSUPPORTED_EXTENSION, "early_data accepted but not offered")
            if not self.session_resumed:
                raise alert(Alert.ILLEGAL_PARAMETER, "early_data accepted without resumption")
            ticket = self._ticket
            if ticket is None or ticket.alpn is None or ee.alpn_protocol != ticket.alpn.encode():
                raise alert(Alert.ILLEGAL_PARAMETER, "early_data accepted with a different ALPN")
            if self.cipher_suite != ticket.cipher_suite:
                raise alert(
                    Alert.ILLEGAL_PARAMETER, "early_data accepted with another cipher suite"
                )
        self.early_data_accepted = ee.early_data
        self.alpn = ee.alpn_protocol.decode("utf-8", "replace")
        self.peer_transport_parameters = ee.transport_parameters
        self.transcript.update(message)
        if self.session_resumed:
            self._expect_next(
                "waiting for Finished",
                Epoch.HANDSHAKE,
                {msg.FINISHED: ClientHandshake._on_finished},
            )
        else:
            self._expect_next(
                "waiting for Certificate",
                Epoch.HANDSHAKE,
                {
                    msg.CERTIFICATE: ClientHandshake._on_certificate,
                    msg.CERTIFICATE_REQUEST: ClientHandshake._on_certificate_request,
                },
            )

    def _on_certificate_request(self, body: bytes, message: bytes, now: float) -> None:
        self._certificate_request = msg.decode_certificate_request(body)
        self.transcript.update(message)
        self._expect_next(
            "waiting for Certificate",
            Epoch.HANDSHAKE,
            {msg.CERTIFICATE: ClientHandshake._on_certificate},
        )

    def _on_certificate(self, body: bytes, message: bytes, now: float) -> None:
        cert = msg.decode_certificate(body)
        if cert.request_context:
            raise alert(Alert.ILLEGAL_PARAMETER, "server Certificate with a request context")
        if not cert.certificates:
            raise alert(Alert.DECODE_ERROR, "server sent an empty Certificate")
        try:
            chain = list(parse_chain(tuple(cert.certificates)))
        except ValueError as exc:
            raise CertificateError(
                Alert.BAD_CERTIFICATE, f"unparseable certificate: {exc}"
            ) from None
        verify_certificate(chain, self.s.server_name, self.s.verify, self.s.pin)
        self.peer_certificates = chain
        self.transcript.update(message)
        self._expect_next(
            "waiting for CertificateVerify",
            Epoch.HANDSHAKE,
            {msg.CERTIFICATE_VERIFY: ClientHandshake._on_certificate_verify},
        )

    def _on_certificate_verify(self, body: bytes, message: bytes, now: float) -> None:
        cv = msg.decode_certificate_verify(body)
        if cv.scheme not in SUPPORTED_SCHEMES:
            raise alert(Alert.ILLEGAL_PARAMETER, f"signature scheme {cv.scheme:#06x} not offered")
        try:
            public_key = public_key_of(self.peer_certificates[0])
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CertificateError(
                Alert.UNSUPPORTED_CERTIFICATE, f"certificate key unusable: {exc}"
            ) from None
        content = signed_content(SERVER_CONTEXT, self.transcript.digest())
        verify(public_key, cv.scheme, cv.signature, content)
        self.transcript.update(message)
        self._expect_next(
            "waiting for Finished", Epoch.HANDSHAKE, {msg.FINISHED: ClientHandshake._on_finished}
        )

    def _on_finished(self, body: bytes, message: bytes, now: float) -> None:
        ks = self.ks
        assert ks is not None
        verify_data = msg.decode_finished(body, ks.hash_len)
        expected = ks.verify_data(self._server_hs_secret, self.transcript.digest())
        if not constant_time_equal(verify_data, expected):
            raise alert(Alert.DECRYPT_ERROR, "server Finished does not verify")
        self.transcript.update(message)
        ks.to_master()
        th = self.transcript.digest()
        client_ap = ks.derive_secret(b"c ap traffic", th)
        server_ap = ks.derive_secret(b"s ap traffic", th)
        self._install(Epoch.ONE_RTT, READ, server_ap, keylog.SERVER_TRAFFIC_0)
        if self._certificate_request is not None:  # no client certificate: send an empty one
            empty = msg.Certificate([], self._certificate_request.request_context)
            self._send(Epoch.HANDSHAKE, msg.CERTIFICATE, msg.encode_certificate(empty))
        finished = ks.verify_data(self._client_hs_secret, self.transcript.digest())
        self._send(Epoch.HANDSHAKE, msg.FINISHED, finished)
        self._install(Epoch.ONE_RTT, WRITE, client_ap, keylog.CLIENT_TRAFFIC_0)
        self.resumption_master_secret = ks.derive_secret(b"res master", self.transcript.digest())
        self.handshake_complete = True
        self._expect_next(
            "connected",
            Epoch.ONE_RTT,
            {msg.NEW_SESSION_TICKET: ClientHandshake._on_new_session_ticket},
        )

    # ---- post-handshake ---------------------------------------------------------------------
    def _on_new_session_ticket(self, body: bytes, message: bytes, now: float) -> None:
        ks = self.ks
        assert ks is not None and self.cipher_suite is not None
        nst = msg.decode_new_session_ticket(body)
        if nst.max_early_data_size is not None and nst.max_early_data_size != QUIC_MAX_EARLY_DATA:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                f"NewSessionTicket max_early_data_size {nst.max_early_data_size:#x} "
                "(QUIC requires 0xffffffff)",
            )
        if nst.lifetime == 0:
            return
        self.tickets.append(
            SessionTicket(
                ticket=nst.ticket,
                psk=ks.resumption_psk(self.resumption_master_secret, nst.nonce),
                cipher_suite=self.cipher_suite,
                server_name=self.s.server_name,
                alpn=self.alpn,
                age_add=nst.age_add,
                lifetime=min(nst.lifetime, MAX_TICKET_LIFETIME),
                received_at=now,
                max_early_data_size=nst.max_early_data_size,
                transport_parameters=self.peer_transport_parameters or b"",
            )
        )
        if len(self.tickets) > MAX_KEPT_TICKETS:  # a flood of tickets: keep the newest
            del self.tickets[:-MAX_KEPT_TICKETS]
