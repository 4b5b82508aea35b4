"""The lossy-path workload of ``make bench``: bench_lossy's goodput measurement, in one run.

Each stack downloads bench_lossy's 10 MB through the impairment relay on both of its paths
(50 Mbit/s / 30 ms and 10 Mbit/s / 100 ms, 100-packet queue) at 0, 0.1, 1 and 3% random loss;
``--quick`` as bench_lossy's: the first path only and runs capped at 15 s. Stacks: quicish with
its default controller and with each other one of ``QUICISH_CCS``, aioquic, picoquic CUBIC and
BBR (through aiopquic, when its Python exists). The measuring is bench_lossy's own
``measure_goodput``, called once per stack and repetition so repeated runs interleave.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import bench_lossy
import harness_chart as chart
import harness_report as report

QUICISH_CCS = ("cubic", "bbr")  # quicish controllers measured beside the default
CC_NAMES = {"cubic": "CUBIC", "bbr": "BBR", "newreno": "NewReno"}
COLORS = {
    "quicish": (230, 110, 30),
    "quicish BBR": (150, 60, 0),
    "quicish CUBIC": (245, 180, 110),
    "quicish NewReno": (200, 160, 40),
    "aioquic": (50, 100, 190),
    "picoquic CUBIC": (190, 50, 60),
    "picoquic BBR": (120, 20, 90),
}
Measure = Callable[[argparse.Namespace, dict[str, Any], tuple[str, str]], dict[str, Any]]


def default_cc() -> str:
    """The congestion controller a quicish ``Config`` gets by default."""
    from quicish.config import Config

    return Config().congestion_control


def quicish_label(cc: str, default: str) -> str:
    name = CC_NAMES.get(cc, cc)
    return f"quicish {name} (default)" if cc == default else f"quicish {name}"


def lossy_stacks(
    stacks: list[str], picoquic_python: str | None, default: str
) -> dict[str, bench_lossy.Stack]:
    """bench_lossy's stacks for run_all's ``stacks`` (quicish, aioquic, picoquic; the others
    have no lossy rows), the quicish ones named by controller, the default first."""
    theirs = bench_lossy.stacks(picoquic_python)
    out: dict[str, bench_lossy.Stack] = {}
    if "quicish" in stacks:
        for cc in (default, *(c for c in QUICISH_CCS if c != default)):
            name = quicish_label(cc, default)
            # QUICISH_CC="" for the default: the Config default, whatever the caller's shell set
            env = {"QUICISH_CC": "" if cc == default else cc}
            out[name] = bench_lossy.Stack(name, sys.executable, "quicish_peer.py", env, [])
    if "aioquic" in stacks:
        out["aioquic"] = theirs["aioquic"]
    if "picoquic" in stacks:
        out.update({n: theirs[n] for n in report.LOSSY_PICOQUIC if n in theirs})
    return out


SKIPPED_ROWS = {"aioquic": ("aioquic",), "picoquic": report.LOSSY_PICOQUIC}


def _column(name: str) -> int:
    """Column order: quicish's controllers (the default first), aioquic, then picoquic."""
    return 0 if name.startswith("quicish") else 1 if name == "aioquic" else 2


def run(
    stacks: list[str],
    picoquic_python: str | None,
    skips: dict[str, str],
    cert: tuple[str, str],
    repeat: int,
    quick: bool,
    size: int = bench_lossy.SIZE,
    measure: Measure = bench_lossy.measure_goodput,
) -> report.Lossy:
    """Every stack's goodput at every point, ``repeat`` runs each (interleaved across stacks).

    ``stacks`` are run_all's; ``skips`` says why some of them cannot run here (their rows
    say "skipped" and why)."""
    default = default_cc()
    timeout = bench_lossy.QUICK_TIMEOUT if quick else bench_lossy.TIMEOUT
    chosen = lossy_stacks([s for s in stacks if s not in skips], picoquic_python, default)
    missing: dict[str, str] = {}
    for stack, rows in SKIPPED_ROWS.items():
        if stack in stacks and stack in skips:
            missing.update(dict.fromkeys(rows, f"skipped: {skips[stack]}"))
    names = sorted([*chosen, *missing], key=_column)
    goodput: dict[str, dict[str, dict[str, list[float]]]] = {}
    settings = argparse.Namespace(quick=quick, stacks=None, repeat=1, size=size, timeout=timeout)
    for _ in range(repeat):
        for name, stack in chosen.items():
            if name in missing:
                continue
            try:
                table = measure(settings, {name: stack}, cert)
            except (RuntimeError, OSError) as exc:  # e.g. the server did not start
                missing[name] = f"failed: {exc}"
                continue
            for path, by_stack in table.items():
                for loss, runs in by_stack.get(name, {}).items():
                    point = goodput.setdefault(path, {}).setdefault(name, {})
                    point.setdefault(loss, []).extend(runs)
    for path in goodput:  # the stacks in column order on every path
        goodput[path] = {n: goodput[path][n] for n in names if n in goodput[path]}
    return report.Lossy(
        stacks=names,
        losses=tuple(bench_lossy.LOSSES),
        goodput=goodput,
        missing=missing,
        size_mb=size / 1e6,
        timeout=timeout,
    )


def panels(lossy: report.Lossy) -> list[chart.LinePanel]:
    """Goodput (the medians) against loss rate, one panel per path, one line per stack."""
    out = []
    for path in lossy.goodput:
        panel = chart.LinePanel(
            f"lossy path {path}: goodput (Mbit/s) vs random loss, higher is better",
            [f"{loss:g}%" for loss in lossy.losses],
            y_label="Mbit/s",
        )
        for stack in lossy.stacks:
            values = [lossy.median(path, stack, loss) for loss in lossy.losses]
            if any(v is not None for v in values):
                default = stack.endswith("(default)")
                color = COLORS["quicish"] if default else COLORS.get(stack, (90, 90, 90))
                panel.series.append(chart.Series(stack, values, color))
        out.append(panel)
    return out
