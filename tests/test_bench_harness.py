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


# ---------------------------------------------------------------- new peers and many connections

MANY = report.many_metrics(1000)


def peer_results() -> report.Results:
    results = sample_results()
    results["quicish"]["many"] = {
        "ok": True,
        "connections": 1000,
        "rss_per_conn_kb": 40.0,
        "handshakes_per_core_s": 900.0,
        "handshakes_per_s": 400.0,
    }
    results["aioquic"]["many"] = {
        "ok": True,
        "rss_per_conn_kb": 80.0,
        "handshakes_per_core_s": 450.0,
        "handshakes_per_s": 200.0,
    }
    results["picoquic"] = {
        w: {"ok": False, "error": "skipped: no Python 3.12"} for w in common.WORKLOADS
    }
    results["tcp"] = {
        "bulk": {"ok": True, "mbps": 6000.0},
        "handshake": {"ok": True, "median_ms": 0.1, "p99_ms": 0.2},
        "rpc": {"ok": True, "median_us": 100.0, "p99_us": 200.0},
    }
    results["tls"] = {"handshake": {"ok": True, "median_ms": 2.5, "p99_ms": 3.0}}
    return results


def test_many_table_and_skipped_stack_says_why_once_per_workload() -> None:
    assert MANY[0].label == "server RSS per idle connection, 1,000 open (KB)"
    assert [m.higher_is_better for m in MANY] == [False, True, True]
    lines = report.format_table(peer_results(), MANY, ["quicish", "aioquic", "picoquic"])
    rows = lines.splitlines()
    # memory: lower is better, so aioquic's 80 KB / quicish's 40 KB = 2x
    assert rows[2] == "| quicish | 40.0 (2.00x) | 900 (2.00x) | 400 (2.00x) |"
    assert rows[4] == "| picoquic (aiopquic) | skipped: no Python 3.12 | skipped | skipped |"
    assert report.skipped(peer_results(), "picoquic", "many")
    assert not report.skipped(sample_results(), "quicish", "streams")  # a failure, not a skip


def test_ratio_table_has_quicish_against_each_other_stack() -> None:
    columns = [COLUMNS[0], COLUMNS[2], MANY[0]]
    table = report.ratio_table(peer_results(), columns, ["quicish", "aioquic", "picoquic", "tcp"])
    rows = table.splitlines()
    assert rows[0].startswith("| quicish vs | bulk: 1 stream x 100 MB (Mbit/s) |")
    assert rows[1] == "|---|---:|---:|---:|"
    assert rows[2] == "| aioquic | 3.00x | 2.40x | 2.00x |"
    assert rows[3] == "| picoquic (aiopquic) | skipped | skipped | skipped |"
    # 300 vs 6000 Mbit/s; 5 ms vs 0.1 ms; TCP has no many run
    assert rows[4] == "| TCP (asyncio streams) | 0.05x | 0.02x | n/a |"
    assert len(rows) == 5  # no row for quicish itself


def test_compose_tables_has_all_three() -> None:
    text = report.compose_tables(peer_results(), COLUMNS, MANY, ["quicish", "aioquic"])
    assert text.count("| stack |") == 2
    assert text.count("| quicish vs |") == 1
    assert "Many connections" in text
    only_tcp = report.compose_tables(peer_results(), COLUMNS, [], ["tcp"])
    assert only_tcp.count("|---|") == 1  # no many table, no ratio table without quicish


def test_must_show_c_stacks_verdicts() -> None:
    lines = report.must_show_c_stacks(peer_results())
    assert lines[0] == "- quicish bulk goodput: n/a picoquic's (target ≥ 1x): **not measured**"
    assert lines.pop(1) == (
        "- quicish bulk goodput with 1200-byte datagrams fixed: n/a (target ≥ 1.5x the 1,140 "
        "Mbit/s of issue 19's run): **not measured**"
    )
    # 5 ms against TLS's 2.5 ms: twice TLS's time
    assert lines[1] == (
        "- quicish handshake + first 64-byte echo, median: 2.00x TLS 1.3 over TCP (asyncio + "
        "ssl)'s (target ≤ 1x): **not yet**"
    )
    assert lines[2] == (
        "- quicish RPC median: 2.00x TCP (asyncio streams)'s (target ≤ 1.5x): **not yet**"
    )
    assert lines[3] == "- quicish RPC p99: 2.00x TCP (asyncio streams)'s (target ≤ 3x): **PASS**"
    assert lines[4] == (
        "- quicish server RSS per idle connection: 40.0 KB at 1,000 connections "
        "(target ≤ 20 KB at 10,000): **not yet**"
    )
    better = peer_results()
    better["picoquic"]["bulk"] = {"ok": True, "mbps": 250.0}
    better["quicish"]["many"]["rss_per_conn_kb"] = 19.5
    better["quicish-1200"] = {"bulk": {"ok": True, "mbps": 1710.0}}
    lines = report.must_show_c_stacks(better)
    assert lines[0].startswith("- quicish bulk goodput: 1.20x picoquic's") and "PASS" in lines[0]
    assert lines[1].startswith("- quicish bulk goodput with 1200-byte datagrams fixed: 1,710")
    assert lines[1].endswith("**PASS**") and lines[5].endswith("**PASS**")
    better["quicish-1200"]["bulk"]["mbps"] = 1709.0
    assert report.must_show_c_stacks(better)[1].endswith("**not yet**")


