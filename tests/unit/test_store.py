"""The SQLite store: migrations, configuration CRUD, registrations, CDR, blocks."""

from __future__ import annotations

import os
import pathlib
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

from appliance.store import (
    BlockedAddress,
    ConfigError,
    Extension,
    InboundRoute,
    OutboundRoute,
    Registration,
    Store,
    StoreError,
    Trunk,
)
from appliance.store.migrations import MIGRATIONS
from tests.peers.postgres import sqlite_only

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "data" / "plateau.db"


def _config(store: Store) -> None:
    store.put_trunk(Trunk(name="carrier", host="sip.carrier.example", username="u", secret="s3cretpw"))
    store.put_outbound_route(OutboundRoute(name="national", pattern="_0XXXXXXXXX", trunk="carrier"))
    store.put_outbound_route(
        OutboundRoute(name="intl", pattern="_00.", trunk="carrier", priority=50)
    )
    store.put_extension(
        Extension(number="1001", name="Alice", secret="alicepass1", dial_permissions=["national"])
    )
    store.put_extension(Extension(number="1002", name="Bob", secret="bobpass12"))


# -- opening and migrations ------------------------------------------------------------


@sqlite_only
def test_open_creates_wal_database_private_and_migrated(store: Store, store_target: pathlib.Path) -> None:
    db_path = store_target
    assert store.schema_version() == len(MIGRATIONS)
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"extensions", "trunks", "cdr", "registrations", "schema_version"} <= tables
    assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopen_does_not_reapply_migrations(db_path: pathlib.Path) -> None:
    with Store(db_path) as s:
        _config(s)
    with Store(db_path) as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert [e.number for e in s.extensions()] == ["1001", "1002"]
        rows = s.query("SELECT COUNT(*) FROM schema_version")
        assert rows[0][0] == len(MIGRATIONS)


def test_newer_schema_refused(db_path: pathlib.Path) -> None:
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO schema_version VALUES (?, 0)", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this software"):
        Store(db_path)


