"""The agent desk: my state, the screen pop of my caller, my notes, click-to-call.

An agent user is linked to one ACD agent (`User.agent_id`). Everything the desk changes goes
through the engine's control API (log in/out, pause, the interaction's status, disposition and
notes, originate), so the engine stays the one owner of agent state; the desk only reads the
contacts table and a contact's past interactions from the store. The page polls
`/agent/state` every 2 s and fetches the screen pop again when the interaction changes; the
last interaction stays on screen through wrap-up (the engine forgets it when the call ends).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, abort, jsonify, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.schema.settings import PAUSE_REASONS
from appliance.store import contacts, interactions
from web.context import audit, current_user, login_required, store
from web.wallboard import (
    EXTENSION_RE,
    NUMBER_RE,
    agent_record,
    agent_view,
    answer,
    ask,
    engine_failure,
    pause_code,
    seg,
)

bp = Blueprint("agent_desk", __name__, url_prefix="/agent")

HISTORY = 10  # past interactions shown in the screen pop


def _my_agent() -> str | None:
    user = current_user()
    return user.agent_id if user is not None else None


def _state() -> dict[str, Any]:
    """My agent as the engine sees it, and the interaction the screen pop shows."""
    agent_id = _my_agent()
    result: dict[str, Any] = {"at": time.time(), "engine": "up", "message": "", "linked": agent_id is not None,
                              "agent": None, "interaction": session.get("desk_interaction")}
    if agent_id is None:
        return result
    try:
        found = agent_record(ask("GET", "/v1/agents"), agent_id)
    except ApiUnavailable:
        return {**result, "engine": "down", "message": ""}  # the page says "Engine not running."
    except ApiError as exc:
        return {**result, "engine": "down", "message": f"The engine answered {exc.status}: {exc.message}"}
    if found is not None:
        result["agent"] = agent_view(found)
        if found.get("interaction") is not None and found.get("interaction") != result["interaction"]:
            result["interaction"] = session["desk_interaction"] = int(found["interaction"])
    return result


def _contact(contact_id: int | None) -> dict[str, Any] | None:
    if contact_id is None:
        return None
    found = contacts.contact_by_id(store(), contact_id)
    return None if found is None else dataclasses.asdict(found)


def _interaction_of_mine(interaction_id: int) -> dict[str, Any]:
    """The interaction if it is mine (assigned to me, or the one my phone is on); 403/404 otherwise."""
    found: dict[str, Any] = ask("GET", f"/v1/interactions/{interaction_id}")
    agent_id = _my_agent()
    if str(found.get("agent") or "") != agent_id and session.get("desk_interaction") != interaction_id:
        abort(403, description=f"interaction {interaction_id} is not one of yours")
    return found


def _pop(interaction_id: int | None) -> dict[str, Any] | None:
    """The screen pop: the interaction with its IVR path, the contact and their history."""
    if interaction_id is None:
        return None
    try:
        inter = _interaction_of_mine(interaction_id)
    except ApiUnavailable:
        return {"error": "The engine is not running: the caller's details come back with it."}
    except ApiError as exc:
        return {"error": f"Interaction {interaction_id}: {exc.message}"}
    contact = _contact(inter.get("contact_id"))
    history = [] if contact is None else [
        {**dataclasses.asdict(h), "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(h.created_at))}
        for h in interactions.interactions_for_contact(store(), int(contact["id"]), HISTORY + 1)
        if h.id != interaction_id][:HISTORY]
    variables = dict(inter.get("ivr_path") or {})
    return {"interaction": inter, "contact": contact, "history": history,
            "path": str(variables.pop("ivr_path", "") or ""), "variables": variables}


def _render_desk(errors: dict[str, str] | None = None, status: int = 200) -> tuple[str, int]:
    state = _state()
    return render_template("agent_desk/desk.html", state=state, pop=_pop(state["interaction"]),
                           panel=_lead_panel(), reasons=PAUSE_REASONS, statuses=interactions.STATUSES,
                           extension=session.get("desk_extension", ""), errors=errors or {}), status


def _refuse(message: str, field: str, status: int = 400) -> Any:
    """Bad input in one field (see `_refuse_all`)."""
    return _refuse_all({field: message}, status)


def _refuse_all(errors: dict[str, str], status: int = 400) -> Any:
    """Bad input, every field at once: JSON maps each field to its error for the script (and names
    the first as `field`/`error`); a form post gets the desk with each error beside its field."""
    if request.accept_mimetypes.best == "application/json":
        field, message = next(iter(errors.items()))
        return jsonify({"ok": False, "error": message, "field": field, "errors": errors}), status
    return _render_desk(errors, status)


def _engine_refusal(exc: ApiError, fields: dict[str, str]) -> dict[str, str]:
    """The engine's field errors (ApiError.errors, as data) on the desk's own fields: `fields` maps a
    field of the engine's record to the desk's input. Empty when the refusal names none of them."""
    out: dict[str, str] = {}
    for error in exc.errors:
        field = fields.get(error.field)
        if field is not None:
            out[field] = f"{out[field]}; {error}" if field in out else str(error)
    return out


def _require_linked() -> str:
    agent_id = _my_agent()
    if agent_id is None:
        abort(400, description="Your account is not linked to an ACD agent: ask an administrator.")
    return agent_id


def _agent_change(action: str, body: dict[str, str], done: str) -> Any:
    """Send one agent action to the engine and audit the state before and after."""
    agent_id = _require_linked()
    back = url_for("agent_desk.desk")
    try:
        before = agent_record(ask("GET", "/v1/agents"), agent_id)
        if before is None:
            return answer(False, f"agent {agent_id} is not configured on the appliance", 404, back)
        after = ask("POST", f"/v1/agents/{seg(agent_id)}/{action}", body)
    except ApiError as exc:
        message, status = engine_failure(exc)
        return answer(False, message, status, back)
    audit(f"agent.{action}", agent_id, {k: before.get(k) for k in ("state", "pause_reason", "device")},
          {**body, **after})
    return answer(True, done, 200, back, result=after)


# -- pages and actions --------------------------------------------------------------------------------
@bp.route("/")
@login_required("agent")
def desk() -> tuple[str, int]:
    return _render_desk()


@bp.route("/state")
@login_required("agent")
def state() -> Response:
    return jsonify(_state())


@bp.route("/pop")
@login_required("agent")
def pop() -> str:
    """The screen pop fragment for interaction `id` (the page swaps it in when the caller changes)."""
    interaction_id = request.args.get("id", type=int)
    return render_template("agent_desk/pop.html", pop=_pop(interaction_id), statuses=interactions.STATUSES,
                           errors={})


@bp.route("/login", methods=["POST"])
@login_required("agent")
def login() -> Any:
    _require_linked()
    extension = request.form.get("extension", "").strip()
    if not EXTENSION_RE.fullmatch(extension):
        return _refuse("extension: type the number of the phone you sit at", "extension")
    if store().get_extension(extension) is None:
        return _refuse(f"extension: {extension} is not an extension of this appliance", "extension")
    session["desk_extension"] = extension
    return _agent_change("login", {"device": extension}, f"Logged in at extension {extension}.")


@bp.route("/pause", methods=["POST"])
@login_required("agent")
def pause() -> Any:
    _require_linked()
    try:
        code = pause_code(request.form.get("reason", ""))
    except ValueError as exc:
        return _refuse(str(exc), "reason")
    return _agent_change("pause", {"reason": code}, f"Paused: {PAUSE_REASONS[code]}.")


@bp.route("/unpause", methods=["POST"])
@login_required("agent")
def unpause() -> Any:
    return _agent_change("unpause", {}, "Ready for calls.")


@bp.route("/logout", methods=["POST"])
@login_required("agent")
def logout() -> Any:
    return _agent_change("logout", {}, "Logged out of the queues.")


@bp.route("/interactions/<int:interaction_id>", methods=["POST"])
@login_required("agent")
def update_interaction(interaction_id: int) -> Any:
    """Status, disposition and notes of my interaction; only what changed is sent, all checked first."""
    _require_linked()
    back = url_for("agent_desk.desk")
    wanted = {k: request.form[k] for k in ("status", "disposition", "notes") if k in request.form}
    wanted = {k: v.strip() if k != "notes" else v.replace("\r\n", "\n") for k, v in wanted.items()}
    errors: dict[str, str] = {}
    if "status" in wanted and wanted["status"] not in interactions.STATUSES:
        errors["status"] = f"status: {wanted['status']!r} is not one of {', '.join(interactions.STATUSES)}"
    if wanted.get("disposition") and not interactions.DISPOSITION_RE.fullmatch(wanted["disposition"]):
        errors["disposition"] = "disposition: a code of 1-32 letters, digits, '_' or '-'"
    if len(wanted.get("notes", "")) > interactions.MAX_NOTES:
        errors["notes"] = f"notes: at most {interactions.MAX_NOTES} characters"
    if errors:
        return _refuse_all(errors)
    try:
        before = _interaction_of_mine(interaction_id)
        changes = {k: v for k, v in wanted.items() if v != (before.get(k) or "")}
        emptied: dict[str, str] = {key: f"{key}: cannot be emptied once written; write a correction instead"
                                   for key in ("disposition", "notes") if key in changes and not changes[key]}
        if emptied:
            return _refuse_all(emptied)
        if not changes:
            return answer(True, "Nothing changed.", 200, back)
        after = ask("POST", f"/v1/interactions/{interaction_id}", changes)
    except ApiError as exc:
        message, status = engine_failure(exc)
        refused = _engine_refusal(exc, {"status": "status", "disposition": "disposition", "notes": "notes"})
        if status == 400 and refused:
            return _refuse_all(refused, status)
        return answer(False, message, status, back)
    audit("interaction.update", str(interaction_id), {k: before.get(k) for k in changes},
          {k: after.get(k) for k in changes})
    return answer(True, f"Interaction {interaction_id} saved.", 200, back)


@bp.route("/call", methods=["POST"])
@login_required("agent")
def call() -> Any:
    """Click-to-call: the engine rings my phone, then dials `to` (POST /v1/originate)."""
    agent_id = _require_linked()
    back = url_for("agent_desk.desk")
    to = request.form.get("to", "").replace(" ", "").replace("-", "")
    if not NUMBER_RE.fullmatch(to):
        return _refuse("to: type the number to call (digits, optionally a leading +)", "to")
    try:
        me = agent_record(ask("GET", "/v1/agents"), agent_id)
        device = (me or {}).get("device") or session.get("desk_extension")
        if not device:
            return _refuse("to: log in at a phone first: the call rings your phone, then the number", "to", 409)
        result = ask("POST", "/v1/originate", {"from": device, "to": to})
    except ApiError as exc:
        message, status = engine_failure(exc)
        return answer(False, message, status, back)
    audit("agent.call", to, None, {"from": device, "to": to, **result})
    return answer(True, f"Calling {to}: pick up your phone ({device}).", 200, back, result=result)


# -- outbound campaigns: the lead on my line, preview, disposition, do-not-call ------------------------
# The dialer in the engine owns leads: the desk asks it which lead is on my line
# (GET /v1/agents/<me>/lead) or waiting for my decision in preview mode (GET /v1/agents/<me>/preview),
# and every action names a lead the engine has just confirmed is mine, so an agent acts only for
# their own agent id and never on a lead that has moved on.
DEFAULT_ZONE = "Europe/Paris"
MAX_DNC_NOTE = 200


def _site_zone() -> ZoneInfo:
    """The appliance's time zone: callbacks are typed in it (the agent and the prospect agreed on it)."""
    try:
        return ZoneInfo(store().get_setting("site.timezone") or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def _lead_view(data: Any) -> dict[str, Any] | None:
    """A lead from the engine's answer ({lead: {...}, script, dispositions} or the lead itself)."""
    if not isinstance(data, dict):
        return None
    lead = data.get("lead", data)
    if not isinstance(lead, dict) or lead.get("id") is None:
        return None
    raw = lead.get("fields")
    fields: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {"id": int(lead["id"]), "number": str(lead.get("number") or ""), "campaign": str(lead.get("campaign") or ""),
            "attempts": int(lead.get("attempts") or 0), "fields": {str(k): str(v) for k, v in fields.items()}}


def _ask_lead(kind: str, agent_id: str) -> dict[str, Any] | None:
    """GET /v1/agents/<me>/<kind>: the engine's answer, None when it has none for me (404)."""
    try:
        found = ask("GET", f"/v1/agents/{seg(agent_id)}/{kind}")
    except ApiUnavailable:
        raise
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return found if isinstance(found, dict) else None


def _lead_panel() -> dict[str, Any]:
    """What the campaign panel of the desk shows: my connected lead with its script, or my preview."""
    panel: dict[str, Any] = {"engine": "up", "message": "", "lead": None, "script": "", "dispositions": [],
                             "preview": None, "zone": str(_site_zone()), "key": "none"}
    agent_id = _my_agent()
    if agent_id is None:
        return panel
    try:
        found = _ask_lead("lead", agent_id)
        if found is not None and _lead_view(found) is not None:
            panel.update(lead=_lead_view(found), script=str(found.get("script") or ""),
                         dispositions=[str(d) for d in found.get("dispositions") or []])
            panel["key"] = f"lead:{panel['lead']['id']}"
            return panel
        preview = _ask_lead("preview", agent_id)
    except ApiUnavailable:
        return {**panel, "engine": "down", "key": "down"}
    except ApiError as exc:
        return {**panel, "message": f"The engine did not say which lead is yours: {exc.message}", "key": "error"}
    if preview is not None and _lead_view(preview) is not None:
        panel.update(preview=_lead_view(preview), script=str(preview.get("script") or ""))
        panel["key"] = f"preview:{panel['preview']['id']}"
    return panel


def _mine(kind: str, lead_id: int) -> dict[str, Any]:
    """The engine's current lead (or preview) of mine if it is `lead_id`; ApiError 409 otherwise."""
    agent_id = _require_linked()
    found = _ask_lead(kind, agent_id)
    view = _lead_view(found)
    if found is None or view is None or view["id"] != lead_id:
        raise ApiError(409, f"lead {lead_id} is no longer {'on your line' if kind == 'lead' else 'your preview'}")
    return found


@bp.route("/lead")
@login_required("agent")
def lead() -> Any:
    """The campaign panel (HTML fragment; JSON for scripts that ask for it)."""
    panel = _lead_panel()
    if request.accept_mimetypes.best == "application/json":
        return jsonify(panel)
    return render_template("agent_desk/lead.html", panel=panel, errors={})


def parse_callback(day: str, at: str, zone: ZoneInfo, now: float) -> float | None:
    """Epoch seconds of a callback typed as a date and a time in `zone`; None when both are empty."""
    day, at = day.strip(), at.strip()
    if not day and not at:
        return None
    if not day or not at:
        raise ValueError("callback: give both the date and the time, or neither")
    try:
        when = dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(at), tzinfo=zone)
    except ValueError:
        raise ValueError("callback: a date like 2026-03-14 and a time like 14:30") from None
    epoch = when.timestamp()
    if epoch <= now + 60:
        raise ValueError(f"callback: {day} {at} is not in the future ({zone.key} time)")
    return epoch


