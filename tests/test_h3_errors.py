"""HTTP/3 error handling, seen by a raw HTTP/3 peer over loopback UDP: each violation closes
the connection or resets the request stream with the code RFC 9114 / RFC 9204 give it."""

from __future__ import annotations

import pytest
from aio_support import timed
from h3_support import GET_HEADERS, SETTINGS, block, h3_server, headers_frame, raw_peer, reset_code

import quicish.h3 as h3
from quicish.h3 import H3ErrorCode as E
from quicish.h3.frames import FrameType, encode_frame, encode_settings, encode_varint


async def hello(request: h3.Request) -> h3.Response:
    body = await request.body.read()
    return h3.Response(200, body=b"hello " + body)


def frame(kind: int, payload: bytes = b"") -> bytes:
    return encode_frame(kind, payload)


async def close_code_after(control: bytes | None, *uni: tuple[int, bytes]) -> int:
    """Open a control stream starting with ``control`` (None: none) and the unidirectional
    streams ``uni``; the code the server closes the connection with."""
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        if control is not None:
            await peer.control(control)
        for stream_type, payload in uni:
            await peer.uni(stream_type, payload)
        return await peer.close_code()


CONTROL_CASES = [
    ("first frame not SETTINGS", frame(FrameType.GOAWAY, b"\x00"), E.H3_MISSING_SETTINGS),
    ("second SETTINGS", SETTINGS + SETTINGS, E.H3_FRAME_UNEXPECTED),
    ("DATA on control", SETTINGS + frame(FrameType.DATA, b"x"), E.H3_FRAME_UNEXPECTED),
    ("HEADERS on control", SETTINGS + frame(FrameType.HEADERS, b"\0\0"), E.H3_FRAME_UNEXPECTED),
    ("HTTP/2 PING frame", SETTINGS + frame(0x6, bytes(8)), E.H3_FRAME_UNEXPECTED),
    ("truncated SETTINGS pair", frame(FrameType.SETTINGS, b"\x06"), E.H3_FRAME_ERROR),
    ("GOAWAY with trailing bytes", SETTINGS + frame(FrameType.GOAWAY, b"\0\0"), E.H3_FRAME_ERROR),
    ("setting twice", frame(FrameType.SETTINGS, b"\x06\x01\x06\x02"), E.H3_SETTINGS_ERROR),
    ("HTTP/2 setting", frame(FrameType.SETTINGS, b"\x02\x00"), E.H3_SETTINGS_ERROR),
    ("CANCEL_PUSH never promised", SETTINGS + frame(FrameType.CANCEL_PUSH, b"\x00"), E.H3_ID_ERROR),
    ("MAX_PUSH_ID decreasing", SETTINGS + frame(0xD, b"\x05") + frame(0xD, b"\x04"), E.H3_ID_ERROR),
    ("frame over the size limit", SETTINGS + encode_varint(FrameType.GOAWAY)
     + encode_varint(1 << 20), E.H3_EXCESSIVE_LOAD),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "code"), [c[1:] for c in CONTROL_CASES], ids=[c[0] for c in CONTROL_CASES]
)
@timed()
async def test_control_stream_violations_close_with_the_rfc_code(payload: bytes, code: E) -> None:
    assert await close_code_after(payload) == code


@timed()
async def test_second_control_stream_is_a_stream_creation_error() -> None:
    assert await close_code_after(SETTINGS, (0x00, SETTINGS)) == E.H3_STREAM_CREATION_ERROR


@timed()
async def test_second_qpack_encoder_stream_is_a_stream_creation_error() -> None:
    code = await close_code_after(SETTINGS, (0x02, b""), (0x02, b""))
    assert code == E.H3_STREAM_CREATION_ERROR


@timed()
async def test_push_stream_from_a_client_is_a_stream_creation_error() -> None:
    assert await close_code_after(SETTINGS, (0x01, b"\x00")) == E.H3_STREAM_CREATION_ERROR


@timed()
async def test_closing_the_control_stream_is_closed_critical_stream() -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        await peer.uni(0x00, SETTINGS, fin=True)
        assert await peer.close_code() == E.H3_CLOSED_CRITICAL_STREAM


@timed()
async def test_resetting_the_encoder_stream_is_closed_critical_stream() -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        writer = await peer.uni(0x02)
        await peer.control()
        await asyncio_sleep(0.05)  # the type byte arrives first
        writer.reset(0x100)
        assert await peer.close_code() == E.H3_CLOSED_CRITICAL_STREAM


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@timed()
async def test_qpack_encoder_stream_garbage() -> None:
    assert await close_code_after(SETTINGS, (0x02, b"\x05")) == E.QPACK_ENCODER_STREAM_ERROR


