"""Frames as qlog ``QuicFrame`` objects (draft-ietf-quic-qlog-quic-events-13 section 8.13).

:func:`frame_to_qlog` turns any frame of :mod:`quicish.wire.frames` into its qlog dict. The
small builders (:func:`stream_frame`, :func:`ack_frame`, :func:`crypto_frame`) make the same
dicts from plain numbers, for callers that never built a frame object (the engine's bulk send
path records ranges, not frames). Lengths go in ``raw.length`` / ``raw.payload_length`` as
the draft asks; times in milliseconds; byte strings as lowercase hex.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..errors import ErrorCode
from ..wire import frames as f
from .schema import TRANSPORT_ERROR_NAMES

QlogDict = dict[str, Any]


# ---- builders from plain values --------------------------------------------------------------
def stream_frame(stream_id: int, offset: int, length: int, fin: bool = False) -> QlogDict:
    """A STREAM frame carrying ``length`` bytes at ``offset``."""
    return {
        "frame_type": "stream",
        "stream_id": stream_id,
        "offset": offset,
        "fin": fin,
        "raw": {"length": length},
    }


def crypto_frame(offset: int, length: int) -> QlogDict:
    """A CRYPTO frame (``raw.length`` holds the data length, as the draft requires)."""
    return {"frame_type": "crypto", "offset": offset, "raw": {"length": length}}


def ack_ranges(ranges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Half-open ``(start, stop)`` ranges as qlog AckRanges: ``[n]`` for one packet,
    ``[first, last]`` (inclusive) otherwise."""
    return [[start] if stop - start == 1 else [start, stop - 1] for start, stop in ranges]


def ack_frame(
    ranges: Iterable[tuple[int, int]],
    ack_delay_ms: float | None = None,
    ecn: tuple[int, int, int] | None = None,
) -> QlogDict:
    """An ACK frame; ``ranges`` half-open ``(start, stop)``; ``ecn`` (ECT0, ECT1, CE)."""
    out: QlogDict = {"frame_type": "ack", "acked_ranges": ack_ranges(ranges)}
    if ack_delay_ms is not None:
        out["ack_delay"] = ack_delay_ms
    if ecn is not None:
        out["ect0"], out["ect1"], out["ce"] = ecn
    return out


def transport_error(code: int) -> QlogDict:
    """``{"error": name}`` for a transport error code; CRYPTO_ERROR codes as
    ``crypto_error_0x1NN``; anything else ``{"error": "unknown", "error_code": code}``."""
    name = TRANSPORT_ERROR_NAMES.get(code)
    if name is not None:
        return {"error": name}
    if ErrorCode.CRYPTO_ERROR <= code <= 0x1FF:
        return {"error": f"crypto_error_{code:#05x}"}
    return {"error": "unknown", "error_code": code}


def application_error(code: int) -> QlogDict:
    """Application error codes have no names in the QUIC schema: ``unknown`` + the code."""
    return {"error": "unknown", "error_code": code}


def connection_close_frame(
    error_code: int, reason: str = "", frame_type: int | None = None, application: bool = False
) -> QlogDict:
    """A CONNECTION_CLOSE frame (0x1c transport, 0x1d application)."""
    out: QlogDict = {
        "frame_type": "connection_close",
        "error_space": "application" if application else "transport",
    }
    out.update(application_error(error_code) if application else transport_error(error_code))
    if reason:
        out["reason"] = reason
    if not application and frame_type is not None:
        out["trigger_frame_type"] = frame_type
    return out


# ---- from wire frame objects -----------------------------------------------------------------
def _padding(fr: f.PaddingFrame, _: int) -> QlogDict:
    return {"frame_type": "padding", "raw": {"length": fr.length, "payload_length": fr.length}}


def _ping(fr: f.PingFrame, _: int) -> QlogDict:
    return {"frame_type": "ping"}


def _ack(fr: f.AckFrame, exponent: int) -> QlogDict:
    return ack_frame(fr.ranges, fr.delay * (1 << exponent) / 1000.0, fr.ecn)


def _reset(fr: f.ResetStreamFrame, _: int) -> QlogDict:
    out: QlogDict = {"frame_type": "reset_stream", "stream_id": fr.stream_id}
    out.update(application_error(fr.error_code))
    out["final_size"] = fr.final_size
    return out


def _stop(fr: f.StopSendingFrame, _: int) -> QlogDict:
    out: QlogDict = {"frame_type": "stop_sending", "stream_id": fr.stream_id}
    out.update(application_error(fr.error_code))
    return out


def _crypto(fr: f.CryptoFrame, _: int) -> QlogDict:
    return crypto_frame(fr.offset, len(fr.data))


def _new_token(fr: f.NewTokenFrame, _: int) -> QlogDict:
    return {
        "frame_type": "new_token",
        "token": {"type": "resumption", "raw": {"length": len(fr.token), "data": fr.token.hex()}},
    }


def _stream(fr: f.StreamFrame, _: int) -> QlogDict:
    return stream_frame(fr.stream_id, fr.offset, len(fr.data), fr.fin)


def _max_data(fr: f.MaxDataFrame, _: int) -> QlogDict:
    return {"frame_type": "max_data", "maximum": fr.maximum}


