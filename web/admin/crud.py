"""List / create / edit / delete pages for one kind of configuration record.

Each admin section (extensions, trunks, routes, agents, queues) declares a `Section`; `register`
adds its four routes to the admin blueprint. A change is checked by the record's model (every
field error at once), then by the store inside one transaction together with its audit row, so a
refused change writes nothing at all.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.schema.errors import ConfigError, FieldError, invalid
from appliance.schema.types import Record, errors_of
from appliance.store.db import Store
from web.admin.forms import (
    Field,
    FormState,
    audit_dict,
    defaults_of,
    raw_of,
    read_form,
    reload_engine,
    show_errors,
    show_refusal,
)
from web.context import audit, login_required, store
from web.paging import column_sorts, page_of_rows, page_query, table


@dataclass
class Section:
    """How one record type is listed, edited and stored."""

    name: str  # URL segment and endpoint prefix: "extensions"
    title: str  # "Extensions"
    singular: str  # "extension": audit actions are "<singular>.create|update|delete"
    record: type
    model: type[Record]  # the record's rules (appliance/schema/records.py)
    key: str  # the field that names a record; read-only once created
    fields: list[Field]
    columns: list[tuple[str, Callable[[Any], str]]]
    load_all: Callable[[Store], list[Any]]
    load_one: Callable[[Store, str], Any]
    put: Callable[[Store, Any], None]
    delete: Callable[[Store, str], bool]
    secrets: tuple[str, ...] = ()
    intro: str = ""
    # Checks that need the rest of the site (a destination exists): run with the model's, so the
    # form shows every error at once; the store checks again when it writes.
    references: Callable[[dict[str, Any]], list[FieldError]] | None = None

    def key_of(self, record: Any) -> str:
        return str(getattr(record, self.key))


def register(bp: Blueprint, section: Section) -> None:
    """Add the section's routes: /<name>/, /<name>/new, /<name>/<key>/edit, /<name>/<key>/delete."""
    s = section

    @login_required("admin")
    def list_view() -> tuple[str, int]:
        return _render_list(s), 200

    @login_required("admin")
    def new_view() -> str | Response | tuple[str, int]:
        state = FormState(raw=raw_of(_Defaults(defaults_of(s.record)), s.fields))
        if request.method == "POST":
            return _save(s, state, existing=None)
        return _render_form(s, state, existing=None)

    @login_required("admin")
    def edit_view(key: str) -> str | Response | tuple[str, int]:
        existing = s.load_one(store(), key)
        if existing is None:
            abort(404, description=f"{s.singular} {key} does not exist")
        state = FormState(raw=raw_of(existing, s.fields))
        if request.method == "POST":
            return _save(s, state, existing=existing)
        return _render_form(s, state, existing=existing)

    @login_required("admin")
    def delete_view(key: str) -> Response | tuple[str, int]:
        existing = s.load_one(store(), key)
        if existing is None:
            abort(404, description=f"{s.singular} {key} does not exist")
        try:
            with store().transaction():
                s.delete(store(), key)
                audit(f"{s.singular}.delete", key, before=audit_dict(existing, s.secrets))
        except ConfigError as exc:
            # In use (an inbound route points at the extension...): the store's own words.
            return _render_list(s, error=f"Not deleted: {exc}"), 409
        flash(f"{s.singular.capitalize()} {key} deleted.")
        reload_engine()
        return redirect(url_for(f"admin.{s.name}"))

    bp.add_url_rule(f"/{s.name}/", s.name, list_view)
    bp.add_url_rule(f"/{s.name}/new", f"{s.name}_new", new_view, methods=["GET", "POST"])
    bp.add_url_rule(f"/{s.name}/<key>/edit", f"{s.name}_edit", edit_view, methods=["GET", "POST"])
    bp.add_url_rule(f"/{s.name}/<key>/delete", f"{s.name}_delete", delete_view, methods=["POST"])


class _Defaults:
    """Attribute access over a dict of defaults, for `raw_of` on a record not yet made."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _save(s: Section, state: FormState, existing: Any) -> Response:
    fields = [f for f in s.fields if not (existing is not None and f.name == s.key)]
    values = read_form(request.form, fields, state, existing)
    if existing is not None:
        values[s.key] = getattr(existing, s.key)
        state.raw[s.key] = s.key_of(existing)
    full = {**defaults_of(s.record), **_kept(existing, s), **values}
    # Every field's error at once, from the record's model; a field the form could not even read
    # (a port of "fifty") keeps that error.
    errors = errors_of(s.model, full)
    if s.references is not None:
        bad = {e.field for e in errors}
        errors += [e for e in s.references(full) if e.field not in bad]
    show_errors(state, errors, s.fields)
    if state.errors:
        return _refused(s, state, existing)
    record = s.record(**full)
    key = s.key_of(record)
    try:
        with store().transaction():
            if existing is None and s.load_one(store(), key) is not None:
                raise invalid(f"{key} already exists", s.singular, s.key)
            s.put(store(), record)
            audit(f"{s.singular}.{'update' if existing is not None else 'create'}", key,
                  before=audit_dict(existing, s.secrets), after=audit_dict(record, s.secrets, existing))
    except ConfigError as exc:
        show_refusal(state, exc, s.fields, (s.singular,))
        return _refused(s, state, existing)
    flash(f"{s.singular.capitalize()} {key} saved.")
    reload_engine()
    return redirect(url_for(f"admin.{s.name}"))


def _kept(existing: Any, s: Section) -> dict[str, Any]:
    """Fields of the stored record that the form does not show are kept as they are."""
    if existing is None:
        return {}
    shown = {f.name for f in s.fields}
    return {f.name: getattr(existing, f.name) for f in dataclasses.fields(existing) if f.name not in shown}



def _render_list(s: Section, error: str | None = None) -> str:
    records = s.load_all(store())
    rows = [(s.key_of(r), [fn(r) for _label, fn in s.columns]) for r in records]
    text = request.args.get("q", "").strip()
    if len(text) > 64:
        abort(400, description="q: at most 64 characters")
    page = page_of_rows(rows, page_query(request.args, column_sorts([label for label, _fn in s.columns])), text)
    return render_template("admin/list.html", section=s, rows=page.rows, error=error, text=text,
                           t=table(page, f"admin.{s.name}", {"q": text}))


def _refused(s: Section, state: FormState, existing: Any) -> Response:
    """The form again, as typed, with every error: 400, and never cached (it may hold a typed secret)."""
    resp = make_response(_render_form(s, state, existing), 400)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _render_form(s: Section, state: FormState, existing: Any) -> str:
    return render_template("admin/form.html", section=s, state=state, existing=existing,
                           key=s.key_of(existing) if existing is not None else None)
