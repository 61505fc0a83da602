"""Small server-side SVG charts (grouped bars, lines), inline in the page.

The appliance has no internet and pages must work without JavaScript libraries, so charts are plain
SVG strings built here: every label escaped, each series styled by a CSS class (`series-0`...) from
reports.css, and a `<title>` on each mark so hovering shows its value.

Text size: the SVG scales with its box, so a font size in user units shrinks with it (a 720-unit chart
in a 420 px column drew 11-unit labels ~6 px tall). The drawing is therefore laid out at the narrowest
width it is shown at (WIDTH, the CSS min-width of svg.chart): it only ever scales up, and a narrower
screen scrolls the chart sideways (the wrapper div) instead of shrinking its labels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 480  # = svg.chart min-width in reports.css: never drawn narrower, so 12-unit text is >= 12 px
HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 12, 42  # room for the y labels, the x labels and the legend


@dataclass(frozen=True)
class Series:
    """One named row of values, one per category; None is a gap."""

    name: str
    values: Sequence[float | None]


TICKS = 4  # gridlines above the axis


def _nice_max(value: float, integer: bool = False) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 x 10^k).

    With `integer` (counts of calls), the maximum is TICKS times a whole step of 1, 2 or 5 x 10^k, so
    every tick is a whole number: a count axis never reads 1.25 calls.
    """
    if integer:
        need = max(1.0, value / TICKS)
        decade = 1
        while True:
            for m in (1, 2, 5):
                if decade * m >= need:
                    return float(decade * m * TICKS)
            decade *= 10
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"


def _frame(title: str, y_max: float, unit: str) -> list[str]:
    plot_h = HEIGHT - _TOP - _BOTTOM
    parts = ['<div class="chart-box">',
             f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
             ' font-size="12" xmlns="http://www.w3.org/2000/svg">', f"<title>{escape(title)}</title>"]
    for i in range(TICKS + 1):  # the gridlines plus the axis
        v = y_max * i / TICKS
        y = _TOP + plot_h - plot_h * i / TICKS
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(_fmt(v))}{escape(unit)}</text>")
    return parts


def _x_labels(categories: Sequence[str], slot: float) -> list[str]:
    every = max(1, -(-len(categories) // 16))  # at most ~16 labels, so they never overlap
    y = HEIGHT - _BOTTOM + 14
    return [f'<text class="axis" x="{_LEFT + slot * (i + 0.5):.1f}" y="{y}" text-anchor="middle">'
            f"{escape(c)}</text>" for i, c in enumerate(categories) if i % every == 0]


def _legend(series: Sequence[Series]) -> list[str]:
    parts, x = [], _LEFT
    y = HEIGHT - 8
    for i, s in enumerate(series):
        parts.append(f'<rect class="series-{i % 8}" x="{x}" y="{y - 9}" width="10" height="10" rx="2"/>')
        parts.append(f'<text class="legend" x="{x + 14}" y="{y}">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    return parts


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], unit: str = "",
              integer: bool = False) -> Markup:
    """Grouped vertical bars: one group per category, one bar per series; `integer` for counts."""
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    y_max = _nice_max(peak, integer)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(1, len(categories))
    bar_w = slot * 0.8 / max(1, len(series))
    parts = _frame(title, y_max, unit)
    for si, s in enumerate(series):
        for ci, v in enumerate(s.values):
            if v is None:
                continue
            h = plot_h * v / y_max
            x = _LEFT + slot * ci + slot * 0.1 + bar_w * si
            parts.append(f'<rect class="series-{si % 8}" x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{bar_w:.1f}"'
                         f' height="{h:.1f}"><title>{escape(s.name)} {escape(categories[ci])}: '
                         f"{escape(_fmt(v))}{escape(unit)}</title></rect>")
    parts += _x_labels(categories, slot) + _legend(series)
    parts.append("</svg></div>")
    return Markup("".join(parts))


def line_chart(title: str, categories: Sequence[str], series: Sequence[Series], unit: str = "",
               y_max: float | None = None, integer: bool = False) -> Markup:
    """Lines with a dot at each value; None breaks the line; `integer` for counts."""
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = y_max if y_max is not None else _nice_max(peak, integer)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(1, len(categories))
    parts = _frame(title, top, unit)
    for si, s in enumerate(series):
        runs: list[list[tuple[float, float]]] = [[]]
        for ci, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            x, y = _LEFT + slot * (ci + 0.5), _TOP + plot_h - plot_h * min(v, top) / top
            runs[-1].append((x, y))
            parts.append(f'<circle class="series-{si % 8}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                         f"<title>{escape(s.name)} {escape(categories[ci])}: {escape(_fmt(v))}{escape(unit)}"
                         "</title></circle>")
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(f'<polyline class="line series-{si % 8}" points="{points}"/>')
    parts += _x_labels(categories, slot) + _legend(series)
    parts.append("</svg></div>")
    return Markup("".join(parts))
