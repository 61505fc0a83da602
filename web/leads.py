"""A campaign's leads: found by number, name or status, sorted and paged on the server, and edited.

An admin corrects a lead's number, time zone, card fields (the name on the screen pop) and status:
putting a lead back to "new" makes the dialer try it again, "done" or "dnc" stops it. The number is
normalised as the prospect import does (appliance/dialer/numbers.py); the rest is checked by the
shared validators (appliance/schema/leads.py), every error beside its field at once.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.dialer.numbers import NumberError, normalise
from appliance.schema.errors import RecordInvalid
from appliance.schema.leads import EDITABLE_STATUSES, LeadEdit
from appliance.schema.types import record
from appliance.store import dialer as dstore
from appliance.store.dialer import LeadRecord
from web.admin.campaigns import site_country, site_zone
from web.context import audit, login_required, store
from web.paging import page_query, table

bp = Blueprint("leads", __name__, url_prefix="/leads")

MAX_FILTER = 64


def _campaign_or_404(name: str) -> None:
    if dstore.get_campaign(store(), name) is None:
        abort(404, description=f"no campaign {name!r}")


@bp.route("/<campaign>/")
@login_required("admin", "supervisor")
def index(campaign: str) -> str:
    _campaign_or_404(campaign)
    text = request.args.get("q", "").strip()
    status = request.args.get("status", "").strip()
    if len(text) > MAX_FILTER:
        abort(400, description=f"q: at most {MAX_FILTER} characters")
    if status and status not in dstore.LEAD_STATUSES:
        abort(400, description=f"status: one of {', '.join(dstore.LEAD_STATUSES)}")
    page = dstore.leads_page(store(), campaign, page_query(request.args, dstore.LEAD_SORTS), text, status)
    return render_template("campaigns/leads.html", campaign=campaign, text=text, status=status,
                           statuses=dstore.LEAD_STATUSES, t=table(page, "leads.index", {"q": text, "status": status},
                                                                  campaign=campaign))


def _lead_or_404(campaign: str, lead_id: int) -> LeadRecord:
    lead = dstore.get_lead(store(), lead_id)
    if lead is None or lead.campaign != campaign:
        abort(404, description=f"no lead {lead_id} in campaign {campaign!r}")
    return lead


def _form_of(lead: LeadRecord) -> dict[str, Any]:
    return {"number": lead.number, "status": lead.status, "timezone": lead.timezone, "fields": dict(lead.fields)}


def _posted(lead: LeadRecord) -> dict[str, Any]:
    fields = {key: request.form.get(f"field-{key}", "").strip() for key in lead.fields}
    new_key, new_value = request.form.get("new_key", "").strip(), request.form.get("new_value", "").strip()
    if new_key:
        fields[new_key] = new_value
    return {"number": request.form.get("number", "").strip(), "status": request.form.get("status", "").strip(),
            "timezone": request.form.get("timezone", "").strip(), "fields": fields}


def _country(campaign: str) -> str:
    c = dstore.get_campaign(store(), campaign)
    return (c.country if c and c.country else "") or site_country()


@bp.route("/<campaign>/<int:lead_id>", methods=["GET", "POST"])
@login_required("admin")
def edit(campaign: str, lead_id: int) -> str | Response | tuple[str, int]:
    _campaign_or_404(campaign)
    lead = _lead_or_404(campaign, lead_id)
    if request.method == "GET":
        return render_template("campaigns/lead_edit.html", campaign=campaign, lead=lead, form=_form_of(lead),
                               errors={}, statuses=EDITABLE_STATUSES)
    form = _posted(lead)
    errors: dict[str, str] = {}
    try:
        number = normalise(form["number"], _country(campaign), site_zone()).e164
    except NumberError as exc:
        errors["number"] = str(exc)
    try:
        checked = record(LeadEdit, {k: form[k] for k in ("status", "timezone", "fields")})
    except RecordInvalid as exc:
        for e in exc.errors:
            errors[".".join(str(p) for p in e.loc) or "form"] = e.msg
    if not errors and not dstore.update_lead(store(), lead_id, number=number, status=checked.status,
                                             timezone=checked.timezone, fields=checked.fields):
        errors["number"] = f"{number} is another lead of this campaign"
    if errors:
        return render_template("campaigns/lead_edit.html", campaign=campaign, lead=lead, form=form, errors=errors,
                               statuses=EDITABLE_STATUSES), 400
    audit("lead.edit", f"{campaign}/{lead_id}", _form_of(lead), {**form, "number": number})
    flash(f"Lead {lead_id} saved.")
    return redirect(url_for("leads.index", campaign=campaign))
