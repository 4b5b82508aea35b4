"""Reflection over real UDP (RFC 9000 section 8): a spoofed client Initial makes ``quicish
serve`` send at most three times its size back, ever (first flight, probe timeouts and all);
with ``--retry`` the only answer is one small Retry. A legitimate client, even one whose
server has a ~4 KB certificate chain that does not fit the budget, is served at once.
"""

from __future__ import annotations

import time

from hostile_support import RawClient, ServeProcess, first_initial
from support import big_chain_files

# Long enough for the server's first three probe timeouts (about 1 s, 3 s and 7 s after the
# Initial with the initial RTT of 333 ms), which is when the old code overshot.
WATCH = 8.0


def test_spoofed_initials_get_at_most_three_times_their_size() -> None:
    with ServeProcess() as server:
        victims = [RawClient(server.port) for _ in range(3)]
        try:
            for victim in victims:
                victim.send_raw(first_initial(server.port))
            legit = server.get(timeout=WATCH + 3)  # waited for after the watch
            start = time.monotonic()
            got = [victims[0].drain_socket(WATCH)]
            left = max(0.1, WATCH - (time.monotonic() - start))
            got += [v.drain_socket(left) for v in victims[1:]]
            assert legit.wait(), legit.output
        finally:
            for victim in victims:
                victim.close()
        for datagrams in got:
            sizes = [len(d) for d in datagrams]
            assert datagrams, "the server did not answer the Initial at all"
            assert sum(sizes) <= 3 * 1200, sizes
        assert server.alive()


def test_retry_server_answers_a_spoofed_initial_with_one_small_retry() -> None:
    with ServeProcess("--retry") as server, RawClient(server.port) as victim:
        initial = first_initial(server.port)
        victim.send_raw(initial)
        got = victim.drain_socket(2.0)
        assert len(got) == 1, [len(d) for d in got]
        assert got[0][0] & 0xF0 == 0xF0  # long header, type Retry (v1)
        assert len(got[0]) < 200  # much smaller than the Initial: no amplification
        assert server.get().wait()


def test_large_certificate_chain_handshake_is_quick() -> None:
    """A ~4 KB chain: the flight needs the client's first acknowledgement to go on, which
    comes one round trip later, not a probe timeout later."""
    cert, key, pin = big_chain_files()
    with ServeProcess("--cert", cert, "--key", key) as server:
        with RawClient(server.port, pin=pin) as client:
            start = time.monotonic()
            client.handshake(timeout=5.0)
            elapsed = time.monotonic() - start
        assert elapsed < 0.5, elapsed  # the first probe timeout is about 1 s away
        server.pin = pin
        assert server.get().wait()