@bp.route("/lead/<int:lead_id>/disposition", methods=["POST"])
@login_required("agent")
def lead_disposition(lead_id: int) -> Any:
    """Close my lead with a disposition code, optionally scheduling a personal callback."""
    agent_id = _require_linked()
    back = url_for("agent_desk.desk")
    code = request.form.get("code", "").strip()
    errors: dict[str, str] = {}
    callback_at = None
    try:
        callback_at = parse_callback(request.form.get("callback_date", ""), request.form.get("callback_time", ""),
                                     _site_zone(), time.time())
    except ValueError as exc:
        errors["callback"] = str(exc)
    try:
        found = _mine("lead", lead_id)
    except ApiError as exc:
        if errors:  # the bad time is the agent's to fix whatever the engine's state
            return _refuse_all(errors)
        message, status = engine_failure(exc)
        return answer(False, message, status, back)
    codes = [str(d) for d in found.get("dispositions") or []]
    if code not in codes:
        errors = {"code": f"code: pick one of {', '.join(codes)}" if code else "code: pick a disposition", **errors}
    if errors:
        return _refuse_all(errors)
    body: dict[str, Any] = {"code": code, "agent": agent_id}
    if callback_at is not None:
        body["callback_at"] = callback_at
    try:
        result = ask("POST", f"/v1/leads/{lead_id}/disposition", body)
    except ApiError as exc:
        message, status = engine_failure(exc)
        # The lead's disposition is the desk's code; its callback time the desk's callback fields.
        refused = _engine_refusal(exc, {"disposition": "code", "code": "code", "callback_at": "callback"})
        if status == 400 and refused:
            return _refuse_all(refused, status)
        return answer(False, message, status, back)
    audit("lead.disposition", str(lead_id), {"campaign": (found.get("lead") or {}).get("campaign")},
          {**body, "result": result})
    done = f"Lead {lead_id}: {code}"
    if callback_at is not None:
        done += ", call back " + dt.datetime.fromtimestamp(callback_at, _site_zone()).strftime("%Y-%m-%d %H:%M")
    return answer(True, done + ".", 200, back, result=result)


