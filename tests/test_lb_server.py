"""A server with ``Config(cid_format=...)`` (QUIC-LB) over real loopback UDP: a recording
tap in front of it and the server's key log let the test read every CID the server gave
out (long-header source CIDs, Retry, NEW_CONNECTION_ID frames) and every CID the client
addressed it by; each must decode to the configured server ID."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from aio_support import echo, echo_once, timed
from support import client_config, server_config

import quicish
from interop.analysis import analyze, parse_keylog
from interop.quicwire import WireError, parse_datagram
from interop.tap import Record, Tap
from quicish.lb import CidFormat, QuicLbConfig, decode

SERVER_ID = bytes.fromhex("5a17")
LB_CONFIG = QuicLbConfig(config_id=2, server_id_length=2, nonce_length=5, key=os.urandom(16))


def _cids_on_the_wire(
    records: list[Record], keylog: Path, cid_length: int, decrypt: bool = True
) -> dict[str, Any]:
    """The server CIDs the tap saw: given out (long headers, Retry, NEW_CONNECTION_ID) and
    addressed to (client -> server packets after the first Initials). ``decrypt``: the
    test's decoder has the keys of the 1-RTT packets (it has not for an aioquic client
    after a Retry, whose second ClientHello is not the one it read)."""
    analysis = analyze(records, parse_keylog(keylog.read_text()))
    assert analysis.conns, "the tap saw no connection"
    given: set[bytes] = set()
    retry: set[bytes] = set()
    for conn in analysis.conns:
        given |= conn.server_cids
        if conn.retry_scid is not None:
            retry.add(conn.retry_scid)
    addressed: set[bytes] = set()
    first_dcids: set[bytes] = set()  # each client's own first DCID (one connection a test)
    for rec in records:
        if not rec.to_server:
            continue
        try:
            packets = parse_datagram(rec.data, cid_length)
        except WireError:
            continue
        for pkt in packets:
            if pkt.kind == "initial" and not first_dcids:
                first_dcids.add(bytes(pkt.dcid))
            if pkt.kind in ("1rtt", "handshake", "initial") and pkt.dcid not in first_dcids:
                addressed.add(bytes(pkt.dcid))
    if decrypt:  # the key log worked: NEW_CONNECTION_ID frames were read
        assert all(conn.decrypted["1rtt"] for conn in analysis.conns)
    return {"given": given, "retry": retry, "addressed": addressed, "first": first_dcids}


def _server_kw(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    return {
        "cid_format": CidFormat(LB_CONFIG, SERVER_ID),
        "keylog_file": str(tmp_path / "keys.log"),
        **kw,
    }


@pytest.mark.parametrize("retry", [False, True])
@timed()
async def test_quicish_client_sees_only_routable_server_cids(tmp_path: Path, retry: bool) -> None:
    config = server_config(**_server_kw(tmp_path, retry=retry))
    server = await quicish.serve("127.0.0.1", 0, config=config, on_stream=echo)
    try:
        with Tap(server.address) as tap:
            async with quicish.connect(
                "127.0.0.1", tap.address[1], config=client_config(active_connection_id_limit=4)
            ) as conn:
                assert await echo_once(conn, b"x" * 50_000) == b"x" * 50_000
                assert len(conn.host_cid) == 8  # a client's own CIDs stay random
                await conn.migrate()  # a new path: a new server CID from NEW_CONNECTION_ID
                assert await echo_once(conn, b"after" * 1000) == b"after" * 1000
            await asyncio.sleep(0.05)
    finally:
        server.close()
        await server.wait_closed()
    seen = _cids_on_the_wire(tap.records, tmp_path / "keys.log", LB_CONFIG.cid_length)
    # The handshake CID and at least the three NEW_CONNECTION_ID CIDs (client limit 4).
    assert len(seen["given"]) >= 4
    assert len(seen["addressed"]) >= 2  # the client used a second CID after migrating
    assert seen["addressed"] <= seen["given"] | seen["retry"]
    assert bool(seen["retry"]) == retry
    assert {len(cid) for cid in seen["first"]} == {8}  # the client's choice, before any
    for cid in seen["given"] | seen["retry"] | seen["addressed"]:
        assert len(cid) == LB_CONFIG.cid_length
        assert cid[0] >> 5 == LB_CONFIG.config_id
        assert decode(cid, LB_CONFIG) == SERVER_ID, cid.hex()
    assert len({cid[1:3] for cid in seen["given"]}) == len(seen["given"])  # encrypted


@pytest.mark.parametrize("retry", [False, True])
@timed()
async def test_aioquic_client_against_a_quic_lb_server(tmp_path: Path, retry: bool) -> None:
    from aioquic_support import aioquic_request

    config = server_config(**_server_kw(tmp_path, retry=retry))
    server = await quicish.serve("127.0.0.1", 0, config=config, on_stream=echo)
    try:
        with Tap(server.address) as tap:
            answer, client, _ = await aioquic_request(tap.address[1], b"hello" * 500)
            assert answer == b"hello" * 500
            # aioquic keeps the CIDs the server gave it: every one routable.
            peer = [c.cid for c in client._quic._peer_cid_available] + [client._quic._peer_cid.cid]
            assert len(peer) >= 2
            assert all(decode(cid, LB_CONFIG) == SERVER_ID for cid in peer)
            await asyncio.sleep(0.05)
    finally:
        server.close()
        await server.wait_closed()
    seen = _cids_on_the_wire(
        tap.records, tmp_path / "keys.log", LB_CONFIG.cid_length, decrypt=not retry
    )
    assert len(seen["given"]) >= (1 if retry else 2)
    assert bool(seen["retry"]) == retry
    assert seen["addressed"] <= seen["given"] | seen["retry"]
    for cid in seen["given"] | seen["retry"] | seen["addressed"]:
        assert decode(cid, LB_CONFIG) == SERVER_ID, cid.hex()


@timed()
async def test_default_server_cids_stay_random_eight_bytes(tmp_path: Path) -> None:
    config = server_config(keylog_file=str(tmp_path / "keys.log"))
    server = await quicish.serve("127.0.0.1", 0, config=config, on_stream=echo)
    try:
        with Tap(server.address) as tap:
            async with quicish.connect("127.0.0.1", tap.address[1], config=client_config()) as conn:
                assert await echo_once(conn, b"y" * 1000) == b"y" * 1000
            await asyncio.sleep(0.05)
    finally:
        server.close()
        await server.wait_closed()
    seen = _cids_on_the_wire(tap.records, tmp_path / "keys.log", 8)
    assert len(seen["given"]) >= 2
    assert {len(cid) for cid in seen["given"]} == {8}


def test_cid_format_must_be_a_format() -> None:
    with pytest.raises(quicish.ConfigError, match="cid_format"):
        quicish.Config(cid_format=LB_CONFIG)  # type: ignore[arg-type]


@timed()
async def test_spent_nonces_stop_new_connection_ids(tmp_path: Path) -> None:
    """Three nonces left: the first connection gets what is left, and once they are spent
    no NEW_CONNECTION_ID carries an unroutable CID; the next connection's one CID (its
    handshake source CID, which it cannot go without) is unroutable, and works."""
    lb = QuicLbConfig(config_id=2, server_id_length=2, nonce_length=4)
    fmt = CidFormat(lb, SERVER_ID)
    fmt._count = fmt._space - 3  # as if 2^32 - 3 CIDs had been issued
    config = server_config(cid_format=fmt, keylog_file=str(tmp_path / "keys.log"))
    server = await quicish.serve("127.0.0.1", 0, config=config, on_stream=echo)
    try:
        with Tap(server.address) as tap:
            for _ in range(2):
                async with quicish.connect(
                    "127.0.0.1", tap.address[1], config=client_config(active_connection_id_limit=4)
                ) as conn:
                    assert await echo_once(conn, b"z" * 20_000) == b"z" * 20_000
                await asyncio.sleep(0.05)
    finally:
        server.close()
        await server.wait_closed()
    assert fmt.exhausted
    analysis = analyze(tap.records, parse_keylog((tmp_path / "keys.log").read_text()))
    assert len(analysis.conns) == 2
    first, second = (conn.server_cids for conn in analysis.conns)
    assert all(decode(cid, lb) == SERVER_ID for cid in first)
    assert 1 <= len(first) <= 3  # what was left of the nonces, not the client's limit of 4
    assert len(second) == 1 and decode(next(iter(second)), lb) is None
