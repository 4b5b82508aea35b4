"""Reading qlog files: JSON-SEQ (``.sqlog``, what quicish writes) and contained JSON
(``.qlog``, e.g. aioquic's ``QuicFileLogger``, qlog 0.3).

:func:`read_qlog` gives one :class:`QlogTrace` per file (the first trace of a contained
file), its events with names in the current ``quic:`` namespace (older names such as
``transport:packet_sent`` or ``recovery:metrics_updated`` are mapped) and times as absolute
milliseconds on the file's own clock (``relative_to_previous_event`` deltas are summed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .schema import LEGACY_EVENT_NAMES, RECORD_SEPARATOR


class QlogFormatError(ValueError):
    """The bytes are not a qlog file this reader understands."""


@dataclass(slots=True)
class QlogEvent:
    time: float  #: milliseconds on the trace's clock
    name: str  #: ``namespace:event_type``, legacy names mapped to the current ones
    data: dict[str, Any]


@dataclass(slots=True)
class QlogTrace:
    header: dict[str, Any]  #: the file header (JSON-SEQ) or the file object without traces
    trace: dict[str, Any]  #: the trace's metadata (vantage_point, common_fields, ...)
    events: list[QlogEvent] = field(default_factory=list)
    serialization: str = "json-seq"  #: ``json-seq`` or ``json``

    @property
    def vantage_point(self) -> str | None:
        vp = self.trace.get("vantage_point")
        return vp.get("type") if isinstance(vp, dict) else None

    @property
    def odcid(self) -> str | None:
        """The original destination connection ID (hex), from ``odcid``/``ODCID``/``group_id``."""
        common = self.trace.get("common_fields") or {}
        for key in ("odcid", "ODCID", "group_id"):
            if isinstance(common.get(key), str):
                return str(common[key])
        return None

    @property
    def start(self) -> float:
        """The time of the first event (ms), 0 for an empty trace."""
        return self.events[0].time if self.events else 0.0

    def named(self, name: str) -> list[QlogEvent]:
        """The events called ``name`` (``quic:`` is assumed when ``name`` has no namespace)."""
        full = name if ":" in name else f"quic:{name}"
        return [ev for ev in self.events if ev.name == full]


def split_records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(offset, body)`` of each RFC 7464 record (RS stripped, the LF kept)."""
    pos = data.find(RECORD_SEPARATOR)
    while pos != -1:
        nxt = data.find(RECORD_SEPARATOR, pos + 1)
        end = len(data) if nxt == -1 else nxt
        yield pos, data[pos + 1 : end]
        pos = nxt


def parse_json_seq(data: bytes) -> list[Any]:
    """The JSON texts of a JSON-SEQ byte string. A record that does not parse is an error,
    except a truncated last one (no LF: a writer that stopped mid-record), which is
    skipped, as RFC 7464 section 2.4 allows."""
    if not data.startswith(RECORD_SEPARATOR):
        raise QlogFormatError("a JSON-SEQ file starts with the record separator 0x1e")
    out: list[Any] = []
    records = list(split_records(data))
    for i, (offset, body) in enumerate(records):
        try:
            out.append(json.loads(body))
        except ValueError as exc:
            if i == len(records) - 1 and not body.endswith(b"\n"):
                break
            raise QlogFormatError(f"record {i} at byte {offset}: {exc}") from None
    return out


def looks_like_json_seq(data: bytes) -> bool:
    """JSON-SEQ rather than contained JSON: a record separator near the start (JSON text
    never holds a raw 0x1e)."""
    return RECORD_SEPARATOR in data[:4096]


def normalize_name(name: str) -> str:
    """The current name of a (possibly legacy) event name."""
    return LEGACY_EVENT_NAMES.get(name, name)


def _events(raw: list[Any], relative_to_previous: bool) -> list[QlogEvent]:
    events = []
    clock = 0.0
    for i, ev in enumerate(raw):
        if not isinstance(ev, dict):
            raise QlogFormatError(f"event {i} is not an object")
        t = ev.get("time")
        if not isinstance(t, int | float) or isinstance(t, bool):
            raise QlogFormatError(f"event {i} has no numeric time")
        clock = clock + t if relative_to_previous else float(t)
        name = ev.get("name")
        data = ev.get("data", {})
        if not isinstance(name, str) or not isinstance(data, dict):
            raise QlogFormatError(f"event {i} needs a name and a data object")
        events.append(QlogEvent(clock, normalize_name(name), data))
    return events


def _time_format(trace: dict[str, Any]) -> str:
    common = trace.get("common_fields")
    fmt = common.get("time_format") if isinstance(common, dict) else None
    return fmt if isinstance(fmt, str) else "relative_to_epoch"


def loads_qlog(data: bytes) -> QlogTrace:
    """Parse a qlog file's bytes (JSON-SEQ when it starts with RS, contained JSON otherwise)."""
    if looks_like_json_seq(data):
        records = parse_json_seq(data)
        if not records or not isinstance(records[0], dict):
            raise QlogFormatError("the first record must be the file header object")
        header = records[0]
        trace = header.get("trace")
        if not isinstance(trace, dict):
            raise QlogFormatError("the file header has no trace object")
        relative = _time_format(trace) == "relative_to_previous_event"
        return QlogTrace(header, trace, _events(records[1:], relative), "json-seq")
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise QlogFormatError(f"neither JSON-SEQ nor JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("traces"), list) or not obj["traces"]:
        raise QlogFormatError("a contained qlog file needs a non-empty traces array")
    trace = obj["traces"][0]
    if not isinstance(trace, dict) or not isinstance(trace.get("events"), list):
        raise QlogFormatError("the first trace has no events array")
    header = {k: v for k, v in obj.items() if k != "traces"}
    meta = {k: v for k, v in trace.items() if k != "events"}
    relative = _time_format(trace) == "relative_to_previous_event"
    return QlogTrace(header, meta, _events(trace["events"], relative), "json")


def read_qlog(path: str | os.PathLike[str]) -> QlogTrace:
    """Read a ``.sqlog`` or ``.qlog`` file."""
    with open(path, "rb") as fh:
        return loads_qlog(fh.read())
