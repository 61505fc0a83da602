"""`WebUi`: `plateau web` (gunicorn) as a subprocess beside a test engine, on the same data dir."""
from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.peers.engine import REPO_ROOT, free_port
from tests.peers.process import stop_group


class WebUi:
    """Start with `with WebUi(data_dir) as web:`; `web.url`, `web.first_password`."""

    def __init__(self, data_dir: Path, start_timeout: float = 20.0, *,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port(socket.SOCK_STREAM, also_tcp=False)
        self.tls = tls  # (certificate, key): serve HTTPS as the appliance's unit does
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "web.log"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.first_password: str | None = None

    def __enter__(self) -> WebUi:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child process
        tls_args = [] if self.tls is None else ["--certfile", str(self.tls[0]), "--keyfile", str(self.tls[1])]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "web", "--data-dir", str(self.data_dir),
             "--bind", f"127.0.0.1:{self.port}", *tls_args],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"plateau web exited:\n{self.log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(self.url + "/login", timeout=1.0, context=self.ssl_context()) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            self.__exit__()
            raise RuntimeError(f"plateau web did not answer:\n{self.log_path.read_text(errors='replace')}")
        m = re.search(r"one-time password .*: (\S+)", self.log_path.read_text(errors="replace"))
        self.first_password = m.group(1) if m else None
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context that trusts the test's self-signed certificate (None over HTTP)."""
        if self.tls is None:
            return None
        return ssl.create_default_context(cafile=str(self.tls[0]))

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None