def test_proc_parsers_rss_and_cpu() -> None:
    status = "Name:\tpython\nVmPeak:\t  99999 kB\nVmRSS:\t   51200 kB\nThreads:\t2\n"
    assert common.rss_bytes(status) == 51200 * 1024
    with pytest.raises(ValueError):
        common.rss_bytes("Name:\tx\n")
    # a command name with spaces and a parenthesis must not shift the fields
    fields = ["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "250", "50", "7"]
    stat = "1234 (odd name) x) " + " ".join(fields)
    assert common.cpu_seconds(stat, 100) == 3.0  # (250 + 50) ticks at 100 per second


def test_per_connection_figures() -> None:
    got = common.per_connection((10_000_000, 1.0), (50_000_000, 2.0), 1000, 4.0)
    assert got["rss_per_conn_kb"] == 40.0
    assert got["server_cpu_ms_per_handshake"] == 1.0
    assert got["handshakes_per_core_s"] == 1000.0
    assert got["handshakes_per_s"] == 250.0
    assert got["connections"] == 1000
    assert got["cpu_ticks"] == 100
    # no tick of CPU seen: counted as one, so the rate is a lower bound
    idle = common.per_connection((0, 1.0), (0, 1.0), 10, 1.0, tick=0.01)
    assert idle["handshakes_per_core_s"] == 1000.0 and idle["cpu_ticks"] == 1


def test_process_usage_reads_this_process() -> None:
    import os

    rss, cpu = common.process_usage(os.getpid())
    assert rss > 1_000_000  # a Python process with pytest loaded
    assert cpu > 0


async def test_many_workload_over_tcp_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The many workload holds its connections open: the server sees them all at once."""
    import asyncio
    import importlib
    import os
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks" / "peers"))
    tcp_peer = importlib.import_module("tcp_peer")
    peer_common = tcp_peer.common
    monkeypatch.setattr(peer_common, "MANY_SETTLE", 0.0)
    open_now = [0]
    most = [0]

    async def counting(reader: Any, writer: Any) -> None:
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])
        try:
            await peer_common.handle(reader, writer)
        finally:
            open_now[0] -= 1

    server = await asyncio.start_server(counting, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        progress = {"bytes": 0, "done": 0}
        got = await peer_common.many(
            tcp_peer.dial, "127.0.0.1", port, 25, 64, progress, os.getpid()
        )
    finally:
        server.close()
    assert most[0] == 25 + peer_common.MANY_WARMUP
    assert progress["done"] == 25
    assert progress["bytes"] == 64 * (25 + peer_common.MANY_WARMUP)
    assert got["connections"] == 25
    assert got["handshakes_per_s"] > 0
    assert set(got) >= {"rss_per_conn_kb", "handshakes_per_core_s", "server_rss_mb"}


def test_pick_pyenv_version_takes_the_newest_3_12() -> None:
    from benchmarks import picoquic_env

    names = ["3.11.7", "3.12.1", "3.12.10", "3.12.9", "3.13.0", "3.12-dev", "system"]
    assert picoquic_env.pick_pyenv_version(names) == "3.12.10"
    assert picoquic_env.pick_pyenv_version(["3.11.7", "3.13.0"]) is None


def test_picoquic_python_says_why_it_cannot(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import sys

    from benchmarks import picoquic_env

    monkeypatch.setenv("PICOQUIC_PYTHON", sys.executable)  # this Python has no aiopquic
    assert picoquic_env.picoquic_python(tmp_path) == (
        None,
        f"PICOQUIC_PYTHON={sys.executable} cannot import aiopquic",
    )
    monkeypatch.delenv("PICOQUIC_PYTHON")
    monkeypatch.setattr(picoquic_env, "base_python", lambda: None)
    python, why = picoquic_env.picoquic_python(tmp_path)
    assert python is None
    assert why == "no Python 3.12 (pyenv or python3.12 on PATH) for aiopquic"
    assert not (tmp_path / picoquic_env.VENV).exists()


def test_run_all_skips_stacks_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    run_all = importlib.import_module("run_all")
    monkeypatch.setattr(run_all, "_version", lambda dist: None if dist == "qh3" else "1.0")
    monkeypatch.setattr(
        run_all.picoquic_env, "picoquic_python", lambda root: (None, "no Python 3.12")
    )
    pythons, skips = run_all.stack_pythons(["quicish", "qh3", "picoquic", "tcp"])
    assert pythons == {"quicish": sys.executable, "tcp": sys.executable}
    assert skips["picoquic"] == "no Python 3.12"
    assert skips["qh3"].startswith("qh3 is not installed")
    args = run_all.parse_args(["--quick"])
    assert args.stacks == ["quicish", "quicish-1200", "aioquic", "qh3", "picoquic", "tcp", "tls"]
    assert args.conns == 100
    assert run_all.client_plan(args)["many"][0] == ["--size", "64", "--count", "100"]
    results = {"picoquic": {"bulk": {"ok": False, "error": "skipped: no Python 3.12"}}}
    bulk = report.metrics(5, 100, 0.05, 10, 200, 64)[0]
    panel = run_all.chart_panels(results, ["picoquic"], [bulk])[0]
    assert [(b.label, b.value, b.text) for b in panel.bars] == [("picoquic", None, "skipped")]


def test_run_all_workloads_match_the_peers() -> None:
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        run_all = importlib.import_module("run_all")
    finally:
        sys.path.pop(0)
    assert run_all.WORKLOADS == common.WORKLOADS
    assert run_all.parse_args(["--workloads", "many,bulk"]).workloads == ["bulk", "many"]
    with pytest.raises(SystemExit):
        run_all.parse_args(["--workloads", "nope"])


def test_chart_ratio_words_for_time_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    run_all = importlib.import_module("run_all")
    assert run_all._chart_ratio(2.0, True) == " (2.00x aioquic)"
    assert run_all._chart_ratio(2.0, False) == " (2.00x faster than aioquic)"
    assert run_all._chart_ratio(0.5, False) == " (2.00x slower than aioquic)"
    assert run_all._chart_ratio(2.0, False, memory=True) == " (2.00x less than aioquic)"
    assert run_all._chart_ratio(0.5, False, memory=True) == " (2.00x more than aioquic)"
    assert run_all._chart_ratio(None, False) == ""


def test_spread_table_lists_every_run() -> None:
    runs: list[dict[str, Any]] = [{"ok": True, "mbps": 50.0}, {"ok": True, "mbps": 1070.0}]
    results = {"quicish": {"bulk": report.best_run(runs, "mbps", True)}}
    bulk = report.Metric("bulk", "mbps", "bulk (Mbit/s)", True)
    table = report.spread_table(results, [bulk], ["quicish", "qh3"])
    assert table.splitlines() == [
        "| workload | quicish | qh3 |",
        "|---|---|---|",
        "| bulk (Mbit/s) | 50.0, 1,070 |  |",
    ]


def test_notes_name_stacks_off_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    run_all = importlib.import_module("run_all")
    args = run_all.parse_args(["--quick", "--repeat", "1", "--no-pin"])
    results = {
        "quicish": {"bulk": {"ok": True, "mbps": 1.0, "loop": "uvloop"}},
        "picoquic": {"bulk": {"ok": True, "mbps": 1.0, "loop": "asyncio"}},
    }
    notes = run_all.notes_for(args, results)
    assert "Stacks not on uvloop in this run (event loop): picoquic: asyncio." in notes
    results["picoquic"]["bulk"]["loop"] = "uvloop"
    assert not [n for n in run_all.notes_for(args, results) if "not on uvloop" in n]


async def test_many_workload_refuses_a_slow_opening(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections opened over more than the limit would meet their idle timeout: an error,
    not a figure."""
    import asyncio
    import importlib
    import os
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks" / "peers"))
    tcp_peer = importlib.import_module("tcp_peer")
    peer_common = tcp_peer.common
    monkeypatch.setattr(peer_common, "MANY_SETTLE", 0.0)
    monkeypatch.setattr(peer_common, "MANY_OPEN_LIMIT", 0.0)
    server = await asyncio.start_server(peer_common.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        progress = {"bytes": 0, "done": 0}
        with pytest.raises(RuntimeError, match="near the idle timeout"):
            await peer_common.many(tcp_peer.dial, "127.0.0.1", port, 3, 64, progress, os.getpid())
    finally:
        server.close()


def test_many_above_2000_raises_the_quic_idle_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening 10,000 connections outlasts the stacks' 30 s idle timeouts: above 2,000 the
    harness gives the peers one of conns / 50 seconds, which the quicish peer's configs
    take and the open limit follows (10 s below it)."""
    import importlib
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(here))
    monkeypatch.syspath_prepend(str(here / "peers"))
    run_all = importlib.import_module("run_all")
    quicish_peer = importlib.import_module("quicish_peer")
    assert run_all.IDLE_TIMEOUT_ENV == common.IDLE_TIMEOUT_ENV
    assert run_all.many_env(2000) == {}
    assert run_all.many_env(10_000) == {common.IDLE_TIMEOUT_ENV: "200"}
    monkeypatch.delenv(common.IDLE_TIMEOUT_ENV, raising=False)
    assert common.many_open_limit() == common.MANY_OPEN_LIMIT
    assert "idle_timeout" not in quicish_peer._cc_choice()
    monkeypatch.setenv(common.IDLE_TIMEOUT_ENV, "200")
    assert common.many_open_limit() == 190.0
    assert quicish_peer._cc_choice()["idle_timeout"] == 200.0


def test_bench_handshake_loss_is_deterministic_per_seed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench_handshake_loss.py: a seed gives the same losses and so the same completion
    time; the report counts every seed."""
    import importlib
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    bench = importlib.import_module("bench_handshake_loss")
    client, server, ctx = bench.configs()
    times = [bench.completion_time(seed, client, server, ctx) for seed in (3, 3, 4)]
    assert times[0] is not None and times[0] == times[1]
    monkeypatch.setattr(sys, "argv", ["bench_handshake_loss.py", "--seeds", "6"])
    bench.main()
    out = capsys.readouterr().out
    assert " of 6 handshakes completed within 30 s" in out and "completion (s): median" in out


def test_handshake_critical_path_orders_and_names_each_connections_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """handshake_critical_path.py: each connection's events of both sides, from connect() to
    the answer read, named by side, kind and ordinal; medians of the most common shape, with
    each side's CPU since its previous event."""
    from benchmarks import handshake_critical_path as path

    client, server = [], []
    for k in range(3):  # three connections, 10 ms apart; times in ns
        t0 = k * 10_000_000
        client += [(t0, t0, "connect"), (t0 + 50_000, t0 + 40_000, "send"),
                   (t0 + 500_000, t0 + 60_000, "wake"), (t0 + 600_000, t0 + 150_000, "send"),
                   (t0 + 900_000 + k * 1000, t0 + 170_000, "answer read")]  # fmt: skip
        server += [(t0 + 80_000, t0, "wake"), (t0 + 400_000, t0 + 300_000, "send"),
                   (t0 + 650_000, t0 + 310_000, "wake"),
                   (t0 + 800_000, t0 + 420_000, "send")]  # fmt: skip
    lines = path.timelines(client, server)
    assert [e[0] for e in lines[0]] == [
        "client connect", "client send 1", "server wake 1", "server send 1", "client wake 1",
        "client send 2", "server wake 2", "server send 2", "client answer read",
    ]  # fmt: skip
    assert lines[0][3] == ("server send 1", 400_000, 300_000)  # at, CPU since its wake
    assert lines[0][5] == ("client send 2", 600_000, 90_000)
    monkeypatch.setattr(path, "SKIP", 0)
    result = path.summary(lines)
    assert result["connections"] == 3 and result["typical"] == 3
    assert result["median_ms"] == 0.901
    assert result["steps"][-1] == {"event": "client answer read", "at_us": 901.0, "cpu_us": 20.0}


def test_bench_handshake_steps_times_every_step_of_a_real_handshake(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench_handshake_steps.py: every step of a handshake and echo (driven as aio drives
    it, the server's flight split) gets a time, and the echo is read."""
    import importlib
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    bench = importlib.import_module("bench_handshake_steps")
    result = bench.main(["--count", "2"])
    assert list(result) == list(bench.STEPS) and all(us > 0 for us in result.values())
    assert "s_flight" in capsys.readouterr().out
