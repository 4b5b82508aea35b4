"""Checking a qlog file against the rules of the drafts quicish follows.

:func:`validate_bytes` returns a list of problems (empty: valid). For JSON-SEQ files it
checks the RFC 7464 framing (every record starts with RS and ends with LF, holds one JSON
object), the ``QlogFileSeq`` header (main schema section 6), every event's ``time``/``name``/
``data`` and namespace, lowercase field names, time order, and the required members of the
``quic`` events and frames of quic-events-13. Contained JSON files of older qlog versions
(aioquic's 0.3) get the structural checks and the parts of the event rules that version
shares (``strict=False``: packet types and numbers, frame types, stream ids).
:func:`check_packet_numbers` checks that sent packet numbers grow within each space.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from .reader import QlogTrace, loads_qlog, looks_like_json_seq, normalize_name, split_records
from .schema import (
    CLOSE_TRIGGERS,
    FILE_SCHEMA_SEQ,
    FRAME_TYPES,
    KEY_TYPES,
    MIGRATION_STATES,
    NUMBERED_PACKET_TYPES,
    PACKET_DROP_TRIGGERS,
    PACKET_LOST_TRIGGERS,
    PACKET_TYPES,
    SERIALIZATION_FORMAT_SEQ,
    SPACE_OF_PACKET_TYPE,
    STREAM_STATES,
    TIME_FORMATS,
    VANTAGE_POINT_TYPES,
)

_HEX = re.compile(r"(?:[0-9a-f]{2})*\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")
_NAME = re.compile(r"[a-z0-9_]+:[a-z0-9_]+\Z")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)\Z")


class QlogValidationError(ValueError):
    """A qlog file broke the rules; ``problems`` lists how."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
        self.problems = problems


def _uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _hex(v: Any) -> bool:
    return isinstance(v, str) and _HEX.match(v) is not None


