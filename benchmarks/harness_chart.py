"""Bar charts as PNG without third-party packages (zlib + struct and a 5x7 bitmap font).

``render_png(title, panels)`` draws one horizontal bar chart per panel, stacked vertically;
``render_matplotlib`` draws the same data with matplotlib when it is installed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

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


SCALE = 2
LINE = GLYPH_H * SCALE
BAR_H = 26
BAR_GAP = 8
MARGIN = 16


def render_png(title: str, panels: list[Panel], width: int = 1000, subtitle: str = "") -> bytes:
    """Horizontal bar charts, one panel per metric, each scaled to its own largest value."""
    label_w = max((Canvas.text_width(b.label) for p in panels for b in p.bars), default=0) + MARGIN
    text_w = max((Canvas.text_width(b.text) for p in panels for b in p.bars), default=0) + MARGIN
    bar_area = max(100, width - 2 * MARGIN - label_w - text_w)
    height = MARGIN + LINE + (LINE + 8 if subtitle else 0) + MARGIN
    for panel in panels:
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


def render_matplotlib(title: str, panels: list[Panel], path: Path, subtitle: str = "") -> bool:
    """The same chart through matplotlib; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
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
