"""Exceptions that fit asyncio habits: a rejected certificate raises CertificateError with a
one-line reason; connection-level errors are ConnectionErrors (so OSErrors)."""

from __future__ import annotations

import pytest
from aio_support import echo, timed
from support import cert_files, client_config, server_config

import quicish
from quicish.errors import CertificateError, ConnectionClosedError, QuicError
from quicish.tls.certs import generate_self_signed


def test_connection_errors_are_oserrors() -> None:
    assert issubclass(ConnectionClosedError, ConnectionError)
    assert issubclass(CertificateError, ConnectionError)
    assert issubclass(CertificateError, QuicError)


async def _connect_error(**client_kw: object) -> BaseException:
    server = await quicish.serve("127.0.0.1", 0, config=server_config(), on_stream=echo)
    try:
        with pytest.raises(BaseException) as info:
            await quicish.connect("127.0.0.1", server.address[1], config=client_config(**client_kw))
        return info.value
    finally:
        server.close()
        await server.wait_closed()


@timed()
async def test_wrong_pin_raises_certificate_error() -> None:
    exc = await _connect_error(pin="00" * 32)
    assert isinstance(exc, CertificateError), repr(exc)
    assert isinstance(exc, ConnectionError)
    assert "pin mismatch" in str(exc)
    assert "\n" not in str(exc)


@timed()
async def test_unknown_ca_raises_certificate_error_without_internals() -> None:
    other_ca, _ = generate_self_signed(("localhost",))
    exc = await _connect_error(pin=None, verify=other_ca)
    assert isinstance(exc, CertificateError), repr(exc)
    assert "unknown CA" in str(exc)
    assert "candidates" not in str(exc)


@timed()
async def test_name_mismatch_raises_certificate_error() -> None:
    cert, _, _ = cert_files()
    exc = await _connect_error(pin=None, verify=cert, server_name="example.com")
    assert isinstance(exc, CertificateError), repr(exc)
    assert "name mismatch" in str(exc) and "example.com" in str(exc)


@timed()
async def test_except_connection_error_catches_a_refused_handshake() -> None:
    """Existing ``except ConnectionError`` blocks catch quicish's connection failures."""
    exc = await _connect_error(alpn=["nothing-the-server-speaks"])
    assert isinstance(exc, ConnectionError), repr(exc)
    assert isinstance(exc, ConnectionClosedError) and exc.by_peer


@timed()
async def test_lifecycle_is_logged_at_info_with_the_connection_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``quicish -v`` shows the handshake (version, cipher, ALPN, RTT) and the close with its
    reason and counters, each line carrying the connection ID."""
    import logging

    from aio_support import pair

    caplog.set_level(logging.INFO, logger="quicish.connection")
    async with pair() as (_, conn):
        cid = conn.original_dcid.hex()
        reader, writer = await conn.open_stream()
        writer.write(b"log me")
        writer.write_eof()
        assert await reader.read() == b"log me"
    lines = [r.getMessage() for r in caplog.records if r.name == "quicish.connection"]
    mine = [line for line in lines if line.startswith(f"[{cid}]")]
    assert any(
        "handshake done" in line
        and "version 0x1" in line
        and "TLS_AES_128_GCM_SHA256" in line
        and "ALPN hq-interop" in line
        for line in mine
    ), lines
    assert any("closed by us: code 0x0" in line and "packets sent" in line for line in mine)
