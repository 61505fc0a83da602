"""`plateau report`: the report page's figures from the command line, and its argument errors."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.store import rollup_reports
from appliance.store.db import Store
from tests.unit.test_store_rollups import DAY, QUEUES, T0, random_log, seeded


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    with Store(tmp_path / "plateau.db") as store:
        seeded(store, random_log(5, days=3))
    return tmp_path


def day(offset: int) -> str:
    return dt.date.fromtimestamp(T0 + offset * DAY).isoformat()


def test_json_has_every_kpi_and_equals_the_store(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--data-dir", str(data_dir), "--from", day(1), "--to", day(2), "--interval", "1h",
                 "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    start = dt.datetime.fromisoformat(day(1)).timestamp()
    end = dt.datetime.fromisoformat(day(3)).timestamp()
    with Store(data_dir / "plateau.db") as store:
        total, per = rollup_reports.kpis(store, start, end, limits=dict(QUEUES))
    for name in ("offered", "answered", "abandoned", "missed", "overflowed", "service_level", "abandon_rate",
                 "asa_s", "att_s", "aht_s", "fcr", "ring_no_answer"):
        assert data["total"][name] == pytest.approx(getattr(total, name)), name
    assert [q["queue"] for q in data["queues"]] == sorted(per)
    assert data["total"]["occupancy"] == pytest.approx(total.occupancy)
    assert len(data["intervals"]) == 48 and sum(r["offered"] for r in data["intervals"]) == total.offered
    assert {a["agent"] for a in data["agents"]} >= set(total.calls_per_agent)


def test_table_csv_rebuild_and_filters(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["report", "--data-dir", str(data_dir), "--from", day(1)]
    assert main([*base, "--queue", "sales"]) == 0
    out = capsys.readouterr().out
    assert "kpis:" in out and "sales" in out and "billing" not in out
    assert main([*base, "--agent", "2001", "--format", "json"]) == 0
    assert [a["agent"] for a in json.loads(capsys.readouterr().out)["agents"]] == ["2001"]
    assert main([*base, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("queue,sl_threshold_s,offered,answered")
    with Store(data_dir / "plateau.db") as store:  # a row bulk-loaded behind the roll-ups' back
        store.execute("INSERT INTO queue_log (at, event, queue, call_id) VALUES (?, 'ENTER', 'sales', 'x')",
                      (T0 + DAY + 60,))
    assert main([*base, "--format", "json"]) == 0
    before = json.loads(capsys.readouterr().out)["total"]["offered"]
    assert main(["report", "--data-dir", str(data_dir), "--rebuild"]) == 0
    assert "rebuilt" in capsys.readouterr().err
    assert main([*base, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["offered"] == before + 1


@pytest.mark.parametrize("args, message", [
    (["--from", "2026-02-30"], "not a date"),
    (["--from", "2026-03-02", "--to", "2026-03-01"], "before --from"),
    (["--from", "2024-01-01", "--to", "2025-06-01"], "at most 366 days"),
    ([], "--from is required"),
    (["--from", "2026-03-01", "--queue", "nosuch"], "no queue named 'nosuch'"),
    (["--from", "2026-03-01", "--agent", "nobody"], "no agent 'nobody'"),
    (["--from", "2026-03-01", "--interval", "5m"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_a_message(data_dir: Path, capsys: pytest.CaptureFixture[str],
                                             args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--data-dir", str(data_dir), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


