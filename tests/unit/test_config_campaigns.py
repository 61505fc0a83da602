"""The `campaigns:` section of the provisioning file: export, validation with paths, atomic import
that keeps leads and refuses to drop a campaign that still has some."""

from __future__ import annotations

import pathlib
import textwrap

import pytest
import yaml

from appliance.dialer.campaign import CampaignConfig
from appliance.dialer.prospects import ImportReport as ListReport
from appliance.dialer.prospects import Lead
from appliance.store import ConfigError, Store, export_config, import_config, parse_config
from appliance.store import dialer as dstore

SITE = textwrap.dedent("""\
    version: 1
    trunks:
      - name: carrier
        host: sip.carrier.example
      - name: backup
        host: sip.backup.example
    extensions:
      - number: '1001'
        name: Alice
        secret: alicepass1
    agents:
      - agent_id: '2001'
        name: Ana
        pin: '1111'
    queues:
      - name: outbound
        members: ['2001']
      - name: renewals
        number: '6200'
    campaigns:
      - name: winter
        queue: outbound
        trunk: carrier
        mode: predictive
        caller_id: '+33140000077'
        script: "Hello {first_name}"
        dispositions: [sale, no-sale]
        retry_minutes: {busy: 10, no-answer: 90}
        windows: ['mon-fri 10:00-13:00', 'sat 10:00-12:00']
        abandon_cap: 0.02
        state: running
      - name: autumn
        queue: renewals
        trunk: backup
""")


@pytest.fixture
def store(tmp_path: pathlib.Path):
    s = Store(tmp_path / "plateau.db")
    yield s
    s.close()


def _doc(text: str = SITE) -> dict:
    return yaml.safe_load(text)


def _dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def _add_leads(store: Store, campaign: str, numbers: list[str]) -> None:
    leads = [Lead(i + 2, n, "Europe/Paris", {"first_name": f"L{i}"}) for i, n in enumerate(numbers)]
    dstore.add_list(store, campaign, "list", leads, ListReport(rows=len(leads), imported=len(leads)), now=1.0)


def test_round_trip_keeps_two_campaigns_sorted_after_queues(store: Store, tmp_path: pathlib.Path) -> None:
    report = import_config(store, SITE)
    assert (report.campaigns, report.removed_campaigns) == (2, [])
    winter = dstore.get_campaign(store, "winter")
    assert winter is not None
    assert (winter.mode, winter.state, winter.retry_minutes, winter.abandon_cap) == (
        "predictive", "running", {"busy": 10, "no-answer": 90}, 0.02)
    assert dstore.get_campaign(store, "autumn") == CampaignConfig(name="autumn", queue="renewals", trunk="backup")
    exported = export_config(store)
    doc = _doc(exported)
    assert list(doc)[-2:] == ["queues", "campaigns"]
    assert [c["name"] for c in doc["campaigns"]] == ["autumn", "winter"]
    assert doc["campaigns"][1]["state"] == "running"
    assert list(doc["campaigns"][0]) == [f for f in CampaignConfig.__dataclass_fields__]
    import_config(store, exported)
    assert export_config(store) == exported
    # Onto a second, empty appliance too: the file is the whole configuration.
    other = Store(tmp_path / "other.db")
    try:
        import_config(other, exported)
        assert export_config(other) == exported
    finally:
        other.close()


def test_file_without_campaigns_exports_without_the_section(store: Store) -> None:
    doc = _doc()
    del doc["campaigns"]
    import_config(store, _dump(doc))
    assert "campaigns" not in _doc(export_config(store))


def _edit(index: int, key: str, value: object) -> str:
    doc = _doc()
    doc["campaigns"][index][key] = value
    return _dump(doc)


@pytest.mark.parametrize(
    ("index", "key", "value", "message"),
    [
        (1, "mode", "blaster", "campaigns[1].mode: 'blaster' is not one of preview, progressive, predictive"),
        (0, "state", "stopped", "campaigns[0].state: 'stopped' is not one of paused, running, finished"),
        (0, "retry_minutes", {"busy": 0},
         "campaigns[0].retry_minutes.busy: 0 is not a number of minutes in 1..43200"),
        (0, "retry_minutes", {"sale": 5},
         "campaigns[0].retry_minutes.sale: is not one of no-answer, busy, failed, machine, abandoned"),
        (0, "retry_minutes", [5], "campaigns[0].retry_minutes: must be a mapping of outcome to minutes"),
        (0, "windows", ["mon-fri 13:00-10:00"],
         "campaigns[0].windows[0]: 'mon-fri 13:00-10:00': the window ends before it starts"),
        (0, "windows", "mon-fri 10:00-13:00", "campaigns[0].windows: must be a list, got str"),
        (0, "dispositions", ["sale", "sale"], "campaigns[0].dispositions[1]: 'sale' is listed twice"),
        (1, "max_attempts", True, "campaigns[1].max_attempts: must be an integer, got bool True"),
        (1, "caller_id", 33140000077,
         "campaigns[1].caller_id: must be a string, got number 33140000077 (quote it in YAML: '33140000077')"),
        (1, "abandon_cap", 0.5, "campaigns[1].abandon_cap: 0.5 is not a fraction in 0..0.2 (3 % is 0.03)"),
        (1, "queue", "nope", "campaigns[1].queue: queue 'nope' is not defined"),
        (1, "trunk", "nope", "campaigns[1].trunk: trunk 'nope' is not defined"),
        (1, "name", "winter", "campaigns[1].name: 'winter' is already used by campaigns[0]"),
        (1, "leads", [], None),  # unknown field: message checked below
    ],
)
def test_field_errors_name_their_path(store: Store, index: int, key: str, value: object,
                                      message: str | None) -> None:
    import_config(store, SITE)
    before = export_config(store)
    with pytest.raises(ConfigError) as info:
        import_config(store, _edit(index, key, value))
    if message is None:
        assert str(info.value).startswith("campaigns[1]: unknown field 'leads' (known: name, queue, trunk, mode,")
    else:
        assert str(info.value) == message
    assert export_config(store) == before


