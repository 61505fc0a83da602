"""A caller waiting in a queue: their place (`Waiting`), and what they hear meanwhile (the
queue's music, the periodic announcement of position and expected wait).

The distributor (appliance/pbx/distributor.py) keeps the places and decides when to speak;
this module holds the record and the texts and sounds, which need nothing of the PBX.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from appliance.media.tones import ToneSpec
from appliance.pbx.channel import Party
from appliance.pbx.ports import QueueCall
from appliance.pbx.prompter import Prompter
from appliance.store.models import QueueConfig

log = logging.getLogger("plateau.acd")
C = TypeVar("C", bound=QueueCall)  # the PBX's call class


@dataclass
class Waiting(Generic[C]):
    """One caller in a queue: on the line (`call`), or gone with a callback promised."""

    entry_id: str
    queue: str
    caller: Party
    priority: int
    entered_at: float
    call: C | None
    callback_id: int | None = None
    next_announce: float | None = None
    prompter: Prompter | None = None  # an announcement or the callback confirmation is playing
    interaction_id: int | None = None  # a callback's interaction (a live caller's is on its call)


def announcement_text(position: int, expected_wait: float | None, callback_key: str | None) -> str:
    """What a waiting caller is told: position, expected wait rounded up to minutes, callback offer."""
    text = f"You are caller number {position}."
    if expected_wait is not None:
        minutes = int(-(-expected_wait // 60))
        text += (" Your expected wait is less than a minute." if expected_wait < 60 else
                 f" Your expected wait is about {minutes} minute{'s' if minutes != 1 else ''}.")
    if callback_key:
        text += f" To be called back without losing your place, press {callback_key}."
    return text


def queue_music(cfg: QueueConfig, sounds_dir: Path | None, default: Callable[[], ToneSpec | str]) -> ToneSpec | str:
    """The music a caller waiting in `cfg` hears: the queue's own WAV in the sounds directory, else
    (none set, or the file is missing: logged) the PBX's default music on hold."""
    if cfg.moh:
        path = (sounds_dir or Path(".")) / cfg.moh
        if path.exists():
            return str(path)
        log.error("queue %s: music %s not found, using the default", cfg.name, path)
    return default()
