"""ACK frequency on and off (draft-ietf-quic-ack-frequency; docs/congestion.md): goodput and
the receiver's packets per data packet, alternating the two settings run by run.

* ``sim``: a client -> server upload over ``quicish.simlink`` (virtual time: the goodput is
  the protocol's, not the CPU's), bandwidth-limited so data packets arrive one by one;
* ``udp``: the same upload over real loopback UDP with the asyncio API (wall-clock goodput,
  so the CPU saved on ACKs shows).

    python benchmarks/bench_ack_frequency.py [--mode sim|udp|both] [--runs 3] [--size-mb 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import uploader

import quicish
from quicish import Config
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext
from quicish.simlink import LinkSpec, SimNetwork
from quicish.tls.certs import generate_self_signed

WINDOW = {"max_data": 32 << 20, "max_stream_data": 32 << 20}


def _configs(ack_frequency: bool, cc: str) -> tuple[Config, Config]:
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"quicish-bench-af-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    if not (tmp / "c.pem").exists():
        cert, key = generate_self_signed(("localhost",))
        (tmp / "c.pem").write_bytes(cert)
        (tmp / "k.pem").write_bytes(key)
    kw: dict[str, Any] = dict(WINDOW, ack_frequency=ack_frequency, congestion_control=cc)
    server = Config(certificate_chain=str(tmp / "c.pem"), private_key=str(tmp / "k.pem"), **kw)
    return server, Config(verify=False, **kw)


def sim(
    size: int, ack_frequency: bool, cc: str, mbit: float, rtt: float, loss: float, seed: int = 7
) -> dict:
    scfg, ccfg = _configs(ack_frequency, cc)
    client = Connection(ccfg, is_client=True)
    server = Connection(scfg, is_client=False, server_context=ServerContext.from_config(scfg))
    up = LinkSpec(delay=rtt / 2, bandwidth=mbit * 1e6, queue=200, loss=loss)
    net = SimNetwork(client, server, to_server=up, to_client=LinkSpec(delay=rtt / 2), seed=seed)
    net.start()
    net.run(lambda: client.handshake_complete and server.handshake_complete, 5.0)
    c0, s0 = client.stats().packets_sent, server.stats().packets_sent
    progress = uploader(client, server, size)

    t0, cpu0 = net.now, time.process_time()
    net.run(progress, timeout=3600)
    data_packets = client.stats().packets_sent - c0
    return {
        "mbit": size * 8 / (net.now - t0) / 1e6,
        "acks": (server.stats().packets_sent - s0) / data_packets,
        "cpu": time.process_time() - cpu0,
        "lost": client.stats().packets_lost,
    }


async def udp(size: int, ack_frequency: bool, cc: str) -> dict:
    scfg, ccfg = _configs(ack_frequency, cc)
    data = os.urandom(size)
    servers: list[quicish.QuicConnection] = []

    async def sink(reader: quicish.QuicStreamReader, writer: quicish.QuicStreamWriter) -> None:
        writer.write(hashlib.sha256(await reader.read()).digest())
        writer.write_eof()

    server = await quicish.serve(
        "127.0.0.1", 0, config=scfg, on_stream=sink, on_connection=servers.append
    )
    try:
        async with quicish.connect("127.0.0.1", server.address[1], config=ccfg) as conn:
            t0, cpu0 = time.perf_counter(), time.process_time()
            reader, writer = await conn.open_stream()
            writer.write(data)
            writer.write_eof()
            assert await reader.read() == hashlib.sha256(data).digest()
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            sent = conn.stats().packets_sent
            acks = servers[0].stats().packets_sent / sent
    finally:
        server.close()
        await server.wait_closed()
    return {"mbit": size * 8 / wall / 1e6, "acks": acks, "cpu": cpu, "lost": 0}


def _line(name: str, off: list[dict], on: list[dict]) -> str:
    def mean(rows: list[dict], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    ratios = [b["mbit"] / a["mbit"] for a, b in zip(off, on, strict=True)]
    return (
        f"| {name} | {mean(off, 'mbit'):.1f} | {mean(on, 'mbit'):.1f} | "
        f"{min(ratios):.3f}-{max(ratios):.3f} | {mean(off, 'acks'):.3f} | "
        f"{mean(on, 'acks'):.3f} | {mean(off, 'cpu'):.2f} / {mean(on, 'cpu'):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("sim", "udp", "both"), default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=8)
    args = parser.parse_args()
    size = args.size_mb << 20
    print(
        "| case | off Mbit/s | on Mbit/s | on/off per pair | off ACKs/data pkt "
        "| on ACKs/data pkt | CPU s off / on |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    if args.mode in ("sim", "both"):
        for cc in ("cubic", "bbr"):
            for mbit, rtt, loss in ((50, 0.03, 0.0), (50, 0.03, 0.01), (200, 0.01, 0.0)):
                off: list[dict] = []
                on: list[dict] = []
                for run in range(args.runs):  # (each pair: the same link seed, another per pair)
                    off.append(sim(size, False, cc, mbit, rtt, loss, seed=run))
                    on.append(sim(size, True, cc, mbit, rtt, loss, seed=run))
                name = f"sim {cc} {mbit} Mbit/s {rtt * 1000:.0f} ms loss {loss:.0%}"
                print(_line(name, off, on), flush=True)
    if args.mode in ("udp", "both"):
        for cc in ("cubic", "bbr"):
            off, on = [], []
            for _ in range(args.runs):
                off.append(asyncio.run(udp(size, False, cc)))
                on.append(asyncio.run(udp(size, True, cc)))
            print(_line(f"loopback UDP {cc}", off, on), flush=True)


if __name__ == "__main__":
    main()
