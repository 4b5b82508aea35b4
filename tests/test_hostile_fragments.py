"""Issue 15 item 1 over real UDP against ``quicish serve``: STREAM and CRYPTO data sent as
1-byte fragments with 1-byte holes must cost the server little CPU and memory, and a
legitimate client is served during the attack."""

from __future__ import annotations

import socket
import time

from hostile_support import InitialFrameForger, RawClient, ServeProcess

from quicish.config import Config
from quicish.errors import ErrorCode
from quicish.wire import frames as F

MB = 1 << 20
FRAMES_PER_PACKET = 130  # 1-byte STREAM frames with a 4-byte offset: ~8 bytes each


def test_stream_fragment_holes_across_four_windows() -> None:
    """Four bidirectional streams, each filled from the top of its advertised window
    (the server's initial max_stream_data; 4 of them fit in its max_data) downwards with
    1-byte fragments and 1-byte holes, as fast as one process sends. The server spends
    < 1 s of CPU and grows < 20 MB, closes the attacker with PROTOCOL_VIOLATION once the
    fragments pass its cap, and a GET during the attack succeeds."""
    window = Config().max_stream_data
    assert 4 * window <= Config().max_data
    sids = (0, 4, 8, 12)
    with ServeProcess() as server, RawClient(server.port) as attacker:
        attacker.handshake()
        attacker.pump(0.2)
        cpu0, rss0 = server.cpu_seconds(), server.rss_bytes()
        legit = server.get()
        start = time.monotonic()
        sent = 0  # the whole windows, even after the server closed: it must shrug them off
        offsets = range(window - 2, -1, -2)
        for first in range(0, len(offsets), FRAMES_PER_PACKET // 4):
            chunk = offsets[first : first + FRAMES_PER_PACKET // 4]
            attacker.send_frames(*(F.StreamFrame(sid, off, b"x") for off in chunk for sid in sids))
            sent += 1
        attack_time = time.monotonic() - start
        attacker.pump(2.0, until=lambda: attacker.closed_by_peer() is not None)
        served = legit.wait()
        cpu = server.cpu_seconds() - cpu0
        rss = server.rss_bytes() - rss0
        term = attacker.closed_by_peer()
        print(
            f"\n{sent} packets in {attack_time:.2f} s; server CPU {cpu:.2f} s, "
            f"RSS +{rss / MB:.1f} MB; closed: {term}"
        )
        assert served, legit.output
        assert term is not None and term.error_code == ErrorCode.PROTOCOL_VIOLATION
        assert term.reason == "protocol violation"  # a fixed phrase on the wire
        assert term.frame_type is not None and 0x08 <= term.frame_type <= 0x0F  # STREAM
        assert cpu < 1.0
        assert rss < 20 * MB
        assert server.alive()


def test_crypto_fragment_holes_in_half_open_initials() -> None:
    """100 spoofed half-open connections, each sent 40 Initials of 1-byte CRYPTO fragments
    with holes (5,200 fragments each, never a ClientHello at offset 0): the server's RSS
    grows < 10 MB (about 50 MB before the caps) and a GET during the flood succeeds."""
    with ServeProcess() as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        try:
            forgers = [InitialFrameForger(server.port) for _ in range(100)]
            cpu0, rss0 = server.cpu_seconds(), server.rss_bytes()
            legit = server.get()
            top = 12_000
            for burst in range(40):
                base = top - burst * 2 * FRAMES_PER_PACKET
                frames = [F.CryptoFrame(base - 2 * k, b"\x01") for k in range(FRAMES_PER_PACKET)]
                for forger in forgers:
                    sock.sendto(forger.datagram(*frames), ("127.0.0.1", server.port))
                try:
                    while sock.recv(65536):
                        pass
                except BlockingIOError:
                    pass
                time.sleep(0.005)  # a loopback socket buffer holds ~200 datagrams
            served = legit.wait()
            cpu = server.cpu_seconds() - cpu0
            rss = server.rss_bytes() - rss0
            print(f"\nserver CPU {cpu:.2f} s, RSS +{rss / MB:.1f} MB")
            assert served, legit.output
            assert rss < 10 * MB
            assert server.alive()
        finally:
            sock.close()
