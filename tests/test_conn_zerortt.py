"""0-RTT on the simulated network: requests sent before the handshake completes, accepted
or rejected and then re-sent in 1-RTT (RFC 9000 section 7.4.1, RFC 9001 section 4.6)."""

from __future__ import annotations

from typing import Any

import pytest
from pairs import Net, Peer, connected, make_pair, ticket_and_context, transfer

from quicish import Config
from quicish.errors import ErrorCode
from quicish.proto import events as ev
from quicish.proto import handshake as handshake_module
from quicish.proto.server_context import ServerContext
from quicish.wire.packet import PacketType

REQUEST = b"GET /index.html\r\n" + bytes(range(256)) * 20  # 5 KB: several 0-RTT packets


def _early_request(
    ticket: bytes, ctx: ServerContext, start: float, **kw: Any
) -> tuple[Net, Peer, Peer, int]:
    net, c, s = make_pair(session_ticket=ticket, early_data=True, context=ctx, start=start, **kw)
    sid = net.client.open_stream()  # before any packet came back
    net.client.send_stream_data(sid, REQUEST, end_stream=True)
    return net, c, s, sid


def test_zero_rtt_accepted_server_acts_before_handshake_completes() -> None:
    ticket, ctx, end = ticket_and_context()
    net, c, s, sid = _early_request(ticket, ctx, end + 1)
    transfer(net, c, s, sid)
    assert bytes(s.data[sid]) == REQUEST
    assert not net.server.handshake_complete  # the whole request came in 0-RTT
    connected(net, c, s)
    kinds = [type(e) for e in s.events]
    assert kinds.index(ev.StreamDataAvailable) < kinds.index(ev.HandshakeCompleted)
    assert net.client.session_resumed and net.server.session_resumed
    assert net.client.early_data_accepted and net.server.early_data_accepted
    assert c.of(ev.HandshakeCompleted)[0].early_data_accepted
    # The request travelled in 0-RTT packets, and no STREAM data was re-sent.
    assert net.packet_types(up=True).count(PacketType.ZERO_RTT) >= 4
    assert net.client.stats().stream_bytes_retransmitted == 0


def test_zero_rtt_server_can_answer_in_half_rtt() -> None:
    ticket, ctx, end = ticket_and_context()
    net, c, s, sid = _early_request(ticket, ctx, end + 1)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=5.0)
    assert not net.server.handshake_complete
    net.server.send_stream_data(sid, b"answer", end_stream=True)
    assert net.run_until(lambda: sid in c.finished, c, s, timeout=5.0)
    assert bytes(c.data[sid]) == b"answer"


def test_zero_rtt_rejected_by_fresh_server_is_resent_in_one_rtt() -> None:
    ticket, _, end = ticket_and_context()
    net, c, s, sid = _early_request(ticket, ServerContext.from_config(_cfg()), end + 1)
    transfer(net, c, s, sid)
    connected(net, c, s)
    assert bytes(s.data[sid]) == REQUEST
    assert not net.client.session_resumed
    assert not net.client.early_data_accepted
    assert PacketType.ZERO_RTT in net.packet_types(up=True)
    # The server could not read the 0-RTT packets and dropped them.
    assert net.server.stats().packets_dropped + net.server.stats().packets_undecryptable > 0
    kinds = [type(e) for e in s.events]
    assert kinds.index(ev.HandshakeCompleted) < kinds.index(ev.StreamDataAvailable)


def test_zero_rtt_replayed_ticket_resumes_without_early_data() -> None:
    ticket, ctx, end = ticket_and_context()
    net1, c1, s1, sid1 = _early_request(ticket, ctx, end + 1)
    transfer(net1, c1, s1, sid1)
    connected(net1, c1, s1)
    assert net1.client.early_data_accepted
    net2, c2, s2, sid2 = _early_request(ticket, ctx, end + 2)
    transfer(net2, c2, s2, sid2)
    connected(net2, c2, s2)
    assert net2.client.session_resumed
    assert not net2.client.early_data_accepted  # the replay filter saw this ticket
    assert bytes(s2.data[sid2]) == REQUEST


