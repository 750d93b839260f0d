"""The station service end to end on the simulated lab: queue, slots, schedules, status, restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qualify.service.serve import StationService
from qualify.service.status import format_status, station_status
from tests.cli.conftest import SIM_LAB
from tests.service.conftest import Served, rows, wait_for, write_queue

QUEUE = """
service: {poll_s: 0.1}
runs:
  - {id: lot-a, plan: "{plans}/quick_ssd.yaml", lot: A, slots: 2, seed: 1}
  - {id: lot-b, plan: "{plans}/quick_ssd.yaml", lot: B, slots: 2, seed: 2}
  - {id: lot-c, plan: "{plans}/quick_ssd.yaml", lot: C, slots: 2, seed: 3, priority: -1}
  - {id: bad, plan: no_such_plan}
"""


def jobs(db: Path) -> dict[str, dict[str, object]]:
    return {j["id"]: j for j in rows(db, "SELECT * FROM station_jobs")}


def test_queue_runs_once_on_free_slots(tmp_path: Path, serve: Callable[..., Served]) -> None:
    db = tmp_path / "station.db"
    queue = write_queue(tmp_path / "queue.yaml", QUEUE)
    served = serve(SIM_LAB, queue, db, http_port=None)
    ended = ("finished", "failed")
    wait_for(
        "lots a, b, c", lambda: all(j["state"] in ended for j in jobs(db).values()) and len(jobs(db)) == 4
    )
    got = jobs(db)
    assert got["queue:bad"]["state"] == "failed" and "no_such_plan" in str(got["queue:bad"]["message"])
    a, b, c = got["queue:lot-a"], got["queue:lot-b"], got["queue:lot-c"]
    assert {a["state"], b["state"], c["state"]} == {"finished"}
    # a and b ran side by side on the two supplies' slots; c waited for slots to free up.
    assert {a["slots_json"], b["slots_json"]} == {"[1, 2]", "[3, 4]"}
    assert str(a["started_at"]) < str(b["ended_at"]) and str(b["started_at"]) < str(a["ended_at"])
    assert str(c["started_at"]) >= min(str(a["ended_at"]), str(b["ended_at"]))
    for job, lot in ((a, "A"), (b, "B"), (c, "C")):
        run = rows(db, "SELECT * FROM runs WHERE id = ?", (job["run_id"],))[0]
        assert (run["status"], run["lot"], run["station"]) == ("completed", lot, "sim-lab")
        assert len(rows(db, "SELECT * FROM duts WHERE run_id = ?", (job["run_id"],))) == 2

    # The operator adds a lot for one named DUT: the running service takes it from the file.
    plan = Path(__file__).parent / "plans" / "quick_ssd.yaml"
    queue.write_text(queue.read_text() + f'  - {{id: lot-d, plan: "{plan}", duts: [QSIM0004]}}\n')
    wait_for("lot d", lambda: jobs(db).get("queue:lot-d", {}).get("state") == "finished")
    d = jobs(db)["queue:lot-d"]
    assert rows(db, "SELECT serial FROM duts WHERE run_id = ?", (d["run_id"],)) == [{"serial": "QSIM0004"}]

    # A queue file broken by an edit is reported and the last good one kept.
    good = queue.read_text()
    queue.write_text(good + "  - {plan: [unclosed\n")
    wait_for("the broken queue to be reported", lambda: any("not reloaded" in line for line in served.lines))
    assert served.thread.is_alive()
    queue.write_text(good)

    status = station_status(db)
    (st,) = status["stations"]
    assert st["state"] == "running" and [s["state"] for s in st["slots"]] == ["free"] * 4
    text = format_status(status)
    assert "station sim-lab: running" in text and "queue:lot-a" in text and "100.0 %" in text
    summary = served.end()
    assert summary.started == 4 and summary.finished == 4 and summary.failed == 1

    # A restarted service takes nothing twice.
    again = StationService(SIM_LAB, queue, db, http_port=None, echo=lambda s: None)
    again.open()
    for _ in range(3):
        again.tick()
    assert not again.children and again.summary.started == 0
    again.close()
    assert len(rows(db, "SELECT id FROM runs")) == 4
    assert station_status(db)["stations"][0]["state"] == "stopped"


def test_schedule_fires_on_its_cron(tmp_path: Path, serve: Callable[..., Served]) -> None:
    db = tmp_path / "station.db"
    queue = write_queue(
        tmp_path / "queue.yaml",
        """
service: {poll_s: 0.05}
schedules:
  - {name: sweep, cron: "*/10 * * * *", plan: "{plans}/quick_ssd.yaml", slots: 1}
""",
    )
    # 20 minutes of schedule time per second: the sweep is due every half second or so.
    served = serve(SIM_LAB, queue, db, http_port=None, clock_speed=1200)
    wait_for("two sweeps", lambda: len(rows(db, "SELECT id FROM station_jobs WHERE state = 'finished'")) >= 2)
    served.end()
    fired = rows(db, "SELECT id, source, state FROM station_jobs ORDER BY rowid")
    assert all(j["source"] == "schedule" and j["id"].startswith("schedule:sweep:") for j in fired)
    minutes = [int(j["id"][-3:-1]) for j in fired]  # ...THH:MMZ
    assert all(m % 10 == 0 for m in minutes) and len(set(j["id"] for j in fired)) == len(fired)
    # A sweep still running when the next is due is skipped, never stacked.
    assert any("skipped" in line for line in served.lines) or len(fired) >= 2
    assert rows(db, "SELECT name, cron FROM station_schedules") == [{"name": "sweep", "cron": "*/10 * * * *"}]
