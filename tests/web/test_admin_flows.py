"""Admin IVR flows, business hours, prompts and settings through the Flask client."""
from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
from flask import Flask
from flask.testing import FlaskClient

from appliance.ivr.flow import load_flow
from appliance.store import acd
from appliance.store.db import Store
from appliance.store.models import Extension, QueueConfig
from tests.web.conftest import FakeEngineApi
from tests.web.test_admin_config import audit_rows, post, reloads, with_store

EXAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "ivr" / "examples"


def flows_of(app: Flask) -> Path:
    return Path(app.config["DATA_DIR"]) / "flows"


def seed_demo_site(store: Store) -> None:
    """The queues and the mailbox the demo flow routes to: a flow's targets must exist to publish."""
    if store.get_extension("1001") is None:
        store.put_extension(Extension(number="1001", name="Reception", secret="s3cret-pass", voicemail=True))
    for name in ("sales-fr", "sales-en", "support"):
        if acd.get_queue(store, name) is None:
            acd.put_queue(store, QueueConfig(name=name))


def publish_demo(app: Flask) -> str:
    with_store(app, seed_demo_site)
    text = (EXAMPLES / "demo.yaml").read_text(encoding="utf-8")
    flows_of(app).mkdir(parents=True, exist_ok=True)
    (flows_of(app) / "demo.yaml").write_text(text, encoding="utf-8")
    return text


def test_flow_list_and_editor_show_the_published_flow(app: Flask, admin: FlaskClient) -> None:
    publish_demo(app)
    page = admin.get("/admin/flows/").get_data(as_text=True)
    assert "demo" in page and "v1" in page and "Main inbound line" in page
    page = admin.get("/admin/flows/demo").get_data(as_text=True)
    assert "check_hours" in page and "published v1" in page


