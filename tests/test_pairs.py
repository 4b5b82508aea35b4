"""The test harness itself (tests/pairs.py, tests/support.py): what the other tests rely on."""

from __future__ import annotations

import pytest
from pairs import Pair, Peer, connected, encode, inject, make_net, make_path_pair, raw
from support import make_header, outcome

from quicish.errors import ErrorCode, ProtocolError
from quicish.proto import events as ev
from quicish.simlink import LinkSpec
from quicish.wire import frames as F
from quicish.wire.packet import QUIC_V1, PacketType, parse_header


def test_same_seed_same_connection_ids() -> None:
    one, two, other = make_net(seed=4), make_net(seed=4), make_net(seed=5)
    assert one.client.host_cid == two.client.host_cid != other.client.host_cid
    assert one.server.host_cid == two.server.host_cid != other.server.host_cid


def test_connected_confirms_both_sides_and_wire_is_recorded(pair: Pair) -> None:
    net, c, s = pair
    assert net.client.handshake_confirmed and net.server.handshake_confirmed
    assert c.handshake is not None and s.handshake is not None
    ups = [up for _, up, _, _ in net.wire]
    assert ups[0] is True and False in ups  # the client's Initial first, answers after
    assert net.index == {"up": ups.count(True), "down": ups.count(False)}
    assert net.packet_types(up=True)[0] == PacketType.INITIAL
    assert PacketType.HANDSHAKE in net.packet_types(up=False)


def test_drop_filter_drops_exactly_what_it_picks_and_taps_see_everything() -> None:
    net = make_net(connect=False)
    seen: list[tuple[str, int]] = []
    net.taps.append(lambda direction, data, now: seen.append((direction, len(data))))
    net.drop = lambda direction, index, data, now: direction == "up" and index == 0
    net.start()
    connected(net)
    assert net.dropped == {"up": 1, "down": 0}
    assert len(seen) == len(net.wire) == net.index["up"] + net.index["down"]
    assert net.up.counters.sent == net.index["up"] - 1  # the dropped one never reached the link


def test_run_until_stops_at_the_timeout() -> None:
    net = make_net(link=LinkSpec(delay=0.05))
    c, s = connected(net)
    start = net.now
    assert not net.run_until(lambda: False, c, s, timeout=2.5)
    assert net.now == pytest.approx(start + 2.5)
    ticks: list[float] = []
    net.settle(c, s, duration=0.3, hook=lambda: ticks.append(net.now))
    assert net.now == pytest.approx(start + 2.8) and ticks


def test_peer_reads_streams_unless_told_not_to(pair: Pair) -> None:
    net, c, s = pair
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"hello", end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=2)
    assert bytes(s.data[sid]) == b"hello" and s.streams_seen == [sid]
    assert [e.stream_id for e in s.of(ev.StreamDataAvailable)] == [sid]
    lazy = Peer(net.client, reading=False)
    back = net.client.open_stream()
    net.client.send_stream_data(back, b"ping", end_stream=True)
    assert net.run_until(lambda: back in s.finished, lazy, s, timeout=2)
    net.server.send_stream_data(back, b"pong", end_stream=True)
    assert net.run_until(lambda: back in lazy.pending, lazy, s, timeout=2)
    assert bytes(lazy.data[back]) == b"" and back not in lazy.finished
    assert lazy.read(back) == 4 and back in lazy.finished and not lazy.pending


def test_inject_delivers_crafted_frames(pair: Pair) -> None:
    net, _c, s = pair
    inject(net.client, net.server, encode(F.StreamFrame(0, 0, b"made by hand", fin=True)), net.now)
    s.poll()
    assert bytes(s.data[0]) == b"made by hand" and 0 in s.finished
    inject(net.client, net.server, raw(0x1F), net.now)  # no such frame type
    s.poll()
    assert s.terminated is not None
    assert s.terminated.error_code == ErrorCode.FRAME_ENCODING_ERROR


def test_path_net_loses_datagrams_to_an_address_the_client_left() -> None:
    net, c, s = make_path_pair()
    connected(net, c, s)
    old = net.client_addrs[0]
    net.client_addrs[0] = ("10.1.2.3", 5555)  # the client moved without telling anyone
    net.server.send_stream_data(net.server.open_stream(), b"to the old address")
    net.settle(c, s, duration=0.1)
    assert net.lost_to_stale > 0 and old != net.client_addrs[0]


@pytest.mark.parametrize("long", [True, False])
def test_make_header_parses_back(long: bool) -> None:
    header, pn_offset = make_header(long, 0x1234, 2, key_phase=True)
    parsed = parse_header(header + bytes(1024), short_dcid_len=8)  # Length: 1024
    assert parsed.pn_offset == pn_offset == len(header) - 2
    assert header[-2:] == b"\x12\x34" and parsed.dcid == b"d" * 8
    if long:
        assert parsed.version == QUIC_V1 and parsed.packet_type == PacketType.HANDSHAKE
        assert parsed.scid == b"s" * 4
    else:
        assert header[0] & 0x04  # the key phase bit


def test_outcome_compares_results_and_errors() -> None:
    def fail(code: int) -> None:
        raise ProtocolError(code, "why")

    assert outcome(int, "7") == ("ok", 7)
    assert outcome(fail, 7) == (
        "raise",
        ProtocolError,
        str(ProtocolError(7, "why")),
        {"code": 7, "reason": "why", "frame_type": None},
    )
    assert outcome(fail, 7, detail=False) == ("raise", ProtocolError)
    assert outcome(int, "x")[0:2] == ("raise", ValueError)
    with pytest.raises(KeyError):
        outcome({}.__getitem__, "missing")  # not a differential error: it propagates
    assert outcome({}.__getitem__, "missing", catch=(Exception,), detail=False)[1] is KeyError
