"""The ``--workers`` steering program and the shared 0-RTT strike register, in isolation.

The CBPF program runs here in a small interpreter of exactly the instructions it may use
(over crafted short and long headers), and attached to a real ``SO_REUSEPORT`` group,
where the kernel delivers each crafted datagram to the socket the program names. The
strike register is checked in one process and across forked ones."""

from __future__ import annotations

import os
import select
import socket
import sys

import pytest

from quicish.errors import ConfigError
from quicish.lb import CidFormat, QuicLbConfig
from quicish.workers import SharedStrikeRegister
from quicish.workers.steering import (
    Insn,
    attach,
    bind_group,
    pack,
    steering_program,
)
from quicish.workers.strike import PROBES

LB = QuicLbConfig(config_id=0, server_id_length=1, nonce_length=6)  # the default
LB2 = QuicLbConfig(config_id=3, server_id_length=2, nonce_length=5, encode_length=False)


def run_cbpf(program: list[Insn], packet: bytes) -> int:
    """A classic BPF interpreter for the opcodes the program uses; an out-of-range load
    ends the run with 0, as the kernel does."""
    a = 0
    pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x80:  # ld len
            a = len(packet)
        elif code == 0x30:  # ldb [k]
            if k >= len(packet):
                return 0
            a = packet[k]
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x15:  # jeq #k
            pc += jt if a == k else jf
        elif code == 0x35:  # jge #k
            pc += jt if a >= k else jf
        elif code == 0x45:  # jset #k
            pc += jt if a & k else jf
        elif code == 0x16:  # ret a
            return a
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def short(cid: bytes, rest: bytes = b"\x00" * 30) -> bytes:
    return bytes((0x40,)) + cid + rest


def long_(dcid: bytes, kind: int = 0, rest: bytes = b"\x00" * 30) -> bytes:
    scid = os.urandom(8)
    return (
        bytes((0xC0 | kind << 4,))
        + b"\x00\x00\x00\x01"
        + bytes((len(dcid),))
        + dcid
        + bytes((len(scid),))
        + scid
        + rest
    )


def worker_cid(config: QuicLbConfig, index: int, prefix: bytes = b"") -> bytes:
    return CidFormat(config, prefix + bytes((index,))).new_cid()


@pytest.mark.parametrize(("config", "prefix"), [(LB, b""), (LB2, b"\x07")])
def test_our_cids_steer_to_their_worker_in_short_and_long_headers(
    config: QuicLbConfig, prefix: bytes
) -> None:
    program = steering_program(config, 3)
    for index in range(3):
        for _ in range(20):
            cid = worker_cid(config, index, prefix)
            assert run_cbpf(program, short(cid)) == index
            assert run_cbpf(program, long_(cid, kind=2)) == index  # Handshake
            assert run_cbpf(program, long_(cid, kind=0)) == index  # Initial after Retry


def test_everything_else_gets_the_out_of_range_answer_the_kernel_hashes() -> None:
    program = steering_program(LB, 3)
    fallback = 3
    cid = worker_cid(LB, 1)
    assert run_cbpf(program, short(worker_cid(LB, 7))) == fallback  # index >= workers
    other = QuicLbConfig(config_id=2, server_id_length=1, nonce_length=6)
    assert run_cbpf(program, short(worker_cid(other, 1))) == fallback  # other config
    longer = QuicLbConfig(config_id=0, server_id_length=1, nonce_length=7)
    assert run_cbpf(program, long_(worker_cid(longer, 1))) == fallback  # other length
    unroutable = bytes((0xE6,)) + cid[1:]
    assert run_cbpf(program, short(unroutable)) == fallback
    client_dcid = bytes((0x11,)) + os.urandom(7)  # a client's first DCID: first octet differs
    assert run_cbpf(program, long_(client_dcid)) == fallback
    assert run_cbpf(program, long_(os.urandom(16))) == fallback
    # runts: shorter than a CID needs (never a load past the end)
    assert run_cbpf(program, b"") == fallback
    assert run_cbpf(program, short(cid)[:8]) == fallback
    assert run_cbpf(program, long_(cid)[:13]) == fallback
    assert run_cbpf(program, short(cid, rest=b"")) == 1  # exactly a header and the CID


