"""Bar and line charts as PNG without third-party packages (zlib + struct and a 5x7 font).

``render_png(title, panels)`` draws the panels stacked vertically: a ``Panel`` is a horizontal
bar chart, a ``LinePanel`` lines over categories (goodput against loss rate, one line per
stack); ``render_matplotlib`` draws the same data with matplotlib when it is installed.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Color = tuple[int, int, int]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# 5x7 glyphs, one string per row, '#' = ink. Text is drawn upper-case.
_GLYPHS: dict[str, str] = {
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "##### ...#. ..#.. ...#. ....# #...# .###.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": "..##. .#... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ...#. .##..",
    " ": "..... ..... ..... ..... ..... ..... .....",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ",": "..... ..... ..... ..... .##.. ..#.. .#...",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    ";": "..... .##.. .##.. ..... .##.. ..#.. .#...",
    "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
    "/": "..... ....# ...#. ..#.. .#... #.... .....",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "-": "..... ..... ..... ##### ..... ..... .....",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "%": "##... ##..# ...#. ..#.. .#... #..## ...##",
    "*": "..... #...# .#.#. ..#.. .#.#. #...# .....",
    ">": ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
    "<": "...#. ..#.. .#... #.... .#... ..#.. ...#.",
    "_": "..... ..... ..... ..... ..... ..... #####",
    "'": "..#.. ..#.. ..... ..... ..... ..... .....",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
}
GLYPH_W, GLYPH_H = 5, 7
_SUBSTITUTES = {
    "\u00d7": "X",
    "\u00b5": "U",
    "\u2013": "-",
    "\u2014": "-",
    "\u2265": ">",
    "\u2264": "<",
}
_FONT: dict[str, list[tuple[int, int]]] = {
    ch: [(x, y) for y, row in enumerate(rows.split()) for x, mark in enumerate(row) if mark == "#"]
    for ch, rows in _GLYPHS.items()
}


def png_encode(width: int, height: int, rgb: bytes) -> bytes:
    """An 8-bit truecolour PNG of ``width`` x ``height`` pixels from packed RGB rows."""
    stride = width * 3
    if width <= 0 or height <= 0 or len(rgb) != stride * height:
        raise ValueError("pixel data does not match the size")
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


class Canvas:
    """An RGB pixel buffer with rectangles and bitmap text."""

    def __init__(self, width: int, height: int, background: Color = (255, 255, 255)) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def fill_rect(self, x: int, y: int, w: int, h: int, color: Color) -> None:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + w), min(self.height, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        run = bytes(color) * (x1 - x0)
        for row in range(y0, y1):
            start = (row * self.width + x0) * 3
            self.pixels[start : start + len(run)] = run

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return max(0, len(text) * (GLYPH_W + 1) * scale - scale)

    def text(self, x: int, y: int, text: str, color: Color = (0, 0, 0), scale: int = 2) -> None:
        for i, ch in enumerate(text):
            glyph = _FONT.get(_SUBSTITUTES.get(ch, ch).upper(), _FONT["?"])
            left = x + i * (GLYPH_W + 1) * scale
            for gx, gy in glyph:
                self.fill_rect(left + gx * scale, y + gy * scale, scale, scale, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 2) -> None:
        """A straight line ``width`` pixels thick (Bresenham, a square brush)."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        half = width // 2
        while True:
            self.fill_rect(x0 - half, y0 - half, width, width, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def to_png(self) -> bytes:
        return png_encode(self.width, self.height, bytes(self.pixels))


@dataclass
class Bar:
    label: str
    value: float | None  # None: no bar (the run failed); ``text`` says why
    text: str
    color: Color = (90, 90, 90)


@dataclass
class Panel:
    title: str
    bars: list[Bar] = field(default_factory=list)


@dataclass
class Series:
    label: str
    values: list[float | None]  # one per category; None: no point there (the run failed)
    color: Color = (90, 90, 90)


@dataclass
class LinePanel:
    """Lines over categorical x values (``categories``), one per series, from 0 upwards."""

    title: str
    categories: list[str]
    series: list[Series] = field(default_factory=list)
    y_label: str = ""


SCALE = 2
LINE = GLYPH_H * SCALE
BAR_H = 26
BAR_GAP = 8
MARGIN = 16
PLOT_H = 240  # a line panel's plot area
MARKER = 8
Y_TICKS = 5


def nice_top(value: float) -> float:
    """The axis top: the smallest 1, 2, 2.5 or 5 x 10^k at or above ``value`` (1 for none)."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * scale * (1 + 1e-9):
            return step * scale
    return 10.0 * scale


def _line_panel_height(panel: LinePanel) -> int:
    legend = len(panel.series) * (LINE + 8)
    return LINE + 10 + max(PLOT_H, legend) + LINE + 16 + MARGIN


def _draw_line_panel(canvas: Canvas, panel: LinePanel, y: int, width: int) -> None:
    """The panel's title, axes, grid, lines with square markers and a legend on the right."""
    canvas.text(MARGIN, y, panel.title, (0, 0, 0), SCALE)
    y += LINE + 10
    values = [v for s in panel.series for v in s.values if v is not None]
    top = nice_top(max(values, default=0.0))
    ticks = [top * i / Y_TICKS for i in range(Y_TICKS + 1)]
    tick_w = max(Canvas.text_width(_tick(t)) for t in ticks)
    legend_w = max((Canvas.text_width(s.label) for s in panel.series), default=0) + 3 * MARKER
    left = MARGIN + tick_w + 8
    right = width - MARGIN - legend_w - MARGIN
    bottom = y + PLOT_H
    for t in ticks:
        ty = bottom - round(t / top * PLOT_H)
        canvas.fill_rect(left, ty, right - left, 1, (225, 225, 225))
        canvas.text(left - 8 - Canvas.text_width(_tick(t)), ty - LINE // 2, _tick(t), (80, 80, 80))
    canvas.fill_rect(left, y, 1, PLOT_H + 1, (60, 60, 60))
    canvas.fill_rect(left, bottom, right - left, 1, (60, 60, 60))
    n = max(1, len(panel.categories))
    xs = [left + round((i + 0.5) * (right - left) / n) for i in range(n)]
    for x, name in zip(xs, panel.categories, strict=False):
        canvas.fill_rect(x, bottom, 1, 5, (60, 60, 60))
        canvas.text(x - Canvas.text_width(name) // 2, bottom + 8, name, (40, 40, 40))
    for series in panel.series:
        at: list[tuple[int, int] | None] = [
            None if v is None else (x, bottom - round(v / top * PLOT_H))
            for x, v in zip(xs, series.values, strict=False)
        ]
        for a, b in itertools.pairwise(at):  # no line across a missing point
            if a is not None and b is not None:
                canvas.line(*a, *b, series.color, 3)
        for px, py in (p for p in at if p is not None):
            canvas.fill_rect(px - MARKER // 2, py - MARKER // 2, MARKER, MARKER, series.color)
    ly = y
    for series in panel.series:
        canvas.fill_rect(right + MARGIN, ly + (LINE - MARKER) // 2, MARKER, MARKER, series.color)
        canvas.text(right + MARGIN + 2 * MARKER, ly, series.label, (40, 40, 40))
        ly += LINE + 8


def _tick(value: float) -> str:
    return f"{value:g}"


def render_png(
    title: str, panels: Sequence[Panel | LinePanel], width: int = 1000, subtitle: str = ""
) -> bytes:
    """The panels stacked: bar charts (each scaled to its own largest value) and line charts."""
    bars = [b for p in panels if isinstance(p, Panel) for b in p.bars]
    label_w = max((Canvas.text_width(b.label) for b in bars), default=0) + MARGIN
    text_w = max((Canvas.text_width(b.text) for b in bars), default=0) + MARGIN
    bar_area = max(100, width - 2 * MARGIN - label_w - text_w)
    height = MARGIN + LINE + (LINE + 8 if subtitle else 0) + MARGIN
    for panel in panels:
        if isinstance(panel, LinePanel):
            height += _line_panel_height(panel)
            continue
        height += LINE + 10 + len(panel.bars) * (BAR_H + BAR_GAP) + MARGIN
    canvas = Canvas(width, height)
    y = MARGIN
    canvas.text(MARGIN, y, title, (0, 0, 0), SCALE)
    y += LINE + 8
    if subtitle:
        canvas.text(MARGIN, y, subtitle, (100, 100, 100), SCALE)
        y += LINE + 8
    y += MARGIN - 8
    for panel in panels:
        canvas.fill_rect(MARGIN, y - 6, width - 2 * MARGIN, 1, (200, 200, 200))
        if isinstance(panel, LinePanel):
            _draw_line_panel(canvas, panel, y, width)
            y += _line_panel_height(panel)
            continue
        canvas.text(MARGIN, y, panel.title, (0, 0, 0), SCALE)
        y += LINE + 10
        top = max((b.value for b in panel.bars if b.value), default=0.0)
        for bar in panel.bars:
            text_y = y + (BAR_H - LINE) // 2
            canvas.text(MARGIN, text_y, bar.label, (40, 40, 40), SCALE)
            x = MARGIN + label_w
            length = 0
            if bar.value and top > 0:
                length = max(2, round(bar.value / top * bar_area))
                canvas.fill_rect(x, y, length, BAR_H, bar.color)
            ink = (40, 40, 40) if bar.value is not None else (190, 30, 30)
            canvas.text(x + length + 8, text_y, bar.text, ink, SCALE)
            y += BAR_H + BAR_GAP
        y += MARGIN
    return canvas.to_png()


def render_matplotlib(
    title: str, panels: Sequence[Panel | LinePanel], path: Path, subtitle: str = ""
) -> bool:
    """The same chart through matplotlib; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    heights = [3.6 if isinstance(p, LinePanel) else 2.2 for p in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(10, sum(heights)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        if isinstance(panel, LinePanel):
            _matplotlib_lines(ax, panel)
            continue
        labels = [b.label for b in panel.bars][::-1]
        values = [b.value or 0.0 for b in panel.bars][::-1]
        colors = [tuple(c / 255 for c in b.color) for b in panel.bars][::-1]
        ax.barh(labels, values, color=colors)
        top = max(values, default=0.0) or 1.0
        for i, bar in enumerate(panel.bars[::-1]):
            ax.text(
                (bar.value or 0.0) + top * 0.01,
                i,
                bar.text,
                va="center",
                fontsize=8,
                color="black" if bar.value is not None else "firebrick",
            )
        ax.set_xlim(0, top * 1.35)
        ax.set_title(panel.title, loc="left", fontsize=10)
        ax.tick_params(labelsize=8)
    fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _matplotlib_lines(ax: Any, panel: LinePanel) -> None:
    for series in panel.series:
        ax.plot(  # NaN: a gap in the line where a point is missing
            range(len(series.values)),
            [math.nan if v is None else v for v in series.values],
            marker="s",
            color=tuple(c / 255 for c in series.color),
            label=series.label,
        )
    values = [v for s in panel.series for v in s.values if v is not None]
    ax.set_xticks(range(len(panel.categories)))
    ax.set_xticklabels(panel.categories)
    ax.set_xlim(-0.5, len(panel.categories) - 0.5)
    ax.set_ylim(0, nice_top(max(values, default=0.0)))
    ax.set_ylabel(panel.y_label, fontsize=8)
    ax.grid(axis="y", color="0.9")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(panel.title, loc="left", fontsize=10)
    ax.tick_params(labelsize=8)
