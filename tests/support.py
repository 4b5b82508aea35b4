"""Shared test helpers that need no network: certificates (a plain one and a ~4 KB chain) and
the configs built on them, the cycle-garbage check, a call's outcome for differential tests,
a packet-header builder and a reassembly buffer that fails on demand."""

from __future__ import annotations

import datetime
import functools
import gc
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quicish import Config
from quicish.errors import ProtocolError
from quicish.native import ReassemblyBuffer
from quicish.tls.certs import certificate_fingerprint, generate_self_signed, load_certificate_chain
from quicish.wire.packet import QUIC_V1


@functools.lru_cache(maxsize=1)
def cert_files() -> tuple[str, str, str]:
    """(cert path, key path, SHA-256 pin) of a self-signed localhost certificate."""
    cert_pem, key_pem = generate_self_signed(("localhost", "127.0.0.1"))
    tmp = Path(tempfile.mkdtemp(prefix="quicish-test-"))
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    pin = certificate_fingerprint(load_certificate_chain(tmp / "cert.pem")[0])
    return str(tmp / "cert.pem"), str(tmp / "key.pem"), pin


@functools.lru_cache(maxsize=1)
def big_chain_files() -> tuple[str, str, str]:
    """(cert path, key path, leaf pin) of a ~4 KB chain: a leaf with many names, then two
    filler certificates (the client checks only the pinned leaf)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(cn: str, names: list[str]) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
        )
        return builder.sign(key, hashes.SHA256()), key

    names = ["localhost"] + [f"host-{i:04d}.example.com" for i in range(80)]
    leaf, key = cert("localhost", names)
    fillers = [
        cert(f"filler {i}", [f"f{i}-{j}.example.org" for j in range(35)])[0] for i in range(2)
    ]
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [leaf, *fillers])
    der_size = sum(len(c.public_bytes(serialization.Encoding.DER)) for c in [leaf, *fillers])
    assert 3800 <= der_size <= 4600, der_size
    tmp = Path(tempfile.mkdtemp(prefix="quicish-bigchain-"))
    (tmp / "chain.pem").write_bytes(pem)
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(tmp / "chain.pem"), str(tmp / "key.pem"), certificate_fingerprint(leaf)


def server_config(**kw: Any) -> Config:
    """A server ``Config`` with the test certificate (``kw``: any other Config fields)."""
    cert, key, _ = cert_files()
    kw.setdefault("certificate_chain", cert)
    kw.setdefault("private_key", key)
    return Config(**kw)


def client_config(**kw: Any) -> Config:
    """A client ``Config`` that pins the test certificate for "localhost"."""
    _, _, pin = cert_files()
    kw.setdefault("pin", pin)
    kw.setdefault("server_name", "localhost")
    return Config(**kw)


@contextmanager
def cyclic_garbage() -> Iterator[list[str]]:
    """Collects, with the cycle collector off inside the block, the quicish objects that
    only the cycle collector could free (type names; the list fills when the block ends)."""
    found: list[str] = []
    gc.collect()
    gc.disable()
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.extend(
            sorted(
                type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("quicish")
            )
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


class FailingBuffer(ReassemblyBuffer):
    """A reassembly buffer whose insert runs out of memory on data starting with 'boom'
    (monkeypatched into ``quicish.proto.recv_stream`` to test internal errors)."""

    def insert(self, offset: int, data: Any, fin: bool = False) -> int:
        if bytes(data[:4]) == b"boom":
            raise MemoryError
        return int(super().insert(offset, data, fin))


DIFFERENTIAL_ERRORS: tuple[type[Exception], ...] = (ProtocolError, ValueError, TypeError)


def outcome(
    fn: Callable[..., Any],
    *args: Any,
    catch: tuple[type[Exception], ...] = DIFFERENTIAL_ERRORS,
    detail: bool = True,
) -> tuple[Any, ...]:
    """``("ok", result)``, or for an exception of ``catch``: ``("raise", type)`` and, with
    ``detail``, its message and attributes too. Other exceptions propagate. Two
    implementations agree on a call when their outcomes are equal."""
    try:
        return ("ok", fn(*args))
    except catch as exc:
        if not detail:
            return ("raise", type(exc))
        return ("raise", type(exc), str(exc), vars(exc) if hasattr(exc, "__dict__") else None)


def make_header(
    long: bool,
    pn: int,
    pn_len: int,
    *,
    key_phase: bool = False,
    first_bits: int | None = None,
    dcid: bytes = b"d" * 8,
    scid: bytes = b"s" * 4,
    before_length: bytes = b"",
    length: bytes = b"\x44\x00",
) -> tuple[bytes, int]:
    """A QUIC v1 packet header ending in ``pn`` truncated to ``pn_len`` bytes, and the offset
    of the packet number. ``first_bits``: OR-ed into the first byte (long: type and reserved
    bits, Handshake when None; short: reserved bits); ``before_length``: bytes between the
    source CID and the Length field of a long header."""
    truncated = (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    if long:
        bits = 0x20 if first_bits is None else first_bits
        header = bytes((0xC0 | bits | (pn_len - 1),)) + QUIC_V1.to_bytes(4, "big")
        header += bytes((len(dcid),)) + dcid + bytes((len(scid),)) + scid
        header += before_length + length + truncated
    else:
        bits = (first_bits or 0) | (0x04 if key_phase else 0)
        header = bytes((0x40 | bits | (pn_len - 1),)) + dcid + truncated
    return header, len(header) - pn_len


def run_readme_example(heading: str, tmp_path: Path) -> list[str]:
    """Run the README's first ```python block after ``heading`` as a user would paste it
    (its port 4433 moved to a free one); returns its stdout lines, asserting exit status 0."""
    import re
    import socket
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    code = re.search(re.escape(heading) + r"\n.*?```python\n(.*?)```", readme, re.S)
    assert code is not None, heading
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "example.py"
    script.write_text(code.group(1).replace("4433", str(port)))
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def patch_method(obj: Any, name: str, fn: Callable[..., Any]) -> Callable[[], None]:
    """Make ``obj.name`` call ``fn`` (without ``self``) for this one object. The connection's
    parts have ``__slots__`` (no instance dictionary to put ``fn`` in), so ``obj`` moves to
    a subclass holding ``fn``; returns the undo."""
    cls = type(obj)
    obj.__class__ = type(cls.__name__, (cls,), {"__slots__": (), name: staticmethod(fn)})

    def undo() -> None:
        obj.__class__ = cls

    return undo
