"""The qlog tools: the analysis and summary of a hand-built trace, the plot, the CLI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from quicish.qlog import analyze, open_qlog, read_qlog
from quicish.qlog import events as E
from quicish.qlog import frames as F
from quicish.qlog.__main__ import main
from quicish.qlog.summary import format_summary

ODCID = bytes.fromhex("abcdef0123456789")
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def build_trace(directory: Path) -> Path:
    """A client sending 9000 stream bytes in 11 packets; packets 1 and 3 declared lost,
    3 then acknowledged (spurious), packet 10 repeating packet 1's data."""
    ms = 1 / 1000
    with open_qlog(directory, ODCID, True, start=0.0) as w:
        w.event(
            "connection_started",
            E.connection_started(("127.0.0.1", 5000), ("127.0.0.1", 4433)),
            0.0,
        )
        w.event(
            "connection_state_updated", E.connection_state_updated("handshake_complete"), 10 * ms
        )
        for pn in range(10):
            frames = [F.stream_frame(0, pn * 900, 900)]
            w.event(
                "packet_sent",
                E.packet_event(E.packet_header("1RTT", pn), frames, size=1000),
                (11 + pn) * ms,
            )
            if pn == 1:
                metrics = {"latest_rtt": 0.010, "min_rtt": 0.010, "smoothed_rtt": 0.010}
                w.event(
                    "recovery_metrics_updated",
                    E.recovery_metrics(
                        {**metrics, "congestion_window": 12000, "bytes_in_flight": 2000}
                    ),
                    12 * ms,
                )
        w.event(
            "packet_lost",
            E.packet_event(E.packet_header("1RTT", 1), trigger="time_threshold"),
            20.5 * ms,
        )
        w.event(
            "packet_lost",
            E.packet_event(E.packet_header("1RTT", 3), trigger="time_threshold"),
            20.6 * ms,
        )
        retransmit = [F.stream_frame(0, 900, 900)]
        w.event(
            "packet_sent",
            E.packet_event(E.packet_header("1RTT", 10), retransmit, size=1000),
            21 * ms,
        )
        w.event("recovery_metrics_updated", E.recovery_metrics({"latest_rtt": 0.020}), 22 * ms)
        ack = F.ack_frame([(2, 11), (0, 1)], 0.0)
        w.event(
            "packet_received", E.packet_event(E.packet_header("1RTT", 0), [ack], size=50), 25 * ms
        )
        w.event(
            "recovery_metrics_updated",
            E.recovery_metrics({"latest_rtt": 0.030, "smoothed_rtt": 0.015, "bytes_in_flight": 0}),
            26 * ms,
        )
        w.event(
            "connection_closed",
            E.connection_closed(
                initiator="local", error_code=0, reason="bye", trigger="application"
            ),
            30 * ms,
        )
    return directory / f"{ODCID.hex()}_client.sqlog"


def test_analysis_numbers(tmp_path: Path) -> None:
    a = analyze(read_qlog(build_trace(tmp_path)))
    assert a.vantage_point == "client" and a.odcid == ODCID.hex()
    assert a.duration == pytest.approx(30.0)
    assert a.handshake_time == pytest.approx(10.0)
    assert a.packets_sent == 11 and a.bytes_sent == 11_000
    assert a.packets_received == 1 and a.bytes_received == 50
    assert a.packets_lost == 2 and a.bytes_lost == 2000
    assert a.spurious_losses == 1  # packet 3 was acknowledged after being declared lost
    assert a.packets_retransmitted == 1
    assert a.stream_bytes_sent == 9000 and a.stream_bytes_received == 0
    assert a.stream_span == pytest.approx((11.0, 21.0))
    assert a.goodput_bps == pytest.approx(9000 * 8 / 0.010)
    assert a.min_rtt_ms == pytest.approx(10.0)
    assert a.avg_rtt_ms == pytest.approx(20.0)
    assert a.close == {
        "initiator": "local",
        "connection_error": "no_error",
        "reason": "bye",
        "trigger": "application",
    }
    # series for the plot
    assert a.sent[-1] == pytest.approx((21.0, 11_000))
    assert a.acked == [pytest.approx((25.0, 10_000))]  # everything but packet 1
    assert a.lost == [pytest.approx((20.5, 2000)), pytest.approx((20.6, 4000))]
    assert a.cwnd == [pytest.approx((12.0, 12000))]
    assert [v for _, v in a.bytes_in_flight] == [2000, 0]
    assert [v for _, v in a.latest_rtt] == pytest.approx([10.0, 20.0, 30.0])


