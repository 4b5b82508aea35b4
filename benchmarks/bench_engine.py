"""Two sans-IO Connections move data in memory: packets per second of the protocol engine.

No sockets, no event loop: a client and a server ``Connection`` are driven only through
``receive_datagram`` / ``datagrams_to_send`` / ``read_stream`` on a virtual clock, with a
zero-loss link of 1 ms one-way delay. Both sides run in this one process, so the figure is
the engine's cost for sending *and* receiving each packet.

    python benchmarks/bench_engine.py [--size-mb 100] [--ack-frequency] [--per-side]
                                      [--max-datagram-size 1200] [--cc bbr]

``--ack-frequency``: both sides with ``Config(ack_frequency=True)`` (the receiver then
acknowledges every N packets as the sender asks, draft-ietf-quic-ack-frequency).
``--per-side``: also the CPU time (thread time) each side spends per data packet, the
sender's (building, sealing, recording, processing ACKs) and the receiver's (opening,
reassembling, acknowledging), measured around each connection's entry points (which adds
a little to both). ``--max-datagram-size``: both sides' ``Config(max_datagram_size=)``
(1200: path MTU discovery has nowhere to go, every data packet is 1,200 bytes).
``--cc``: both sides with that congestion controller.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quicish import Config
from quicish.proto.connection import Connection
from quicish.proto.events import StreamDataAvailable
from quicish.proto.server_context import ServerContext
from quicish.simlink import LinkSpec, SimNetwork
from quicish.tls.certs import generate_self_signed


def uploader(client: Connection, server: Connection, size: int) -> Callable[[], bool]:
    """A ``SimNetwork.run`` condition that keeps ``size`` bytes flowing from ``client`` to
    ``server`` on a new stream (8 MB buffered at most) and reads them: True once all came."""
    sid = client.open_stream()
    chunk = os.urandom(1 << 20)
    sent = received = 0

    def progress() -> bool:
        nonlocal sent, received
        while sent < size and client.stream_send_buffered(sid) < (8 << 20):
            n = min(len(chunk), size - sent)
            sent += n
            client.send_stream_data(sid, chunk[:n], end_stream=sent >= size)
        while (event := server.next_event()) is not None:
            if isinstance(event, StreamDataAvailable):
                data, _ = server.read_stream(event.stream_id)
                received += len(data)
        while client.next_event() is not None:
            pass
        return received >= size

    return progress


ENTRY_POINTS = ("receive_datagram", "datagrams_to_send", "handle_timer", "read_stream")


def timed(conn: Connection, spent: list[float]) -> None:
    """Add the thread time of ``conn``'s entry points to ``spent[0]`` (``conn`` moves to a
    subclass with the timed methods: a connection has ``__slots__``, no instance dict)."""
    cls = type(conn)
    methods: dict[str, Any] = {"__slots__": ()}
    for name in ENTRY_POINTS:
        method = getattr(cls, name)

        def wrapper(self: Connection, *args: Any, _method: Any = method) -> Any:
            start = time.thread_time()
            try:
                return _method(self, *args)
            finally:
                spent[0] += time.thread_time() - start

        methods[name] = wrapper
    conn.__class__ = type(cls.__name__, (cls,), methods)


def run(
    size: int,
    ack_frequency: bool = False,
    per_side: bool = False,
    max_datagram_size: int | None = None,
    cc: str | None = None,
) -> dict[str, float]:
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"quicish-bench-{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    cert, key = generate_self_signed(("localhost",))
    (tmp / "c.pem").write_bytes(cert)
    (tmp / "k.pem").write_bytes(key)
    window: dict[str, Any] = dict(max_data=32 << 20, max_stream_data=32 << 20)
    if ack_frequency:
        window["ack_frequency"] = True
    if max_datagram_size is not None:
        window["max_datagram_size"] = max_datagram_size
    if cc:
        window["congestion_control"] = cc
    scfg = Config(certificate_chain=str(tmp / "c.pem"), private_key=str(tmp / "k.pem"), **window)
    ccfg = Config(verify=False, **window)
    client = Connection(ccfg, is_client=True)
    server = Connection(scfg, is_client=False, server_context=ServerContext.from_config(scfg))
    link = LinkSpec(delay=0.001)
    net = SimNetwork(client, server, to_server=link, to_client=LinkSpec(delay=0.001))
    net.start()
    net.run(lambda: client.handshake_complete and server.handshake_complete, 5.0)
    start_packets = client.stats().packets_sent + server.stats().packets_sent
    progress = uploader(client, server, size)
    sender, receiver = [0.0], [0.0]
    if per_side:
        timed(client, sender)
        timed(server, receiver)
    cpu0, wall0, virt0 = time.process_time(), time.perf_counter(), net.now
    if not net.run(progress, timeout=3600):
        raise RuntimeError("the transfer did not complete")
    cpu = time.process_time() - cpu0
    packets = client.stats().packets_sent + server.stats().packets_sent - start_packets
    data_packets = max(1, client.stats().packets_sent)
    return {
        "sender_us_per_data_packet": sender[0] / data_packets * 1e6,
        "receiver_us_per_data_packet": receiver[0] / data_packets * 1e6,
        "bytes_per_data_packet": client.stats().bytes_sent / data_packets,
        "bytes": size,
        "cpu_s": cpu,
        "wall_s": time.perf_counter() - wall0,
        "virtual_s": net.now - virt0,
        "packets": packets,
        "packets_per_s": packets / cpu,
        "data_packets_per_s": client.stats().packets_sent / cpu,
        "mbit_per_s": size * 8 / cpu / 1e6,
        "acks_per_data_packet": server.stats().packets_sent / max(1, client.stats().packets_sent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--ack-frequency", action="store_true")
    parser.add_argument("--per-side", action="store_true")
    parser.add_argument("--max-datagram-size", type=int)
    parser.add_argument("--cc", default=None, help="congestion controller (default: Config's)")
    args = parser.parse_args()
    r = run(args.size_mb << 20, args.ack_frequency, args.per_side, args.max_datagram_size, args.cc)
    print("| in-memory engine, both sides in one process | value |")
    print("|---|---:|")
    print(f"| data moved | {r['bytes'] / 1e6:.0f} MB |")
    print(f"| CPU time | {r['cpu_s']:.2f} s |")
    print(f"| packets (both directions) | {r['packets']:.0f} |")
    print(f"| packets per CPU second (send + receive) | {r['packets_per_s']:,.0f} |")
    print(f"| data packets per CPU second | {r['data_packets_per_s']:,.0f} |")
    print(f"| goodput per CPU second | {r['mbit_per_s']:.0f} Mbit/s |")
    print(f"| receiver packets per data packet (ACKs) | {r['acks_per_data_packet']:.3f} |")
    if args.per_side:
        size, sender = r["bytes_per_data_packet"], r["sender_us_per_data_packet"]
        print(f"| sender CPU per data packet ({size:,.0f} B) | {sender:.2f} µs |")
        print(f"| receiver CPU per data packet | {r['receiver_us_per_data_packet']:.2f} µs |")


if __name__ == "__main__":
    main()
