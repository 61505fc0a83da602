"""Importing a prospect list into a campaign, in three steps, and its report.

1. Upload: a CSV from a CRM or a spreadsheet (at most 20 MiB), decoded the way the dialer reads
   it (appliance/dialer/prospects.py: UTF-8 or Windows-1252, comma/semicolon/tab). The text is
   kept in the data directory under a random token until it is imported (a 20 MiB file does not
   fit in a session cookie).
2. Mapping: the header and the first rows; the admin picks the number column and names the
   others for the agent's lead card.
3. Import: every row becomes a lead or a line of the report with its reason; the list, its
   leads and its report are stored together (all or nothing), and the report stays visible
   from the campaign page and downloadable as CSV.
"""
from __future__ import annotations

import csv
import io
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for

from appliance.dialer.numbers import NumberError, check_country
from appliance.dialer.prospects import ProspectFileError, decode, read_prospects
from appliance.store import dialer as dstore
from web.admin.campaigns import VIEWERS, bp, get_or_404, site_country, site_zone
from web.context import audit, current_user, login_required, store
from web.csv_export import csv_response

MAX_UPLOAD = 20 * 1024 * 1024  # bytes of CSV; a 200 000-row list with a few columns fits
PREVIEW_ROWS = 5
KEEP_SECONDS = 24 * 3600  # an upload never mapped is removed after a day
TOKEN_RE = re.compile(r"^[0-9a-f]{16}$")
FIELD_NAME_RE = re.compile(r"^[\w .'-]{1,40}$")
# Headers a CRM export uses for the phone number, and card fields worth a standard name.
_NUMBER_HINTS = ("number", "phone", "tel", "mobile", "portable", "numéro", "numero", "téléphone", "telephone", "gsm")
_FIELD_HINTS = {
    "first_name": ("first name", "firstname", "first_name", "prénom", "prenom", "given name"),
    "last_name": ("last name", "lastname", "last_name", "nom", "surname", "family name"),
    "company": ("company", "société", "societe", "entreprise", "organisation", "organization", "account"),
    "email": ("email", "e-mail", "mail", "courriel"),
    "city": ("city", "ville", "town"),
}
STANDARD_FIELDS = ("first_name", "last_name", "company", "email", "city", "notes")


# -- the uploaded file ------------------------------------------------------------------------------
def _folder() -> Path:
    folder: Path = current_app.config["DATA_DIR"] / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _forget_old(now: float) -> None:
    for path in _folder().glob("*"):
        try:
            if now - path.stat().st_mtime > KEEP_SECONDS:
                path.unlink()
        except OSError:
            pass  # another worker removed it first


def _upload(campaign: str, token: str) -> tuple[str, dict[str, Any]]:
    """The decoded text of an upload and what we know about it; 404 when it is gone or not this campaign's."""
    if not TOKEN_RE.match(token):
        abort(404, description="no such upload")
    base = _folder() / token
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
        text = base.with_suffix(".csv").read_text(encoding="utf-8")
    except (OSError, ValueError):
        abort(404, description="this upload is no longer here (imported, or older than a day): upload the file again")
    if meta.get("campaign") != campaign:
        abort(404, description="this upload belongs to another campaign")
    return text, meta


def _drop(token: str) -> None:
    for suffix in (".csv", ".json"):
        (_folder() / token).with_suffix(suffix).unlink(missing_ok=True)


def preview(text: str, rows: int = PREVIEW_ROWS) -> tuple[list[str], list[list[str]], int]:
    """The header, the first `rows` data rows and the number of data rows, read as the importer will."""
    first = text.split("\n", 1)[0]

    class Dialect(csv.excel):
        delimiter = max(",;\t", key=first.count)  # as prospects.read_prospects picks it

    reader = csv.reader(io.StringIO(text, newline=""), Dialect)
    try:
        header = [h.strip() for h in next(reader)]
        sample: list[list[str]] = []
        count = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            count += 1
            if len(sample) < rows:
                sample.append(row)
    except StopIteration:
        raise ProspectFileError("the file is empty: a header row naming the columns is needed") from None
    except csv.Error as exc:
        raise ProspectFileError(f"line {reader.line_num}: {exc}") from None
    if not any(header):
        raise ProspectFileError("the first line is empty: it must name the columns")
    if len(set(header)) != len(header):
        raise ProspectFileError("two columns of the header have the same name")
    return header, sample, count


