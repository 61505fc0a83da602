"""System pages: health (engine up and down), backup download, restore (round trip, refusals that change
nothing), admin only."""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import wave
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.store.config_yaml import export_config
from appliance.store.demo import seed_demo
from appliance.store.models import Extension
from tests.web.conftest import FakeEngineApi, store_of

EXAMPLE_FLOW = Path(__file__).resolve().parents[2] / "appliance" / "ivr" / "examples" / "reception.yaml"


def _csrf(client: FlaskClient) -> str:
    return str(client.csrf)  # type: ignore[attr-defined]


def _wav(channels: int = 1, rate: int = 8000, frames: int = 800) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * frames * channels)
    return buf.getvalue()


def _populate(app: Flask) -> Path:
    """The demo configuration, its reception flow and two prompts."""
    data = Path(app.config["DATA_DIR"])
    store = store_of(app)
    try:
        seed_demo(store)
    finally:
        store.close()
    (data / "flows").mkdir()
    shutil.copyfile(EXAMPLE_FLOW, data / "flows" / "reception.yaml")
    (data / "sounds" / "greetings").mkdir(parents=True)
    (data / "sounds" / "moh.wav").write_bytes(_wav())
    (data / "sounds" / "greetings" / "welcome.wav").write_bytes(_wav(rate=16000))
    return data


def _config(app: Flask) -> str:
    store = store_of(app)
    try:
        return export_config(store)
    finally:
        store.close()


def _snapshot(app: Flask) -> tuple[str, dict[str, bytes]]:
    """Configuration and every file under flows/ and sounds/: what a refused restore must not touch."""
    data = Path(app.config["DATA_DIR"])
    files = {p.relative_to(data).as_posix(): p.read_bytes() for part in ("flows", "sounds")
             for p in sorted((data / part).rglob("*")) if p.is_file()}
    return _config(app), files


def _download(admin: FlaskClient, **form: str) -> bytes:
    resp = admin.post("/system/backup", data={"csrf_token": admin.csrf, **form})  # type: ignore[attr-defined]
    assert resp.status_code == 200 and resp.mimetype == "application/gzip"
    assert "attachment" in resp.headers["Content-Disposition"]
    return resp.get_data()


def _upload(admin: FlaskClient, blob: bytes, name: str = "backup.tar.gz") -> tuple[int, str]:
    resp = admin.post("/system/restore", data={"csrf_token": admin.csrf,  # type: ignore[attr-defined]
                                               "archive": (io.BytesIO(blob), name)},
                      content_type="multipart/form-data")
    return resp.status_code, resp.get_data(as_text=True)


