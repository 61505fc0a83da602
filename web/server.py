"""`plateau web`: the web UI under gunicorn (threads, so live wallboards keep a stream open each)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication


class WebServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running `web.create_app(data_dir)`; the bind and threads come from the CLI."""

    def __init__(self, data_dir: Path, bind: str, threads: int = 16, *,
                 certfile: Path | None = None, keyfile: Path | None = None) -> None:
        self.data_dir = data_dir
        self.options = {"bind": bind, "workers": 1, "worker_class": "gthread", "threads": threads,
                        "timeout": 60, "graceful_timeout": 5, "accesslog": None, "errorlog": "-",
                        "loglevel": "warning"}
        if certfile is not None and keyfile is not None:
            # gunicorn terminates TLS itself (ssl.SSLContext, TLS 1.2+ by Python's defaults).
            self.options.update({"certfile": str(certfile), "keyfile": str(keyfile)})
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from web import create_app

        return create_app(self.data_dir)


def check_tls_files(certfile: Path | None, keyfile: Path | None) -> str | None:
    """Why the certificate/key pair cannot be used (both or neither, readable), or None."""
    if (certfile is None) != (keyfile is None):
        return "give both --certfile and --keyfile, or neither"
    for path in (certfile, keyfile):
        if path is not None and not os.access(path, os.R_OK):
            return f"cannot read {path}"
    return None


def serve(data_dir: Path, bind: str, *, certfile: Path | None = None, keyfile: Path | None = None) -> int:
    from web import first_start

    problem = check_tls_files(certfile, keyfile)
    if problem is not None:
        print(f"plateau web: {problem}", file=sys.stderr)
        return 2

    password = first_start(data_dir)
    if password is not None:
        print("Web UI: first start. Log in as 'admin' with this one-time password (shown once, "
              f"you will choose your own): {password}", flush=True)
    scheme = "https" if certfile is not None else "http"
    print(f"Plateau web UI on {scheme}://{bind}/", flush=True)
    WebServer(data_dir, bind, certfile=certfile, keyfile=keyfile).run()
    return 0
