"""The do-not-call list: numbers no campaign may dial, newest first; add, remove, import a file.

Numbers are stored in E.164 (appliance/dialer/numbers.py) so "06 12 34 56 78" typed here
matches "+33612345678" in a prospect file. Adding a number also ends its open leads in every
campaign (appliance/store/dialer.add_dnc). Agents add numbers from their desk through the engine
(POST /v1/dnc); this page is the admin's.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.dialer.numbers import NumberError, normalise
from appliance.dialer.prospects import ProspectFileError, decode
from appliance.store import dialer as dstore
from web.admin.campaigns import site_country, site_zone
from web.admin.lead_import import MAX_UPLOAD
from web.context import audit, current_user, login_required, store
from web.paging import page_query, table

bp = Blueprint("dnc", __name__, url_prefix="/dnc")

MAX_FILTER = 64
MAX_NOTE = 200


def _render(errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
            report: dict[str, Any] | None = None, status: int = 200) -> tuple[str, int]:
    s = store()
    text = request.args.get("q", "").strip()
    if len(text) > MAX_FILTER:
        abort(400, description=f"q: at most {MAX_FILTER} characters")
    page = dstore.dnc_page(s, page_query(request.args, dstore.DNC_SORTS), text)
    entries = [{**dataclasses.asdict(e), "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(e.added_at))}
               for e in page.rows]
    return render_template("campaigns/dnc.html", entries=entries, total=dstore.dnc_count(s),
                           t=table(page, "admin.dnc.index", {"q": text}), text=text,
                           errors=errors or {}, form=form or {}, report=report, country=site_country(),
                           max_mib=MAX_UPLOAD // 2**20), status


def _by() -> str:
    user = current_user()
    return user.username if user else ""


@bp.route("/")
@login_required("admin")
def index() -> tuple[str, int]:
    return _render()


@bp.route("/add", methods=["POST"])
@login_required("admin")
def add() -> Response | tuple[str, int]:
    form = {"number": request.form.get("number", "").strip(), "note": request.form.get("note", "").strip()}
    if len(form["note"]) > MAX_NOTE:
        return _render({"note": f"at most {MAX_NOTE} characters"}, form, status=400)
    try:
        number = normalise(form["number"], site_country(), site_zone()).e164
    except NumberError as exc:
        return _render({"number": str(exc)}, form, status=400)
    s = store()
    if dstore.is_dnc(s, number):
        return _render({"number": f"{number} is already on the list"}, form, status=409)
    with s.transaction():
        dstore.add_dnc(s, [number], "admin", note=form["note"], by=_by())
        audit("dnc.add", number, None, {"number": number, "typed": form["number"], "note": form["note"]})
    flash(f"{number} added to the do-not-call list: no campaign will dial it.")
    return redirect(url_for("admin.dnc.index"))


@bp.route("/remove", methods=["POST"])
@login_required("admin")
def remove() -> Response:
    number = request.form.get("number", "").strip()
    s = store()
    entry = dstore.dnc_entry(s, number)
    if entry is None:
        abort(404, description=f"{number or 'that number'} is not on the do-not-call list")
    with s.transaction():
        dstore.remove_dnc(s, number)
        audit("dnc.remove", number, dataclasses.asdict(entry), None)
    flash(f"{number} removed from the do-not-call list (its ended leads stay ended).")
    return redirect(url_for("admin.dnc.index"))


def read_numbers(text: str) -> tuple[list[tuple[int, str]], bool]:
    """(line, first cell) of each non-blank row of a one-column file, and whether line 1 was a header."""
    rows = []
    for line, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        cell = row[0].split(";")[0].strip() if row else ""
        if cell:
            rows.append((line, cell))
    header = bool(rows) and rows[0][0] == 1 and not any(ch.isdigit() for ch in rows[0][1])
    return (rows[1:] if header else rows), header


@bp.route("/import", methods=["POST"])
@login_required("admin")
def import_file() -> Response | tuple[str, int]:
    too_big = f"The file is larger than {MAX_UPLOAD // 2**20} MiB: split it."
    if request.content_length is not None and request.content_length > MAX_UPLOAD + 64 * 1024:
        return _render({"file": too_big}, status=413)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render({"file": "Choose a file of numbers, one per line."}, status=400)
    blob = upload.stream.read(MAX_UPLOAD + 1)
    if len(blob) > MAX_UPLOAD:
        return _render({"file": too_big}, status=413)
    try:
        rows, _header = read_numbers(decode(blob))
    except (ProspectFileError, csv.Error) as exc:
        return _render({"file": f"This file cannot be read: {exc}. Nothing was added."}, status=400)
    country, zone = site_country(), site_zone()
    good: dict[str, int] = {}
    problems: list[dict[str, Any]] = []
    for line, raw in rows:
        try:
            number = normalise(raw, country, zone).e164
        except NumberError as exc:
            problems.append({"line": line, "reason": "bad-number", "detail": str(exc), "number": raw})
            continue
        if number in good:
            problems.append({"line": line, "reason": "duplicate", "number": raw,
                             "detail": f"{number} is already on line {good[number]}"})
            continue
        good[number] = line
    s = store()
    with s.transaction():
        already = dstore.dnc_numbers(s) & set(good)
        added = dstore.add_dnc(s, list(good), "import", note=f"file {upload.filename}"[:MAX_NOTE], by=_by())
        report = {"file": upload.filename, "rows": len(rows), "added": added, "already": len(already),
                  "problems": problems}
        audit("dnc.import", upload.filename or "", None, {k: v for k, v in report.items() if k != "problems"}
              | {"problems": len(problems)})
    return _render(report=report)
