"""Export a run from the results store as JUnit XML, CSV, Parquet, STDF V4 or a JSON record.

Each format is a sink over the stored run: it reads the database read-only, streams large
tables in chunks, and moves its output into place only once complete. `qualify export` calls
`export_run`; the modules document their layouts (junit, tabular, json_record, stdf).
"""

from __future__ import annotations

from pathlib import Path

from qualify.errors import InputError

FORMATS = ("junit", "csv", "parquet", "stdf", "json")


def export_run(db: Path, run_id: str, fmt: str, output: Path, *, include_telemetry: bool = False) -> Path:
    """Write run `run_id` of database `db` in format `fmt` to `output`; return what was written.

    `junit`, `stdf` and `json` write one file (into a folder, named after the run id); `csv` and
    `parquet` write a folder of tables. `include_telemetry` puts every telemetry sample in the
    JSON record (the CSV and Parquet tables always hold them all). A unique prefix of the run
    id is accepted.
    """
    # Imported per format so that, e.g., a JUnit export never loads pyarrow.
    if fmt == "junit":
        from qualify.export.junit import write_junit

        return write_junit(db, run_id, output)
    if fmt == "csv":
        from qualify.export.tabular import write_csv

        return write_csv(db, run_id, output)
    if fmt == "parquet":
        from qualify.export.tabular import write_parquet

        return write_parquet(db, run_id, output)
    if fmt == "stdf":
        from qualify.export.stdf import write_stdf

        return write_stdf(db, run_id, output)
    if fmt == "json":
        from qualify.export.json_record import write_json

        return write_json(db, run_id, output, include_telemetry=include_telemetry)
    raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
