"""Outbound routes (number patterns to trunks) and inbound routes (DIDs to destinations)."""
from __future__ import annotations

from flask import current_app

from appliance.schema.records import InboundRouteRecord, OutboundRouteRecord
from appliance.store import acd
from appliance.store.models import InboundRoute, OutboundRoute
from web.admin import bp
from web.admin.crud import Section, register
from web.admin.forms import INT, OPTIONAL, SELECT, Field
from web.context import store


def _trunks() -> list[tuple[str, str]]:
    return [(t.name, t.name) for t in store().trunks()]


def destinations() -> list[tuple[str, str]]:
    """Every place a call can be sent: extensions, voicemail boxes, queues and published IVR flows."""
    from web.admin.flows import published_names

    out: list[tuple[str, str]] = []
    for e in store().extensions():
        out.append((e.number, f"extension {e.name}"))
        if e.voicemail:
            out.append((f"voicemail:{e.number}", f"voicemail of {e.name}"))
    out += [(f"queue:{q.name}", f"queue {q.name}") for q in acd.queues(store())]
    out += [(f"ivr:{name}", f"IVR flow {name}") for name in published_names(current_app.config["DATA_DIR"])]
    return out


OUTBOUND = Section(
    name="outbound", title="Outbound routes", singular="outbound_route", record=OutboundRoute,
    model=OutboundRouteRecord, key="name",
    fields=[
        Field("name", "Name", placeholder="national"),
        Field("pattern", "Pattern", help="Asterisk syntax: _0XXXXXXXXX, _00., _1NXXNXXXXXX", placeholder="_0XXXXXXXXX"),
        Field("trunk", "Trunk", SELECT, choices=_trunks),
        Field("strip", "Strip leading digits", INT),
        Field("prepend", "Prepend", placeholder="+33"),
        Field("caller_id", "Caller ID", OPTIONAL, help="overrides the trunk's; empty: the extension's"),
        Field("priority", "Priority", INT, help="lower is tried first"),
    ],
    columns=[("Priority", lambda r: str(r.priority)), ("Name", lambda r: r.name), ("Pattern", lambda r: r.pattern),
             ("Trunk", lambda r: r.trunk),
             ("Rewrite", lambda r: f"strip {r.strip}, prepend {r.prepend}" if r.strip or r.prepend else "")],
    load_all=lambda s: s.outbound_routes(), load_one=lambda s, k: s.get_outbound_route(k),
    put=lambda s, r: s.put_outbound_route(r), delete=lambda s, k: s.delete_outbound_route(k),
    intro="A phone may only use the routes its extension is allowed (dial permissions).",
)

INBOUND = Section(
    name="inbound", title="Inbound routes", singular="inbound_route", record=InboundRoute,
    model=InboundRouteRecord, key="did",
    fields=[
        Field("did", "Dialled number (DID)", placeholder="+33123456789"),
        Field("destination", "Destination", suggest=destinations,
              help="an extension, voicemail:<extension>, queue:<name> or ivr:<flow>"),
    ],
    columns=[("DID", lambda r: r.did), ("Destination", lambda r: r.destination)],
    load_all=lambda s: s.inbound_routes(), load_one=lambda s, k: s.get_inbound_route(k),
    put=lambda s, r: s.put_inbound_route(r), delete=lambda s, k: s.delete_inbound_route(k),
)
register(bp, OUTBOUND)
register(bp, INBOUND)
