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
from tests.peers.polling import wait_until

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


wait_for = wait_until  # the tests here were written against this name


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


# -- a SIPp carrier with simulated answer rates (many concurrent calls) -------------------------
@dataclass(frozen=True)
class AnswerRates:
    """What a dialled number does, as probabilities: a person answers, a machine answers, it rings
    until the dialer gives up, or it is busy (the rest). `ring_s`: an answer comes after 1-4 s;
    `talk_s`: an answered callee hangs up this long after its answer (uas_dialer_carrier.xml), or
    after 60 s with `hold`."""

    human: float = 0.35
    machine: float = 0.10
    ring: float = 0.25
    answer_ring_s: tuple[float, float] = (1.0, 4.0)
    talk_s: float = 7.0
    hold: bool = False  # answered callees stay on the line (60 s) until the dialer's side hangs up

    @property
    def busy(self) -> float:
        return 1.0 - self.human - self.machine - self.ring


def write_ulaw_wav(path: Path, samples: np.ndarray) -> Path:
    """A mu-law WAV (format tag 7) that SIPp's rtp_stream sends as payload type 0."""
    from appliance.media.g711 import ulaw_encode

    data = ulaw_encode(np.clip(np.round(samples), -32768, 32767).astype(np.int16)).tobytes()
    fmt = ((7).to_bytes(2, "little") + (1).to_bytes(2, "little") + RATE.to_bytes(4, "little")
           + RATE.to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little"))
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" + len(data).to_bytes(4, "little") + data
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    return path


def amd_verdict(samples: np.ndarray) -> str:
    """The engine's detector (default parameters) on a whole clip: HUMAN, MACHINE or NOTSURE."""
    from appliance.dialer.amd import AmdDetector

    detector = AmdDetector()
    pcm = samples.astype(np.int16)
    for i in range(0, pcm.size - 159, 160):
        result = detector.feed(pcm[i:i + 160])
        if result is not None:
            return result.verdict.value
    return "NOTSURE"


def carrier_clips(work: Path) -> dict[str, Path]:
    """human.ulaw.wav ("Hello?" spoken by espeak-ng, then silence) and machine.ulaw.wav (a long
    voicemail greeting), 6 s each on a noisy line (tests/amd_corpus.py), each checked against the
    detector offline so a wrong verdict in the engine is the engine's."""
    from tests import amd_corpus

    cache = work / "espeak"
    cache.mkdir(parents=True, exist_ok=True)
    human, _, _ = amd_corpus.human(np.random.default_rng(2), cache, texts=("Hello?",))
    machine, _, _ = amd_corpus.machine(np.random.default_rng(2), cache, texts=(amd_corpus.MACHINE_TEXTS[0],))
    clips = {"human": human, "machine": machine}
    for kind, samples in clips.items():
        verdict = amd_verdict(samples)
        if verdict != kind.upper():
            raise AssertionError(f"the {kind} clip reads as {verdict} offline")
    return {kind: write_ulaw_wav(work / f"{kind}.ulaw.wav", samples) for kind, samples in clips.items()}


@contextlib.contextmanager
def sipp_carrier(work: Path, rates: AnswerRates) -> Iterator[Any]:
    """A SIPp UAS (tests/sipp/uas_dialer_carrier.xml) answering per `rates`; yields the SippProcess
    (its `.port` goes in the campaign trunk). Killed on exit, whatever happened."""
    from tests.peers.sipp import SippProcess

    work.mkdir(parents=True, exist_ok=True)
    carrier_clips(work)
    cumulative = {"p_human": rates.human, "p_machine": rates.human + rates.machine,
                  "p_ring": rates.human + rates.machine + rates.ring}
    extra = [a for name, p in cumulative.items() for a in ("-set", name, f"{p:.4f}")]
    extra += ["-set", "hold", "1" if rates.hold else "0"]
    with SippProcess("uas_dialer_carrier", workdir=work, extra_args=extra) as uas:
        yield uas


def seed_history(eng: Engine, campaign: str, count: int, rates: AnswerRates, *, hours: float = 4.0,
                 ring_timeout_s: float = 8.0, seed: int = 5) -> dict[str, int]:
    """`count` finished dial attempts of `campaign` spread over the last `hours`, drawn from `rates`
    with the carrier's ring times and the talk time its callees keep (answer -> AMD ~2.3 s -> agent
    -> hang-up at `talk_s`), none abandoned: the pacer starts out of its cold start. Returns the
    outcome counts. The rows have no lead (numbers no lead has), as leads deleted since would."""
    rng = np.random.default_rng(seed)
    now = time.time()
    counts: dict[str, int] = {}
    rows = []
    for i in range(count):
        placed = now - 3600.0 * hours + i * 3600.0 * hours / count
        r = rng.random()
        answered = connected = None
        agent = amd = ""
        if r < rates.human + rates.machine:
            answered = placed + rng.uniform(*rates.answer_ring_s) + 0.1
            if r < rates.human:
                outcome, amd, agent = "connected", "HUMAN", "3001"
                connected = answered + rng.uniform(2.0, 2.6)
                ended = answered + rates.talk_s + rng.uniform(0.0, 0.3)
            else:
                outcome, amd, ended = "machine", "MACHINE", answered + rng.uniform(2.0, 2.6)
        elif r < rates.human + rates.machine + rates.ring:
            outcome, ended = "no-answer", placed + ring_timeout_s
        else:
            outcome, ended = "busy", placed + 0.05
        counts[outcome] = counts.get(outcome, 0) + 1
        rows.append((campaign, f"+3361999{i:04d}", placed, answered, connected, ended, outcome, amd, agent))
    db = sqlite3.connect(eng.data_dir / "plateau.db")
    try:
        db.executemany("INSERT INTO dial_attempts (campaign, lead_id, number, call_id, placed_at, answered_at,"
                       " connected_at, ended_at, outcome, amd, agent) VALUES (?, NULL, ?, '', ?, ?, ?, ?, ?, ?, ?)",
                       rows)
        db.commit()
    finally:
        db.close()
    return counts
