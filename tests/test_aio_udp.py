"""quicish.udp: GSO batched sends and GRO receives deliver exactly the datagrams sent, in
order, with and without the kernel offloads."""

from __future__ import annotations

import os
import select
import socket
from typing import Any

import pytest

from quicish.udp import MAX_GSO_SEGMENTS, UdpSocket


def _datagrams(sizes: list[int]) -> list[bytes]:
    return [bytes([i % 251]) * size for i, size in enumerate(sizes)]


def _collect(sock: UdpSocket, count: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < count:
        ready, _, _ = select.select([sock.fileno()], [], [], 5.0)
        assert ready, f"only {len(got)} of {count} datagrams arrived"
        got.extend(data for data, _, _ in sock.receive())
    return got


def _plain_collect(sock: socket.socket, count: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < count:
        ready, _, _ = select.select([sock], [], [], 5.0)
        assert ready, f"only {len(got)} of {count} datagrams arrived"
        got.append(sock.recv(65535))
    return got


Read = list[tuple[bytes, tuple[str, int], int]]


class _Reads:
    """A socket for an Endpoint whose receive() returns the next queued read (a list of
    datagrams; [] once none is left) and records how many reads each call allowed."""

    def __init__(self, sock: UdpSocket, queue: list[Read]) -> None:
        self.sock, self.queue = sock, queue
        self.reads: list[int] = []

    def receive(self, max_reads: int) -> Read:
        self.reads.append(max_reads)
        return self.queue.pop(0) if self.queue else []

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class _FedConn:
    """What the endpoint uses of a QuicConnection when it feeds one: the datagrams fed and
    each answer, in order, go to ``log``."""

    flight_pending = False

    def __init__(self, log: list[object], answer_owed: bool) -> None:
        self.log, self.answer_owed = log, answer_owed

    def feed_datagram(self, data: bytes, *rest: object) -> None:
        self.log.append(data)

    def after_io(self, now: float) -> None:
        self.log.append("answer")


SIZE_PATTERNS = [
    [1200] * 10,
    [1200] * 10 + [700],  # a short last segment ends a GSO batch
    [1200, 1200, 900, 1200, 1200, 1200, 50],  # a short one in the middle splits batches
    [1200] * (MAX_GSO_SEGMENTS * 2 + 3),  # more than one batch
    [1350, 1200, 1200],  # a longer first one: no batching with it
]


@pytest.mark.parametrize("sizes", SIZE_PATTERNS)
def test_send_reaches_a_plain_socket_unchanged(sizes: list[int]) -> None:
    sender = UdpSocket.bind("127.0.0.1", 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        plain.bind(("127.0.0.1", 0))
        datagrams = _datagrams(sizes)
        assert sender.send(datagrams, plain.getsockname()) == []
        assert _plain_collect(plain, len(datagrams)) == datagrams
    sender.close()


@pytest.mark.parametrize("sizes", SIZE_PATTERNS)
def test_gso_to_gro_round_trip(sizes: list[int]) -> None:
    sender = UdpSocket.bind("127.0.0.1", 0)
    receiver = UdpSocket.bind("127.0.0.1", 0)
    datagrams = _datagrams(sizes)
    assert sender.send(datagrams, receiver.address) == []
    assert _collect(receiver, len(datagrams)) == datagrams
    sender.close()
    receiver.close()


def test_offloads_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICISH_GSO", "0")
    sender = UdpSocket.bind("127.0.0.1", 0)
    receiver = UdpSocket.bind("127.0.0.1", 0)
    assert not sender.gso and not sender.gro
    datagrams = _datagrams([1200] * 5 + [300])
    assert sender.send(datagrams, receiver.address) == []
    assert _collect(receiver, len(datagrams)) == datagrams
    sender.close()
    receiver.close()


def test_receive_reports_the_sender_address() -> None:
    receiver = UdpSocket.bind("127.0.0.1", 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
        plain.bind(("127.0.0.1", 0))
        plain.sendto(b"x" * 100, receiver.address)
        select.select([receiver.fileno()], [], [], 5.0)
        ((data, addr, _ecn),) = receiver.receive()
        assert data == b"x" * 100
        assert addr == plain.getsockname()
    receiver.close()
    assert receiver.address[1] != 0  # known after close


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_receive_reports_the_ecn_codepoint(host: str) -> None:
    """A datagram marked ECT(0) by the sender (quicish's marking) is received with its
    codepoint, and a CE mark (as a router sets it) as CE, alone and in a GRO batch."""
    try:
        sender, receiver = UdpSocket.bind(host, 0), UdpSocket.bind(host, 0)
    except OSError:
        pytest.skip(f"no {host}")
    if not (sender.ecn and receiver.ecn):
        pytest.skip("ECN socket options not available")
    dest = (host, receiver.address[1])
    assert sender.send([b"a" * 80], dest) == []
    assert _collect_ecn(receiver, 1) == [(b"a" * 80, 0x02)]
    level, option = (
        (socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
        if ":" in host
        else (socket.IPPROTO_IP, socket.IP_TOS)
    )
    sender.sock.setsockopt(level, option, 0x03)  # CE
    assert sender.send([b"b" * 1200] * 3, dest) == []
    assert _collect_ecn(receiver, 3) == [(b"b" * 1200, 0x03)] * 3
    sender.close()
    receiver.close()


def _collect_ecn(sock: UdpSocket, count: int) -> list[tuple[bytes, int]]:
    got: list[tuple[bytes, int]] = []
    while len(got) < count:
        ready, _, _ = select.select([sock.fileno()], [], [], 5.0)
        assert ready, f"only {len(got)} of {count} datagrams arrived"
        got.extend((data, ecn) for data, _, ecn in sock.receive())
    return got


def test_send_to_nobody_does_not_raise() -> None:
    sender = UdpSocket.bind("127.0.0.1", 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for _ in range(3):  # ICMP port unreachable may come back as an error on a later call
        assert sender.send([os.urandom(1200)] * 3, ("127.0.0.1", port)) == []
        assert sender.receive() == []
    sender.close()


def test_endpoint_reads_a_second_round_before_answering() -> None:
    """What arrives while a batch is processed (the rest of a flight, a request behind a
    Finished) is read and processed before the connection answers, so one answer covers
    both; a third round waits for the next wake-up."""
    import asyncio

    from quicish.aio.endpoint import RECEIVE_ROUNDS, Endpoint

    sock = UdpSocket.bind("127.0.0.1", 0)
    peer = ("127.0.0.1", 9)
    rounds = [[(b"first", peer, 0)], [(b"second", peer, 0)], [(b"third", peer, 0)]]
    log: list[object] = []

    conn = _FedConn(log, answer_owed=False)
    loop = asyncio.new_event_loop()
    try:
        endpoint: Endpoint[Any] = Endpoint(loop, _Reads(sock, rounds))  # type: ignore[arg-type]
        endpoint.router.route = lambda data, addr, now: conn  # type: ignore[method-assign]
        endpoint._on_readable()
        assert RECEIVE_ROUNDS == 2
        assert log == [b"first", b"second", "answer"]
        # A round of new clients' hellos, each answered with a ServerHello waiting to go
        # (flight_pending): those clients send nothing more before it, so no second read.
        rounds[:] = [[(b"hello", peer, 0)], [(b"other", peer, 0)]]
        log.clear()
        conn.flight_pending = True
        endpoint._on_readable()
        assert log == [b"hello", "answer"] and rounds == [[(b"other", peer, 0)]]
        # A lone datagram of an established connection (a request): no second read, which
        # would find nothing; two datagrams in the round still get one.
        conn.flight_pending, conn.answer_owed = False, True
        rounds[:] = [[(b"request", peer, 0)], [(b"later", peer, 0)]]
        log.clear()
        endpoint._on_readable()
        assert log == [b"request", "answer"] and rounds == [[(b"later", peer, 0)]]
        # A long-header datagram (the client's Finished, its handshake now complete) is
        # never lone: the first request behind it is read in the same wake, one answer.
        finished = bytes([0xE0]) + b"finished"
        rounds[:] = [[(finished, peer, 0)], [(b"request", peer, 0)]]
        log.clear()
        endpoint._on_readable()
        assert log == [finished, b"request", "answer"] and rounds == []
        rounds[:] = [[(b"one", peer, 0), (b"two", peer, 0)], [(b"three", peer, 0)]]
        log.clear()
        endpoint._on_readable()
        assert log == [b"one", b"two", b"three", "answer"] and rounds == []
        endpoint.close()
    finally:
        loop.close()


def test_endpoint_sends_ready_answers_before_running_timers() -> None:
    """A loop runs due timers ahead of queued callbacks: when the endpoint's timer fires
    while a connection's answer waits for the queued flush, the answer goes out first."""
    import asyncio

    from quicish.aio.endpoint import Endpoint

    log: list[str] = []

    class Conn:  # what the endpoint uses of a QuicConnection
        def __init__(self, name: str) -> None:
            self.name = name
            self.timer_deadline: float | None = None

        def transmit(self, now: float) -> None:
            log.append(f"send {self.name}")

        def on_timer(self, now: float) -> None:
            log.append(f"timer {self.name}")

    sock = UdpSocket.bind("127.0.0.1", 0)
    loop = asyncio.new_event_loop()
    try:
        endpoint: Endpoint[Any] = Endpoint(loop, sock)
        answering, closing = Conn("answering"), Conn("closing")
        endpoint.set_timer(closing, 0.0)  # (long due)
        endpoint.mark_dirty(answering)
        endpoint._on_timer()  # as the loop would run it: before the queued flush
        assert log == ["send answering", "timer closing"]
        endpoint.close()
    finally:
        loop.close()


def _one_connection_reads() -> tuple[list[Read], list[object], _FedConn, _Reads]:
    """A socket whose reads come from a queue, and the one connection (owing an answer) that
    every datagram is routed to: (queued reads, the connection's log, it, the socket)."""
    queue: list[Read] = []
    log: list[object] = []
    return (
        queue,
        log,
        _FedConn(log, answer_owed=True),
        _Reads(UdpSocket.bind("127.0.0.1", 0), queue),
    )


def test_endpoint_reads_once_per_wake_while_datagrams_come_alone() -> None:
    """Request/response traffic (each wake finds one ack-eliciting datagram of an established
    connection, then an empty socket): later wakes read one datagram and stop, except every
    LONE_PROBE_EVERY-th, which reads on until the socket is empty; a wake that finds more
    than one datagram goes back to reading until the socket is empty."""
    import asyncio

    from quicish.aio.endpoint import LONE_MAX_SIZE, LONE_PROBE_EVERY, RECEIVE_READS, Endpoint

    peer = ("127.0.0.1", 9)
    queue, log, conn, reader = _one_connection_reads()
    reads = reader.reads
    loop = asyncio.new_event_loop()
    try:
        endpoint: Endpoint[Any] = Endpoint(loop, reader)  # type: ignore[arg-type]
        endpoint.router.route = lambda data, addr, now: conn  # type: ignore[method-assign]
        wakes = LONE_PROBE_EVERY + 1
        for i in range(wakes):
            queue[:] = [[(b"%d" % i, peer, 0)]]
            endpoint._on_readable()
        assert reads == [RECEIVE_READS] + [1] * (LONE_PROBE_EVERY - 1) + [RECEIVE_READS]
        assert log == [x for i in range(wakes) for x in (b"%d" % i, "answer")]
        # Two datagrams at once in a one-read wake: back to reading until the socket is
        # empty, and in the next wake too when that found more than one datagram again.
        reads.clear()
        log.clear()
        queue[:] = [[(b"a", peer, 0), (b"b", peer, 0)], [(b"c", peer, 0), (b"d", peer, 0)]]
        endpoint._on_readable()
        assert reads == [1, RECEIVE_READS, RECEIVE_READS]
        assert log == [b"a", b"b", b"c", b"d", "answer"]
        reads.clear()
        queue[:] = [[(b"e", peer, 0)]]
        endpoint._on_readable()
        assert reads == [RECEIVE_READS]
        # A full-sized datagram (bulk data, with GRO off) is never lone: reads go on.
        reads.clear()
        queue[:] = [[(bytes(LONE_MAX_SIZE), peer, 0)]]
        endpoint._on_readable()
        assert reads == [1, RECEIVE_READS]
        reads.clear()
        queue[:] = [[(bytes(LONE_MAX_SIZE), peer, 0)]]
        endpoint._on_readable()
        assert reads == [RECEIVE_READS, RECEIVE_READS]
        endpoint.close()
    finally:
        loop.close()


def test_endpoint_timer_heap_keeps_one_entry_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deadline that moves later (the probe timeout, with every packet sent) adds no heap
    entry: the one there comes up at the old time, finds nothing due and goes back in at
    the new one; an earlier deadline gets an entry of its own and the later one is
    dropped when it comes up. The connection's timer runs once, at its deadline."""
    import asyncio

    from quicish.aio import endpoint as endpoint_module

    fired: list[float] = []
    now = [0.0]
    monkeypatch.setattr(endpoint_module, "clock", lambda: now[0])

    class Conn:
        timer_deadline: float | None = None

        def on_timer(self, at: float) -> None:
            fired.append(at)

        def transmit(self, at: float) -> None:
            pass

    sock = UdpSocket.bind("127.0.0.1", 0)
    loop = asyncio.new_event_loop()
    try:
        endpoint: endpoint_module.Endpoint[Any] = endpoint_module.Endpoint(loop, sock)
        conn = Conn()
        for deadline in (10.0, 11.0, 12.0):
            endpoint.set_timer(conn, deadline)
        assert len(endpoint._timers) == 1 and conn.timer_deadline == 12.0
        now[0] = 10.5
        endpoint._on_timer()
        assert fired == [] and [e[0] for e in endpoint._timers] == [12.0]
        now[0] = 12.0
        endpoint._on_timer()
        assert fired == [12.0] and endpoint._timers == []
        endpoint.set_timer(conn, 20.0)
        endpoint.set_timer(conn, 15.0)  # earlier: an entry of its own
        now[0] = 15.0
        endpoint._on_timer()
        assert fired == [12.0, 15.0] and endpoint._timers == []  # the 20.0 one dropped
        endpoint.set_timer(conn, 30.0)
        endpoint.forget(conn)
        now[0] = 30.0
        endpoint._on_timer()
        assert fired == [12.0, 15.0]
        endpoint.close()
    finally:
        loop.close()


class _SendCalls:
    """A socket for a UdpSocket whose sends are counted (and can be made to fail)."""

    def __init__(self, error: OSError | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.error = error

    def sendto(self, data: bytes, addr: object) -> int:
        self.calls.append(("sendto", len(data)))
        if self.error is not None:
            raise self.error
        return len(data)

    def sendmsg(self, buffers: list[bytes], *rest: object) -> int:
        self.calls.append(("sendmsg", len(buffers)))
        return sum(map(len, buffers))


def test_one_datagram_is_one_sendto(caplog: pytest.LogCaptureFixture) -> None:
    """A lone datagram (a reply, an ACK) takes one ``sendto``; a full socket returns it to
    the caller, a refused one (EMSGSIZE, unreachable) is dropped and logged, as in a batch."""
    import errno
    import logging

    udp = UdpSocket.bind("127.0.0.1", 0)
    real = udp.sock
    peer = ("127.0.0.1", 9)
    _ = udp.address  # (known before the socket is swapped: the warning names its port)
    try:
        udp.sock = calls = _SendCalls()  # type: ignore[assignment]
        assert udp.send([b"x" * 70], peer) == []
        assert calls.calls == [("sendto", 70)]
        udp.sock = full = _SendCalls(BlockingIOError(errno.EAGAIN, "full"))  # type: ignore[assignment]
        assert udp.send([b"y"], peer) == [b"y"]
        assert full.calls == [("sendto", 1)]
        udp.sock = refused = _SendCalls(OSError(errno.ENETUNREACH, "unreachable"))  # type: ignore[assignment]
        with caplog.at_level(logging.DEBUG, logger="quicish.endpoint"):
            assert udp.send([b"z"], peer) == []
            assert udp.send([b"z"], peer) == []
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
        assert refused.calls == [("sendto", 1), ("sendto", 1)]
    finally:
        udp.sock = real
        udp.close()


def test_endpoint_one_read_wake_that_is_not_lone_reads_on() -> None:
    """In a one-read wake (request/response traffic), a datagram that is not lone still goes
    where the batch path sends it: a stateless answer (an unknown CID) goes out, a long
    header datagram is fed, and the wake reads on until the socket is empty."""
    import asyncio

    from quicish.aio.endpoint import LONE_PROBE_EVERY, RECEIVE_READS, Endpoint

    peer = ("127.0.0.1", 9)
    queue, log, conn, reader = _one_connection_reads()
    reads = reader.reads
    sent: list[tuple[list[bytes], object]] = []

    def send(datagrams: list[bytes], addr: object) -> list[bytes]:
        sent.append((datagrams, addr))
        return []

    reader.send = send  # type: ignore[attr-defined]
    loop = asyncio.new_event_loop()
    try:
        endpoint: Endpoint[Any] = Endpoint(loop, reader)  # type: ignore[arg-type]
        router = endpoint.router

        def route(data: bytes, addr: Any, now: float) -> Any:
            if data == b"\x41unknown":
                router.outbox.append((b"reset", addr))
                return None
            return conn

        router.route = route  # type: ignore[method-assign]
        for i in range(2):  # into the one-read wakes
            queue[:] = [[(b"\x41%d" % i, peer, 0)]]
            endpoint._on_readable()
        assert reads == [RECEIVE_READS, 1] and endpoint._lone_wakes == 2 < LONE_PROBE_EVERY
        reads.clear()
        log.clear()
        queue[:] = [[(b"\x41unknown", peer, 0)], [(b"\x41a", peer, 0)]]
        endpoint._on_readable()
        assert sent == [([b"reset"], peer)]
        assert reads == [1, RECEIVE_READS]  # (the read after a lone datagram is skipped)
        assert log == [b"\x41a", "answer"] and endpoint._lone_wakes == 1
        for i in range(2):  # back into the one-read wakes
            queue[:] = [[(b"\x41%d" % i, peer, 0)]]
            endpoint._on_readable()
        reads.clear()
        log.clear()
        queue[:] = [[(b"\xc0long", peer, 0)]]
        endpoint._on_readable()
        assert reads == [1, RECEIVE_READS] and log == [b"\xc0long", "answer"]
        assert endpoint._lone_wakes == 0
        endpoint.close()
    finally:
        loop.close()
