"""Shared helpers of the tests/test_tls_*.py files: certificates, an in-memory pump
between two handshake engines, and an adapter driving aioquic's TLS context."""

from __future__ import annotations

import datetime
import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from quicish.tls import Epoch, TlsEngine
from quicish.tls.signatures import PrivateKey

ALPN = "hq-interop"
CLIENT_TP = bytes.fromhex("0104000075300504000100000f0811223344")
SERVER_TP = bytes.fromhex("0104000075300504001000000f08aabbccdd")


# ---- certificates ---------------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_key(key_type: str) -> PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    alg = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, alg)


@dataclass
class Pki:
    """A CA and leaf certificates it signed."""

    ca: x509.Certificate
    ca_key: PrivateKey
    ca_pem: bytes

    def leaf(
        self,
        key_type: str = "ec",
        names: tuple[str, ...] = ("localhost", "127.0.0.1"),
        valid_days: tuple[int, int] = (-1, 30),
    ) -> tuple[list[x509.Certificate], PrivateKey]:
        key = make_key(key_type)
        now = datetime.datetime.now(datetime.timezone.utc)
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=valid_days[0]))
            .not_valid_after(now + datetime.timedelta(days=valid_days[1]))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
        )
        return [_sign(builder, self.ca_key)], key


def make_pki(cn: str = "quicish test CA") -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    ca = _sign(builder, key)
    return Pki(ca, key, ca.public_bytes(serialization.Encoding.PEM))


@functools.lru_cache(maxsize=1)
def pki() -> Pki:
    return make_pki()


@functools.lru_cache(maxsize=8)
def server_credentials(key_type: str = "ec") -> tuple[list[x509.Certificate], PrivateKey]:
    return pki().leaf(key_type)


@functools.lru_cache(maxsize=1)
def ca_file() -> str:
    import atexit
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="quicish-tls-")
    atexit.register(shutil.rmtree, directory, True)
    path = Path(directory) / "ca.pem"
    path.write_bytes(pki().ca_pem)
    return str(path)


# ---- engines --------------------------------------------------------------------------------
def client_engine(**kwargs: Any) -> TlsEngine:
    options: dict[str, Any] = {
        "is_client": True,
        "alpn_protocols": [ALPN],
        "server_name": "localhost",
        "verify": ca_file(),
        "transport_parameters": CLIENT_TP,
    }
    options.update(kwargs)
    return TlsEngine(**options)


def server_engine(key_type: str = "ec", **kwargs: Any) -> TlsEngine:
    chain, key = server_credentials(key_type)
    options: dict[str, Any] = {
        "is_client": False,
        "alpn_protocols": [ALPN],
        "certificate_chain": chain,
        "private_key": key,
        "transport_parameters": SERVER_TP,
    }
    options.update(kwargs)
    return TlsEngine(**options)


class Peer(Protocol):
    def receive(self, epoch: Epoch, data: bytes, now: float) -> None: ...
    def pop_output(self) -> list[tuple[Epoch, bytes]]: ...


@dataclass
class Trace:
    """What a pump run carried, per direction, and the secrets each side installed."""

    to_server: list[tuple[Epoch, bytes]] = field(default_factory=list)
    to_client: list[tuple[Epoch, bytes]] = field(default_factory=list)


def pump(
    client: Peer,
    server: Peer,
    now: float = 0.0,
    fragment: int | None = None,
    tamper: Callable[[bool, Epoch, bytes], bytes] | None = None,
    max_rounds: int = 20,
) -> Trace:
    """Pass handshake bytes between the peers until both are quiet.

    ``fragment``: deliver in pieces of at most that many bytes. ``tamper(to_server, epoch,
    data)`` may rewrite what is delivered.
    """
    trace = Trace()
    for _ in range(max_rounds):
        moved = False
        for sender, receiver, to_server in ((client, server, True), (server, client, False)):
            for epoch, data in sender.pop_output():
                moved = True
                if tamper is not None:
                    data = tamper(to_server, epoch, data)
                (trace.to_server if to_server else trace.to_client).append((epoch, data))
                step = fragment or len(data)
                for i in range(0, len(data), step):
                    receiver.receive(epoch, data[i : i + step], now)
        if not moved:
            return trace
    raise AssertionError("handshake did not settle")


