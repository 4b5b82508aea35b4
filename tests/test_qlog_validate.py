"""quicish.qlog.validate and reader: valid files pass, each broken rule is reported, and
aioquic's own qlog files (QuicFileLogger, qlog 0.3 JSON) are read and pass the lenient rules."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.logger import QuicFileLogger
from support import cert_files

from quicish.qlog import (
    QlogFormatError,
    QlogValidationError,
    QlogWriter,
    analyze,
    assert_valid,
    check_packet_numbers,
    loads_qlog,
    match_packets,
    read_qlog,
    validate_bytes,
    validate_file,
)
from quicish.qlog import events as E
from quicish.qlog.__main__ import main
from quicish.qlog.analysis import packet_keys
from quicish.qlog.writer import encode_record, file_header

ODCID = bytes.fromhex("0102030405060708")


def good_records() -> list[dict[str, Any]]:
    hdr = E.packet_header("1RTT", 0, dcid=ODCID)
    return [
        file_header(ODCID, True),
        {
            "time": 0.0,
            "name": "quic:packet_sent",
            "data": {"header": hdr, "frames": [{"frame_type": "ping"}]},
        },
        {"time": 1.5, "name": "quic:recovery_metrics_updated", "data": {"min_rtt": 1.0}},
    ]


def seq(recs: list[Any]) -> bytes:
    return b"".join(encode_record(r) for r in recs)


def mutated(change: Callable[[list[dict[str, Any]]], None]) -> bytes:
    recs = good_records()
    change(recs)
    return seq(recs)


def test_good_file_is_valid() -> None:
    assert validate_bytes(seq(good_records())) == []


def test_framing_problems() -> None:
    good = seq(good_records())
    assert "starts with the record separator" in validate_bytes(good[1:], strict=True)[0]
    no_lf = good.replace(b"}\n\x1e", b"}\x1e", 1)
    assert any("does not end with a line feed" in p for p in validate_bytes(no_lf))
    broken = good + b'\x1e{"time":2,\n'
    assert any("not valid JSON" in p for p in validate_bytes(broken))
    empty = good + b"\x1e\n"
    assert any("is empty" in p for p in validate_bytes(empty))
    assert any("neither JSON-SEQ nor JSON" in p for p in validate_bytes(b"garbage"))


def _problems(change: Callable[[list[dict[str, Any]]], None]) -> str:
    problems = validate_bytes(mutated(change))
    assert problems, "expected the validator to reject this"
    return "\n".join(problems)


@pytest.mark.parametrize(
    "change,expect",
    [
        (lambda r: r[0].update(file_schema="urn:ietf:params:qlog:file:contained"), "file_schema"),
        (lambda r: r[0].pop("serialization_format"), "serialization_format"),
        (lambda r: r[0].pop("trace"), "trace"),
        (lambda r: r[0]["trace"].update(event_schemas=[]), "event_schemas"),
        (lambda r: r[0]["trace"].update(event_schemas=["not a uri"]), "event_schemas"),
        (lambda r: r[0]["trace"].update(events=[]), "no events array"),
        (lambda r: r[0]["trace"]["vantage_point"].update(type="router"), "type"),
        (
            lambda r: r[0]["trace"]["common_fields"]["reference_time"].update(
                epoch="1970-01-01T00:00:00Z"
            ),
            "monotonic",
        ),
        (lambda r: r[0]["trace"]["common_fields"].update(time_format="absolute"), "time_format"),
        (lambda r: r[1].pop("time"), "'time'"),
        (lambda r: r[1].update(time="soon"), "'time'"),
        (lambda r: r[1].pop("data"), "'data'"),
        (lambda r: r[1].update(name="packet_sent"), "namespace:event_type"),
        (lambda r: r[1].update(name="http3:frame_created"), "event_schemas"),
        (lambda r: r[2].update(time=-1.0), "before the previous"),
        (lambda r: r[1]["data"]["header"].update(DCID="00"), "lowercase"),
        (lambda r: r[1]["data"].pop("header"), "'header'"),
        (lambda r: r[1]["data"]["header"].update(packet_type="2RTT"), "packet_type"),
        (lambda r: r[1]["data"]["header"].pop("packet_number"), "packet_number"),
        (lambda r: r[1]["data"]["header"].update(dcid="XYZ"), "dcid"),
        (lambda r: r[1]["data"].update(frames=[{"frame_type": "pong"}]), "frame_type"),
        (
            lambda r: r[1]["data"].update(frames=[{"frame_type": "crypto", "offset": 0}]),
            "raw.length",
        ),
        (
            lambda r: r[1]["data"].update(
                frames=[{"frame_type": "reset_stream", "stream_id": 0, "error": "x"}]
            ),
            "final_size",
        ),
        (lambda r: r[1]["data"].update(frames=[{"frame_type": "stream"}]), "stream_id"),
        (
            lambda r: r[1]["data"].update(frames=[{"frame_type": "ack", "acked_ranges": [[5, 3]]}]),
            "acked_ranges",
        ),
        (
            lambda r: r[1]["data"].update(
                frames=[{"frame_type": "stop_sending", "stream_id": 0, "error": "unknown"}]
            ),
            "error_code",
        ),
        (
            lambda r: r.append({"time": 2, "name": "quic:key_updated", "data": {"key_type": "x"}}),
            "key_type",
        ),
        (
            lambda r: r.append({"time": 2, "name": "quic:recovery_metrics_updated", "data": {}}),
            "at least one",
        ),
        (
            lambda r: r.append(
                {"time": 2, "name": "quic:connection_closed", "data": {"trigger": "bored"}}
            ),
            "trigger",
        ),
        (
            lambda r: r.append(
                {
                    "time": 2,
                    "name": "quic:stream_state_updated",
                    "data": {"stream_id": 0, "new": "open"},
                }
            ),
            "stream_side",
        ),
        (
            lambda r: r.append({"time": 2, "name": "quic:recovery_parameters_set", "data": {}}),
            "timer_granularity",
        ),
    ],
)
def test_rule_violations_are_reported(
    change: Callable[[list[dict[str, Any]]], None], expect: str
) -> None:
    assert expect in _problems(change)


def test_relative_to_previous_event_times() -> None:
    def relative(r: list[dict[str, Any]]) -> None:
        r[0]["trace"]["common_fields"]["time_format"] = "relative_to_previous_event"
        r[2]["time"] = 0.5  # a delta, smaller than the previous absolute value: fine

    data = mutated(relative)
    assert validate_bytes(data) == []
    assert [ev.time for ev in loads_qlog(data).events] == [0.0, 0.5]

    def relative_negative(r: list[dict[str, Any]]) -> None:
        relative(r)
        r[2]["time"] = -0.1

    negative = mutated(relative_negative)
    assert any("never negative" in p for p in validate_bytes(negative))


def test_assert_valid_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.sqlog"
    good.write_bytes(seq(good_records()))
    bad = tmp_path / "bad.sqlog"
    bad.write_bytes(mutated(lambda r: r[1].update(name="nonsense")))
    assert assert_valid(good).vantage_point == "client"
    with pytest.raises(QlogValidationError) as info:
        assert_valid(bad)
    assert info.value.problems == validate_file(bad)
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{good}: valid" in out and f"{bad}: 1 problem(s)" in out


def test_reader_errors_and_truncated_last_record() -> None:
    good = seq(good_records())
    with pytest.raises(QlogFormatError):
        loads_qlog(b"\x1e[1]\n")
    with pytest.raises(QlogFormatError):
        loads_qlog(b"\x1e{}\n\x1e{oops}\n\x1e{}\n")
    truncated = good + b'\x1e{"time":9,"na'  # a writer that died mid-record
    assert len(loads_qlog(truncated).events) == 2
    assert any("line feed" in p for p in validate_bytes(truncated))


def test_packet_numbers_per_space() -> None:
    out = io.BytesIO()
    w = QlogWriter(out, ODCID, True, start=0.0, close_stream=False)
    for t, (ptype, pn) in enumerate(
        [("initial", 0), ("handshake", 0), ("initial", 1), ("1RTT", 0), ("0RTT", 1)]
    ):
        w.event("quic:packet_sent", {"header": E.packet_header(ptype, pn)}, t / 1000)
    w.close()
    trace = loads_qlog(out.getvalue())
    assert check_packet_numbers(trace) == []
    w2_out = io.BytesIO()
    w2 = QlogWriter(w2_out, ODCID, True, start=0.0, close_stream=False)
    for t, pn in enumerate([0, 1, 1, 5, 3]):
        w2.event("quic:packet_sent", {"header": E.packet_header("1RTT", pn)}, t / 1000)
    w2.close()
    problems = check_packet_numbers(loads_qlog(w2_out.getvalue()))
    assert len(problems) == 2
    assert "application_data packet 1 after 1" in problems[0]
    assert "application_data packet 3 after 5" in problems[1]


# ---- aioquic's files ---------------------------------------------------------------------------
def aioquic_transfer(tmp: Path, size: int = 50_000) -> tuple[Path, Path]:
    """A sans-IO aioquic client and server exchanging ``size`` bytes, each with its own
    QuicFileLogger; the paths of the client's and the server's .qlog file."""
    cert, key, _ = cert_files()
    (tmp / "client").mkdir()
    (tmp / "server").mkdir()
    cc = QuicConfiguration(
        is_client=True,
        alpn_protocols=["hq-interop"],
        server_name="localhost",
        quic_logger=QuicFileLogger(str(tmp / "client")),
    )
    cc.verify_mode = 0  # ssl.CERT_NONE
    sc = QuicConfiguration(
        is_client=False,
        alpn_protocols=["hq-interop"],
        quic_logger=QuicFileLogger(str(tmp / "server")),
    )
    sc.load_cert_chain(cert, key)
    client = QuicConnection(configuration=cc)
    server = QuicConnection(
        configuration=sc,
        original_destination_connection_id=client.original_destination_connection_id,
    )
    caddr, saddr = ("127.0.0.1", 1234), ("127.0.0.1", 4433)
    now = 1.0
    client.connect(saddr, now=now)

    def pump() -> None:
        nonlocal now
        for _ in range(100):
            moved = False
            for a, b, addr in ((client, server, caddr), (server, client, saddr)):
                for data, _ in a.datagrams_to_send(now=now):
                    b.receive_datagram(data, addr, now=now)
                    moved = True
            now += 0.001
            if not moved:
                return

    pump()
    client.send_stream_data(client.get_next_available_stream_id(), b"x" * size, end_stream=True)
    pump()
    client.close(error_code=0, reason_phrase="done")
    pump()
    for conn in (client, server):  # past the draining period: the trace ends, the file is written
        conn.handle_timer(now + 10)
    (cfile,) = os.listdir(tmp / "client")
    (sfile,) = os.listdir(tmp / "server")
    return tmp / "client" / cfile, tmp / "server" / sfile


def test_aioquic_files_are_read_and_validated(tmp_path: Path) -> None:
    cpath, spath = aioquic_transfer(tmp_path)
    for path, role in ((cpath, "client"), (spath, "server")):
        raw = json.loads(path.read_bytes())
        assert raw["qlog_version"] == "0.3"  # what this input is: the legacy contained JSON
        assert validate_file(path) == []  # lenient by default for contained JSON
        trace = read_qlog(path)
        assert trace.serialization == "json" and trace.vantage_point == role
        assert trace.named("packet_sent") and trace.named("packet_received")
        assert check_packet_numbers(trace) == []
    client, server = read_qlog(cpath), read_qlog(spath)
    # what one side logged as sent is what the other logged as received (no loss here)
    for sender, receiver in ((client, server), (server, client)):
        match = match_packets(sender, receiver)
        assert match.sent == match.received > 0
        assert match.missing == [] and match.unexpected == [] and match.duplicates == 0
    sent = packet_keys(client, "quic:packet_sent")
    a = analyze(client)
    assert a.stream_bytes_sent == 50_000 and analyze(server).stream_bytes_received == 50_000
    assert a.packets_sent == len(sent) and a.handshake_time is not None


def test_strict_rules_reject_legacy_files(tmp_path: Path) -> None:
    cpath, _ = aioquic_transfer(tmp_path, size=1000)
    problems = validate_file(cpath, strict=True)
    assert any("event_schemas" in p for p in problems)  # qlog 0.3 has no event schema URIs
    assert any("raw.length" in p for p in problems)  # 0.3 logged a crypto frame's "length"
