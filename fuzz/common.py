"""Corpus files shared by the targets, the runner and the regression test.

A corpus file is hex text (``*.hex``): lines starting with ``#`` are comments or
``# key: value`` metadata, the rest is the input in hex, the format of ``tests/corpus/wire``.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
TARGETS = ("packet", "frames", "tls", "tparams", "endpoint", "initial", "h3")


def load_hex(path: Path) -> tuple[dict[str, str], bytes]:
    """(metadata, input bytes) of one ``.hex`` corpus file."""
    meta: dict[str, str] = {}
    hexdata: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                meta[key.strip()] = value.strip()
        else:
            hexdata.append(line.strip())
    return meta, bytes.fromhex("".join(hexdata))


def dump_hex(data: bytes, comments: list[str]) -> str:
    """The text of a ``.hex`` corpus file (64 hex digits a line)."""
    lines = [f"# {c}" for c in comments]
    text = data.hex()
    lines += [text[i : i + 64] for i in range(0, len(text), 64)] or [""]
    return "\n".join(lines) + "\n"


def short_hash(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:12]


def corpus_files(target: str) -> list[Path]:
    """The seed and regression files of one target."""
    return sorted((CORPUS / target).glob("*.hex"))


def wire_inputs(decoders: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str], bytes]]:
    """(name, metadata, bytes) of the ``tests/corpus/wire`` files whose decoder is one of
    ``decoders`` (``frames`` also matches ``frames@HANDSHAKE`` ...)."""
    for path in sorted((CORPUS / "wire").glob("*.hex")):
        meta, data = load_hex(path)
        if meta.get("decoder", "").partition("@")[0] in decoders:
            yield path.stem, meta, data


@functools.lru_cache(maxsize=1)
def cert_files() -> tuple[str, str, str]:
    """(cert path, key path, SHA-256 pin) of a self-signed localhost certificate made once
    per process (in a temporary directory removed at exit)."""
    from quicish.tls.certs import (
        certificate_fingerprint,
        generate_self_signed,
        load_certificate_chain,
    )

    cert_pem, key_pem = generate_self_signed(("localhost", "127.0.0.1"))
    tmp = Path(tempfile.mkdtemp(prefix="quicish-fuzz-"))
    atexit.register(shutil.rmtree, tmp, True)
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    pin = certificate_fingerprint(load_certificate_chain(tmp / "cert.pem")[0])
    return str(tmp / "cert.pem"), str(tmp / "key.pem"), pin
