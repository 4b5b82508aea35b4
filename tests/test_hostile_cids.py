"""Attack over real UDP (issue 15, item 6): a client floods the server with
NEW_CONNECTION_ID frames whose retire_prior_to rises with every frame, forcing a retirement
per frame. The server's unacknowledged retirements are bounded: it closes the attacker with
CONNECTION_ID_LIMIT_ERROR (RFC 9000 5.1.2), its memory stays flat, and another client's GET
is served meanwhile."""

from __future__ import annotations

import functools
import time

from hostile_support import RawClient, ServeProcess
from support import patch_method

from quicish.errors import ErrorCode
from quicish.wire import frames as F

FRAMES_PER_PACKET = 30


def _frames(start: int, count: int) -> list[F.NewConnectionIdFrame]:
    return [
        F.NewConnectionIdFrame(seq, seq, seq.to_bytes(8, "big"), (seq + 7).to_bytes(16, "big"))
        for seq in range(start, start + count)
    ]


def _attacker(port: int) -> RawClient:
    attacker = RawClient(port)
    # The attacker's own CIDs are all made up by the test: its engine issues none, accepts
    # packets to any of them and RETIRE_CONNECTION_ID for any sequence number.
    cids = attacker.conn._local_cids
    patch_method(cids, "top_up", lambda: [])
    patch_method(cids, "owns", lambda cid: True)
    cids._next_seq = 1 << 40
    attacker.handshake()
    return attacker


def test_forced_retirement_flood_is_closed_and_bounded() -> None:
    with ServeProcess() as server, _attacker(server.port) as attacker:
        attacker.pump(0.2)
        rss_before, cpu_before = server.rss_bytes(), server.cpu_seconds()
        legit = server.get(timeout=5)
        sent = 0
        seq = 1
        deadline = time.monotonic() + 6
        while seq < 24_000 and time.monotonic() < deadline:
            sent += attacker.send_frames(*_frames(seq, FRAMES_PER_PACKET))
            seq += FRAMES_PER_PACKET
        attacker.pump(2.0, until=lambda: attacker.closed_by_peer() is not None)
        closed = attacker.closed_by_peer()
        assert closed is not None and closed.by_peer, "the attacker was not closed"
        assert closed.error_code == ErrorCode.CONNECTION_ID_LIMIT_ERROR
        assert legit.wait(), legit.output
        assert server.alive()
        grown = server.rss_bytes() - rss_before
        cpu = server.cpu_seconds() - cpu_before
        print(
            f"\n{seq - 1} frames in {sent} bytes; server +{grown / 1e6:.1f} MB RSS, "
            f"{cpu:.2f} s CPU; attacker received {attacker.received_bytes} bytes"
        )
        assert grown < 10 << 20
        # The attacker paid for every frame; the server's answers stay far smaller.
        assert attacker.received_bytes < sent


def test_retirements_at_a_sustainable_rate_stay_served() -> None:
    """A peer that retires CIDs one per packet, 8 per round trip, and acknowledges the
    RETIREs, is served: no close, no growth."""
    with ServeProcess() as server, _attacker(server.port) as attacker:
        retired: set[int] = set()
        cids = attacker.conn._local_cids
        on_retire = cids.on_retire

        def counting(seq: int, packet_dcid: bytes) -> bytes | None:
            retired.add(seq)
            return on_retire(seq, packet_dcid)

        patch_method(cids, "on_retire", counting)
        attacker.pump(0.2)
        rss_before = server.rss_bytes()
        seq = 1
        while seq <= 800:
            for _ in range(8):
                attacker.send_frames(*_frames(seq, 1))
                seq += 1
            # one round trip: the server's RETIREs of this batch arrive (however late a
            # loaded machine makes them; the last frame retired all below seq - 1), then
            # the attacker's ACK of them goes out
            batch_done = functools.partial(set.__contains__, retired, seq - 2)
            assert attacker.pump(5.0, until=batch_done), "no RETIREs came"
            attacker.pump(0.03)
        attacker.pump(0.3)
        grown = server.rss_bytes() - rss_before
        print(f"\n{seq - 1} retirements; server +{grown / 1e6:.1f} MB RSS")
        assert attacker.closed_by_peer() is None
        assert grown < 5 << 20
        assert server.alive() and server.get(timeout=5).wait()
