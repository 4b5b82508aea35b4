"""picoquic benchmark peer through aiopquic (Python >= 3.12, its own venv):
``python picoquic_peer.py server|client ... [--cc NAME]``.

All five workloads, through the same command line and protocol as the other peers
(``common.main``): aiopquic's event API (``StreamDataReceived``, ``send_stream_data_drained``)
is wrapped here in the reader/writer pair the workloads use. Each client connection has its
own picoquic network thread and socket (aiopquic's ``connect``); the server has one for all.

AES-128-GCM only and no DATAGRAM frames, as the other QUIC peers; aiopquic's defaults
otherwise (path MTU discovery, windows; congestion control "bbr1" unless ``--cc`` names
another: "cubic", "bbr" (v3), "newreno" ...). The server allows 16,384 connections (aiopquic's
default is 256) so the "many" workload can reach its count. aiopquic's ``serve`` cannot
report a port it picked, so with ``--port 0`` this script picks a free one first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import ssl
import sys
from contextlib import AbstractAsyncContextManager
from typing import Any

import common
from aiopquic.asyncio import QuicConnectionProtocol, connect, serve
from aiopquic.quic.configuration import QuicConfiguration
from aiopquic.quic.events import ConnectionTerminated, StreamDataReceived, StreamReset

AES_128_GCM_SHA256 = 0x1301
MAX_CONNECTIONS = 16_384
CC: list[str] = []  # --cc, when given


def configuration(is_client: bool) -> QuicConfiguration:
    cfg = QuicConfiguration(is_client=is_client, alpn_protocols=[common.ALPN])
    cfg.cipher_suite = AES_128_GCM_SHA256
    cfg.max_datagram_frame_size = None
    if CC:
        cfg.congestion_control_algorithm = CC[0]
    idle = common.idle_timeout()
    if idle is not None:
        cfg.idle_timeout = idle
    if is_client:
        cfg.verify_mode = ssl.CERT_NONE
    else:
        cfg.max_connections = MAX_CONNECTIONS
    return cfg


class StreamWriter:
    """The writer half of one stream: ``write()`` hands data to picoquic at once; what the
    stream's send ring cannot take waits for ``drain()`` (aiopquic's drained send)."""

    def __init__(self, quic: Any, stream_id: int) -> None:
        self._quic = quic
        self._sid = stream_id
        self._pending: list[bytes] = []
        self._eof = False
        self._fin_task: asyncio.Task[None] | None = None

    def _send_now(self, data: bytes, fin: bool) -> bool:
        try:
            self._quic.send_stream_data(self._sid, data, fin)
        except BufferError:  # all or nothing: nothing was committed
            return False
        return True

    def write(self, data: Any) -> None:
        data = bytes(data)
        if self._pending or not self._send_now(data, False):
            self._pending.append(data)

    async def drain(self) -> None:
        while self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            await self._quic.send_stream_data_drained(self._sid, data, self._eof)
        if self._fin_task is not None:
            await self._fin_task

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._eof:
            return
        self._eof = True
        if self._pending:
            return  # the next drain() sends the FIN with the data
        if not self._send_now(b"", True):  # backpressure: send it when the ring drains
            self._fin_task = asyncio.get_running_loop().create_task(
                self._quic.send_stream_data_drained(self._sid, b"", True)
            )

    def close(self) -> None:
        """Nothing: the stream ends with its FIN."""


class StreamProtocol(QuicConnectionProtocol):
    """Routes each stream's data into its own ``asyncio.StreamReader``."""

    def __init__(self, quic: Any, stream_handler: Any = None) -> None:
        super().__init__(quic, stream_handler=stream_handler)
        self.readers: dict[int, asyncio.StreamReader] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.on_stream: common.Handler | None = None

    def stream(self, stream_id: int) -> tuple[asyncio.StreamReader, StreamWriter]:
        reader = asyncio.StreamReader(limit=1 << 20)
        self.readers[stream_id] = reader
        return reader, StreamWriter(self._quic, stream_id)

    def quic_event_received(self, event: Any) -> None:
        if isinstance(event, StreamDataReceived):
            reader = self.readers.get(event.stream_id)
            if reader is None:
                if self.on_stream is None:
                    return  # a stream the client did not open: ignored
                reader, writer = self.stream(event.stream_id)
                task = asyncio.get_running_loop().create_task(self.on_stream(reader, writer))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if event.data:
                reader.feed_data(bytes(event.data))
            if event.end_stream:
                reader.feed_eof()
                self.readers.pop(event.stream_id, None)
        elif isinstance(event, StreamReset):
            reader = self.readers.pop(event.stream_id, None)
            if reader is not None:
                reader.set_exception(ConnectionResetError(f"stream reset {event.error_code}"))
        elif isinstance(event, ConnectionTerminated):
            for reader in self.readers.values():
                reader.set_exception(ConnectionResetError("connection closed"))
            self.readers.clear()


class PicoquicSession:
    multiplexed = True

    def __init__(self, manager: AbstractAsyncContextManager[Any], protocol: StreamProtocol):
        self._manager = manager
        self.protocol = protocol

    async def open_stream(self) -> tuple[Any, Any]:
        return self.protocol.stream(self.protocol._quic.get_next_available_stream_id())

    def end_stream(self, writer: Any) -> None:
        writer.write_eof()

    async def close(self) -> None:
        await common.close_within(self._manager.__aexit__(None, None, None))


async def dial(host: str, port: int) -> PicoquicSession:
    manager = connect(host, port, configuration=configuration(True), create_protocol=StreamProtocol)
    protocol = await common.connect_within(manager.__aenter__(), "handshake")
    return PicoquicSession(manager, protocol)


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def serve_streams(
    host: str, port: int, handler: common.Handler, args: argparse.Namespace
) -> int:
    if not (args.cert and args.key):
        raise SystemExit("the picoquic server needs --cert and --key")
    cfg = configuration(False)
    cfg.load_cert_chain(args.cert, args.key)
    port = port or free_udp_port(host)

    def create_protocol(quic: Any, stream_handler: Any = None) -> StreamProtocol:
        protocol = StreamProtocol(quic, stream_handler=stream_handler)
        protocol.on_stream = handler
        return protocol

    _keep.append(await serve(host, port, configuration=cfg, create_protocol=create_protocol))
    return port


_keep: list[Any] = []


def main(argv: list[str]) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--cc", help="picoquic's congestion controller (default: aiopquic's)")
    known, rest = pre.parse_known_args(argv)
    if known.cc:
        CC.append(known.cc)
    with contextlib.suppress(KeyboardInterrupt):
        return common.main("picoquic", dial, serve_streams, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
