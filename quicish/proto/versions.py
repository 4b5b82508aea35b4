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
from ..wire import frames as F
from ..wire.buffer import Buffer
from ..wire.packet import QUIC_V1, QUIC_V2, PacketType
from ..wire.transport_params import TransportParameters, VersionInformation

VERSION_NEGOTIATION_ERROR = 0x11  # RFC 9368 section 10.2
DEFAULT_VERSIONS = (QUIC_V1, QUIC_V2)
_CLIENT_HELLO = 1
_QUIC_TRANSPORT_PARAMETERS = 0x39


def client_hello_transport_parameters(payload: bytes) -> bytes | None:
    """The client's transport parameters from the ClientHello at the start of an Initial
    packet's frames, or None when the ClientHello does not fit in this packet."""
    try:
        frames = F.decode_frames(payload, PacketType.INITIAL)
    except DecodeError:
        return None
    data = b""
    for frame in frames:
        if isinstance(frame, F.CryptoFrame) and frame.offset == 0:
            data = bytes(frame.data)
            break
    if len(data) < 4 or data[0] != _CLIENT_HELLO:
        return None
    length = int.from_bytes(data[1:4], "big")
    if len(data) < 4 + length:
        return None
    try:
        buf = Buffer(data[4 : 4 + length])
        buf.pull_bytes(2 + 32)  # legacy_version, random
        buf.pull_bytes(buf.pull_uint8())  # legacy_session_id
        buf.pull_bytes(buf.pull_uint16())  # cipher_suites
        buf.pull_bytes(buf.pull_uint8())  # legacy_compression_methods
        extensions = Buffer(buf.pull_bytes(buf.pull_uint16()))
        while not extensions.eof():
            ext_type = extensions.pull_uint16()
            ext_data = extensions.pull_bytes(extensions.pull_uint16())
            if ext_type == _QUIC_TRANSPORT_PARAMETERS:
                return bytes(ext_data)
    except DecodeError:
        return None
    return None


def choose_version(
    original: int, client_params: bytes | None, preferences: Sequence[int] | None = None
) -> int:
    """The version a server answers in: its most preferred version among those the client
    listed as available, or (``preferences`` None) the client's most preferred version the
    server supports; ``original`` when the client offered nothing else."""
    if client_params is None:
        return original
    try:
        params = TransportParameters.decode(client_params, from_server=False)
    except DecodeError:
        return original
    info = params.version_information
    if info is None or info.chosen_version != original:
        return original  # the handshake rejects a mismatch later; do not switch on it
    if preferences is None:
        order = [v for v in info.available_versions if v in DEFAULT_VERSIONS]
        return order[0] if order else original
    offered = set(info.available_versions) | {original}
    for version in preferences:
        if version in offered and version in DEFAULT_VERSIONS:
            return version
    return original


def version_information(chosen: int, available: Sequence[int]) -> VersionInformation:
    """Our version_information: ``available`` in preference order, always with ``chosen``."""
    versions = list(available) if chosen in available else [chosen, *available]
    return VersionInformation(chosen, versions)
