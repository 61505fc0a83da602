"""Contact-centre agents and their skills."""
from __future__ import annotations

from appliance.schema.records import AgentRecord
from appliance.store import acd
from appliance.store.models import AgentConfig
from web.admin import bp
from web.admin.crud import Section, register
from web.admin.forms import BOOL, INT, LINES, SECRET, Field

SECTION = Section(
    name="agents", title="Agents", singular="agent", record=AgentConfig, model=AgentRecord, key="agent_id",
    fields=[
        Field("agent_id", "Agent number", help="2-8 digits, typed at login (*61)", placeholder="2001"),
        Field("name", "Name"),
        Field("pin", "PIN", SECRET, help="4-8 digits"),
        Field("skills", "Skills", LINES, help="one per line, name:level from 1 to 5",
              placeholder="french:4\nbilling:2"),
        Field("ring_timeout", "Ring for (seconds)", INT, help="5-300"),
        Field("max_no_answer", "Pause after unanswered offers in a row", INT, help="0: never"),
        Field("enabled", "Enabled", BOOL),
    ],
    columns=[("Number", lambda a: a.agent_id), ("Name", lambda a: a.name), ("Skills", lambda a: ", ".join(a.skills)),
             ("State", lambda a: "enabled" if a.enabled else "disabled")],
    load_all=acd.agents, load_one=acd.get_agent, put=acd.put_agent, delete=acd.delete_agent,
    secrets=("pin",),
    intro="Agents log in on any desk phone with their number and PIN.",
)
register(bp, SECTION)
