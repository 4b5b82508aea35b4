"""QPACK (RFC 9204) through ``pylsqpack``: one encoder and one decoder per connection, their
errors mapped to the QPACK error codes, and blocked header blocks waited for."""

from __future__ import annotations

import asyncio

from pylsqpack import (
    Decoder,
    DecoderStreamError,
    DecompressionFailed,
    Encoder,
    EncoderStreamError,
    StreamBlocked,
)

from .errors import H3Error, H3ErrorCode

Headers = list[tuple[bytes, bytes]]


class Qpack:
    """The connection's QPACK state. ``encoder_out``/``decoder_out`` collect the bytes to
    write on our encoder and decoder streams; the owner flushes them."""

    def __init__(self, max_table_capacity: int, blocked_streams: int) -> None:
        self.max_table_capacity = max_table_capacity
        self.blocked_streams = blocked_streams
        self._decoder = Decoder(max_table_capacity, blocked_streams)
        self._encoder = Encoder()
        self._blocked: dict[int, asyncio.Future[None]] = {}
        self.encoder_out = bytearray()
        self.decoder_out = bytearray()

    def apply_peer_settings(self, max_table_capacity: int, blocked_streams: int) -> None:
        self.encoder_out += self._encoder.apply_settings(max_table_capacity, blocked_streams)

    def encode(self, stream_id: int, headers: Headers) -> bytes:
        """A HEADERS frame payload (encoder stream bytes go to ``encoder_out``)."""
        encoder_bytes, block = self._encoder.encode(stream_id, headers)
        self.encoder_out += encoder_bytes
        return bytes(block)

    def decode_now(self, stream_id: int, block: bytes) -> Headers | None:
        """The field lines of a header block, or None when it is blocked on table updates
        (``resume`` once the encoder stream unblocked it)."""
        try:
            out, headers = self._decoder.feed_header(stream_id, block)
        except StreamBlocked:
            return None
        except DecompressionFailed as exc:
            raise H3Error(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, str(exc)) from exc
        self.decoder_out += out
        return headers

    def resume(self, stream_id: int) -> Headers:
        try:
            out, headers = self._decoder.resume_header(stream_id)
        except DecompressionFailed as exc:
            raise H3Error(H3ErrorCode.QPACK_DECOMPRESSION_FAILED, str(exc)) from exc
        self.decoder_out += out
        return headers

    async def decode(self, stream_id: int, block: bytes) -> Headers:
        """The field lines of a header block, waiting while it is blocked on table updates."""
        headers = self.decode_now(stream_id, block)
        if headers is not None:
            return headers
        waiter = asyncio.get_running_loop().create_future()
        self._blocked[stream_id] = waiter
        try:
            await waiter
        finally:
            self._blocked.pop(stream_id, None)
        return self.resume(stream_id)

    def feed_encoder_stream(self, data: bytes) -> None:
        """Bytes of the peer's encoder stream; wakes header blocks they unblock."""
        try:
            unblocked = self._decoder.feed_encoder(data)
        except EncoderStreamError as exc:
            raise H3Error(H3ErrorCode.QPACK_ENCODER_STREAM_ERROR, str(exc)) from exc
        for stream_id in unblocked:
            waiter = self._blocked.get(stream_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def feed_decoder_stream(self, data: bytes) -> None:
        """Bytes of the peer's decoder stream (acknowledgements for our encoder)."""
        try:
            self._encoder.feed_decoder(data)
        except DecoderStreamError as exc:
            raise H3Error(H3ErrorCode.QPACK_DECODER_STREAM_ERROR, str(exc)) from exc

    def cancel_stream(self, stream_id: int) -> None:
        """A request stream was abandoned: tell the peer's encoder (Stream Cancellation)."""
        if self.max_table_capacity:
            self.decoder_out += self._decoder.cancel_stream(stream_id)
        waiter = self._blocked.get(stream_id)
        if waiter is not None and not waiter.done():
            waiter.cancel()

    def fail_blocked(self, exc: BaseException) -> None:
        """The connection ended: header blocks still waiting fail with ``exc``."""
        for waiter in self._blocked.values():
            if not waiter.done():
                waiter.set_exception(exc)
