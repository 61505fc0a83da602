"""Routing decisions: extensions, outbound patterns, the toll-fraud guard, DIDs."""
from __future__ import annotations

from appliance.pbx.dialplan import Dialplan, Refused, ToExtension, ToTrunk, match_outbound
from appliance.pbx.permission import Principal
from appliance.store.models import Extension, InboundRoute, OutboundRoute, Trunk


def _plan() -> Dialplan:
    exts = {
        "1001": Extension("1001", "Alice", "secret1001", dial_permissions=["national", "intl"],
                          external_caller_id="+33140000001"),
        "1002": Extension("1002", "Bob", "secret1002", dial_permissions=["national"]),
        "1003": Extension("1003", "Off", "secret1003", enabled=False),
    }
    trunks = {"carrier": Trunk("carrier", "192.0.2.10", caller_id="+33140000000"),
              "backup": Trunk("backup", "192.0.2.20", enabled=False)}
    routes = [
        OutboundRoute("national", "_0[1-9]XXXXXXXX", "carrier"),
        OutboundRoute("intl", "_00.", "carrier", strip=2, prepend="+"),
        OutboundRoute("emergency", "112", "carrier", priority=1),
        OutboundRoute("old", "_9.", "backup"),
    ]
    return Dialplan(exts, trunks, routes, [InboundRoute("+33140000099", "1002")])


def test_extension_wins_over_patterns() -> None:
    dest = _plan().resolve("1002", Principal.unknown("test"))
    assert isinstance(dest, ToExtension) and dest.extension.name == "Bob"


def test_disabled_extension_is_not_found() -> None:
    dest = _plan().resolve("1003", Principal.unknown("test"))
    assert isinstance(dest, Refused) and dest.cause.code == 404


def test_outbound_route_rewrites_and_presents_the_callers_number() -> None:
    plan = _plan()
    dest = plan.resolve("0044123456789", Principal.extension(plan.extensions["1001"]))
    assert isinstance(dest, ToTrunk)
    assert (dest.route.name, dest.number, dest.caller_id) == ("intl", "+44123456789", "+33140000001")
    dest = plan.resolve("0612345678", Principal.extension(plan.extensions["1002"]))
    assert isinstance(dest, ToTrunk) and dest.caller_id == "+33140000000"  # the trunk's number


def test_toll_fraud_guard_refuses_routes_not_granted() -> None:
    plan = _plan()
    dest = plan.resolve("0044123456789", Principal.extension(plan.extensions["1002"]))
    assert isinstance(dest, Refused) and dest.cause.code == 403
    assert "intl" in dest.why


def test_unknown_number_and_disabled_trunk() -> None:
    plan = _plan()
    assert isinstance(plan.resolve("5555", Principal.extension(plan.extensions["1001"])), Refused)
    dest = plan.resolve("91234", Principal.system("test", frozenset({"old"})))
    assert isinstance(dest, Refused) and dest.cause.code == 503


def test_priority_then_specificity() -> None:
    routes = [OutboundRoute("any", "_X.", "t", priority=100), OutboundRoute("emergency", "112", "t", priority=100),
              OutboundRoute("low", "_1XX", "t", priority=200)]
    assert match_outbound("112", routes).name == "emergency"  # literal beats wildcard
    assert match_outbound("123", routes).name == "any"  # lower priority value first
    assert match_outbound("", routes) is None


def test_did_routing_and_trunk_recognition() -> None:
    plan = _plan()
    dest = plan.resolve_did("+33140000099")
    assert isinstance(dest, ToExtension) and dest.extension.number == "1002"
    dest = plan.resolve_did("0140000099")  # a carrier sending the national form
    assert isinstance(dest, Refused)
    dest = plan.resolve_did("40000099")  # or only the trailing digits
    assert isinstance(dest, ToExtension)
    assert isinstance(plan.resolve_did("99"), Refused)  # too short to identify a DID
    assert plan.trunk_for_source("192.0.2.10", 5060) is plan.trunks["carrier"]
    assert plan.trunk_for_source("192.0.2.10", 5062) is None
    assert plan.trunk_for_source("192.0.2.20", 5060) is None  # disabled
