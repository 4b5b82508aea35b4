"""Fuzzing: every handshake message and extension decoder, and both engines fed mutated
messages, only ever raise CryptoError/ProtocolError (never IndexError, ValueError, ... and
never internal_error); encoders and decoders round-trip."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tls_support import client_engine, pump, server_engine

from fuzz.tls import DECODERS, built_samples  # one table for the fuzzer and these tests
from quicish.errors import ConfigError, CryptoError, ProtocolError
from quicish.tls import Epoch, SessionTicket, TicketKeys
from quicish.tls import messages as msg
from quicish.tls.alerts import Alert
from quicish.tls.tickets import TicketContents

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENGINE_FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

DECODE_ALERTS = {Alert.DECODE_ERROR, Alert.ILLEGAL_PARAMETER, Alert.MISSING_EXTENSION}


def _samples() -> dict[str, bytes]:
    """Valid encodings of every message, taken from a real handshake plus a few built here."""
    client, server = client_engine(), server_engine()
    client.start(0.0)
    trace = pump(client, server)
    found: dict[str, bytes] = {}
    for _, flight in trace.to_server + trace.to_client:
        pos = 0
        while pos < len(flight):
            length = int.from_bytes(flight[pos + 1 : pos + 4], "big")
            found[msg.message_name(flight[pos])] = flight[pos + 4 : pos + 4 + length]
            pos += 4 + length
    psk_hello = msg.decode_client_hello(found["ClientHello"])
    psk_hello.early_data = True
    psk_hello.cookie = b"cookie"
    psk_hello.pre_shared_key = msg.OfferedPsks([(b"ticket", 7), (b"t2", 9)], [bytes(32), bytes(48)])
    found["ClientHello"] = msg.encode_client_hello(psk_hello)
    found.update(built_samples())
    hrr = msg.ServerHello(msg.HRR_RANDOM, 0x1301, supported_version=0x0304, selected_group=23)
    hrr.cookie = b"c" * 20
    found["HelloRetryRequest"] = msg.encode_server_hello(hrr)
    return found


SAMPLES = _samples()


def _decoder_for(name: str) -> Callable[[bytes], Any]:
    if name == "HelloRetryRequest":
        return msg.decode_server_hello
    return DECODERS[name]


def _check_decode(decoder: Callable[[bytes], Any], data: bytes) -> None:
    try:
        decoder(data)
    except CryptoError as exc:
        assert exc.alert in DECODE_ALERTS, exc


Mutation = tuple[str, int, bytes]
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
        st.integers(0, 1 << 16),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=4,
)


def mutate(original: bytes, plan: list[Mutation]) -> bytes:
    """``original`` with a few bytes flipped, set, cut, inserted or deleted. The plan does
    not depend on the data, so examples replay even when the data differ (random keys)."""
    data = bytearray(original)
    for kind, where, extra in plan:
        if not data:
            data += extra
            continue
        pos = where % len(data)
        if kind == "flip":
            data[pos] ^= 1 << (extra[0] % 8)
        elif kind == "set":
            data[pos] = (0x00, 0xFF, 0x01, 0x80, 0x7F)[extra[0] % 5]
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = extra
        else:
            del data[pos : pos + len(extra)]
    return bytes(data)


def test_samples_decode() -> None:
    expected = set(DECODERS) | {"HelloRetryRequest"}
    assert set(SAMPLES) == expected
    for name, data in SAMPLES.items():
        _decoder_for(name)(data)  # valid input decodes without error


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(data=st.binary(max_size=300))
def test_decoder_random_bytes(name: str, data: bytes) -> None:
    _check_decode(DECODERS[name], data)


@pytest.mark.parametrize("name", sorted(set(DECODERS) | {"HelloRetryRequest"}))
@FUZZ
@given(plan=MUTATIONS)
def test_decoder_mutated(name: str, plan: list[Mutation]) -> None:
    _check_decode(_decoder_for(name), mutate(SAMPLES[name], plan))


# ---- round trips ---------------------------------------------------------------------------------
u16 = st.integers(0, 0xFFFF)
opaque = st.binary(min_size=1, max_size=40)


@FUZZ
@given(
    random=st.binary(min_size=32, max_size=32),
    suites=st.lists(u16, min_size=1, max_size=5),
    server_name=st.none() | st.text("abcdefghij.-", min_size=1, max_size=20),
    groups=st.none() | st.lists(u16, min_size=1, max_size=4),
    shares=st.none() | st.lists(st.tuples(u16, opaque), max_size=3, unique_by=lambda s: s[0]),
    alpn=st.none() | st.lists(opaque, min_size=1, max_size=3),
    tp=st.none() | st.binary(max_size=50),
    early=st.booleans(),
    psk=st.none()
    | st.tuples(
        st.lists(st.tuples(opaque, st.integers(0, 2**32 - 1)), min_size=1, max_size=3),
        st.integers(32, 48),
    ),
    unknown=st.lists(
        st.tuples(st.integers(0x100, 0xFEFF), st.binary(max_size=10)),
        max_size=3,
        unique_by=lambda e: e[0],
    ),
)
def test_client_hello_roundtrip(
    random: bytes,
    suites: list[int],
    server_name: str | None,
    groups: list[int] | None,
    shares: list[tuple[int, bytes]] | None,
    alpn: list[bytes] | None,
    tp: bytes | None,
    early: bool,
    psk: tuple[list[tuple[bytes, int]], int] | None,
    unknown: list[tuple[int, bytes]],
) -> None:
    known = {0, 10, 13, 16, 41, 42, 43, 44, 45, 51, 0x39}
    hello = msg.ClientHello(
        random=random,
        cipher_suites=suites,
        server_name=server_name,
        supported_groups=groups,
        key_shares=shares,
        supported_versions=[0x0304],
        alpn_protocols=alpn,
        transport_parameters=tp,
        early_data=early,
        other_extensions=[e for e in unknown if e[0] not in known],
    )
    if psk is not None:
        identities, size = psk
        hello.pre_shared_key = msg.OfferedPsks(identities, [bytes(size)] * len(identities))
    encoded = msg.encode_client_hello(hello)
    decoded = msg.decode_client_hello(encoded)
    if psk is not None:
        assert decoded.pre_shared_key is not None
        assert decoded.pre_shared_key.binders_size == 2 + len(identities) * (1 + psk[1])
        decoded.pre_shared_key.binders_size = 0
    assert decoded == hello
    assert msg.encode_client_hello(decoded) == encoded


@FUZZ
@given(
    lifetime=st.integers(0, 2**32 - 1),
    age_add=st.integers(0, 2**32 - 1),
    nonce=st.binary(max_size=255),
    ticket=st.binary(min_size=1, max_size=500),
    early=st.none() | st.integers(0, 2**32 - 1),
)
def test_new_session_ticket_roundtrip(
    lifetime: int, age_add: int, nonce: bytes, ticket: bytes, early: int | None
) -> None:
    nst = msg.NewSessionTicket(lifetime, age_add, nonce, ticket, early)
    assert msg.decode_new_session_ticket(msg.encode_new_session_ticket(nst)) == nst


@FUZZ
@given(certs=st.lists(st.binary(min_size=1, max_size=100), max_size=4), ctx=st.binary(max_size=10))
def test_certificate_roundtrip(certs: list[bytes], ctx: bytes) -> None:
    cert = msg.Certificate(certs, ctx)
    assert msg.decode_certificate(msg.encode_certificate(cert)) == cert


# ---- tickets from the network --------------------------------------------------------------------
@FUZZ
@given(data=st.binary(max_size=200))
def test_ticket_parsers(data: bytes) -> None:
    TicketContents.decode(data)
    assert TicketKeys().open(data) is None
    with contextlib.suppress(ConfigError):
        SessionTicket.from_bytes(data)


# ---- engines fed mutated messages ----------------------------------------------------------------
def _assert_protocol_failure(exc: ProtocolError) -> None:
    if isinstance(exc, CryptoError):
        assert exc.alert != Alert.INTERNAL_ERROR, exc


@ENGINE_FUZZ
@given(plan=MUTATIONS)
def test_server_engine_mutated_client_hello(plan: list[Mutation]) -> None:
    client = client_engine()
    client.start(0.0)
    ((_, hello),) = client.pop_output()
    bad = mutate(hello, plan)
    server = server_engine()
    try:
        server.receive(Epoch.INITIAL, bad, 0.0)
    except ProtocolError as exc:
        _assert_protocol_failure(exc)


@ENGINE_FUZZ
@given(plan=MUTATIONS, target=st.sampled_from(["initial", "handshake", "client_finished"]))
def test_engines_mutated_flights(plan: list[Mutation], target: str) -> None:
    client, server = client_engine(), server_engine()
    client.start(0.0)
    server.receive(Epoch.INITIAL, client.pop_output()[0][1], 0.0)
    (_, sh), (_, flight) = server.pop_output()
    try:
        if target == "initial":
            client.receive(Epoch.INITIAL, mutate(sh, plan), 0.0)
            return
        client.receive(Epoch.INITIAL, sh, 0.0)
        if target == "handshake":
            client.receive(Epoch.HANDSHAKE, mutate(flight, plan), 0.0)
            return
        client.receive(Epoch.HANDSHAKE, flight, 0.0)
        ((_, finished),) = client.pop_output()
        server.receive(Epoch.HANDSHAKE, mutate(finished, plan), 0.0)
    except ProtocolError as exc:
        _assert_protocol_failure(exc)


@ENGINE_FUZZ
@given(data=st.binary(max_size=200), epoch=st.sampled_from(list(Epoch)))
def test_engines_random_bytes(data: bytes, epoch: Epoch) -> None:
    for engine in (server_engine(), client_engine()):
        engine.start(0.0)
        try:
            engine.receive(epoch, data, 0.0)
        except ProtocolError as exc:
            _assert_protocol_failure(exc)
