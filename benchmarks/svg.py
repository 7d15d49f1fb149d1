"""A small self-contained SVG line chart with logarithmic axes (no plotting library).

``log_chart(series, title=..., x_label=..., y_label=...)`` returns the SVG text. A series is a
label, a colour, a dash flag and its ``(x, y)`` points (positive numbers). Ticks sit on the
decades (1, 10, 100, ...) with light grid lines; the legend is drawn to the right of the plot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 760, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 250, 40, 55
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    dashed: bool
    points: tuple[tuple[float, float], ...]


def _decades(lo: float, hi: float) -> tuple[int, int]:
    a = math.floor(math.log10(lo))
    b = math.ceil(math.log10(hi))
    return a, max(b, a + 1)


def _tick(e: int) -> str:
    value = 10.0**e
    if e >= 0:
        return f"{int(value):,}"
    return f"{value:g}"


def log_chart(series: list[Series], *, title: str, x_label: str, y_label: str, note: str = "") -> str:
    xs = [x for s in series for x, _ in s.points if x > 0]
    ys = [y for s in series for _, y in s.points if y > 0]
    if not xs or not ys:
        empty = '<text x="10" y="30">no data</text>'
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="60">{empty}</svg>\n'
    x0, x1 = _decades(min(xs), max(xs))
    y0, y1 = _decades(min(ys), max(ys))
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (math.log10(x) - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + ph - (math.log10(y) - y0) / (y1 - y0) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for e in range(x0, x1 + 1):
        x = px(10.0**e)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + ph}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">{_tick(e)}</text>')
    for e in range(y0, y1 + 1):
        y = py(10.0**e)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick(e)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{HEIGHT - 22}" text-anchor="middle">{escape(x_label)}</text>')
    mid = TOP + ph / 2
    out.append(
        f'<text x="16" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 16 {mid:.1f})">{escape(y_label)}</text>'
    )
    if note:
        out.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="10" fill="#555">{escape(note)}</text>')
    for i, s in enumerate(series):
        pts = sorted((x, y) for x, y in s.points if x > 0 and y > 0)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>')
            marker = "rect" if s.dashed else "circle"
            for x, y in pts:
                if marker == "circle":
                    out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{s.colour}"/>')
                else:
                    out.append(
                        f'<rect x="{px(x) - 3.5:.1f}" y="{py(y) - 3.5:.1f}" width="7" height="7" fill="{s.colour}"/>'
                    )
        ly = TOP + 14 + i * 20
        lx = LEFT + pw + 16
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 28}" y2="{ly}" stroke="{s.colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 36}" y="{ly + 4}">{escape(s.label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
