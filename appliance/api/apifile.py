"""The ``api.json`` file through which local tools find the engine's control API."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
from dataclasses import dataclass

API_FILE_NAME = "api.json"


@dataclass
class ApiEndpoint:
    """Where the control API listens and the bearer token it expects."""

    url: str
    token: str


def new_token() -> str:
    """Return a fresh random bearer token (256 bits)."""
    return secrets.token_urlsafe(32)


def write_api_file(data_dir: pathlib.Path, url: str, token: str) -> pathlib.Path:
    """Write ``<data_dir>/api.json`` atomically with mode 0600; return its path.

    The temporary file is created 0600 before the token is written, so the token
    is never readable by others, even briefly.
    """
    data_dir = pathlib.Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / API_FILE_NAME
    tmp = data_dir / f".{API_FILE_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT honours umask only for new files
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"url": url, "token": token}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def read_api_file(data_dir: pathlib.Path) -> ApiEndpoint:
    """Read ``<data_dir>/api.json``; raise ValueError if it is malformed."""
    path = pathlib.Path(data_dir) / API_FILE_NAME
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
    url = doc.get("url") if isinstance(doc, dict) else None
    token = doc.get("token") if isinstance(doc, dict) else None
    if not isinstance(url, str) or not isinstance(token, str):
        raise ValueError(f"{path}: expected {{\"url\": str, \"token\": str}}")  # noqa: TRY004
    return ApiEndpoint(url=url, token=token)
