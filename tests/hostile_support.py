"""Helpers for the attack tests (``test_hostile_*.py``): a real ``quicish serve`` process on
loopback, its CPU time and memory read from ``/proc``, a scriptable attacker that speaks QUIC
over a real UDP socket, and a legitimate ``quicish get`` run beside the attack.

The attacker is a sans-IO client :class:`~quicish.proto.connection.Connection` driven over a
blocking socket, so it can complete a real handshake and then seal any frames it likes with
its 1-RTT keys (:meth:`RawClient.send_frames`), or send raw datagrams (:meth:`RawClient.send_raw`).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pairs import Peer, seal_one_rtt
from pairs import encode as encode_frames
from support import cert_files, client_config

from quicish.errors import DecodeError
from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.wire.packet import (
    QUIC_V1,
    PacketType,
    encode_long_header,
    parse_header,
)
from quicish.wire.protection import AEAD_TAG_SIZE, PacketProtector, initial_secrets

LOOPBACK = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_REPO = Path(__file__).resolve().parent.parent


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class ServeProcess:
    """``python -m quicish serve`` on a free loopback port, serving a small directory.

    Use as a context manager. ``port`` and ``pin`` are known once it is entered; ``files``
    maps the served file names to their contents.
    """

    def __init__(self, *args: str, files: dict[str, bytes] | None = None) -> None:
        self.args = list(args)
        self.files = files if files is not None else {"hello.txt": b"hello, hostile world\n" * 50}
        self._tmp = tempfile.TemporaryDirectory(prefix="quicish-hostile-")
        self.root = Path(self._tmp.name)
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.pin = ""

    def __enter__(self) -> ServeProcess:
        for name, data in self.files.items():
            (self.root / name).write_bytes(data)
        cert, key, pin = cert_files()
        self.pin = pin
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quicish",
                "serve",
                "--host",
                LOOPBACK,
                "--port",
                "0",
                "--root",
                str(self.root),
                "--cert",
                cert,
                "--key",
                key,
                "--quiet",
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_child_env(),
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.search(r"listening on [^:]+:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                return self
        self.__exit__(None, None, None)
        raise RuntimeError("quicish serve did not start")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()  # nobody reads the rest (the server was told --quiet)
        self._tmp.cleanup()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def get(self, *names: str, timeout: float = 5.0) -> GetResult:
        """Start a legitimate ``quicish get`` of ``names`` (default: every file); see
        :class:`GetResult`."""
        return GetResult(self, list(names or self.files), timeout)


def _get_args(server: ServeProcess, names: list[str], output: str) -> list[str]:
    """``get`` and its arguments: the files of ``server`` named ``names``, into ``output``."""
    urls = [f"https://{LOOPBACK}:{server.port}/{name}" for name in names]
    return ["get", *urls, "--pin", server.pin, "--output", output, "--quiet"]


class GetResult:
    """A ``quicish get`` subprocess started at construction; :meth:`wait` tells whether
    every file arrived intact within the timeout, and how long it took."""

    def __init__(self, server: ServeProcess, names: list[str], timeout: float) -> None:
        self.server = server
        self.names = names
        self.timeout = timeout
        self._out = tempfile.TemporaryDirectory(prefix="quicish-get-")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quicish", *_get_args(server, names, self._out.name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_child_env(),
        )
        self.elapsed: float | None = None
        self.output = ""

    def done(self) -> bool:
        return self.proc.poll() is not None

    def wait(self) -> bool:
        """True if ``get`` exited 0 within the timeout and every file matches."""
        left = self.timeout - (time.monotonic() - self.started)
        ok, self.output = _collect(self.proc, self._out, left, self.server.files, self.names)
        self.elapsed = time.monotonic() - self.started
        return ok and self.elapsed <= self.timeout + 1.0


def _collect(
    proc: subprocess.Popen[str],
    out: tempfile.TemporaryDirectory[str],
    left: float,
    files: dict[str, bytes],
    names: list[str],
) -> tuple[bool, str]:
    """Wait for a ``get`` process (``left`` seconds and one more): (it exited 0 and every
    file arrived intact, its output). The output directory is removed."""
    try:
        try:
            output, _ = proc.communicate(timeout=max(0.1, left) + 1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            return False, proc.communicate()[0]
        return proc.returncode == 0 and all(
            (Path(out.name) / name).read_bytes() == files[name] for name in names
        ), output
    finally:
        out.cleanup()


class RawClient:
    """A QUIC client under the test's control over a real UDP socket.

    ``handshake()`` completes a real handshake with the server; afterwards ``send_frames``
    seals arbitrary frames in 1-RTT packets with fresh packet numbers, and ``pump`` lets the
    client engine answer what the server sends (so the connection stays healthy unless the
    test wants otherwise).
    """

    def __init__(self, port: int, host: str = LOOPBACK, **config: Any) -> None:
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.conn = Connection(client_config(**config), is_client=True)
        self.peer = Peer(self.conn, reading=False)  # its events (streams left unread)
        self.received_bytes = 0
        self.received_datagrams = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _flush(self) -> None:
        for data, addr in self.conn.datagrams_to_send(time.monotonic()):
            self.sock.sendto(data, addr)
        self.peer.poll()

    def pump(self, duration: float = 0.0, until: Callable[[], bool] | None = None) -> bool:
        """Exchange datagrams and run timers for ``duration`` seconds or until ``until()``
        is true (then returns True)."""
        deadline = time.monotonic() + duration
        while True:
            self._flush()
            if until is not None and until():
                return True
            now = time.monotonic()
            if now >= deadline:
                return False
            timer = self.conn.next_timer()
            wait = deadline - now if timer is None else min(deadline, timer) - now
            self.sock.settimeout(max(0.0005, wait))
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                now = time.monotonic()
                timer = self.conn.next_timer()
                if timer is not None and now >= timer:
                    self.conn.handle_timer(now)
                continue
            self.received_bytes += len(data)
            self.received_datagrams += 1
            self.conn.receive_datagram(data, addr, time.monotonic())

    def handshake(self, timeout: float = 5.0) -> None:
        self.conn.connect(self.addr, time.monotonic())
        done = self.pump(timeout, until=lambda: self.peer.handshake is not None)
        if not done:
            raise TimeoutError("handshake did not complete")

    def seal(self, payload: bytes) -> bytes:
        """``payload`` (raw frame bytes) as a 1-RTT packet with the next packet number,
        recorded as sent so the server's ACK of it is legitimate."""
        # Not in flight: the attacker never retransmits (nor is blocked by its own cwnd).
        packet = seal_one_rtt(self.conn, payload, time.monotonic(), in_flight=False)
        return packet

    def send_frames(self, *frames: Any) -> int:
        """Seal ``frames`` in one 1-RTT packet and send it; returns its size."""
        packet = self.seal(encode_frames(*frames))
        self.sock.sendto(packet, self.addr)
        return len(packet)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.addr)

    def drain_socket(self, duration: float) -> list[bytes]:
        """Read (without processing) whatever arrives for ``duration`` seconds."""
        got: list[bytes] = []
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                break
            got.append(data)
            self.received_bytes += len(data)
            self.received_datagrams += 1
        return got

    def closed_by_peer(self) -> ev.ConnectionTerminated | None:
        return self.peer.terminated


