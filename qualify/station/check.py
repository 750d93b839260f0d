"""Probe every instrument and DUT of a station: identity, or the error that stopped it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qualify.clock import RealClock, VirtualClock
from qualify.station.binding import bind_station, load_station


@dataclass(frozen=True)
class ProbeRow:
    """One line of a station check: what, where, and its identity or error."""

    kind: str
    name: str
    driver: str
    address: str
    ok: bool
    detail: str


def check_station(path: Path, seed: int = 0) -> list[ProbeRow]:
    """Bind a station and report each instrument's identity and each DUT's identify data."""
    spec, _ = load_station(path)
    clock = VirtualClock() if spec.simulation is not None else RealClock()
    station = bind_station(path, clock, seed)
    try:
        rows = [
            ProbeRow("instrument", i.name, i.driver_name, i.address, i.error is None, i.idn or i.error or "")
            for i in station.instruments.values()
        ]
        for d in station.duts:
            detail = d.error or f"{d.serial} · {d.model or '?'} · firmware {d.firmware or '?'}"
            rows.append(
                ProbeRow(
                    "dut", f"slot {d.slot} ({d.kind})", d.driver_name, d.address, d.error is None, detail
                )
            )
        station.safe_state()
        return rows
    finally:
        station.close()


def format_rows(rows: list[ProbeRow]) -> str:
    """Format probe rows as an aligned table."""
    headers = ("", "what", "name", "driver", "address", "identity or error")
    table = [headers] + [
        ("ok" if r.ok else "DEAD", r.kind, r.name, r.driver, r.address, r.detail) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)
