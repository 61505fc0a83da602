"""Outbound routes (number patterns to trunks) and inbound routes (DIDs to destinations)."""
from __future__ import annotations

from typing import Any

from appliance.ivr.flow import published_flow_names
from appliance.schema.destinations import Catalogue
from appliance.schema.errors import FieldError
from appliance.schema.records import InboundRouteRecord, OutboundRouteRecord
from appliance.store import acd
from appliance.store.models import InboundRoute, OutboundRoute
from web.admin import bp
from web.admin.crud import Section, register
from web.admin.forms import DESTINATION, INT, OPTIONAL, SELECT, Field
from web.context import store


def _trunks() -> list[tuple[str, str]]:
    return [(t.name, t.name) for t in store().trunks()]


def catalogue() -> Catalogue:
    """What a destination may name on this site, read now: extensions, their voicemail, queues and
    published IVR flows (appliance/schema/destinations.py)."""
    from web.admin.flows import flows_dir

    extensions = store().extensions()
    queues = acd.queues(store())
    return Catalogue.of([e.number for e in extensions], [e.number for e in extensions if e.voicemail],
                        [q.name for q in queues], published_flow_names(flows_dir()),
                        labels={e.number: e.name for e in extensions} | {f"queue:{q.name}": q.display_name
                                                                        for q in queues})


def destinations() -> list[tuple[str, str]]:
    """Every place a call can be sent, in the one destination syntax: the field's pick list."""
    return catalogue().choices()


def destination_errors(values: dict[str, Any], name: str) -> list[FieldError]:
    """Field `name` of a posted record names a destination that exists (empty: not set)."""
    value = values.get(name)
    why = catalogue().error(value) if value else None
    return [FieldError((name,), why)] if why else []


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
        Field("destination", "Destination", DESTINATION, choices=destinations,
              help="an extension, a voicemail box, a queue or a published IVR flow"),
    ],
    references=lambda values: destination_errors(values, "destination"),
    columns=[("DID", lambda r: r.did), ("Destination", lambda r: r.destination)],
    load_all=lambda s: s.inbound_routes(), load_one=lambda s, k: s.get_inbound_route(k),
    put=lambda s, r: s.put_inbound_route(r), delete=lambda s, k: s.delete_inbound_route(k),
)
register(bp, OUTBOUND)
register(bp, INBOUND)
