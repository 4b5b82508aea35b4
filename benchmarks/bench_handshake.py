"""CPU per handshake of the protocol engine: two sans-IO Connections in memory.

A client and a server ``Connection`` complete a handshake and one request/response (64
bytes) through ``receive_datagram`` / ``datagrams_to_send`` only: no sockets, no event loop,
no ``prepare()`` and no split first flight, so the figure is each side's plain CPU work.
Prints the best of ``--repeat`` runs of ``--count`` handshakes per side; ``--profile cli`` or
``--profile srv`` adds a cProfile of that side.

    python benchmarks/bench_handshake.py [--count 200] [--repeat 5] [--profile cli|srv]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quicish import Config
from quicish.proto.connection import Connection
from quicish.proto.events import StreamDataAvailable
from quicish.proto.server_context import ServerContext
from quicish.tls.certs import generate_self_signed

CLIENT_ADDR, SERVER_ADDR = ("127.0.0.1", 50000), ("127.0.0.1", 4433)


class Meter:
    """CPU time per part (by default the two sides); optionally profiles one part."""

    def __init__(self, profile: str | None, parts: tuple[str, ...] = ("cli", "srv")) -> None:
        self.spent = dict.fromkeys(parts, 0.0)
        self.profile = profile
        self.profiler = cProfile.Profile()

    def __call__(self, side: str, fn: Callable[..., Any], *args: Any) -> Any:
        on = side == self.profile
        if on:
            self.profiler.enable()
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.spent[side] += time.perf_counter() - start
            if on:
                self.profiler.disable()


def configs() -> tuple[Config, Config, ServerContext]:
    cert, key = generate_self_signed(("localhost",))
    tmp = Path(tempfile.mkdtemp(prefix="quicish-bench-"))
    (tmp / "cert.pem").write_bytes(cert)
    (tmp / "key.pem").write_bytes(key)
    server = Config(
        alpn=["hq-interop"],
        certificate_chain=str(tmp / "cert.pem"),
        private_key=str(tmp / "key.pem"),
        cipher_suites=["aes128"],
    )
    client = Config(
        alpn=["hq-interop"], verify=False, cipher_suites=["aes128"], server_name="localhost"
    )
    return client, server, ServerContext.from_config(server)


def handshake(meter: Meter, ccfg: Config, scfg: Config, ctx: ServerContext) -> None:
    """One handshake plus a 64-byte request/response, each side's calls metered."""
    now = 1.0
    client = meter("cli", lambda: Connection(ccfg, is_client=True))
    meter("cli", client.connect, SERVER_ADDR, now)
    server = meter("srv", lambda: Connection(scfg, is_client=False, server_context=ctx))
    stream: int | None = None
    for _ in range(20):
        for data, _ in meter("cli", client.datagrams_to_send, now):
            meter("srv", server.receive_datagram, data, CLIENT_ADDR, now)
        while (event := server.next_event()) is not None:
            if isinstance(event, StreamDataAvailable):
                _, fin = meter("srv", server.read_stream, event.stream_id)
                if fin:
                    meter("srv", server.send_stream_data, event.stream_id, b"x" * 64, True)
        for data, _ in meter("srv", server.datagrams_to_send, now):
            meter("cli", client.receive_datagram, data, SERVER_ADDR, now)
        if client.handshake_complete and stream is None:
            stream = client.open_stream()
            meter("cli", client.send_stream_data, stream, b"GET /64\r\n", True)
        while (event := client.next_event()) is not None:
            if isinstance(event, StreamDataAvailable) and client.read_stream(event.stream_id)[1]:
                return
        now += 0.001
    raise RuntimeError("the handshake did not finish")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="handshakes per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is reported")
    parser.add_argument("--profile", choices=("cli", "srv"), help="cProfile one side")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # verify=False warns once
    ccfg, scfg, ctx = configs()
    warm = Meter(None)
    for _ in range(30):
        handshake(warm, ccfg, scfg, ctx)
    best = {"cli": float("inf"), "srv": float("inf")}
    meter = Meter(args.profile)
    for _ in range(args.repeat):
        meter.spent = {"cli": 0.0, "srv": 0.0}
        for _ in range(args.count):
            handshake(meter, ccfg, scfg, ctx)
        for side in best:
            best[side] = min(best[side], meter.spent[side] / args.count * 1e6)
    print(
        f"client {best['cli']:.0f} µs, server {best['srv']:.0f} µs of CPU per handshake "
        f"(best of {args.repeat} x {args.count})"
    )
    if args.profile:
        pstats.Stats(meter.profiler).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