def first_initial(port: int, **config: Any) -> bytes:
    """A real client's first datagram (a padded Initial with a ClientHello) for the server at
    ``port``, from a throw-away client engine: what a spoofer would replay."""
    conn = Connection(client_config(**config), is_client=True)
    conn.connect((LOOPBACK, port), time.monotonic())
    datagrams = conn.datagrams_to_send(time.monotonic())
    assert datagrams, "client produced no Initial"
    return datagrams[0][0]


class InitialForger:
    """Valid client Initials for any DCID, made cheaply: one real client's first Initial (a
    ClientHello, padded) is opened once, and :meth:`make` seals its frames again under the
    Initial keys of another DCID (RFC 9001 5.2), with any packet number and token. Each
    result is as valid as a real client's first datagram, which is what a spoofer sends."""

    def __init__(self, port: int, **config: Any) -> None:
        datagram = first_initial(port, **config)
        header = parse_header(datagram)
        client_secret, _ = initial_secrets(header.dcid)
        rx = PacketProtector.from_secret(0x1301, client_secret)
        _, payload, _ = rx.open_packet(datagram[: header.packet_end], header.pn_offset, -1)
        self.payload = payload
        self.scid = header.scid
        self.size = len(datagram)

    def make(
        self,
        dcid: bytes,
        pn: int = 0,
        token: bytes = b"",
        payload: bytes | None = None,
        version: int = QUIC_V1,
    ) -> bytes:
        """One Initial datagram to ``dcid`` with packet number ``pn``; ``payload``: other
        frames (raw bytes) instead of the ClientHello, padded to the same size."""
        body = self.payload if payload is None else payload
        if len(body) < len(self.payload):
            body = body + bytes(len(self.payload) - len(body))
        client_secret, _ = initial_secrets(dcid, version)
        tx = PacketProtector.from_secret(0x1301, client_secret, version)
        head = encode_long_header(
            PacketType.INITIAL, version, dcid, self.scid, token, len(body) + AEAD_TAG_SIZE, pn, 4
        )
        datagram = tx.seal_packet(head, body, pn)
        if len(datagram) < 1200:
            datagram += bytes(1200 - len(datagram))
        return datagram


