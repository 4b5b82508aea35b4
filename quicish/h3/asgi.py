"""Serve an ASGI application (HTTP only) over HTTP/3: ``quicish.h3.serve(host, port,
ASGIHandler(app), config=...)``. Lifespan and WebSocket scopes are not supported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from .messages import Request, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIHandler:
    """An HTTP/3 handler that runs ``app`` for each request; the response streams as the
    app sends ``http.response.body`` messages."""

    def __init__(self, app: ASGIApp, root_path: str = "") -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, request: Request) -> Response:
        path, _, query = request.path.partition("?")
        host, _, port = request.authority.rpartition(":")
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "3",
            "method": request.method,
            "scheme": request.scheme or "https",
            "path": unquote(path),
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": self.root_path,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers]
            + [(b"host", request.authority.encode())],
            "client": request.client,
            "server": (host, int(port)) if port.isdigit() else None,
        }
        return await _Exchange(self.app, scope, request).run()


class _Exchange:
    """One request through the app: its receive/send, the response head as a future and
    the body as a queue."""

    def __init__(self, app: ASGIApp, scope: Scope, request: Request) -> None:
        self.app = app
        self.scope = scope
        self.request = request
        self.body_chunks = request.body.__aiter__()
        self.request_done = False
        self.head: asyncio.Future[tuple[int, list[tuple[str, str]]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.body: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)
        self.disconnected = asyncio.Event()

    async def receive(self) -> Message:
        if not self.request_done:
            try:
                chunk = await self.body_chunks.__anext__()
                return {"type": "http.request", "body": chunk, "more_body": True}
            except StopAsyncIteration:
                self.request_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            headers = [
                (bytes(k).decode("latin-1").lower(), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", [])
            ]
            self.head.set_result((int(message["status"]), headers))
        elif kind == "http.response.body":
            if not self.head.done():
                raise RuntimeError("http.response.body before http.response.start")
            body = bytes(message.get("body", b""))
            if body:
                await self.body.put(body)
            if not message.get("more_body", False):
                await self.body.put(None)

    async def run(self) -> Response:
        task = asyncio.ensure_future(self._app())
        waiting: set[asyncio.Future[Any]] = {self.head, task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not self.head.done():
            task.result()  # the app failed (raises) or returned without a response
            return Response(500, body=b"no response from the application")
        status, headers = self.head.result()
        return Response(status, headers, self._chunks(task))

    async def _app(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        finally:
            await self.body.put(None)

    async def _chunks(self, task: asyncio.Future[None]) -> AsyncIterator[bytes]:
        try:
            while (chunk := await self.body.get()) is not None:
                yield chunk
        finally:
            self.disconnected.set()
        await task  # an app failure resets the stream
