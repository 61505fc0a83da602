"""Helpers for engine tests of the outbound dialer: a blended queue with a campaign behind a
carrier trunk, leads seeded in the store, and `Carrier`: a pjsua2 "network" that behaves per
dialled number (answers like a person, is busy, never answers, answers like a machine).
"""
from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from appliance.dialer.campaign import CampaignConfig
from appliance.dialer.prospects import ImportReport, Lead
from appliance.store import dialer as dstore
from appliance.store.db import Store
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PeerError, PjPhone

ALWAYS = ["mon-sun 00:00-24:00"]
RATE = 8000


def dialer_config(carrier_port: int, agents: int, **queue: Any) -> dict[str, Any]:
    """Extensions 1001-1010; agents 3001.. (on phones 1001..), queue `outbound` (6100), trunk `carrier`."""
    cfg: dict[str, Any] = default_config()
    cfg["agents"] = [{"agent_id": str(3001 + i), "name": f"Agent {i + 1}", "pin": "1234", "skills": []}
                     for i in range(agents)]
    q = {"name": "outbound", "number": "6100", "strategy": "longest-idle", "wrapup_seconds": 1,
         "announce_seconds": 0, "join_empty": True, "leave_empty": False, "service_level_seconds": 20}
    q.update(queue)
    cfg["queues"] = [q]
    cfg["trunks"] = [{"name": "carrier", "host": "127.0.0.1", "port": carrier_port, "transport": "udp",
                      "caller_id": "+33140000050"}]
    return cfg


def seed_campaign(eng: Engine, numbers: list[str], settings: dict[str, str] | None = None,
                  **overrides: Any) -> CampaignConfig:
    """Import the engine's config, then store campaign `promo` with one lead per E.164 number."""
    if not eng._imported:
        eng.import_config()
    store = Store(eng.data_dir / "plateau.db")
    try:
        values: dict[str, Any] = {"name": "promo", "queue": "outbound", "trunk": "carrier", "mode": "progressive",
                                  "caller_id": "+33140000077", "windows": list(ALWAYS), "state": "running",
                                  "script": "Hello {first_name}, this is Plateau.", "retry_minutes": {"busy": 1},
                                  "amd": True}
        values.update(overrides)
        campaign = CampaignConfig(**values)
        dstore.put_campaign(store, campaign)
        leads = [Lead(i + 2, n, "Europe/Paris", {"first_name": f"Lead{i}"}) for i, n in enumerate(numbers)]
        dstore.add_list(store, campaign.name, "test", leads, ImportReport(rows=len(leads), imported=len(leads)))
        for name, value in (settings or {}).items():
            store.set_setting(name, value)
        return campaign
    finally:
        store.close()


def db_rows(eng: Engine, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(eng.data_dir / "plateau.db")
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def attempts(eng: Engine) -> list[tuple[str, str | None, str | None, float | None, str | None]]:
    """(number, outcome, amd, connected_at, agent) of every dial attempt, oldest first."""
    return db_rows(eng, "SELECT number, outcome, amd, connected_at, agent FROM dial_attempts ORDER BY id")


def audit(eng: Engine) -> list[tuple[str, str, str]]:
    """(decision, reason, number) of every dialer audit row, oldest first."""
    return db_rows(eng, "SELECT decision, reason, number FROM dialer_audit ORDER BY id")


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout}s")
        time.sleep(0.1)


# -- audio -----------------------------------------------------------------------------------
def _write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(RATE)
        wf.writeframes(samples.astype("<i2").tobytes())
    return path


def _speech_like(seconds: float, seed: int, syllables: bool = True) -> np.ndarray:
    """Voiced sound (a 120 Hz glottal-ish harmonic series), cut into 4 syllables a second or one word."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllable = (np.sin(2 * np.pi * 4 * t) > -0.2).astype(float) if syllables else np.ones(t.size)
    noise = rng.normal(0, 0.05, t.size)
    return 6000 * (voice / 3 * syllable + noise)


def human_wav(path: Path, tone_hz: float, seconds: float = 40.0) -> Path:
    """Picks up (0.5 s of line noise), 'Hello?' (one 0.5 s word), 2 s of line noise, then a steady tone
    for the test's Goertzel. The noise lets the detector's noise-floor tracker settle as on a real line."""
    rng = np.random.default_rng(3)
    hello = np.concatenate([rng.normal(0, 30, RATE // 2), _speech_like(0.5, 1, syllables=False)])
    silence = rng.normal(0, 30, 2 * RATE)
    t = np.arange(int((seconds - 3.0) * RATE)) / RATE
    return _write(path, np.concatenate([hello, silence, 8000 * np.sin(2 * np.pi * tone_hz * t)]))


def machine_wav(path: Path, seconds: float = 20.0) -> Path:
    """A long answering-machine greeting: continuous speech with short pauses, then a beep."""
    speech = _speech_like(seconds - 1.0, 2)
    t = np.arange(int(0.5 * RATE)) / RATE
    return _write(path, np.concatenate([speech, 9000 * np.sin(2 * np.pi * 1000 * t), np.zeros(RATE // 2)]))


# -- the carrier -------------------------------------------------------------------------------
@dataclass
class Carrier:
    """The PSTN behind the trunk: `behaviour` maps a dialled number to answer/busy/ring/machine."""

    phone: PjPhone
    behaviour: dict[str, str]
    wavs: dict[str, Path]
    record_dir: Path
    seen: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                call = self.phone.wait_incoming(timeout=0.3)
            except PeerError:
                continue
            try:
                self._handle(call)
            except PeerError as exc:
                self.errors.append(str(exc))

    def _handle(self, call: int) -> None:
        uri = self.phone.incoming_info(call)["local_uri"]
        number = uri.split("sip:", 1)[1].split("@", 1)[0]
        self.seen.append(number)
        self.calls[number] = call
        kind = self.behaviour.get(number, "busy")
        if kind == "busy":
            self.phone.reject(call, 486)
        elif kind == "answer":
            self.phone.answer(call, play_wav=self.wavs["human"], record_wav=self.record_dir / f"{number}.wav")
        elif kind == "machine":
            self.phone.answer(call, play_wav=self.wavs["machine"], record_wav=self.record_dir / f"{number}.wav")
        # "ring": leave it ringing until the dialer gives up

    def stop(self) -> None:
        self._stop.set()


@contextlib.contextmanager
def carrier(work: Path, behaviour: dict[str, str], tone_hz: float = 440.0) -> Iterator[Carrier]:
    work.mkdir(parents=True, exist_ok=True)
    wavs = {"human": human_wav(work / "human.wav", tone_hz), "machine": machine_wav(work / "machine.wav")}
    with PjPhone("carrier") as phone:
        net = Carrier(phone, behaviour, wavs, work)
        thread = threading.Thread(target=net.run, name="carrier", daemon=True)
        thread.start()
        try:
            yield net
        finally:
            net.stop()
            thread.join(2.0)
