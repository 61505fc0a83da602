"""YAML provisioning file: export, validation with precise messages, atomic import; demo seed."""

from __future__ import annotations

import pathlib
import re
import textwrap

import pytest
import yaml

from appliance.store import (
    ConfigError,
    acd,
    Extension,
    Store,
    export_config,
    import_config,
    parse_config,
    seed_demo,
)

GOOD = textwrap.dedent("""\
    version: 1
    settings:
      sip_port: '5060'
    trunks:
      - name: carrier
        host: sip.carrier.example
        username: acct
        secret: trunkpass1
        register: true
    outbound_routes:
      - name: national
        pattern: _0XXXXXXXXX
        trunk: carrier
      - name: emergency
        pattern: '112'
        trunk: carrier
        priority: 1
    extensions:
      - number: '1001'
        name: Alice
        secret: alicepass1
        dial_permissions: [national, emergency]
      - number: '1002'
        name: Bob
        secret: bobpass123
        forward_noanswer: '1001'
        noanswer_seconds: 15
    inbound_routes:
      - did: '+33123456789'
        destination: '1001'
""")


@pytest.fixture
def store(tmp_path: pathlib.Path):
    s = Store(tmp_path / "plateau.db")
    yield s
    s.close()


def test_import_then_export_round_trips(store: Store) -> None:
    report = import_config(store, GOOD)
    assert (report.extensions, report.trunks, report.outbound_routes, report.inbound_routes,
            report.settings) == (2, 1, 2, 1, 1)
    assert report.added_extensions == ["1001", "1002"] and report.removed_extensions == []
    assert store.get_extension("1001").dial_permissions == ["emergency", "national"]
    assert store.get_trunk("carrier").register is True
    exported = export_config(store)
    # Stable: exporting, importing the export and exporting again gives the same text.
    import_config(store, exported)
    assert export_config(store) == exported
    doc = yaml.safe_load(exported)
    assert list(doc) == ["version", "settings", "extensions", "trunks", "inbound_routes",
                         "outbound_routes", "agents", "queues"]
    assert list(doc["extensions"][0])[:3] == ["number", "name", "secret"]
    assert doc["extensions"][0]["secret"] == "alicepass1"  # provisioning file keeps secrets
    assert [r["name"] for r in doc["outbound_routes"]] == ["emergency", "national"]


def test_import_replaces_whole_configuration(store: Store) -> None:
    seed_demo(store)
    report = import_config(store, GOOD)
    assert report.removed_extensions == [str(n) for n in range(1003, 1011)]
    assert [e.number for e in store.extensions()] == ["1001", "1002"]
    assert store.get_trunk("demo-trunk") is None


def _bad(text: str, message: str, store: Store) -> None:
    """Import ``text``; it must fail with ``message`` and leave the DB untouched."""
    before = export_config(store)
    with pytest.raises(ConfigError) as info:
        import_config(store, text)
    assert str(info.value) == message
    assert export_config(store) == before


def _edit(path: str, value: object, text: str = GOOD) -> str:
    doc = yaml.safe_load(text)
    node = doc
    keys = [int(k) if k.isdigit() else k for k in re.split(r"[.\[\]]+", path) if k]
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return yaml.safe_dump(doc, sort_keys=False)


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("extensions[1].number", "10a1", "extensions[1].number: '10a1' is not 2-8 digits"),
        ("extensions[1].number", "1", "extensions[1].number: '1' is not 2-8 digits"),
        ("extensions[1].number", "123456789",
         "extensions[1].number: '123456789' is not 2-8 digits"),
        ("extensions[1].number", 1002,
         "extensions[1].number: must be a string, got number 1002 (quote it in YAML: '1002')"),
        ("extensions[0].number", "1002",
         "extensions[1].number: '1002' is already used by extensions[0]"),
        ("extensions[0].secret", _DELETE, "extensions[0].secret: is required"),
        ("extensions[0].dnd", "yes please", ("extensions[0].dnd: must be true or false, "
          "got 'yes please'")),
        ("extensions[0].noanswer_seconds", True,
         "extensions[0].noanswer_seconds: must be an integer, got bool True"),
        ("extensions[0].dial_permissions", ["national", "intl"],
         "extensions[0].dial_permissions[1]: outbound route 'intl' is not defined"),
        ("extensions[0].dial_permissions", "national",
         "extensions[0].dial_permissions: must be a list, got str"),
        ("extensions[0].nmae", "typo",
         ("extensions[0]: unknown field 'nmae' (known: number, name, secret, dnd, forward_always,"
          " forward_busy, forward_noanswer, noanswer_seconds, dial_permissions,"
          " external_caller_id, enabled, recording, voicemail)")),
        ("trunks[0].port", 0, "trunks[0].port: 0 is not in 1..65535"),
        ("trunks[0].port", 65536, "trunks[0].port: 65536 is not in 1..65535"),
        ("trunks[0].transport", "sctp", "trunks[0].transport: 'sctp' is not one of udp, tcp, tls"),
        ("outbound_routes[0].trunk", "nowhere",
         "outbound_routes[0].trunk: trunk 'nowhere' is not defined"),
        ("outbound_routes[0].pattern", "_0X.X",
         ("outbound_routes[0].pattern: pattern '_0X.X': '.' must be the last character "
          "(it already matches everything after it)")),
        ("outbound_routes[1].name", "national",
         "outbound_routes[1].name: 'national' is already used by outbound_routes[0]"),
        ("inbound_routes[0].destination", "1005",
         "inbound_routes[0].destination: extension '1005' is not defined"),
        ("settings.sip_port", 5060,
         "settings.sip_port: must be a string, got number 5060 (quote it in YAML: '5060')"),
        ("version", 2, "version: 2 is not supported (expected 1)"),
        ("extensons", [], ("unknown section 'extensons' (known: version, settings, extensions,"
                        " trunks, inbound_routes, outbound_routes, agents, queues, campaigns)")),
        ("trunks", {"name": "x"}, "trunks: must be a list, got dict"),
        ("extensions[0]", "1001", "extensions[0]: must be a mapping of fields, got str"),
    ],
)
def test_invalid_config_names_the_field_and_changes_nothing(
    store: Store, path: str, value: object, message: str
) -> None:
    import_config(store, GOOD)
    _bad(_edit(path, value), message, store)


