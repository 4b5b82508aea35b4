"""Cheap pure parts of the benchmark harness (no benchmark is run here)."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest

from benchmarks import harness_chart as chart
from benchmarks import harness_report as report
from benchmarks.peers import common

COLUMNS = report.metrics(100, 100, 1, 50, 1000, 64)


def sample_results() -> report.Results:
    return {
        "quicish": {
            "bulk": {"ok": True, "mbps": 300.0},
            "streams": {"ok": False, "error": "timeout | after 5 s"},
            "handshake": {"ok": True, "median_ms": 5.0, "p99_ms": 8.0},
            "rpc": {"ok": True, "median_us": 200.0, "p99_us": 400.0},
        },
        "aioquic": {
            "bulk": {"ok": True, "mbps": 100.0},
            "streams": {"ok": True, "mbps": 80.0},
            "handshake": {"ok": True, "median_ms": 12.0, "p99_ms": 20.0},
            "rpc": {"ok": True, "median_us": 800.0, "p99_us": 1600.0},
        },
    }


def test_ratio_is_oriented_so_bigger_is_better() -> None:
    assert report.ratio(300.0, 100.0, True) == 3.0
    assert report.ratio(6.0, 12.0, False) == 2.0
    assert report.ratio(24.0, 12.0, False) == 0.5
    assert report.ratio(None, 1.0, True) is None
    assert report.ratio(1.0, None, True) is None
    assert report.ratio(0.0, 1.0, False) is None
    assert report.ratio(1.0, 0.0, True) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [(6213.4, "6,213"), (412.6, "413"), (68.24, "68.2"), (3.456, "3.46"), (0.4123, "0.412")],
)
def test_fmt_number(value: float, text: str) -> None:
    assert report.fmt_number(value) == text


def test_fmt_ratio() -> None:
    assert [report.fmt_ratio(r) for r in (None, 2.421, 18.46, 184.6)] == [
        "n/a",
        "2.42x",
        "18.5x",
        "185x",
    ]


def test_table_rows_figures_ratios_and_failures() -> None:
    table = report.format_table(sample_results(), COLUMNS, ["quicish", "aioquic", "tcp"])
    lines = table.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("| stack | bulk: 1 stream x 100 MB (Mbit/s) |")
    assert lines[1] == "|---|" + "---:|" * 6
    assert lines[2] == (
        "| quicish | 300 (3.00x) | failed: timeout \\| after 5 s | 5.00 (2.40x) | 8.00 (2.50x)"
        " | 200 (4.00x) | 400 (4.00x) |"
    )
    assert lines[3] == (
        "| aioquic | 100 (1.00x) | 80.0 (1.00x) | 12.0 (1.00x) | 20.0 (1.00x) | 800 (1.00x)"
        " | 1,600 (1.00x) |"
    )
    # a stack that never ran: the reason once per workload, then plain "failed"
    assert lines[4] == (
        "| TCP (asyncio streams) | failed: not run | failed: not run | failed: not run | failed"
        " | failed: not run | failed |"
    )


def test_table_without_reference_says_n_a() -> None:
    results = {"tcp": {"bulk": {"ok": True, "mbps": 5000.0}}}
    row = report.format_table(results, COLUMNS[:1], ["tcp"]).splitlines()[2]
    assert row == "| TCP (asyncio streams) | 5,000 (n/a) |"


def test_must_show_verdicts() -> None:
    lines = report.must_show(sample_results())
    assert lines[0] == "- quicish bulk goodput: 3.00x (target ≥ 3x aioquic): **PASS**"
    assert lines[1].endswith("2.40x (target ≥ 2x faster than aioquic): **PASS**")
    slow = sample_results()
    slow["quicish"]["bulk"]["mbps"] = 150.0
    del slow["quicish"]["handshake"]
    lines = report.must_show(slow)
    assert lines[0].endswith("**not yet**")
    assert lines[1].endswith("**not measured**")


def test_best_run_picks_by_direction() -> None:
    runs: list[dict[str, Any]] = [
        {"ok": True, "mbps": 50.0},
        {"ok": False, "error": "x"},
        {"ok": True, "mbps": 70.0},
    ]
    best = report.best_run(runs, "mbps", True)
    assert best["mbps"] == 70.0 and best["runs"] == [50.0, 70.0] and best["attempts"] == 3
    assert report.best_run(runs, "mbps", False)["mbps"] == 50.0
    failed = [{"ok": False, "error": "a"}, {"ok": False, "error": "b"}]
    assert report.best_run(failed, "mbps", True) == {"ok": False, "error": "b"}


def test_update_section_keeps_the_rest_of_the_file() -> None:
    existing = (
        "# results\n\nintro\n\n<!-- bench:begin -->\nold table\n<!-- bench:end -->\n\n"
        "## crypto\nkept\n"
    )
    updated = report.update_section(existing, "new table")
    assert updated == (
        "# results\n\nintro\n\n<!-- bench:begin -->\nnew table\n<!-- bench:end -->\n\n"
        "## crypto\nkept\n"
    )
    assert report.update_section(updated, "new table") == updated


def test_update_section_appends_or_creates() -> None:
    assert report.update_section("# r\n\nother\n", "t") == (
        "# r\n\nother\n\n<!-- bench:begin -->\nt\n<!-- bench:end -->\n"
    )
    created = report.update_section(None, "t")
    assert created.startswith("# quicish benchmark results\n")
    assert created.count(report.BEGIN) == 1 and created.count(report.END) == 1


def test_percentile_nearest_rank_and_summary() -> None:
    samples = [float(x) for x in range(100, 0, -1)]
    assert common.percentile(samples, 99) == 99.0
    assert common.percentile(samples, 50) == 50.0
    assert common.percentile(samples, 100) == 100.0
    assert common.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        common.percentile([], 50)
    stats = common.summarize([1.0, 2.0, 3.0, 10.0])
    assert stats == {"median": 2.5, "p99": 10.0, "min": 1.0, "max": 10.0, "n": 4.0}


def test_parse_request() -> None:
    assert common.parse_request(b"GET /1048576\r\n") == ("GET", 1048576)
    assert common.parse_request(b"ECHO 64\r\n") == ("ECHO", 64)
    for bad in (b"GET 12\r\n", b"GET /x\r\n", b"PUT /1\r\n", b"GET /1 extra\r\n", b""):
        assert common.parse_request(bad) is None


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of each chunk, checking every CRC."""
    assert png[:8] == chart.PNG_SIGNATURE
    pos, out = 8, []
    while pos < len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        tag = png[pos + 4 : pos + 8]
        data = png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", png, pos + 8 + length)
        assert crc == zlib.crc32(tag + data)
        out.append((tag, data))
        pos += 12 + length
    assert pos == len(png)
    return out


