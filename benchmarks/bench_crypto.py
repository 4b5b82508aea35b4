"""Per-packet protection cost: seal+protect and unprotect+open of 1200-byte packets.

Run: ``python benchmarks/bench_crypto.py [--number N] [--repeat R]``. Prints a markdown
table of microseconds per operation (best of ``repeat`` runs) for each cipher suite and
each path of ``PacketProtector``: the C packet cipher (AES suites, one C call per packet;
``C`` rows) and the Python path over ``cryptography`` (``Python`` rows), plus the parts
of the Python path: bare AEAD seal/open and one header protection mask. With
``QUICISH_PURE_CRYPTO=1`` (or no usable libcrypto) there are only Python rows.
"""

from __future__ import annotations

import argparse
import os
import timeit

from quicish import native
from quicish.wire.protection import AEAD_TAG_SIZE, CipherSuite, PacketProtector

PACKET_SIZE = 1200
DCID = bytes(range(8))
PN = 0x1234
PN_LEN = 2
# short header: first byte (fixed bit, pn length 2) + 8-byte DCID + 2-byte pn
HEADER = bytes((0x40 | (PN_LEN - 1),)) + DCID + PN.to_bytes(PN_LEN, "big")
PAYLOAD = os.urandom(PACKET_SIZE - len(HEADER) - AEAD_TAG_SIZE)
PN_OFFSET = 1 + len(DCID)


def _best_us(stmt: object, number: int, repeat: int) -> float:
    times = timeit.repeat(stmt, number=number, repeat=repeat)  # type: ignore[arg-type]
    return min(times) / number * 1e6


def bench_protector(prot: PacketProtector, number: int, repeat: int) -> dict[str, float]:
    """Microseconds per operation for one protector (whichever path it takes)."""
    packet = prot.seal_packet(HEADER, PAYLOAD, PN)
    assert len(packet) == PACKET_SIZE
    view = memoryview(packet)
    header, payload, pn = prot.open_packet(view, PN_OFFSET, PN - 1)
    assert (header, payload, pn) == (HEADER, PAYLOAD, PN)
    result = {
        "seal+protect": _best_us(lambda: prot.seal_packet(HEADER, PAYLOAD, PN), number, repeat),
        "unprotect+open": _best_us(
            lambda: prot.open_packet(view, PN_OFFSET, PN - 1), number, repeat
        ),
    }
    if not prot.accelerated:
        sample = packet[PN_OFFSET + 4 : PN_OFFSET + 20]
        ciphertext = packet[len(HEADER) :]
        aead, hp = prot.aead, prot.hp
        result["AEAD seal"] = _best_us(lambda: aead.seal(PN, HEADER, PAYLOAD), number, repeat)
        result["AEAD open"] = _best_us(lambda: aead.open(PN, HEADER, ciphertext), number, repeat)
        result["HP mask"] = _best_us(lambda: hp.mask(sample), number, repeat)
    return result


def bench_suite(suite: CipherSuite, number: int, repeat: int) -> list[tuple[str, dict[str, float]]]:
    """(path, microseconds per operation) for one suite: the C path first when it is used."""
    secret = bytes(range(48 if suite == CipherSuite.AES_256_GCM_SHA384 else 32))
    prot = PacketProtector.from_secret(suite, secret)
    rows = []
    if prot.accelerated:
        rows.append(("C", bench_protector(prot, number, repeat)))
        # the same keys on the Python path (what QUICISH_PURE_CRYPTO=1 selects)
        prot = PacketProtector.from_secret(suite, secret, accelerate=False)
    rows.append(("Python", bench_protector(prot, number, repeat)))
    return rows


COLUMNS = ("seal+protect", "unprotect+open", "AEAD seal", "AEAD open", "HP mask")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (best is kept)")
    args = parser.parse_args(argv)
    print(f"Packet protection, {PACKET_SIZE}-byte packets, µs per op (best of {args.repeat})")
    print(f"AES-GCM: {native.crypto_backend()}")
    print()
    print("| suite | path | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    for suite in CipherSuite:
        for path, result in bench_suite(suite, args.number, args.repeat):
            cells = " | ".join(f"{result[c]:.2f}" if c in result else "" for c in COLUMNS)
            print(f"| {suite.name} | {path} | {cells} |")


if __name__ == "__main__":
    main()
