"""Two sans-IO Connections echo 64-byte messages in memory: the engine's work per round trip.

No sockets, no event loop: a client sends a message on one stream, the server reads it and
writes it back, the client reads the answer, each datagram handed over at once (a virtual
clock 0.1 ms per hop), both sides asking for their next timer after sending as a driver
does. Prints the CPU time per round trip; for instructions, run it under callgrind twice
and divide the difference by the difference in round trips:

    python benchmarks/bench_echo.py [--count 3000]
    valgrind --tool=callgrind python benchmarks/bench_echo.py --count 3000   # minus --count 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quicish import Config
from quicish.proto.connection import Connection
from quicish.proto.events import StreamDataAvailable
from quicish.proto.server_context import ServerContext
from quicish.simlink import CLIENT_ADDR, SERVER_ADDR, LinkSpec, SimNetwork
from quicish.tls.certs import generate_self_signed

WARMUP = 2000  # round trips before the measured ones (path MTU discovery settles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="measured round trips")
    args = parser.parse_args()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"quicish-echo-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    cert, key = generate_self_signed(("localhost",))
    (tmp / "c.pem").write_bytes(cert)
    (tmp / "k.pem").write_bytes(key)
    scfg = Config(
        certificate_chain=str(tmp / "c.pem"),
        private_key=str(tmp / "k.pem"),
        cipher_suites=["aes128"],
    )
    client = Connection(Config(verify=False, cipher_suites=["aes128"]), is_client=True)
    server = Connection(scfg, is_client=False, server_context=ServerContext.from_config(scfg))
    link = LinkSpec(delay=0.001)
    net = SimNetwork(client, server, to_server=link, to_client=link)
    net.start()
    net.run(lambda: client.handshake_complete and server.handshake_complete, 5.0)
    now = net.now
    sid = client.open_stream()
    message = b"m" * 64

    def round_trip() -> None:
        nonlocal now
        client.send_stream_data(sid, message)
        for data, _ in client.datagrams_to_send(now):
            server.receive_datagram(data, CLIENT_ADDR, now + 0.0001)
        client.next_timer()
        now += 0.0001
        while (event := server.next_event()) is not None:
            if isinstance(event, StreamDataAvailable):
                data, _ = server.read_stream(event.stream_id, 64)
                server.send_stream_data(event.stream_id, data)
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, SERVER_ADDR, now + 0.0001)
        server.next_timer()
        now += 0.0001
        while (event := client.next_event()) is not None:
            if isinstance(event, StreamDataAvailable):
                answer, _ = client.read_stream(event.stream_id, 64)
                assert answer == message

    for _ in range(WARMUP):
        round_trip()
    start = time.process_time()
    for _ in range(args.count):
        round_trip()
    spent = time.process_time() - start
    print(f"{args.count} round trips: {spent / args.count * 1e6:.1f} µs CPU each (both sides)")


if __name__ == "__main__":
    main()