def _max_stream_data(fr: f.MaxStreamDataFrame, _: int) -> QlogDict:
    return {"frame_type": "max_stream_data", "stream_id": fr.stream_id, "maximum": fr.maximum}


def _stream_type(bidi: bool) -> str:
    return "bidirectional" if bidi else "unidirectional"


def _max_streams(fr: f.MaxStreamsFrame, _: int) -> QlogDict:
    return {"frame_type": "max_streams", "stream_type": _stream_type(fr.bidi), "maximum": fr.limit}


def _data_blocked(fr: f.DataBlockedFrame, _: int) -> QlogDict:
    return {"frame_type": "data_blocked", "limit": fr.limit}


def _stream_data_blocked(fr: f.StreamDataBlockedFrame, _: int) -> QlogDict:
    return {"frame_type": "stream_data_blocked", "stream_id": fr.stream_id, "limit": fr.limit}


def _streams_blocked(fr: f.StreamsBlockedFrame, _: int) -> QlogDict:
    return {
        "frame_type": "streams_blocked",
        "stream_type": _stream_type(fr.bidi),
        "limit": fr.limit,
    }


def _new_cid(fr: f.NewConnectionIdFrame, _: int) -> QlogDict:
    return {
        "frame_type": "new_connection_id",
        "sequence_number": fr.seq,
        "retire_prior_to": fr.retire_prior_to,
        "connection_id_length": len(fr.cid),
        "connection_id": fr.cid.hex(),
        "stateless_reset_token": fr.reset_token.hex(),
    }


def _retire_cid(fr: f.RetireConnectionIdFrame, _: int) -> QlogDict:
    return {"frame_type": "retire_connection_id", "sequence_number": fr.seq}


def _path_challenge(fr: f.PathChallengeFrame, _: int) -> QlogDict:
    return {"frame_type": "path_challenge", "data": fr.data.hex()}


def _path_response(fr: f.PathResponseFrame, _: int) -> QlogDict:
    return {"frame_type": "path_response", "data": fr.data.hex()}


def _close(fr: f.ConnectionCloseFrame, _: int) -> QlogDict:
    return connection_close_frame(fr.error_code, fr.reason, fr.frame_type, fr.application)


def _handshake_done(fr: f.HandshakeDoneFrame, _: int) -> QlogDict:
    return {"frame_type": "handshake_done"}


def _datagram(fr: f.DatagramFrame, _: int) -> QlogDict:
    return {"frame_type": "datagram", "raw": {"length": len(fr.data)}}


def _ack_frequency(fr: f.AckFrequencyFrame, _: int) -> QlogDict:
    """draft-ietf-quic-ack-frequency's frame (the delay in milliseconds, as qlog's times)."""
    return {
        "frame_type": "ack_frequency",
        "sequence_number": fr.sequence,
        "ack_eliciting_threshold": fr.ack_eliciting_threshold,
        "request_max_ack_delay": fr.request_max_ack_delay / 1000.0,
        "reordering_threshold": fr.reordering_threshold,
    }


def _immediate_ack(fr: f.ImmediateAckFrame, _: int) -> QlogDict:
    return {"frame_type": "immediate_ack"}


_SERIALIZERS: dict[type, Callable[[Any, int], QlogDict]] = {
    f.PaddingFrame: _padding,
    f.PingFrame: _ping,
    f.AckFrame: _ack,
    f.ResetStreamFrame: _reset,
    f.StopSendingFrame: _stop,
    f.CryptoFrame: _crypto,
    f.NewTokenFrame: _new_token,
    f.StreamFrame: _stream,
    f.MaxDataFrame: _max_data,
    f.MaxStreamDataFrame: _max_stream_data,
    f.MaxStreamsFrame: _max_streams,
    f.DataBlockedFrame: _data_blocked,
    f.StreamDataBlockedFrame: _stream_data_blocked,
    f.StreamsBlockedFrame: _streams_blocked,
    f.NewConnectionIdFrame: _new_cid,
    f.RetireConnectionIdFrame: _retire_cid,
    f.PathChallengeFrame: _path_challenge,
    f.PathResponseFrame: _path_response,
    f.ConnectionCloseFrame: _close,
    f.HandshakeDoneFrame: _handshake_done,
    f.DatagramFrame: _datagram,
    f.AckFrequencyFrame: _ack_frequency,
    f.ImmediateAckFrame: _immediate_ack,
}


def frame_to_qlog(frame: f.Frame, ack_delay_exponent: int = 3) -> QlogDict:
    """The qlog ``QuicFrame`` of ``frame``. ``ack_delay_exponent`` is the sender's (it scales
    an ACK frame's encoded delay into milliseconds)."""
    return _SERIALIZERS[type(frame)](frame, ack_delay_exponent)


def frames_to_qlog(frames: Sequence[f.Frame], ack_delay_exponent: int = 3) -> list[QlogDict]:
    """:func:`frame_to_qlog` of each frame, in order."""
    return [_SERIALIZERS[type(fr)](fr, ack_delay_exponent) for fr in frames]


def unknown_frame(frame_type: int, length: int | None = None) -> QlogDict:
    """A frame of a type this schema does not know."""
    out: QlogDict = {"frame_type": "unknown", "frame_type_bytes": frame_type}
    if length is not None:
        out["raw"] = {"length": length}
    return out
