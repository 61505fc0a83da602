"""An in-process rig for the PBX core: a real `Switchboard` (calls, transfer, supervision, the ACD)
on a real store, with fakes of its PORTS only (tests/pbx_ports.py): the media engine
(`FakeMedia`), the clock and scheduler (`VirtualTime`), and the channel technology (`Phones`,
whose `Line`s the test drives as a SIP phone's far end would).

The pattern is tests/session_rig.py's: nothing of the component under test is faked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.pbx.call import Call
from appliance.pbx.channel import Party
from appliance.pbx.switchboard import PbxSettings, Switchboard
from appliance.store.db import Store
from appliance.store.models import Extension
from tests.pbx_ports import FakeMedia, Line, Phones, VirtualTime


class PbxRig:
    """A real Switchboard on `store`, with fake media, virtual time and test-driven phones."""

    def __init__(self, store: Store, tmp_path: Path, failure_tone_seconds: float = 2.0) -> None:
        self.store = store
        self.clock = VirtualTime(1_000_000.0)
        self.media = FakeMedia()
        self.phones = Phones(self.media)
        settings = PbxSettings(failure_tone_seconds=failure_tone_seconds, tts_dir=tmp_path / "tts",
                               recordings_dir=tmp_path / "recordings", voicemail_dir=tmp_path / "voicemail")
        self.pbx = Switchboard(store, self.media, self.clock.schedule, settings, clock=self.clock.clock)
        self.pbx.factory = self.phones

    def extension(self, number: str, registered: bool = True, **fields: Any) -> Extension:
        ext = Extension(number=number, name=f"Desk {number}", secret=f"secret-{number}", **fields)
        self.store.put_extension(ext)
        self.pbx.reload()
        if registered:
            self.phones.registered.add(number)
        return ext

    def dial(self, from_ext: str, number: str) -> tuple[Call, Line]:
        """The phone of `from_ext` calls `number`: its inbound leg and the call the PBX made."""
        ext = self.pbx.dialplan.extensions[from_ext]
        line = Line("inbound", Party(from_ext, ext.name), number, self.media)
        return self.pbx.incoming(line, number, ext), line

    def connected(self, from_ext: str, to_ext: str) -> tuple[Call, Line, Line]:
        """An answered call from `from_ext` to `to_ext`: (call, caller's leg, callee's leg)."""
        call, a = self.dial(from_ext, to_ext)
        b = self.phones.ringing(to_ext)
        b.remote_ringing()
        b.remote_answer()
        return call, a, b
