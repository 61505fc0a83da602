"""Errors the PBX reports to whoever asked it for something (the control API maps them to HTTP)."""
from __future__ import annotations


class PbxError(Exception):
    """A request the PBX cannot honour (unknown channel, nothing to transfer...): `status` is the
    HTTP status the control API answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
