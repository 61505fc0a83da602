"""The coupling rules of docs/ARCHITECTURE.md, measured by scripts/coupling.py, and the map itself.

These fail when a change brings back an import cycle, a private name used from another module,
SQL outside appliance/store/, or an engine runtime module reachable from web/; and when a module
is added, removed or renamed without docs/ARCHITECTURE.md's module map following.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("coupling", ROOT / "scripts" / "coupling.py")
assert _spec is not None and _spec.loader is not None
coupling = importlib.util.module_from_spec(_spec)
sys.modules["coupling"] = coupling  # dataclasses look their module up there
_spec.loader.exec_module(coupling)

FOUND = coupling.measure()


@pytest.mark.parametrize("rule", ["cycles", "private", "sql", "web-runtime"])
def test_coupling_rule_holds(rule: str) -> None:
    assert FOUND[rule] == [], f"{rule}: {FOUND[rule]}"


def test_the_checker_finds_what_it_looks_for(tmp_path: Path) -> None:
    """Each rule fires on a small example, so a green run is not a checker that sees nothing."""
    graph = {"appliance.a": {"appliance.b"}, "appliance.b": {"appliance.a"}, "web.x": {"appliance.c"},
             "appliance.c": {"appliance.pbx.call"}, "appliance.pbx.call": set()}
    assert coupling.cycles(graph) == [["appliance.a", "appliance.b"]]
    assert [f.what for f in coupling.web_runtime(graph)] == ["appliance.pbx.call (via appliance.c)"]
    (tmp_path / "owner.py").write_text("class A:\n    def _secret(self) -> None: ...\n")
    (tmp_path / "user.py").write_text("def f(a):\n    a._secret()\n    return 'SELECT x FROM t'\n")
    mods = {"appliance.owner": tmp_path / "owner.py", "appliance.user": tmp_path / "user.py"}
    coupling.ROOT = tmp_path
    try:
        assert [f.what for f in coupling.private_uses(mods)] == ["a._secret"]
        assert [f.what for f in coupling.sql_outside_store(mods)] == ["SELECT x FROM t"]
    finally:
        coupling.ROOT = ROOT


def _modules() -> set[str]:
    out = set()
    for pkg in ("appliance", "hw", "web"):
        for path in (ROOT / pkg).rglob("*.py"):
            if path.name != "__init__.py":
                out.add(path.relative_to(ROOT).as_posix())
    return out


def test_module_map_names_every_module_and_nothing_else() -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:appliance|hw|web)/[\w/]+\.py)`", doc))
    missing = sorted(_modules() - named)
    stale = sorted(named - _modules())
    assert not missing, f"docs/ARCHITECTURE.md does not name: {missing}"
    assert not stale, f"docs/ARCHITECTURE.md names modules that do not exist: {stale}"