@timed()
async def test_qpack_decoder_stream_garbage() -> None:
    assert await close_code_after(SETTINGS, (0x03, b"\x00")) == E.QPACK_DECODER_STREAM_ERROR


@timed()
async def test_undecodable_header_block_is_decompression_failed() -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        await peer.control()
        bad = frame(FrameType.HEADERS, b"\x00\x00\xff\x24")  # static index 99: none
        await peer.request(bad)
        assert await peer.close_code() == E.QPACK_DECOMPRESSION_FAILED


REQUEST_CONNECTION_CASES = [
    ("DATA before HEADERS", frame(FrameType.DATA, b"x") + headers_frame(GET_HEADERS),
     E.H3_FRAME_UNEXPECTED),
    ("SETTINGS on a request", frame(FrameType.SETTINGS), E.H3_FRAME_UNEXPECTED),
    ("GOAWAY on a request", frame(FrameType.GOAWAY, b"\x00"), E.H3_FRAME_UNEXPECTED),
    ("PUSH_PROMISE from a client", frame(FrameType.PUSH_PROMISE, b"\x00\x00\x00"),
     E.H3_FRAME_UNEXPECTED),
    ("HTTP/2 WINDOW_UPDATE", frame(0x8, b"\x00\x00\x00\x01"), E.H3_FRAME_UNEXPECTED),
    ("truncated frame at FIN", headers_frame(GET_HEADERS) + b"\x00\x05ab", E.H3_FRAME_ERROR),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "code"),
    [c[1:] for c in REQUEST_CONNECTION_CASES],
    ids=[c[0] for c in REQUEST_CONNECTION_CASES],
)
@timed()
async def test_request_stream_frame_violations_close_the_connection(
    payload: bytes, code: E
) -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        await peer.control()
        await peer.request(payload)
        assert await peer.close_code() == code


def without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in GET_HEADERS if n != name]


MESSAGE_CASES = [
    ("no :method", without(b":method")),
    ("no :path", without(b":path")),
    ("no :scheme", without(b":scheme")),
    ("duplicate :method", [*GET_HEADERS, (b":method", b"POST")]),
    ("unknown pseudo-header", [*GET_HEADERS, (b":color", b"red")]),
    ("uppercase field name", [*GET_HEADERS, (b"X-Upper", b"1")]),
    ("pseudo-header after a field", [*without(b":path"), (b"x-a", b"1"), (b":path", b"/")]),
    ("response pseudo-header", [*GET_HEADERS, (b":status", b"200")]),
    ("connection-specific field", [*GET_HEADERS, (b"connection", b"close")]),
    (":protocol without CONNECT", [*GET_HEADERS, (b":protocol", b"websocket")]),
    ("extended CONNECT not enabled", [(b":method", b"CONNECT"), *GET_HEADERS[1:],
                                      (b":protocol", b"webtransport")]),
]  # fmt: skip


@pytest.mark.parametrize(
    "headers", [c[1] for c in MESSAGE_CASES], ids=[c[0] for c in MESSAGE_CASES]
)
@timed()
async def test_malformed_requests_reset_the_stream_with_message_error(
    headers: list[tuple[bytes, bytes]],
) -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        await peer.control()
        reader, _ = await peer.request(headers_frame(headers))
        assert await reset_code(reader) == E.H3_MESSAGE_ERROR
        # a stream error only: the connection still serves a good request
        good, _ = await peer.request(headers_frame(GET_HEADERS))
        assert b"hello" in await good.read()


@timed()
async def test_content_length_mismatch_is_message_error() -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        head = [*GET_HEADERS, (b"content-length", b"10")]
        reader, _ = await peer.request(headers_frame(head) + frame(FrameType.DATA, b"abc"))
        assert await reset_code(reader) == E.H3_MESSAGE_ERROR


@timed()
async def test_request_without_headers_is_request_incomplete() -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        reader, _ = await peer.request(frame(0x21, b"grease only"))
        assert await reset_code(reader) == E.H3_REQUEST_INCOMPLETE


