"""Small server-side SVG charts (grouped bars, lines), inline in the page.

The appliance has no internet and pages must work without JavaScript libraries, so charts are plain
SVG strings built here: every label escaped, each series styled by a CSS class (`series-0`...) from
reports.css, and a `<title>` on each mark so hovering shows its value.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 12, 42  # room for the y labels, the x labels and the legend


@dataclass(frozen=True)
class Series:
    """One named row of values, one per category; None is a gap."""

    name: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 x 10^k)."""
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
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
             ' xmlns="http://www.w3.org/2000/svg">', f"<title>{escape(title)}</title>"]
    for i in range(5):  # four gridlines plus the axis
        v = y_max * i / 4
        y = _TOP + plot_h - plot_h * i / 4
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


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], unit: str = "") -> Markup:
    """Grouped vertical bars: one group per category, one bar per series."""
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    y_max = _nice_max(peak)
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
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(title: str, categories: Sequence[str], series: Sequence[Series], unit: str = "",
               y_max: float | None = None) -> Markup:
    """Lines with a dot at each value; None breaks the line."""
    peak = max((v for s in series for v in s.values if v is not None), default=0.0)
    top = y_max if y_max is not None else _nice_max(peak)
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
    parts.append("</svg>")
    return Markup("".join(parts))