def test_zero_rtt_rejected_when_server_disables_it() -> None:
    ticket, ctx, end = ticket_and_context()
    ctx.early_data = False
    net, c, s, sid = _early_request(ticket, ctx, end + 1)
    transfer(net, c, s, sid)
    connected(net, c, s)
    assert net.client.session_resumed and not net.client.early_data_accepted
    assert bytes(s.data[sid]) == REQUEST


def test_zero_rtt_rejected_when_server_lowered_limits() -> None:
    ticket, ctx, end = ticket_and_context(max_streams_bidi=100)
    net, c, s = make_pair(
        session_ticket=ticket,
        early_data=True,
        context=ctx,
        start=end + 1,
        server_kw={"max_streams_bidi": 10},
    )
    sids = [net.client.open_stream() for _ in range(20)]  # allowed by the remembered limit
    for sid in sids:
        net.client.send_stream_data(sid, b"GET /\r\n", end_stream=True)
    connected(net, c, s)
    assert net.client.session_resumed and not net.client.early_data_accepted
    # Under the real limit of 10 only the first 10 streams may go.
    assert net.run_until(lambda: len(s.finished) == 10, c, s, timeout=5.0)
    assert sorted(s.finished) == sids[:10]
    abandoned = [e.stream_id for e in c.of(ev.StreamReset)]
    assert abandoned == sids[10:]
    assert all(e.error_code == ErrorCode.STREAM_LIMIT_ERROR for e in c.of(ev.StreamReset))
    assert not net.client.is_terminated and not net.server.is_terminated


def test_client_closes_when_accepted_zero_rtt_lowers_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticket, ctx, end = ticket_and_context(max_data=1 << 20)
    net, c, s = make_pair(
        session_ticket=ticket,
        early_data=True,
        context=ctx,
        start=end + 1,
        server_kw={"max_data": 1 << 16},
    )
    # A faulty server: accepts 0-RTT although its limits shrank.
    monkeypatch.setattr(handshake_module, "early_data_acceptable", lambda *_: True)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"GET /\r\n", end_stream=True)
    assert net.run_until(lambda: bool(c.of(ev.ConnectionTerminated)), c, s, timeout=5.0)
    closed = c.of(ev.ConnectionTerminated)[0]
    assert closed.error_code == ErrorCode.PROTOCOL_VIOLATION and not closed.by_peer


def test_expired_ticket_sends_no_zero_rtt_but_streams_still_work() -> None:
    ticket, ctx, end = ticket_and_context()
    net, c, s = make_pair(
        session_ticket=ticket, early_data=True, context=ctx, start=end + 200_000
    )  # ticket lifetime (1 day) passed
    with pytest.raises(Exception):  # noqa: B017 - no remembered limits: no stream credit yet
        net.client.open_stream()
    connected(net, c, s)
    assert not net.client.session_resumed
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"late", end_stream=True)
    transfer(net, c, s, sid)
    assert PacketType.ZERO_RTT not in net.packet_types(up=True)


def _cfg() -> Config:
    from support import server_config

    return server_config()


def test_split_flight_server_applies_the_parameters_with_its_flight_under_zero_rtt() -> None:
    """A split-flight server under 0-RTT has the client's transport parameters applied
    once its flight is built (a 0.5-RTT answer needs the client's limits), and the answer
    goes before the client's Finished."""
    ticket, ctx, end = ticket_and_context()
    net, c, s, sid = _early_request(ticket, ctx, end + 1)
    net.server.split_first_flight = True
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=5.0)
    assert not net.server.handshake_complete and not net.server.flight_pending
    assert net.server._handshake.peer_params is not None  # (no prepare() ran)
    net.server.send_stream_data(sid, b"answer", end_stream=True)
    assert net.run_until(lambda: sid in c.finished, c, s, timeout=5.0)
    assert bytes(c.data[sid]) == b"answer"
