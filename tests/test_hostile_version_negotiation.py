"""Version Negotiation as a reflector, over real UDP against ``quicish serve`` (issue 15, item
11). RFC 9000 6.1: an endpoint MUST NOT send a Version Negotiation packet in response to one;
a 1200-byte VN (long header, version 0) used to get a VN back, so two servers, or a server
and a spoofed victim, could be made to ping-pong. Nor is a datagram too small to be a
client's first (RFC 9000 14.1) answered with VN."""

from __future__ import annotations

from hostile_support import PreparedGet, RawClient, ServeProcess

from quicish.wire.packet import PacketType, encode_version_negotiation, parse_header


def test_version_negotiation_packets_are_never_answered() -> None:
    with ServeProcess() as server, RawClient(server.port) as attacker:
        vn = encode_version_negotiation(bytes(8), bytes(9), [0x0A0A0A0A] * 294)
        assert len(vn) == 1200 and parse_header(vn).packet_type is PacketType.VERSION_NEGOTIATION
        get = PreparedGet(server, timeout=5)
        for _ in range(200):
            attacker.send_raw(vn)
        get.start()  # a legitimate client meanwhile
        assert attacker.drain_socket(1.0) == []
        # Unknown versions: a VN for a full-size datagram, nothing for a smaller one.
        unknown = bytearray(vn)
        unknown[1:5] = (0x1A2A3A4A).to_bytes(4, "big")
        attacker.send_raw(bytes(unknown[:1199]))
        assert attacker.drain_socket(0.3) == []
        attacker.send_raw(bytes(unknown))
        answers = attacker.drain_socket(0.5)
        assert [parse_header(d).packet_type for d in answers] == [PacketType.VERSION_NEGOTIATION]
        assert get.wait(), get.output