def test_packets_acked_events_take_precedence(tmp_path: Path) -> None:
    with open_qlog(tmp_path, ODCID, False, start=0.0) as w:
        for pn in range(3):
            w.event(
                "packet_sent", E.packet_event(E.packet_header("handshake", pn), size=100), pn / 1000
            )
        w.event("packet_lost", E.packet_event(E.packet_header("handshake", 0)), 0.004)
        # an ACK frame that packets_acked contradicts: the explicit event wins
        ack = F.ack_frame([(0, 3)])
        w.event(
            "packet_received",
            E.packet_event(E.packet_header("handshake", 0), [ack], size=40),
            0.005,
        )
        w.event("packets_acked", E.packets_acked(1, [1, 2]), 0.005)
    a = analyze(read_qlog(tmp_path / f"{ODCID.hex()}_server.sqlog"))
    assert a.acked[-1][1] == 200 and a.spurious_losses == 0


def test_summary_text_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = build_trace(tmp_path)
    text = format_summary(analyze(read_qlog(path)))
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == text
    lines = {line.split()[0]: line for line in text.splitlines()}
    assert "30.000 ms" in lines["duration"]
    assert "10.000 ms" in lines["handshake"]
    assert "packets sent   11 (11000 bytes)" in text
    assert "packets recvd  1 (50 bytes)" in text
    assert "2 (18.18% of sent, 2000 bytes), 1 spurious" in text
    assert "retransmitted  1 packets" in text
    assert "goodput        7.20 Mbit/s" in text
    assert "rtt            min 10.000 ms, avg 20.000 ms" in text
    assert "initiator=local trigger=application connection_error=no_error reason='bye'" in text
    assert main(["summary", str(tmp_path / "missing.sqlog")]) == 2


def test_empty_trace_summary(tmp_path: Path) -> None:
    with open_qlog(tmp_path, ODCID, True):
        pass
    a = analyze(read_qlog(tmp_path / f"{ODCID.hex()}_client.sqlog"))
    assert a.packets_sent == 0 and a.goodput_bps is None and a.min_rtt_ms is None
    assert "(no connection_closed event)" in format_summary(a)


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib (the [plot] extra) is not installed")
def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = build_trace(tmp_path)
    out = tmp_path / "out.png"
    assert main(["plot", str(path), "-o", str(out), "--title", "test"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
    assert main(["plot", str(path)]) == 0  # default name: next to the trace
    assert (tmp_path / f"{ODCID.hex()}_client.png").exists()


def test_plot_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = build_trace(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["plot", str(path), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "quicish[plot]" in err
    assert not (tmp_path / "x.png").exists()


def test_match_packets_between_two_traces(tmp_path: Path) -> None:
    from quicish.qlog import match_packets

    with open_qlog(tmp_path, ODCID, True, start=0.0) as sender:
        for pn in range(5):
            sender.packet("quic:packet_sent", pn / 1000, "1RTT", pn, 1200)
        sender.packet("quic:packet_sent", 0.006, "handshake", 0, 100)
    with open_qlog(tmp_path, ODCID, False, start=0.0) as receiver:
        for ptype, pn in (
            ("1RTT", 0),
            ("1RTT", 2),
            ("1RTT", 2),
            ("1RTT", 4),
            ("1RTT", 9),
            ("handshake", 0),
        ):
            receiver.packet("quic:packet_received", 0.01, ptype, pn, 1200)
    match = match_packets(
        read_qlog(tmp_path / f"{ODCID.hex()}_client.sqlog"),
        read_qlog(tmp_path / f"{ODCID.hex()}_server.sqlog"),
    )
    assert match.sent == 6 and match.received == 6
    assert match.missing == [("1RTT", 1), ("1RTT", 3)]
    assert match.unexpected == [("1RTT", 9)]
    assert match.duplicates == 1
