"""Charts: count axes tick in whole numbers, and the labels Chromium draws are at least 11 px tall."""
from __future__ import annotations

import re
from pathlib import Path

from tests.peers.browser import browser_page
from web import charts

CSS = (Path(__file__).resolve().parents[2] / "web" / "static" / "reports.css").read_text()


def _y_ticks(svg: str) -> list[str]:
    return re.findall(r'<text class="axis" x="\d+" y="[\d.]+" text-anchor="end">([^<]*)</text>', svg)


def test_a_count_chart_ticks_are_integers_for_small_and_large_peaks() -> None:
    for peak in (0, 1, 3, 7, 13, 101, 2345):
        svg = charts.bar_chart("Calls", ["a", "b"], [charts.Series("Answered", [peak, 1])], integer=True)
        ticks = _y_ticks(str(svg))
        assert len(ticks) == charts.TICKS + 1
        assert all(t.isdigit() for t in ticks), (peak, ticks)
        assert int(ticks[-1]) >= peak


def test_without_integer_a_peak_of_3_gives_a_fractional_tick() -> None:
    """The failure the integer flag fixes: 0, 1.2 (1.25), 2.5 ... on a call count."""
    ticks = _y_ticks(str(charts.bar_chart("Calls", ["a"], [charts.Series("x", [3])])))
    assert not all(t.isdigit() for t in ticks)


def test_chromium_draws_axis_text_at_11_px_or_more_in_a_narrow_column() -> None:
    svg = charts.bar_chart("Calls per hour", [f"{h:02d}" for h in range(24)],
                           [charts.Series("Answered", [h % 5 for h in range(24)])], integer=True)
    html = f"<style>{CSS}</style><div style='width:420px'>{svg}</div>"
    with browser_page(viewport=(1280, 800)) as page:
        page.set_content(html)
        heights = page.eval_on_selector_all(
            "svg.chart text.axis", "els => els.map(e => e.getBoundingClientRect().height)")
        labels = page.eval_on_selector_all(
            "svg.chart text.axis[text-anchor=end]", "els => els.map(e => e.textContent)")
    assert heights and min(heights) >= 11, heights
    assert labels and all(t.isdigit() for t in labels), labels
