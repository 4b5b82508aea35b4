"""The reason phrase of a CONNECTION_CLOSE we send for a transport error is a fixed short
phrase per error code (issue 15): never the text of the exception behind it, never bytes.
The local ConnectionTerminated keeps the detail."""

from __future__ import annotations

from typing import Any

import pytest
from pairs import Pair, Peer, encode, inject, make_net, raw
from support import patch_method

from quicish.errors import WIRE_REASONS, ErrorCode, wire_reason
from quicish.wire import frames as F

SECRET = b"\x00key"


def _peer_sees(net: Any, culprit: Peer, victim: Peer) -> str:
    """Run until ``culprit`` hears the close; the reason phrase that came over the wire."""
    assert net.run_until(lambda: culprit.terminated is not None, culprit, victim, timeout=2)
    term = culprit.terminated
    assert term is not None and term.by_peer
    return term.reason


def _fixed(reason: str) -> bool:
    return reason in WIRE_REASONS and "\\x" not in reason and "b'" not in reason


def test_decode_error_sends_a_fixed_phrase(pair: Pair) -> None:
    net, c, s = pair
    inject(net.client, net.server, raw(0x0A, 0, 100, tail=b"\x00\xffshort"), net.now)
    s.poll()
    assert s.terminated is not None and s.terminated.error_code == ErrorCode.FRAME_ENCODING_ERROR
    reason = _peer_sees(net, c, s)
    assert _fixed(reason) and reason == wire_reason(ErrorCode.FRAME_ENCODING_ERROR)


def test_protocol_error_detail_stays_local(pair: Pair) -> None:
    net, c, s = pair
    assert net.run_until(lambda: len(net.server._peer_cids.entries) > 1, c, s, timeout=2)
    cid, token = net.server._peer_cids.entries[1]
    inject(
        net.client,
        net.server,
        encode(F.NewConnectionIdFrame(1, 0, bytes(reversed(cid)), token or bytes(16))),
        net.now,
    )
    s.poll()
    assert s.terminated is not None and "reused" in s.terminated.reason  # detail, locally
    reason = _peer_sees(net, c, s)
    assert _fixed(reason) and reason == wire_reason(ErrorCode.PROTOCOL_VIOLATION)


def test_internal_exception_closes_with_internal_error_and_no_text(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a frame handler closes that connection with INTERNAL_ERROR: the exception
    does not escape receive_datagram, and its text does not reach the peer."""
    net, c, s = pair

    def broken(maximum: int) -> bool:
        raise RuntimeError(f"secret {SECRET!r} at {maximum}")

    monkeypatch.setattr(net.server._streams, "__class__", net.server._streams.__class__)
    patch_method(net.server._streams, "on_max_data", broken)
    inject(net.client, net.server, encode(F.MaxDataFrame(1 << 30)), net.now)
    s.poll()
    assert s.terminated is not None and s.terminated.error_code == ErrorCode.INTERNAL_ERROR
    assert "secret" not in s.terminated.reason
    reason = _peer_sees(net, c, s)
    assert _fixed(reason) and reason == wire_reason(ErrorCode.INTERNAL_ERROR)


def test_tls_internal_error_sends_no_exception_text(monkeypatch: pytest.MonkeyPatch) -> None:
    net = make_net(connect=False)
    net.start()
    c, s = Peer(net.client), Peer(net.server)
    tls = net.client._handshake.tls
    assert tls is not None

    def broken(*args: Any) -> None:
        raise ValueError("secret b'\\x13\\x37'")

    monkeypatch.setattr(tls._hs, "_receive", broken)
    assert net.run_until(lambda: s.terminated is not None, c, s, timeout=5)
    assert c.terminated is not None and c.terminated.error_code == ErrorCode.CRYPTO_ERROR + 80
    assert "secret" not in c.terminated.reason
    assert s.terminated is not None and s.terminated.by_peer
    assert _fixed(s.terminated.reason) and "secret" not in s.terminated.reason
    assert s.terminated.reason == wire_reason(ErrorCode.CRYPTO_ERROR + 80)
