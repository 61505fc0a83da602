"""The engine on PostgreSQL (`plateau run --db postgresql://...`): a real call, its CDR in the database."""
from __future__ import annotations

from pathlib import Path

from appliance.store.db import Store
from tests.peers.engine import Engine
from tests.peers.pjsua import registered_phone as _phone
from tests.peers.polling import wait_until


def test_a_call_through_an_engine_on_postgresql_writes_its_cdr_there(tmp_path: Path, postgres_url: str) -> None:
    eng = Engine(tmp_path / "engine", db=postgres_url)
    with eng.running():
        with _phone(eng, "a", "1001") as a, _phone(eng, "b", "1002", auto_answer=True), Store(postgres_url) as store:
            # The phones registered through the engine: their bindings are in PostgreSQL.
            assert {r.aor for r in store.registrations()} >= {"1001", "1002"}
            ca = a.call(f"sip:1002@127.0.0.1:{eng.sip_port}")
            a.wait_state(ca, "CONFIRMED")
            a.wait_rx_audio(ca, 0.5)
            a.hangup(ca)
            a.wait_state(ca, "DISCONNECTED")
        with Store(postgres_url) as store:
            closed = wait_until(lambda: [c for c in store.cdrs() if c.disposition],
                                what="the closed CDR in PostgreSQL")
    assert [(c.caller, c.callee, c.disposition) for c in closed] == [("1001", "1002", "ANSWERED")]
    # Nothing went to a SQLite file beside it: the configuration was imported there too.
    assert not (eng.data_dir / "plateau.db").exists()
