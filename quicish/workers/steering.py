"""Kernel steering for ``--workers``: a classic BPF program for a ``SO_REUSEPORT`` group.

Every worker binds its own UDP socket to the same port; the kernel picks one socket of the
group per datagram. The program below (attached once with ``SO_ATTACH_REUSEPORT_CBPF``)
makes that pick from the QUIC header, which starts at offset 0 of what it sees (the UDP
payload):

- a destination CID of this machine's QUIC-LB format (plaintext algorithm: the server ID
  is readable) goes to the worker whose index is the server ID's last octet. That covers
  every short-header packet and the long-header packets the client addresses to the
  server's CIDs (Handshake packets, the Initial after a Retry), whatever the client's
  address: NAT rebinding and active migration do not move a connection;
- anything else (a client's first Initial and its 0-RTT packets, which carry a DCID the
  client chose; an unroutable CID; a runt) gets the answer ``workers`` (out of range), and
  the kernel then falls back to its own reuseport hash of the 4-tuple
  (net/core/sock_reuseport.c: an index >= the group size selects by hash). A client's
  first flight has one 4-tuple, so its Initial and 0-RTT packets reach one worker; from
  the server's first answer on, the client addresses the server's CIDs.

A group's indices are the order its sockets joined it (the bind order), and a socket that
leaves moves the last one into its slot. The supervisor therefore binds the sockets itself
in worker order and keeps them open for the group's life: a dead worker's socket stays in
its slot, and its replacement takes that same socket.

An encrypted QUIC-LB format cannot be steered: a CBPF program has no AES. Such a format
is refused for ``workers`` (use the plaintext algorithm on the machine, or one server per
port behind the balancer).
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys
from collections.abc import Sequence
from typing import NamedTuple

from ..errors import ConfigError
from ..lb.params import QuicLbConfig

SO_ATTACH_REUSEPORT_CBPF = 51  # <asm-generic/socket.h>
MAX_WORKERS = 256  # the worker index is one octet of the server ID

# Classic BPF opcodes (<linux/filter.h>, <linux/bpf_common.h>).
LD, ALU, JMP, RET = 0x00, 0x04, 0x05, 0x06
W, B = 0x00, 0x10
ABS, LEN = 0x20, 0x80
K, A = 0x00, 0x10
JEQ, JGE, JSET = 0x10, 0x30, 0x40
AND = 0x50
LONG_HEADER = 0x80
DCID_LEN_AT = 5  # long header: first octet, version (4), DCID length


class Insn(NamedTuple):
    """One ``struct sock_filter``: opcode, jump offsets if true / false, constant."""

    code: int
    jt: int
    jf: int
    k: int


_SOCK_FILTER = struct.Struct("=HBBI")
_Op = tuple[int, str | None, str | None, int]  # opcode, jump-if-true, jump-if-false, k


def worker_octet(config: QuicLbConfig) -> int:
    """Index in the CID of the octet holding the worker index (the server ID's last)."""
    return config.server_id_length


def first_octet_test(config: QuicLbConfig) -> tuple[int, int]:
    """(mask, value) a CID's first octet matches under ``config``: the config rotation
    bits, and the length in the low bits when the format encodes it."""
    if config.encode_length:
        return 0xFF, (config.config_id << 5) | config.plaintext_length
    return 0xE0, config.config_id << 5


def steering_program(config: QuicLbConfig, workers: int) -> list[Insn]:
    """The CBPF program for ``workers`` sockets and the plaintext ``config``: the worker
    index (< ``workers``) for a packet to one of our CIDs, else ``workers`` (kernel hash)."""
    if config.key is not None:
        raise ConfigError(
            "workers: an encrypted QUIC-LB format cannot be steered by the kernel (CBPF has "
            "no AES); use the plaintext algorithm (key=None) for a machine's workers"
        )
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers must be 1 to {MAX_WORKERS}, not {workers}")
    length = config.cid_length
    mask, value = first_octet_test(config)
    at = worker_octet(config)
    short_cid, long_cid = 1, DCID_LEN_AT + 1
    # Symbolic program: a string marks a position; jumps name those.
    code: list[_Op | str] = [
        (LD | W | LEN, None, None, 0),
        (JMP | JGE | K, None, "fallback", short_cid + length),
        (LD | B | ABS, None, None, 0),
        (JMP | JSET | K, "long", None, LONG_HEADER),
        # short header: the DCID follows the first octet
        (LD | B | ABS, None, None, short_cid),
        (ALU | AND | K, None, None, mask),
        (JMP | JEQ | K, None, "fallback", value),
        (LD | B | ABS, None, None, short_cid + at),
        (JMP | JGE | K, "fallback", "index", workers),
        "long",
        (LD | W | LEN, None, None, 0),
        (JMP | JGE | K, None, "fallback", long_cid + length),
        (LD | B | ABS, None, None, DCID_LEN_AT),
        (JMP | JEQ | K, None, "fallback", length),
        (LD | B | ABS, None, None, long_cid),
        (ALU | AND | K, None, None, mask),
        (JMP | JEQ | K, None, "fallback", value),
        (LD | B | ABS, None, None, long_cid + at),
        (JMP | JGE | K, "fallback", "index", workers),
        "index",
        (RET | A, None, None, 0),
        "fallback",
        (RET | K, None, None, workers),
    ]
    return _assemble(code)


def _assemble(code: Sequence[_Op | str]) -> list[Insn]:
    labels: dict[str, int] = {}
    pc = 0
    for item in code:
        if isinstance(item, str):
            labels[item] = pc
        else:
            pc += 1
    out: list[Insn] = []
    for item in code:
        if isinstance(item, str):
            continue
        op, jt, jf, k = item
        here = len(out) + 1  # jumps count from the next instruction
        jt_off = 0 if jt is None else labels[jt] - here
        jf_off = 0 if jf is None else labels[jf] - here
        out.append(Insn(op, jt_off, jf_off, k))
    return out


def pack(program: Sequence[Insn]) -> bytes:
    """The program as an array of ``struct sock_filter``."""
    return b"".join(_SOCK_FILTER.pack(*insn) for insn in program)


def attach(sock: socket.socket, program: Sequence[Insn]) -> None:
    """Attach ``program`` to the reuseport group of ``sock`` (Linux; OSError elsewhere)."""
    if not sys.platform.startswith("linux"):
        raise OSError("SO_ATTACH_REUSEPORT_CBPF is Linux only")
    filters = ctypes.create_string_buffer(pack(program))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(filters))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def bind_group(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` UDP sockets bound to ``host:port`` with ``SO_REUSEPORT``, in order (their
    group indices are 0 to count - 1); port 0 picks one for all."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, port))
            port = sock.getsockname()[1]
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks
