"""How the code is wired, measured: the four coupling rules of docs/ARCHITECTURE.md.

    .venv/bin/python scripts/coupling.py            # counts, then every finding
    .venv/bin/python scripts/coupling.py --counts   # counts only

Rules (each must be 0; tests/unit/test_architecture.py asserts it):
- cycles: import cycles among the modules of appliance/ and hw/. Every import counts, including
  those under `if TYPE_CHECKING:` and inside functions, since each is a dependency a reader must
  follow. Importing a submodule does not count as importing its package's __init__.
- private: a private name (`_x`, not dunder) of one of our modules used from another module: as
  `obj._x` where `obj` is not self/cls, or `from m import _x`. A name counts as private to a module
  when that module defines it and the using module does not.
- sql: SQL statements written as string literals outside appliance/store/, and calls of the store's
  `query`/`execute` (its SQL entry points, for its own modules) from outside it.
- web-runtime: engine runtime modules (sip, media, pbx, hw, engine, api.server, system.supervisor)
  reached from web/ through imports, transitively.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("appliance", "hw", "web")
RUNTIME = ("appliance.sip", "appliance.media", "appliance.pbx", "hw", "appliance.engine",
           "appliance.api.server", "appliance.system.supervisor")
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|REPLACE|PRAGMA|WITH)\s",
                 re.IGNORECASE)
STORE_PRIVATE = ("_conn",)
STORE_SQL_CALLS = ("query", "execute")


@dataclass(frozen=True)
class Finding:
    rule: str
    where: str
    what: str


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join(base + ([node.module] if node.module else []))


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the set of our modules it imports (any import anywhere in the file)."""
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    deps.add(_nearest(alias.name, mods))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, is_pkg, node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else _nearest(target, mods))
        deps.discard("")
        deps.discard(mod)
        graph[mod] = deps
    return graph


def _nearest(name: str, mods: dict[str, Path]) -> str:
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in mods:
            return cand
        parts.pop()
    return ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), within appliance/ and hw/."""
    nodes = [m for m in graph if not m.startswith("web")]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w.startswith("web"):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(out)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
    return {n for n in names if _private(n)}


def private_uses(mods: dict[str, Path]) -> list[Finding]:
    trees = {m: ast.parse(p.read_text(), str(p)) for m, p in mods.items()}
    defined = {m: _defined_names(t) for m, t in trees.items()}
    ours = set().union(*defined.values())
    out: list[Finding] = []
    for mod, tree in trees.items():
        own = defined[mod]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                if node.attr in ours and node.attr not in own:
                    out.append(Finding("private", f"{mods[mod].relative_to(ROOT)}:{node.lineno}",
                                       f"{ast.unparse(node)}"))
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if _private(alias.name):
                        out.append(Finding("private", f"{mods[mod].relative_to(ROOT)}:{node.lineno}",
                                           f"from {node.module} import {alias.name}"))
    return out


def sql_outside_store(mods: dict[str, Path]) -> list[Finding]:
    out: list[Finding] = []
    for mod, path in mods.items():
        if mod.startswith("appliance.store"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr)
                      and isinstance(n.body[0].value, ast.Constant)}
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings and SQL.match(node.value)
                    and re.search(r"\b(FROM|INTO|SET|TABLE|VALUES|WHERE|journal_mode|user_version)\b",
                                  node.value, re.IGNORECASE)):
                out.append(Finding("sql", f"{where}:{node.lineno}", node.value.strip()[:60]))
            elif isinstance(node, ast.Attribute) and (
                    node.attr in STORE_PRIVATE
                    or (node.attr in STORE_SQL_CALLS and "store" in ast.unparse(node.value).lower())):
                out.append(Finding("sql", f"{where}:{node.lineno}", ast.unparse(node)))
    return out


def _runtime(mod: str) -> bool:
    return any(mod == r or mod.startswith(r + ".") for r in RUNTIME)


def web_runtime(graph: dict[str, set[str]]) -> list[Finding]:
    """Each runtime module a web module reaches, through modules that are not runtime themselves."""
    out: list[Finding] = []
    for mod in sorted(m for m in graph if m.startswith("web")):
        seen: dict[str, str] = {}
        todo = [(d, mod) for d in sorted(graph[mod])]
        while todo:
            dep, via = todo.pop(0)
            if dep in seen or dep.startswith("web"):
                continue
            seen[dep] = via
            if _runtime(dep):
                out.append(Finding("web-runtime", mod, f"{dep} (via {via})"))
            else:
                todo.extend((d, dep) for d in sorted(graph.get(dep, ())))
    return out


def measure() -> dict[str, list]:
    mods = modules()
    graph = imports(mods)
    return {
        "cycles": cycles(graph),
        "private": private_uses(mods),
        "sql": sql_outside_store(mods),
        "web-runtime": web_runtime(graph),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", action="store_true", help="print the counts only")
    args = parser.parse_args(argv)
    found = measure()
    for rule, items in found.items():
        print(f"{rule}: {len(items)}")
    if not args.counts:
        for rule, items in found.items():
            for item in items:
                if isinstance(item, Finding):
                    print(f"  {rule}  {item.where}  {item.what}")
                else:
                    print(f"  {rule}  {' -> '.join(item)}")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
