"""Transport parameters (RFC 9000 section 18; RFC 9221, RFC 9368, RFC 9287 extensions;
min_ack_delay of draft-ietf-quic-ack-frequency-14).

:meth:`TransportParameters.decode` raises :class:`DecodeError` with
TRANSPORT_PARAMETER_ERROR for malformed, duplicated, out-of-range or misplaced parameters.
Connection-level checks (CIDs matching the ones used in the handshake, presence of
``initial_source_connection_id``) are the connection's job.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from ..errors import DecodeError, ErrorCode
from .buffer import Buffer, encode_varint

_BytesLike = bytes | bytearray | memoryview
_TPE = ErrorCode.TRANSPORT_PARAMETER_ERROR
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!L")

MAX_CID_LENGTH = 20

SERVER_ONLY = frozenset((0x00, 0x02, 0x0D, 0x10))
MIN_ACK_DELAY = 0xFF04DE1B  # draft-ietf-quic-ack-frequency-14 section 3 (provisional)


@dataclass(slots=True)
class PreferredAddress:
    """RFC 9000 section 18.2 preferred_address; an address of None is sent as all zeros."""

    ipv4_address: tuple[str, int] | None
    ipv6_address: tuple[str, int] | None
    connection_id: bytes
    stateless_reset_token: bytes

    def encode(self) -> bytes:
        if not 1 <= len(self.connection_id) <= MAX_CID_LENGTH:
            raise ValueError("preferred_address connection ID must be 1..20 bytes")
        if len(self.stateless_reset_token) != 16:
            raise ValueError("stateless reset token must be 16 bytes")
        out = bytearray()
        if self.ipv4_address is None:
            out += bytes(6)
        else:
            out += ipaddress.IPv4Address(self.ipv4_address[0]).packed
            out += _U16.pack(self.ipv4_address[1])
        if self.ipv6_address is None:
            out += bytes(18)
        else:
            out += ipaddress.IPv6Address(self.ipv6_address[0]).packed
            out += _U16.pack(self.ipv6_address[1])
        out.append(len(self.connection_id))
        out += self.connection_id
        out += self.stateless_reset_token
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> PreferredAddress:
        if len(data) < 4 + 2 + 16 + 2 + 1 + 16:
            raise DecodeError("preferred_address too short", _TPE)
        v4, v4port = data[0:4], _U16.unpack_from(data, 4)[0]
        v6, v6port = data[6:22], _U16.unpack_from(data, 22)[0]
        n = data[24]
        if not 1 <= n <= MAX_CID_LENGTH or len(data) != 25 + n + 16:
            raise DecodeError("malformed preferred_address", _TPE)
        ipv4 = None if v4 == bytes(4) and not v4port else (str(ipaddress.IPv4Address(v4)), v4port)
        ipv6 = None if v6 == bytes(16) and not v6port else (str(ipaddress.IPv6Address(v6)), v6port)
        return cls(ipv4, ipv6, data[25 : 25 + n], data[25 + n :])


@dataclass(slots=True)
class VersionInformation:
    """RFC 9368 version_information: the chosen version and the versions available."""

    chosen_version: int
    available_versions: list[int] = field(default_factory=list)

    def encode(self) -> bytes:
        return b"".join(_U32.pack(v) for v in (self.chosen_version, *self.available_versions))

    @classmethod
    def decode(cls, data: bytes) -> VersionInformation:
        if not data or len(data) % 4:
            raise DecodeError("malformed version_information", _TPE)
        versions = list(struct.unpack(f">{len(data) >> 2}L", data))
        if 0 in versions:
            raise DecodeError("version_information contains version 0", _TPE)
        return cls(versions[0], versions[1:])


# integer parameters: id -> (attribute, default)
_INT_PARAMS: dict[int, tuple[str, int]] = {
    0x01: ("max_idle_timeout", 0),
    0x03: ("max_udp_payload_size", 65527),
    0x04: ("initial_max_data", 0),
    0x05: ("initial_max_stream_data_bidi_local", 0),
    0x06: ("initial_max_stream_data_bidi_remote", 0),
    0x07: ("initial_max_stream_data_uni", 0),
    0x08: ("initial_max_streams_bidi", 0),
    0x09: ("initial_max_streams_uni", 0),
    0x0A: ("ack_delay_exponent", 3),
    0x0B: ("max_ack_delay", 25),
    0x0E: ("active_connection_id_limit", 2),
}
_CID_PARAMS: dict[int, str] = {
    0x00: "original_destination_connection_id",
    0x0F: "initial_source_connection_id",
    0x10: "retry_source_connection_id",
}
_FLAG_PARAMS: dict[int, str] = {0x0C: "disable_active_migration", 0x2AB2: "grease_quic_bit"}
# encoded id of each integer parameter (all below 64: one byte)
_INT_ID_BYTES: dict[int, bytes] = {param_id: encode_varint(param_id) for param_id in _INT_PARAMS}
# varint length -> mask of its value bits (the two high bits are the length)
_VARINT_VALUE_MASK = {1: 0x3F, 2: 0x3FFF, 4: 0x3FFFFFFF, 8: 0x3FFFFFFFFFFFFFFF}


_CHECKED_INTS = frozenset((0x03, 0x0A, 0x0B, 0x0E, 0x08, 0x09))  # what _check_int checks


def _check_int(param_id: int, value: int) -> None:
    """Range checks of RFC 9000 section 18.2."""
    if param_id == 0x03 and value < 1200:
        raise DecodeError(f"max_udp_payload_size {value} < 1200", _TPE)
    if param_id == 0x0A and value > 20:
        raise DecodeError(f"ack_delay_exponent {value} > 20", _TPE)
    if param_id == 0x0B and value >= 1 << 14:
        raise DecodeError(f"max_ack_delay {value} >= 2^14", _TPE)
    if param_id == 0x0E and value < 2:
        raise DecodeError(f"active_connection_id_limit {value} < 2", _TPE)
    if param_id in (0x08, 0x09) and value > 1 << 60:
        raise DecodeError("initial_max_streams exceeds 2^60", _TPE)


@dataclass(slots=True)
class TransportParameters:
    """One endpoint's transport parameters; defaults are the RFC's (absent parameter)."""

    original_destination_connection_id: bytes | None = None
    max_idle_timeout: int = 0  # milliseconds, 0 = none
    stateless_reset_token: bytes | None = None
    max_udp_payload_size: int = 65527
    initial_max_data: int = 0
    initial_max_stream_data_bidi_local: int = 0
    initial_max_stream_data_bidi_remote: int = 0
    initial_max_stream_data_uni: int = 0
    initial_max_streams_bidi: int = 0
    initial_max_streams_uni: int = 0
    ack_delay_exponent: int = 3
    max_ack_delay: int = 25  # milliseconds
    disable_active_migration: bool = False
    preferred_address: PreferredAddress | None = None
    active_connection_id_limit: int = 2
    initial_source_connection_id: bytes | None = None
    retry_source_connection_id: bytes | None = None
    max_datagram_frame_size: int | None = None  # RFC 9221; None = DATAGRAM not supported
    version_information: VersionInformation | None = None  # RFC 9368
    grease_quic_bit: bool = False  # RFC 9287
    min_ack_delay: int | None = None  # microseconds; None = ACK_FREQUENCY not accepted
    unknown: dict[int, bytes] = field(default_factory=dict)  # unknown and GREASE ids

    def encode(self) -> bytes:
        """Wire form: parameters that differ from their defaults, then ``unknown``.

        Out-of-range values raise ``ValueError``. What follows the connection IDs and the
        reset token is the same for every connection of one endpoint's settings: that part
        is encoded once per distinct set of values (a small cache).
        """
        out = bytearray()
        for param_id, name in _CID_PARAMS.items():
            cid = getattr(self, name)
            if cid is not None:
                if len(cid) > MAX_CID_LENGTH:
                    raise ValueError(f"{name} longer than 20 bytes")
                _put(out, param_id, cid)
        if self.stateless_reset_token is not None:
            if len(self.stateless_reset_token) != 16:
                raise ValueError("stateless_reset_token must be 16 bytes")
            _put(out, 0x02, self.stateless_reset_token)
        if self.preferred_address is not None or self.unknown:
            return bytes(out + self._encode_rest())
        vi = self.version_information
        key = (
            *map(self.__getattribute__, _REST_FIELDS),
            None if vi is None else (vi.chosen_version, *vi.available_versions),
        )
        rest = _REST_CACHE.get(key)
        if rest is None:
            rest = self._encode_rest()
            if len(_REST_CACHE) >= _REST_CACHE_SIZE:
                _REST_CACHE.clear()
            _REST_CACHE[key] = rest
        return bytes(out + rest)

    def _encode_rest(self) -> bytes:
        """The parameters after the connection IDs and the reset token."""
        out = bytearray()
        for param_id, (name, default) in _INT_PARAMS.items():
            value = getattr(self, name)
            if value != default:
                try:
                    _check_int(param_id, value)
                except DecodeError as exc:
                    raise ValueError(exc.reason) from None
                encoded = encode_varint(value)
                out += _INT_ID_BYTES[param_id]
                out.append(len(encoded))  # at most 8: a one-byte varint
                out += encoded
        for param_id, name in _FLAG_PARAMS.items():
            if getattr(self, name):
                _put(out, param_id, b"")
        if self.preferred_address is not None:
            _put(out, 0x0D, self.preferred_address.encode())
        if self.max_datagram_frame_size is not None:
            _put(out, 0x20, encode_varint(self.max_datagram_frame_size))
        if self.version_information is not None:
            _put(out, 0x11, self.version_information.encode())
        if self.min_ack_delay is not None:
            if self.min_ack_delay > self.max_ack_delay * 1000:
                raise ValueError("min_ack_delay exceeds max_ack_delay")
            _put(out, MIN_ACK_DELAY, encode_varint(self.min_ack_delay))
        for param_id, value in self.unknown.items():
            if param_id in _KNOWN_IDS:
                raise ValueError(f"unknown parameter id {param_id:#x} is a known one")
            _put(out, param_id, value)
        return bytes(out)

    @classmethod
    def decode(cls, data: _BytesLike, from_server: bool) -> TransportParameters:
        """Parse the peer's parameters; ``from_server`` is True when the server sent them."""
        try:
            return cls._decode(data, from_server)
        except DecodeError as exc:
            if exc.code == _TPE:
                raise
            raise DecodeError(f"malformed transport parameters: {exc.reason}", _TPE) from None

    @classmethod
    def _decode(cls, data: _BytesLike, from_server: bool) -> TransportParameters:
        params = cls()
        seen: set[int] = set()
        int_params = _INT_PARAMS
        end = len(data)
        pos = 0
        while pos < end:
            # one-byte id and length varints (the usual case), value present; else the
            # general parse (truncation raises its DecodeError)
            param_id = data[pos]
            if param_id < 0x40 and pos + 1 < end and (size := data[pos + 1]) < 0x40:
                stop = pos + 2 + size
                if stop <= end:
                    value = bytes(data[pos + 2 : stop])
                    pos = stop
                else:
                    param_id, value, pos = _parse_parameter(data, pos)
            else:
                param_id, value, pos = _parse_parameter(data, pos)
            if param_id in seen:
                raise DecodeError(f"duplicate transport parameter {param_id:#x}", _TPE)
            seen.add(param_id)
            if param_id in SERVER_ONLY and not from_server:
                raise DecodeError(f"client sent server-only parameter {param_id:#x}", _TPE)
            int_param = int_params.get(param_id)
            if int_param is not None:
                # (_varint_value's usual case inline: exactly one varint)
                if value and len(value) == 1 << (value[0] >> 6):
                    number = int.from_bytes(value, "big") & _VARINT_VALUE_MASK[len(value)]
                else:
                    number = _varint_value(param_id, value)
                if param_id in _CHECKED_INTS:
                    _check_int(param_id, number)
                setattr(params, int_param[0], number)
            elif param_id in _CID_PARAMS:
                if len(value) > MAX_CID_LENGTH:
                    raise DecodeError(f"connection ID parameter {param_id:#x} too long", _TPE)
                setattr(params, _CID_PARAMS[param_id], value)
            elif param_id in _FLAG_PARAMS:
                if value:
                    raise DecodeError(f"parameter {param_id:#x} must be empty", _TPE)
                setattr(params, _FLAG_PARAMS[param_id], True)
            elif param_id == 0x02:
                if len(value) != 16:
                    raise DecodeError("stateless_reset_token must be 16 bytes", _TPE)
                params.stateless_reset_token = value
            elif param_id == 0x0D:
                params.preferred_address = PreferredAddress.decode(value)
            elif param_id == 0x20:
                params.max_datagram_frame_size = _varint_value(param_id, value)
            elif param_id == 0x11:
                params.version_information = VersionInformation.decode(value)
            elif param_id == MIN_ACK_DELAY:
                params.min_ack_delay = _varint_value(param_id, value)
            else:
                params.unknown[param_id] = value
        if params.min_ack_delay is not None and params.min_ack_delay > params.max_ack_delay * 1000:
            raise DecodeError("min_ack_delay exceeds max_ack_delay", _TPE)
        return params


