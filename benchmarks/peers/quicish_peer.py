"""quicish benchmark peer: ``python quicish_peer.py server|client ...``.

quicish's default datagram size (path MTU discovery from 1200 up to 1452;
``QUICISH_MAX_DATAGRAM_SIZE`` sets another ceiling, 1200 fixes the size), AES-128-GCM only,
quicish's default windows and congestion control (``QUICISH_CC`` names another: "bbr",
"newreno"); uvloop when installed, as quicish.aio.api.run.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import common


class QuicishSession:
    multiplexed = True

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def open_stream(self) -> tuple[Any, Any]:
        return await self.conn.open_stream()

    def end_stream(self, writer: Any) -> None:
        writer.write_eof()

    async def close(self) -> None:
        self.conn.close()
        await common.close_within(self.conn.wait_closed())


async def dial(host: str, port: int) -> QuicishSession:
    import quicish
    from quicish.aio import api

    config = quicish.Config(
        alpn=[common.ALPN], verify=False, cipher_suites=["aes128"], **_cc_choice()
    )
    conn = await common.connect_within(api.connect(host, port, config=config), "handshake")
    return QuicishSession(conn)


async def serve(host: str, port: int, handler: common.Handler, args: argparse.Namespace) -> int:
    import quicish
    from quicish.aio import api

    cert, key = common.ensure_cert(args)
    config = quicish.Config(
        alpn=[common.ALPN],
        certificate_chain=cert,
        private_key=key,
        cipher_suites=["aes128"],
        **_cc_choice(),
    )
    server = await api.serve(host, port, config=config, on_stream=handler)
    _keep.append(server)
    return int(server.address[1])


def _cc_choice() -> dict[str, Any]:
    """``congestion_control`` from ``QUICISH_CC``, ``max_datagram_size`` from
    ``QUICISH_MAX_DATAGRAM_SIZE`` and ``idle_timeout`` from ``common.idle_timeout()`` when
    set (else the Config defaults)."""
    name = os.environ.get("QUICISH_CC")
    choice: dict[str, Any] = {"congestion_control": name} if name else {}
    size = os.environ.get("QUICISH_MAX_DATAGRAM_SIZE")
    if size:
        choice["max_datagram_size"] = int(size)
    idle = common.idle_timeout()
    if idle is not None:
        choice["idle_timeout"] = idle
    return choice


_keep: list[Any] = []

if __name__ == "__main__":
    sys.exit(common.main("quicish", dial, serve))
