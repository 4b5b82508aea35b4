"""Over real UDP: a peer's packet from a new address must not make the server spin.

Found by the endpoint fuzz target (tests/corpus/endpoint/crash-ae0a5f290e3b.hex): a 1-RTT
PING from a new address moves the server to an unvalidated path; its PATH_CHALLENGE uses
up that path's anti-amplification budget, so the ACK it owes cannot go, yet its deadline
stayed the connection's next timer, in the past: the asyncio driver called handle_timer
again at once until the path validation gave up (0.88 CPU s in 2.5 s before the fix).
"""

from __future__ import annotations

import socket
import time

from hostile_support import RawClient, ServeProcess
from pairs import encode as encode_frames

from quicish.wire import frames as F


def test_pings_from_new_addresses_do_not_make_the_server_spin() -> None:
    with ServeProcess() as server, RawClient(server.port) as client:
        client.handshake()
        client.pump(0.3)
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attacker.bind(("127.0.0.1", 0))
        try:
            cpu = server.cpu_seconds()
            get = server.get()
            for _ in range(5):  # the client's own packets, sent from another port
                attacker.sendto(client.seal(encode_frames(F.PingFrame())), client.addr)
                time.sleep(0.5)  # and the PATH_CHALLENGE is never answered
            spent = server.cpu_seconds() - cpu
            assert get.wait(), "a legitimate GET during the attack failed"
        finally:
            attacker.close()
    assert spent < 0.4, f"server spent {spent:.2f} CPU s in 2.5 s"
