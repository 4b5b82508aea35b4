"""Compatible version negotiation (RFC 9368) between QUIC v1 and v2 (RFC 9369).

The client sends its first flight in its original version with a ``version_information``
transport parameter listing the versions it could use. A server that prefers another of
them answers in that version straight away: the two versions' first flights are
compatible, so no round trip is lost. To decide before its TLS stack writes the server's
transport parameters, the server reads the client's parameters out of the ClientHello in
the first Initial packet (:func:`client_hello_transport_parameters`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import DecodeError
from ..wire.buffer import Buffer
from ..wire.packet import SUPPORTED_VERSIONS
from ..wire.transport_params import VersionInformation, find_parameter

VERSION_NEGOTIATION_ERROR = 0x11  # RFC 9368 section 10.2
_CLIENT_HELLO = 1
_QUIC_TRANSPORT_PARAMETERS = 0x39
_CRYPTO_FRAME = 0x06
_VERSION_INFORMATION = 0x11


def client_hello_transport_parameters(payload: bytes) -> bytes | None:
    """The client's transport parameters from the ClientHello at the start of an Initial
    packet's frames, or None when the ClientHello does not fit in this packet."""
    try:
        buf = Buffer(payload)
        while True:  # skip PADDING, PING and later CRYPTO frames to the one at offset 0
            frame_type = buf.pull_varint()
            if frame_type == _CRYPTO_FRAME:
                offset = buf.pull_varint()
                data = buf.pull_bytes(buf.pull_varint())
                if offset == 0:
                    break
            elif frame_type not in (0x00, 0x01):
                return None
        if len(data) < 4 or data[0] != _CLIENT_HELLO:
            return None
    except DecodeError:
        return None
    return _transport_parameters_extension(bytes(data))


def _transport_parameters_extension(data: bytes) -> bytes | None:
    """quic_transport_parameters of a ClientHello message (type and length first), or None
    when it is truncated or malformed. Plain indexing: it runs on every new connection,
    before the ServerHello."""
    end = 4 + int.from_bytes(data[1:4], "big")
    if len(data) < end:
        return None
    data = data[:end]
    pos = 4 + 2 + 32  # legacy_version, random
    try:
        pos += 1 + data[pos]  # legacy_session_id
        pos += 2 + (data[pos] << 8 | data[pos + 1])  # cipher_suites
        pos += 1 + data[pos]  # legacy_compression_methods
        ext_end = pos + 2 + (data[pos] << 8 | data[pos + 1])
    except IndexError:
        return None
    pos += 2
    if ext_end > end:
        return None
    while pos + 4 <= ext_end:
        ext_type = data[pos] << 8 | data[pos + 1]
        ext_len = data[pos + 2] << 8 | data[pos + 3]
        pos += 4
        if pos + ext_len > ext_end:
            return None
        if ext_type == _QUIC_TRANSPORT_PARAMETERS:
            return data[pos : pos + ext_len]
        pos += ext_len
    return None


def _version_information(raw: bytes) -> VersionInformation | None:
    """The version_information parameter of encoded transport parameters (no other checks:
    the handshake decodes and validates them all later)."""
    value = find_parameter(raw, _VERSION_INFORMATION)
    return None if value is None else VersionInformation.decode(value)


def choose_version(
    original: int, client_params: bytes | None, preferences: Sequence[int] | None = None
) -> int:
    """The version a server answers in: its most preferred version among those the client
    listed as available, or (``preferences`` None) the client's most preferred version the
    server supports; ``original`` when the client offered nothing else."""
    if client_params is None:
        return original
    try:
        info = _version_information(client_params)
    except DecodeError:
        return original
    if info is None or info.chosen_version != original:
        return original  # the handshake rejects a mismatch later; do not switch on it
    if preferences is None:
        order = [v for v in info.available_versions if v in SUPPORTED_VERSIONS]
        return order[0] if order else original
    offered = set(info.available_versions) | {original}
    for version in preferences:
        if version in offered and version in SUPPORTED_VERSIONS:
            return version
    return original


def version_information(chosen: int, available: Sequence[int]) -> VersionInformation:
    """Our version_information: ``available`` in preference order, always with ``chosen``."""
    versions = list(available) if chosen in available else [chosen, *available]
    return VersionInformation(chosen, versions)