def test_png_encode_header_ihdr_and_pixels() -> None:
    rgb = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    chunks = _chunks(chart.png_encode(3, 2, rgb))
    assert [tag for tag, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert chunks[0][1] == struct.pack(">IIBBBBB", 3, 2, 8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    assert raw == b"\x00" + rgb[:9] + b"\x00" + rgb[9:]
    with pytest.raises(ValueError):
        chart.png_encode(3, 2, rgb[:-1])


def test_canvas_text_draws_glyph_pixels() -> None:
    canvas = chart.Canvas(20, 10)
    canvas.text(0, 0, "1", (0, 0, 0), scale=1)
    ink = [(i // 3) for i in range(0, len(canvas.pixels), 3) if canvas.pixels[i] == 0]
    # "1" is ..#.. .##.. ..#.. x4 .###.: 1 + 2 + 4 + 3 pixels
    assert len(ink) == 10
    assert chart.Canvas.text_width("abc", 2) == 34


def test_render_png_is_a_valid_png_of_the_expected_size() -> None:
    panels = [
        chart.Panel(
            "bulk Mbit/s",
            [
                chart.Bar("quicish", 300.0, "300 (3.00x aioquic)"),
                chart.Bar("aioquic", 100.0, "100"),
                chart.Bar("tcp", None, "failed"),
            ],
        ),
        chart.Panel("rpc", [chart.Bar("aioquic", 800.0, "800")]),
    ]
    png = chart.render_png("title", panels, width=640, subtitle="2 cores")
    chunks = _chunks(png)
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert width == 640
    assert height > 4 * chart.BAR_H
    raw = zlib.decompress(b"".join(data for tag, data in chunks if tag == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)


def test_run_all_pins_server_and_client_to_two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness pins each stack's server and client to two different CPUs (the note in
    RESULTS.md says so): the preexec hook really changes a child's affinity."""
    import importlib
    import os
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    run_all = importlib.import_module("run_all")  # a script beside the benchmarks, not a package

    pair = run_all.cpu_pair()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        assert pair is None
        return
    assert pair == (cpus[0], cpus[1])
    probe = "import os; print(sorted(os.sched_getaffinity(0)))"
    for cpu in pair:
        out = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            preexec_fn=run_all._pinned(cpu),
            check=True,
        ).stdout
        assert out.strip() == f"[{cpu}]"
    assert run_all._pinned(None) is None
