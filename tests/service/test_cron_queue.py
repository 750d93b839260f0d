"""Cron expressions and the queue file: parsing, next firing times, errors that name the line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from qualify.errors import InputError
from qualify.service.cron import parse_cron
from qualify.service.queue import load_queue, queue_jobs


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", "2026-03-01T10:07:30", "2026-03-01T10:15:00"),
        ("0 6 * * *", "2026-03-01T06:00:00", "2026-03-02T06:00:00"),
        ("30 2 * * mon-fri", "2026-11-27T03:00:00", "2026-11-30T02:30:00"),  # Friday after 02:30 -> Monday
        ("0 0 1 */3 *", "2026-02-10T00:00:00", "2026-04-01T00:00:00"),
        ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
        ("0 12 13 * 5", "2026-11-01T00:00:00", "2026-11-06T12:00:00"),  # day 13 OR a Friday
        ("5/20 8-9 * * 7", "2026-11-28T00:00:00", "2026-11-29T08:05:00"),  # 7 is Sunday too
        ("@daily", "2026-12-31T23:59:00", "2027-01-01T00:00:00"),
        ("0 9 * jan,jul sun", "2026-02-01T00:00:00", "2026-07-05T09:00:00"),
    ],
)
def test_next_after(expr: str, after: str, expected: str) -> None:
    cron = parse_cron(expr)
    fire = cron.next_after(at(after))
    assert fire == at(expected)
    assert cron.matches(fire)


def test_firings_are_consecutive_matches() -> None:
    cron = parse_cron("*/7 1-2 * * *")
    t, fired = at("2026-05-05T00:00:00"), []
    for _ in range(20):
        t = cron.next_after(t)
        fired.append(t.strftime("%H:%M"))
    assert fired[:9] == ["01:00", "01:07", "01:14", "01:21", "01:28", "01:35", "01:42", "01:49", "01:56"]
    assert fired[9] == "02:00" and fired[18] == "01:00"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("* * * *", "needs 5 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* * * foo *", "month: 'foo' is not a number"),
        ("*/0 * * * *", "step '0'"),
        ("* 5-2 * * *", "runs backwards"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_bad_cron_is_named(expr: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_cron(expr)


def test_queue_ids_are_stable_and_unique(tmp_path: Path) -> None:
    q = tmp_path / "queue.yaml"
    q.write_text(
        "spec: qualify.queue/1\n"
        "runs:\n"
        "  - {id: lot-a, plan: station_smoke, lot: A, slots: 2}\n"
        "  - {plan: station_smoke, lot: B}\n"
        "  - {plan: station_smoke, lot: B}\n"
        "schedules:\n"
        "  - {name: nightly, cron: '0 2 * * *', plan: station_smoke, slots: all}\n"
    )
    ids = [j.id for j in queue_jobs(load_queue(q))]
    assert ids[0] == "queue:lot-a"
    assert ids[1] != ids[2] and ids[1].endswith("-0") and ids[2].endswith("-1")
    # Adding an entry leaves the ids of the others alone: none runs twice.
    q.write_text(q.read_text().replace("schedules:", "  - {plan: station_smoke, lot: C}\nschedules:"))
    assert [j.id for j in queue_jobs(load_queue(q))][:3] == ids


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("runs:\n  - {plan: x, slots: 0}\n", r"queue.yaml:3: runs\[0\].slots"),
        ("runs:\n  - {plan: x, duts: [A], slots: 2}\n", "not both"),
        ("runs:\n  - {plan: x, colour: red}\n", "unknown key 'colour'"),
        ("schedules:\n  - {name: n, cron: '61 * * * *', plan: x}\n", "minute: 61 is outside"),
        (
            "schedules:\n  - {name: n, cron: '@daily', plan: x}\n  - {name: n, cron: '@daily', plan: x}\n",
            "repeats",
        ),
        ("runs:\n  - {id: a, plan: x}\n  - {id: a, plan: y}\n", "run id 'a' repeats"),
        ("service: {sync: {to: 'mysql://x'}}\n", "service.sync.to"),
    ],
)
def test_bad_queue_file_names_key_and_line(tmp_path: Path, body: str, message: str) -> None:
    q = tmp_path / "queue.yaml"
    q.write_text("spec: qualify.queue/1\n" + body)
    with pytest.raises(InputError, match=message):
        load_queue(q)
