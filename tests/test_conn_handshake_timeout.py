"""The handshake deadline (issue 15, item 3): a connection whose handshake makes no progress
for ``Config.handshake_timeout`` seconds (or is not complete three times that after it
started) is dropped, however many repeated packets keep arriving; a server discards its
state silently, a client's handshake fails. All on a virtual clock."""

from __future__ import annotations

import pytest
from hostile_support import InitialForger
from pairs import connected, make_net
from support import client_config, server_config

from quicish import Config
from quicish.errors import ConfigError
from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext

CLIENT = ("192.0.2.7", 4000)
DCID = bytes(range(8))


def _run_timers(
    conn: Connection, now: float, until: float, sent: list[tuple[float, bytes]]
) -> float:
    """Fire ``conn``'s timers from ``now`` up to ``until`` (virtual seconds), recording what
    it sends."""
    while True:
        for data, _ in conn.datagrams_to_send(now):
            sent.append((now, data))
        timer = conn.next_timer()
        if timer is None or timer > until:
            return until
        now = max(now, timer)
        conn.handle_timer(now)


def _events(conn: Connection) -> list[ev.Event]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def test_server_half_open_connection_dropped_at_the_deadline_despite_fresh_initials() -> None:
    """A client that sends its ClientHello again in a valid Initial with a new packet number
    every 2 s (each one an authentic, ack-eliciting packet) used to keep the connection alive
    for as long as it liked: each packet restarted the 30 s idle timer."""
    cfg = server_config()
    assert cfg.handshake_timeout == 10.0  # the documented default
    server = Connection(cfg, is_client=False, server_context=ServerContext.from_config(cfg))
    forger = InitialForger(4433)
    sent: list[tuple[float, bytes]] = []
    now = 0.0
    pn = 0
    while now <= 14.0 and not server.is_closed:
        server.receive_datagram(forger.make(DCID, pn), CLIENT, now)
        pn += 1
        assert server.stats_counters.packets_received == pn  # each one authentic and new
        _run_timers(server, now, now + 2.0, sent)
        now += 2.0
    assert server.is_closed, "the half-open connection outlived its handshake deadline"
    assert now <= 12.0
    terminated = [e for e in _events(server) if isinstance(e, ev.ConnectionTerminated)]
    assert [(t.reason, t.by_peer) for t in terminated] == [("handshake timeout", False)]
    # Silently: nothing is sent at or after the deadline (no CONNECTION_CLOSE to a peer
    # whose address may be spoofed), and no timer remains.
    assert all(at < 10.0 for at, _ in sent)
    assert server.next_timer() is None
    assert server.datagrams_to_send(now) == []


def test_the_deadline_counts_from_the_first_datagram() -> None:
    cfg = server_config(handshake_timeout=3.0)
    server = Connection(cfg, is_client=False, server_context=ServerContext.from_config(cfg))
    server.receive_datagram(InitialForger(4433).make(DCID, 0), CLIENT, 100.0)
    timer = server.next_timer()
    assert timer is not None and timer <= 103.0
    _run_timers(server, 100.0, 103.0, [])
    assert server.is_closed


def test_client_connect_fails_at_the_handshake_timeout() -> None:
    """A client whose server never answers gives up at the handshake deadline (10 s by
    default), not at the 30 s idle timeout."""
    client = Connection(client_config(), is_client=True)
    client.connect(("192.0.2.1", 443), 0.0)
    sent: list[tuple[float, bytes]] = []
    _run_timers(client, 0.0, 60.0, sent)
    assert client.is_closed
    terminated = [e for e in _events(client) if isinstance(e, ev.ConnectionTerminated)]
    assert [(t.reason, t.by_peer) for t in terminated] == [("handshake timeout", False)]
    assert sent and max(at for at, _ in sent) < 10.0  # its Initial and the PTO probes


def test_completed_handshake_is_not_affected() -> None:
    net = make_net(server_kw={"handshake_timeout": 1.0}, client_kw={"handshake_timeout": 1.0})
    c, s = connected(net)
    net.settle(c, s, duration=5.0)
    assert not net.client.is_terminated and not net.server.is_terminated


def test_handshake_timeout_none_turns_it_off() -> None:
    client = Connection(client_config(handshake_timeout=None), is_client=True)
    client.connect(("192.0.2.1", 443), 0.0)
    _run_timers(client, 0.0, 20.0, [])
    assert not client.is_closed  # the 30 s idle timeout still applies
    _run_timers(client, 20.0, 40.0, [])
    assert client.is_closed


@pytest.mark.parametrize("value", [0, -1.0])
def test_handshake_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(ConfigError, match="handshake_timeout"):
        Config(handshake_timeout=value)


def test_progress_moves_the_deadline_up_to_three_timeouts() -> None:
    """New handshake data from the peer (or ours acknowledged) puts the deadline
    ``handshake_timeout`` away again, so a slow handshake that keeps moving on a lossy path
    is not cut; never past three timeouts from the start. A repeated Initial carries no new
    CRYPTO data, so it moves nothing (the test above)."""
    cfg = server_config(handshake_timeout=2.0)
    server = Connection(cfg, is_client=False, server_context=ServerContext.from_config(cfg))
    server.receive_datagram(InitialForger(4433).make(DCID, 0), CLIENT, 100.0)
    assert server._handshake_timer.deadline == 102.0  # the ClientHello was progress: from now
    server._handshake_timer.progress(101.5)
    assert server._handshake_timer.deadline == 103.5
    server._handshake_timer.progress(101.0)  # an older moment never moves it back
    assert server._handshake_timer.deadline == 103.5
    for now in (103.0, 104.5, 105.5):
        server._handshake_timer.progress(now)
    assert server._handshake_timer.deadline == 106.0  # the cap: start + 3 x 2 s
    _run_timers(server, 101.5, 106.5, [])
    assert server.is_closed
