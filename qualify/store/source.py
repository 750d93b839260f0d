"""Open a results source by what `--db` names: a SQLite file (Store) or the fleet database (PgStore)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from qualify.store.db import Store
from qualify.store.postgres import PgStore, is_postgres_url


class ResultsSource(Protocol):
    """The read API that results, reports and the status page use."""

    @property
    def path(self) -> Any:
        """Return what messages name the source by."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Return the rows of a query with `?` placeholders."""

    def run(self, run_id: str) -> dict[str, Any]:
        """Return a run row by id or unique prefix."""

    def runs(self, lot: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest runs first, optionally of one lot."""

    def checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """Return a run's last checkpoint, if the source keeps them."""

    def close(self) -> None:
        """Release the source."""


def open_results(db: str | Path) -> ResultsSource:
    """Open `db` for reading: a `postgresql://` URL opens the fleet database, anything else SQLite."""
    if is_postgres_url(db):
        return PgStore(str(db))
    return Store(db, readonly=True)
