"""Connection IDs (RFC 9000 section 5.1): several issued per connection with stateless reset
tokens, up to the peer's active_connection_id_limit; retirement, retire_prior_to and
CONNECTION_ID_LIMIT_ERROR."""

from __future__ import annotations

from typing import Any

import pytest
from pairs import Net, Pair, connected, encode, inject, make_pair

from quicish.errors import ErrorCode, ProtocolError
from quicish.proto import events as ev
from quicish.proto.cid import LocalCids, PeerCids, reset_token
from quicish.proto.handshake import Handshake
from quicish.proto.packet_space import APPLICATION
from quicish.wire import frames as F
from quicish.wire.packet import parse_header


def _frames_sent(net: Net, up: bool, kind: type) -> list[Any]:
    """Frames of type ``kind`` in 1-RTT packets put on the wire, decrypted with the keys
    of the receiver (the test reads them back through the receiver's key state)."""
    out: list[Any] = []
    for _, is_up, data, _ in net.wire:
        if is_up != up or data[0] & 0x80:
            continue
        receiver = net.server if up else net.client
        space = receiver._spaces[APPLICATION]
        header = parse_header(data, 0, short_dcid_len=8)
        for rx in (space.rx, receiver._keys.rx_previous):
            if rx is None:
                continue
            try:
                _, payload, _ = rx.open_packet(memoryview(data), header.pn_offset, 0)
            except Exception:
                continue
            out += [f for f in F.decode_frames(payload) if isinstance(f, kind)]
            break
    return out


def test_each_side_issues_up_to_the_peers_limit() -> None:
    net, c, s = make_pair(
        client_kw={"active_connection_id_limit": 3}, server_kw={"active_connection_id_limit": 5}
    )
    connected(net, c, s)
    assert net.run_until(lambda: len(net.client._peer_cids.entries) == 3, c, s, timeout=2)
    assert net.run_until(lambda: len(net.server._peer_cids.entries) == 5, c, s, timeout=2)
    # The client issued 4 more (server's limit 5), the server 2 more (client's limit 3).
    assert len(c.of(ev.ConnectionIdIssued)) == 4
    assert len(s.of(ev.ConnectionIdIssued)) == 2
    issued = {e.cid for e in s.of(ev.ConnectionIdIssued)}
    assert issued == {cid for cid, _ in net.client._peer_cids.entries.values()} - {
        net.server.host_cid
    }
    # Each NEW_CONNECTION_ID carries HMAC(reset key, CID) as its stateless reset token.
    key = net.server._handshake.server_context.reset_key  # type: ignore[union-attr]
    frames = _frames_sent(net, up=False, kind=F.NewConnectionIdFrame)
    assert sorted(f.seq for f in frames) == [1, 2]
    assert all(f.reset_token == reset_token(key, f.cid) for f in frames)
    assert all(len(f.cid) == 8 for f in frames)
    # The server's handshake CID's token came in its transport parameters.
    assert net.client._handshake.peer_params.stateless_reset_token == reset_token(  # type: ignore[union-attr]
        key, net.server.host_cid
    )


def test_changed_cid_is_retired_and_replaced() -> None:
    net, c, s = make_pair()
    connected(net, c, s)
    assert net.run_until(lambda: len(net.client._peer_cids.entries) == 4, c, s, timeout=2)
    old = net.client.peer_cid
    assert net.client.change_connection_id()
    new = net.client.peer_cid
    assert new != old and new in {e.cid for e in s.of(ev.ConnectionIdIssued)}
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"on the new CID", end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=2)
    # The server got RETIRE_CONNECTION_ID(0): its handshake CID is gone and replaced.
    assert net.run_until(lambda: bool(s.of(ev.ConnectionIdRetired)), c, s, timeout=2)
    assert [e.cid for e in s.of(ev.ConnectionIdRetired)] == [old]
    assert len(s.of(ev.ConnectionIdIssued)) == 4  # 3 at first, 1 replacement
    assert not net.server._local_cids.owns(old)
    # Packets to the retired CID are no longer accepted.
    short_dcids = {bytes(d[1:9]) for _, up, d, _ in net.wire if up and not d[0] & 0x80}
    assert new in short_dcids


