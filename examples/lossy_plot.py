"""The picture in the README: a 20 MB download through a lossy link, drawn from qlog.

A quicish server and client (this process) talk through a ``quicish.netem`` relay (its own
process) with 2% loss each way, 10 ms delay each way and a 50 Mbit/s rate limit; the server
writes qlog and ``python -m quicish.qlog plot`` draws its trace: data sent and acknowledged
with the losses marked, CUBIC's window and the bytes in flight, and the RTTs.

    python examples/lossy_plot.py [-o docs/qlog-lossy-transfer.png] [--size-mb 20]

Needs matplotlib (``pip install 'quicish[plot]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import quicish  # noqa: E402
from quicish import Config, QuicStreamReader, QuicStreamWriter  # noqa: E402
from quicish.netem import LinkConfig, Netem  # noqa: E402
from quicish.tls.certs import generate_self_signed  # noqa: E402


async def send_size(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
    """Answer a request (a byte count, as ASCII) with that many bytes."""
    size = int((await reader.read()).decode())
    chunk = bytes(1 << 20)
    while size > 0:
        writer.write(chunk[: min(size, len(chunk))])
        size -= min(size, len(chunk))
        await writer.drain()
    writer.write_eof()


async def download(size: int, qlog: Path) -> Path:
    """The server's qlog file of one download of ``size`` bytes through the relay."""
    cert, key = generate_self_signed(("localhost",))
    server = await quicish.serve(
        "127.0.0.1",
        0,
        config=Config(certificate_chain=cert, private_key=key, qlog_dir=str(qlog)),
        on_stream=send_size,
    )
    link = LinkConfig(delay_ms=10, loss_pct=2, rate_mbit=50)
    try:
        with Netem(server.address, both=link, seed=17) as relay:
            config = Config(verify=False, max_data=16 << 20, max_stream_data=16 << 20)
            async with quicish.connect(*relay.address, config=config) as conn:
                reader, writer = await conn.open_stream()
                writer.write(str(size).encode())
                writer.write_eof()
                got = 0
                while chunk := await reader.read(1 << 20):
                    got += len(chunk)
                assert got == size, got
                stats = conn.stats()
            print(f"downloaded {got} bytes; client saw {stats.packets_received} packets")
            await asyncio.sleep(0.2)  # (the close reaches the server, through the relay)
            print(f"relay: {relay.stop()}")
    finally:
        server.close()  # (a connection still draining ends here: its qlog is written)
        await server.wait_closed()
    (path,) = qlog.glob("*_server.sqlog")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "qlog-lossy-transfer.png"))
    parser.add_argument("--size-mb", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("quicish").setLevel(logging.ERROR)  # (verify=False warns)
    qlog = Path(tempfile.mkdtemp(prefix="quicish-lossy-"))
    trace = asyncio.run(download(args.size_mb << 20, qlog))
    print(f"qlog: {trace}")
    title = f"{args.size_mb} MB through quicish.netem: 2% loss each way, 2 x 10 ms, 50 Mbit/s"
    tool = [sys.executable, "-m", "quicish.qlog"]
    subprocess.run([*tool, "summary", str(trace)], check=True)
    return subprocess.run(
        [*tool, "plot", str(trace), "-o", args.output, "--title", title]
    ).returncode


if __name__ == "__main__":
    sys.exit(main())
