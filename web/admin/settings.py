"""Appliance settings an admin changes: recording retention, supervisor phones, voicemail PINs, and
the site values the outbound dialer uses (country for national numbers, time zone, per-number limit).

Every value is checked before any is written, and all are written in one transaction, so a
refused form changes nothing. PINs are never shown or audited in clear.
"""
from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.schema.settings import (
    CALLBACK_ROUTES_SETTING,
    COUNTRY_SETTING,
    DEFAULT_NUMBER_HOURS,
    DEFAULT_NUMBER_LIMIT,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_RING_SECONDS,
    NUMBER_HOURS_SETTING,
    NUMBER_LIMIT_SETTING,
    PIN_SETTING_PREFIX,
    RETENTION_SETTING,
    RING_SECONDS_SETTING,
    SETTINGS,
    SUPERVISORS_SETTING,
    TIMEZONE_SETTING,
    setting_error,
    supervisors,
)
from web.admin import bp
from web.admin.forms import MASK, reload_engine
from web.context import audit, login_required, store

# Empty means "not set": the dialer then uses its default (FR, /etc/timezone, 3 calls per 24 h, 25 s).
SITE_KEYS = (COUNTRY_SETTING, TIMEZONE_SETTING, NUMBER_LIMIT_SETTING, NUMBER_HOURS_SETTING, RING_SECONDS_SETTING)


def _current() -> dict[str, str]:
    s = store()
    return {
        RETENTION_SETTING: s.get_setting(RETENTION_SETTING) or str(DEFAULT_RETENTION_DAYS),
        SUPERVISORS_SETTING: ", ".join(sorted(supervisors(s.get_setting(SUPERVISORS_SETTING)))),
        CALLBACK_ROUTES_SETTING: s.get_setting(CALLBACK_ROUTES_SETTING) or "",
        **{key: s.get_setting(key) or "" for key in SITE_KEYS},
    }


def _mailboxes() -> list[tuple[str, str, bool]]:
    """(number, name, has a PIN) of every extension with voicemail."""
    s = store()
    return [(e.number, e.name, bool(s.get_setting(PIN_SETTING_PREFIX + e.number)))
            for e in s.extensions() if e.voicemail]


def _render(form: dict[str, str], errors: dict[str, str], status: int = 200) -> tuple[str, int]:
    return render_template("admin/settings.html", form=form, errors=errors, mailboxes=_mailboxes(),
                           retention_key=RETENTION_SETTING, supervisors_key=SUPERVISORS_SETTING,
                           callback_key=CALLBACK_ROUTES_SETTING, country_key=COUNTRY_SETTING,
                           timezone_key=TIMEZONE_SETTING, limit_key=NUMBER_LIMIT_SETTING,
                           hours_key=NUMBER_HOURS_SETTING, default_limit=DEFAULT_NUMBER_LIMIT,
                           default_hours=DEFAULT_NUMBER_HOURS, ring_key=RING_SECONDS_SETTING,
                           default_ring=DEFAULT_RING_SECONDS), status


def _check(key: str, raw: str, errors: dict[str, str], changes: dict[str, str | None]) -> None:
    """One typed setting by its definition (schema/settings.py), stored in its normal form."""
    error = setting_error(key, raw)
    if error is not None:
        errors[key] = error
    else:
        changes[key] = str(SETTINGS[key].value(raw))


def _check_site(form: dict[str, str], errors: dict[str, str], changes: dict[str, str | None]) -> None:
    """The dialer's site values; each empty field unsets its setting."""
    for key in SITE_KEYS:
        if form[key]:
            _check(key, form[key], errors, changes)
        else:
            changes[key] = None


@bp.route("/settings/", methods=["GET", "POST"])
@login_required("admin")
def settings() -> Response | tuple[str, int]:
    if request.method == "GET":
        return _render(_current(), {})
    form = {k: request.form.get(k, "").strip()
            for k in (RETENTION_SETTING, SUPERVISORS_SETTING, CALLBACK_ROUTES_SETTING, *SITE_KEYS)}
    errors: dict[str, str] = {}
    changes: dict[str, str | None] = {}  # setting -> new value (None: delete)
    _check(RETENTION_SETTING, form[RETENTION_SETTING], errors, changes)
    known = {e.number for e in store().extensions()}
    phones = [p.strip() for p in re.split(r"[,\s]+", form[SUPERVISORS_SETTING]) if p.strip()]
    unknown = [p for p in phones if p not in known]
    if unknown:
        errors[SUPERVISORS_SETTING] = f"no extension {', '.join(unknown)}"
    else:
        changes[SUPERVISORS_SETTING] = ", ".join(dict.fromkeys(phones))
    routes = [r.strip() for r in form[CALLBACK_ROUTES_SETTING].split(",") if r.strip()]
    missing = [r for r in routes if store().get_outbound_route(r) is None]
    if missing:
        errors[CALLBACK_ROUTES_SETTING] = f"no outbound route {', '.join(missing)}"
    else:
        changes[CALLBACK_ROUTES_SETTING] = ", ".join(dict.fromkeys(routes)) or None
    _check_site(form, errors, changes)
    for number, _name, _has in _mailboxes():
        pin = request.form.get(f"pin_{number}", "").strip()
        if request.form.get(f"clear_{number}"):
            changes[PIN_SETTING_PREFIX + number] = None
        elif pin and (error := setting_error(PIN_SETTING_PREFIX + number, pin)) is not None:
            errors[f"pin_{number}"] = error
        elif pin:
            changes[PIN_SETTING_PREFIX + number] = pin
    if errors:
        return _render(form, errors, 400)
    s = store()
    changed = 0
    with s.transaction():
        for name, value in changes.items():
            before = s.get_setting(name)
            if before == value:
                continue
            secret = name.startswith(PIN_SETTING_PREFIX)
            if value is None:
                s.delete_setting(name)
            else:
                s.set_setting(name, value)
            audit("setting.update", name,
                  before=None if before is None else {"value": MASK if secret else before},
                  after=None if value is None else {"value": MASK if secret else value})
            changed += 1
    flash(f"Settings saved ({changed} changed)." if changed else "Nothing changed.")
    if changed:
        reload_engine()
    return redirect(url_for("admin.settings"))
