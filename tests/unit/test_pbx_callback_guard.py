"""Queue callbacks reach extensions, and outside numbers only through routes allowed for callbacks."""
from __future__ import annotations

from pathlib import Path

from appliance.pbx.switchboard import PbxSettings, Switchboard
from appliance.schema.settings import CALLBACK_ROUTES_SETTING
from appliance.store.db import Store
from appliance.store.models import Extension, OutboundRoute, Trunk
from tests.pbx_ports import FakeMedia, VirtualTime


def test_callback_refusal(tmp_path: Path) -> None:
    store = Store(tmp_path / "plateau.db")
    try:
        store.put_trunk(Trunk(name="carrier", host="192.0.2.1"))
        store.put_outbound_route(OutboundRoute(name="national", pattern="_0XXXXXXXXX", trunk="carrier"))
        store.put_outbound_route(OutboundRoute(name="premium", pattern="_08XXXXXXXX", trunk="carrier", priority=1))
        store.put_extension(Extension(number="1001", name="Desk", secret="secret-1001"))
        pbx = Switchboard(store, FakeMedia(), VirtualTime().schedule, PbxSettings(tts_dir=tmp_path / "tts"))
        assert pbx.callback_refusal("1001") is None  # an extension: always
        assert "not in acd.callback_routes" in (pbx.callback_refusal("0140000000") or "")  # none allowed by default
        store.set_setting(CALLBACK_ROUTES_SETTING, "national")
        pbx.reload()
        assert pbx.callback_refusal("0140000000") is None
        assert "premium" in (pbx.callback_refusal("0899000000") or "")  # a spoofed premium number
        assert pbx.callback_refusal("+999") is not None  # nothing routes there
    finally:
        store.close()
