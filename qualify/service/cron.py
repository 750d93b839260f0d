"""Five-field cron expressions (minute hour day-of-month month day-of-week) for station schedules.

The classic Vixie-cron semantics: lists, ranges, steps, `*`, month and weekday names, 0 or 7
for Sunday, and when both day fields are restricted a day matches if either does. Times are
UTC, as every wall-clock time qualify records. Also `@hourly`, `@daily`, `@weekly`, `@monthly`,
`@yearly`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from qualify.errors import InputError

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# (name, low, high, names) per field
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# A valid expression matches within four years (29 February); beyond that it never will.
_SEARCH_LIMIT = timedelta(days=4 * 366 + 1)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the allowed values of each field."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def matches(self, when: datetime) -> bool:
        """Return whether the expression fires in the minute of `when`."""
        if when.minute not in self.minutes or when.hour not in self.hours or when.month not in self.months:
            return False
        return self._day_ok(when)

    def _day_ok(self, when: datetime) -> bool:
        weekday = (when.weekday() + 1) % 7  # datetime: Monday 0; cron: Sunday 0
        dom, dow = when.day in self.days, weekday in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow  # cron's rule: either day field may match
        return dom and dow

    def next_after(self, when: datetime) -> datetime:
        """Return the first firing time strictly after `when` (to the minute, same tzinfo)."""
        t = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = t + _SEARCH_LIMIT
        while t < end:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        raise InputError(f"cron {self.text!r} never fires")


def parse_cron(text: str) -> Cron:
    """Parse a cron expression; raise InputError naming the field that is wrong."""
    expr = _ALIASES.get(text.strip().lower(), text)
    parts = expr.split()
    if len(parts) != 5:
        raise InputError(
            f"cron {text!r}: needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    sets = [_parse_field(text, part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    cron = Cron(
        text=text,
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=weekdays,
        days_restricted=not parts[2].startswith("*"),
        weekdays_restricted=not parts[4].startswith("*"),
    )
    cron.next_after(datetime(2000, 1, 1))  # refuse `30 2 31 2 *` (never) now, not at run time
    return cron


def _parse_field(
    text: str, field: str, name: str, low: int, high: int, names: dict[str, int]
) -> frozenset[int]:
    values: set[int] = set()
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InputError(f"cron {text!r}: {name}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, stop = _value(text, a, name, low, high, names), _value(text, b, name, low, high, names)
            if start > stop:
                raise InputError(f"cron {text!r}: {name}: range {base!r} runs backwards")
        else:
            start = _value(text, base, name, low, high, names)
            stop = high if step_text else start  # `5/15` means from 5 on, every 15
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def _value(text: str, token: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    key = token.lower()
    if key in names:
        return names[key]
    if not token.isdigit():
        raise InputError(f"cron {text!r}: {name}: {token!r} is not a number or a name")
    value = int(token)
    if not low <= value <= high:
        raise InputError(f"cron {text!r}: {name}: {value} is outside {low}-{high}")
    return value
