"""Read results from the fleet database (PostgreSQL) through the Store read API.

`PgStore` answers the same calls the results and report code make of a read-only `Store`
(rows, run, runs, checkpoint, close), so `qualify report --lot ID --db postgresql://...`
reports a lot spread over many stations. Queries keep SQLite's `?` placeholders; they are
translated here. The connection is read-only: every transaction is `READ ONLY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qualify.errors import HarnessError, InputError

URL_PREFIXES = ("postgresql://", "postgres://")


def is_postgres_url(db: object) -> bool:
    """Return whether a --db value names a PostgreSQL database rather than a SQLite file."""
    text = str(db)
    return text.startswith(URL_PREFIXES) or text.startswith(("postgresql:/", "postgres:/"))


def normalise_url(db: object) -> str:
    """Return the URL, repairing the `//` a pathlib.Path makes into `/` (a --db typed as Path)."""
    text = str(db)
    for scheme in ("postgresql:", "postgres:"):
        if text.startswith(scheme + "/") and not text.startswith(scheme + "//"):
            return scheme + "/" + text[len(scheme) :]
    return text


def translate_placeholders(sql: str) -> str:
    """Turn SQLite `?` placeholders into psycopg `%s`, escaping `%`; quoted text is left alone."""
    out = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class PgStore:
    """A read-only results source over the fleet database."""

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.rows import dict_row

        from qualify.sync.ship import target_name

        self.url = normalise_url(url)
        self.path = target_name(self.url)  # what messages name; never the password
        try:
            self.conn = psycopg.connect(
                self.url,
                connect_timeout=10,
                autocommit=True,
                row_factory=dict_row,
                application_name="qualify",
            )
        except psycopg.Error as exc:
            raise HarnessError(f"fleet database {self.path}: {str(exc).strip().splitlines()[0]}") from None
        self.conn.read_only = True
        exists = self.conn.execute("SELECT to_regclass('runs') IS NOT NULL AS ok").fetchone()
        if not exists or not exists["ok"]:
            self.conn.close()
            raise InputError(f"{self.path} is not a qualify fleet database (no runs table)")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Return the rows of a parameterised query (SQLite `?` placeholders) as dicts."""
        import psycopg

        try:
            with self.conn.transaction():
                return list(self.conn.execute(translate_placeholders(sql), tuple(params)).fetchall())
        except psycopg.Error as exc:
            raise HarnessError(f"fleet database {self.path}: {str(exc).strip().splitlines()[0]}") from None

    def run(self, run_id: str) -> dict[str, Any]:
        """Return a run row; a unique prefix of the id is accepted."""
        rows = self.rows(
            "SELECT * FROM runs WHERE id = ? OR id LIKE ? ORDER BY started_at",
            (run_id, run_id.replace("%", r"\%").replace("_", r"\_") + "%"),
        )
        exact = [r for r in rows if r["id"] == run_id]
        if exact:
            return exact[0]
        if len(rows) == 1:
            return rows[0]
        if not rows:
            raise InputError(f"no run {run_id!r} in {self.path}")
        raise InputError(f"run id prefix {run_id!r} matches {len(rows)} runs in {self.path}")

    def runs(self, lot: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest runs first, optionally of one lot."""
        if lot is None:
            return self.rows("SELECT * FROM runs ORDER BY started_at DESC, id LIMIT ?", (limit,))
        return self.rows(
            "SELECT * FROM runs WHERE lot = ? ORDER BY started_at DESC, id LIMIT ?", (lot, limit)
        )

    def checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """Return None: checkpoints stay on the station that can resume the run."""
        return None