def long_header_scid(datagram: bytes) -> bytes | None:
    """The source connection ID of a datagram's first packet if it has a long header."""
    if not datagram or not datagram[0] & 0x80:
        return None
    try:
        return parse_header(datagram).scid
    except DecodeError:
        return None


_PREPARED_GET = """\
import sys, time
from quicish.cli import main
try:
    import uvloop  # noqa: F401  (imported by main's run(); made ready ahead too)
except ImportError:
    pass
print("ready", flush=True)
sys.stdin.readline()
start = time.monotonic()
code = main(sys.argv[1:])
print(f"get-elapsed {time.monotonic() - start:.3f}", flush=True)
sys.exit(code)
"""


class PreparedGet:
    """A legitimate ``quicish get`` whose interpreter has started and imported quicish, and
    waits for :meth:`start`. Its time then counts the client's work (resolve, handshake,
    transfer, close), not the interpreter's start, which takes seconds when several start
    at once on a loaded small machine; and a test can start it at an exact moment of an
    attack. ``wait()`` is as :meth:`GetResult.wait`, with ``elapsed`` measured by the
    client from :meth:`start` to the end of ``main()``."""

    def __init__(self, server: ServeProcess, *names: str, timeout: float = 5.0) -> None:
        self.server = server
        self.names = list(names or server.files)
        self.timeout = timeout
        self._out = tempfile.TemporaryDirectory(prefix="quicish-get-")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PREPARED_GET, *_get_args(server, self.names, self._out.name)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_child_env(),
        )
        assert self.proc.stdout is not None
        self.ready = self.proc.stdout.readline().strip() == "ready"
        self.started: float | None = None
        self.elapsed: float | None = None
        self.output = ""

    def start(self) -> None:
        assert self.proc.stdin is not None
        self.started = time.monotonic()
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def wait(self) -> bool:
        """True if the client exited 0 within the timeout (from :meth:`start`) and every
        file matches."""
        assert self.started is not None, "start() first"
        left = self.timeout - (time.monotonic() - self.started)
        ok, self.output = _collect(self.proc, self._out, left, self.server.files, self.names)
        match = re.search(r"get-elapsed ([\d.]+)", self.output)
        self.elapsed = float(match.group(1)) if match else None
        return ok and self.elapsed is not None and self.elapsed <= self.timeout


class InitialFrameForger:
    """Client Initial packets with arbitrary frames for the server at ``port``, as a spoofer
    makes them: a fresh client engine gives the connection IDs and Initial keys (one
    half-open server connection per forger); nothing is recorded or answered."""

    def __init__(self, port: int, **config: Any) -> None:
        self.conn = Connection(client_config(**config), is_client=True)
        self.conn.connect((LOOPBACK, port), time.monotonic())
        self.pn = 0

    def datagram(self, *frames: Any, size: int = 1200) -> bytes:
        """``frames`` in one Initial with the next packet number, padded to ``size``."""
        conn = self.conn
        tx = conn._spaces[0].tx
        assert tx is not None
        payload = encode_frames(*frames)
        header_len = len(
            encode_long_header(
                PacketType.INITIAL, conn.version, conn.peer_cid, conn.host_cid, b"", 0, 0, 4
            )
        )
        pad = size - header_len - len(payload) - AEAD_TAG_SIZE
        payload += bytes(max(0, pad))  # PADDING frames
        header = encode_long_header(
            PacketType.INITIAL,
            conn.version,
            conn.peer_cid,
            conn.host_cid,
            b"",
            len(payload) + AEAD_TAG_SIZE,
            self.pn,
            4,
        )
        packet = tx.seal_packet(header, payload, self.pn)
        self.pn += 1
        return packet
