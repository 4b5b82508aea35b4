"""The congestion picture of a trace (``python -m quicish.qlog plot FILE -o out.png``).

Three panels on one time axis, after qvis's congestion graph: bytes sent and acknowledged
with the lost packets marked, the congestion window with bytes in flight (and ssthresh),
and the RTT (smoothed, min, latest). matplotlib is an optional extra: ``pip install
'quicish[plot]'``.
"""

from __future__ import annotations

import os
from typing import Any

from .analysis import Point, TraceAnalysis


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable(
            "plotting needs matplotlib: pip install 'quicish[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _xy(
    points: list[Point], scale: float = 1.0, until: float | None = None
) -> tuple[list[float], list[float]]:
    """Seconds and scaled values; ``until`` (ms) holds the last value to that time (metrics
    are logged when they change, so a value lasts until the next one)."""
    if until is not None and points and points[-1][0] < until:
        points = [*points, (until, points[-1][1])]
    return [t / 1000.0 for t, _ in points], [v * scale for _, v in points]


def plot_analysis(a: TraceAnalysis, out: str | os.PathLike[str], title: str | None = None) -> None:
    """Draw ``a`` into the image file ``out`` (format from its suffix, e.g. ``.png``)."""
    plt = _pyplot()
    fig, (ax_data, ax_cc, ax_rtt) = plt.subplots(
        3, 1, sharex=True, figsize=(11, 9), gridspec_kw={"height_ratios": (2, 1.3, 1)}
    )
    end = a.duration
    mb = 1.0 / 1e6
    ax_data.plot(*_xy(a.sent, mb), color="tab:blue", lw=1, label="sent")
    if a.acked:
        acked = [(a.sent[0][0], 0.0), *a.acked] if a.sent else a.acked
        ax_data.step(
            *_xy(acked, mb, end), where="post", color="tab:green", lw=1, label="acknowledged"
        )
    if a.lost:
        ax_data.scatter(*_xy(a.lost, mb), color="tab:red", marker="x", s=14, lw=0.8,
                        label=f"lost ({len(a.lost)})", zorder=3)  # fmt: skip
    ax_data.set_ylabel("MB")
    ax_data.legend(loc="upper left")
    ax_data.grid(alpha=0.3)

    kb = 1.0 / 1e3
    if a.cwnd:
        ax_cc.step(*_xy(a.cwnd, kb, end), where="post", color="tab:purple", lw=1, label="cwnd")
    if a.bytes_in_flight:
        ax_cc.step(*_xy(a.bytes_in_flight, kb, end), where="post", color="tab:orange", lw=0.7,
                   label="bytes in flight")  # fmt: skip
    if a.ssthresh:
        ax_cc.step(*_xy(a.ssthresh, kb, end), where="post", color="tab:gray", lw=0.8, ls="--",
                   label="ssthresh")  # fmt: skip
    ax_cc.set_ylabel("kB")
    if a.cwnd or a.bytes_in_flight:
        ax_cc.legend(loc="upper left")
    ax_cc.grid(alpha=0.3)

    for series, label, color, lw, ls in (
        (a.latest_rtt, "latest", "tab:cyan", 0.6, "-"),
        (a.smoothed_rtt, "smoothed", "tab:blue", 1.4, "-"),
        (a.min_rtt, "min", "black", 1.0, "--"),
    ):
        if series:
            ax_rtt.step(
                *_xy(series, 1.0, end), where="post", color=color, lw=lw, ls=ls, label=label
            )
    ax_rtt.set_ylabel("RTT (ms)")
    ax_rtt.set_xlabel("time (s)")
    if a.latest_rtt or a.smoothed_rtt or a.min_rtt:
        ax_rtt.legend(loc="upper left")
    ax_rtt.grid(alpha=0.3)

    heading = title or f"{a.odcid or 'connection'} ({a.vantage_point or 'unknown'} side)"
    fig.suptitle(heading)
    fig.tight_layout()
    fig.savefig(os.fspath(out), dpi=110)
    plt.close(fig)
