"""A 1000-DUT lot renders with summary figures, not 1000 charts, and every DUT in the table."""

from __future__ import annotations

import re
from pathlib import Path

from qualify.report.render import render_run
from qualify.store.db import Batch, Store
from tests.unit.export_db import run_row

RUN = run_row("big-run")


def _big_run(db: Path, duts: int) -> None:
    store = Store(db)
    store.insert_rows("runs", [RUN])
    serials = [f"SN{i:05d}" for i in range(duts)]
    store.insert_rows(
        "duts",
        [
            {
                "run_id": "big-run",
                "serial": s,
                "kind": "ssd",
                "model": "m",
                "firmware": "f",
                "slot": i,
                "verdict": "fail" if i % 250 == 7 else "pass",
                "address": "a",
            }
            for i, s in enumerate(serials)
        ],
    )
    batch = Batch()
    seq = 0
    for k in range(5):
        for i, serial in enumerate(serials):
            seq += 1
            step_id = f"st-{k}-{i}"
            status = "fail" if (i % 250 == 7 and k == 4) else "pass"
            batch.steps.append(
                (
                    step_id,
                    "big-run",
                    serial,
                    "endurance",
                    "health",
                    k + 1,
                    status,
                    k * 3600.0,
                    k * 3600.0 + 60,
                    "a",
                    "b",
                    None,
                    "nvme.health",
                    seq,
                )
            )
            batch.measurements.append(
                (step_id, "percentage_used", 20.0 * k + i % 7, None, "%", None, 100.0, "pass")
            )
            batch.telemetry.append(("big-run", serial, k * 3600.0, "temp_c", 40.0 + i % 5, "°C"))
    store.write_batch(batch, None)
    store.close()


def test_thousand_dut_lot_summarises(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    _big_run(db, 1000)
    html = render_run(db, "big-run")
    assert html.count("<svg") <= 6  # summary figures, not one per DUT
    assert "min–max of 1000 DUTs" in html
    table = html[html.index('id="duts"') : html.index("</table>", html.index('id="duts"'))]
    assert len(re.findall(r"<tr>", table)) == 1001  # header + every DUT
    assert 'id="weibull"' in html  # four failures: a fit
    assert len(html) < 3_000_000