def test_a_broken_flow_is_refused_with_node_and_field(app: Flask, admin: FlaskClient,
                                                     engine_api: FakeEngineApi) -> None:
    text = publish_demo(app)
    broken = text.replace("1: sales_menu", "1: salse_menu").replace("timeout: 8", "timeout: 800")
    resp = post(admin, "/admin/flows/demo", {"text": broken, "action": "save"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "nodes.support_number.timeout" in page and "must be between 0.5 and 120" in page
    assert "salse_menu" in page  # the user's text is kept in the editor
    assert (flows_of(app) / "demo.yaml").read_text(encoding="utf-8") == text
    assert not list(flows_of(app).glob("demo.v*.yaml")) and reloads(engine_api) == 0
    # The graph check names the field of a dangling reference.
    resp = post(admin, "/admin/flows/demo", {"text": text.replace("1: sales_menu", "1: salse_menu"),
                                             "action": "save"})
    assert resp.status_code == 400 and "nodes.main_menu.options.1" in resp.get_data(as_text=True)
    # A document renamed in the editor is refused: the name is the file name.
    resp = post(admin, "/admin/flows/demo", {"text": text.replace("name: demo", "name: other"), "action": "save"})
    assert resp.status_code == 400 and "must stay" in resp.get_data(as_text=True)


def test_publishing_keeps_the_previous_version_and_reloads(app: Flask, admin: FlaskClient,
                                                          engine_api: FakeEngineApi) -> None:
    text = publish_demo(app)
    edited = text.replace("Welcome to Plateau.", "Welcome to Plateau, version two.")
    resp = post(admin, "/admin/flows/demo", {"text": edited, "action": "save"}, follow_redirects=True)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "version 2 published" in page and "Version 1 is kept" in page
    published = (flows_of(app) / "demo.yaml").read_text(encoding="utf-8")
    assert load_flow(published).version == 2 and "version two" in published  # raised for the admin
    assert (flows_of(app) / "demo.v1.yaml").read_text(encoding="utf-8") == text
    assert not list(flows_of(app).glob(".*tmp")) and reloads(engine_api) == 1
    (row,) = audit_rows(app, "flow.update")
    assert row[1] == "demo" and row[2]["version"] == 1 and row[3]["version"] == 2
    # The kept version is listed and viewable; the engine's glob still sees only demo.yaml as "demo".
    assert admin.get("/admin/flows/demo/v1").status_code == 200
    assert "demo.v1" not in admin.get("/admin/flows/").get_data(as_text=True).replace('href="/admin/flows/demo/v1"', "")
    # A new flow from the list starts from a valid example and is created on publish.
    resp = post(admin, "/admin/flows/new", {"name": "night"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin/flows/night")
    skeleton = admin.get("/admin/flows/night").get_data(as_text=True)
    assert "name: night" in skeleton
    assert post(admin, "/admin/flows/new", {"name": "bad name"}).status_code == 400
    assert post(admin, "/admin/flows/new", {"name": "demo"}).status_code == 400


def test_create_a_flow_and_validate_without_publishing(app: Flask, admin: FlaskClient) -> None:
    text = "name: night\nversion: 1\nstart: bye\nnodes:\n  bye:\n    type: hangup\n"
    resp = post(admin, "/admin/flows/night", {"text": text, "action": "validate"}, follow_redirects=True)
    assert resp.status_code == 200 and "is valid" in resp.get_data(as_text=True)
    assert not (flows_of(app) / "night.yaml").exists()
    resp = post(admin, "/admin/flows/night", {"text": text, "action": "save"})
    assert resp.status_code == 302 and (flows_of(app) / "night.yaml").read_text() == text
    assert audit_rows(app, "flow.create")[0][1] == "night"


def test_simulator_walks_the_text_being_edited(app: Flask, admin: FlaskClient) -> None:
    text = publish_demo(app)
    form = {"text": text, "action": "test", "digits": "1, 2", "caller": "+33612345678", "at": "2026-11-23T10:00"}
    resp = post(admin, "/admin/flows/demo", form)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "route queue:sales-en" in page and "sales_menu" in page and "-&gt; sales_en" in page
    # Closed on a Sunday: straight to voicemail, no key asked.
    resp = post(admin, "/admin/flows/demo", {**form, "at": "2026-11-22T10:00", "digits": ""})
    assert "route voicemail:1001" in resp.get_data(as_text=True)
    # The card number typed at a sensitive node is masked in the walk.
    resp = post(admin, "/admin/flows/demo", {**form, "digits": "2, 123456, 1, 4111111111111111"})
    walk = resp.get_data(as_text=True).split('<div class="transcript">')[1]
    assert "route queue:support" in walk and "4111111111111111" not in walk and "****" in walk
    resp = post(admin, "/admin/flows/demo", {**form, "at": "tomorrow"})
    assert resp.status_code == 400 and "is not a date and time" in resp.get_data(as_text=True)
    resp = post(admin, "/admin/flows/demo", {**form, "digits": "1, x"})
    assert resp.status_code == 400 and "is not DTMF keys" in resp.get_data(as_text=True)
    assert (flows_of(app) / "demo.yaml").read_text(encoding="utf-8") == text  # testing publishes nothing


def test_hours_page_lists_each_flows_hours_and_holidays(app: Flask, admin: FlaskClient) -> None:
    publish_demo(app)
    page = admin.get("/admin/hours/").get_data(as_text=True)
    assert "Europe/Paris" in page and "mon-fri 08:30-18:00" in page and "2026-12-25" in page and "05-01" in page
    assert "check_hours" in page


def wav_bytes(rate: int = 8000, channels: int = 1, width: int = 2, seconds: float = 0.2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        n = int(rate * seconds)
        tone = (np.sin(np.arange(n) * 2 * np.pi * 440 / rate) * 8000).astype(np.int16)
        frames = np.repeat(tone, channels).tobytes() if width == 2 else bytes(n * channels * width)
        w.writeframes(frames)
    return buf.getvalue()


def test_wav_upload_accepted_and_refused(app: Flask, admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    sounds = Path(app.config["DATA_DIR"]) / "sounds"
    resp = post(admin, "/admin/prompts/upload", {"file": (io.BytesIO(wav_bytes(16000)), "Welcome Message.wav")},
                content_type="multipart/form-data")
    assert resp.status_code == 302
    assert (sounds / "Welcome-Message.wav").read_bytes() == wav_bytes(16000) and reloads(engine_api) == 1
    assert audit_rows(app, "prompt.upload")[0][1] == "Welcome-Message"
    page = admin.get("/admin/prompts/").get_data(as_text=True)
    assert "Welcome-Message.wav" in page and "16000 Hz" in page
    assert admin.get("/admin/prompts/Welcome-Message.wav").data == wav_bytes(16000)
    for data, reason in ((wav_bytes(8000, channels=2), "must be mono"), (wav_bytes(44100), "8000 or 16000 Hz"),
                         (wav_bytes(8000, width=1), "must be 16-bit"), (b"RIFF nonsense", "not a PCM WAV")):
        resp = post(admin, "/admin/prompts/upload", {"name": "bad", "file": (io.BytesIO(data), "bad.wav")},
                    content_type="multipart/form-data")
        assert resp.status_code == 400 and reason in resp.get_data(as_text=True), reason
    assert not (sounds / "bad.wav").exists()
    resp = post(admin, "/admin/prompts/upload", {"name": "../etc", "file": (io.BytesIO(wav_bytes()), "x.wav")},
                content_type="multipart/form-data")
    assert resp.status_code == 400 and not list(sounds.parent.glob("etc*"))
    resp = post(admin, "/admin/prompts/Welcome-Message/delete")
    assert resp.status_code == 302 and not (sounds / "Welcome-Message.wav").exists()
    assert audit_rows(app, "prompt.delete")[0][2]["file"] == "Welcome-Message.wav"


def test_text_prompt_is_spoken_into_a_playable_wav(app: Flask, admin: FlaskClient) -> None:
    resp = post(admin, "/admin/prompts/tts", {"tts_name": "closed", "text": "We are closed."})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    with wave.open(str(Path(app.config["DATA_DIR"]) / "sounds" / "closed.wav"), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000) and w.getnframes() > 1600
    resp = post(admin, "/admin/prompts/tts", {"tts_name": "", "text": ""})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "type the words to speak" in page and "letters, digits" in page


def test_settings_validate_everything_before_saving(app: Flask, admin: FlaskClient,
                                                    engine_api: FakeEngineApi) -> None:
    with_store(app, lambda s: [s.put_extension(Extension("1001", "Ann", "s3cret-pass", voicemail=True)),
                               s.put_extension(Extension("1004", "Sup", "s3cret-pass"))])
    page = admin.get("/admin/settings/").get_data(as_text=True)
    assert 'value="90"' in page and "1001 · Ann" in page
    bad = {"recording.retention_days": "-1", "acd.supervisors": "1004, 1999", "pin_1001": "12"}
    resp = post(admin, "/admin/settings/", bad)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "from 0 to 3650" in page and "no extension 1999" in page and "4-8 digits" in page
    assert 'value="1004, 1999"' in page  # the input is kept
    assert with_store(app, lambda s: s.settings()) == {} and reloads(engine_api) == 0
    good = {"recording.retention_days": "30", "acd.supervisors": "1004", "pin_1001": "2468"}
    resp = post(admin, "/admin/settings/", good)
    assert resp.status_code == 302
    assert with_store(app, lambda s: s.settings()) == {
        "acd.supervisors": "1004", "recording.retention_days": "30", "voicemail.pin.1001": "2468"}
    rows = {r[1]: r for r in audit_rows(app, "setting.update")}
    assert rows["voicemail.pin.1001"][3] == {"value": "****"} and rows["recording.retention_days"][3]["value"] == "30"
    assert reloads(engine_api) == 1
    resp = post(admin, "/admin/settings/", {**good, "pin_1001": "", "clear_1001": "1"})
    assert resp.status_code == 302 and "voicemail.pin.1001" not in with_store(app, lambda s: s.settings())
