"""Passive QUIC wire decoding for the checkers, written from the RFCs with `cryptography`.

Independent of quicish's own codecs on purpose: the matrix must not trust the code it tests.
Covers what the scenario rules need: long/short header parsing (RFC 9000 section 17, RFC 9369
for v2), header protection removal and AEAD opening (RFC 9001 section 5), Initial keys from the
Destination Connection ID, "quic ku" key updates, and a frame walker (RFC 9000 section 19).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

V1 = 0x00000001
V2 = 0x6B3343CF
SALTS = {
    V1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    V2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
# long header type bits -> name, per version (RFC 9000 17.2, RFC 9369 3.2)
LONG_TYPES = {
    V1: {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"},
    V2: {1: "initial", 2: "0rtt", 3: "handshake", 0: "retry"},
}
TLS_AES_128_GCM_SHA256 = 0x1301
TLS_AES_256_GCM_SHA384 = 0x1302
TLS_CHACHA20_POLY1305_SHA256 = 0x1303
SUITE_NAMES = {
    TLS_AES_128_GCM_SHA256: "TLS_AES_128_GCM_SHA256",
    TLS_AES_256_GCM_SHA384: "TLS_AES_256_GCM_SHA384",
    TLS_CHACHA20_POLY1305_SHA256: "TLS_CHACHA20_POLY1305_SHA256",
}


class WireError(Exception):
    """A datagram or frame that cannot be parsed."""


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, new position) of the QUIC variable-length integer at ``pos``."""
    if pos >= len(data):
        raise WireError("varint past the end")
    first = data[pos]
    length = 1 << (first >> 6)
    if pos + length > len(data):
        raise WireError("truncated varint")
    value = first & 0x3F
    for b in data[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, pos + length


@dataclass(slots=True)
class Packet:
    """One QUIC packet inside a datagram, header fields in the clear parts only."""

    kind: str  # initial, 0rtt, handshake, retry, vn, 1rtt
    version: int
    dcid: bytes
    scid: bytes = b""
    token: bytes = b""
    pn_offset: int = 0
    start: int = 0
    end: int = 0
    raw: bytes = b""  # the whole datagram (packet = raw[start:end])


def parse_datagram(data: bytes, short_dcid_len: int) -> list[Packet]:
    """The coalesced packets of one datagram; a short-header packet ends it."""
    packets: list[Packet] = []
    pos = 0
    while pos < len(data):
        first = data[pos]
        if not first & 0x80:
            if packets and not first & 0x40:
                break  # zero padding after a coalesced long packet, not a packet
            dcid = data[pos + 1 : pos + 1 + short_dcid_len]
            packets.append(
                Packet(
                    "1rtt",
                    0,
                    dcid,
                    pn_offset=pos + 1 + short_dcid_len,
                    start=pos,
                    end=len(data),
                    raw=data,
                )
            )
            break
        if pos + 7 > len(data):
            raise WireError("truncated long header")
        version = struct.unpack_from("!I", data, pos + 1)[0]
        p = pos + 5
        dlen = data[p]
        dcid = data[p + 1 : p + 1 + dlen]
        p += 1 + dlen
        if p >= len(data):
            raise WireError("truncated long header")
        slen = data[p]
        scid = data[p + 1 : p + 1 + slen]
        p += 1 + slen
        if version == 0:
            packets.append(Packet("vn", 0, dcid, scid, start=pos, end=len(data), raw=data))
            break
        types = LONG_TYPES.get(version)
        if types is None:
            packets.append(
                Packet("unknown", version, dcid, scid, start=pos, end=len(data), raw=data)
            )
            break
        kind = types[(first >> 4) & 3]
        if kind == "retry":
            packets.append(
                Packet(
                    kind,
                    version,
                    dcid,
                    scid,
                    token=data[p : len(data) - 16],
                    start=pos,
                    end=len(data),
                    raw=data,
                )
            )
            break
        token = b""
        if kind == "initial":
            tlen, p = read_varint(data, p)
            token = data[p : p + tlen]
            p += tlen
        length, p = read_varint(data, p)
        end = p + length
        if end > len(data):
            raise WireError("long packet longer than its datagram")
        packets.append(Packet(kind, version, dcid, scid, token, p, pos, end, data))
        pos = end
    return packets


def hkdf_expand_label(secret: bytes, label: bytes, length: int, sha384: bool = False) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    algorithm: hashes.HashAlgorithm = hashes.SHA384() if sha384 else hashes.SHA256()
    return HKDFExpand(algorithm, length, info).derive(secret)


class Keys:
    """AEAD and header-protection keys of one direction at one level."""

    __slots__ = ("_aead", "_ecb", "_hp", "iv", "secret", "suite", "version")
    _hp: bytes
    _ecb: Any

    def __init__(
        self, suite: int, secret: bytes, version: int = V1, hp_from: Keys | None = None
    ) -> None:
        self.suite = suite
        self.secret = secret
        self.version = version
        sha384 = suite == TLS_AES_256_GCM_SHA384
        key_len = 16 if suite == TLS_AES_128_GCM_SHA256 else 32
        prefix = b"quicv2 " if version == V2 else b"quic "
        key = hkdf_expand_label(secret, prefix + b"key", key_len, sha384)
        self.iv = hkdf_expand_label(secret, prefix + b"iv", 12, sha384)
        if suite == TLS_CHACHA20_POLY1305_SHA256:
            self._aead: AESGCM | ChaCha20Poly1305 = ChaCha20Poly1305(key)
        else:
            self._aead = AESGCM(key)
        if hp_from is not None:  # key updates keep the header protection key
            self._hp, self._ecb = hp_from._hp, hp_from._ecb
            return
        self._hp = hkdf_expand_label(secret, prefix + b"hp", key_len, sha384)
        self._ecb = None
        if suite != TLS_CHACHA20_POLY1305_SHA256:
            self._ecb = Cipher(algorithms.AES(self._hp), modes.ECB()).encryptor()

    def mask(self, sample: bytes) -> bytes:
        if self._ecb is not None:
            return bytes(self._ecb.update(sample)[:5])
        enc = Cipher(algorithms.ChaCha20(self._hp, sample), mode=None).encryptor()
        return enc.update(b"\x00" * 5)

    def next_generation(self) -> Keys:
        """The keys after a key update (RFC 9001 section 6)."""
        sha384 = self.suite == TLS_AES_256_GCM_SHA384
        label = b"quicv2 ku" if self.version == V2 else b"quic ku"
        nxt = hkdf_expand_label(self.secret, label, len(self.secret), sha384)
        return Keys(self.suite, nxt, self.version, hp_from=self)

    def unprotect(self, packet: Packet, largest_pn: int) -> tuple[int, int, bytes]:
        """(first byte, full packet number, plaintext payload); raises `WireError`."""
        first, pn, header, pn_len = self.remove_hp(packet, largest_pn)
        return first, pn, self.open(packet, pn, header, pn_len)

    def remove_hp(self, packet: Packet, largest_pn: int) -> tuple[int, int, bytes, int]:
        """(first byte, full packet number, plain header, pn length)."""
        data = packet.raw
        pn_off = packet.pn_offset
        sample = data[pn_off + 4 : pn_off + 20]
        if len(sample) < 16:
            raise WireError("packet too short to sample")
        mask = self.mask(sample)
        first = data[packet.start]
        first ^= mask[0] & (0x0F if first & 0x80 else 0x1F)
        pn_len = (first & 3) + 1
        truncated = 0
        for i in range(pn_len):
            truncated = (truncated << 8) | (data[pn_off + i] ^ mask[1 + i])
        pn = decode_pn(truncated, pn_len * 8, largest_pn)
        header = (
            bytes([first]) + data[packet.start + 1 : pn_off] + truncated.to_bytes(pn_len, "big")
        )
        return first, pn, header, pn_len

    def open(self, packet: Packet, pn: int, header: bytes, pn_len: int) -> bytes:
        """The plaintext payload; raises `WireError` when the AEAD tag does not verify."""
        nonce = bytes(a ^ b for a, b in zip(self.iv, pn.to_bytes(12, "big"), strict=True))
        start = packet.pn_offset + pn_len
        try:
            return self._aead.decrypt(nonce, packet.raw[start : packet.end], header)
        except Exception as exc:  # cryptography's InvalidTag
            raise WireError("AEAD open failed") from exc


def decode_pn(truncated: int, bits: int, largest: int) -> int:
    """RFC 9000 appendix A.3."""
    expected = largest + 1
    win = 1 << bits
    hwin = win // 2
    mask = win - 1
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


def initial_keys(dcid: bytes, version: int) -> tuple[Keys, Keys]:
    """(client keys, server keys) of the Initial level for the client's chosen DCID."""
    salt = SALTS[version]
    initial = hmac.new(salt, dcid, hashlib.sha256).digest()
    client = hkdf_expand_label(initial, b"client in", 32)
    server = hkdf_expand_label(initial, b"server in", 32)
    return (
        Keys(TLS_AES_128_GCM_SHA256, client, version),
        Keys(TLS_AES_128_GCM_SHA256, server, version),
    )


# -- frames -----------------------------------------------------------------------------


@dataclass(slots=True)
class Frame:
    """A frame the rules care about; ``fields`` holds its decoded values."""

    type: int
    fields: dict[str, object] = field(default_factory=dict)


_STREAM_LO, _STREAM_HI = 0x08, 0x0F


def walk_frames(payload: bytes) -> list[Frame]:
    """Decode a packet payload's frames (PADDING runs skipped). Raises `WireError`."""
    frames: list[Frame] = []
    pos = 0
    n = len(payload)
    while pos < n:
        ftype, pos = read_varint(payload, pos)
        if ftype == 0x00:
            while pos < n and payload[pos] == 0:
                pos += 1
            continue
        if ftype == 0x01 or ftype == 0x1E:
            frames.append(Frame(ftype))
        elif ftype in (0x02, 0x03):
            largest, pos = read_varint(payload, pos)
            _, pos = read_varint(payload, pos)  # ACK Delay
            count, pos = read_varint(payload, pos)
            first_range, pos = read_varint(payload, pos)
            for _ in range(count):
                _, pos = read_varint(payload, pos)
                _, pos = read_varint(payload, pos)
            f = Frame(ftype, {"largest": largest, "first_range": first_range})
            if ftype == 0x03:
                ect0, pos = read_varint(payload, pos)
                ect1, pos = read_varint(payload, pos)
                ce, pos = read_varint(payload, pos)
                f.fields.update(ect0=ect0, ect1=ect1, ce=ce)
            frames.append(f)
        elif ftype == 0x04:
            sid, pos = read_varint(payload, pos)
            code, pos = read_varint(payload, pos)
            final, pos = read_varint(payload, pos)
            frames.append(Frame(ftype, {"stream_id": sid, "code": code, "final": final}))
        elif ftype == 0x05:
            sid, pos = read_varint(payload, pos)
            code, pos = read_varint(payload, pos)
            frames.append(Frame(ftype, {"stream_id": sid, "code": code}))
        elif ftype == 0x06:
            off, pos = read_varint(payload, pos)
            length, pos = read_varint(payload, pos)
            frames.append(Frame(ftype, {"offset": off, "data": payload[pos : pos + length]}))
            pos += length
        elif ftype == 0x07:
            length, pos = read_varint(payload, pos)
            frames.append(Frame(ftype, {"token": payload[pos : pos + length]}))
            pos += length
        elif _STREAM_LO <= ftype <= _STREAM_HI:
            sid, pos = read_varint(payload, pos)
            off = 0
            if ftype & 0x04:
                off, pos = read_varint(payload, pos)
            if ftype & 0x02:
                length, pos = read_varint(payload, pos)
            else:
                length = n - pos
            frames.append(
                Frame(
                    0x08,
                    {"stream_id": sid, "offset": off, "length": length, "fin": bool(ftype & 1)},
                )
            )
            pos += length
        elif ftype in (0x10, 0x12, 0x13, 0x14, 0x16, 0x17, 0x19):
            value, pos = read_varint(payload, pos)
            frames.append(Frame(ftype, {"value": value}))
        elif ftype in (0x11, 0x15):
            sid, pos = read_varint(payload, pos)
            value, pos = read_varint(payload, pos)
            frames.append(Frame(ftype, {"stream_id": sid, "value": value}))
        elif ftype == 0x18:
            seq, pos = read_varint(payload, pos)
            retire, pos = read_varint(payload, pos)
            if pos >= n:
                raise WireError("truncated NEW_CONNECTION_ID")
            clen = payload[pos]
            cid = payload[pos + 1 : pos + 1 + clen]
            pos += 1 + clen + 16
            frames.append(Frame(ftype, {"seq": seq, "retire_prior_to": retire, "cid": cid}))
        elif ftype in (0x1A, 0x1B):
            frames.append(Frame(ftype, {"data": payload[pos : pos + 8]}))
            pos += 8
        elif ftype in (0x1C, 0x1D):
            code, pos = read_varint(payload, pos)
            frame_type = None
            if ftype == 0x1C:
                frame_type, pos = read_varint(payload, pos)
            rlen, pos = read_varint(payload, pos)
            reason = payload[pos : pos + rlen]
            pos += rlen
            frames.append(Frame(ftype, {"code": code, "frame_type": frame_type, "reason": reason}))
        elif ftype in (0x30, 0x31):
            if ftype == 0x31:
                length, pos = read_varint(payload, pos)
            else:
                length = n - pos
            frames.append(Frame(ftype, {"length": length}))
            pos += length
        else:
            raise WireError(f"unknown frame type {ftype:#x}")
        if pos > n:
            raise WireError(f"frame {ftype:#x} runs past the payload")
    return frames
