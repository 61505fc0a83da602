"""Prompts: WAV files under data/sounds/, uploaded (checked with the wave module) or spoken by
espeak-ng through the engine's own PromptCache.

The media engine plays 16-bit mono PCM at 8 or 16 kHz; anything else is refused at upload with the
reason, rather than failing silently during a call.
"""
from __future__ import annotations

import io
import os
import re
import wave
from dataclasses import dataclass
from pathlib import Path

from flask import abort, current_app, flash, redirect, render_template, request, send_from_directory, url_for
from werkzeug.wrappers import Response

from appliance.ivr.tts import PromptCache, TtsError
from appliance.store import acd
from appliance.schema.errors import RecordInvalid, invalid
from web.admin import bp
from web.admin.forms import reload_engine
from web.context import audit, login_required, store

PROMPT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RATES = (8000, 16000)
MAX_TTS_TEXT = 1000


@dataclass
class PromptInfo:
    name: str
    seconds: float
    rate: int
    channels: int
    bytes: int


def sounds_dir() -> Path:
    return Path(current_app.config["DATA_DIR"]) / "sounds"


def check_wav(data: bytes) -> tuple[int, float]:
    """(rate, seconds) of a WAV the media engine can play; RecordInvalid ``prompt.file: ...`` otherwise."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
    except (wave.Error, EOFError) as exc:
        raise invalid(f"not a PCM WAV file ({exc})", "prompt", "file") from None
    if channels != 1:
        raise invalid(f"{channels} channels; prompts must be mono", "prompt", "file")
    if width != 2:
        raise invalid(f"{8 * width}-bit samples; prompts must be 16-bit", "prompt", "file")
    if rate not in RATES:
        raise invalid(f"{rate} Hz; prompts must be 8000 or 16000 Hz", "prompt", "file")
    if frames == 0:
        raise invalid("the recording is empty", "prompt", "file")
    return rate, frames / rate


def prompt_infos() -> list[PromptInfo]:
    folder = sounds_dir()
    out = []
    for path in sorted(folder.glob("*.wav")) if folder.is_dir() else []:
        try:
            with wave.open(str(path), "rb") as w:
                rate, channels, frames = w.getframerate(), w.getnchannels(), w.getnframes()
        except (wave.Error, EOFError, OSError):
            rate, channels, frames = 0, 0, 0
        out.append(PromptInfo(path.stem, frames / rate if rate else 0.0, rate, channels, path.stat().st_size))
    return out


def _store_file(name: str, data: bytes) -> None:
    folder = sounds_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.wav.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, folder / f"{name}.wav")  # atomic: a call never plays half a prompt


def _page(errors: dict[str, str], form: dict[str, str], status: int = 200) -> tuple[str, int]:
    return render_template("admin/prompts.html", prompts=prompt_infos(), errors=errors, form=form), status


def _info(name: str) -> dict[str, object] | None:
    path = sounds_dir() / f"{name}.wav"
    if not path.is_file():
        return None
    return {"file": path.name, "bytes": path.stat().st_size}


@bp.route("/prompts/")
@login_required("admin")
def prompts() -> tuple[str, int]:
    return _page({}, {})


@bp.route("/prompts/upload", methods=["POST"])
@login_required("admin")
def prompt_upload() -> Response | tuple[str, int]:
    upload = request.files.get("file")
    name = request.form.get("name", "").strip()
    if not name and upload is not None and upload.filename:
        name = re.sub(r"[^A-Za-z0-9_-]", "-", Path(upload.filename).stem)[:64].strip("-")
    form = {"name": name}
    if not PROMPT_NAME_RE.match(name):
        return _page({"name": "letters, digits, '_' or '-', up to 64"}, form, 400)
    if upload is None or not upload.filename:
        return _page({"file": "choose a WAV file"}, form, 400)
    data = upload.read()
    try:
        rate, seconds = check_wav(data)
    except RecordInvalid as exc:
        return _page({"file": exc.errors[0].msg}, form, 400)
    before = _info(name)
    _store_file(name, data)
    audit("prompt.upload", name, before=before,
          after={**(_info(name) or {}), "rate": rate, "seconds": round(seconds, 2)})
    flash(f"Prompt {name}.wav saved ({seconds:.1f} s, {rate} Hz).")
    reload_engine()
    return redirect(url_for("admin.prompts"))


@bp.route("/prompts/tts", methods=["POST"])
@login_required("admin")
def prompt_tts() -> Response | tuple[str, int]:
    name, text = request.form.get("tts_name", "").strip(), request.form.get("text", "").strip()
    form = {"tts_name": name, "text": text}
    errors = {}
    if not PROMPT_NAME_RE.match(name):
        errors["tts_name"] = "letters, digits, '_' or '-', up to 64"
    if not text:
        errors["text"] = "type the words to speak"
    elif len(text) > MAX_TTS_TEXT or any(ord(c) < 32 and c not in "\n\t" for c in text):
        errors["text"] = f"up to {MAX_TTS_TEXT} characters of plain text"
    if errors:
        return _page(errors, form, 400)
    cache = PromptCache(Path(current_app.config["DATA_DIR"]) / "tts")
    try:
        rendered = cache.path_for(text)
    except TtsError as exc:
        return _page({"text": str(exc)}, form, 503)
    before = _info(name)
    _store_file(name, rendered.read_bytes())
    audit("prompt.tts", name, before=before, after={**(_info(name) or {}), "text": text})
    flash(f"Prompt {name}.wav spoken and saved.")
    reload_engine()
    return redirect(url_for("admin.prompts"))


@bp.route("/prompts/<name>.wav")
@login_required("admin")
def prompt_file(name: str) -> Response:
    if not PROMPT_NAME_RE.match(name) or not (sounds_dir() / f"{name}.wav").is_file():
        abort(404, description=f"no prompt {name}")
    return send_from_directory(sounds_dir(), f"{name}.wav", mimetype="audio/wav")


@bp.route("/prompts/<name>/delete", methods=["POST"])
@login_required("admin")
def prompt_delete(name: str) -> Response | tuple[str, int]:
    before = _info(name) if PROMPT_NAME_RE.match(name) else None
    if before is None:
        abort(404, description=f"no prompt {name}")
    users = [q.name for q in acd.queues(store()) if q.moh == f"{name}.wav"]
    if users:
        return _page({"": f"Not deleted: prompt {name}.wav is the music on hold of queue(s) {', '.join(users)}"},
                     {}, 409)
    (sounds_dir() / f"{name}.wav").unlink()
    audit("prompt.delete", name, before=before)
    flash(f"Prompt {name}.wav deleted.")
    reload_engine()
    return redirect(url_for("admin.prompts"))


