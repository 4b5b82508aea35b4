"""NEW_TOKEN replay over real UDP (RFC 9000 8.1.4): against ``quicish serve --retry``, a token
a client got after a real handshake validates its address once; every further Initial with
the same token (new connection IDs, so new connection attempts) is answered with a Retry,
as if it carried no token. A legitimate client is served meanwhile.
"""

from __future__ import annotations

import time

from hostile_support import LOOPBACK, RawClient, ServeProcess
from support import client_config

from quicish.proto.connection import Connection
from quicish.wire.packet import PacketType, parse_header

ATTEMPTS = 10


def _answer_type(port: int, token: bytes) -> PacketType | None:
    """Send a fresh client's first Initial carrying ``token``; the type of the first packet
    of the server's answer (None if none came)."""
    conn = Connection(client_config(), is_client=True, token=token)
    conn.connect((LOOPBACK, port), time.monotonic())
    datagram = conn.datagrams_to_send(time.monotonic())[0][0]
    assert parse_header(datagram).token == token
    with RawClient(port) as attacker:
        attacker.send_raw(datagram)
        got = attacker.drain_socket(0.3)
    return parse_header(got[0]).packet_type if got else None


def test_new_token_is_accepted_once() -> None:
    with ServeProcess("--retry") as server:
        with RawClient(server.port) as client:
            client.handshake()
            assert client.pump(2.0, until=lambda: client.conn.new_token is not None)
            token = client.conn.new_token
        assert token is not None
        legit = server.get(timeout=10.0)
        answers = [_answer_type(server.port, token) for _ in range(ATTEMPTS)]
        assert legit.wait(), legit.output
    # The first use validates the address (the server answers with its Initial at once);
    # the replays all get a Retry.
    assert answers[0] == PacketType.INITIAL, answers
    assert answers[1:] == [PacketType.RETRY] * (ATTEMPTS - 1), answers
