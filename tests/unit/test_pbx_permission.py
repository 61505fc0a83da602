"""The one permission check (permission.refusal) for every call the PBX places for someone.

Each principal the PBX builds is tried against internal and outside destinations: an
extension, a trunk leg (transfer rights per trunk, default off), a queue callback, a campaign,
an IVR route, and a leg of unknown origin, which must never mean "allowed".
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.pbx.channel import Channel, Party
from appliance.pbx.dialplan import Dialplan, Refused, ToExtension, ToQueue, ToTrunk
from appliance.pbx.permission import TRUNK_TRANSFER_SETTING, Kind, Principal, refusal
from appliance.pbx.switchboard import PbxSettings, Switchboard
from appliance.schema.settings import CALLBACK_ROUTES_SETTING
from appliance.store.db import Store
from appliance.store.models import Extension, InboundRoute, OutboundRoute, Trunk
from tests.pbx_ports import FakeMedia, VirtualTime

NATIONAL = OutboundRoute("national", "_0[1-9]XXXXXXXX", "carrier")
INTL = OutboundRoute("intl", "_00X.", "carrier")


def _plan() -> Dialplan:
    exts = {"1001": Extension("1001", "Alice", "s1", dial_permissions=["national"]),
            "1002": Extension("1002", "Bob", "s2")}
    return Dialplan(exts, {"carrier": Trunk("carrier", "192.0.2.10")}, [NATIONAL, INTL],
                    [InboundRoute("+33140000099", "1002")], {"3000": "sales"})


def test_an_extension_reaches_inside_and_only_its_granted_routes() -> None:
    who = Principal.extension(_plan().extensions["1001"])
    assert refusal(who, None) is None
    assert refusal(who, NATIONAL) is None
    assert "may not use route intl" in (refusal(who, INTL) or "")


@pytest.mark.parametrize("setting", [None, "", "off", "national", "bogus"])
def test_a_trunk_leg_may_not_transfer_anywhere_unless_its_setting_says_internal(setting: str | None) -> None:
    who = Principal.trunk("carrier", setting)
    assert who.kind is Kind.TRUNK
    assert refusal(who, None) is not None
    assert refusal(who, NATIONAL) is not None
    assert refusal(who, INTL) is not None
    plan = _plan()
    for number in ("1002", "3000", "0140000000", "0044900123456"):
        dest = plan.resolve(number, who)
        assert isinstance(dest, Refused) and dest.cause.code == 403, (number, dest)


def test_a_trunk_allowed_internal_transfers_reaches_extensions_and_queues_only() -> None:
    plan = _plan()
    who = Principal.trunk("carrier", "internal")
    assert isinstance(plan.resolve("1002", who), ToExtension)
    assert isinstance(plan.resolve("3000", who), ToQueue)
    assert isinstance(plan.resolve("0140000000", who), Refused)
    wider = Principal.trunk("carrier", "internal, national")
    assert isinstance(plan.resolve("0140000000", wider), ToTrunk)
    assert isinstance(plan.resolve("0044900123456", wider), Refused)


def test_unknown_origin_never_means_allowed() -> None:
    plan = _plan()
    who = Principal.unknown("a leg")
    assert isinstance(plan.resolve("1002", who), ToExtension)
    for number in ("0140000000", "0044900123456"):
        dest = plan.resolve(number, who)
        assert isinstance(dest, Refused) and dest.cause.code == 403


def test_an_ivr_route_reaches_exactly_the_number_its_flow_names() -> None:
    plan = _plan()
    who = Principal.system("ivr:reception", numbers=frozenset({"0140000000"}))
    assert isinstance(plan.resolve("0140000000", who), ToTrunk)
    assert isinstance(plan.resolve("0140000001", who), Refused)


def test_a_campaign_uses_its_own_trunk_route_only() -> None:
    campaign = OutboundRoute("campaign:spring", "", "carrier")
    who = Principal.system("campaign:spring", frozenset({campaign.name}))
    assert refusal(who, campaign, "0140000000") is None
    assert refusal(who, OutboundRoute("campaign:other", "", "carrier")) is not None
    assert refusal(who, INTL) is not None


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Switchboard]:
    store = Store(tmp_path / "plateau.db")
    store.put_trunk(Trunk(name="carrier", host="192.0.2.1"))
    store.put_outbound_route(NATIONAL)
    store.put_outbound_route(INTL)
    store.put_extension(Extension(number="1001", name="Desk", secret="secret-1001", dial_permissions=["intl"]))
    try:
        yield Switchboard(store, FakeMedia(), VirtualTime().schedule, PbxSettings(tts_dir=tmp_path / "tts"))
    finally:
        store.close()


class _Leg(Channel):
    technology = "test"

    def ring(self) -> None: ...

    def progress(self) -> None: ...

    def answer(self) -> None: ...

    def hangup(self, cause: object = None) -> None: ...

    def notify_transfer(self, status: int, reason: str, final: bool) -> None: ...

    def remote_description(self) -> str:
        return ""


def test_a_request_is_authorised_as_the_leg_it_arrives_on(pbx: Switchboard) -> None:
    desk = _Leg("inbound", Party("1001"), "x")
    desk.extension = "1001"
    assert pbx.principal_of(desk) == Principal.extension(pbx.dialplan.extensions["1001"])
    carrier = _Leg("inbound", Party("1001"), "x")  # a carrier presenting an extension's number
    carrier.trunk = "carrier"
    who = pbx.principal_of(carrier)
    assert who.kind is Kind.TRUNK and refusal(who, None) is not None
    pbx.store.set_setting(TRUNK_TRANSFER_SETTING.format(name="carrier"), "internal")
    assert refusal(pbx.principal_of(carrier), None) is None
    assert refusal(pbx.principal_of(carrier), INTL) is not None
    stray = _Leg("inbound", Party("1001"), "x")
    assert pbx.principal_of(stray).kind is Kind.UNKNOWN


def test_callback_goes_through_the_same_check(pbx: Switchboard) -> None:
    assert pbx.callback_refusal("1001") is None
    assert "may not use route national" in (pbx.callback_refusal("0140000000") or "")
    pbx.store.set_setting(CALLBACK_ROUTES_SETTING, "national")
    assert pbx.callback_refusal("0140000000") is None
    assert pbx.callback_refusal("0044900123456") is not None


def test_originate_is_refused_before_ringing_when_the_route_is_not_granted(pbx: Switchboard) -> None:
    from appliance.pbx.switchboard import PbxError

    with pytest.raises(PbxError) as err:
        pbx.originate("1001", "0140000000")  # 1001 has intl only
    assert err.value.status == 403 and "national" in str(err.value)