def test_required_fields_and_section_shape() -> None:
    doc = _doc()
    del doc["campaigns"][1]["trunk"]
    with pytest.raises(ConfigError, match=r"^campaigns\[1\]\.trunk: is required$"):
        parse_config(_dump(doc))
    doc = _doc()
    doc["campaigns"] = {"winter": {}}
    with pytest.raises(ConfigError, match=r"^campaigns: must be a list, got dict$"):
        parse_config(_dump(doc))
    doc = _doc()
    doc["campaigns"][0] = "winter"
    with pytest.raises(ConfigError, match=r"^campaigns\[0\]: must be a mapping of fields, got str$"):
        parse_config(_dump(doc))


def test_dropping_a_campaign_with_leads_is_refused_and_changes_nothing(store: Store) -> None:
    import_config(store, SITE)
    _add_leads(store, "winter", ["+33612345678", "+33612345679"])
    before = export_config(store)
    doc = _doc()
    del doc["campaigns"][0]  # winter, which has leads
    doc["extensions"][0]["name"] = "Alicia"  # other sections' changes must not be applied either
    doc["queues"].append({"name": "support"})
    with pytest.raises(ConfigError) as info:
        import_config(store, _dump(doc))
    assert str(info.value) == ("campaigns: campaign 'winter' has 2 leads: "
                               "delete it in the web UI first or keep it in the file")
    assert export_config(store) == before
    assert store.get_extension("1001").name == "Alice"
    assert sum(dstore.lead_counts(store, "winter").values()) == 2
    # An old file with no campaigns section at all means "no campaigns": refused the same way.
    del doc["campaigns"]
    with pytest.raises(ConfigError, match="campaign 'winter' has 2 leads"):
        import_config(store, _dump(doc))
    assert export_config(store) == before


def test_dropping_a_campaign_without_leads_deletes_it(store: Store) -> None:
    import_config(store, SITE)
    _add_leads(store, "winter", ["+33612345678"])
    doc = _doc()
    del doc["campaigns"][1]  # autumn: no leads
    report = import_config(store, _dump(doc))
    assert (report.campaigns, report.removed_campaigns) == (1, ["autumn"])
    assert [c.name for c in dstore.campaigns(store)] == ["winter"]
    del doc["campaigns"]
    with pytest.raises(ConfigError, match="campaign 'winter' has 1 lead: "):
        import_config(store, _dump(doc))


def test_leads_of_a_kept_campaign_survive_an_import(store: Store) -> None:
    import_config(store, SITE)
    _add_leads(store, "winter", ["+33612345678", "+33612345679", "+33612345680"])
    lists = dstore.lead_lists(store, "winter")
    doc = _doc()
    doc["campaigns"][0]["mode"] = "progressive"
    doc["campaigns"][0]["state"] = "paused"
    doc["campaigns"][0]["trunk"] = "backup"
    report = import_config(store, _dump(doc))
    assert report.removed_campaigns == []
    winter = dstore.get_campaign(store, "winter")
    assert winter is not None and (winter.mode, winter.state, winter.trunk) == ("progressive", "paused", "backup")
    assert dstore.lead_lists(store, "winter") == lists
    assert dstore.lead_counts(store, "winter")["new"] == 3
    assert dstore.campaign_numbers(store, "winter") == {"+33612345678", "+33612345679", "+33612345680"}


def test_a_backup_that_would_drop_a_campaign_with_leads_is_refused_before_restore(tmp_path: pathlib.Path) -> None:
    import io

    from appliance.system.backup import BackupError, check_backup, write_backup

    old = tmp_path / "old"
    old.mkdir()
    with Store(old / "plateau.db") as before:  # a configuration from before the campaign existed
        doc = _doc()
        del doc["campaigns"]
        import_config(before, _dump(doc))
        blob = io.BytesIO()
        write_backup(blob, before, old, "test")
    live = tmp_path / "live"
    live.mkdir()
    with Store(live / "plateau.db") as store:
        import_config(store, SITE)
        _add_leads(store, "winter", ["+33612345678"])
        blob.seek(0)
        with pytest.raises(BackupError, match="config.yaml: campaigns: campaign 'winter' has 1 lead:"):
            check_backup(blob, store, live)
        assert sum(dstore.lead_counts(store, "winter").values()) == 1
