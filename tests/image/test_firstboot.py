"""`plateau firstboot`, `--sip-ip auto` and `plateau health`: the commands the image's units run.

Everything runs the real CLI in a subprocess on a temporary data directory; the admin login is
tried on the real Flask app, the certificate with the openssl CLI, health against a real engine.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.system.firstboot import certificate_names, paths, run_firstboot
from appliance.system.netaddr import NoAddressError, default_route_source, resolve_sip_ip
from tests.peers.engine import Engine

REPO = Path(__file__).resolve().parents[2]


def plateau(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_mode, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """A data directory after one `plateau firstboot` run."""
    data = tmp_path_factory.mktemp("firstboot") / "data"
    res = plateau("firstboot", "--data-dir", str(data), "--hostname", "plateau-test")
    assert res.returncode == 0, res.stderr
    yield data, res


def test_firstboot_writes_private_files(booted: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    data, _ = booted
    p = paths(data)
    assert stat.S_IMODE(p["dir"].stat().st_mode) == 0o700
    for name in ("key", "password", "issue", "done"):
        assert stat.S_IMODE(p[name].stat().st_mode) == 0o600, name
    assert stat.S_IMODE(p["cert"].stat().st_mode) == 0o644


def test_firstboot_admin_password_logs_into_the_web_app(
        booted: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    from web import create_app

    data, res = booted
    password = paths(data)["password"].read_text().strip()
    assert len(password) >= 16
    assert password in res.stdout  # printed for the console (StandardOutput=journal+console)
    assert password in paths(data)["issue"].read_text()
    app = create_app(data, testing=True, secret_key="test")
    client = app.test_client()

    def login(pw: str) -> int:
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(
            r'name="csrf-token" content="([^"]+)"', page)
        assert token is not None
        return client.post("/login", data={"username": "admin", "password": pw,
                                           "csrf_token": token.group(1)}).status_code

    assert login(password + "x") == 401
    assert login(password) == 302


def test_firstboot_certificate(booted: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    data, _ = booted
    cert, key = paths(data)["cert"], paths(data)["key"]
    assert _openssl("x509", "-in", str(cert), "-noout", "-checkend", str(5 * 365 * 86400)).returncode == 0
    text = _openssl("x509", "-in", str(cert), "-noout", "-subject", "-ext", "subjectAltName,basicConstraints").stdout
    assert "CN = plateau-test" in text
    assert "DNS:plateau-test" in text and "CA:FALSE" in text
    cert_pub = _openssl("x509", "-in", str(cert), "-noout", "-pubkey").stdout
    key_pub = _openssl("pkey", "-in", str(key), "-pubout").stdout
    assert cert_pub and cert_pub == key_pub


def test_second_firstboot_changes_nothing(booted: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    data, _ = booted
    before = _snapshot(data)
    res = plateau("firstboot", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    assert "already done" in res.stdout
    assert _snapshot(data) == before


def test_interrupted_firstboot_resumes_without_a_second_admin(tmp_path: Path) -> None:
    """A power cut after the admin was made: the next run keeps that admin and its password."""
    data = tmp_path / "data"
    first = run_firstboot(data, hostname="box", addresses=["192.0.2.10"])
    assert first.admin_password is not None
    paths(data)["done"].unlink()
    paths(data)["cert"].unlink()
    again = run_firstboot(data, hostname="box", addresses=["192.0.2.10"])
    assert again.admin_password is None
    assert again.created == ["tls.crt", "tls.key", "done"]
    assert paths(data)["password"].read_text().strip() == first.admin_password
    san = _openssl("x509", "-in", str(paths(data)["cert"]), "-noout", "-ext", "subjectAltName").stdout
    assert "IP Address:192.0.2.10" in san and "DNS:box.local" in san


def test_certificate_names() -> None:
    assert certificate_names("plateau", ["10.0.0.5", "fd00::5"]) == \
        "DNS:plateau,DNS:plateau.local,IP:10.0.0.5,IP:fd00::5"
    assert certificate_names("pbx.example.com", []) == "DNS:pbx.example.com"


# -- --sip-ip auto ---------------------------------------------------------------------------
def test_sip_ip_auto_is_a_local_address() -> None:
    address = resolve_sip_ip("auto")
    ip = ipaddress.ip_address(address)
    assert not ip.is_loopback and not ip.is_unspecified
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))  # EADDRNOTAVAIL unless the address is the box's own
    assert resolve_sip_ip("127.0.0.1") == "127.0.0.1"


def test_sip_ip_auto_without_any_network(tmp_path: Path) -> None:
    """In a network namespace with only loopback: no route, no address, a clear error."""
    script = ("import sys; sys.path.insert(0, sys.argv[1])\n"
              "from appliance.system.netaddr import resolve_sip_ip, NoAddressError\n"
              "try:\n    print(resolve_sip_ip('auto'))\nexcept NoAddressError as e:\n    print('ERR', e)\n")
    res = subprocess.run(["unshare", "--net", sys.executable, "-c", script, str(REPO)], capture_output=True,
                         text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ERR --sip-ip auto: no default route"), res.stdout
    assert issubclass(NoAddressError, RuntimeError)


def test_engine_with_sip_ip_auto_is_healthy(tmp_path: Path) -> None:
    """`plateau run --sip-ip auto` binds the default-route address; `plateau health` sees it answer."""
    engine = Engine(tmp_path / "engine", extra_args=["--no-demo"])
    engine.sip_ip = "auto"
    engine.start()
    try:
        res = plateau("health", "--data-dir", str(engine.data_dir), "--wait", "20")
        assert res.returncode == 0, res.stdout + res.stderr
        expected = default_route_source() or resolve_sip_ip("auto")
        assert f"SIP OPTIONS on {expected}:{engine.sip_port}: SIP/2.0 200 OK" in res.stdout
    finally:
        engine.stop()


def test_health_fails_when_no_engine(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    res = plateau("health", "--data-dir", str(tmp_path), "--wait", "1.5")
    assert res.returncode == 1
    assert "NOT healthy" in res.stdout and "engine not started" in res.stdout


def test_sip_options_silence_and_refusal_are_no_answer() -> None:
    """A bound but silent SIP port (a wedged engine) and a closed one both count as no answer."""
    from appliance.system.health import sip_options

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        assert sip_options("127.0.0.1", port, timeout=0.3) is None
        request = silent.recv(65535).decode()
        assert request.startswith(f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n") and "branch=z9hG4bK" in request
    assert sip_options("127.0.0.1", port, timeout=0.3) is None  # closed now: ICMP port unreachable


def test_web_serves_https_with_the_firstboot_certificate(
        booted: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    """`plateau web --certfile --keyfile` (the web unit's command) speaks TLS with the first-boot pair."""
    import signal
    import ssl
    import time

    from tests.peers.engine import free_port

    data, _ = booted
    p = paths(data)
    port = free_port(socket.SOCK_STREAM, also_tcp=False)
    log = tmp_path / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "web", "--data-dir", str(data),
                                 "--bind", f"127.0.0.1:{port}", "--certfile", str(p["cert"]),
                                 "--keyfile", str(p["key"])], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while True:  # until gunicorn listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        # Verifies the chain (the self-signed certificate as the only anchor) and the name in its SAN.
        ctx = ssl.create_default_context(cafile=str(p["cert"]))
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                             server_hostname="plateau-test") as tls:
            tls.sendall(b"GET /login HTTP/1.1\r\nHost: plateau-test\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert f"https://127.0.0.1:{port}/" in log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_web_refuses_a_certificate_without_its_key(tmp_path: Path) -> None:
    res = plateau("web", "--data-dir", str(tmp_path), "--certfile", str(tmp_path / "c.pem"))
    assert res.returncode == 2 and "both --certfile and --keyfile" in res.stderr
