"""Pure functions of the benchmark harness: ratios, the markdown table, the RESULTS.md section.

Results are ``{stack: {workload: client_json}}`` where a client JSON line is either
``{"ok": true, "mbps": ..., ...}`` or ``{"ok": false, "error": "..."}`` (an error starting
with "skipped" is a stack that could not run here, not a failure).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

STACKS: dict[str, str] = {
    "quicish": "quicish",
    "quicish-1200": "quicish, 1200-byte datagrams fixed",
    "aioquic": "aioquic",
    "qh3": "qh3",
    "picoquic": "picoquic (aiopquic)",
    "tcp": "TCP (asyncio streams)",
    "tls": "TLS 1.3 over TCP (asyncio + ssl)",
}
REFERENCE = "aioquic"
BULK_1200_BEFORE = 1140  # Mbit/s: quicish at 1200 bytes when issue 19 was filed (1,120-1,140)
SUBJECT = "quicish"  # the stack whose ratio to every other one gets its own table

Results = dict[str, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Metric:
    workload: str  # which client run it comes from
    field: str  # key in that run's JSON
    label: str  # column header
    higher_is_better: bool


def metrics(
    size_mb: float, streams: int, stream_mb: float, handshakes: int, rpcs: int, rpc_size: int
) -> list[Metric]:
    """The table's columns for these workload sizes."""
    return [
        Metric("bulk", "mbps", f"bulk: 1 stream x {size_mb:g} MB (Mbit/s)", True),
        Metric("streams", "mbps", f"{streams} streams x {stream_mb:g} MB (Mbit/s)", True),
        Metric(
            "handshake", "median_ms", f"handshake + 1st RTT, median of {handshakes} (ms)", False
        ),
        Metric("handshake", "p99_ms", "handshake + 1st RTT, p99 (ms)", False),
        Metric("rpc", "median_us", f"{rpc_size}-byte RPC, median of {rpcs} (µs)", False),
        Metric("rpc", "p99_us", f"{rpc_size}-byte RPC, p99 (µs)", False),
    ]


def many_metrics(conns: int) -> list[Metric]:
    """The many-connections table's columns."""
    return [
        Metric(
            "many", "rss_per_conn_kb", f"server RSS per idle connection, {conns:,} open (KB)", False
        ),
        Metric("many", "handshakes_per_core_s", "handshakes per second per server core", True),
        Metric("many", "handshakes_per_s", "handshakes per second (wall, 10 at a time)", True),
    ]


def value_of(results: Results, stack: str, metric: Metric) -> float | None:
    """The figure, or None when that run failed or did not happen."""
    run = results.get(stack, {}).get(metric.workload)
    if not run or not run.get("ok"):
        return None
    value = run.get(metric.field)
    return float(value) if isinstance(value, (int, float)) else None


def ratio(value: float | None, reference: float | None, higher_is_better: bool) -> float | None:
    """How many times better than the reference: value/ref for throughput, ref/value for latency.

    So > 1 always means better than aioquic. None when either side is missing or zero.
    """
    if value is None or reference is None or value <= 0 or reference <= 0:
        return None
    return value / reference if higher_is_better else reference / value


def fmt_number(x: float) -> str:
    """Three significant figures, thousands separated: 6,213 / 68.2 / 3.45 / 0.412."""
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_ratio(r: float | None) -> str:
    """``2.42x``; fewer decimals for large ratios (``18.5x``, ``185x``)."""
    if r is None:
        return "n/a"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def failure_reason(results: Results, stack: str, workload: str) -> str:
    run = results.get(stack, {}).get(workload)
    if run is None:
        return "not run"
    reason = str(run.get("error") or "unknown error")
    return " ".join(reason.split())[:120]


def skipped(results: Results, stack: str, workload: str) -> bool:
    """Whether that run was skipped (the stack cannot run here) rather than failed."""
    return failure_reason(results, stack, workload).startswith("skipped")


def best_run(runs: list[dict[str, Any]], field: str, higher_is_better: bool) -> dict[str, Any]:
    """The best successful run by ``field`` (all runs' figures under "runs"); else the last."""
    good = [r for r in runs if r.get("ok") and isinstance(r.get(field), (int, float))]
    if not good:
        return runs[-1]
    best = (max if higher_is_better else min)(good, key=lambda r: float(r[field]))
    return best | {"runs": [float(r[field]) for r in good], "attempts": len(runs)}