def test_retire_prior_to_makes_the_peer_switch() -> None:
    net, c, s = make_pair()
    connected(net, c, s)
    assert net.run_until(lambda: len(net.client._peer_cids.entries) == 4, c, s, timeout=2)
    server_cids = net.server._local_cids
    # The server asks the client to retire sequence numbers below 3.
    server_cids.retire_prior_to = 3
    cid = b"\x42" * 8
    frame = F.NewConnectionIdFrame(4, 3, cid, reset_token(b"k" * 32, cid))
    net.client._frames.on_new_connection_id(frame, net.client._spaces[APPLICATION], net.now)
    assert net.client.peer_cid == net.client._peer_cids.entries[3][0]
    assert sorted(net.client._peer_cids.pending_retire) == [0, 1, 2]
    assert sorted(net.client._peer_cids.entries) == [3, 4]


def test_too_many_cids_is_connection_id_limit_error(monkeypatch: pytest.MonkeyPatch) -> None:
    net, c, s = make_pair(client_kw={"active_connection_id_limit": 2})
    net.server._local_cids.peer_limit = 99  # pretend to ignore the client's limit
    original = Handshake.apply_peer_parameters

    def keep_limit(self: Handshake, raw: bytes) -> None:
        original(self, raw)
        if self is net.server._handshake:
            net.server._local_cids.peer_limit = 5

    monkeypatch.setattr(Handshake, "apply_peer_parameters", keep_limit)
    assert net.run_until(lambda: bool(s.of(ev.ConnectionTerminated)), c, s, timeout=5)
    closed = c.of(ev.ConnectionTerminated)[0]
    assert closed.error_code == ErrorCode.CONNECTION_ID_LIMIT_ERROR and not closed.by_peer
    assert s.of(ev.ConnectionTerminated)[0].error_code == ErrorCode.CONNECTION_ID_LIMIT_ERROR


# ---- the managers on their own ------------------------------------------------------------------
def _local() -> LocalCids:
    counter = iter(range(1, 1000))
    return LocalCids(b"\x00" * 8, b"k" * 32, lambda n: next(counter).to_bytes(n, "big"))


def test_local_cids_top_up_retire_and_loss() -> None:
    local = _local()
    local.peer_limit = 3
    new = local.top_up()
    assert len(new) == 2 and list(local.pending) == [1, 2]
    local.pending.clear()
    local.on_lost(2)
    assert list(local.pending) == [2]
    assert local.on_retire(1, packet_dcid=b"\x00" * 8) == new[0]
    assert local.on_retire(1, packet_dcid=b"\x00" * 8) is None  # already retired
    with pytest.raises(ProtocolError) as err:
        local.on_retire(7, packet_dcid=b"\x00" * 8)
    assert err.value.code == ErrorCode.PROTOCOL_VIOLATION
    with pytest.raises(ProtocolError):
        local.on_retire(2, packet_dcid=new[1])  # the CID the packet was sent to
    local.on_lost(1)  # retired: not announced again
    assert list(local.pending) == [2]
    assert len(local.top_up()) == 1  # back to 3 active


def test_peer_cids_rules() -> None:
    peer = PeerCids(limit=3)
    peer.set_initial(b"a" * 8, b"T" * 16)
    peer.on_new(F.NewConnectionIdFrame(1, 0, b"b" * 8, b"U" * 16))
    peer.on_new(F.NewConnectionIdFrame(1, 0, b"b" * 8, b"U" * 16))  # a duplicate is fine
    with pytest.raises(ProtocolError):
        peer.on_new(F.NewConnectionIdFrame(1, 0, b"c" * 8, b"U" * 16))  # seq reused
    with pytest.raises(ProtocolError):
        peer.on_new(F.NewConnectionIdFrame(2, 0, b"b" * 8, b"V" * 16))  # CID reused
    assert peer.is_reset_token(b"T" * 16) and peer.is_reset_token(b"U" * 16)
    assert peer.switch() and peer.current_cid == b"b" * 8
    assert not peer.is_reset_token(b"T" * 16)  # retired CIDs' tokens no longer count
    assert list(peer.pending_retire) == [0]
    assert not peer.switch()  # no spare one left
    peer.on_new(F.NewConnectionIdFrame(2, 0, b"c" * 8, b"V" * 16))
    peer.on_new(F.NewConnectionIdFrame(3, 0, b"d" * 8, b"W" * 16))
    with pytest.raises(ProtocolError) as err:
        peer.on_new(F.NewConnectionIdFrame(4, 0, b"e" * 8, b"X" * 16))
    assert err.value.code == ErrorCode.CONNECTION_ID_LIMIT_ERROR
    # A CID below retire_prior_to is retired on arrival.
    peer2 = PeerCids(limit=4)
    peer2.set_initial(b"a" * 8)
    peer2.on_new(F.NewConnectionIdFrame(5, 5, b"f" * 8, b"Y" * 16))
    peer2.on_new(F.NewConnectionIdFrame(2, 0, b"g" * 8, b"Z" * 16))
    assert peer2.current_cid == b"f" * 8
    # (Everything below retire_prior_to is retired when it rises: seq 2 was retired then.)
    assert sorted(peer2.pending_retire) == [0, 1, 2, 3, 4]


