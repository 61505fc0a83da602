"""Print the module map of docs/ARCHITECTURE.md from each module's docstring.

    .venv/bin/python scripts/module_map.py          # the markdown, to paste into the document

The first sentence of a module's docstring is what the map says of it, so a module that is hard to
describe in one line is a hint that it holds two concepts. tests/unit/test_architecture.py checks
that the document names every module and no module that is gone.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("appliance", "hw", "web")


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    line = " ".join(doc.split("\n\n")[0].split())
    return line


def main() -> int:
    for pkg in PACKAGES:
        groups: dict[str, list[Path]] = {}
        for path in sorted((ROOT / pkg).rglob("*.py"), key=lambda p: (len(p.parts), p.as_posix())):
            if path.name == "__init__.py":
                continue
            rel = path.relative_to(ROOT)
            groups.setdefault(rel.parent.as_posix(), []).append(rel)
        for folder, paths in groups.items():
            print(f"\n### `{folder}/`\n")
            init = ROOT / folder / "__init__.py"
            if init.exists() and first_line(init):
                print(f"{first_line(init)}\n")
            for rel in paths:
                print(f"- `{rel.as_posix()}`: {first_line(ROOT / rel)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
