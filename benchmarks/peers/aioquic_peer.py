"""aioquic benchmark peer: ``python aioquic_peer.py server|client ...``.

1200-byte datagrams (aioquic's default ``max_datagram_size``), AES-128-GCM only, no DATAGRAM
frames, aioquic's default flow-control windows and congestion control. :func:`peer` makes
the same peer for a fork with aioquic's API (``qh3_peer.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ssl
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import common

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def as_is(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> StreamPair:
    return reader, writer


def peer(
    package: str, wrap: Callable[[asyncio.StreamReader, asyncio.StreamWriter], StreamPair] = as_is
) -> tuple[common.Dial, common.Serve]:
    """``dial`` and ``serve`` over ``package`` (aioquic, or a fork with its API); ``wrap``
    mends each stream's reader/writer pair where the fork needs it."""
    quic_asyncio = importlib.import_module(f"{package}.asyncio")
    QuicConfiguration = importlib.import_module(f"{package}.quic.configuration").QuicConfiguration
    CipherSuite = importlib.import_module(f"{package}.tls").CipherSuite

    def configuration(is_client: bool) -> Any:
        idle = common.idle_timeout()
        return QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[common.ALPN],
            cipher_suites=[CipherSuite.AES_128_GCM_SHA256],
            max_datagram_frame_size=None,
            verify_mode=ssl.CERT_NONE if is_client else None,
            **({} if idle is None else {"idle_timeout": idle}),
        )

    class Session:
        multiplexed = True

        def __init__(self, manager: AbstractAsyncContextManager[Any], protocol: Any) -> None:
            self._manager = manager
            self.protocol = protocol

        async def open_stream(self) -> tuple[Any, Any]:
            return wrap(*await self.protocol.create_stream())

        def end_stream(self, writer: Any) -> None:
            writer.write_eof()

        async def close(self) -> None:
            await common.close_within(self._manager.__aexit__(None, None, None))

    async def dial(host: str, port: int) -> Session:
        manager = quic_asyncio.connect(host, port, configuration=configuration(True))
        protocol = await common.connect_within(manager.__aenter__(), "handshake")
        return Session(manager, protocol)

    async def serve(host: str, port: int, handler: common.Handler, args: argparse.Namespace) -> int:
        cert, key = common.ensure_cert(args)
        config = configuration(False)
        config.load_cert_chain(cert, key)
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = loop.create_task(handler(*wrap(reader, writer)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        server = await quic_asyncio.serve(
            host, port, configuration=config, stream_handler=on_stream
        )
        _keep.append((server, tasks))
        return int(server._transport.get_extra_info("sockname")[1])

    return dial, serve


_keep: list[Any] = []

if __name__ == "__main__":
    sys.exit(common.main("aioquic", *peer("aioquic")))
