"""Fixtures shared by the unit tests: a real store on each backend, and real espeak-ng prompts."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.ivr.tts import PromptCache
from appliance.store.db import Store
from tests.peers.postgres import BACKENDS


@pytest.fixture(params=BACKENDS)
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """What `Store` opens: a file in the test's own directory, or a PostgreSQL database of the
    test's own on the session's server (tests/peers/postgres.py)."""
    if request.param == "sqlite":
        return tmp_path / "plateau.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_target: str | Path) -> Iterator[Store]:
    """A fresh store on each backend, closed after the test."""
    s = Store(store_target)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> PromptCache:
    """One prompt cache per test module: each text is rendered by espeak-ng once."""
    return PromptCache(tmp_path_factory.mktemp("tts"))
