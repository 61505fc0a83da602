"""WCAG 2.1 AA contrast of the web UI's text: every colour in web/static/*.css against its background.

Success criterion 1.4.3 asks 4.5:1 for normal text. The ratio is (L1 + 0.05) / (L2 + 0.05) of the
relative luminances (WCAG 2.1, "relative luminance"). The css is parsed, not a copied list of
colours, so a new rule or a changed variable cannot regress unseen: a rule with a text colour and
a background is checked as a pair; a status pill (`.state.available`) takes its text colour from its
base rule (`.state`); a rule with a text colour only is checked on the panel white and the page
background, or on the sidebar's dark background for the sidebar's own rules.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
AA = 4.5
HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
# Rules drawn on the sidebar or the phone top bar (base.html, both #101828), not on a panel.
SIDEBAR = {".sidebar", ".nav-title", ".brand", ".me", ".topbar"}


def luminance(colour: str) -> float:
    h = colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(int(h[i:i + 2], 16) / 255) for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def rules(css: str) -> list[tuple[str, dict[str, str]]]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    out = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = {k.strip(): v.replace("!important", "").strip()
                 for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+)", body)}
        for sel in selectors.split(","):
            out.append((sel.strip(), decls))
    return out


ROOT = dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{3,6})", (STATIC / "plateau.css").read_text()))
PANEL, PAGE, SIDEBAR_BG = "#ffffff", ROOT["--bg"], "#101828"


def solid(value: str | None) -> str | None:
    """A declared colour as hex: a var() of :root resolved; None for anything else (gradients...)."""
    if value is None:
        return None
    m = re.fullmatch(r"var\((--[\w-]+)\)", value)
    value = ROOT.get(m.group(1), "") if m else value
    return value if HEX.fullmatch(value) else None


def pairs() -> list[tuple[str, str, str]]:
    """(where, text colour, background) of every text drawn by the css."""
    found: list[tuple[str, str, str]] = []
    for path in sorted(STATIC.glob("*.css")):
        parsed = rules(path.read_text())
        text_of = {sel: solid(d.get("color")) for sel, d in parsed if solid(d.get("color"))}
        bases = set()
        for sel, d in parsed:
            colour, back = solid(d.get("color")), solid(d.get("background") or d.get("background-color"))
            where = f"{path.name}: {sel}"
            if back and not colour:
                base = re.match(r"\.[\w-]+", sel)
                if base and base.group(0) in text_of:  # a pill's modifier: its base rule's text colour
                    bases.add(base.group(0))
                    found.append((where, text_of[base.group(0)] or "", back))
            elif colour and back:
                found.append((where, colour, back))
        for sel, d in parsed:
            colour, back = solid(d.get("color")), solid(d.get("background") or d.get("background-color"))
            if colour and not back and sel not in bases:
                if re.match(r"[^\s>+~:]+", sel).group(0) in SIDEBAR:  # type: ignore[union-attr]
                    found.append((f"{path.name}: {sel}", colour, SIDEBAR_BG))
                else:
                    found += [(f"{path.name}: {sel}", colour, PANEL), (f"{path.name}: {sel} (page)", colour, PAGE)]
    return found


def test_the_ratio_is_wcag_s() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#98a2b3", "#ffffff") == pytest.approx(2.58, abs=0.01)  # "logged-out" of the issue
    assert contrast("#12a150", "#ffffff") == pytest.approx(3.37, abs=0.01)  # "available" of the issue


def test_the_status_pills_are_parsed() -> None:
    where = {w.split(": ", 1)[1] for w, _, _ in pairs()}
    assert {".state.available", ".state.logged-out", ".state.ringing", ".state.on-call"} <= where


def test_every_text_colour_meets_wcag_aa() -> None:
    low = [f"{where}: {fg} on {bg} is {contrast(fg, bg):.2f}:1"
           for where, fg, bg in pairs() if contrast(fg, bg) < AA]
    assert not low, "below WCAG AA 4.5:1:\n" + "\n".join(low)