# The fields _encode_rest reads besides version_information: with it, the key of
# _REST_CACHE (parameters with a preferred_address or unknown ones are not cached).
_REST_FIELDS = (
    *(name for name, _ in _INT_PARAMS.values()),
    *_FLAG_PARAMS.values(),
    "max_datagram_frame_size",
    "min_ack_delay",
)
_REST_CACHE: dict[tuple[object, ...], bytes] = {}
_REST_CACHE_SIZE = 64

_KNOWN_IDS = frozenset(
    (*_INT_PARAMS, *_CID_PARAMS, *_FLAG_PARAMS, 0x02, 0x0D, 0x11, 0x20, MIN_ACK_DELAY)
)


def find_parameter(data: _BytesLike, wanted: int) -> bytes | None:
    """The raw value of the first parameter ``wanted`` in encoded parameters, or None,
    without interpreting or copying the others (DecodeError when the encoding is truncated
    before it; the handshake decodes and checks them all later)."""
    end = len(data)
    pos = 0
    while pos < end:
        # fast path: one-byte id and length varints (the usual case), value present
        if pos + 1 < end and data[pos] < 0x40 and data[pos + 1] < 0x40:
            stop = pos + 2 + data[pos + 1]
            if stop <= end:
                if data[pos] == wanted:
                    return bytes(data[pos + 2 : stop])
                pos = stop
                continue
        param_id, value, pos = _parse_parameter(data, pos)
        if param_id == wanted:
            return value
    return None


