"""`plateau firstboot`: what a freshly flashed box needs before its services start.

Run once by plateau-firstboot.service (as user plateau, before the engine and the web UI) on the
data partition. Each step is idempotent and is skipped when its output already exists, and the
`done` marker makes a completed run a no-op, so a power cut half-way simply resumes:

1. a self-signed TLS certificate for the web UI (openssl CLI; EC P-256 key 0600, CN = hostname,
   subjectAltName = hostname + the box's addresses);
2. the first web admin through the web app's own first-start path (`web.first_start`, the one
   `plateau web` uses): user ``admin`` with a one-time password that must be changed at first
   login, saved to ``firstboot/admin-password`` (0600) and printed for the console;
3. an agetty issue snippet with that login (copied to /run/issue.d by the unit).

Secrets the engine makes itself are not duplicated here: the digest nonce key (``nonce.key``) on
its first start and the control API token (``api.json``) on every start; the web session key
(``web_secret``) comes with the web app's first start. The image has no demo configuration, so
there are no SIP account passwords to make: each extension gets its secret when an admin creates it.
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from appliance.system.netaddr import local_addresses

FIRSTBOOT_DIR = "firstboot"
DONE = "done"
ADMIN_PASSWORD = "admin-password"
CERT = "tls.crt"
KEY = "tls.key"
ISSUE = "issue"
CERT_DAYS = 3650  # a self-signed appliance certificate; admins replace it with their own


class FirstbootError(RuntimeError):
    """A first-boot step failed; the message says which and why."""


@dataclass
class FirstbootReport:
    """What a run did (``created`` is empty on a second run)."""

    directory: Path
    created: list[str] = field(default_factory=list)
    admin_password: str | None = None  # only when this run created the admin
    already_done: bool = False


def paths(data_dir: Path) -> dict[str, Path]:
    """Where first boot writes each output, by name."""
    base = Path(data_dir) / FIRSTBOOT_DIR
    return {"dir": base, "done": base / DONE, "password": base / ADMIN_PASSWORD,
            "cert": base / CERT, "key": base / KEY, "issue": base / ISSUE}


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 from the first byte."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def certificate_names(hostname: str, addresses: list[str]) -> str:
    """The subjectAltName value (RFC 5280 §4.2.1.6) for ``hostname`` and ``addresses``."""
    names = [f"DNS:{hostname}"]
    if "." not in hostname:
        names.append(f"DNS:{hostname}.local")  # what a browser on the LAN may use (mDNS names)
    names += [f"IP:{a}" for a in addresses]
    return ",".join(names)


def make_certificate(cert: Path, key: Path, hostname: str, addresses: list[str],
                     days: int = CERT_DAYS) -> None:
    """Generate a self-signed server certificate and its key (0600) with the openssl CLI.

    Both land under temporary names first, so a crash never leaves a cert without its key.
    """
    with tempfile.TemporaryDirectory(dir=cert.parent, prefix=".tls.") as tmpdir:
        tmp_key, tmp_cert = Path(tmpdir) / "key", Path(tmpdir) / "cert"
        cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-nodes", "-keyout", str(tmp_key), "-out", str(tmp_cert), "-days", str(days),
               "-subj", f"/CN={hostname}",
               "-addext", f"subjectAltName={certificate_names(hostname, addresses)}",
               # A leaf, not a CA (req -x509 would otherwise mark it CA:TRUE), for TLS servers only.
               "-addext", "basicConstraints=critical,CA:FALSE",
               "-addext", "keyUsage=critical,digitalSignature",
               "-addext", "extendedKeyUsage=serverAuth"]
        old_umask = os.umask(0o077)
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except OSError as exc:
            raise FirstbootError(f"TLS certificate: cannot run openssl: {exc}") from exc
        finally:
            os.umask(old_umask)
        if result.returncode != 0:
            raise FirstbootError(f"TLS certificate: openssl failed: {result.stderr.strip()}")
        os.chmod(tmp_key, 0o600)
        os.chmod(tmp_cert, 0o644)
        os.replace(tmp_key, key)
        os.replace(tmp_cert, cert)


def issue_text(password: str) -> str:
    """The agetty(8) issue snippet: ``\\4`` is replaced by agetty with the box's IPv4 address."""
    return ("Plateau web administration: https://\\4/\n"
            f"  user admin, one-time password {password} (you choose your own at first login)\n\n")


def run_firstboot(data_dir: Path, *, hostname: str | None = None,
                  addresses: list[str] | None = None, db: str | Path | None = None) -> FirstbootReport:
    """Do whatever first-boot step is still missing in ``data_dir``; see the module docstring.

    ``db``: the database the first web admin goes to (default `data_dir`/plateau.db).
    """
    from web import first_start  # the web app's own first-admin path (plateau web uses it too)

    p = paths(data_dir)
    report = FirstbootReport(directory=p["dir"])
    if p["done"].exists():
        report.already_done = True
        return report
    p["dir"].mkdir(parents=True, exist_ok=True)
    os.chmod(p["dir"], 0o700)
    host = hostname or socket.gethostname()
    if not (p["cert"].exists() and p["key"].exists()):
        make_certificate(p["cert"], p["key"], host, local_addresses() if addresses is None else addresses)
        report.created += [CERT, KEY]
    password = first_start(data_dir, db)
    if password is not None:
        _write_private(p["password"], password + "\n")
        report.admin_password = password
        report.created.append(ADMIN_PASSWORD)
    if p["password"].exists() and not p["issue"].exists():
        saved = p["password"].read_text(encoding="utf-8").strip()
        _write_private(p["issue"], issue_text(saved))
        report.created.append(ISSUE)
    _write_private(p["done"], time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    report.created.append(DONE)
    return report
