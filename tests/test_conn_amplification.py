"""Anti-amplification (RFC 9000 section 8): until a server has validated the client's address
it sends at most three times the bytes it received from it, counting every byte of every
datagram (first flight, PTO probes, closes), over the whole life of the unvalidated
connection; and it never pads a datagram with an ack-eliciting Initial past that budget
(RFC 9000 14.1 wants 1200 bytes: such a datagram waits for more budget instead).

Sans-IO, on a virtual clock: a spoofed client Initial (nobody answers the server) is fed to a
server connection, whose timers then run until it gives up.
"""

from __future__ import annotations

import pytest
from pairs import Peer, datagram_types, make_net
from support import big_chain_files, client_config, server_config

from quicish import Config
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext
from quicish.wire.packet import PacketType

CLIENT = ("192.0.2.9", 40000)
SERVER = ("192.0.2.1", 4433)


def _client_first_datagram(**client_kw: object) -> tuple[Connection, bytes]:
    client = Connection(client_config(**client_kw), is_client=True)
    client.connect(SERVER, 0.0)
    out = client.datagrams_to_send(0.0)
    return client, out[0][0]


def _server(config: Config, *, split: bool) -> Connection:
    server = Connection(config, is_client=False, server_context=ServerContext.from_config(config))
    server.split_first_flight = split
    return server


def _drain(server: Connection, now: float) -> list[bytes]:
    """Everything the server sends now (a split flight's second half included)."""
    sent: list[bytes] = []
    while True:
        sent += [data for data, _ in server.datagrams_to_send(now)]
        if not server.flight_pending:
            return sent


def _run_unanswered(
    server: Connection, inputs: list[tuple[float, bytes]], until: float = 120.0
) -> list[bytes]:
    """Feed ``inputs`` (time, datagram) from CLIENT and run every timer until ``until`` or
    the server's end; returns every datagram the server sent."""
    sent: list[bytes] = []
    now = 0.0
    pending = sorted(inputs, key=lambda item: item[0])
    while True:
        timer = server.next_timer()
        next_input = pending[0][0] if pending else None
        if next_input is not None and (timer is None or next_input <= timer):
            now = max(now, next_input)
            server.receive_datagram(pending.pop(0)[1], CLIENT, now)
        elif timer is not None and timer <= until:
            now = max(now, timer)
            server.handle_timer(now)
        else:
            return sent
        sent += _drain(server, now)


def _check_padding(sent: list[bytes]) -> None:
    """RFC 9000 14.1: every datagram with an Initial (all of ours are ack-eliciting or
    ride with one) is at least 1200 bytes."""
    for datagram in sent:
        if PacketType.INITIAL in datagram_types(datagram):
            assert len(datagram) >= 1200


def _big_chain_config() -> Config:
    cert, key, _ = big_chain_files()
    return Config(certificate_chain=cert, private_key=key)


# ---- one spoofed Initial, nobody answering ----------------------------------------------------
@pytest.mark.parametrize("split", [False, True], ids=["one-flight", "split-flight"])
def test_spoofed_initial_gets_at_most_three_times_its_size_ever(split: bool) -> None:
    _, first = _client_first_datagram()
    assert len(first) == 1200  # a client Initial of exactly the minimum size
    server = _server(server_config(), split=split)
    sent = _run_unanswered(server, [(0.0, first)])
    sizes = [len(d) for d in sent]
    assert sum(sizes) <= 3 * 1200, sizes
    _check_padding(sent)
    # The first flight, then as many padded 1200-byte Initial probes as the budget carries
    # (one, with the Handshake data coalesced: RFC 9002 6.2.4): the flight and one probe
    # fill it, a second probe would not fit; with the flight split, what is left of the
    # budget may carry Handshake data alone (no Initial: it could not be padded).
    if split:
        assert sizes[0] == 1200 and sizes[1] < 1200  # the ServerHello, then the rest
        assert sizes[2] == 1200
        assert datagram_types(sent[2]) == [PacketType.INITIAL, PacketType.HANDSHAKE]
        assert all(PacketType.INITIAL not in datagram_types(d) for d in sent[3:])
    else:
        assert sizes == [1200, 1200, 1200]
    assert server.is_closed  # given up (idle timeout) without sending more
    # The server's own count of what it sent on the path agrees with the wire.
    assert server._paths.current.bytes_sent == sum(sizes)
    assert server._paths.current.bytes_received == 1200


