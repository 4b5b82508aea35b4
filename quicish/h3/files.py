"""Files over HTTP/3 (``quicish serve --http3``, ``quicish get --http3``): a handler serving
GET and HEAD below a root, with content-length, 404 for what is missing, 405 for other
methods; and :func:`fetch`, a download to a file."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import unquote

from ..hq import CHUNK, Served, resolve, save
from .client import H3Client
from .messages import Request, Response

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".js": "text/javascript",
    ".json": "application/json",
    ".css": "text/css",
    ".png": "image/png",
}


class FileHandler:
    """Serves files below ``root``; ``on_served`` gets a :class:`quicish.hq.Served` record
    per request (status and the bytes of the file)."""

    def __init__(
        self, root: str | os.PathLike[str], on_served: Callable[[Served], None] | None = None
    ) -> None:
        self.root = Path(root)
        self.on_served = on_served
        self.files_served = 0

    async def __call__(self, request: Request) -> Response:
        started = time.monotonic()
        path = unquote(request.path.partition("?")[0])
        target = resolve(self.root, path)
        if request.method not in ("GET", "HEAD"):
            response = Response(405, [("allow", "GET, HEAD")], b"method not allowed\n")
            size = 0
        elif target is None:
            response = Response(404, [("content-type", "text/plain")], b"not found\n")
            size = 0
        else:
            size = target.stat().st_size
            kind = CONTENT_TYPES.get(target.suffix, "application/octet-stream")
            headers = [("content-type", kind), ("content-length", str(size))]
            response = Response(200, headers, _read(target))
            self.files_served += 1
        if self.on_served is not None:
            peer = request.client
            self.on_served(Served(peer, path, response.status, size, time.monotonic() - started))
        return response


async def _read(target: Path) -> AsyncIterator[bytes]:
    with open(target, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


class HTTPStatusError(Exception):
    """A download answered with a status other than 200."""

    def __init__(self, status: int) -> None:
        reason = {404: " (not found)", 405: " (method not allowed)"}.get(status, "")
        super().__init__(f"HTTP status {status}{reason}")
        self.status = status


async def fetch(
    client: H3Client,
    path: str,
    out: os.PathLike[str] | str,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """GET ``path`` and write the body to ``out``; returns its size. A status other than 200
    raises :class:`HTTPStatusError`; a failed transfer leaves no file behind."""
    async with client.stream("GET", path) as response:
        if response.status != 200:
            raise HTTPStatusError(response.status)
        return await save(response.body, out, on_chunk)
