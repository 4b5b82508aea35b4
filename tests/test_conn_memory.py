"""Memory of an idle connection (issue 19): what an established server connection no longer
holds (handshake keys, CRYPTO buffers, the TLS engine, libcrypto contexts nothing uses,
readers and scheduler queues of finished streams), and a bound on the Python allocations
per idle server connection of the sans-IO engine (tracemalloc bytes: a count, not a time)."""

from __future__ import annotations

import asyncio
import ctypes
import gc
from typing import Any

import pytest
from aio_support import pair, timed
from pairs import connected, make_pair

from benchmarks import bench_conn_memory
from quicish import QuicStreamReader, QuicStreamWriter
from quicish.errors import StreamError
from quicish.native import accelerated
from quicish.proto import cid, packet_space
from quicish.proto.packet_space import APPLICATION, HANDSHAKE, INITIAL
from quicish.simlink import LinkSpec
from quicish.wire.protection import CipherSuite, PacketProtector

# The sans-IO engine's Python allocations per idle server connection, measured at 17.4 KB
# (bench_conn_memory.py; 30.9 KB before issue 19's first round, 20.7 KB before its second).
IDLE_SERVER_BYTES_LIMIT = 18_500

AES256 = CipherSuite.AES_256_GCM_SHA384
C_CIPHER = accelerated.PacketCipher.available()


def _spent_untouched() -> None:
    """The shared stand-ins of discarded spaces are as made: empty."""
    assert not packet_space.SPENT_CRYPTO_SEND.has_pending
    assert packet_space.SPENT_CRYPTO_SEND.next_offset == 0
    assert len(packet_space.SPENT_RANGES) == 0
    assert not cid.NO_SEQUENCES


@pytest.mark.parametrize("loss", [0.0, 0.2])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_idle_server_holds_no_handshake_state(loss: float, seed: int) -> None:
    """After confirmation (with losses, duplicates and reordering too: Initial and
    Handshake packets arriving after the discard), the server holds no Initial or Handshake
    keys, sent CRYPTO data or ACK ranges of its own, and no TLS engine; the
    shared stand-ins stay empty, and the connection works on."""
    link = LinkSpec(delay=0.005, loss=loss, duplicate=loss / 2, reorder=loss / 2)
    net, _c, _s = make_pair(link=link, seed=seed)
    connected(net, timeout=30.0)
    end = net.now + 1.0
    net.run_until(lambda: net.now >= end, timeout=2.0)  # (late packets, probes)
    server = net.server
    spaces = server._spaces
    for index in (INITIAL, HANDSHAKE):
        space = spaces[index]
        assert space.discarded and space.rx is None and space.tx is None
        assert space.crypto_send is packet_space.SPENT_CRYPTO_SEND
        assert space.received is packet_space.SPENT_RANGES
    assert spaces[APPLICATION].crypto_send is not packet_space.SPENT_CRYPTO_SEND
    assert server._handshake.tls is None and server._handshake.tls_released
    assert server._peer_cids.reserved is cid.NO_SEQUENCES  # (nothing retired or reserved)
    _spent_untouched()
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, b"ping", end_stream=True)
    got = bytearray()

    def done() -> bool:
        try:
            data, _fin = server.read_stream(sid)
        except StreamError:  # (not arrived yet)
            return False
        got.extend(data)
        return bytes(got) == b"ping"

    assert net.run_until(done, timeout=30.0)
    _spent_untouched()


@pytest.mark.skipif(not C_CIPHER, reason="the C packet cipher is not available")
def test_key_schedule_on_c_path_makes_no_python_contexts() -> None:
    """The next generation of a key (prepared ahead of a key update) shares the hp key
    without building cryptography's AEAD or AES-ECB objects nothing would use."""
    for suite, secret_len in ((CipherSuite.AES_128_GCM_SHA256, 32), (AES256, 48)):
        gen0 = PacketProtector.from_secret(suite, bytes(range(secret_len)))
        gen1 = gen0.next_generation()
        gen2 = gen1.next_generation()
        for gen in (gen0, gen1, gen2):
            assert gen.accelerated
            assert gen._aead is None and gen._hp is None
        assert gen2.hp is gen0.hp  # made at first need, shared by the generations


