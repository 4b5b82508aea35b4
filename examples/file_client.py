"""Fetch files from an hq-interop server, all at once on one connection.

python examples/file_client.py --port 4433 --pin <sha256> /a.bin /b.bin
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time

import quicish


async def fetch(conn: quicish.QuicConnection, path: str) -> bytes:
    reader, writer = await conn.open_stream()
    writer.write(f"GET {path}\r\n".encode())
    writer.write_eof()
    return await reader.read()  # everything until the server's FIN


async def main(args: argparse.Namespace) -> None:
    config = quicish.Config(pin=args.pin, server_name="localhost")
    start = time.perf_counter()
    async with quicish.connect(args.host, args.port, config=config) as conn:
        bodies = await asyncio.gather(*(fetch(conn, path) for path in args.paths))
        elapsed = time.perf_counter() - start
        for path, body in zip(args.paths, bodies, strict=True):
            print(f"{path}: {len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}")
        total = sum(map(len, bodies))
        rtt_ms = conn.stats().smoothed_rtt * 1e3
        print(f"{total * 8 / elapsed / 1e6:.1f} Mbit/s, rtt {rtt_ms:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4433)
    parser.add_argument("--pin", required=True, help="server certificate SHA-256 (hex)")
    quicish.run(main(parser.parse_args()))
