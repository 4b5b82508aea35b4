"""One DEBUG line per packet on ``quicish.packet``, from a connection's tracer events.

:class:`PacketLog` is a tracer sink, ``sink(name, data)``, with qlog event names without
the ``quic:`` namespace: ``packet_sent``, ``packet_received``, ``packet_lost``,
``packet_dropped`` and ``packets_acked`` become one line each, any other event is ignored::

    [6b3a0f1c2d4e5f60] sent 1RTT #42 1252 B: ACK[0-15,18-20] STREAM(id=4 off=1200 len=1150 fin)

It reads both shapes of event data: the draft's (draft-ietf-quic-qlog-quic-events-13, as
:mod:`quicish.qlog.events` builds them: ``header`` {packet_type, packet_number}, ``raw``
{length}, ``frames`` as qlog frame objects) and the engine's older small dicts (``space``,
``pn``, ``size``, ``frames`` as record class names). :func:`attach_packet_log` gives a
connection the sink only if ``quicish.packet`` is enabled for DEBUG when it starts, so a
connection without it pays nothing.
"""

from __future__ import annotations

import functools
import logging
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .log import PACKET, address

Tracer = Callable[[str, dict[str, Any]], None]
QlogFrame = Mapping[str, Any]

_packet_logger = logging.getLogger(PACKET)
_VERBS = {"packet_sent": "sent", "packet_received": "received", "packet_lost": "lost"}
_SPACE_TYPES = ("initial", "handshake", "1RTT")  # the engine's space index -> packet type


# ---- frames ----------------------------------------------------------------------------------
def _length(frame: QlogFrame) -> Any:
    raw = frame.get("raw")
    return raw.get("length", "?") if raw else frame.get("length", "?")


def _fields(name: str, *parts: str) -> str:
    return f"{name}({' '.join(parts)})"


def _direction(frame: QlogFrame) -> str:
    return "uni" if frame.get("stream_type") == "unidirectional" else "bidi"


def _error(frame: QlogFrame) -> str:
    """A qlog error member: its name, or ``code=N`` for codes without one."""
    name = frame.get("error", "unknown")
    code = frame.get("error_code")
    return f"code={code:#x}" if name == "unknown" and isinstance(code, int) else str(name)


def _stream(fr: QlogFrame) -> str:
    parts = [f"id={fr.get('stream_id')}", f"off={fr.get('offset', 0)}", f"len={_length(fr)}"]
    if fr.get("fin"):
        parts.append("fin")
    return _fields("STREAM", *parts)


def _ack(fr: QlogFrame) -> str:
    ranges = sorted(fr.get("acked_ranges", ()), key=lambda r: r[0])
    text = ",".join(
        f"{r[0]}-{r[-1]}" if len(r) > 1 and r[-1] != r[0] else f"{r[0]}" for r in ranges
    )
    ecn = f" ce={fr['ce']}" if fr.get("ce") else ""
    return f"ACK[{text}]{ecn}"


def _close(fr: QlogFrame) -> str:
    space = "application" if fr.get("error_space") == "application" else "transport"
    parts = [space, _error(fr)]
    if fr.get("reason"):
        parts.append(repr(fr["reason"]))  # peer text: quoted, on one line
    return _fields("CONNECTION_CLOSE", *parts)


_FRAMES: dict[str, Callable[[QlogFrame], str]] = {
    "stream": _stream,
    "ack": _ack,
    "connection_close": _close,
    "crypto": lambda fr: _fields("CRYPTO", f"off={fr.get('offset', 0)}", f"len={_length(fr)}"),
    "padding": lambda fr: _fields("PADDING", str(_length(fr))),
    "max_data": lambda fr: _fields("MAX_DATA", str(fr.get("maximum"))),
    "max_stream_data": lambda fr: _fields(
        "MAX_STREAM_DATA", f"id={fr.get('stream_id')}", f"max={fr.get('maximum')}"
    ),
    "max_streams": lambda fr: _fields("MAX_STREAMS", _direction(fr), str(fr.get("maximum"))),
    "data_blocked": lambda fr: _fields("DATA_BLOCKED", str(fr.get("limit"))),
    "stream_data_blocked": lambda fr: _fields(
        "STREAM_DATA_BLOCKED", f"id={fr.get('stream_id')}", f"limit={fr.get('limit')}"
    ),
    "streams_blocked": lambda fr: _fields("STREAMS_BLOCKED", _direction(fr), str(fr.get("limit"))),
    "new_connection_id": lambda fr: _fields(
        "NEW_CONNECTION_ID",
        f"seq={fr.get('sequence_number')}",
        f"retire_prior_to={fr.get('retire_prior_to', 0)}",
        f"cid={fr.get('connection_id')}",
    ),
    "retire_connection_id": lambda fr: _fields(
        "RETIRE_CONNECTION_ID", f"seq={fr.get('sequence_number')}"
    ),
    "reset_stream": lambda fr: _fields(
        "RESET_STREAM", f"id={fr.get('stream_id')}", _error(fr), f"final={fr.get('final_size')}"
    ),
    "stop_sending": lambda fr: _fields("STOP_SENDING", f"id={fr.get('stream_id')}", _error(fr)),
    "path_challenge": lambda fr: _fields("PATH_CHALLENGE", str(fr.get("data", ""))),
    "path_response": lambda fr: _fields("PATH_RESPONSE", str(fr.get("data", ""))),
    "new_token": lambda fr: _fields("NEW_TOKEN", f"len={_length(fr.get('token') or {})}"),
    "datagram": lambda fr: _fields("DATAGRAM", f"len={_length(fr)}"),
    "unknown": lambda fr: _fields("UNKNOWN", f"type={fr.get('frame_type_bytes', '?')}"),
}