def _archive(members: dict[str, bytes], *, manifest: bool = True, extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A tar.gz with `members` and a manifest listing their checksums."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        if manifest:
            doc = {"format": "plateau-backup", "format_version": 1, "version": "test", "created_at": "now",
                   "files": {n: hashlib.sha256(d).hexdigest() for n, d in members.items()}}
            members = {"manifest.json": json.dumps(doc).encode(), **members}
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return out.getvalue()


def _confirmed(admin: FlaskClient, token: str) -> dict[str, str]:
    """The form of "Restore now" with its confirmation ticked."""
    return {"csrf_token": _csrf(admin), "token": token, "confirm": "yes"}


def _members(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


# -- access -------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["supervisor", "agent"])
def test_system_pages_are_admin_only(role: str, request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue(role)
    for path in ("/system/", "/system/backup"):
        assert client.get(path).status_code == 403
    for path in ("/system/backup", "/system/restore", "/system/restore/apply"):
        assert client.post(path, data={"csrf_token": client.csrf}).status_code == 403


# -- health -------------------------------------------------------------------------------------
def test_health_shows_engine_trunks_calls_disk_database(app: Flask, admin: FlaskClient,
                                                        engine_api: FakeEngineApi) -> None:
    engine_api.responses[("GET", "/v1/status")] = {
        "version": "0.1.0", "uptime": 7300.0, "hostname": "pbx1", "calls": 3, "registrations": 17, "blocked": 1,
        "trunks": [{"name": "carrier", "enabled": True, "register": True, "state": "registered", "detail": "",
                    "expires_in": 1800},
                   {"name": "backup", "enabled": True, "register": True, "state": "failed", "detail": "403 Forbidden",
                    "expires_in": None}]}
    page = admin.get("/system/").get_data(as_text=True)
    assert "Engine running" in page and "2 h 1 min" in page and "pbx1" in page
    assert re.search(r'id="calls">3<', page) and re.search(r'id="registrations">17<', page)
    assert "1 / 2" in page  # trunks up
    assert "carrier" in page and "expires in 1800 s" in page and "403 Forbidden" in page
    assert "free of" in page and "KiB" in page  # disk and database size
    assert ("GET", "/v1/status", None) in engine_api.requests


def test_health_shows_each_engine_part_its_deaths_and_restarts(admin: FlaskClient,
                                                               engine_api: FakeEngineApi) -> None:
    """The supervision section of /v1/status, as the engine's own Supervisor writes it."""
    from appliance.system.liveness import Heartbeat
    from appliance.system.supervisor import Supervisor

    sender, media = Heartbeat(), Heartbeat()
    sender.died(OverflowError("sendto(): port must be 0-65535."))
    sender.restarted()
    media.died("media process 4242 killed by SIGKILL")
    sup = Supervisor(ping=lambda: None)
    sup.add("sip", lambda: [sender.health("sip-udp-send", True)])
    sup.add("media", lambda: [media.health("media", False)])
    status = sup.status()
    engine_api.responses[("GET", "/v1/status")] = {"version": "0.1.0", "uptime": 5.0, "supervision": status}
    page = admin.get("/system/").get_data(as_text=True)
    assert 'id="supervision"' in page and "sip-udp-send" in page
    assert "OverflowError: sendto(): port must be 0-65535." in page
    assert "media is dead (media process 4242 killed by SIGKILL)" in page and "watchdog pings withheld" in page
    assert "2 deaths, 1 restarts" in page


def test_engine_down_is_shown_not_a_500(admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    engine_api.responses[("GET", "/v1/status")] = ApiUnavailable("connection refused")
    resp = admin.get("/system/")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Engine not running" in page and "connection refused" in page
    assert "free of" in page  # what the web app can see itself is still shown
    engine_api.responses[("GET", "/v1/status")] = ApiError(500, "boom")
    page = admin.get("/system/").get_data(as_text=True)
    assert "Engine not running" in page and "boom" in page


# -- backup and restore -------------------------------------------------------------------------
def test_backup_then_restore_round_trip(app: Flask, admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    data = _populate(app)
    original = _snapshot(app)
    assert admin.get("/system/backup").status_code == 200
    blob = _download(admin)
    members = _members(blob)
    # The web's backup is the CLI's: the database too (issue 15: it held the configuration only).
    assert set(members) == {"manifest.json", "config.yaml", "flows/reception.yaml", "sounds/moh.wav",
                            "sounds/greetings/welcome.wav", "database.sqlite"}
    manifest = json.loads(members["manifest.json"])
    assert manifest["format"] == "plateau-backup" and manifest["version"] and manifest["created_at"]

    # Change things after the backup: a new extension, a lost flow, an extra prompt.
    store = store_of(app)
    try:
        store.put_extension(Extension(number="1099", name="Temp", secret="s3cret-s3cret"))
    finally:
        store.close()
    (data / "flows" / "reception.yaml").unlink()
    (data / "flows" / "extra.yaml").write_text(EXAMPLE_FLOW.read_text().replace("name: reception", "name: extra"))
    (data / "sounds" / "new.wav").write_bytes(_wav())

    status, page = _upload(admin, blob)
    assert status == 200 and "is a valid backup" in page
    assert re.search(r"Extensions removed: <strong>1099</strong>", page)
    assert "Flows removed: <strong>extra.yaml</strong>" in page and "new.wav" in page
    assert _config(app) != original[0]  # checking changed nothing yet
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]

    resp = admin.post("/system/restore/apply", data=_confirmed(admin, token))
    assert resp.status_code == 302
    assert _snapshot(app) == original
    assert ("POST", "/v1/reload", None) in engine_api.requests
    flash = admin.get("/system/").get_data(as_text=True)
    assert "restored: 10 extensions" in flash and "The engine reloaded it." in flash
    assert not list((data / "restore-pending").iterdir()) and not list(data.glob(".restore-*"))
    store = store_of(app)
    try:
        actions = [r[0] for r in store.query("SELECT action FROM audit_log ORDER BY id")]
        row = store.query("SELECT before_json, after_json FROM audit_log WHERE action = 'restore.apply'")[0]
    finally:
        store.close()
    assert "backup.download" in actions and "restore.apply" in actions
    assert '"extensions": 11' in row[0] and '"extensions": 10' in row[1]
    # The token is used up.
    assert admin.post("/system/restore/apply", data=_confirmed(admin, token)).status_code == 400


def test_restore_with_the_engine_down_still_applies(app: Flask, admin: FlaskClient,
                                                    engine_api: FakeEngineApi) -> None:
    _populate(app)
    blob = _download(admin)
    engine_api.responses[("POST", "/v1/reload")] = ApiUnavailable("refused")
    _, page = _upload(admin, blob)
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    assert admin.post("/system/restore/apply", data=_confirmed(admin, token)).status_code == 302
    assert "takes the restored configuration when it starts" in admin.get("/system/").get_data(as_text=True)


def test_backup_with_recordings_restores_missing_ones(app: Flask, admin: FlaskClient) -> None:
    data = _populate(app)
    rec = data / "recordings" / "2025" / "01" / "02" / "101010-call1-queue.wav"
    rec.parent.mkdir(parents=True)
    rec.write_bytes(_wav(channels=2))
    store = store_of(app)
    try:
        store.execute("INSERT INTO recordings (call_id, path, mode, reason, started_at, ended_at)"
                    " VALUES ('call1', '2025/01/02/101010-call1-queue.wav', 'stereo', 'queue', 1.0, 2.0)")
    finally:
        store.close()
    assert "recordings/2025/01/02/101010-call1-queue.wav" not in _members(_download(admin))
    blob = _download(admin, include_recordings="1")
    members = _members(blob)
    assert "recordings/2025/01/02/101010-call1-queue.wav" in members
    assert json.loads(members["recordings.json"])[0]["call_id"] == "call1"
    rec.unlink()
    store = store_of(app)
    try:
        store.execute("DELETE FROM recordings")
    finally:
        store.close()
    _, page = _upload(admin, blob)
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    admin.post("/system/restore/apply", data=_confirmed(admin, token))
    assert rec.read_bytes() == members["recordings/2025/01/02/101010-call1-queue.wav"]
    store = store_of(app)
    try:
        assert store.query("SELECT call_id, mode FROM recordings") == [("call1", "stereo")]
    finally:
        store.close()


def _refused(app: Flask, admin: FlaskClient, engine_api: FakeEngineApi, blob: bytes, *why: str) -> None:
    before = _snapshot(app)
    status, page = _upload(admin, blob)
    assert status == 400 and "nothing was changed" in page, page
    for text in why:
        assert text in page, (text, page)
    assert _snapshot(app) == before
    assert ("POST", "/v1/reload", None) not in engine_api.requests
    assert not list((Path(app.config["DATA_DIR"]) / "restore-pending").iterdir())


def test_corrupt_archives_are_refused_and_change_nothing(app: Flask, admin: FlaskClient,
                                                         engine_api: FakeEngineApi) -> None:
    _populate(app)
    good = _download(admin)
    _refused(app, admin, engine_api, b"this is not an archive", "not a readable tar.gz archive")
    _refused(app, admin, engine_api, good[: len(good) // 2], "not a readable tar.gz archive")
    members = _members(good)
    del members["manifest.json"]
    _refused(app, admin, engine_api, _archive(members, manifest=False), "manifest.json: missing")
    tampered = dict(_members(good))
    tampered["config.yaml"] += b"\n# edited\n"
    _refused(app, admin, engine_api, _archive(tampered, manifest=False), "config.yaml: checksum does not match")
    # Each part is checked with its own validator, and every problem is listed at once.
    cfg = members["config.yaml"].replace(b"trunk: demo-trunk", b"trunk: nowhere")
    bad = {**members, "config.yaml": cfg, "flows/broken.yaml": b"name: broken\nversion: 1\nstart: a\nnodes: {}\n",
           "sounds/noise.wav": b"RIFF not really", "sounds/stereo.wav": _wav(channels=2)}
    _refused(app, admin, engine_api, _archive(bad), "trunk &#39;nowhere&#39; is not defined", "flows/broken.yaml:",
             "sounds/noise.wav: not a readable WAV", "sounds/stereo.wav: a prompt must be mono")
    _refused(app, admin, engine_api, _archive({**members, "notes.txt": b"hi"}), "notes.txt: not part of a Plateau")
    status, page = _upload(admin, b"")
    assert status == 400
    resp = admin.post("/system/restore", data={"csrf_token": admin.csrf})  # type: ignore[attr-defined]
    assert resp.status_code == 400 and "Choose a backup archive" in resp.get_data(as_text=True)
    store = store_of(app)
    try:
        assert store.query("SELECT COUNT(*) FROM audit_log WHERE action = 'restore.refused'")[0][0] >= 7
    finally:
        store.close()


def test_path_escapes_and_links_are_refused(app: Flask, admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    data = _populate(app)
    members = _members(_download(admin))
    escape = {**members, "flows/../../escaped.yaml": members["flows/reception.yaml"]}
    _refused(app, admin, engine_api, _archive(escape), "path escapes the archive")
    _refused(app, admin, engine_api, _archive({**members, "/etc/cron.d/x": b"x"}), "absolute")
    link = tarfile.TarInfo("sounds/moh.wav")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    without = {k: v for k, v in members.items() if k != "sounds/moh.wav"}
    _refused(app, admin, engine_api, _archive(without, extra=[link]), "links are not allowed")
    hard = tarfile.TarInfo("flows/x.yaml")
    hard.type, hard.linkname = tarfile.LNKTYPE, "config.yaml"
    _refused(app, admin, engine_api, _archive(members, extra=[hard]), "links are not allowed")
    fifo = tarfile.TarInfo("sounds/fifo.wav")
    fifo.type = tarfile.FIFOTYPE
    _refused(app, admin, engine_api, _archive(members, extra=[fifo]), "only regular files")
    assert not (data.parent / "escaped.yaml").exists() and not (data / "escaped.yaml").exists()


def test_apply_needs_the_pending_token(admin: FlaskClient) -> None:
    for token in ("", "not-hex", "0" * 32):
        resp = admin.post("/system/restore/apply", data=_confirmed(admin, token))
        assert resp.status_code == 400 and "upload the archive again" in resp.get_data(as_text=True)


def test_restore_shows_the_differences_and_restores_nothing_unconfirmed(app: Flask, admin: FlaskClient) -> None:
    _populate(app)
    blob = _download(admin)
    store = store_of(app)
    try:
        store.put_extension(Extension(number="1099", name="Temp", secret="Kx7-temp-secret-value"))
        store.set_setting("recording.retention_days", "45")
    finally:
        store.close()
    changed = _snapshot(app)

    status, page = _upload(admin, blob)
    assert status == 200
    assert re.search(r'<tr class="removed" data-section="extensions" data-key="1099">', page)
    assert re.search(r'<tr class="removed" data-section="settings" data-key="recording.retention_days">', page)
    assert 'data-table="cdr"' in page and 'name="confirm" value="yes" required' in page
    assert "Kx7-temp-secret-value" not in page  # a diff names fields, never a secret's value
    token = re.search(r'name="token" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]

    # "Restore now" without the tick: refused, the differences shown again, nothing changed.
    resp = admin.post("/system/restore/apply", data={"csrf_token": _csrf(admin), "token": token})
    assert resp.status_code == 400
    again = resp.get_data(as_text=True)
    assert "Tick the box to confirm" in again and 'data-key="1099"' in again
    assert _snapshot(app) == changed

    # The archive is still pending: confirming now restores it.
    assert admin.post("/system/restore/apply", data=_confirmed(admin, token)).status_code == 302
    assert _snapshot(app) != changed


def test_the_schedule_form_shows_every_error_then_saves_and_failed_runs_show(app: Flask, admin: FlaskClient,
                                                                             tmp_path: Path) -> None:
    from appliance.store import backups

    form = {"csrf_token": _csrf(admin), "directory": "usb", "every_hours": "0", "keep_count": "x",
            "keep_days": "7"}
    resp = admin.post("/system/backup/schedule", data=form)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert all(f'id="err-{n}"' in page for n in ("directory", "every_hours", "keep_count"))
    assert 'id="err-keep_days"' not in page and 'value="usb"' in page  # what was typed is kept

    target = tmp_path / "usb"
    target.mkdir()
    form.update(directory=str(target), every_hours="12", keep_count="5", require_mount="yes")
    assert admin.post("/system/backup/schedule", data=form).status_code == 302
    store = store_of(app)
    try:
        settings = store.settings()
        assert (settings["backup.dir"], settings["backup.every_hours"], settings["backup.keep_count"],
                settings["backup.require_mount"]) == (str(target), "12", "5", "yes")
        run = backups.start_run(store, 1_700_000_000.0)
        backups.finish_run(store, run, 1_700_000_001.0, ok=False, error=f"{target} is not mounted")
    finally:
        store.close()
    page = admin.get("/system/backup").get_data(as_text=True)
    assert "failed: " + f"{target} is not mounted" in page
    health = admin.get("/system/").get_data(as_text=True)
    assert 'id="backup-alert"' in health and "the last scheduled backup failed" in health
