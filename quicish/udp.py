"""UDP socket batching: GSO sends and GRO receives where Linux offers them, plain calls elsewhere.

Used by :mod:`quicish.aio`. One ``sendmsg`` with ``UDP_SEGMENT`` carries up to
``MAX_GSO_SEGMENTS`` equal-sized datagrams to one address; the kernel splits them.
One ``recvmsg`` with ``UDP_GRO`` may return several datagrams glued together, with the
segment size in a control message. Each read is one call of the C core's ``recv_datagram``
(the datagram, its sender, ECN codepoint and GRO segment size; None when the socket is
empty), or of its twin :func:`receive_one` over ``socket.recvmsg``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
import sys

from .log import ENDPOINT
from .native import recv_datagram

logger = logging.getLogger(ENDPOINT)

UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
UDP_GRO = getattr(socket, "UDP_GRO", 104)
MAX_GSO_SEGMENTS = 40
RECV_BUFFER = 65535
_U16 = struct.Struct("=H")
_I32 = struct.Struct("=i")
IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)
IPV6_RECVTCLASS = getattr(socket, "IPV6_RECVTCLASS", 66)
# Path MTU discovery probes (docs/pmtud.md) need the Don't Fragment bit and no local
# fragmentation: IP_PMTUDISC_PROBE sets DF and ignores the kernel's path MTU cache (a
# datagram larger than the interface MTU fails with EMSGSIZE: a lost probe).
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
PMTUDISC_PROBE = 3
ECT0 = 0x02  # ECN codepoint quicish marks its datagrams with (RFC 9000 section 13.4)

Address = tuple[str, int]


def receive_one(sock: socket.socket, cmsg_space: int) -> tuple[bytes, Address, int, int] | None:
    """One datagram off ``sock``: ``(data, (host, port), ecn codepoint, GRO segment size)``
    (0: not a GRO batch), None when the socket would block; OSError for other failures.
    The twin of the C core's ``recv_datagram`` (``native/py_udp.c``), which does this in one
    C call."""
    try:
        if cmsg_space:
            data, ancdata, _flags, addr = sock.recvmsg(RECV_BUFFER, cmsg_space)
        else:
            data, addr = sock.recvfrom(RECV_BUFFER)
            ancdata = []
    except (BlockingIOError, InterruptedError):
        return None
    segment = ecn = 0
    for level, kind, value in ancdata:
        if level == socket.SOL_UDP and kind == UDP_GRO and len(value) >= 2:
            segment = _I32.unpack(value[:4])[0] if len(value) >= 4 else _U16.unpack(value[:2])[0]
        elif (level == socket.IPPROTO_IP and kind == socket.IP_TOS) or (
            level == socket.IPPROTO_IPV6 and kind == IPV6_TCLASS
        ):
            ecn = value[0] & 0x03 if value else 0  # TOS byte / TCLASS int (LE)
    return data, (addr[0], addr[1]), ecn, segment


class UdpSocket:
    """A non-blocking UDP socket with batched send and receive."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self._address: Address | None = None
        self._send_errors: set[int | None] = set()  # errnos warned about (once each)
        self.gso = False
        self.gro = False
        if os.environ.get("QUICISH_GSO", "1") != "0" and hasattr(socket, "SOL_UDP"):
            try:
                sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
                self.gro = True
            except OSError:
                pass
            self.gso = _probe_gso(sock)
        for opt, size in ((socket.SO_SNDBUF, 4 << 20), (socket.SO_RCVBUF, 4 << 20)):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
        self.ecn = os.environ.get("QUICISH_ECN", "1") != "0" and _enable_ecn(sock)
        _set_dont_fragment(sock)
        self._cmsg_space = socket.CMSG_SPACE(4) * (int(self.gro) + 2 * int(self.ecn))
        self._recv = self._receive_one if recv_datagram is None else recv_datagram

    @classmethod
    def bind(cls, host: str, port: int) -> UdpSocket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        return cls(sock)

    @property
    def address(self) -> Address:
        """(host, port) bound; still answers after ``close()``."""
        if self._address is None:
            name = self.sock.getsockname()
            self._address = (name[0], name[1])
        return self._address

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            _ = self.address
        self.sock.close()

    def receive(self, max_reads: int = 32) -> list[tuple[bytes, Address, int]]:
        """``(datagram, sender, ecn codepoint)`` from up to ``max_reads`` socket reads (GRO
        batches split), fewer when the socket would block. A GRO batch is returned whole."""
        recv, fd, space = self._recv, self.sock.fileno(), self._cmsg_space
        out: list[tuple[bytes, Address, int]] = []
        append = out.append
        for _ in range(max_reads):
            try:
                got = recv(fd, space)  # (the C core's recv_datagram, or receive_one's twin)
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue
                raise
            if got is None:
                break
            data, address, ecn, segment = got
            if segment and len(data) > segment:
                for start in range(0, len(data), segment):
                    append((data[start : start + segment], address, ecn))
            else:
                append((data, address, ecn))
        return out

    def _receive_one(self, fd: int, cmsg_space: int) -> tuple[bytes, Address, int, int] | None:
        """``receive_one`` of this socket: the read without the C core."""
        return receive_one(self.sock, cmsg_space)

    def send(self, datagrams: list[bytes], addr: Address) -> list[bytes]:
        """Send datagrams to ``addr``; returns those the kernel would not take yet."""
        sock = self.sock
        if len(datagrams) == 1:  # (a reply, an ACK: no batch to plan)
            try:
                sock.sendto(datagrams[0], addr)
            except (BlockingIOError, InterruptedError):
                return datagrams
            except OSError as exc:
                self._send_failed(exc, addr)
            return []
        i = 0
        n = len(datagrams)
        while i < n:
            first = datagrams[i]
            seg = len(first)
            j = i + 1
            if self.gso:
                # A GSO batch: equal-sized segments, the last one may be shorter.
                while j < n and j - i < MAX_GSO_SEGMENTS and len(datagrams[j]) == seg:
                    j += 1
                if j < n and j - i < MAX_GSO_SEGMENTS and len(datagrams[j]) < seg:
                    j += 1
            try:
                if j - i > 1:
                    sock.sendmsg(
                        datagrams[i:j],  # scatter-gather: no copy into one buffer
                        [(socket.SOL_UDP, UDP_SEGMENT, _U16.pack(seg))],
                        0,
                        addr,
                    )
                else:
                    sock.sendto(first, addr)
            except (BlockingIOError, InterruptedError):
                return datagrams[i:]
            except OSError as exc:
                if exc.errno == errno.EIO and j - i > 1:
                    logger.warning("UDP GSO failed (%s); falling back to single sends", exc)
                    self.gso = False
                    continue
                if exc.errno == errno.EMSGSIZE and j - i > 1:
                    # The first datagram (the largest) is over the interface MTU: a path MTU
                    # probe, lost as such; the rest of the batch goes without it.
                    i += 1
                    continue
                self._send_failed(exc, addr)
            i = j
        return []

    def _send_failed(self, exc: OSError, addr: Address) -> None:
        """A send failed for good (the datagrams are lost as such): logged."""
        if exc.errno in self._send_errors or exc.errno == errno.EMSGSIZE:
            # (EMSGSIZE: a path MTU probe above the interface MTU, lost as such)
            logger.debug("UDP send to %s failed: %s", addr, exc)
        else:  # an operator's concern (routing, firewall, MTU): once per kind
            self._send_errors.add(exc.errno)
            logger.warning(
                "UDP send from port %s to %s failed: %s (repeats only at DEBUG)",
                self.address[1],
                addr,
                exc,
            )


def _enable_ecn(sock: socket.socket) -> bool:
    """Mark outgoing datagrams ECT(0) and ask for the codepoint of incoming ones."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, ECT0)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
            with contextlib.suppress(OSError):  # IPv4-mapped traffic on a dual-stack socket
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, ECT0)
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, ECT0)
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
    except OSError:
        return False
    return True


def _set_dont_fragment(sock: socket.socket) -> None:
    """DF on, no local fragmentation (Linux; elsewhere the system's default stays)."""
    if not hasattr(socket, "IPPROTO_IPV6") or sys.platform != "linux":
        return
    options = [(socket.IPPROTO_IP, IP_MTU_DISCOVER)]
    if sock.family == socket.AF_INET6:
        options.insert(0, (socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER))
    for level, option in options:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, PMTUDISC_PROBE)


def _probe_gso(sock: socket.socket) -> bool:
    try:
        sock.getsockopt(socket.SOL_UDP, UDP_SEGMENT)
        return True
    except OSError:
        return False
