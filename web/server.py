"""`plateau web`: the web UI under gunicorn (threads, so live wallboards keep a stream open each)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication


class WebServer(BaseApplication):  # type: ignore[misc]
    """gunicorn running `web.create_app(data_dir)`; the bind and threads come from the CLI."""

    def __init__(self, data_dir: Path, bind: str, threads: int = 16) -> None:
        self.data_dir = data_dir
        self.options = {"bind": bind, "workers": 1, "worker_class": "gthread", "threads": threads,
                        "timeout": 60, "graceful_timeout": 5, "accesslog": None, "errorlog": "-",
                        "loglevel": "warning"}
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from web import create_app

        return create_app(self.data_dir)


def serve(data_dir: Path, bind: str) -> int:
    from web import first_start

    password = first_start(data_dir)
    if password is not None:
        print("Web UI: first start. Log in as 'admin' with this one-time password (shown once, "
              f"you will choose your own): {password}", flush=True)
    print(f"Plateau web UI on http://{bind}/", flush=True)
    WebServer(data_dir, bind).run()
    return 0