def _parse_parameter(data: _BytesLike, pos: int) -> tuple[int, bytes, int]:
    """The parameter at ``pos`` with varints of any size: id, value and the position after
    it; DecodeError when it is truncated."""
    buf = Buffer(data)
    buf.pos = pos
    param_id = buf.pull_varint()
    value = buf.pull_varint_bytes()
    return param_id, value, buf.pos


def _put(out: bytearray, param_id: int, value: bytes) -> None:
    """Append one parameter: id, length, value."""
    out += encode_varint(param_id)
    out += encode_varint(len(value))
    out += value


def _varint_value(param_id: int, value: bytes) -> int:
    """The integer of a parameter value that is exactly one varint."""
    if value:
        size = len(value)
        if size == 1 << (value[0] >> 6):
            return int.from_bytes(value, "big") & _VARINT_VALUE_MASK[size]
    # empty, truncated or longer than its varint: the Buffer raises the DecodeError
    buf = Buffer(value)
    number = buf.pull_varint()
    if not buf.eof():
        raise DecodeError(f"parameter {param_id:#x}: length does not match its varint", _TPE)
    return number


def is_grease_id(param_id: int) -> bool:
    """Reserved ids 31 * N + 27 (RFC 9000 section 18.1)."""
    return param_id % 31 == 27