@pytest.mark.parametrize("split", [False, True], ids=["one-flight", "split-flight"])
def test_large_certificate_flight_is_cut_at_the_budget(split: bool) -> None:
    """A ~4 KB chain does not fit 3x1200: the server sends up to the budget, never past it,
    and the datagram with the ack-eliciting Initial is still 1200 bytes."""
    _, first = _client_first_datagram()
    server = _server(_big_chain_config(), split=split)
    sent = _run_unanswered(server, [(0.0, first)])
    assert sum(len(d) for d in sent) <= 3600, [len(d) for d in sent]
    _check_padding(sent)
    assert PacketType.INITIAL in datagram_types(sent[0])


@pytest.mark.parametrize("split", [False, True], ids=["one-flight", "split-flight"])
def test_each_client_datagram_extends_the_budget_by_three_times_its_size(split: bool) -> None:
    """The client's Initial sent again (its PTO, the server's answers lost) at 1 s and 3 s:
    at every moment the server has sent at most 3x what it received, probes included."""
    _, first = _client_first_datagram()
    server = _server(_big_chain_config(), split=split)
    received = 0
    sent_total = 0
    inputs = [(0.0, first), (1.0, first), (3.0, first)]
    now = 0.0
    while True:
        timer = server.next_timer()
        if inputs and (timer is None or inputs[0][0] <= timer):
            now, data = inputs.pop(0)
            received += len(data)
            server.receive_datagram(data, CLIENT, now)
        elif timer is not None and timer <= 60.0:
            now = max(now, timer)
            server.handle_timer(now)
        else:
            break
        out = _drain(server, now)
        _check_padding(out)
        sent_total += sum(len(d) for d in out)
        assert sent_total <= 3 * received, (now, sent_total, received)
    assert sent_total > 3600  # the later datagrams did extend the budget


def test_coalesced_client_datagram_counts_whole() -> None:
    """A client datagram that coalesces its Initial with more (here padding junk after the
    packet, a larger datagram) extends the budget by 3x the whole datagram, not more."""
    _, first = _client_first_datagram()
    bigger = first + bytes(300)  # trailing zeros: ignored after the Initial (RFC 9000 12.2)
    server = _server(_big_chain_config(), split=True)
    sent = _run_unanswered(server, [(0.0, bigger)])
    total = sum(len(d) for d in sent)
    assert total <= 3 * len(bigger), [len(d) for d in sent]
    assert server._paths.current.bytes_received == len(bigger)
    _check_padding(sent)


def test_close_of_unvalidated_connection_is_within_the_budget() -> None:
    """A close sent while the address is unvalidated counts against the budget too."""
    _, first = _client_first_datagram()
    server = _server(server_config(), split=True)
    server.receive_datagram(first, CLIENT, 0.0)
    sent = _drain(server, 0.0)
    server.close(0, "bye", now=0.0)
    sent += _drain(server, 0.0)
    assert server._paths.current.bytes_sent == sum(len(d) for d in sent)
    assert sum(len(d) for d in sent) <= 3600


# ---- a real handshake still completes ---------------------------------------------------------
@pytest.mark.parametrize("split", [False, True], ids=["one-flight", "split-flight"])
def test_handshake_with_large_certificate_chain_completes(split: bool) -> None:
    """The ~4 KB chain needs the client's acknowledgement to go on (it validates the
    address): the handshake completes within about two round trips, not a PTO later."""
    cert, key, pin = big_chain_files()
    net = make_net(
        connect=False,
        client_kw={"pin": pin},
        server_kw={"certificate_chain": cert, "private_key": key},
    )
    net.server.split_first_flight = split
    net.start()
    c, s = Peer(net.client), Peer(net.server)
    rtt = net.up.spec.delay + net.down.spec.delay
    assert net.run_until(lambda: net.client.handshake_complete, c, s, timeout=5.0)
    # Two round trips and a little: no probe timeout on the way (the first PTO is about
    # 1 s: three times the initial RTT of 333 ms).
    assert net.now <= 2 * rtt + 0.005, net.now
    assert net.server.stats_counters.bytes_sent > 3600  # more than one budget's worth
