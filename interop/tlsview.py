"""Just enough TLS 1.3 handshake parsing (RFC 8446 section 4) to read what the rules need."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .quicwire import WireError, read_varint

CLIENT_HELLO = 1
SERVER_HELLO = 2
ENCRYPTED_EXTENSIONS = 8

EXT_PRE_SHARED_KEY = 0x29
EXT_EARLY_DATA = 0x2A
EXT_QUIC_TRANSPORT_PARAMETERS = 0x39
TP_INITIAL_MAX_STREAMS_BIDI = 0x08
TP_VERSION_INFORMATION = 0x11


@dataclass
class Hello:
    """A ClientHello, ServerHello or EncryptedExtensions, reduced to the facts we check."""

    msg_type: int
    random: bytes = b""
    cipher_suites: list[int] = field(default_factory=list)  # GREASE removed
    extensions: list[int] = field(default_factory=list)
    transport_parameters: dict[int, bytes] = field(default_factory=dict)

    @property
    def has_psk(self) -> bool:
        return EXT_PRE_SHARED_KEY in self.extensions

    @property
    def has_early_data(self) -> bool:
        return EXT_EARLY_DATA in self.extensions

    def tp_varint(self, param: int) -> int | None:
        raw = self.transport_parameters.get(param)
        if raw is None:
            return None
        return read_varint(raw, 0)[0]

    def version_information(self) -> tuple[int, list[int]] | None:
        """(chosen version, available versions) from RFC 9368's transport parameter."""
        raw = self.transport_parameters.get(TP_VERSION_INFORMATION)
        if raw is None or len(raw) < 4 or len(raw) % 4:
            return None
        values = [struct.unpack_from("!I", raw, i)[0] for i in range(0, len(raw), 4)]
        return values[0], values[1:]


def _is_grease(value: int) -> bool:
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WireError("TLS message truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, len_bytes: int) -> bytes:
        return self.take(self.uint(len_bytes))


def _extensions(reader: _Reader, hello: Hello) -> None:
    if reader.pos >= len(reader.data):
        return
    block = _Reader(reader.vector(2))
    while block.pos < len(block.data):
        ext_type = block.uint(2)
        body = block.vector(2)
        if _is_grease(ext_type):
            continue
        hello.extensions.append(ext_type)
        if ext_type == EXT_QUIC_TRANSPORT_PARAMETERS:
            hello.transport_parameters = _transport_parameters(body)


def _transport_parameters(body: bytes) -> dict[int, bytes]:
    params: dict[int, bytes] = {}
    pos = 0
    while pos < len(body):
        pid, pos = read_varint(body, pos)
        length, pos = read_varint(body, pos)
        params[pid] = body[pos : pos + length]
        pos += length
    return params


def parse_message(msg_type: int, body: bytes) -> Hello | None:
    """Parse one handshake message body; None for types we do not look into."""
    r = _Reader(body)
    if msg_type == CLIENT_HELLO:
        hello = Hello(msg_type)
        r.take(2)
        hello.random = r.take(32)
        r.vector(1)  # legacy_session_id
        suites = r.vector(2)
        hello.cipher_suites = [
            v
            for i in range(0, len(suites) - 1, 2)
            if not _is_grease(v := int.from_bytes(suites[i : i + 2], "big"))
        ]
        r.vector(1)  # compression methods
        _extensions(r, hello)
        return hello
    if msg_type == SERVER_HELLO:
        hello = Hello(msg_type)
        r.take(2)
        hello.random = r.take(32)
        r.vector(1)
        hello.cipher_suites = [r.uint(2)]
        r.take(1)
        _extensions(r, hello)
        return hello
    if msg_type == ENCRYPTED_EXTENSIONS:
        hello = Hello(msg_type)
        _extensions(r, hello)
        return hello
    return None


class CryptoStream:
    """Reassembles one direction's CRYPTO frames at one level into handshake messages."""

    def __init__(self) -> None:
        self._chunks: dict[int, bytes] = {}
        self._buf = b""
        self._offset = 0  # bytes consumed into _buf

    def add(self, offset: int, data: bytes) -> list[tuple[int, bytes]]:
        """Add a frame; return the (type, body) of every message completed by it."""
        if offset + len(data) <= self._offset:
            return []
        self._chunks[offset] = data
        while True:
            progressed = False
            for off in sorted(self._chunks):
                chunk = self._chunks[off]
                if off <= self._offset:
                    del self._chunks[off]
                    skip = self._offset - off
                    if skip < len(chunk):
                        self._buf += chunk[skip:]
                        self._offset += len(chunk) - skip
                    progressed = True
                    break
            if not progressed:
                break
        out: list[tuple[int, bytes]] = []
        while len(self._buf) >= 4:
            length = int.from_bytes(self._buf[1:4], "big")
            if len(self._buf) < 4 + length:
                break
            out.append((self._buf[0], self._buf[4 : 4 + length]))
            self._buf = self._buf[4 + length :]
        return out
