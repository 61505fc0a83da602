"""SIP trunks towards carriers or other PBXs."""
from __future__ import annotations

from appliance.schema.records import TrunkRecord
from appliance.store.models import TRANSPORTS, Trunk
from web.admin import bp
from web.admin.crud import Section, register
from web.admin.forms import BOOL, INT, OPTIONAL, SECRET, SELECT, Field

FIELDS = [
    Field("name", "Name", help="letters, digits, '_', '.', '-'", placeholder="carrier"),
    Field("host", "Host", placeholder="sip.carrier.example"),
    Field("port", "Port", INT),
    Field("transport", "Transport", SELECT, choices=lambda: [(t, t.upper()) for t in TRANSPORTS]),
    Field("username", "User name", OPTIONAL),
    Field("secret", "Password", SECRET, optional=True),
    Field("register", "Register to the carrier", BOOL),
    Field("register_expires", "Registration interval (seconds)", INT, help="60-86400"),
    Field("from_domain", "From domain", OPTIONAL),
    Field("caller_id", "Default caller ID", OPTIONAL),
    Field("enabled", "Enabled", BOOL),
]

SECTION = Section(
    name="trunks", title="Trunks", singular="trunk", record=Trunk, model=TrunkRecord, key="name", fields=FIELDS,
    columns=[("Name", lambda t: t.name), ("Host", lambda t: f"{t.host}:{t.port} ({t.transport.upper()})"),
             ("User", lambda t: t.username or ""), ("Register", lambda t: "yes" if t.register else "no"),
             ("State", lambda t: "enabled" if t.enabled else "disabled")],
    load_all=lambda s: s.trunks(), load_one=lambda s, k: s.get_trunk(k), put=lambda s, r: s.put_trunk(r),
    delete=lambda s, k: s.delete_trunk(k), secrets=("secret",),
)
register(bp, SECTION)