def _has_mallinfo2() -> bool:
    """glibc's malloc statistics are there and see malloc (not under a sanitizer's own
    allocator, as in ``make sanitize``)."""
    try:
        before = bench_conn_memory.malloc_in_use()
    except (OSError, AttributeError):
        return False
    block = ctypes.create_string_buffer(1 << 20)
    seen = bench_conn_memory.malloc_in_use() - before >= len(block)
    del block
    return seen


@pytest.mark.skipif(not C_CIPHER, reason="the C packet cipher is not available")
@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc's malloc and mallinfo2")
def test_packet_cipher_contexts_made_at_first_use() -> None:
    """A PacketCipher keeps its keys and makes each libcrypto context at its first use:
    none for a key never used, the encrypt and hp contexts for a sealing key, the decrypt
    one only once it opens (three made up front were ~3 KB per key with OpenSSL 3)."""
    n = 300
    key, iv, hp = bytes(range(16)), bytes(12), bytes(range(16, 32))
    header, payload = bytes([0x40, 0, 0, 0, 1]), bytes(40)
    cipher = accelerated.PacketCipher
    cipher(key, iv, hp).seal(header, payload, 1)  # (libcrypto's own first-use setup)
    gc.collect()
    base = bench_conn_memory.malloc_in_use()
    ciphers = [cipher(key, iv, hp) for _ in range(n)]
    unused = (bench_conn_memory.malloc_in_use() - base) / n
    sealed = [c.seal(header, payload, 1) for c in ciphers]
    sealing = (bench_conn_memory.malloc_in_use() - base) / n - unused
    for c, packet in zip(ciphers, sealed, strict=True):
        opened = c.open(packet, len(header) - 1, 0)
        assert opened is not None and opened[1] == payload
    opening = (bench_conn_memory.malloc_in_use() - base) / n - unused - sealing
    assert unused < 200, unused  # the keys live in the object (pymalloc), no contexts
    assert sealing > 5 * unused + 500, (unused, sealing)  # the encrypt and hp contexts now
    assert opening > 0.3 * sealing, (sealing, opening)  # the decrypt one only at open


def test_idle_server_python_bytes_bounded() -> None:
    """tracemalloc bytes per idle server connection of the sans-IO engine (clients gone;
    the config and ServerContext shared, as in a server) stay under the bound."""
    per = bench_conn_memory.measure(count=30, top=0)
    assert 8_000 < per < IDLE_SERVER_BYTES_LIMIT, per


@timed()
async def test_finished_streams_leave_no_reader_or_queue() -> None:
    """A server connection that answered streams to their end keeps no reader of them
    (readers were kept for the connection's life), no empty scheduler FIFO, no empty task
    set and one future for both handshake stages."""
    conns: list[Any] = []

    async def answer(reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        data = await reader.read()
        writer.write(data)
        writer.write_eof()

    async with pair(answer, on_connection=conns.append) as (_server, client):
        for i in range(20):
            reader, writer = await client.open_stream()
            writer.write(b"x" * (i + 1))
            writer.write_eof()
            assert await reader.read() == b"x" * (i + 1)
        server_conn = conns[0]
        for _ in range(100):  # the last FIN's acknowledgement
            if not server_conn._proto._streams._queues:
                break
            await asyncio.sleep(0.01)
        assert server_conn._readers == {}
        assert server_conn._tasks is None  # (the handlers' tasks are done)
        assert server_conn._confirmed is server_conn._handshake_done  # one done future
        assert server_conn._proto._streams._queues == {}
        assert server_conn._proto._streams._priorities == ()