def suggest(header: list[str]) -> tuple[int, list[str]]:
    """The column that most likely holds the number, and a card field name for each column."""
    lowered = [h.strip().lower() for h in header]
    number = next((i for i, h in enumerate(lowered) if any(hint in h for hint in _NUMBER_HINTS)), 0)
    names = []
    for i, h in enumerate(lowered):
        standard = next((f for f, hints in _FIELD_HINTS.items() if h in hints), None)
        names.append("number" if i == number else standard or header[i])
    return number, names


# -- step 1: upload ---------------------------------------------------------------------------------
def _render_upload(campaign: Any, error: str = "", status: int = 200) -> tuple[str, int]:
    return render_template("campaigns/import_upload.html", c=campaign, error=error, max_mib=MAX_UPLOAD // 2**20,
                           country=campaign.country or site_country()), status


@bp.route("/<name>/import", methods=["GET", "POST"])
@login_required("admin")
def import_upload(name: str) -> Any:
    c = get_or_404(name)
    if request.method == "GET":
        return _render_upload(c)
    too_big = f"The file is larger than {MAX_UPLOAD // 2**20} MiB: split it into several lists."
    if request.content_length is not None and request.content_length > MAX_UPLOAD + 64 * 1024:
        return _render_upload(c, too_big, 413)  # refused before reading it
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_upload(c, "Choose a CSV file to import.", 400)
    blob = upload.stream.read(MAX_UPLOAD + 1)
    if len(blob) > MAX_UPLOAD:
        return _render_upload(c, too_big, 413)
    try:
        text = decode(blob)
        header, _sample, rows = preview(text)
    except ProspectFileError as exc:
        return _render_upload(c, f"This file cannot be read: {exc}. Nothing was imported.", 400)
    if rows == 0:
        return _render_upload(c, "This file has a header but no rows. Nothing was imported.", 400)
    now = time.time()
    _forget_old(now)
    token = secrets.token_hex(8)
    base = _folder() / token
    base.with_suffix(".csv").write_text(text, encoding="utf-8")
    list_name = Path(upload.filename).stem[:80] or "list"
    base.with_suffix(".json").write_text(json.dumps({"campaign": name, "filename": upload.filename,
                                                     "list_name": list_name, "at": now}))
    return redirect(url_for("admin.campaigns.import_map", name=name, token=token))


# -- step 2: mapping, step 3: import ---------------------------------------------------------------
def _render_map(c: Any, token: str, text: str, meta: dict[str, Any], form: dict[str, Any],
                errors: dict[str, str], status: int = 200) -> tuple[str, int]:
    header, sample, rows = preview(text)
    return render_template("campaigns/import_map.html", c=c, token=token, meta=meta, header=header, sample=sample,
                           rows=rows, form=form, errors=errors, standard=STANDARD_FIELDS), status