def test_the_program_is_checked() -> None:
    with pytest.raises(ConfigError, match="encrypted"):
        steering_program(QuicLbConfig(0, 1, 6, key=bytes(16)), 2)
    with pytest.raises(ConfigError, match="workers"):
        steering_program(LB, 0)
    with pytest.raises(ConfigError, match="workers"):
        steering_program(LB, 257)
    program = steering_program(LB, 2)
    assert len(pack(program)) == 8 * len(program)
    assert all(0 <= i.jt < 256 and 0 <= i.jf < 256 for i in program)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_ATTACH_REUSEPORT_CBPF")
def test_the_kernel_delivers_by_the_program() -> None:
    socks = bind_group("127.0.0.1", 0, 3)
    attach(socks[0], steering_program(LB, 3))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sent: list[tuple[bytes, int]] = []
        for index in (0, 1, 2, 2, 1, 0):
            for packet in (short(worker_cid(LB, index)), long_(worker_cid(LB, index), 2)):
                client.sendto(packet, socks[0].getsockname())
                sent.append((packet, index))
        got: dict[bytes, int] = {}
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            while select.select([sock], [], [], 0.2)[0]:
                got[sock.recv(2048)] = i
        assert got == dict(sent)
        # The fallback (the kernel's 4-tuple hash): one sender's packets all reach one socket.
        for _ in range(5):
            client.sendto(long_(os.urandom(8)), socks[0].getsockname())
        hashed = []
        for i, sock in enumerate(socks):
            while select.select([sock], [], [], 0.2)[0]:
                sock.recv(2048)
                hashed.append(i)
        assert len(hashed) == 5 and len(set(hashed)) == 1
    finally:
        client.close()
        for sock in socks:
            sock.close()


# -- the strike register --------------------------------------------------------------------


def test_strike_register_remembers_for_the_window() -> None:
    register = SharedStrikeRegister(window=10.0, capacity=1024)
    try:
        assert register.check_and_add(b"ticket-1", 100.0)
        assert not register.check_and_add(b"ticket-1", 105.0)  # replay inside the window
        assert register.check_and_add(b"ticket-2", 105.0)
        assert not register.check_and_add(b"ticket-1", 109.9)
        assert register.check_and_add(b"ticket-1", 110.5)  # forgotten after it
        assert len(register) == 2
    finally:
        register.close()


def test_strike_register_refuses_when_its_probe_is_full() -> None:
    register = SharedStrikeRegister(window=10.0, capacity=PROBES)  # one probe covers all
    try:
        assert all(register.check_and_add(b"id%d" % i, 1.0) for i in range(PROBES))
        assert not register.check_and_add(b"one more", 1.0)  # full: refused, not evicted
        assert not register.check_and_add(b"id0", 2.0)  # the old ones still held
        assert register.check_and_add(b"one more", 11.5)  # expired slots are reused
    finally:
        register.close()
    with pytest.raises(ConfigError):
        SharedStrikeRegister(capacity=1000)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_strike_register_is_shared_by_forked_processes() -> None:
    register = SharedStrikeRegister(window=10.0, capacity=4096)
    try:
        assert register.check_and_add(b"parent's", 50.0)
        children = []
        for n in range(2):
            pid = os.fork()
            if pid == 0:  # child: claim 200 identities of its own and try the parent's
                ok = all(register.check_and_add(b"c%d-%d" % (n, i), 50.0) for i in range(200))
                replay = register.check_and_add(b"parent's", 50.0)
                both = register.check_and_add(b"both", 50.0)
                os._exit((0 if ok else 1) | (2 if replay else 0) | (4 if both else 0))
            children.append(pid)
        codes = [os.waitpid(pid, 0)[1] >> 8 for pid in children]
        assert [c & 3 for c in codes] == [0, 0]  # all new, and the parent's seen as a replay
        assert sum(c >> 2 for c in codes) == 1  # "both": exactly one child got it
        assert not register.check_and_add(b"c0-17", 55.0)  # the children's, seen here
        assert not register.check_and_add(b"c1-199", 55.0)
        assert len(register) == 402
    finally:
        register.close()
