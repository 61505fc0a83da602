"""No module in web/ reads a field back out of an exception's text.

Field errors are data (appliance/schema/errors.py: FieldError, RecordInvalid.errors, ApiError.errors);
`str(exc).partition(": ")` turned a message back into a field name, and broke whenever a message
changed its words. The check: inside an ``except ... as exc`` block, a split/partition of anything
made from ``exc`` (``str(exc)``, ``exc.message``, a name assigned from them) is a finding. Showing
the message itself (``state.fail_form(str(exc))``) is not.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPLITTERS = {"split", "rsplit", "partition", "rpartition"}
ERROR_TYPE = re.compile(r"(Error|Exception|Invalid)\b")


def _uses(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _parsing(body: list[ast.stmt], tainted: set[str]) -> list[int]:
    tainted = set(tainted)
    for node in (n for stmt in body for n in ast.walk(stmt)):
        # A name bound from the exception's text carries it: message = str(exc); message.split(":").
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _uses(node.value, tainted):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            tainted |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return [node.lineno for stmt in body for node in ast.walk(stmt)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in SPLITTERS and _uses(node.func.value, tainted)]


def error_text_parsing(source: str) -> list[int]:
    """The lines where a split or partition works on the text of an exception: the one an ``except``
    block handles, or a function's parameter typed as an error (``def f(exc: ConfigError)``)."""
    found: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ExceptHandler) and node.name is not None:
            found += _parsing(node.body, {node.name})
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            params = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            errors = {a.arg for a in params if a.annotation is not None
                      and ERROR_TYPE.search(ast.unparse(a.annotation))}
            found += _parsing(node.body, errors) if errors else []
    return sorted(set(found))


def test_the_check_fires_on_parsed_error_text() -> None:
    # The shapes web/users.py, web/auth.py and web/agent_desk.py had before the errors became data.
    bad = '''
try:
    save()
except ConfigError as exc:
    field, _, message = str(exc).partition(": ")
except ApiError as exc:
    name = str(exc.message).split(":", 1)[0].rpartition(".")[2]
except ValueError as err:
    text = str(err)
    head = text.split(": ", 1)[-1]


def field_errors(exc: ConfigError) -> dict[str, str]:
    field, _, message = str(exc).partition(": ")
    return {field: message}
'''
    assert error_text_parsing(bad) == [5, 7, 10, 14]


def test_the_check_lets_a_message_be_shown() -> None:
    good = '''
try:
    save()
except ConfigError as exc:
    state.fail_form(str(exc))
    parts = request.form["to"].split(",")
except RecordInvalid as exc:
    errors = {e.field: e.msg for e in exc.errors}


def field_errors(exc: RecordInvalid, under: str) -> dict[str, str]:
    return {f"{under}.{e.field}": e.msg for e in exc.errors if e.field not in under.split(".")}
'''
    assert error_text_parsing(good) == []


def test_no_web_module_parses_error_text() -> None:
    findings = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / "web").rglob("*.py"))
                for line in error_text_parsing(path.read_text())]
    assert findings == []
