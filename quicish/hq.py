"""hq-interop: the QUIC Interop Runner's file protocol (one bidirectional stream per file).

The client sends ``GET /path\\r\\n`` and FIN; the server answers with the file's bytes and FIN.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aio.streams import QuicStreamReader, QuicStreamWriter

logger = logging.getLogger("quicish")

MAX_REQUEST = 4096
CHUNK = 64 * 1024
ERROR_NOT_FOUND = 0x10  # application error code used to reset a stream for a missing file


def request_line(path: str) -> bytes:
    """The request for ``path`` (a leading ``/`` is added when missing)."""
    if not path.startswith("/"):
        path = "/" + path
    return f"GET {path}\r\n".encode()


def parse_request(data: bytes) -> str | None:
    """The requested path, or None when the request is malformed."""
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    parts = text.split(" ")
    if len(parts) != 2 or parts[0] != "GET" or not parts[1].startswith("/"):
        return None
    return parts[1]


def idempotent(stream_id: int, first_bytes: bytes) -> bool:
    """``Config.early_data`` for an hq server: a request in 0-RTT is served at once when it
    is a GET (safe to replay); anything else waits for the handshake."""
    return first_bytes.startswith(b"GET ")


def resolve(root: Path, path: str) -> Path | None:
    """The file under ``root`` for a request path; None if it escapes ``root`` or is missing."""
    candidate = (root / path.lstrip("/")).resolve()
    try:
        candidate.relative_to(root.resolve())
    except ValueError:
        return None
    return candidate if candidate.is_file() else None


@dataclass(frozen=True)
class Served:
    """One request a :class:`FileServer` answered (for an access log)."""

    peer: tuple[Any, ...] | None  # the client's address
    path: str  # the requested path, or "-" for a malformed request
    status: int  # 200, or 404 when the file is missing or the request malformed
    size: int  # bytes of the file sent
    duration: float  # seconds from the stream's start to the FIN


class FileServer:
    """Serves files below ``root``; pass ``handle`` as ``on_stream`` to :func:`quicish.serve`.
    ``on_served`` is called once per request with a :class:`Served` record."""

    def __init__(
        self, root: str | os.PathLike[str], on_served: Callable[[Served], None] | None = None
    ) -> None:
        self.root = Path(root)
        self.files_served = 0
        self.on_served = on_served

    async def handle(self, reader: QuicStreamReader, writer: QuicStreamWriter) -> None:
        started = time.monotonic()
        path: str | None = None
        size = -1
        try:
            request = await reader.read(MAX_REQUEST)
            while not reader.at_eof() and len(request) < MAX_REQUEST and b"\n" not in request:
                more = await reader.read(MAX_REQUEST - len(request))
                if not more:
                    break
                request += more
            path = parse_request(request)
            target = resolve(self.root, path) if path is not None else None
            if target is None:
                logger.info("hq: not found: %r", request[:100])
                writer.reset(ERROR_NOT_FOUND)
                return
            size = await self._send(target, writer)
        finally:
            if self.on_served is not None:
                self.on_served(
                    Served(
                        writer.get_extra_info("peername"),
                        path or "-",
                        200 if size >= 0 else 404,
                        max(size, 0),
                        time.monotonic() - started,
                    )
                )

    async def _send(self, target: Path, writer: QuicStreamWriter) -> int:
        size = 0
        with open(target, "rb") as fh:
            while True:
                chunk = fh.read(CHUNK)
                if not chunk:
                    break
                writer.write(chunk)
                size += len(chunk)
                await writer.drain()
        writer.write_eof()
        self.files_served += 1
        return size


async def fetch(
    reader: QuicStreamReader,
    writer: QuicStreamWriter,
    path: str,
    out: os.PathLike[str] | str,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Request ``path`` on an open stream and write the answer to ``out``; returns its size.

    ``on_chunk(n)`` is called for each piece of ``n`` bytes as it arrives. A failed or reset
    transfer leaves no file behind."""
    writer.write(request_line(path))
    writer.write_eof()
    return await save(_chunks(reader), out, on_chunk)


async def _chunks(reader: QuicStreamReader) -> AsyncIterator[bytes]:
    while chunk := await reader.read(CHUNK * 4):
        yield chunk


async def save(
    chunks: AsyncIterable[bytes],
    out: os.PathLike[str] | str,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Write ``chunks`` to ``out`` as they arrive (``on_chunk(n)`` for each); returns the
    size. A failure leaves no file behind: it did not arrive complete (also for HTTP/3)."""
    size = 0
    try:
        with open(out, "wb") as fh:
            async for chunk in chunks:
                fh.write(chunk)
                size += len(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(out)
        raise
    return size
