"""Transport parameters target: ``TransportParameters.decode`` from either side.

Input: one selector byte (bit 0: the parameters come from the server), then the encoded
parameters. Acceptable: parameters that re-encode and decode to equal parameters, or
ProtocolError with TRANSPORT_PARAMETER_ERROR.
"""

from __future__ import annotations

from collections.abc import Iterator

from quicish.errors import ErrorCode, ProtocolError
from quicish.wire.packet import QUIC_V1, QUIC_V2
from quicish.wire.transport_params import (
    PreferredAddress,
    TransportParameters,
    VersionInformation,
)

from .common import wire_inputs


def one_input(data: bytes) -> None:
    if not data:
        return
    from_server = bool(data[0] & 1)
    try:
        params = TransportParameters.decode(data[1:], from_server)
    except ProtocolError as exc:
        assert exc.code == ErrorCode.TRANSPORT_PARAMETER_ERROR, exc
        return
    again = TransportParameters.decode(params.encode(), from_server)
    assert again == params, f"round trip: {params!r} -> {again!r}"


def encode(from_server: bool, params: bytes) -> bytes:
    """An input of this target."""
    return bytes((int(from_server),)) + params


#: Every parameter set (a server's), and a small client's: the seeds, and the samples
#: tests/test_wire_fuzz.py mutates.
FULL_SAMPLE = TransportParameters(
    original_destination_connection_id=b"odcid123",
    max_idle_timeout=30000,
    stateless_reset_token=bytes(range(16)),
    max_udp_payload_size=1500,
    initial_max_data=1 << 20,
    initial_max_stream_data_bidi_local=1 << 18,
    initial_max_stream_data_bidi_remote=1 << 18,
    initial_max_stream_data_uni=1 << 18,
    initial_max_streams_bidi=100,
    initial_max_streams_uni=3,
    ack_delay_exponent=5,
    max_ack_delay=40,
    disable_active_migration=True,
    preferred_address=PreferredAddress(("1.2.3.4", 443), ("::1", 443), b"cid", bytes(16)),
    active_connection_id_limit=4,
    initial_source_connection_id=b"iscid",
    retry_source_connection_id=b"rscid",
    max_datagram_frame_size=1200,
    version_information=VersionInformation(QUIC_V1, [QUIC_V1, QUIC_V2]),
    grease_quic_bit=True,
    unknown={27: b"grease"},
)
CLIENT_SAMPLE = TransportParameters(
    initial_source_connection_id=b"", initial_max_data=10, max_idle_timeout=5000,
    version_information=VersionInformation(QUIC_V1, [QUIC_V1]),
)  # fmt: skip


def seeds() -> Iterator[tuple[str, bytes]]:
    yield "seed-server-full", encode(True, FULL_SAMPLE.encode())
    yield "seed-client", encode(False, CLIENT_SAMPLE.encode())


def from_wire() -> Iterator[tuple[str, bytes]]:
    """Inputs made from the ``tests/corpus/wire`` regression files."""
    for name, meta, data in wire_inputs(("tp_client", "tp_server")):
        yield f"wire-{name}", encode(meta["decoder"] == "tp_server", data)
