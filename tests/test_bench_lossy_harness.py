"""The lossy-path workload of ``make bench`` (issue 22): tables, the target line, the chart
panels, from fabricated results; and one small real run of quicish through the relay."""

from __future__ import annotations

import argparse
import importlib
import struct
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from benchmarks import harness_chart as chart
from benchmarks import harness_report as report

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FAST = "50 Mbit/s, 30 ms"
SLOW = "10 Mbit/s, 100 ms"
LOSSES = (0.0, 0.1, 1.0, 3.0)
STACKS = ["quicish CUBIC (default)", "quicish BBR", "aioquic", "picoquic CUBIC", "picoquic BBR"]


def _scripts(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    """A module of the benchmark scripts (they import each other as siblings, not a package)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module(name)


def _points(*values: list[float]) -> dict[str, list[float]]:
    return {str(loss): runs for loss, runs in zip(LOSSES, values, strict=True)}


def fabricated() -> report.Lossy:
    return report.Lossy(
        stacks=list(STACKS),
        losses=LOSSES,
        goodput={
            FAST: {
                STACKS[0]: _points([43.0, 40.0, 41.0], [20.0], [4.0], [2.0]),
                STACKS[1]: _points([41.0], [38.0], [37.0], [30.0]),
                STACKS[2]: _points([38.0], [15.0], [3.4], [1.9]),
                STACKS[3]: _points([44.0], [40.0], [40.0], [32.0]),
                STACKS[4]: _points([40.0], [42.0], [28.0], [16.0]),
            },
            SLOW: {
                STACKS[0]: _points([9.2], [3.4], [1.1], [0.7]),
                STACKS[1]: _points([9.1], [9.0], [8.0], [8.6]),
                STACKS[2]: _points([9.3], [4.2], [1.1], [0.6]),
                STACKS[3]: _points([9.5], [9.5], [9.6], [9.4]),
                STACKS[4]: _points([9.2], [9.2], [8.5], [6.5]),
            },
        },
        missing={},
    )


def test_lossy_medians_best_picoquic_and_ratio() -> None:
    lossy = fabricated()
    assert lossy.median(FAST, STACKS[0], 0.0) == 41.0  # of 43, 40, 41
    assert lossy.median(FAST, "qh3", 0.0) is None
    assert lossy.subjects() == ["quicish CUBIC (default)", "quicish BBR"]
    assert lossy.best_picoquic(FAST, 0.1) == 42.0  # BBR's, the better of the two here
    assert lossy.best_picoquic(FAST, 3.0) == 32.0  # CUBIC's
    assert lossy.ratio("quicish BBR", FAST, 3.0) == pytest.approx(30.0 / 32.0)
    assert lossy.ratio("quicish BBR", SLOW, 3.0) == pytest.approx(8.6 / 9.4)


def test_lossy_cell_is_the_median_then_every_run() -> None:
    assert report.lossy_cell([43.0, 40.0, 41.0]) == "41.0 (43.0, 40.0, 41.0)"
    assert report.lossy_cell([3.456]) == "3.46"
    assert report.lossy_cell([2.0, 4.0]) == "3.00 (2.00, 4.00)"


def test_lossy_table_rows_runs_and_ratio_columns() -> None:
    rows = report.lossy_table(fabricated(), FAST).splitlines()
    assert rows[0] == (
        "| random loss | quicish CUBIC (default) | quicish BBR | aioquic | picoquic CUBIC "
        "| picoquic BBR | quicish CUBIC (default) ÷ best picoquic | quicish BBR ÷ best picoquic |"
    )
    assert rows[1] == "|---|" + "---:|" * 7
    assert rows[2] == "| 0% | 41.0 (43.0, 40.0, 41.0) | 41.0 | 38.0 | 44.0 | 40.0 | 0.93x | 0.93x |"
    # 0.1%: picoquic BBR's 42 is the better one: 20/42 and 38/42
    assert rows[3] == "| 0.1% | 20.0 | 38.0 | 15.0 | 40.0 | 42.0 | 0.48x | 0.90x |"
    assert rows[5] == "| 3% | 2.00 | 30.0 | 1.90 | 32.0 | 16.0 | 0.06x | 0.94x |"
    assert len(rows) == 2 + len(LOSSES)


def test_lossy_tables_one_per_path_with_a_caption() -> None:
    text = report.lossy_tables(fabricated())
    parts = text.split("\n\n")
    assert len(parts) == 4
    assert parts[0].startswith(f"Lossy path {FAST}, 100-packet queue, random loss both ways:")
    assert "a 10 MB download, the median (every run in parentheses)" in parts[0]
    assert parts[1] == report.lossy_table(fabricated(), FAST)
    assert parts[2].startswith(f"Lossy path {SLOW},")
    assert parts[3] == report.lossy_table(fabricated(), SLOW)


def test_lossy_must_show_worst_point_and_verdicts() -> None:
    lossy = fabricated()
    target = "(target ≥ 0.9x the better picoquic at every point)"
    assert report.lossy_must_show(lossy) == [
        "- quicish CUBIC (default) goodput on lossy paths: worst 0.06x (50 Mbit/s, 30 ms, "
        f"3% loss), 2 of 8 points pass {target}: **not yet**",
        # 8.0 / 9.6 on the slow path at 1%
        "- quicish BBR goodput on lossy paths: worst 0.83x (10 Mbit/s, 100 ms, 1% loss), "
        f"7 of 8 points pass {target}: **not yet**",
    ]
    lossy.goodput[SLOW]["quicish BBR"]["1.0"] = [9.0]  # now the worst is 38/42 = 0.905
    assert report.lossy_must_show(lossy)[1] == (
        "- quicish BBR goodput on lossy paths: worst 0.90x (50 Mbit/s, 30 ms, 0.1% loss), "
        f"8 of 8 points pass {target}: **PASS**"
    )


def test_lossy_without_picoquic_says_skipped_and_not_measured() -> None:
    lossy = fabricated()
    for path in lossy.goodput.values():
        for name in report.LOSSY_PICOQUIC:
            del path[name]
    lossy.missing = dict.fromkeys(report.LOSSY_PICOQUIC, "skipped: no Python | 3.12")
    rows = report.lossy_table(lossy, FAST).splitlines()
    skip = "skipped: no Python \\| 3.12"
    assert rows[2].endswith(f"| 38.0 | {skip} | {skip} | n/a | n/a |")
    assert rows[3].endswith("| 15.0 | skipped | skipped | n/a | n/a |")
    assert report.lossy_must_show(lossy)[0] == (
        "- quicish CUBIC (default) goodput on lossy paths: n/a (target ≥ 0.9x the better "
        "picoquic at every point): **not measured**"
    )
    # picoquic on one path only: what was measured passes, the rest is not measured
    lossy = fabricated()
    del lossy.goodput[SLOW]["picoquic CUBIC"], lossy.goodput[SLOW]["picoquic BBR"]
    lossy.goodput[FAST]["quicish BBR"] = _points([44.0], [42.0], [40.0], [32.0])
    assert report.lossy_must_show(lossy)[1].endswith("**not measured at every point**")
    failed = report.Lossy(["quicish BBR"], LOSSES, {}, {"quicish BBR": "failed: no port"})
    assert report.lossy_table(failed, FAST).splitlines()[2] == "| 0% | failed: no port | n/a |"
    assert report.lossy_table(failed, FAST).splitlines()[3] == "| 0.1% | failed | n/a |"


def test_lossy_note_names_the_settings() -> None:
    note = report.lossy_note(report.Lossy([], LOSSES, {}, {}, size_mb=10.0, timeout=15.0))
    assert "the 10 MB download" in note
    assert "a run not done within 15 s counts the bytes it got by then" in note


# ---------------------------------------------------------------- chart


def test_line_panels_per_path_with_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    lossy_module = _scripts(monkeypatch, "harness_lossy")
    lossy = fabricated()
    del lossy.goodput[SLOW]["aioquic"]
    panels = lossy_module.panels(lossy)
    assert [p.title for p in panels] == [
        f"lossy path {FAST}: goodput (Mbit/s) vs random loss, higher is better",
        f"lossy path {SLOW}: goodput (Mbit/s) vs random loss, higher is better",
    ]
    assert panels[0].categories == ["0%", "0.1%", "1%", "3%"]
    assert [s.label for s in panels[0].series] == STACKS
    assert [s.label for s in panels[1].series] == [s for s in STACKS if s != "aioquic"]
    assert panels[0].series[0].values == [41.0, 20.0, 4.0, 2.0]  # medians
    assert panels[0].series[0].color == lossy_module.COLORS["quicish"]
    assert len({s.color for s in panels[0].series}) == len(STACKS)  # told apart by colour


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == chart.PNG_SIGNATURE
    out, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        tag, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        out.append((tag, data))
        at += 12 + length
    return out


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, the RGB rows) of one of render_png's images."""
    chunks = _chunks(png)
    width, height = struct.unpack(">II", chunks[0][1][:8])
    raw = zlib.decompress(b"".join(data for tag, data in chunks if tag == b"IDAT"))
    stride = 1 + 3 * width
    rows = [raw[y * stride + 1 : (y + 1) * stride] for y in range(height)]
    assert all(raw[y * stride] == 0 for y in range(height))  # filter type None
    return width, height, rows


def _count(rows: list[bytes], color: tuple[int, int, int]) -> int:
    want = bytes(color)
    return sum(row[i : i + 3] == want for row in rows for i in range(0, len(row), 3))


def test_render_png_draws_a_line_panel_beside_bars() -> None:
    red, blue = (200, 0, 0), (0, 0, 200)
    bars = chart.Panel("bulk", [chart.Bar("quicish", 300.0, "300")])
    lines = chart.LinePanel(
        "goodput vs loss",
        ["0%", "1%", "3%"],
        [chart.Series("a", [40.0, 30.0, 20.0], red), chart.Series("b", [9.0, None, 8.0], blue)],
    )
    alone = chart.render_png("t", [bars], width=800)
    png = chart.render_png("t", [bars, lines], width=800)
    width, height, rows = _pixels(png)
    assert width == 800
    assert height == _pixels(alone)[1] + chart._line_panel_height(lines)
    # both series are drawn: markers (8x8 each: 3 for "a", 2 for "b") plus legend swatches,
    # and "a" has line segments between its markers, "b" none across its gap
    assert _count(rows, red) > 4 * chart.MARKER**2 + 100
    assert 3 * chart.MARKER**2 <= _count(rows, blue) < 3 * chart.MARKER**2 + 40


def test_canvas_line_and_nice_top() -> None:
    canvas = chart.Canvas(20, 20)
    canvas.line(2, 3, 12, 3, (0, 0, 0), 1)  # horizontal: 11 pixels
    canvas.line(5, 5, 5, 9, (0, 0, 0), 1)  # vertical: 5 pixels
    canvas.line(10, 10, 14, 14, (0, 0, 0), 1)  # diagonal: 5 pixels
    assert sum(canvas.pixels[i] == 0 for i in range(0, len(canvas.pixels), 3)) == 21
    assert [chart.nice_top(v) for v in (0.0, 9.6, 44.1, 50.0, 0.7, 230.0)] == [
        1.0,
        10.0,
        50.0,
        50.0,
        1.0,
        250.0,
    ]


def test_matplotlib_draws_the_line_panel(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    lines = chart.LinePanel(
        "goodput vs loss", ["0%", "3%"], [chart.Series("a", [40.0, None], (200, 0, 0))]
    )
    bars = chart.Panel("bulk", [chart.Bar("quicish", 300.0, "300")])
    out = tmp_path / "chart.png"
    assert chart.render_matplotlib("t", [bars, lines], out, "sub")
    width, height = struct.unpack(">II", out.read_bytes()[16:24])
    assert out.read_bytes()[:8] == chart.PNG_SIGNATURE
    assert (width, height) == (1000, round(100 * (2.2 + 3.6)))


# ---------------------------------------------------------------- run_all and harness_lossy


def test_run_all_has_a_lossy_workload(monkeypatch: pytest.MonkeyPatch) -> None:
    run_all = _scripts(monkeypatch, "run_all")
    assert run_all.parse_args([]).workloads == [*run_all.WORKLOADS, "lossy"]
    assert run_all.parse_args(["--workloads", "lossy,bulk"]).workloads == ["bulk", "lossy"]
    args = run_all.parse_args(["--quick", "--no-pin", "--workloads", "lossy"])
    lossy = report.Lossy([], LOSSES, {}, {}, size_mb=10.0, timeout=15.0)
    notes = run_all.notes_for(args, {}, lossy)
    assert report.lossy_note(lossy) in notes
    assert report.lossy_note(lossy) not in run_all.notes_for(args, {})


def test_lossy_stacks_follow_the_default_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    lossy_module = _scripts(monkeypatch, "harness_lossy")
    from quicish.config import Config

    assert lossy_module.default_cc() == Config().congestion_control
    chosen = lossy_module.lossy_stacks(["quicish", "qh3", "aioquic"], None, "cubic")
    assert list(chosen) == ["quicish CUBIC (default)", "quicish BBR", "aioquic"]
    assert chosen["quicish CUBIC (default)"].env == {"QUICISH_CC": ""}  # Config's own default
    assert chosen["quicish BBR"].env == {"QUICISH_CC": "bbr"}
    chosen = lossy_module.lossy_stacks(["quicish", "picoquic"], "/py312", "bbr")
    assert list(chosen) == [
        "quicish BBR (default)",
        "quicish CUBIC",
        "picoquic CUBIC",
        "picoquic BBR",
    ]
    assert chosen["picoquic BBR"].python == "/py312"
    assert chosen["picoquic BBR"].extra == ["--cc", "bbr"]


def test_lossy_run_interleaves_repeats_and_records_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run() calls bench_lossy's measurement once per stack per repetition and merges."""
    lossy_module = _scripts(monkeypatch, "harness_lossy")
    monkeypatch.setattr(lossy_module, "default_cc", lambda: "cubic")
    calls: list[tuple[str, int]] = []

    def measure(
        settings: argparse.Namespace, stacks: dict[str, Any], cert: tuple[str, str]
    ) -> dict[str, Any]:
        (name,) = stacks
        calls.append((name, len(calls)))
        assert cert == ("c.pem", "k.pem")
        assert (settings.repeat, settings.quick, settings.timeout, settings.size) == (
            1,
            True,
            15.0,
            123,
        )
        if name == "aioquic":
            raise RuntimeError("aioquic: server did not start")
        value = float(len(calls))
        return {FAST: {name: {str(loss): [value] for loss in LOSSES}}}

    lossy = lossy_module.run(
        ["quicish", "aioquic", "picoquic"],
        None,
        {"picoquic": "no Python 3.12"},
        ("c.pem", "k.pem"),
        repeat=2,
        quick=True,
        size=123,
        measure=measure,
    )
    assert [name for name, _ in calls] == [
        "quicish CUBIC (default)",
        "quicish BBR",
        "aioquic",
        "quicish CUBIC (default)",  # the failed stack is not tried again
        "quicish BBR",
    ]
    assert lossy.stacks == [
        "quicish CUBIC (default)",
        "quicish BBR",
        "aioquic",
        "picoquic CUBIC",
        "picoquic BBR",
    ]
    assert lossy.runs(FAST, "quicish CUBIC (default)", 1.0) == [1.0, 4.0]
    assert lossy.runs(FAST, "quicish BBR", 3.0) == [2.0, 5.0]
    assert lossy.missing == {
        "aioquic": "failed: aioquic: server did not start",
        "picoquic CUBIC": "skipped: no Python 3.12",
        "picoquic BBR": "skipped: no Python 3.12",
    }
    assert (lossy.size_mb, lossy.timeout) == (123 / 1e6, 15.0)
    assert lossy.losses == LOSSES
    # a stack run_all cannot run here (aioquic not installed): its row says so, in its place
    calls.clear()
    lossy = lossy_module.run(
        ["picoquic", "aioquic", "quicish"],
        "/py312",
        {"aioquic": "aioquic is not installed"},
        ("c.pem", "k.pem"),
        repeat=1,
        quick=True,
        size=123,
        measure=measure,
    )
    assert "aioquic" not in [name for name, _ in calls]
    assert [name for name, _ in calls][-2:] == ["picoquic CUBIC", "picoquic BBR"]
    assert lossy.stacks == [*STACKS[:2], "aioquic", *report.LOSSY_PICOQUIC]
    assert lossy.missing == {"aioquic": "skipped: aioquic is not installed"}


def test_lossy_workload_smoke_quicish_through_the_relay(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real, small run: quicish's default controller, 200 KB, 0 and 1% loss, the quick
    path; bench_lossy's measurement through the relay, then the table."""
    from benchmarks.peers import common

    lossy_module = _scripts(monkeypatch, "harness_lossy")
    monkeypatch.setattr(lossy_module, "QUICISH_CCS", ())
    monkeypatch.setattr(sys.modules["bench_lossy"], "LOSSES", (0.0, 1.0))
    cert_pem, key_pem = common.generate_cert()
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    lossy = lossy_module.run(
        ["quicish"],
        None,
        {},
        (str(tmp_path / "c.pem"), str(tmp_path / "k.pem")),
        repeat=1,
        quick=True,
        size=200_000,
    )
    default = lossy_module.quicish_label(lossy_module.default_cc(), lossy_module.default_cc())
    assert lossy.stacks == [default]
    assert list(lossy.goodput) == [FAST]  # --quick: the first path only
    for loss in (0.0, 1.0):
        (mbps,) = lossy.runs(FAST, default, loss)
        assert 0.11 < mbps < 50.0  # finished (by the 15 s cap: 0.107), not above the link's rate
    assert report.lossy_table(lossy, FAST).splitlines()[2].startswith("| 0% | ")


def test_cc_trace_logs_the_quicish_servers_bbr(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``bench_lossy.py --cc-trace DIR``: quicish's servers (not the other stacks') log
    their BBR's state there; a real download over loopback writes rows of it."""
    import json

    from quicish.tls.certs import generate_self_signed

    lossy = _scripts(monkeypatch, "bench_lossy")
    all_stacks = lossy.stacks(None)
    lossy.trace_stacks(all_stacks, tmp_path / "trace")
    bbr = all_stacks["quicish BBR"]
    path = tmp_path / "trace" / "quicish_BBR.jsonl"
    assert bbr.env == {"QUICISH_CC": "bbr", "QUICISH_CC_TRACE": str(path)}
    assert "QUICISH_CC_TRACE" not in all_stacks["aioquic"].env
    cert, key = generate_self_signed(("localhost",))
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    server, port = bbr.start_server(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    try:
        result = bbr.client(port, 2_000_000, 20.0)
    finally:
        server.kill()
        server.wait()
    assert result["ok"] and result["bytes"] == 2_000_000
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows
    assert {row["state"] for row in rows} <= {
        "Startup", "Drain", "ProbeBW_DOWN", "ProbeBW_CRUISE", "ProbeBW_REFILL", "ProbeBW_UP",
        "ProbeRTT",
    }  # fmt: skip
    assert all(row["cwnd"] > 0 and row["delivered"] >= 0 for row in rows)
    assert rows[-1]["delivered"] > 0
