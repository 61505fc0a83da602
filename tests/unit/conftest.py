"""Fixtures shared by the unit tests: a real SQLite store, and real espeak-ng prompts."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.ivr.tts import PromptCache
from appliance.store.db import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store in the test's own directory, closed after the test."""
    s = Store(tmp_path / "plateau.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> PromptCache:
    """One prompt cache per test module: each text is rendered by espeak-ng once."""
    return PromptCache(tmp_path_factory.mktemp("tts"))
