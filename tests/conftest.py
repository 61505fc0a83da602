"""Shared fixtures: the Plateau engine as a subprocess, and an autouse process-leak detector."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# sippy 2.5.0 installs a top-level `tests` package into site-packages; make sure `tests.*`
# is this repository's package whatever pytest's import mode put on sys.path first.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
_stray = sys.modules.get("tests")
if _stray is not None and Path(getattr(_stray, "__file__", "") or "").parent != REPO_ROOT / "tests":
    del sys.modules["tests"]

from tests.peers.engine import PERSISTENT_PIDS, Engine
from tests.peers.postgres import PostgresServer


# -- engine ---------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the item so fixtures can tell whether the test failed."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def _failed(request: pytest.FixtureRequest) -> bool:
    node = request.node
    return any(getattr(getattr(node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))


def _start_engine(tmp: Path) -> Engine:
    return Engine(tmp).start()


@pytest.fixture
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh engine per test: extensions 1001-1010 (secret "secret<n>"), free ports."""
    eng = _start_engine(tmp_path / "engine")
    try:
        yield eng
    finally:
        eng.stop()
        if _failed(request):
            sys.stderr.write(f"\n--- engine stderr ({eng.stderr_path}) ---\n{eng.stderr_tail()}\n")


@pytest.fixture(scope="module")
def engine_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One engine shared by a module's tests (faster; tests must not depend on each other)."""
    eng = Engine(tmp_path_factory.mktemp("engine"), persistent=True)
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()
        sys.stderr.write(f"\n--- engine stderr ({eng.stderr_path}) ---\n{eng.stderr_tail(2000)}\n")


# -- PostgreSQL -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for this worker's session (tests/peers/postgres.py)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database of the test's own on the session's server, dropped after the test."""
    url = postgres_server.new_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


# -- leak detector --------------------------------------------------------------------
def _descendants(root: int, skip: set[int] | frozenset[int] = frozenset()) -> dict[int, str]:
    """Live (non-zombie) descendants of `root`: pid -> command line, read from /proc.

    Subtrees rooted at a pid in `skip` (module-scoped engines) are left out.
    """
    parent: dict[int, int] = {}
    state: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid ...
        rest = stat.rsplit(")", 1)[1].split()
        parent[int(entry)] = int(rest[1])
        state[int(entry)] = rest[0]
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        p = frontier.pop()
        for child, pp in parent.items():
            if pp == p and child not in found and child not in skip:
                if state.get(child) != "Z":
                    try:
                        with open(f"/proc/{child}/cmdline", "rb") as f:
                            found[child] = f.read().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        continue
                frontier.append(child)
    return found


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves a child process (phone, sipp, baresip, engine) running."""
    before = set(_descendants(os.getpid()))
    yield
    deadline = time.monotonic() + 3.0
    while True:
        leaked = {
            pid: cmd
            for pid, cmd in _descendants(os.getpid(), PERSISTENT_PIDS).items()
            if pid not in before
        }
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if leaked:
        for pid in leaked:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pytest.fail(f"test leaked processes: {leaked}")
