"""Reading the fleet database through the Store read API: results and a lot report across stations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

import qualify.report.render as render
import qualify.results as results
from qualify.errors import HarnessError, InputError
from qualify.store.postgres import PgStore, is_postgres_url, normalise_url, translate_placeholders
from qualify.store.source import open_results
from qualify.sync.ship import sync_to_postgres
from tests.sync.conftest import copy_db


def test_placeholders_are_translated_outside_quotes() -> None:
    sql = "SELECT '?' AS q, \"a?\" FROM t WHERE x = ? AND y LIKE '%' || ? AND z % 2 = 0"
    assert translate_placeholders(sql) == (
        "SELECT '?' AS q, \"a?\" FROM t WHERE x = %s AND y LIKE '%%' || %s AND z %% 2 = 0"
    )


def test_urls_survive_a_path_option() -> None:
    url = "postgresql://u@127.0.0.1:5432/fleet"
    assert is_postgres_url(url) and is_postgres_url(Path(url))
    assert normalise_url(Path(url)) == url
    assert not is_postgres_url(Path("results/qualify.db"))


@pytest.fixture
def synced(station_dbs: dict[str, Path], tmp_path: Path, fleet_url: str) -> str:
    for name, db in station_dbs.items():
        folder = tmp_path / name
        folder.mkdir()
        sync_to_postgres(copy_db(db, folder), fleet_url)
    return fleet_url


@pytest.fixture
def by_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make results and report open their --db through open_results, as the lead's change does."""

    def opener(db: Any, readonly: bool = True) -> Any:
        return open_results(db)

    monkeypatch.setattr(results, "Store", opener, raising=False)
    monkeypatch.setattr(render, "Store", opener, raising=False)


def test_lot_report_spans_stations(synced: str, by_url: None, tmp_path: Path) -> None:
    out = render.write_lot_report(synced, "SPREAD", tmp_path / "lot.html")  # type: ignore[arg-type]
    html = out.read_text()
    assert "Qualification report: lot SPREAD" in html
    assert html.count("QSIM0001") >= 2  # the same serials tested on both stations
    runs = results.list_runs(synced, lot="SPREAD")  # type: ignore[arg-type]
    assert {r["station"] for r in runs} == {"line1-st1", "line1-st2"}
    assert all(r["duts"] == 4 and r["passed"] == 4 for r in runs)
    summary = results.run_summary(synced, runs[0]["id"][:8])  # type: ignore[arg-type]
    assert summary["run"]["id"] == runs[0]["id"] and len(summary["duts"]) == 4
    assert summary["step_counts"]["pass"] > 0


def test_pgstore_is_read_only_and_names_no_password(synced: str) -> None:
    store = PgStore(synced.replace("postgres@", "postgres:secret@"))
    try:
        assert "secret" not in str(store.path)
        assert store.checkpoint("anything") is None
        with pytest.raises(HarnessError, match="read-only"):
            store.rows("DELETE FROM events")
        with pytest.raises(InputError, match="no run"):
            store.run("ffffffff")
        assert len(store.runs(limit=10)) == 4
    finally:
        store.close()


def test_empty_database_is_not_a_fleet_database(pg_server: Any) -> None:
    url = pg_server.create_db()
    with pytest.raises(InputError, match="not a qualify fleet database"):
        open_results(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
