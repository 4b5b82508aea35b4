"""Headless Chromium (Debian's ``chromium``) fetch()es files over HTTP/3 from ``quicish
serve --http3``: a client no one here wrote. The page is served over HTTP/3 too (QUIC
forced with ``--origin-to-force-quic-on``, the self-signed certificate allowed by its SPKI
hash); its script fetches 1 KB, 10 MB and a missing file and writes status, byte count and
each resource's ``nextHopProtocol`` into the DOM, which ``--dump-dom`` prints.

Chromium is installed with apt-get when absent; where that is impossible the test is
skipped and says why. ``make chromium`` runs just this file."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_support import chromium
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from test_cli import ENV, ROOT

from quicish.tls.certs import generate_self_signed

SMALL = hashlib.shake_256(b"chromium small").digest(1024)
BIG = hashlib.shake_256(b"chromium big").digest(10 << 20)
PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {
  const out = [];
  for (const name of ["small.bin", "big.bin", "missing.bin"]) {
    try {
      const response = await fetch(name, {cache: "no-store"});
      const body = await response.arrayBuffer();
      const bytes = new Uint8Array(body);
      let sum = 0;
      for (let i = 0; i < bytes.length; i++) sum = (sum + bytes[i] * (i % 251 + 1)) % 1000000007;
      out.push(`${name} ${response.status} ${body.byteLength} ${sum}`);
    } catch (e) {
      out.push(`${name} error ${e}`);
    }
  }
  for (const e of performance.getEntriesByType("resource"))
    out.push(`protocol ${e.name.split("/").pop()} ${e.nextHopProtocol}`);
  out.push(`protocol page ${performance.getEntriesByType("navigation")[0].nextHopProtocol}`);
  document.getElementById("out").textContent = out.join("\\n");
})();
</script></body></html>
"""


def checksum(data: bytes) -> int:
    """The page's checksum of a body (sum of byte * (i % 251 + 1), mod 1e9+7)."""
    total = 0
    weights = [i % 251 + 1 for i in range(251)]
    for start in range(0, len(data), 251):
        total += sum(b * w for b, w in zip(data[start : start + 251], weights, strict=False))
    return total % 1000000007


def spki_hash(cert_pem: bytes) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's allow-list)."""
    key = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, str, subprocess.Popen[str]]]:
    """``quicish serve --http3`` with an ECDSA P-256 certificate valid for 10 days."""
    cert_pem, key_pem = generate_self_signed(("localhost",), days=10)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text(PAGE)
    (root / "small.bin").write_bytes(SMALL)
    (root / "big.bin").write_bytes(BIG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "quicish", "serve", "--http3", "--port", "0", "--root", str(root),
         "--cert", str(tmp_path / "cert.pem"), "--key", str(tmp_path / "key.pem"),
         "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on \S+:(\d+)", line)
        assert match, f"server did not start: {line!r}"
        yield int(match.group(1)), spki_hash(cert_pem), proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_chromium_fetches_1kb_and_10mb_over_http3(
    served: tuple[int, str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    binary = chromium()
    port, spki, proc = served
    result = subprocess.run(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}",
         "--host-resolver-rules=MAP localhost 127.0.0.1",
         f"--origin-to-force-quic-on=localhost:{port}",
         f"--ignore-certificate-errors-spki-list={spki}",
         "--virtual-time-budget=30000",
         "--dump-dom", f"https://localhost:{port}/index.html"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    match = re.search(r'<pre id="out">(.*?)</pre>', result.stdout, re.S)
    assert match, f"no result in the page: {result.stdout[:300]!r} {result.stderr[-500:]!r}"
    lines = match.group(1).splitlines()
    assert f"small.bin 200 1024 {checksum(SMALL)}" in lines, lines
    assert f"big.bin 200 {len(BIG)} {checksum(BIG)}" in lines, lines
    assert "missing.bin 404 10" in " ".join(lines), lines  # b"not found\n"
    for name in ("small.bin", "big.bin", "missing.bin", "page"):
        assert f"protocol {name} h3" in lines, lines  # Chromium says it used HTTP/3
    proc.terminate()
    log = proc.communicate(timeout=10)[0]
    assert re.search(r"GET /big.bin 200 10485760 bytes", log), log
