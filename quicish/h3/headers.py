"""Field validation for HTTP/3 messages (RFC 9114 section 4.2 and 4.3): pseudo-headers,
lowercase names, forbidden connection-specific fields, field section size."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import H3ErrorCode, H3StreamError
from .qpack import Headers

REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
RESPONSE_PSEUDO = frozenset((b":status",))
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_FORBIDDEN_NAME = frozenset(b"\x00\r\n:\x20") | frozenset(range(0x41, 0x5B))  # also A-Z
_FORBIDDEN_VALUE = frozenset(b"\x00\r\n")


def _fail(reason: str) -> H3StreamError:
    return H3StreamError(H3ErrorCode.H3_MESSAGE_ERROR, reason)


def field_section_size(headers: Headers) -> int:
    """RFC 9114 section 4.2.2: names and values plus 32 bytes per line."""
    return sum(len(name) + len(value) + 32 for name, value in headers)


def _split(headers: Headers, allowed: frozenset[bytes]) -> tuple[dict[bytes, bytes], Headers]:
    """Pseudo-headers (checked: known, once, first) and regular fields (checked)."""
    pseudo: dict[bytes, bytes] = {}
    fields: Headers = []
    for name, value in headers:
        if not name:
            raise _fail("empty field name")
        if name.startswith(b":"):
            if fields:
                raise _fail(f"pseudo-header {name!r} after a regular field")
            if name not in allowed:
                raise _fail(f"unknown pseudo-header {name!r}")
            if name in pseudo:
                raise _fail(f"pseudo-header {name!r} twice")
            pseudo[name] = value
            continue
        if _FORBIDDEN_NAME.intersection(name):
            raise _fail(f"invalid field name {name!r}")
        if name in CONNECTION_SPECIFIC:
            raise _fail(f"connection-specific field {name!r}")
        if name == b"te" and value != b"trailers":
            raise _fail("TE other than trailers")
        if _FORBIDDEN_VALUE.intersection(value) or value[:1] in (b" ", b"\t"):
            raise _fail(f"invalid value of {name!r}")
        fields.append((name, value))
    return pseudo, fields


@dataclass(frozen=True)
class RequestHead:
    method: str
    scheme: str
    authority: str
    path: str
    protocol: str | None  # extended CONNECT (RFC 9220)
    fields: Headers


def validate_request(headers: Headers) -> RequestHead:
    pseudo, fields = _split(headers, REQUEST_PSEUDO)
    method = pseudo.get(b":method")
    if not method:
        raise _fail("no :method")
    protocol = pseudo.get(b":protocol")
    if method == b"CONNECT" and protocol is None:
        if b":authority" not in pseudo or b":scheme" in pseudo or b":path" in pseudo:
            raise _fail("malformed CONNECT")
    else:
        if protocol is not None and method != b"CONNECT":
            raise _fail(":protocol without CONNECT")
        for name in (b":scheme", b":path"):
            if not pseudo.get(name):
                raise _fail(f"no {name.decode()}")
    authority = pseudo.get(b":authority", b"")
    host = next((v for n, v in fields if n == b"host"), None)
    if authority and host is not None and host != authority:
        raise _fail("host and :authority differ")
    return RequestHead(
        method.decode("latin-1"),
        pseudo.get(b":scheme", b"").decode("latin-1"),
        (authority or host or b"").decode("latin-1"),
        pseudo.get(b":path", b"").decode("latin-1"),
        protocol.decode("latin-1") if protocol is not None else None,
        fields,
    )


def validate_response(headers: Headers) -> tuple[int, Headers]:
    pseudo, fields = _split(headers, RESPONSE_PSEUDO)
    status = pseudo.get(b":status", b"")
    if len(status) != 3 or not status.isdigit():
        raise _fail(f"bad :status {status!r}")
    return int(status), fields


def validate_trailers(headers: Headers) -> Headers:
    return _split(headers, frozenset())[1]


def content_length(fields: Headers) -> int | None:
    """The content-length field's value (H3_MESSAGE_ERROR when malformed or conflicting)."""
    values = {v for n, v in fields if n == b"content-length"}
    if not values:
        return None
    if len(values) > 1 or not all(v.isdigit() for v in values):
        raise _fail("malformed content-length")
    return int(values.pop())
