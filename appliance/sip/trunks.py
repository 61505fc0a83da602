"""Outbound registration of SIP trunks to their carriers (RFC 3261 §10.2, digest as a UAC)."""
from __future__ import annotations

import logging
import time
from typing import Any

from sippy.SipRegistrationAgent import SipRegistrationAgent
from sippy.SipURL import SipURL

from appliance.store.db import Store
from appliance.store.models import Trunk

log = logging.getLogger("plateau.sip")


class TrunkRegistration:
    """One trunk's registration and what the carrier last said about it."""

    def __init__(self, global_config: dict[str, Any], trunk: Trunk) -> None:
        self.trunk = trunk
        self.state = "registering"
        self.detail = ""
        self.since = time.time()
        user = trunk.username or trunk.name
        domain = trunk.from_domain or trunk.host
        aor = SipURL(username=user, host=domain, port=trunk.port)
        contact = SipURL(username=user, host=global_config["_sip_address"], port=global_config["_sip_port"])
        self.agent = SipRegistrationAgent(
            global_config, aor, contact, user=trunk.username, passw=trunk.secret,
            exp=trunk.register_expires, rok_cb=self._ok, rfail_cb=self._fail,
            target=((trunk.host, trunk.port), trunk.transport),
        )

    def start(self) -> None:
        self.agent.doregister()

    def stop(self) -> None:
        self.agent.stopregister()
        self.state = "stopped"

    def _ok(self, expires_at: float, contact: Any, _arg: Any) -> None:
        if self.state != "registered":
            log.info("trunk %s registered", self.trunk.name)
        self.state, self.detail, self.since = "registered", "", time.time()

    def _fail(self, status_line: str, _arg: Any) -> None:
        log.warning("trunk %s registration failed: %s", self.trunk.name, status_line)
        self.state, self.detail, self.since = "failed", status_line, time.time()


class TrunkRegistrations:
    """Keeps a registration running for every enabled trunk that asks for one."""

    def __init__(self, global_config: dict[str, Any], store: Store) -> None:
        self.global_config = global_config
        self.store = store
        self.active: dict[str, TrunkRegistration] = {}

    def start(self) -> None:
        for trunk in self.store.trunks():
            if trunk.enabled and trunk.register:
                reg = TrunkRegistration(self.global_config, trunk)
                self.active[trunk.name] = reg
                reg.start()

    def stop(self) -> None:
        for reg in self.active.values():
            reg.stop()
        self.active.clear()

    def reload(self) -> None:
        self.stop()
        self.start()

    def status(self) -> list[dict[str, Any]]:
        out = []
        for trunk in self.store.trunks():
            reg = self.active.get(trunk.name)
            out.append({
                "name": trunk.name,
                "enabled": trunk.enabled,
                "register": trunk.register,
                "state": reg.state if reg else ("disabled" if not trunk.enabled else "not registering"),
                "detail": reg.detail if reg else "",
            })
        return out