@timed()
async def test_oversized_header_section_gets_431() -> None:
    settings = h3.H3Settings(max_field_section_size=1000)
    async with (
        h3_server(hello, settings=settings) as server,
        raw_peer(server.address[1]) as peer,
    ):
        big = [*GET_HEADERS, (b"x-big", b"v" * 2000)]
        reader, _ = await peer.request(headers_frame(big))
        answer = await reader.read()
        assert b"431" in answer  # :status 431 is a literal in the static-table block
        assert b"request header fields too large" in answer
        # far over the limit (the frame itself): the same answer, nothing buffered
        huge = GET_HEADERS + [(f"x-huge-{i}".encode(), b"v" * 10_000) for i in range(10)]
        reader, _ = await peer.request(headers_frame(huge))
        assert b"request header fields too large" in await reader.read()


@timed()
async def test_client_refuses_to_send_headers_over_the_servers_limit() -> None:
    settings = h3.H3Settings(max_field_section_size=1000)
    async with h3_server(hello, settings=settings) as server:
        from h3_support import h3_client_config

        port = server.address[1]
        async with h3.connect("localhost", port, config=h3_client_config()) as client:
            await client.h3.settings_received.wait()
            with pytest.raises(h3.H3ResponseError) as info:
                await client.request("GET", "/", headers=[("x-big", "v" * 2000)])
            assert info.value.code == E.H3_EXCESSIVE_LOAD


@timed()
async def test_large_unknown_frames_are_skipped_not_buffered() -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        big = frame(0x21 + 0x1F * 7, b"g" * 300_000)  # far over every frame limit
        await peer.control(SETTINGS + big + frame(0x1234, b"x" * 100_000))
        reader, _ = await peer.request(big + headers_frame(GET_HEADERS) + big)
        assert (await reader.read()).endswith(b"hello ")
        assert peer.conn.close_error is None


@timed()
async def test_grease_is_ignored() -> None:
    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        await peer.control(SETTINGS[:0] + encode_settings({0x6: 1 << 16, 0x21: 7}) + frame(0x40))
        await peer.uni(0x21 + 0x1F * 3, b"grease stream data")  # unknown type: ignored
        payload = frame(0x21, b"x") + headers_frame(GET_HEADERS) + frame(0x3E, b"yy")
        payload += frame(FrameType.DATA, b"world") + frame(0x21 + 0x1F, b"")
        reader, _ = await peer.request(payload)
        assert (await reader.read()).endswith(b"hello world")
        assert peer.conn.close_error is None


@timed()
async def test_block_helper_is_a_valid_qpack_block() -> None:
    # the helper the other tests rely on: a block our own decoder reads back
    from quicish.h3.qpack import Qpack

    assert await Qpack(0, 0).decode(0, block(GET_HEADERS)) == GET_HEADERS


@timed()
async def test_blocked_header_block_waits_for_the_encoder_stream() -> None:
    """A request whose header block needs dynamic-table inserts not yet received is held
    (RFC 9204 2.1.2), answered once the encoder stream delivers them, and acknowledged."""
    import asyncio

    import pylsqpack

    async with h3_server(hello) as server, raw_peer(server.address[1]) as peer:
        encoder = pylsqpack.Encoder()
        # the server's SETTINGS allow 4096 bytes and 16 blocked streams
        table = encoder.apply_settings(4096, 16)
        headers = [*GET_HEADERS, (b"x-custom", b"a value worth indexing")]
        encoder.encode(100, headers)  # seen once: ls-qpack indexes it the second time
        inserts, header_block = encoder.encode(0, headers)
        assert inserts, "the encoder must insert"
        assert header_block[0] != 0, "the block must reference the dynamic table"
        await peer.control()
        decoder_stream = asyncio.ensure_future(peer.conn.accept_stream())
        reader, _ = await peer.request(frame(FrameType.HEADERS, header_block))
        await asyncio.sleep(0.2)
        assert not reader.at_eof() and reader.bytes_received == 0  # held, not answered
        await peer.uni(0x02, table + inserts)
        assert (await asyncio.wait_for(reader.read(), 5)).endswith(b"hello ")
        # the server's decoder stream says so: Section Acknowledgment for stream 0 (0x80)
        for _ in range(3):  # control, QPACK encoder, QPACK decoder: in any order
            uni_reader, _ = await decoder_stream
            first = await asyncio.wait_for(uni_reader.readexactly(1), 2)
            if first == b"\x03":
                break
            decoder_stream = asyncio.ensure_future(peer.conn.accept_stream())
        assert first == b"\x03"
        instructions = b""
        while 0x80 not in instructions:
            more = await asyncio.wait_for(uni_reader.read(1 << 16), 2)
            assert more, f"decoder stream ended without the acknowledgment: {instructions!r}"
            instructions += more
