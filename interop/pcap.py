"""Save a tap recording as a pcap file (raw IP + UDP), so a cell can be opened in Wireshark
with its ``server.keylog``, and read it back for re-analysis (`python -m interop.pcap F K`)."""

from __future__ import annotations

import ipaddress
import struct
import sys
from pathlib import Path

from .tap import Record, TapSession

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_LINKTYPE_RAW = 101


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _ip_udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes, ecn: int) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    s, d = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    if s.version == 6:
        header = struct.pack("!IHBB", (6 << 28) | (ecn << 20), len(udp), 17, 64)
        return header + s.packed + d.packed + udp
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, ecn, 20 + len(udp), 0, 0, 64, 17, 0, s.packed, d.packed
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


def write_pcap(path: Path, records: list[Record], sessions: list[TapSession]) -> None:
    with open(path, "wb") as fh:
        fh.write(_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_RAW))
        base = records[0].t if records else 0.0
        for rec in records:
            session = sessions[rec.session]
            client, server = session.local, session.upstream
            src, dst = (client, server) if rec.to_server else (server, client)
            frame = _ip_udp(src, dst, rec.data, rec.ecn)
            t = rec.t - base
            fh.write(_RECORD.pack(int(t), int((t % 1) * 1e6), len(frame), len(frame)))
            fh.write(frame)


def read_pcap(path: Path) -> list[Record]:
    """Records back from `write_pcap`'s output. Clients speak first, so the sender of a
    flow's first datagram is its client."""
    data = path.read_bytes()
    pos = _GLOBAL.size
    records: list[Record] = []
    flows: dict[tuple[tuple[bytes, int], tuple[bytes, int]], int] = {}
    while pos + _RECORD.size <= len(data):
        sec, usec, length, _ = _RECORD.unpack_from(data, pos)
        pos += _RECORD.size
        frame = data[pos : pos + length]
        pos += length
        if frame[0] >> 4 == 6:
            src, dst, ecn, udp = frame[8:24], frame[24:40], (frame[1] >> 4) & 3, frame[40:]
        else:
            src, dst, ecn, udp = frame[12:16], frame[16:20], frame[1] & 3, frame[20:]
        sport, dport = struct.unpack_from("!HH", udp)
        a, b = (src, sport), (dst, dport)
        to_server = (b, a) not in flows
        index = flows.setdefault((a, b) if to_server else (b, a), len(flows))
        records.append(Record(sec + usec / 1e6, to_server, index, udp[8:], ecn))
    return records


def main(argv: list[str]) -> int:
    from .analysis import analyze, parse_keylog

    records = read_pcap(Path(argv[0]))
    keylog = parse_keylog(Path(argv[1]).read_text()) if len(argv) > 1 else {}
    analysis = analyze(records, keylog)
    print(analysis.summary())
    for conn in analysis.conns:
        print(conn)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
