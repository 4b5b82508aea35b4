"""Received DATAGRAM frames (RFC 9221) wait for the application in a bounded queue (issue 15,
item 12): beyond ``Config.datagram_receive_buffer`` the oldest are dropped (a DATAGRAM is
unreliable by definition) and counted in ``stats().datagrams_dropped``; what is kept
arrives in order, in its place among the other events."""

from __future__ import annotations

from typing import Any

from pairs import connected, encode, inject, make_net

from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.wire import frames as F

KW = {"max_datagram_frame_size": 1200}


def _drain(conn: Connection) -> list[Any]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def test_unread_datagrams_are_bounded_by_default() -> None:
    """5,000 DATAGRAM frames of 1,000 bytes the application does not read: the default
    1 MiB bound keeps the newest, in order, and counts the rest as dropped."""
    net = make_net(client_kw=KW, server_kw=KW)
    connected(net)
    server = net.server
    for i in range(5000):
        inject(net.client, server, encode(F.DatagramFrame(i.to_bytes(4, "big") * 250)), net.now)
    got = [e.data for e in _drain(server) if isinstance(e, ev.DatagramReceived)]
    assert len(got) > 0 and sum(len(d) + 64 for d in got) <= 1 << 20
    numbers = [int.from_bytes(d[:4], "big") for d in got]
    assert numbers == list(range(5000 - len(got), 5000))  # the newest, in order
    assert server.stats().datagrams_dropped == 5000 - len(got)


def test_dropped_datagrams_leave_other_events_in_order() -> None:
    kw = dict(KW, datagram_receive_buffer=3 * (100 + 64))
    net = make_net(client_kw=kw, server_kw=kw)
    connected(net)
    server = net.server
    _drain(server)

    def datagram(n: int) -> bytes:
        return encode(F.DatagramFrame(bytes([n]) * 100))

    inject(net.client, server, datagram(0), net.now)
    inject(net.client, server, datagram(1), net.now)
    inject(net.client, server, encode(F.StreamFrame(0, 0, b"x")), net.now)
    for n in range(2, 2000):
        inject(net.client, server, datagram(n % 256), net.now)
    events = _drain(server)
    assert isinstance(events[0], ev.StreamDataAvailable)
    assert [e.data[0] for e in events[1:]] == [1997 % 256, 1998 % 256, 1999 % 256]
    assert server.stats().datagrams_dropped == 1997
    # Queue and bookkeeping are empty again: the next datagram is delivered at once.
    inject(net.client, server, datagram(7), net.now)
    assert [e.data[:1] for e in _drain(server)] == [b"\x07"]
    assert len(server._events) == 0