def cell(results: Results, stack: str, metric: Metric, first_of_workload: bool) -> str:
    """One table cell: the figure and its ratio to aioquic, or why it is missing."""
    value = value_of(results, stack, metric)
    if value is None:
        reason = failure_reason(results, stack, metric.workload).replace("|", "\\|")
        if skipped(results, stack, metric.workload):
            return reason if first_of_workload else "skipped"
        return "failed: " + reason if first_of_workload else "failed"
    reference = value_of(results, REFERENCE, metric)
    r = ratio(value, reference, metric.higher_is_better)
    return f"{fmt_number(value)} ({fmt_ratio(r)})"


def format_table(results: Results, columns: list[Metric], stacks: list[str]) -> str:
    """Markdown table: one row per stack, one column per metric."""
    header = "| stack | " + " | ".join(m.label for m in columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    lines = [header, rule]
    for stack in stacks:
        seen: set[str] = set()
        cells = []
        for m in columns:
            cells.append(cell(results, stack, m, m.workload not in seen))
            seen.add(m.workload)
        lines.append(f"| {STACKS.get(stack, stack)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_table(
    results: Results, columns: list[Metric], stacks: list[str], subject: str = SUBJECT
) -> str:
    """Markdown table of ``subject``'s ratio to each other stack, per metric (> 1x: better)."""
    header = f"| {subject} vs | " + " | ".join(m.label for m in columns) + " |"
    lines = [header, "|---|" + "---:|" * len(columns)]
    for stack in stacks:
        if stack == subject:
            continue
        cells = [
            "skipped"
            if skipped(results, stack, m.workload)
            else fmt_ratio(
                ratio(
                    value_of(results, subject, m),
                    value_of(results, stack, m),
                    m.higher_is_better,
                )
            )
            for m in columns
        ]
        lines.append(f"| {STACKS.get(stack, stack)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def must_show(results: Results) -> list[str]:
    """The issue's targets for quicish against aioquic in this run, with pass/fail."""
    checks = [
        ("bulk goodput", Metric("bulk", "mbps", "", True), 3.0, "≥ 3x aioquic"),
        (
            "handshake + first round trip (median)",
            Metric("handshake", "median_ms", "", False),
            2.0,
            "≥ 2x faster than aioquic",
        ),
    ]
    lines = []
    for name, m, target, wanted in checks:
        r = ratio(
            value_of(results, "quicish", m), value_of(results, REFERENCE, m), m.higher_is_better
        )
        verdict = "not measured" if r is None else ("PASS" if r >= target else "not yet")
        lines.append(f"- quicish {name}: {fmt_ratio(r)} (target {wanted}): **{verdict}**")
    return lines


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("PASS" if ok else "not yet")


def must_show_c_stacks(results: Results) -> list[str]:
    """Issue 19's targets (the C stacks' league) in this run, with pass/fail.

    Latency targets are multiples of the other stack's figure (quicish ÷ theirs, lower is
    better); bulk is the ratio to picoquic's goodput; memory is absolute, at this run's
    connection count."""
    checks = [  # (what, metric, other stack, at most this multiple of theirs)
        ("handshake + first 64-byte echo, median", "handshake", "median_ms", "tls", 1.0),
        ("RPC median", "rpc", "median_us", "tcp", 1.5),
        ("RPC p99", "rpc", "p99_us", "tcp", 3.0),
    ]
    bulk = Metric("bulk", "mbps", "", True)
    r = ratio(value_of(results, SUBJECT, bulk), value_of(results, "picoquic", bulk), True)
    lines = [
        f"- quicish bulk goodput: {fmt_ratio(r)} picoquic's (target ≥ 1x): "
        f"**{_verdict(None if r is None else r >= 1.0)}**"
    ]
    fixed = value_of(results, "quicish-1200", bulk)
    lines.append(
        f"- quicish bulk goodput with 1200-byte datagrams fixed: "
        f"{'n/a' if fixed is None else fmt_number(fixed) + ' Mbit/s'} (target ≥ 1.5x the "
        f"{BULK_1200_BEFORE:,} Mbit/s of issue 19's run): "
        f"**{_verdict(None if fixed is None else fixed >= 1.5 * BULK_1200_BEFORE)}**"
    )
    for what, workload, field, other, most in checks:
        m = Metric(workload, field, "", False)
        mine, theirs = value_of(results, SUBJECT, m), value_of(results, other, m)
        times = mine / theirs if mine is not None and theirs else None
        lines.append(
            f"- quicish {what}: {fmt_ratio(times)} {STACKS[other]}'s "
            f"(target ≤ {most:g}x): **{_verdict(None if times is None else times <= most)}**"
        )
    many = results.get(SUBJECT, {}).get("many", {})
    kb = value_of(results, SUBJECT, Metric("many", "rss_per_conn_kb", "", False))
    at = f"{int(many.get('connections', 0)):,} connections"
    lines.append(
        f"- quicish server RSS per idle connection: "
        f"{'n/a' if kb is None else fmt_number(kb) + ' KB'} at {at} "
        f"(target ≤ 20 KB at 10,000): **{_verdict(None if kb is None else kb <= 20.0)}**"
    )
    return lines


def spread_table(results: Results, primary: list[Metric], stacks: list[str]) -> str:
    """Every run's figure behind each best one (the runs in order), per workload and stack."""
    header = "| workload | " + " | ".join(STACKS.get(s, s) for s in stacks) + " |"
    lines = [header, "|---|" + "---|" * len(stacks)]
    for m in primary:
        cells = []
        for stack in stacks:
            runs = results.get(stack, {}).get(m.workload, {}).get("runs")
            cells.append(", ".join(fmt_number(x) for x in runs) if runs else "")
        lines.append(f"| {m.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compose_tables(
    results: Results, columns: list[Metric], many: list[Metric], stacks: list[str]
) -> str:
    """The section's tables: the workloads, many connections, quicish's ratio to each stack."""
    parts = [format_table(results, columns, stacks)] if columns else []
    if many:
        parts += [
            "Many connections (the server's `/proc` before and after opening them; RSS is "
            "user-space memory, a TCP socket's kernel buffers are not in it):",
            format_table(results, many, stacks),
        ]
    if SUBJECT in stacks and len(stacks) > 1 and columns + many:
        parts += [
            f"{SUBJECT}'s ratio to each stack (> 1x: {SUBJECT} is better):",
            ratio_table(results, columns + many, stacks),
        ]
    return "\n\n".join(parts)


def render_section(
    table: str,
    machine: list[str],
    command: str,
    notes: list[str],
    extra: list[str] | None = None,
    chart_path: str = "results.png",
) -> str:
    """The text between the markers."""
    parts = [
        "## Transport benchmarks: quicish vs aioquic, qh3, picoquic, TCP and TLS",
        "",
        "Measured in one run by `benchmarks/run_all.py`: every server and client in its own "
        "process, on loopback, the stacks interleaved. In parentheses: the ratio to aioquic in "
        "the same run, always oriented so that > 1x means better than aioquic (throughput ÷ "
        "aioquic's, aioquic's latency or memory ÷ this one).",
        "",
        table,
        "",
        *(extra or []),
        *([""] if extra else []),
        "Machine: " + "; ".join(machine) + ".",
        "",
        f"Reproduce: `{command}` (`make bench` runs the defaults).",
        "",
        *(f"- {n}" for n in notes),
        "",
        f"![benchmark chart]({chart_path})",
    ]
    return "\n".join(parts)


def update_section(existing: str | None, section: str) -> str:
    """``existing`` with the text between the markers replaced (or the block appended)."""
    block = f"{BEGIN}\n{section.strip()}\n{END}"
    if not existing:
        return f"# quicish benchmark results\n\n{block}\n"
    start = existing.find(BEGIN)
    end = existing.find(END, start + len(BEGIN)) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return existing[:start] + block + existing[end + len(END) :]
    return existing.rstrip("\n") + "\n\n" + block + "\n"


# ---------------------------------------------------------------- lossy paths (issue 22)

LOSSY_TARGET = 0.9  # issue 22: quicish >= 0.9x the best picoquic controller at every point
LOSSY_PICOQUIC = ("picoquic CUBIC", "picoquic BBR")


@dataclass
class Lossy:
    """One run's goodput through the impairment relay: every run's Mbit/s per point."""

    stacks: list[str]  # the columns, in order ("quicish CUBIC (default)", "aioquic", ...)
    losses: tuple[float, ...]  # random loss rates (%), the rows
    goodput: dict[str, dict[str, dict[str, list[float]]]]  # path -> stack -> str(loss) -> runs
    missing: dict[str, str]  # stack -> why it has no runs ("skipped: ..." or a failure)
    size_mb: float = 10.0
    timeout: float = 30.0

    def runs(self, path: str, stack: str, loss: float) -> list[float]:
        return self.goodput.get(path, {}).get(stack, {}).get(str(loss), [])

    def median(self, path: str, stack: str, loss: float) -> float | None:
        runs = self.runs(path, stack, loss)
        return statistics.median(runs) if runs else None

    def subjects(self) -> list[str]:
        """The quicish columns (one per congestion controller), each held to the target."""
        return [s for s in self.stacks if s.startswith(SUBJECT)]

    def best_picoquic(self, path: str, loss: float) -> float | None:
        """The better of picoquic's medians (CUBIC, BBR) at this point."""
        medians = [self.median(path, s, loss) for s in LOSSY_PICOQUIC]
        got = [m for m in medians if m is not None]
        return max(got) if got else None

    def ratio(self, subject: str, path: str, loss: float) -> float | None:
        """``subject``'s median ÷ the best picoquic median at this point."""
        return ratio(self.median(path, subject, loss), self.best_picoquic(path, loss), True)


def lossy_cell(runs: list[float]) -> str:
    """The median, then every run in order when there are several: ``36.0 (33.1, 36.0, 39.2)``."""
    median = fmt_number(statistics.median(runs))
    if len(runs) == 1:
        return median
    return f"{median} ({', '.join(fmt_number(r) for r in runs)})"


def lossy_table(lossy: Lossy, path: str) -> str:
    """One path's table: a row per loss rate, a column per stack, then quicish ÷ picoquic."""
    subjects = lossy.subjects()
    header = ["random loss", *lossy.stacks, *(f"{s} ÷ best picoquic" for s in subjects)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row, loss in enumerate(lossy.losses):
        cells = []
        for stack in lossy.stacks:
            runs = lossy.runs(path, stack, loss)
            if runs:
                cells.append(lossy_cell(runs))
            else:
                why = lossy.missing.get(stack, "not run").replace("|", "\\|")
                short = "skipped" if why.startswith("skipped") else "failed"
                cells.append(why if row == 0 else short)
        cells += [fmt_ratio(lossy.ratio(s, path, loss)) for s in subjects]
        lines.append(f"| {loss:g}% | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def lossy_tables(lossy: Lossy) -> str:
    """The lossy-path tables of the bench section, one per path."""
    parts = []
    for path in lossy.goodput:
        parts += [
            f"Lossy path {path}, 100-packet queue, random loss both ways: goodput (Mbit/s) of "
            f"a {lossy.size_mb:g} MB download, the median (every run in parentheses); the "
            "last columns are quicish's median ÷ the better picoquic median:",
            lossy_table(lossy, path),
        ]
    return "\n\n".join(parts)


def lossy_must_show(lossy: Lossy) -> list[str]:
    """Issue 22's goodput target per quicish controller, with pass/fail over every point."""
    lines = []
    points = [(path, loss) for path in lossy.goodput for loss in lossy.losses]
    for subject in lossy.subjects():
        ratios = [(lossy.ratio(subject, path, loss), path, loss) for path, loss in points]
        measured = [(r, path, loss) for r, path, loss in ratios if r is not None]
        passed = sum(r >= LOSSY_TARGET for r, _, _ in measured)
        if measured:
            worst, path, loss = min(measured)
            detail = (
                f"worst {fmt_ratio(worst)} ({path}, {loss:g}% loss), "
                f"{passed} of {len(points)} points pass"
            )
        else:
            detail = "n/a"
        if len(measured) < len(points) and passed == len(measured):
            verdict = "not measured" if not measured else "not measured at every point"
        else:
            verdict = _verdict(passed == len(points))
        lines.append(
            f"- {subject} goodput on lossy paths: {detail} (target ≥ {LOSSY_TARGET:g}x the "
            f"better picoquic at every point): **{verdict}**"
        )
    return lines


def lossy_note(lossy: Lossy) -> str:
    """What the lossy tables measured, for the section's notes."""
    return (
        "Lossy paths (issue 22; `benchmarks/bench_lossy.py`'s goodput measurement): each "
        "stack's server and client processes (not pinned to CPUs) talk through the impairment "
        "relay (`quicish.netem`, its own process): rate limit, delay, 100-packet drop-tail "
        f"queue, random loss both ways; the {lossy.size_mb:g} MB download is sent by the "
        f"server's controller; a run not done within {lossy.timeout:g} s counts the bytes it "
        "got by then. quicish's default controller comes from `Config`, the others from "
        "`QUICISH_CC`; picoquic CUBIC and BBR are aiopquic's `congestion_control_algorithm`."
    )
