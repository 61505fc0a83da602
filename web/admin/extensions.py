"""Extensions: the phones of the site, with forwards, dial permissions, recording and voicemail."""
from __future__ import annotations

from appliance.schema.records import ExtensionRecord
from appliance.store.models import EXTENSION_RECORDING, Extension
from web.admin import bp
from web.admin.crud import Section, register
from web.admin.forms import BOOL, INT, MULTI, OPTIONAL, SECRET, SELECT, Field
from flask import g

from appliance.api.facade import ApiError
from web.context import engine, store


def _routes() -> list[tuple[str, str]]:
    return [(r.name, f"{r.name} ({r.pattern} via {r.trunk})") for r in store().outbound_routes()]


_RECORDING_LABELS = {"none": "Never", "always": "Every call", "on-demand": "On demand (*1 during a call)"}

FIELDS = [
    Field("number", "Number", help="2-8 digits", placeholder="1001"),
    Field("name", "Name", placeholder="Reception"),
    Field("secret", "SIP password", SECRET, help="at least 8 characters"),
    Field("enabled", "Enabled", BOOL),
    Field("dnd", "Do not disturb", BOOL),
    Field("voicemail", "Voicemail", BOOL, help="busy, no answer or DND without a forward go to voicemail"),
    Field("recording", "Record calls", SELECT,
          choices=lambda: [(m, _RECORDING_LABELS.get(m, m)) for m in EXTENSION_RECORDING]),
    Field("forward_always", "Forward always to", OPTIONAL, placeholder="number"),
    Field("forward_busy", "Forward when busy to", OPTIONAL, placeholder="number"),
    Field("forward_noanswer", "Forward on no answer to", OPTIONAL, placeholder="number"),
    Field("noanswer_seconds", "Ring for (seconds) before no answer", INT),
    Field("external_caller_id", "Caller ID on trunks", OPTIONAL, placeholder="+33123456789"),
    Field("dial_permissions", "May dial out through", MULTI, choices=_routes,
          help="outbound routes this phone may use (the toll-fraud guard)"),
]


def _devices(e: Extension) -> str:
    """The phones registered on this extension now (user agent and address), from the engine."""
    if "registrations" not in g:
        try:
            g.registrations = engine().request("GET", "/v1/registrations")
        except ApiError:  # ApiUnavailable included: the list still shows, without devices
            g.registrations = None
    if g.registrations is None:
        return "engine not running"
    found = [f"{r.get('user_agent') or 'phone'} ({r['source']}, {r['transport']})"
             for r in g.registrations if r.get("aor") == e.number]
    return "; ".join(found) or "not registered"


def _flags(e: Extension) -> str:
    flags = [label for on, label in ((not e.enabled, "disabled"), (e.dnd, "DND"), (e.voicemail, "voicemail"),
                                     (e.recording != "none", f"rec: {e.recording}")) if on]
    return ", ".join(flags)


SECTION = Section(
    name="extensions", title="Extensions", singular="extension", record=Extension, model=ExtensionRecord, key="number",
    fields=FIELDS,
    columns=[("Number", lambda e: e.number), ("Name", lambda e: e.name),
             ("Forward", lambda e: e.forward_always or ""), ("Dial out", lambda e: ", ".join(e.dial_permissions)),
             ("Options", _flags), ("Devices", _devices)],
    load_all=lambda s: s.extensions(), load_one=lambda s, k: s.get_extension(k),
    put=lambda s, r: s.put_extension(r), delete=lambda s, k: s.delete_extension(k),
    secrets=("secret",),
    intro="Desk phones and softphones register with the number and SIP password.",
)
register(bp, SECTION)
