"""qh3 benchmark peer: ``python qh3_peer.py server|client ...``.

qh3 is an aioquic fork (Rust crypto and TLS, the same asyncio API), so this is the aioquic
peer (``aioquic_peer.peer``) over qh3's modules: AES-128-GCM only, no DATAGRAM frames,
qh3's defaults otherwise (datagram size 1280 with probing, windows, congestion control).

qh3 2.1.0 builds its stream writers without a protocol, so ``StreamWriter.drain()`` fails;
``with_protocol`` gives each writer the ``StreamReaderProtocol`` aioquic gives its own (it
never pauses, so ``drain()`` returns at once there too).
"""

from __future__ import annotations

import asyncio
import sys

import common
from aioquic_peer import StreamPair, peer


def with_protocol(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> StreamPair:
    if getattr(writer, "_protocol", None) is None:
        writer._protocol = asyncio.streams.StreamReaderProtocol(reader)  # type: ignore[attr-defined]
    return reader, writer


if __name__ == "__main__":
    sys.exit(common.main("qh3", *peer("qh3", with_protocol)))