def _read_mapping(header: list[str], errors: dict[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """The importer's mapping (field -> column) from the posted form, and the form as typed."""
    form: dict[str, Any] = {"list_name": request.form.get("list_name", "").strip(), "names": []}
    if not form["list_name"]:
        errors["list_name"] = "required: the name the campaign page shows for this list"
    elif len(form["list_name"]) > 100:
        errors["list_name"] = "at most 100 characters"
    try:
        number_col = int(request.form.get("number_col", ""))
        if not 0 <= number_col < len(header):
            raise ValueError
    except ValueError:
        number_col = -1
        errors["number_col"] = "pick the column that holds the phone number"
    form["number_col"] = number_col
    mapping: dict[str, str] = {"number": header[number_col]} if number_col >= 0 else {}
    used: dict[str, int] = {}
    for i, col in enumerate(header):
        typed = request.form.get(f"as_{i}", "").strip()
        form["names"].append(typed)
        if i == number_col:
            continue
        field = typed or col
        if not FIELD_NAME_RE.match(field):
            errors[f"as_{i}"] = "letters, digits, spaces, '_', '.', '-', up to 40"
        elif field == "number":
            errors[f"as_{i}"] = "'number' is the number column's name"
        elif field in used:
            errors[f"as_{i}"] = f"column {used[field] + 1} is already named {field!r}"
        else:
            used[field] = i
            if field != col:
                mapping[field] = col
    return mapping, form


@bp.route("/<name>/import/<token>", methods=["GET", "POST"])
@login_required("admin")
def import_map(name: str, token: str) -> Any:
    c = get_or_404(name)
    text, meta = _upload(name, token)
    header, _sample, _rows = preview(text)
    if request.method == "GET":
        number, names = suggest(header)
        form = {"list_name": meta.get("list_name", ""), "number_col": number, "names": names}
        return _render_map(c, token, text, meta, form, {})
    errors: dict[str, str] = {}
    mapping, form = _read_mapping(header, errors)
    if errors:
        return _render_map(c, token, text, meta, form, errors, 400)
    s = store()
    try:
        country = check_country(c.country or site_country())
        leads, report = read_prospects(text, mapping, country=country, site_timezone=site_zone(),
                                       dnc=dstore.dnc_numbers(s), existing=dstore.campaign_numbers(s, name))
    except (ProspectFileError, NumberError) as exc:
        errors[""] = f"Nothing was imported: {exc}"
        return _render_map(c, token, text, meta, form, errors, 400)
    user = current_user()
    with s.transaction():
        list_id = dstore.add_list(s, name, form["list_name"], leads, report, by=user.username if user else "")
        audit("campaign.import", name, None, {"list": list_id, "name": form["list_name"], "file": meta.get("filename"),
                                              "mapping": mapping, "rows": report.rows, "imported": report.imported,
                                              "counts": report.counts})
    _drop(token)
    flash(f"{report.imported} of {report.rows} rows imported into {name}.")
    return redirect(url_for("admin.campaigns.list_report", name=name, list_id=list_id))


@bp.route("/<name>/import/<token>/cancel", methods=["POST"])
@login_required("admin")
def import_cancel(name: str, token: str) -> Any:
    get_or_404(name)
    _upload(name, token)
    _drop(token)
    flash("Import cancelled: nothing was imported.")
    return redirect(url_for("admin.campaigns.detail", name=name))


# -- the report -------------------------------------------------------------------------------------
def _list_or_404(name: str, list_id: int) -> dict[str, Any]:
    found = next((lst for lst in dstore.lead_lists(store(), name) if lst["id"] == list_id), None)
    if found is None:
        abort(404, description=f"campaign {name} has no list {list_id}")
    return found


REASONS = {
    "bad-number": "Not a valid phone number",
    "duplicate": "Same number earlier in the file",
    "already-listed": "Already a lead of this campaign",
    "dnc": "On the do-not-call list",
    "malformed-row": "Malformed row",
}


@bp.route("/<name>/lists/<int:list_id>")
@login_required(*VIEWERS)
def list_report(name: str, list_id: int) -> str:
    c = get_or_404(name)
    lst = _list_or_404(name, list_id)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(lst["imported_at"]))
    return render_template("campaigns/list_report.html", c=c, lst=lst, r=lst["report"], when=when, reasons=REASONS)


@bp.route("/<name>/lists/<int:list_id>/problems.csv")
@login_required(*VIEWERS)
def list_problems_csv(name: str, list_id: int) -> Response:
    get_or_404(name)
    lst = _list_or_404(name, list_id)
    filename = re.sub(r"[^\w.-]+", "_", f"{name}-{lst['name']}-problems.csv")
    return csv_response(filename, ["line", "reason", "detail", "number"],
                        ([p["line"], p["reason"], p["detail"], p["number"]] for p in lst["report"].get("problems", [])),
                        excel_bom=True)
