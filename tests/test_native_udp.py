"""The C core's ``recv_datagram`` against its twin, ``quicish.udp.receive_one``: the same
datagrams, senders, ECN codepoints and GRO segment sizes, None on an empty socket and the
same OSError for an ICMP error, over IPv4 and IPv6, with and without the offloads."""

from __future__ import annotations

import errno
import select
import socket

import pytest

from quicish import native
from quicish.udp import UdpSocket, receive_one

pytestmark = pytest.mark.skipif(native.recv_datagram is None, reason="no C core")

Got = tuple[bytes, tuple[str, int], int, int]


def _read_all(sock: UdpSocket, count: int, use_c: bool) -> list[Got]:
    """``count`` datagrams read one call at a time (GRO batches whole), then the None."""
    recv = native.recv_datagram
    assert recv is not None
    got: list[Got] = []
    while sum(1 if g[3] == 0 else -(-len(g[0]) // g[3]) for g in got) < count:
        ready, _, _ = select.select([sock.fileno()], [], [], 5.0)
        assert ready, f"only {len(got)} reads arrived"
        one = (
            recv(sock.fileno(), sock._cmsg_space)
            if use_c
            else receive_one(sock.sock, sock._cmsg_space)
        )
        if one is not None:
            got.append(one)
    nothing = recv(sock.fileno(), sock._cmsg_space) if use_c else receive_one(sock.sock, 0)
    assert nothing is None
    return got


def _traffic(host: str, gso: str, monkeypatch: pytest.MonkeyPatch, use_c: bool) -> list[Got]:
    monkeypatch.setenv("QUICISH_GSO", gso)
    try:
        sender, receiver = UdpSocket.bind(host, 0), UdpSocket.bind(host, 0)
    except OSError:
        pytest.skip(f"no {host}")
    dest = (host, receiver.address[1])
    sizes = [64, 1, 1200, 1200, 1200, 700, 30]
    sent = 0
    for size in sizes[:2]:
        assert sender.send([bytes([size % 251]) * size], dest) == []
        sent += 1
    assert sender.send([b"g" * 1200] * 3 + [b"h" * 700], dest) == []  # (a GSO batch)
    sent += 4
    if sender.ecn:
        level, option = (
            (socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
            if ":" in host
            else (socket.IPPROTO_IP, socket.IP_TOS)
        )
        sender.sock.setsockopt(level, option, 0x03)  # CE
    assert sender.send([b"z" * 30], dest) == []
    sent += 1
    got = _read_all(receiver, sent, use_c)
    assert [g[1] for g in got] == [(host, sender.address[1])] * len(got)
    sender.close()
    receiver.close()
    return got


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("gso", ["1", "0"])
def test_recv_datagram_is_its_twin(host: str, gso: str, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _traffic(host, gso, monkeypatch, use_c=True)
    py = _traffic(host, gso, monkeypatch, use_c=False)
    assert [(g[0], g[2], g[3]) for g in c] == [(g[0], g[2], g[3]) for g in py]
    assert c[0][0] == bytes([64]) * 64 and c[-1][0] == b"z" * 30
    ecn = UdpSocket.bind(host, 0)
    if ecn.ecn:
        assert c[0][2] == 0x02 and c[-1][2] == 0x03  # ECT(0) as quicish marks, then CE
    ecn.close()


def test_recv_datagram_keeps_the_sender_tuple() -> None:
    """Datagrams from one sender share one address tuple; another sender gets its own."""
    recv = native.recv_datagram
    assert recv is not None
    receiver = UdpSocket.bind("127.0.0.1", 0)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
    ):
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        for s in (a, a, b):
            s.sendto(b"x", receiver.address)
        got: list[Got] = []
        while len(got) < 3:
            select.select([receiver.fileno()], [], [], 5.0)
            one = recv(receiver.fileno(), receiver._cmsg_space)
            if one is not None:
                got.append(one)
        assert got[0][1] is got[1][1] and got[0][1] == a.getsockname()
        assert got[2][1] == b.getsockname()
    receiver.close()


def test_recv_datagram_errors_as_the_socket_module() -> None:
    """An ICMP port unreachable comes back as ConnectionRefusedError from both; a closed
    descriptor as OSError(EBADF); a bad control space as ValueError."""
    recv = native.recv_datagram
    assert recv is not None
    for use_c in (True, False):
        sock = UdpSocket.bind("127.0.0.1", 0)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        sock.sock.connect(("127.0.0.1", port))  # (a connected socket reports the ICMP error)
        sock.sock.send(b"x")
        select.select([sock.fileno()], [], [], 1.0)
        with pytest.raises(ConnectionRefusedError):
            if use_c:
                recv(sock.fileno(), sock._cmsg_space)
            else:
                receive_one(sock.sock, sock._cmsg_space)
        sock.close()
    with pytest.raises(OSError) as info:
        recv(-1, 0)
    assert info.value.errno == errno.EBADF
    with pytest.raises(ValueError):
        recv(0, 100_000)
