"""`plateau web`: the web UI under gunicorn, one gevent worker (web/worker.py) with header and
TLS-handshake deadlines, so slow or hostile clients and open wallboard streams cost a greenlet
each instead of one of a few threads."""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from web.worker import HANDSHAKE_TIMEOUT, HEADER_TIMEOUT, lazy_handshake_context

__all__ = ["HANDSHAKE_TIMEOUT", "HEADER_TIMEOUT", "WebServer", "serve"]

# Concurrent connections of the one worker (greenlets): far above 200 slow clients, 200 half
# handshakes and every wallboard stream (capped in web/wallboard.py) at once.
WORKER_CONNECTIONS = 2000


class WebServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running `web.create_app(data_dir)`; the bind comes from the CLI."""

    def __init__(self, data_dir: Path, bind: str, *,
                 certfile: Path | None = None, keyfile: Path | None = None,
                 db: str | None = None, shared_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self.db = db
        self.shared_dir = shared_dir
        # One worker: the wallboard fan-out and the stream caps are per process.
        self.options: dict[str, Any] = {
            "bind": bind, "workers": 1, "worker_class": "web.worker.PlateauWorker",
            "worker_connections": WORKER_CONNECTIONS, "keepalive": int(HEADER_TIMEOUT),
            "timeout": 60, "graceful_timeout": 5, "accesslog": None, "errorlog": "-",
            "loglevel": "warning"}
        if certfile is not None and keyfile is not None:
            # gunicorn terminates TLS itself (ssl.SSLContext, TLS 1.2+ by Python's defaults); the
            # handshake runs in the worker under HANDSHAKE_TIMEOUT.
            self.options.update({"certfile": str(certfile), "keyfile": str(keyfile),
                                 "ssl_context": lazy_handshake_context})
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from web import create_app

        return create_app(self.data_dir, tls="certfile" in self.options, db=self.db, shared_dir=self.shared_dir)


def check_tls_files(certfile: Path | None, keyfile: Path | None) -> str | None:
    """Why the certificate/key pair cannot be used (both or neither, readable), or None."""
    if (certfile is None) != (keyfile is None):
        return "give both --certfile and --keyfile, or neither"
    for path in (certfile, keyfile):
        if path is not None and not os.access(path, os.R_OK):
            return f"cannot read {path}"
    return None


def _raise_open_files() -> None:
    """Lift the soft open-file limit towards WORKER_CONNECTIONS (a socket each); the usual
    default of 1024 would make accept() fail with EMFILE well before the worker is full."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = WORKER_CONNECTIONS + 256 if hard == resource.RLIM_INFINITY else min(hard, WORKER_CONNECTIONS + 256)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def serve(data_dir: Path, bind: str, *, certfile: Path | None = None, keyfile: Path | None = None,
          db: str | None = None, shared_dir: Path | None = None) -> int:
    """Run the web UI; ``db`` and ``shared_dir`` as `web.create_app` takes them."""
    from appliance.store.errors import StoreError
    from web import first_start

    problem = check_tls_files(certfile, keyfile)
    if problem is not None:
        print(f"plateau web: {problem}", file=sys.stderr)
        return 2

    try:
        password = first_start(data_dir, db)
    except StoreError as exc:  # an unreachable database: one line naming it, no traceback
        print(f"plateau web: cannot start: {exc}", file=sys.stderr)
        return 1
    if password is not None:
        print("Web UI: first start. Log in as 'admin' with this one-time password (shown once, "
              f"you will choose your own): {password}", flush=True)
    _raise_open_files()
    scheme = "https" if certfile is not None else "http"
    print(f"Plateau web UI on {scheme}://{bind}/", flush=True)
    WebServer(data_dir, bind, certfile=certfile, keyfile=keyfile, db=db, shared_dir=shared_dir).run()
    return 0