def test_duplicate_keys_and_bad_documents_rejected(store: Store) -> None:
    import_config(store, GOOD)
    dup = GOOD.replace("    name: Alice\n", "    name: Alice\n    name: Eve\n")
    with pytest.raises(ConfigError, match="key 'name' appears twice"):
        import_config(store, dup)
    _bad("", "configuration is empty (to clear a section, write e.g. 'extensions: []')", store)
    _bad("- 1\n- 2\n", "configuration must be a mapping, got list", store)
    with pytest.raises(ConfigError, match="not valid YAML"):
        import_config(store, "extensions: [\n")
    # Unquoted 0123 is YAML 1.1 octal (83): must be rejected, not silently renumbered.
    with pytest.raises(ConfigError, match="must be a string, got number 83"):
        parse_config("extensions:\n- {number: 0123, name: x, secret: longsecret}\n")
    assert [e.number for e in store.extensions()] == ["1001", "1002"]


def test_last_error_is_found_even_after_valid_items(store: Store) -> None:
    """Validation covers every item: a bad last item blocks the whole import."""
    items = "\n".join(
        f"  - {{number: '{n}', name: U{n}, secret: secret{n}}}" for n in range(2000, 2050)
    )
    text = f"extensions:\n{items}\n  - {{number: '99', name: Z, secret: short}}\n"
    _bad(text, "extensions[50].secret: must be at least 8 characters", store)


def test_clearing_sections_explicitly(store: Store) -> None:
    import_config(store, GOOD)
    report = import_config(store, "extensions: []\n")
    assert report.removed_extensions == ["1001", "1002"]
    assert store.extensions() == [] and store.trunks() == [] and store.settings() == {}


def test_seed_demo(store: Store) -> None:
    accounts = seed_demo(store)
    secrets = accounts.extensions
    assert sorted(secrets) == [str(n) for n in range(1001, 1011)]
    assert sorted(accounts.agent_pins) == ["2001", "2002", "2003"]
    assert all(len(p) == 4 and p.isdigit() for p in accounts.agent_pins.values())
    assert [q.name for q in acd.queues(store)] == ["sales", "support"]
    assert store.get_extension("1001").voicemail is True
    assert all(len(s) == 12 and s.isalnum() for s in secrets.values())
    assert len(set(secrets.values())) == 10
    ext = store.get_extension("1005")
    assert ext.name == "Demo 1005" and ext.secret == secrets["1005"]
    assert ext.dial_permissions == []
    assert store.get_extension("1001").dial_permissions == ["national"]
    assert store.get_extension("1002").dial_permissions == ["national"]
    trunk = store.get_trunk("demo-trunk")
    assert (trunk.host, trunk.port, trunk.enabled) == ("127.0.0.1", 5070, False)
    route = store.get_outbound_route("national")
    assert (route.pattern, route.trunk) == ("_0XXXXXXXXX", "demo-trunk")
    # Idempotent: a second run changes nothing and reveals no secrets.
    assert not seed_demo(store)
    assert store.get_extension("1005").secret == secrets["1005"]


def test_seed_demo_skips_configured_store(store: Store) -> None:
    store.put_extension(Extension(number="200", name="Existing", secret="existing1"))
    assert not seed_demo(store)
    assert [e.number for e in store.extensions()] == ["200"]


@pytest.mark.parametrize("text", [
    "version: 1\nsettings:\n  when: 2026-02-30\n",  # PyYAML: ValueError (day out of range)
    "version: 1\n? {a: b}\n: 1\n",  # unhashable key: TypeError in the duplicate-key check
    "version: 1\nextensions: " + "[" * 5000 + "]" * 5000 + "\n",  # RecursionError
])
def test_yaml_the_loader_cannot_build_is_a_config_error(text):
    # Found by fuzz/config_import (and fuzz/backup_archive, whose config.yaml goes the same way).
    with pytest.raises(ConfigError):
        parse_config(text)
