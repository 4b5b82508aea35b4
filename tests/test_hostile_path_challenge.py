"""Attack over real UDP (issue 15, item 7): PATH_CHALLENGE floods. A client sends packet after
packet of several PATH_CHALLENGE frames, on its current path and from a second socket (a new,
unvalidated path, as a spoofer would). The server answers at most once per datagram, within
its congestion window and the new path's 3x anti-amplification limit, and pads only to
validate a new path: what comes back stays at most 3x what was sent on the new path and
bounded on the current one, and another client is served meanwhile."""

from __future__ import annotations

import os
import socket
import time

from hostile_support import LOOPBACK, RawClient, ServeProcess
from pairs import encode as encode_frames

from quicish.wire import frames as F

CHALLENGES_PER_PACKET = 6
PACKETS = 2000


def _challenges() -> bytes:
    return encode_frames(
        *[F.PathChallengeFrame(os.urandom(8)) for _ in range(CHALLENGES_PER_PACKET)]
    )


def _drain(sock: socket.socket) -> int:
    got = 0
    sock.setblocking(False)
    while True:
        try:
            got += len(sock.recv(65536))
        except BlockingIOError:
            return got


def test_path_challenge_flood_is_not_amplified() -> None:
    with ServeProcess() as server, RawClient(server.port) as attacker:
        attacker.handshake()
        attacker.pump(0.3)
        second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        second.bind((LOOPBACK, 0))
        second.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        cpu_before = server.cpu_seconds()
        legit = server.get(timeout=5)
        sent_current = sent_new = got_current = got_new = 0
        _drain(attacker.sock)
        for i in range(PACKETS):
            sent_current += attacker.send_frames(
                F.PingFrame(),
                *[F.PathChallengeFrame(os.urandom(8)) for _ in range(CHALLENGES_PER_PACKET)],
            )
            packet = attacker.seal(_challenges())
            second.sendto(packet, attacker.addr)
            sent_new += len(packet)
            time.sleep(0.0003)  # one datagram at a time reaches the server: no batching
            if i % 50 == 0:
                got_current += _drain(attacker.sock)
                got_new += _drain(second)
        time.sleep(0.5)
        got_current += _drain(attacker.sock)
        got_new += _drain(second)
        cpu = server.cpu_seconds() - cpu_before
        print(
            f"\ncurrent path: {sent_current} -> {got_current} bytes "
            f"({got_current / sent_current:.2f}x); new path: {sent_new} -> {got_new} bytes "
            f"({got_new / sent_new:.2f}x); server {cpu:.2f} s CPU"
        )
        second.close()
        assert got_new <= 3 * sent_new
        assert got_current <= 1.5 * sent_current
        assert legit.wait(), legit.output
        assert server.alive()
