"""CPU of each step of a handshake and first echo, in the order the asyncio peers take them.

Two sans-IO ``Connection`` objects in memory, driven as ``quicish.aio`` drives them (the
server with ``split_first_flight`` and both with ``prepare()`` while they wait for the peer,
handshake stocks for their key pairs), each step timed alone (``time.perf_counter``):

- ``c_initial``: the client's first datagram (its ClientHello made ahead by ``start_hello``);
- ``s_hello``: the server reads the ClientHello and builds the ServerHello's datagram;
- ``s_flight``: the server builds the rest of its flight;
- ``c_sh`` / ``c_flight``: the client reads the ServerHello, then the rest of the flight;
- ``c_finished``: the client's datagram with its Finished;
- ``c_request``: the client opens a stream and sends a 64-byte request;
- ``s_answer``: the server reads the Finished and the request and builds its answer;
- ``c_answer``: the client reads the answer.

``prepare()`` (between the steps) and the making of the connection objects are not timed:
the asyncio layer does them while it waits for the peer. Prints µs per step (mean of
``--count`` after 30 warm-up handshakes); ``--profile STEP`` adds a cProfile of one step.

    python benchmarks/bench_handshake_steps.py [--count 300] [--profile s_flight]
"""

from __future__ import annotations

import argparse
import logging
import pstats
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_handshake import CLIENT_ADDR, SERVER_ADDR, Meter, configs

from quicish.proto.connection import Connection
from quicish.proto.events import StreamDataAvailable
from quicish.proto.handshake_stock import HandshakeStock

STEPS = ("c_initial", "s_hello", "s_flight", "c_sh", "c_flight", "c_finished", "c_request",
         "s_answer", "c_answer")  # fmt: skip

Datagrams = list[tuple[bytes, Any]]


def _feed(conn: Connection, datagrams: Datagrams) -> None:
    source = SERVER_ADDR if conn.is_client else CLIENT_ADDR
    for data, _ in datagrams:
        conn.receive_datagram(data, source, 1.0)


def _prepare(conn: Connection) -> None:
    if conn.wants_preparation:
        conn.prepare(1.0)


def one(step: Meter, setup: tuple[Any, Any, Any], stocks: tuple[HandshakeStock, ...]) -> None:
    """One handshake and 64-byte echo, each step timed."""
    ccfg, scfg, ctx = setup
    now = 1.0
    client = Connection(ccfg, is_client=True, handshake_stock=stocks[0])
    client.start_hello(now)
    server = Connection(scfg, is_client=False, server_context=ctx, handshake_stock=stocks[1])
    server.split_first_flight = True
    server.await_hello(now)
    step("c_initial", client.connect, SERVER_ADDR, now)
    initial = step("c_initial", client.datagrams_to_send, now)
    _prepare(client)
    step("s_hello", _feed, server, initial)
    hello = step("s_hello", server.datagrams_to_send, now)
    rest = step("s_flight", server.datagrams_to_send, now)
    _prepare(server)
    step("c_sh", _feed, client, hello)
    step("c_flight", _feed, client, rest)
    while client.next_event() is not None:
        pass
    finished = step("c_finished", client.datagrams_to_send, now)
    sid = step("c_request", client.open_stream)
    step("c_request", client.send_stream_data, sid, b"GET /64\r\n", True)
    request = step("c_request", client.datagrams_to_send, now)

    def answer() -> Datagrams:
        _feed(server, finished + request)
        while (event := server.next_event()) is not None:
            if isinstance(event, StreamDataAvailable) and server.read_stream(event.stream_id)[1]:
                server.send_stream_data(event.stream_id, b"x" * 64, True)
        return server.datagrams_to_send(now)

    def read() -> bool:
        _feed(client, step_answer)
        while (event := client.next_event()) is not None:
            if isinstance(event, StreamDataAvailable):
                return client.read_stream(event.stream_id) == (b"x" * 64, True)
        return False

    step_answer = step("s_answer", answer)
    if not step("c_answer", read):
        raise RuntimeError("no answer")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="handshakes timed")
    parser.add_argument("--profile", choices=STEPS, help="cProfile one step")
    args = parser.parse_args(argv)
    setup = configs()
    stocks = (HandshakeStock(), HandshakeStock())
    for _ in range(30):
        one(Meter(None, STEPS), setup, stocks)
    step = Meter(args.profile, STEPS)
    for _ in range(args.count):
        one(step, setup, stocks)
    result = {name: round(spent / args.count * 1e6, 1) for name, spent in step.spent.items()}
    print(" ".join(f"{name} {us:.1f}" for name, us in result.items()) + " (µs per step)")
    if args.profile:
        pstats.Stats(step.profiler).sort_stats("tottime").print_stats(30)
    return result


if __name__ == "__main__":
    logging.disable(logging.WARNING)  # verify=False warns once
    main()