def test_failed_migration_leaves_nothing_half_applied(
    db_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(db_path).close()
    bad = "CREATE TABLE half (x INTEGER);\nCREATE TABLE broken (;\n"
    monkeypatch.setattr("appliance.store.db.MIGRATIONS", [*MIGRATIONS, bad])
    with pytest.raises(sqlite3.OperationalError):
        Store(db_path)
    monkeypatch.undo()
    with Store(db_path) as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert not s.query("SELECT name FROM sqlite_master WHERE name = 'half'")


def test_concurrent_first_open_applies_migrations_once(store_target: str | pathlib.Path) -> None:
    path = store_target  # a fresh file, or a fresh PostgreSQL database
    errors: list[Exception] = []
    stores: list[Store] = []
    lock = threading.Lock()

    def opener() -> None:
        try:
            s = Store(path)
            with lock:
                stores.append(s)
        except Exception as exc:  # noqa: BLE001 - collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        assert stores[0].query("SELECT COUNT(*) FROM schema_version")[0][0] == len(MIGRATIONS)
    finally:
        for s in stores:
            s.close()


# -- configuration ---------------------------------------------------------------------


def test_extension_round_trip_with_permissions(store: Store) -> None:
    _config(store)
    ext = store.get_extension("1001")
    assert ext == Extension(number="1001", name="Alice", secret="alicepass1",
                            dial_permissions=["national"])
    ext.dial_permissions = ["intl", "national"]
    ext.dnd = True
    ext.forward_noanswer = "0612345678"
    store.put_extension(ext)
    again = store.get_extension("1001")
    assert again == ext
    assert isinstance(again.dnd, bool) and again.dnd is True
    assert store.get_extension("9999") is None


def test_extension_validation(store: Store) -> None:
    _config(store)
    with pytest.raises(ConfigError, match=r"extension.number: '10a1' is not 2-8 digits"):
        store.put_extension(Extension(number="10a1", name="x", secret="longenough"))
    with pytest.raises(ConfigError, match=r"extension.secret: must be at least 8"):
        store.put_extension(Extension(number="1003", name="x", secret="short"))
    with pytest.raises(ConfigError, match=r"dial_permissions\[0\]: outbound route 'nope'"):
        store.put_extension(Extension(number="1003", name="x", secret="longenough",
                                      dial_permissions=["nope"]))
    with pytest.raises(ConfigError, match="forwards the extension to itself"):
        store.put_extension(Extension(number="1003", name="x", secret="longenough",
                                      forward_always="1003"))
    with pytest.raises(ConfigError, match="must be true or false"):
        store.put_extension(Extension(number="1003", name="x", secret="longenough",
                                      dnd=1))  # type: ignore[arg-type]
    assert store.get_extension("1003") is None


def test_deleting_route_revokes_permission(store: Store) -> None:
    _config(store)
    assert store.delete_outbound_route("national") is True
    assert store.get_extension("1001").dial_permissions == []
    assert store.delete_outbound_route("national") is False


def test_trunk_in_use_cannot_be_deleted(store: Store) -> None:
    _config(store)
    with pytest.raises(ConfigError, match="intl, national use it"):
        store.delete_trunk("carrier")
    store.delete_outbound_route("national")
    store.delete_outbound_route("intl")
    assert store.delete_trunk("carrier") is True
    assert store.trunks() == []


def test_trunk_validation(store: Store) -> None:
    with pytest.raises(ConfigError, match=r"trunk.port: 70000 is not in 1..65535"):
        store.put_trunk(Trunk(name="t", host="h.example", port=70000))
    with pytest.raises(ConfigError, match="trunk.register: registration needs"):
        store.put_trunk(Trunk(name="t", host="h.example", register=True))
    with pytest.raises(ConfigError, match="trunk.host"):
        store.put_trunk(Trunk(name="t", host="bad host"))
    with pytest.raises(ConfigError, match="trunk.transport"):
        store.put_trunk(Trunk(name="t", host="h", transport="sctp"))
    store.put_trunk(Trunk(name="v6", host="2001:db8::1", transport="tls", port=5061))
    assert store.get_trunk("v6").transport == "tls"


def test_outbound_routes_ordered_and_checked(store: Store) -> None:
    _config(store)
    assert [r.name for r in store.outbound_routes()] == ["intl", "national"]
    with pytest.raises(ConfigError, match="trunk 'ghost' does not exist"):
        store.put_outbound_route(OutboundRoute(name="x", pattern="112", trunk="ghost"))
    with pytest.raises(ConfigError, match=r"outbound_route.pattern: .*must be the last"):
        store.put_outbound_route(OutboundRoute(name="x", pattern="_0.1", trunk="carrier"))


def test_inbound_routes(store: Store) -> None:
    _config(store)
    with pytest.raises(ConfigError, match="extension '1009' does not exist"):
        store.put_inbound_route(InboundRoute(did="+33123456789", destination="1009"))
    store.put_inbound_route(InboundRoute(did="+33123456789", destination="1001"))
    store.put_inbound_route(InboundRoute(did="+33123456789", destination="1002"))
    assert store.inbound_routes() == [InboundRoute(did="+33123456789", destination="1002")]
    with pytest.raises(ConfigError, match=r"inbound route\(s\) \+33123456789 point at it"):
        store.delete_extension("1002")
    assert store.delete_inbound_route("+33123456789")
    assert store.delete_extension("1002")


def test_settings(store: Store) -> None:
    assert store.get_setting("sip_port") is None
    assert store.get_setting("sip_port", "5060") == "5060"
    store.set_setting("sip_port", "5062")
    store.set_setting("sip_port", "5064")
    assert store.settings() == {"sip_port": "5064"}
    with pytest.raises(ConfigError):
        store.set_setting("bad name", "x")
    assert store.delete_setting("sip_port") is True


def test_transaction_rolls_back_everything(store: Store) -> None:
    _config(store)
    with pytest.raises(ConfigError), store.transaction():
        store.put_extension(Extension(number="1003", name="C", secret="charlie12"))
        store.put_extension(Extension(number="x", name="bad", secret="whatever1"))
    assert store.get_extension("1003") is None


# -- registrations ---------------------------------------------------------------------


def _reg(aor: str, contact: str, expires_at: float, **kw) -> Registration:
    return Registration(aor=aor, contact=contact, source_host="192.0.2.10", source_port=5060,
                        transport="udp", expires_at=expires_at, **kw)


def test_registration_upsert_and_expiry(store: Store) -> None:
    store.save_registration(_reg("sip:1001@pbx", "sip:1001@192.0.2.10:5060", 100.0, cseq=1))
    store.save_registration(_reg("sip:1001@pbx", "sip:1001@192.0.2.10:5060", 200.0, cseq=2,
                                 user_agent="Yealink"))
    store.save_registration(_reg("sip:1001@pbx", "sip:1001@192.0.2.11:5060", 150.0))
    store.save_registration(_reg("sip:1002@pbx", "sip:1002@192.0.2.12:5060", 120.0))
    regs = store.registrations()
    assert len(regs) == 3
    assert regs[0].cseq == 2 and regs[0].expires_at == 200.0 and regs[0].user_agent == "Yealink"
    assert [r.contact for r in store.registrations(now=140.0)] == [
        "sip:1001@192.0.2.10:5060", "sip:1001@192.0.2.11:5060"]
    assert len(store.registrations(now=0.0, aor="sip:1002@pbx")) == 1
    assert store.delete_registration("sip:1001@pbx", "sip:1001@192.0.2.11:5060") is True
    assert store.delete_registration("sip:1001@pbx", "sip:1001@192.0.2.11:5060") is False
    assert store.purge_registrations(now=130.0) == 1
    assert store.delete_registrations("sip:1001@pbx") == 1
    assert store.registrations() == []


# -- CDR ---------------------------------------------------------------------------------


def test_cdr_lifecycle(store: Store) -> None:
    cid = store.cdr_open("call-1", "1001", "Alice", "0612345678", "outbound", 1000.0,
                         trunk="carrier")
    (open_cdr,) = store.cdrs(open_only=True)
    assert open_cdr.id == cid and open_cdr.disposition is None and open_cdr.end is None
    store.cdr_answer(cid, 1004.5)
    with pytest.raises(StoreError, match="already answered"):
        store.cdr_answer(cid, 1005.0)
    store.cdr_close(cid, 1064.5, "ANSWERED", "caller hung up")
    cdr = store.get_cdr(cid)
    assert (cdr.duration, cdr.billsec) == (64.5, 60.0)
    assert cdr.disposition == "ANSWERED" and cdr.trunk == "carrier"
    assert store.cdrs(open_only=True) == []
    with pytest.raises(StoreError, match="already closed"):
        store.cdr_close(cid, 1070.0, "ANSWERED", None)


def test_cdr_unanswered_and_errors(store: Store) -> None:
    cid = store.cdr_open("call-2", "1001", "Alice", "1002", "internal", 10.0)
    with pytest.raises(StoreError, match="ANSWERED but no answer"):
        store.cdr_close(cid, 20.0, "ANSWERED", None)
    with pytest.raises(StoreError, match="disposition"):
        store.cdr_close(cid, 20.0, "HUNG", None)
    store.cdr_close(cid, 30.0, "NO ANSWER", "487 Request Terminated")
    cdr = store.get_cdr(cid)
    assert (cdr.duration, cdr.billsec) == (20.0, 0.0)
    with pytest.raises(StoreError, match="does not exist"):
        store.cdr_answer(999, 1.0)
    with pytest.raises(StoreError, match="direction"):
        store.cdr_open("c", "a", "", "b", "sideways", 1.0)
    # Clock stepped back during the call: durations clamp at 0, the record is kept.
    cid = store.cdr_open("call-3", "1001", "Alice", "1002", "internal", 100.0)
    store.cdr_close(cid, 90.0, "FAILED", "503 Service Unavailable")
    assert store.get_cdr(cid).duration == 0.0


def test_close_interrupted_and_listing_order(store: Store) -> None:
    a = store.cdr_open("a", "1001", "A", "1002", "internal", 100.0)
    b = store.cdr_open("b", "1002", "B", "1001", "internal", 110.0)
    c = store.cdr_open("c", "+331", "", "1001", "inbound", 120.0, trunk="carrier")
    store.cdr_answer(b, 115.0)
    store.cdr_close(c, 125.0, "BUSY", "486 Busy Here")
    assert store.close_interrupted(200.0) == 2
    assert store.close_interrupted(300.0) == 0
    assert [x.id for x in store.cdrs()] == [c, b, a]
    assert [x.id for x in store.cdrs(limit=1)] == [c]
    ca, cb = store.get_cdr(a), store.get_cdr(b)
    assert (ca.disposition, ca.end, ca.duration, ca.billsec) == ("INTERRUPTED", 200.0, 100.0, 0)
    assert (cb.duration, cb.billsec) == (90.0, 85.0)
    assert cb.hangup_cause.startswith("interrupted")


def test_committed_cdr_survives_process_kill(db_path: pathlib.Path) -> None:
    """A CDR write returns only after commit: a process killed right after keeps it."""
    script = textwrap.dedent(f"""
        import os, pathlib, sys
        sys.path.insert(0, {str(REPO)!r})
        from appliance.store import Store
        s = Store(pathlib.Path({str(db_path)!r}))
        cid = s.cdr_open("killed", "1001", "A", "1002", "internal", 5.0)
        s.cdr_answer(cid, 6.0)
        os._exit(0)  # no close, no checkpoint
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    with Store(db_path) as s:
        (cdr,) = s.cdrs(open_only=True)
        assert (cdr.call_id, cdr.answer) == ("killed", 6.0)
        assert s.close_interrupted(10.0) == 1


def test_second_process_reads_while_engine_writes(store: Store, store_target: str | pathlib.Path) -> None:
    _config(store)
    script = textwrap.dedent(f"""
        import pathlib, sys
        sys.path.insert(0, {str(REPO)!r})
        from appliance.store import Store, Extension
        with Store({str(store_target)!r}) as s:
            print(",".join(e.number for e in s.extensions()))
            s.put_extension(Extension(number="1003", name="Web", secret="fromweb123"))
    """)
    with store.transaction(durable=False):
        store.put_extension(Extension(number="1004", name="D", secret="pending12"))
        # Another process reads the committed state while this write is open...
        out = subprocess.run(
            [sys.executable, "-c", script.replace('s.put_extension', 'pass  #')],
            check=True, timeout=30, capture_output=True, text=True,
        )
    assert out.stdout.strip() == "1001,1002"
    # ...and its writes are seen by the engine's connection.
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30, capture_output=True)
    assert store.get_extension("1003").name == "Web"


# -- blocked addresses -------------------------------------------------------------------


def test_blocks(store: Store) -> None:
    store.save_block(BlockedAddress("198.51.100.7", until=500.0, reason="auth failures", failures=5))
    store.save_block(BlockedAddress("198.51.100.7", until=900.0, reason="auth failures", failures=9))
    store.save_block(BlockedAddress("2001:db8::5", until=100.0, reason="scanner", failures=1))
    assert [b.address for b in store.blocks()] == ["198.51.100.7", "2001:db8::5"]
    assert store.blocks(now=200.0) == [
        BlockedAddress("198.51.100.7", until=900.0, reason="auth failures", failures=9)]
    assert store.delete_block("2001:db8::5") is True
    assert store.delete_block("2001:db8::5") is False


def test_store_usable_from_several_threads(store: Store) -> None:
    errors: list[Exception] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                store.save_registration(_reg(f"sip:{n}@pbx", f"sip:{n}@h:{i}", 1e12))
        except Exception as exc:  # noqa: BLE001 - collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store.registrations()) == 80


def test_store_file_not_world_readable_even_with_loose_umask(tmp_path: pathlib.Path) -> None:
    old = os.umask(0)
    try:
        with Store(tmp_path / "u.db"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "u.db").stat().st_mode) == 0o600