# ---- a peer forcing retirements (issue 15, item 6) -----------------------------------------------
def _cid_flood(count: int, start: int = 1) -> list[F.NewConnectionIdFrame]:
    """NEW_CONNECTION_ID frames, each retiring every earlier sequence number."""
    return [
        F.NewConnectionIdFrame(seq, seq, seq.to_bytes(8, "big"), seq.to_bytes(16, "big"))
        for seq in range(start, start + count)
    ]


def test_forced_retirements_unacknowledged_close_with_cid_limit_error(pair: Pair) -> None:
    """84,000 frames each retiring the previous CID, while the RETIREs go unacknowledged:
    the receiver closes with CONNECTION_ID_LIMIT_ERROR (RFC 9000 5.1.2) instead of queueing
    84,000 RETIRE_CONNECTION_ID frames."""
    net, _, s = pair
    frames = _cid_flood(84_000)
    for start in range(0, len(frames), 30):
        inject(net.client, net.server, encode(*frames[start : start + 30]), net.now)
        if net.server.is_terminated:
            break
    s.poll()
    assert s.terminated is not None
    assert s.terminated.error_code == ErrorCode.CONNECTION_ID_LIMIT_ERROR
    assert s.terminated.frame_type == F.FrameType.NEW_CONNECTION_ID
    assert len(net.server._peer_cids.pending_retire) <= 2 * 32


def test_forced_retirements_acknowledged_stay_bounded() -> None:
    """The same flood from a peer that acknowledges each RETIRE: every sequence number is
    retired exactly once and the queue never grows past the limit."""
    peer = PeerCids(limit=4, retire_limit=8)
    peer.set_initial(b"a" * 8)
    retired: list[int] = []
    for frame in _cid_flood(84_000):
        peer.on_new(frame)
        assert len(peer.pending_retire) <= 8
        while peer.pending_retire:
            seq = peer.next_retire()
            retired.append(seq)
            peer.on_retire_acked(seq)
    assert retired == list(range(84_000))
    assert peer.current_cid == (84_000).to_bytes(8, "big")


def test_retirement_is_deduplicated_and_loss_requeues_once() -> None:
    peer = PeerCids(limit=4, retire_limit=8)
    peer.set_initial(b"a" * 8)
    peer.on_new(F.NewConnectionIdFrame(5, 5, b"f" * 8, b"Y" * 16))
    # Every sequence number below retire_prior_to is retired at once, each exactly once.
    assert list(peer.pending_retire) == [0, 1, 2, 3, 4]
    for _ in range(3):  # late or repeated frames below retire_prior_to: already retired
        peer.on_new(F.NewConnectionIdFrame(2, 0, b"g" * 8, b"Z" * 16))
    assert list(peer.pending_retire) == [0, 1, 2, 3, 4]
    assert peer.current_cid == b"f" * 8
    sent = [peer.next_retire() for _ in range(5)]
    peer.on_retire_lost(3)
    peer.on_retire_lost(3)  # two lost copies: queued once
    peer.on_retire_acked(1)
    peer.on_retire_lost(1)  # acknowledged meanwhile: not queued again
    assert sent == [0, 1, 2, 3, 4] and list(peer.pending_retire) == [3]
    # A CID switched away from is retired once, even if its NEW_CONNECTION_ID comes again.
    peer.on_new(F.NewConnectionIdFrame(6, 5, b"h" * 8, b"X" * 16))
    assert peer.switch() and peer.current_cid == b"h" * 8
    assert list(peer.pending_retire) == [3, 5]
    peer.on_new(F.NewConnectionIdFrame(5, 5, b"f" * 8, b"Y" * 16))
    assert 5 not in peer.entries and list(peer.pending_retire) == [3, 5]


def test_retire_prior_to_jump_beyond_the_limit_is_cid_limit_error() -> None:
    peer = PeerCids(limit=4, retire_limit=8)
    peer.set_initial(b"a" * 8)
    with pytest.raises(ProtocolError) as err:
        peer.on_new(F.NewConnectionIdFrame(1 << 40, 1 << 40, b"f" * 8, b"Y" * 16))
    assert err.value.code == ErrorCode.CONNECTION_ID_LIMIT_ERROR
    assert len(peer.pending_retire) == 0