@bp.route("/lead/<int:lead_id>/dnc", methods=["POST"])
@login_required("agent")
def lead_dnc(lead_id: int) -> Any:
    """The prospect asked not to be called again: their number goes on the do-not-call list."""
    agent_id = _require_linked()
    back = url_for("agent_desk.desk")
    note = request.form.get("note", "").strip() or f"asked agent {agent_id} not to be called"
    if len(note) > MAX_DNC_NOTE:
        return _refuse(f"note: at most {MAX_DNC_NOTE} characters", "dnc")
    try:
        view = _lead_view(_mine("lead", lead_id)) or {}
        body = {"number": view["number"], "note": note, "campaign": view["campaign"]}
        result = ask("POST", "/v1/dnc", body)
    except ApiError as exc:
        message, status = engine_failure(exc)
        return answer(False, message, status, back)
    audit("dnc.add", view["number"], None, {**body, "agent": agent_id, "lead": lead_id})
    return answer(True, f"{view['number']} is on the do-not-call list: no campaign will call it again.", 200, back,
                  result=result)


@bp.route("/preview/<int:lead_id>", methods=["POST"])
@login_required("agent")
def preview_action(lead_id: int) -> Any:
    """Preview mode: dial the lead I am looking at, or skip it."""
    agent_id = _require_linked()
    back = url_for("agent_desk.desk")
    action = request.form.get("action", "")
    if action not in ("dial", "skip"):
        return _refuse("action: dial or skip", "preview")
    try:
        view = _lead_view(_mine("preview", lead_id))
        result = ask("POST", f"/v1/agents/{seg(agent_id)}/preview", {"action": action})
    except ApiError as exc:
        message, status = engine_failure(exc)
        return answer(False, message, status, back)
    audit("lead.preview", str(lead_id), None, {"action": action, "number": view["number"] if view else "",
                                               "agent": agent_id})
    done = f"Dialling {view['number'] if view else lead_id}: your phone rings first." if action == "dial" \
        else f"Lead {lead_id} skipped."
    return answer(True, done, 200, back, result=result)