def frame_summary(frame: QlogFrame) -> str:
    """``STREAM(id=4 off=1200 len=1150 fin)``, ``ACK[0-15,18-20]``, ``PING``: one qlog
    frame object in a few characters."""
    kind = str(frame.get("frame_type", "unknown"))
    render = _FRAMES.get(kind)
    return render(frame) if render is not None else kind.upper()


@functools.lru_cache(maxsize=64)
def _record_name(record: str) -> str:
    """``MaxStreamDataRecord`` (the engine's record class names) -> ``MAX_STREAM_DATA``."""
    stem = record.removesuffix("Record")
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", stem).upper()


# ---- packets ---------------------------------------------------------------------------------
def _numbers(numbers: Iterable[int]) -> str:
    """``[0-15,18-20]``: packet numbers as ranges."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run[-1] = n
            continue
        if run:
            out.append(f"{run[0]}-{run[1]}" if run[1] != run[0] else f"{run[0]}")
        run = [n, n]
    if run:
        out.append(f"{run[0]}-{run[1]}" if run[1] != run[0] else f"{run[0]}")
    return f"[{','.join(out)}]"


def _packet(verb: str, data: Mapping[str, Any]) -> str:
    header = data.get("header")
    if header is not None:  # the draft's shape
        ptype, pn = header.get("packet_type", "?"), header.get("packet_number")
        raw = data.get("raw")
        size = raw.get("length") if raw else None
        frames = " ".join(frame_summary(fr) for fr in data.get("frames", ()))
    else:  # the engine's small dicts
        space = data.get("space")
        ptype = _SPACE_TYPES[space] if isinstance(space, int) and 0 <= space < 3 else "?"
        pn, size = data.get("pn"), data.get("size")
        frames = " ".join(_record_name(str(name)) for name in data.get("frames", ()))
    line = f"{verb} {ptype}"
    if pn is not None:
        line += f" #{pn}"
    if size is not None:
        line += f" {size} B"
    if data.get("path"):
        line += f" via {address(data['path'])}"
    if data.get("trigger"):
        line += f" ({data['trigger']})"
    return f"{line}: {frames}" if frames else line


def packet_line(name: str, data: Mapping[str, Any]) -> str | None:
    """The line of one tracer event, or None for events that are not about packets."""
    verb = _VERBS.get(name)
    if verb is not None:
        return _packet(verb, data)
    if name == "packets_acked":
        space = data.get("packet_number_space", "?")
        return f"acked {space} {_numbers(data.get('packet_numbers', ()))}"
    if name == "packet_dropped":
        line = _packet("dropped", {k: v for k, v in data.items() if k != "trigger"})
        return f"{line}: {data.get('trigger', 'unknown')}"
    return None


# ---- the sink --------------------------------------------------------------------------------
class Traceable(Protocol):
    """What :func:`attach_packet_log` needs of a connection (the sans-IO ``Connection``)."""

    tracer: Tracer | None
    is_client: bool

    @property
    def original_dcid(self) -> bytes: ...


class PacketLog:
    """The sink: one DEBUG line per packet event on ``quicish.packet``, starting with the
    connection's ID; records carry ``connection_id``, ``role`` (``client``/``server``) and
    ``qlog_event`` (the event name). ``source``: the connection ID, or the connection (held
    weakly), whose original DCID is read at the first event (a client picks it when it
    connects)."""

    __slots__ = ("_ident", "_logger", "_role", "_source")

    def __init__(
        self, source: bytes | Traceable, logger: logging.Logger | None = None, role: str = "-"
    ) -> None:
        self._logger = logger or _packet_logger
        if isinstance(source, bytes):
            self._ident, self._source, self._role = source.hex(), None, role
        else:
            self._ident, self._source = "", weakref.ref(source)
            self._role = "client" if source.is_client else "server"

    def _id(self) -> str:
        if not self._ident:
            conn = self._source() if self._source is not None else None
            cid = conn.original_dcid if conn is not None else b""
            if not cid:
                return "-"
            self._ident, self._source = cid.hex(), None
        return self._ident

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        logger = self._logger
        if not logger.isEnabledFor(logging.DEBUG):
            return
        line = packet_line(name, data)
        if line is not None:
            ident = self._id()
            extra = {"connection_id": ident, "role": self._role, "qlog_event": name}
            logger.debug("[%s] %s", ident, line, extra=extra)


def chain(first: Tracer, second: Tracer) -> Tracer:
    """A tracer calling ``first`` then ``second`` (a qlog writer and the packet log)."""

    def both(name: str, data: dict[str, Any]) -> None:
        first(name, data)
        second(name, data)

    return both


def attach_packet_log(conn: Traceable) -> PacketLog | None:
    """Give ``conn`` the packet log if ``quicish.packet`` is enabled for DEBUG now (one
    check per connection; nothing is attached, and nothing costs, otherwise); a tracer it
    already has keeps its events."""
    if not _packet_logger.isEnabledFor(logging.DEBUG):
        return None
    sink = PacketLog(conn)
    current = conn.tracer
    conn.tracer = sink if current is None else chain(current, sink)
    return sink
