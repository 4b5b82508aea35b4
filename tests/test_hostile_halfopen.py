"""Half-open connections kept alive over real UDP against ``quicish serve`` (issue 15, item
3): a client that never completes its handshake but sends a fresh, valid Initial (its
ClientHello again, with a new packet number) every 2 s used to keep its connection forever,
each packet restarting the 30 s idle timer. The handshake deadline is absolute: the server
drops the connection ``--handshake-timeout`` seconds after it started (3 s here, 10 s by
default), however many packets keep coming."""

from __future__ import annotations

import time

from hostile_support import (
    InitialForger,
    PreparedGet,
    RawClient,
    ServeProcess,
    long_header_scid,
)

TIMEOUT = 3.0
INTERVAL = 2.0
DCID = bytes.fromhex("5ca1ab1e0ddba11e")


def test_half_open_connection_fed_fresh_initials_is_dropped_at_the_handshake_timeout() -> None:
    with (
        ServeProcess("--handshake-timeout", str(TIMEOUT)) as server,
        RawClient(server.port) as attacker,
    ):
        forger = InitialForger(server.port)
        get = PreparedGet(server, timeout=5)  # a legitimate client, set going during it
        cpu0, rss0 = server.cpu_seconds(), server.rss_bytes()
        answers: list[tuple[float, bytes]] = []  # (seconds since the first Initial, SCID)
        start = time.monotonic()
        for pn in range(4):  # at 0, 2, 4 and 6 s
            attacker.send_raw(forger.make(DCID, pn))
            if pn == 1:
                get.start()
            until = start + (pn + 1) * INTERVAL
            while (left := until - time.monotonic()) > 0:
                attacker.sock.settimeout(left)
                try:
                    data = attacker.sock.recv(65536)
                except TimeoutError:
                    break
                scid = long_header_scid(data)
                if scid is not None:
                    answers.append((time.monotonic() - start, scid))
        assert answers, "the server never answered the Initial"
        first = answers[0][1]
        first_times = [at for at, scid in answers if scid == first]
        later = {scid for at, scid in answers if at > TIMEOUT + 0.5}
        print(
            f"connection {first.hex()} answered until {max(first_times):.2f} s; "
            f"later answers from {[s.hex() for s in later]}"
        )
        # Its last answer came before the deadline: the Initials at 4 and 6 s found no
        # connection and made a new one (with a new SCID and a deadline of its own).
        assert max(first_times) < TIMEOUT + 0.5
        assert later and first not in later
        assert get.wait(), get.output
        assert server.cpu_seconds() - cpu0 < 2.0
        assert server.rss_bytes() - rss0 < 20e6
