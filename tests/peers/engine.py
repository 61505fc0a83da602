"""`Engine`: the Plateau engine (`python -m appliance.cli run`) as a subprocess for tests.

Picks free ports, writes and imports a config of extensions 1001-1010 (secret "secret<n>"),
starts the engine in its own process group, waits for its control API, and tears it down
with SIGTERM then SIGKILL. Used by the `engine` fixtures in tests/conftest.py and by
bench/sip_load.py (`--target plateau`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import dataclasses
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import yaml

from appliance.store.models import Extension
from tests.peers.process import stop_group

REPO_ROOT = Path(__file__).resolve().parents[2]

# Engine pids that outlive a single test (module-scoped fixtures); the leak detector skips them.
PERSISTENT_PIDS: set[int] = set()


class EngineError(RuntimeError):
    """The engine failed to import its config, start, or answer its API."""


def free_port(kind: int = socket.SOCK_DGRAM, also_tcp: bool = True, host: str = "127.0.0.1") -> int:
    """A port free for UDP (and TCP, for SIP over both) on `host`, picked by the kernel."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if not also_tcp:
            return int(port)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((host, port))
            return int(port)
        except OSError:
            continue
    raise EngineError("no free port found")


def free_port_range(count: int = 200, host: str = "127.0.0.1") -> tuple[int, int]:
    """An even-aligned UDP port range [a, b] of `count` ports where a sample binds freely."""
    import random

    for _ in range(50):
        start = random.randrange(20000, 29000, 2) + (os.getpid() % 50) * 2
        ok = True
        for p in (start, start + 1, start + count // 2, start + count - 1):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((host, p))
                except OSError:
                    ok = False
                    break
        if ok:
            return start, start + count - 1
    raise EngineError("no free RTP port range found")


def default_config(numbers: range = range(1001, 1011)) -> dict[str, list[dict[str, Any]]]:
    """Extensions 1001-1010, secret "secret<number>"; no trunks or routes."""
    exts = [
        # The store's own record, so the test config has exactly the fields the importer takes.
        dataclasses.asdict(Extension(number=str(n), name=f"Extension {n}", secret=f"secret{n}"))
        for n in numbers
    ]
    return {"extensions": exts, "trunks": [], "inbound_routes": [], "outbound_routes": []}


class Engine:
    """A running Plateau engine; `start()`, `api()`, `kill9()`, `restart()`, `stop()`."""

    def __init__(
        self,
        work_dir: Path,
        config: dict[str, Any] | None = None,
        python: str = sys.executable,
        start_timeout: float = 20.0,
        persistent: bool = False,
        extra_args: list[str] | None = None,
        db: str | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.data_dir = self.work_dir / "data"
        self.config = config if config is not None else default_config()
        self.python = python
        self.start_timeout = start_timeout
        self.persistent = persistent
        self.extra_args = list(extra_args or [])
        self.db_args = ["--db", db] if db else []  # a PostgreSQL URL: config import and run use it
        self.sip_ip = "127.0.0.1"
        self.sip_port = free_port()
        self.rtp_ports = free_port_range()
        self.stderr_path = self.work_dir / "engine.stderr"
        self.stdout_path = self.work_dir / "engine.stdout"
        self.proc: subprocess.Popen[bytes] | None = None
        self.api_url = ""
        self.api_token = ""
        self._imported = False

    # -- lifecycle --------------------------------------------------------------------
    def import_config(self) -> None:
        """Write the YAML config and run `appliance.cli config import FILE --data-dir DIR`."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.work_dir / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        res = subprocess.run(
            [
                self.python,
                "-m",
                "appliance.cli",
                "config",
                "import",
                str(cfg_path),
                "--data-dir",
                str(self.data_dir),
                *self.db_args,
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if res.returncode != 0:
            raise EngineError(
                f"config import failed ({res.returncode}):\n{res.stdout.decode(errors='replace')}"
                f"\n{res.stderr.decode(errors='replace')}"
            )
        self._imported = True

    def command(self) -> list[str]:
        a, b = self.rtp_ports
        return [
            self.python,
            "-m",
            "appliance.cli",
            "run",
            "--data-dir",
            str(self.data_dir),
            "--sip-ip",
            self.sip_ip,
            "--sip-port",
            str(self.sip_port),
            "--api-port",
            "0",
            "--rtp-ports",
            f"{a}-{b}",
            *self.db_args,
            *self.extra_args,
        ]

    def start(self) -> Engine:
        """Import the config (first time only), start the engine, wait for GET /v1/status."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if not self._imported:
            self.import_config()
        api_json = self.data_dir / "api.json"
        api_json.unlink(missing_ok=True)
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if self.persistent:
            PERSISTENT_PIDS.add(self.proc.pid)
        deadline = time.monotonic() + self.start_timeout
        last_err = "api.json never appeared"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError(
                    f"engine exited with {self.proc.returncode}:\n{self.stderr_tail()}"
                )
            if api_json.exists():
                try:
                    info = json.loads(api_json.read_text())
                    self.api_url, self.api_token = info["url"].rstrip("/"), info["token"]
                    status, _ = self.api("GET", "/v1/status", timeout=1.0)
                    if status == 200:
                        return self
                    last_err = f"/v1/status answered {status}"
                except (ValueError, KeyError, OSError) as exc:
                    last_err = repr(exc)  # file half-written or API not listening yet
            time.sleep(0.05)
        self.stop()
        raise EngineError(
            f"engine not ready in {self.start_timeout}s ({last_err}):\n{self.stderr_tail()}"
        )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def media_pid(self) -> int | None:
        """The engine's media child process (`appliance.media.server`), if it runs."""
        if self.proc is None:
            return None
        # every thread's children: after a media crash the events-reader thread starts the new one
        try:
            tasks = list(Path(f"/proc/{self.proc.pid}/task").iterdir())
        except OSError:
            return None
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in children:
                try:
                    if b"appliance.media.server" in Path(f"/proc/{child}/cmdline").read_bytes():
                        return int(child)
                except OSError:
                    continue
        return None

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the engine's process group, SIGKILL after `grace` s; returns its exit code."""
        proc = self.proc
        if proc is None:
            return None
        stop_group(proc, term_wait=grace)
        # Children the engine left in its group die with it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        PERSISTENT_PIDS.discard(proc.pid)
        self.proc = None
        return proc.returncode

    def kill9(self) -> None:
        """Crash the engine (SIGKILL to its group), as a power cut would."""
        if self.proc is not None:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(timeout=5.0)
            PERSISTENT_PIDS.discard(self.proc.pid)
            self.proc = None

    def restart(self) -> Engine:
        """Stop (if running) and start again on the same ports and data dir."""
        self.stop()
        return self.start()

    def stdout_text(self) -> str:
        """What the engine printed on stdout: sippy reports exceptions it swallowed there."""
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    @contextlib.contextmanager
    def running(self) -> Iterator[Engine]:
        """Start the engine, fail the test if it prints a traceback or dies meanwhile, stop it."""
        self.start()
        try:
            with self.no_tracebacks():
                yield self
        finally:
            self.stop()

    @contextlib.contextmanager
    def no_tracebacks(self) -> Iterator[None]:
        """Fail the enclosed test if the engine printed a traceback or died meanwhile."""
        before = len(self.stdout_text())
        yield
        new = self.stdout_text()[before:]
        assert "Traceback" not in new, f"engine raised during the test:\n{new[-6000:]}"
        assert self.proc is not None and self.proc.poll() is None, "engine died"

    def stderr_tail(self, chars: int = 6000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # -- control API ------------------------------------------------------------------
    def api(
        self, method: str, path: str, body: Any = None, timeout: float = 5.0
    ) -> tuple[int, Any]:
        """Call the control API; returns (HTTP status, decoded JSON or text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.api_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    # -- convenience ------------------------------------------------------------------
    def secret(self, number: int | str) -> str:
        """The SIP password of an extension in the config."""
        for ext in self.config.get("extensions", []):
            if str(ext["number"]) == str(number):
                return str(ext["secret"])
        raise KeyError(f"extension {number} not in the engine config")

    def uri(self, number: int | str) -> str:
        return f"sip:{number}@{self.sip_ip}:{self.sip_port}"