class _Checker:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.problems: list[str] = []

    def fail(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    # ---- generic helpers -----------------------------------------------------------------
    def need(self, where: str, obj: dict[str, Any], key: str, ok: Callable[[Any], bool]) -> None:
        if key not in obj:
            self.fail(where, f"missing required field {key!r}")
        elif not ok(obj[key]):
            self.fail(where, f"bad value of {key!r}: {obj[key]!r}")

    def may(self, where: str, obj: dict[str, Any], key: str, ok: Callable[[Any], bool]) -> None:
        if key in obj and not ok(obj[key]):
            self.fail(where, f"bad value of {key!r}: {obj[key]!r}")

    def lowercase_keys(self, where: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key != key.lower():
                    self.fail(where, f"field name {key!r} is not lowercase")
                self.lowercase_keys(where, value)
        elif isinstance(obj, list):
            for item in obj:
                self.lowercase_keys(where, item)

    # ---- header ------------------------------------------------------------------------------
    def seq_header(self, header: Any, raw: bytes) -> set[str] | None:
        """Check the QlogFileSeq header; the namespaces its event schemas declare."""
        where = "header"
        if not isinstance(header, dict):
            self.fail(where, "the first record must be a JSON object")
            return None
        self.need(where, header, "file_schema", lambda v: v == FILE_SCHEMA_SEQ)
        self.need(
            where,
            header,
            "serialization_format",
            lambda v: isinstance(v, str) and v.lower() == SERIALIZATION_FORMAT_SEQ,
        )
        head = raw[:256]
        if b'"file_schema"' not in head or b'"serialization_format"' not in head:
            self.fail(
                where, "file_schema and serialization_format should be in the first 256 bytes"
            )
        trace = header.get("trace")
        if not isinstance(trace, dict):
            self.fail(where, "missing required trace object")
            return None
        if "events" in trace:
            self.fail(where, "a JSON-SEQ trace carries no events array (events are records)")
        return self.trace_meta("header.trace", trace)

    def trace_meta(self, where: str, trace: dict[str, Any]) -> set[str] | None:
        schemas = trace.get("event_schemas")
        namespaces: set[str] | None = None
        if self.strict:
            ok = isinstance(schemas, list) and bool(schemas)
            ok = ok and all(isinstance(s, str) and _URI.match(s) for s in schemas)  # type: ignore[union-attr]
            if not ok:
                self.fail(where, "event_schemas must be a non-empty array of absolute URIs")
            else:
                namespaces = {_namespace(s) for s in schemas}  # type: ignore[union-attr]
        vp = trace.get("vantage_point")
        if vp is not None:
            if not isinstance(vp, dict):
                self.fail(where, "vantage_point must be an object")
            else:
                self.need(f"{where}.vantage_point", vp, "type", VANTAGE_POINT_TYPES.__contains__)
                self.may(
                    f"{where}.vantage_point",
                    vp,
                    "flow",
                    ("client", "server", "unknown").__contains__,
                )
        common = trace.get("common_fields")
        if common is not None:
            if not isinstance(common, dict):
                self.fail(where, "common_fields must be an object")
            else:
                self.common_fields(f"{where}.common_fields", common)
        return namespaces

    def common_fields(self, where: str, common: dict[str, Any]) -> None:
        self.may(where, common, "time_format", TIME_FORMATS.__contains__)
        self.may(where, common, "group_id", lambda v: isinstance(v, str))
        ref = common.get("reference_time")
        if ref is None:
            return
        if not isinstance(ref, dict):
            self.fail(where, "reference_time must be an object")
            return
        self.need(f"{where}.reference_time", ref, "clock_type", lambda v: isinstance(v, str))
        self.need(
            f"{where}.reference_time",
            ref,
            "epoch",
            lambda v: v == "unknown" or (isinstance(v, str) and _RFC3339.match(v) is not None),
        )
        if ref.get("clock_type") == "monotonic" and ref.get("epoch") != "unknown":
            self.fail(where, "a monotonic reference clock must have the epoch 'unknown'")
        self.may(
            f"{where}.reference_time",
            ref,
            "wall_clock_time",
            lambda v: isinstance(v, str) and _RFC3339.match(v) is not None,
        )

    # ---- events ------------------------------------------------------------------------------
    def event(self, where: str, ev: Any, namespaces: set[str] | None) -> None:
        if not isinstance(ev, dict):
            self.fail(where, "an event must be a JSON object")
            return
        self.need(where, ev, "time", _number)
        self.need(where, ev, "name", lambda v: isinstance(v, str))
        self.need(where, ev, "data", lambda v: isinstance(v, dict))
        name = ev.get("name")
        data = ev.get("data")
        if not isinstance(name, str) or not isinstance(data, dict):
            return
        if self.strict:
            if _NAME.match(name) is None:
                self.fail(where, f"event name {name!r} is not namespace:event_type")
            elif namespaces is not None and name.split(":")[0] not in namespaces:
                self.fail(where, f"namespace of {name!r} is not in the trace's event_schemas")
        name = normalize_name(name)
        check = _EVENT_CHECKS.get(name)
        if check is not None:
            check(self, f"{where} ({name})", data)

    def header(self, where: str, hdr: Any, need_number: bool) -> None:
        if not isinstance(hdr, dict):
            self.fail(where, "header must be an object")
            return
        self.need(where, hdr, "packet_type", PACKET_TYPES.__contains__)
        if need_number and hdr.get("packet_type") in NUMBERED_PACKET_TYPES:
            self.need(where, hdr, "packet_number", _uint)
        else:
            self.may(where, hdr, "packet_number", _uint)
        for key in ("dcid", "scid", "version"):
            self.may(where, hdr, key, _hex)
        for key in ("dcil", "scil", "packet_number_length", "length"):
            self.may(where, hdr, key, _uint)

    def frames(self, where: str, frames: Any) -> None:
        if not isinstance(frames, list):
            self.fail(where, "frames must be an array")
            return
        for i, fr in enumerate(frames):
            here = f"{where}.frames[{i}]"
            if not isinstance(fr, dict):
                self.fail(here, "a frame must be an object")
                continue
            ftype = fr.get("frame_type")
            if not isinstance(ftype, str) or (self.strict and ftype not in FRAME_TYPES):
                self.fail(here, f"bad frame_type {ftype!r}")
                continue
            if ftype == "stream":
                self.need(here, fr, "stream_id", _uint)
                self.may(here, fr, "offset", _uint)
                self.may(here, fr, "fin", lambda v: isinstance(v, bool))
            elif ftype == "ack":
                self.may(here, fr, "acked_ranges", _ack_ranges)
                self.may(here, fr, "ack_delay", _number)
            if not self.strict:
                continue
            for key in _FRAME_FIELDS.get(ftype, ()):
                self.need(here, fr, key, _FIELD_CHECKS.get(key, _uint))
            if ftype == "crypto":
                raw = fr.get("raw")
                if not isinstance(raw, dict) or not _uint(raw.get("length")):
                    self.fail(here, "a crypto frame logs its length in raw.length")
            if fr.get("error") == "unknown" and ftype != "connection_close":
                self.need(here, fr, "error_code", _uint)
            for key in ("connection_id", "stateless_reset_token", "data", "reason_bytes"):
                self.may(here, fr, key, _hex)


def _ack_ranges(v: Any) -> bool:
    if not isinstance(v, list):
        return False
    for r in v:
        if not isinstance(r, list) or not 1 <= len(r) <= 2 or not all(_uint(n) for n in r):
            return False
        if len(r) == 2 and r[0] > r[1]:
            return False
    return True


def _namespace(uri: str) -> str:
    """``urn:ietf:params:qlog:events:quic-13`` -> ``quic`` (draft suffix dropped)."""
    last = uri.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    return re.sub(r"-\d+\Z", "", last)


_STREAM_TYPE = ("unidirectional", "bidirectional").__contains__
_FRAME_FIELDS: dict[str, tuple[str, ...]] = {
    "reset_stream": ("stream_id", "error", "final_size"),
    "reset_stream_at": ("stream_id", "error", "final_size", "reliable_size"),
    "stop_sending": ("stream_id", "error"),
    "crypto": ("offset",),
    "new_token": ("token",),
    "max_data": ("maximum",),
    "max_stream_data": ("stream_id", "maximum"),
    "max_streams": ("stream_type", "maximum"),
    "data_blocked": ("limit",),
    "stream_data_blocked": ("stream_id", "limit"),
    "streams_blocked": ("stream_type", "limit"),
    "new_connection_id": ("sequence_number", "retire_prior_to", "connection_id"),
    "retire_connection_id": ("sequence_number",),
    "unknown": ("frame_type_bytes",),
}
_FIELD_CHECKS: dict[str, Callable[[Any], bool]] = {
    "error": lambda v: isinstance(v, str),
    "token": lambda v: isinstance(v, dict),
    "stream_type": _STREAM_TYPE,
    "connection_id": _hex,
}


# ---- per-event rules -------------------------------------------------------------------------
def _packet(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.need(where, d, "header", lambda v: True)
    c.header(f"{where}.header", d.get("header"), need_number=True)
    if "frames" in d:
        c.frames(where, d["frames"])


def _packet_lost(c: _Checker, where: str, d: dict[str, Any]) -> None:
    if "header" in d:
        c.header(f"{where}.header", d["header"], need_number=True)
    if "frames" in d:
        c.frames(where, d["frames"])
    if c.strict:  # trigger names changed between drafts
        c.may(where, d, "trigger", PACKET_LOST_TRIGGERS.__contains__)


def _packet_dropped(c: _Checker, where: str, d: dict[str, Any]) -> None:
    if "header" in d:
        c.header(f"{where}.header", d["header"], need_number=False)
    if c.strict:
        c.may(where, d, "trigger", PACKET_DROP_TRIGGERS.__contains__)


def _packets_acked(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.may(
        where, d, "packet_number_space", ("initial", "handshake", "application_data").__contains__
    )
    c.may(where, d, "packet_numbers", lambda v: isinstance(v, list) and all(_uint(n) for n in v))


def _connection_started(c: _Checker, where: str, d: dict[str, Any]) -> None:
    if c.strict:
        c.need(where, d, "local", lambda v: isinstance(v, dict))
        c.need(where, d, "remote", lambda v: isinstance(v, dict))


def _connection_closed(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.may(where, d, "initiator", ("local", "remote").__contains__)
    if c.strict:
        c.may(where, d, "trigger", CLOSE_TRIGGERS.__contains__)
    c.may(where, d, "error_code", _uint)
    if "unknown" in (d.get("connection_error"), d.get("application_error")):
        c.need(where, d, "error_code", _uint)


def _parameters_set(c: _Checker, where: str, d: dict[str, Any]) -> None:
    if c.strict:
        c.may(where, d, "initiator", ("local", "remote").__contains__)
        for key in ("original_destination_connection_id", "initial_source_connection_id"):
            c.may(where, d, key, _hex)


def _stream_state(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.need(where, d, "stream_id", _uint)
    if c.strict:
        c.need(where, d, "new", STREAM_STATES.__contains__)
        c.need(where, d, "stream_side", ("sending", "receiving").__contains__)


def _key(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.need(where, d, "key_type", KEY_TYPES.__contains__)


def _recovery_parameters(c: _Checker, where: str, d: dict[str, Any]) -> None:
    if c.strict:
        c.need(where, d, "timer_granularity", _uint)


def _metrics(c: _Checker, where: str, d: dict[str, Any]) -> None:
    if not d:
        c.fail(where, "recovery_metrics_updated carries at least one metric")
    for key in ("min_rtt", "smoothed_rtt", "latest_rtt", "rtt_variance"):
        c.may(where, d, key, lambda v: _number(v) and v >= 0)
    for key in ("congestion_window", "bytes_in_flight", "ssthresh", "pacing_rate", "pto_count"):
        c.may(where, d, key, lambda v: _number(v) and v >= 0)


def _congestion(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.need(where, d, "new", lambda v: isinstance(v, str))


def _migration(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.need(where, d, "new", MIGRATION_STATES.__contains__)


def _mtu(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.need(where, d, "new", lambda v: isinstance(v, int) and v > 0)
    c.may(where, d, "old", lambda v: isinstance(v, int) and v > 0)
    c.may(where, d, "done", lambda v: isinstance(v, bool))


def _tuple_assigned(c: _Checker, where: str, d: dict[str, Any]) -> None:
    c.need(where, d, "tuple_id", lambda v: isinstance(v, str))


def _cid_updated(c: _Checker, where: str, d: dict[str, Any]) -> None:
    if c.strict:
        c.need(where, d, "initiator", ("local", "remote").__contains__)
        c.may(where, d, "old", _hex)
        c.may(where, d, "new", _hex)


def _versions(c: _Checker, where: str, d: dict[str, Any]) -> None:
    if not c.strict:  # qlog 0.3 logged versions as numbers
        return
    for key in ("server_versions", "client_versions"):
        c.may(where, d, key, lambda v: isinstance(v, list) and all(_hex(x) for x in v))
    c.may(where, d, "chosen_version", _hex)


_EVENT_CHECKS: dict[str, Callable[[_Checker, str, dict[str, Any]], None]] = {
    "quic:packet_sent": _packet,
    "quic:packet_received": _packet,
    "quic:packet_lost": _packet_lost,
    "quic:packet_dropped": _packet_dropped,
    "quic:packets_acked": _packets_acked,
    "quic:connection_started": _connection_started,
    "quic:connection_closed": _connection_closed,
    "quic:parameters_set": _parameters_set,
    "quic:stream_state_updated": _stream_state,
    "quic:key_updated": _key,
    "quic:key_discarded": _key,
    "quic:recovery_parameters_set": _recovery_parameters,
    "quic:recovery_metrics_updated": _metrics,
    "quic:congestion_state_updated": _congestion,
    "quic:migration_state_updated": _migration,
    "quic:mtu_updated": _mtu,
    "quic:version_information": _versions,
    "quic:tuple_assigned": _tuple_assigned,
    "quic:connection_id_updated": _cid_updated,
}


# ---- entry points ----------------------------------------------------------------------------
def _validate_seq(data: bytes, c: _Checker) -> None:
    if not data.startswith(b"\x1e"):
        c.fail("framing", "a JSON-SEQ file starts with the record separator 0x1e")
        return
    records: list[Any] = []
    for i, (offset, body) in enumerate(split_records(data)):
        where = f"record {i} (byte {offset})"
        if not body.endswith(b"\n"):
            c.fail(where, "does not end with a line feed before the next record")
        if not body.strip():
            c.fail(where, "is empty")
            records.append(None)
            continue
        try:
            records.append(json.loads(body))
        except ValueError as exc:
            c.fail(where, f"is not valid JSON ({exc})")
            records.append(None)
    if not records or records[0] is None:
        return
    namespaces = c.seq_header(records[0], data)
    trace = records[0].get("trace") if isinstance(records[0], dict) else None
    common = trace.get("common_fields") if isinstance(trace, dict) else None
    relative = (
        isinstance(common, dict) and common.get("time_format") == "relative_to_previous_event"
    )
    c.lowercase_keys("header", records[0])
    last: float | None = None
    for i, ev in enumerate(records[1:], start=1):
        if ev is None:
            continue
        where = f"event {i}"
        c.event(where, ev, namespaces)
        c.lowercase_keys(where, ev)
        t = ev.get("time") if isinstance(ev, dict) else None
        if isinstance(t, int | float) and not isinstance(t, bool):
            if relative and t < 0:
                c.fail(where, "relative_to_previous_event times are never negative")
            elif not relative and last is not None and t < last:
                c.fail(where, f"time {t} is before the previous event's {last}")
            last = t


def _validate_contained(data: bytes, c: _Checker) -> None:
    try:
        obj = json.loads(data)
    except ValueError as exc:
        c.fail("file", f"is neither JSON-SEQ nor JSON ({exc})")
        return
    if not isinstance(obj, dict):
        c.fail("file", "the top level must be an object")
        return
    if "file_schema" not in obj and "qlog_version" not in obj:
        c.fail("file", "needs file_schema (or, before main-schema-10, qlog_version)")
    traces = obj.get("traces")
    if not isinstance(traces, list) or not traces:
        c.fail("file", "needs a non-empty traces array")
        return
    for t, trace in enumerate(traces):
        if not isinstance(trace, dict):
            c.fail(f"trace {t}", "must be an object")
            continue
        if "error_description" in trace:
            continue  # a TraceError
        namespaces = c.trace_meta(f"trace {t}", trace)
        events = trace.get("events")
        if not isinstance(events, list):
            c.fail(f"trace {t}", "needs an events array")
            continue
        for i, ev in enumerate(events):
            c.event(f"trace {t} event {i}", ev, namespaces)


def validate_bytes(data: bytes, strict: bool | None = None) -> list[str]:
    """The problems of a qlog file's bytes; empty when valid. ``strict`` (default: for
    JSON-SEQ, which quicish writes) applies every rule of the drafts quicish follows;
    otherwise only those older qlog versions share."""
    seq = looks_like_json_seq(data)
    c = _Checker(seq if strict is None else strict)
    if seq:
        _validate_seq(data, c)
    else:
        _validate_contained(data, c)
    return c.problems


def validate_file(path: str | os.PathLike[str], strict: bool | None = None) -> list[str]:
    with open(path, "rb") as fh:
        return validate_bytes(fh.read(), strict)


def assert_valid(path: str | os.PathLike[str], strict: bool | None = None) -> QlogTrace:
    """Read ``path``, raising :class:`QlogValidationError` when it breaks a rule."""
    with open(path, "rb") as fh:
        data = fh.read()
    problems = validate_bytes(data, strict)
    if problems:
        raise QlogValidationError(problems)
    return loads_qlog(data)


def check_packet_numbers(
    trace: QlogTrace, names: Iterable[str] = ("quic:packet_sent",)
) -> list[str]:
    """Problems where packet numbers of the ``names`` events do not strictly increase
    within a packet number space."""
    wanted = set(names)
    last: dict[tuple[str, str], int] = {}
    problems = []
    for ev in trace.events:
        if ev.name not in wanted:
            continue
        hdr = ev.data.get("header") or {}
        space = SPACE_OF_PACKET_TYPE.get(hdr.get("packet_type", ""))
        pn = hdr.get("packet_number")
        if space is None or not isinstance(pn, int) or pn < 0:
            continue
        key = (ev.name, space)
        if key in last and pn <= last[key]:
            problems.append(f"{ev.name} at {ev.time} ms: {space} packet {pn} after {last[key]}")
        last[key] = pn
    return problems
