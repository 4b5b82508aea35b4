"""quicish.qlog.writer: JSON-SEQ framing bytes, the file header, names, buffering, times."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from quicish.qlog import (
    QlogDirectory,
    QlogWriter,
    open_qlog,
    qlog_file_name,
    read_qlog,
    validate_bytes,
)
from quicish.qlog.writer import encode_record, file_header

ODCID = bytes.fromhex("c0ffee0011223344")


def records(data: bytes) -> list[bytes]:
    """Split on RS, checking RFC 7464 framing on the way."""
    assert data.startswith(b"\x1e")
    parts = data.split(b"\x1e")[1:]
    for part in parts:
        assert part.endswith(b"\n") and part.count(b"\n") == 1
    return parts


def test_framing_bytes() -> None:
    out = io.BytesIO()
    w = QlogWriter(out, ODCID, True, start=10.0, close_stream=False)
    w.event("quic:packet_sent", {"header": {"packet_type": "1RTT", "packet_number": 0}}, 10.0)
    w.event("packet_received", {"header": {"packet_type": "1RTT", "packet_number": 0}}, 10.25)
    w.close()
    data = out.getvalue()
    parts = records(data)
    assert len(parts) == 3
    assert parts[1] == (
        b'{"time":0.000,"name":"quic:packet_sent","data":{"header":'
        b'{"packet_type":"1RTT","packet_number":0}}}\n'
    )
    assert parts[2].startswith(b'{"time":250.000,"name":"quic:packet_received",')
    assert encode_record({"a": 1}) == b'\x1e{"a":1}\n'
    assert validate_bytes(data) == []


def test_header_record() -> None:
    out = io.BytesIO()
    QlogWriter(out, ODCID, False, title="t", close_stream=False).close()
    header = json.loads(records(out.getvalue())[0])
    assert header["file_schema"] == "urn:ietf:params:qlog:file:sequential"
    assert header["serialization_format"] == "application/qlog+json-seq"
    assert header["title"] == "t"
    trace = header["trace"]
    assert trace["vantage_point"] == {"name": "quicish", "type": "server"}
    assert trace["event_schemas"] == ["urn:ietf:params:qlog:events:quic-13"]
    common = trace["common_fields"]
    assert common["odcid"] == common["group_id"] == ODCID.hex()
    assert common["time_format"] == "relative_to_epoch"
    assert common["reference_time"]["clock_type"] == "monotonic"
    assert common["reference_time"]["epoch"] == "unknown"
    assert common["reference_time"]["wall_clock_time"].endswith("Z")
    # the two identifying fields come first (the draft: within the first 256 bytes)
    assert out.getvalue().index(b"serialization_format") < 256
    client = file_header(ODCID, True, wall_clock=0.0)
    assert client["trace"]["vantage_point"]["type"] == "client"
    assert client["trace"]["common_fields"]["reference_time"]["wall_clock_time"] == (
        "1970-01-01T00:00:00.000Z"
    )


def test_file_name_and_directory(tmp_path: Path) -> None:
    assert qlog_file_name(bytes.fromhex("0a0b"), True) == "0a0b_client.sqlog"
    assert qlog_file_name(ODCID, False) == "c0ffee0011223344_server.sqlog"
    target = tmp_path / "qlogs" / "nested"
    with open_qlog(target, ODCID, True) as w:
        w.event("quic:connection_started", {"local": {}, "remote": {}}, w.start)
    path = target / "c0ffee0011223344_client.sqlog"
    assert w.path == str(path)
    trace = read_qlog(path)
    assert trace.vantage_point == "client" and trace.odcid == ODCID.hex()
    assert [ev.name for ev in trace.events] == ["quic:connection_started"]
    directory = QlogDirectory(tmp_path)
    assert directory.file_for(ODCID, False) == str(tmp_path / "c0ffee0011223344_server.sqlog")
    directory.writer(ODCID, False).close()
    assert (tmp_path / "c0ffee0011223344_server.sqlog").exists()


def test_qlogdir_environment() -> None:
    assert QlogDirectory.from_env({}) is None
    assert QlogDirectory.from_env({"QLOGDIR": ""}) is None
    found = QlogDirectory.from_env({"QLOGDIR": "/tmp/q"})
    assert found is not None and found.path == "/tmp/q"
    chosen = QlogDirectory.resolve("/tmp/explicit", {"QLOGDIR": "/tmp/q"})
    assert chosen is not None and chosen.path == "/tmp/explicit"
    fallback = QlogDirectory.resolve(None, {"QLOGDIR": "/tmp/q"})
    assert fallback is not None and fallback.path == "/tmp/q"
    assert QlogDirectory.resolve(None, {}) is None


def test_buffered_until_chunk_or_close() -> None:
    out = io.BytesIO()
    w = QlogWriter(out, ODCID, True, start=0.0, flush_every=3, close_stream=False)
    header_size = len(out.getvalue())
    w.event("quic:a", {}, 0.001)
    w.event("quic:b", {}, 0.002)
    assert len(out.getvalue()) == header_size  # nothing serialized yet
    w.event("quic:c", {}, 0.003)  # the third fills the chunk
    assert len(records(out.getvalue())) == 4 and w.events_written == 3
    w.event("quic:d", {}, 0.004)
    assert len(records(out.getvalue())) == 4
    w.close()
    w.close()  # idempotent
    w.event("quic:e", {}, 0.005)
    w.flush()  # after close: nothing more is written
    assert len(records(out.getvalue())) == 5 and w.events_written == 4


def test_close_closes_the_file() -> None:
    out = io.BytesIO()
    QlogWriter(out, ODCID, True).close()
    assert out.closed


def test_times_are_relative_milliseconds() -> None:
    out = io.BytesIO()
    ticks = iter([100.0, 100.0125])
    w = QlogWriter(out, ODCID, True, clock=lambda: next(ticks), close_stream=False)  # start=100.0
    w.tracer("packet_sent", {"header": {"packet_type": "1RTT", "packet_number": 1}})
    w.event("quic:early", {}, 99.0)  # before the start: clamped, never negative
    w.close()
    events = [json.loads(r) for r in records(out.getvalue())[1:]]
    assert events[0]["time"] == pytest.approx(12.5) and events[0]["name"] == "quic:packet_sent"
    assert events[1]["time"] == 0.0


def test_non_json_values_are_made_safe() -> None:
    out = io.BytesIO()
    w = QlogWriter(out, ODCID, True, start=0.0, close_stream=False)
    w.event(
        "quic:x", {"inf": float("inf"), "nan": [float("nan")], "cid": b"\x01\x02", "s": {3, 1}}, 0.0
    )
    w.close()
    data = json.loads(records(out.getvalue())[1])["data"]
    assert data == {"inf": None, "nan": [None], "cid": "0102", "s": [1, 3]}


def test_compact_packets_match_the_dict_builders() -> None:
    """QlogWriter.packet (templates, the hot path) writes what the dict builders give."""
    from quicish.qlog import events as E
    from quicish.qlog import frames as F
    from quicish.wire import frames as wf

    compact = [
        ("stream", 4, 70000, 1000, True),
        ("stream", 0, 0, 5, False),
        ("crypto", 10, 200),
        ("ack", [(10, 20), (3, 4)], 0.5, (1, 2, 3)),
        ("ack", [(0, 1)], None, None),
        ("ack", [(0, 3)]),
        ("padding", 17),
        ("ping",),
        ("handshake_done",),
        {"frame_type": "max_data", "maximum": 5},
        wf.RetireConnectionIdFrame(3),
    ]
    dicts = [
        F.stream_frame(4, 70000, 1000, True),
        F.stream_frame(0, 0, 5, False),
        F.crypto_frame(10, 200),
        F.ack_frame([(10, 20), (3, 4)], 0.5, (1, 2, 3)),
        F.ack_frame([(0, 1)]),
        F.ack_frame([(0, 3)]),
        F.frame_to_qlog(wf.PaddingFrame(17)),
        F.frame_to_qlog(wf.PingFrame()),
        F.frame_to_qlog(wf.HandshakeDoneFrame()),
        {"frame_type": "max_data", "maximum": 5},
        F.frame_to_qlog(wf.RetireConnectionIdFrame(3)),
    ]
    out = io.BytesIO()
    w = QlogWriter(out, ODCID, True, start=0.0, close_stream=False)
    extra = {"dcid": "aabb", "key_phase": 1}
    w.packet("quic:packet_sent", 0.001, "1RTT", 7, 1200, compact, header_extra=extra)
    w.event(
        "quic:packet_sent",
        E.packet_event({"packet_type": "1RTT", "packet_number": 7, **extra}, dicts, size=1200),
        0.001,
    )
    for fr, expected in zip(compact, dicts, strict=True):  # one at a time, for a clear failure
        w.packet("quic:packet_received", 0.002, "handshake", 1, None, [fr])
        w.event(
            "quic:packet_received",
            E.packet_event(E.packet_header("handshake", 1), [expected]),
            0.002,
        )
    w.packet("quic:packet_lost", 0.003, "initial", 2, trigger="time_threshold")
    w.event(
        "quic:packet_lost",
        E.packet_event(E.packet_header("initial", 2), trigger="time_threshold"),
        0.003,
    )
    w.close()
    events = [json.loads(r) for r in records(out.getvalue())[1:]]
    assert len(events) == 2 + 2 * len(compact) + 2
    for templated, built in zip(events[::2], events[1::2], strict=True):
        assert templated == built
    assert validate_bytes(out.getvalue()) == []
    from quicish.qlog.render import render_frame

    with pytest.raises(ValueError):
        render_frame(("bogus", 1))


def test_metrics_written_when_they_change() -> None:
    from quicish.qlog import events as E

    out = io.BytesIO()
    w = QlogWriter(out, ODCID, True, start=0.0, close_stream=False)
    first = {
        "min_rtt": 0.01,
        "smoothed_rtt": 0.012,
        "latest_rtt": 0.011,
        "rtt_variance": 0.002,
        "pto_count": 0,
        "congestion_window": 14720,
        "bytes_in_flight": 1200,
        "ssthresh": float("inf"),
        "pacing_rate": 125_000.0,
    }
    w.metrics(0.001, first)
    w.metrics(0.002, dict(first, bytes_in_flight=0, ssthresh=7360.0))
    w.metrics(0.003, dict(first, bytes_in_flight=0, ssthresh=7360.0))  # no change: no event
    w.close()
    events = [json.loads(r) for r in records(out.getvalue())[1:]]
    assert w.events_written == 2 and len(events) == 2
    assert events[0]["name"] == "quic:recovery_metrics_updated"
    assert events[0]["data"] == E.recovery_metrics(first)
    assert events[1]["data"] == {"bytes_in_flight": 0, "ssthresh": 7360}


class _FullDisk(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.fail:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_writer_never_raises_into_the_connection() -> None:
    out = _FullDisk()
    w = QlogWriter(out, ODCID, True, start=0.0, flush_every=2, close_stream=False)
    w.event("quic:odd", {"x": object()}, 0.001)  # not serializable: logged as an error
    w.event("quic:fine", {"y": 1}, 0.002)  # fills the chunk: flushed
    first = [json.loads(r) for r in records(out.getvalue())[1:]]
    assert first[0]["data"]["quicish_error"].startswith("unserializable event data")
    assert first[1]["data"] == {"y": 1}
    out.fail = True
    w.event("quic:a", {}, 0.003)
    w.event("quic:b", {}, 0.004)  # the flush fails: the writer stops, nothing raised
    assert w.closed and isinstance(w.error, OSError) and w.events_written == 2
    w.event("quic:c", {}, 0.005)
    w.close()
    w.close()
    assert len(records(out.getvalue())) == 3


def test_bulk_stream_packet_template() -> None:
    """The one-STREAM-frame packet (the bulk case) has its own template: same JSON."""
    from quicish.qlog import events as E
    from quicish.qlog import frames as F

    out = io.BytesIO()
    w = QlogWriter(out, ODCID, False, start=0.0, close_stream=False)
    for fin in (False, True):
        w.packet("quic:packet_sent", 0.001, "1RTT", 9, 1252, [("stream", 3, 1 << 40, 1200, fin)])
        header = E.packet_header("1RTT", 9)
        w.event(
            "quic:packet_sent",
            E.packet_event(header, [F.stream_frame(3, 1 << 40, 1200, fin)], size=1252),
            0.001,
        )
    w.close()
    events = [json.loads(r) for r in records(out.getvalue())[1:]]
    assert events[0] == events[1] and events[2] == events[3]
    assert events[2]["data"]["frames"][0]["fin"] is True


def test_stream_packet_matches_the_builders() -> None:
    from quicish.qlog import events as E
    from quicish.qlog import frames as F

    out = io.BytesIO()
    w = QlogWriter(out, ODCID, True, start=1.0, close_stream=False)
    for fin in (False, True):
        w.stream_packet("quic:packet_received", 1.0025, "1RTT", 77, 1252, 4, 1 << 33, 1200, fin)
        data = E.packet_event(
            E.packet_header("1RTT", 77), [F.stream_frame(4, 1 << 33, 1200, fin)], size=1252
        )
        w.event("quic:packet_received", data, 1.0025)
    w.stream_packet("quic:packet_sent", 0.5, "1RTT", 78, 1252, 4, 0, 1, False)  # before start
    w.stream_packet("quic:packet_sent", 1.003, "1RTT", None, 1252, 4, 0, 1, False)  # type: ignore[arg-type]
    w.close()
    events = [json.loads(r) for r in records(out.getvalue())[1:]]
    assert events[0] == events[1] and events[2] == events[3]
    assert events[0]["time"] == pytest.approx(2.5)
    assert events[4]["time"] == 0.0
    assert events[5]["name"] == "quic:packet_sent" and "quicish_error" in events[5]["data"]
    assert w.events_written == 6
