"""Serve the files of a directory over QUIC with hq-interop (one stream per file).

    python examples/file_server.py --root ./files --port 4433

Without --cert/--key a self-signed localhost certificate is made; its SHA-256 pin is
printed for the client.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import quicish
from quicish.hq import FileServer
from quicish.tls.certs import certificate_fingerprint, generate_self_signed, load_certificate_chain


def self_signed() -> tuple[str, str]:
    cert_pem, key_pem = generate_self_signed(("localhost", "127.0.0.1"))
    folder = Path(tempfile.mkdtemp())
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key_pem)
    pin = certificate_fingerprint(load_certificate_chain(folder / "cert.pem")[0])
    print(f"pin: {pin}")
    return str(folder / "cert.pem"), str(folder / "key.pem")


async def main(args: argparse.Namespace) -> None:
    cert, key = (args.cert, args.key) if args.cert else self_signed()
    config = quicish.Config(certificate_chain=cert, private_key=key)
    files = FileServer(args.root)
    server = await quicish.serve(args.host, args.port, config=config, on_stream=files.handle)
    async with server:
        print(f"serving {args.root} on {server.address[0]}:{server.address[1]}")
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4433)
    parser.add_argument("--root", default=".")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    quicish.run(main(parser.parse_args()))
