"""The admin area (role admin): extensions, trunks, routes, agents, queues, IVR flows, hours,
prompts and settings. One module per section; each adds its routes to `bp`."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from appliance.store import acd, dialer
from web.context import login_required, store

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Sections register their routes on import (they need `bp` defined above).
from web.admin import agents, extensions, flows, hours, prompts, queues, routes, settings, trunks  # noqa: E402
from web.admin.forms import engine_status  # noqa: E402
from web.admin import campaigns, dnc  # noqa: E402

# Outbound campaigns are nested blueprints ("admin.campaigns.*", "admin.dnc.*") so supervisors,
# who may watch and start campaigns, get their own sidebar entry rather than the admin tabs.
bp.register_blueprint(campaigns.bp)
bp.register_blueprint(dnc.bp)

SECTIONS = (
    ("admin.extensions", "Extensions", "Phones, forwards, recording, voicemail"),
    ("admin.trunks", "Trunks", "Carriers and other PBXs"),
    ("admin.outbound", "Outbound routes", "Which numbers leave by which trunk"),
    ("admin.inbound", "Inbound routes", "Where each DID rings"),
    ("admin.agents", "Agents", "People who log in to queues, and their skills"),
    ("admin.queues", "Queues", "Strategy, members, skills, overflow"),
    ("admin.flows", "IVR flows", "Menus, edited, tested and versioned"),
    ("admin.hours", "Business hours", "Opening hours and holidays of every flow"),
    ("admin.prompts", "Prompts", "Recorded and spoken messages"),
    ("admin.settings", "Settings", "Recording retention, supervisors, voicemail PINs"),
    ("admin.campaigns.index", "Outbound campaigns", "Prospect lists, dialling modes, do-not-call list"),
)


@bp.route("/")
@login_required("admin")
def index() -> str:
    s = store()
    data_dir = current_app.config["DATA_DIR"]
    counts = {
        "admin.extensions": len(s.extensions()), "admin.trunks": len(s.trunks()),
        "admin.outbound": len(s.outbound_routes()), "admin.inbound": len(s.inbound_routes()),
        "admin.agents": len(acd.agents(s)), "admin.queues": len(acd.queues(s)),
        "admin.flows": len(flows.published_names(data_dir)), "admin.prompts": len(prompts.prompt_infos()),
        "admin.campaigns.index": len(dialer.campaigns(s)),
    }
    return render_template("admin/index.html", sections=SECTIONS, counts=counts, status=engine_status())


__all__ = ["agents", "bp", "campaigns", "dnc", "extensions", "flows", "hours", "prompts", "queues", "routes",
           "settings", "trunks"]
