"""Agents and queues in the store and the provisioning file: round trips, precise errors, atomic import."""

from __future__ import annotations

import textwrap

import pytest

from appliance.store import ConfigError, Store, export_config, import_config, parse_config
from appliance.store import acd
from appliance.store.models import AgentConfig, AgentStatus, QueueConfig

BASE = textwrap.dedent("""\
    version: 1
    extensions:
      - {number: '1001', name: Alice, secret: alicepass1}
    agents:
      - {agent_id: '2001', name: Ana, pin: '1234', skills: ['french:5', 'english:2']}
      - {agent_id: '2002', name: Bob, pin: '5678', skills: ['french:2']}
    queues:
      - name: support-fr
        number: '6001'
        strategy: ring-progressively
        members: ['2002', '2001']
        skills: ['french:4']
        escalations: ['after 30s: french:1', 'after 90s: any']
        overflow: queue:general
        callback_key: '1'
        recording: stereo
        survey: true
      - {name: general, overflow: voicemail:1001}
    inbound_routes:
      - {did: '0123456789', destination: 'queue:support-fr'}
""")


def test_agents_and_queues_round_trip_through_the_provisioning_file(store: Store) -> None:
    report = import_config(store, BASE)
    assert (report.agents, report.queues) == (2, 2)
    ana = acd.get_agent(store, "2001")
    assert ana is not None and ana.skills == ["english:2", "french:5"] and ana.pin == "1234"
    q = acd.get_queue(store, "support-fr")
    assert q is not None and q.members == ["2002", "2001"]  # configured order kept
    assert q.escalations == ["after 30s: french:1", "after 90s: any"] and q.survey and q.recording == "stereo"
    exported = export_config(store)
    import_config(store, exported)
    assert export_config(store) == exported


@pytest.mark.parametrize(("old", "new", "message"), [
    ("'french:5', 'english:2'", "'french:9'", "agents[0].skills[0]: skill 'french': level must be 1-5"),
    ("pin: '1234'", "pin: '12'", "agents[0].pin: must be 4-8 digits"),
    ("strategy: ring-progressively", "strategy: cheapest", "queues[0].strategy: 'cheapest' is not one of"),
    ("members: ['2002', '2001']", "members: ['2002', '2009']", "queues[0].members[1]: agent '2009' is not defined"),
    ("'after 30s: french:1'", "'after 30s: french:5'", "queues[0].escalations: escalation 0"),
    ("'after 30s: french:1'", "'30s french 1'", "queues[0].escalations[0]: '30s french 1' is not"),
    ("overflow: queue:general", "overflow: queue:nowhere", "queues[0].overflow: queue 'nowhere' is not defined"),
    ("overflow: voicemail:1001", "overflow: voicemail:1009", "queues[1].overflow: extension '1009' is not defined"),
    ("destination: 'queue:support-fr'", "destination: 'queue:sales'", "inbound_routes[0].destination: queue 'sales'"),
    ("callback_key: '1'", "callback_key: '12'", "queues[0].callback_key: '12' is not one DTMF key"),
    ("number: '6001'", "number: '1001'", "queues[0].number: 1001 is already extension"),
    ("recording: stereo", "recording: loud", "queues[0].recording: 'loud' is not one of"),
])
def test_bad_acd_config_names_the_field_and_changes_nothing(store: Store, old: str, new: str, message: str) -> None:
    import_config(store, BASE)
    before = export_config(store)
    bad = BASE.replace(old, new)
    assert bad != BASE
    with pytest.raises(ConfigError) as err:
        import_config(store, bad)
    assert message in str(err.value)
    assert export_config(store) == before


def test_reimport_keeps_the_agents_who_are_logged_in(store: Store) -> None:
    import_config(store, BASE)
    acd.save_agent_status(store, AgentStatus("2001", "paused", "2", "1001", 10.0))
    import_config(store, BASE)
    assert acd.agent_statuses(store)["2001"].pause_reason == "2"
    import_config(store, BASE.replace("members: ['2002', '2001']", "members: ['2002']").replace(
        "  - {agent_id: '2001', name: Ana, pin: '1234', skills: ['french:5', 'english:2']}\n", ""))
    assert "2001" not in acd.agent_statuses(store)  # a deleted agent's state goes with them


def test_queue_in_use_cannot_be_deleted(store: Store) -> None:
    import_config(store, BASE)
    with pytest.raises(ConfigError, match="0123456789"):
        acd.delete_queue(store, "support-fr")
    with pytest.raises(ConfigError, match="queue support-fr"):
        acd.delete_queue(store, "general")


def test_put_queue_checks_members_exist(store: Store) -> None:
    acd.put_agent(store, AgentConfig("2001", "Ana", "1234"))
    with pytest.raises(ConfigError, match="agent '2002' does not exist"):
        acd.put_queue(store, QueueConfig("q", members=["2001", "2002"]))
    acd.put_queue(store, QueueConfig("q", members=["2001"]))
    assert acd.queues(store)[0].members == ["2001"]


def test_callbacks_survive_until_placed(store: Store) -> None:
    cb = acd.add_callback(store, "support-fr", "+33123", "Caller", 0, 5.0, "call-1")
    assert [r[0] for r in acd.pending_callbacks(store)] == [cb]
    acd.finish_callback(store, cb, 9.0, "answered")
    assert acd.pending_callbacks(store) == []


def test_parse_config_accepts_the_example() -> None:
    data = parse_config(BASE)
    assert [q.name for q in data.queues] == ["support-fr", "general"]


def test_extension_a_queue_overflows_to_or_a_route_sends_to_voicemail_cannot_be_deleted(store: Store) -> None:
    import_config(store, BASE)
    with pytest.raises(ConfigError, match="queue\\(s\\) general overflow to it"):
        store.delete_extension("1001")
    assert store.get_extension("1001") is not None
