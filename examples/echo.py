"""Echo / RPC over QUIC: a server that answers each line on a stream, and a client making
calls. Runs both in one process on loopback.

    python examples/echo.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import quicish
from quicish.tls.certs import generate_self_signed


async def handle(reader: quicish.QuicStreamReader, writer: quicish.QuicStreamWriter) -> None:
    async for line in reader:  # one request per line, until the client's FIN
        writer.write(line.upper())
        await writer.drain()
    writer.write_eof()


async def main() -> None:
    folder = Path(tempfile.mkdtemp())
    cert_pem, key_pem = generate_self_signed(("localhost",))
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "key.pem").write_bytes(key_pem)
    server_config = quicish.Config(
        certificate_chain=str(folder / "cert.pem"), private_key=str(folder / "key.pem")
    )
    client_config = quicish.Config(verify=str(folder / "cert.pem"), server_name="localhost")

    server = await quicish.serve("127.0.0.1", 0, config=server_config, on_stream=handle)
    async with server:
        host, port = server.address[:2]
        async with quicish.connect(host, port, config=client_config) as conn:
            reader, writer = await conn.open_stream()
            start = time.perf_counter()
            for i in range(100):
                writer.write(f"call {i}\n".encode())
                answer = await reader.readline()
                assert answer == f"CALL {i}\n".encode()
            per_call = (time.perf_counter() - start) / 100
            print(f"100 calls, {per_call * 1e6:.0f} µs each; last answer {answer!r}")
            writer.write_eof()
            assert await reader.read() == b""


if __name__ == "__main__":
    quicish.run(main())
