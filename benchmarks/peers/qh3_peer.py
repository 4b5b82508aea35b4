"""qh3 benchmark peer: ``python qh3_peer.py server|client ...``.

qh3 is an aioquic fork (Rust crypto and TLS, the same asyncio API), so this is the aioquic
peer with qh3's imports: AES-128-GCM only, no DATAGRAM frames, qh3's defaults otherwise
(datagram size 1280 with probing, windows, congestion control).

qh3 2.1.0 builds its stream writers without a protocol, so ``StreamWriter.drain()`` fails;
``with_protocol`` gives each writer the ``StreamReaderProtocol`` aioquic gives its own (it
never pauses, so ``drain()`` returns at once there too).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from contextlib import AbstractAsyncContextManager
from typing import Any

import common
from qh3.asyncio import connect
from qh3.asyncio import serve as qh3_serve
from qh3.quic.configuration import QuicConfiguration
from qh3.tls import CipherSuite


def configuration(is_client: bool) -> QuicConfiguration:
    return QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[common.ALPN],
        cipher_suites=[CipherSuite.AES_128_GCM_SHA256],
        max_datagram_frame_size=None,
        verify_mode=ssl.CERT_NONE if is_client else None,
    )


def with_protocol(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if getattr(writer, "_protocol", None) is None:
        writer._protocol = asyncio.streams.StreamReaderProtocol(reader)  # type: ignore[attr-defined]
    return reader, writer


class Qh3Session:
    multiplexed = True

    def __init__(self, manager: AbstractAsyncContextManager[Any], protocol: Any) -> None:
        self._manager = manager
        self.protocol = protocol

    async def open_stream(self) -> tuple[Any, Any]:
        return with_protocol(*await self.protocol.create_stream())

    def end_stream(self, writer: Any) -> None:
        writer.write_eof()

    async def close(self) -> None:
        await common.close_within(self._manager.__aexit__(None, None, None))


async def dial(host: str, port: int) -> Qh3Session:
    manager = connect(host, port, configuration=configuration(True))
    protocol = await common.connect_within(manager.__aenter__(), "handshake")
    return Qh3Session(manager, protocol)


async def serve(host: str, port: int, handler: common.Handler, args: argparse.Namespace) -> int:
    cert, key = common.ensure_cert(args)
    config = configuration(False)
    config.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = loop.create_task(handler(*with_protocol(reader, writer)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await qh3_serve(host, port, configuration=config, stream_handler=on_stream)
    _keep.append((server, tasks))
    return int(server._transport.get_extra_info("sockname")[1])


_keep: list[Any] = []

if __name__ == "__main__":
    sys.exit(common.main("qh3", dial, serve))