def secret_map(secrets: list[tuple[Epoch, str, int, bytes]]) -> dict[tuple[Epoch, str], bytes]:
    out: dict[tuple[Epoch, str], bytes] = {}
    for epoch, direction, _suite, secret in secrets:
        assert (epoch, direction) not in out, f"{epoch.name} {direction} installed twice"
        out[(epoch, direction)] = secret
    return out


def assert_keys_match(
    client: dict[tuple[Epoch, str], bytes], server: dict[tuple[Epoch, str], bytes]
) -> None:
    """Every secret one side writes with is the one the other side reads with.

    A client's 0-RTT write secret has no counterpart when the server rejected 0-RTT.
    """
    for (epoch, direction), secret in client.items():
        other = "read" if direction == "write" else "write"
        if epoch == Epoch.ZERO_RTT and (epoch, other) not in server:
            continue
        assert server[(epoch, other)] == secret, f"{epoch.name} {direction} secrets differ"
    for epoch, direction in server:
        other = "read" if direction == "write" else "write"
        assert (epoch, other) in client, f"server has {epoch.name} {direction}, client not"


# ---- aioquic adapter ------------------------------------------------------------------------
class AioquicPeer:
    """Drives ``aioquic.tls.Context`` with the same receive/pop_output shape."""

    def __init__(self, ctx: Any) -> None:
        from aioquic import tls as aiotls

        self.tls = aiotls
        self.ctx = ctx
        self.secrets: list[tuple[Epoch, str, int, bytes]] = []
        self.tickets: list[Any] = []
        self._buffers = self._fresh()

        def on_key(direction: Any, epoch: Any, suite: Any, secret: bytes) -> None:
            side = "write" if direction == aiotls.Direction.ENCRYPT else "read"
            self.secrets.append((Epoch(epoch.value), side, int(suite), secret))

        ctx.update_traffic_key_cb = on_key

    def _fresh(self) -> dict[Any, Any]:
        from aioquic._buffer import Buffer

        return {e: Buffer(capacity=1 << 16) for e in self.tls.Epoch}

    def start(self) -> None:
        self.ctx.handle_message(b"", self._buffers)

    def receive(self, epoch: Epoch, data: bytes, now: float) -> None:
        self.ctx.handle_message(data, self._buffers)

    def pop_output(self) -> list[tuple[Epoch, bytes]]:
        out = [(Epoch(e.value), b.data) for e, b in self._buffers.items() if b.data]
        self._buffers = self._fresh()
        return out

    @property
    def peer_transport_parameters(self) -> bytes | None:
        for ext_type, data in self.ctx.received_extensions or []:
            if ext_type == 0x39:
                return bytes(data)
        return None


def aioquic_client(
    suites: list[int] | None = None, groups: list[int] | None = None, **kwargs: Any
) -> AioquicPeer:
    from aioquic import tls as aiotls

    ctx = aiotls.Context(
        is_client=True,
        alpn_protocols=[ALPN],
        server_name="localhost",
        cadata=pki().ca_pem,
        cipher_suites=[aiotls.CipherSuite(s) for s in suites] if suites else None,
        **kwargs,
    )
    if groups is not None:
        ctx._supported_groups = [aiotls.Group(g) for g in groups]
    ctx.handshake_extensions = [(0x39, CLIENT_TP)]
    return AioquicPeer(ctx)


def aioquic_server(
    suites: list[int] | None = None,
    groups: list[int] | None = None,
    key_type: str = "ec",
    **kwargs: Any,
) -> AioquicPeer:
    from aioquic import tls as aiotls

    ctx = aiotls.Context(
        is_client=False,
        alpn_protocols=[ALPN],
        cipher_suites=[aiotls.CipherSuite(s) for s in suites] if suites else None,
        **kwargs,
    )
    if groups is not None:
        ctx._supported_groups = [aiotls.Group(g) for g in groups]
    chain, key = server_credentials(key_type)
    ctx.certificate = chain[0]
    ctx.certificate_chain = chain[1:]
    ctx.certificate_private_key = key
    ctx.handshake_extensions = [(0x39, SERVER_TP)]
    return AioquicPeer(ctx)
