"""HTTP/3 (RFC 9114) over quicish, with QPACK (RFC 9204) through ``pylsqpack`` (the ``h3``
extra: ``pip install quicish[h3]``). A layer above the transport: it uses only quicish's
public asyncio API.

    async def handler(request: Request) -> Response:
        return Response(200, [("content-type", "text/plain")], b"hello")

    server = await quicish.h3.serve("::", 4433, handler, config=config)
    response = await quicish.h3.request("https://localhost:4433/", config=client_config)
"""

from .client import H3Client, PendingClient, connect, request, stream
from .connection import H3Connection, H3Settings
from .errors import H3Error, H3ErrorCode, H3ResponseError, H3StreamError
from .messages import Body, Request, Response, StreamingResponse
from .server import ALPN, H3Server, PendingH3Server, serve, serve_connection

__all__ = [
    "ALPN",
    "Body",
    "H3Client",
    "H3Connection",
    "H3Error",
    "H3ErrorCode",
    "H3ResponseError",
    "H3Server",
    "H3Settings",
    "H3StreamError",
    "PendingClient",
    "PendingH3Server",
    "Request",
    "Response",
    "StreamingResponse",
    "connect",
    "request",
    "serve",
    "serve_connection",
    "stream",
]
