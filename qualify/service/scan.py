"""The operator flow: scan each DUT's barcode, slot by slot, and check it against the device.

A barcode scanner types the serial and Enter. The operator scans the DUTs in slot order; a blank
line (or the end of input) ends the scan, and the DUTs scanned are the ones the run takes. Each
scanned serial must be what the device in that slot reports (NVMe identify, SPD serial): a
mislabelled or swapped DUT, or the same label scanned twice, is refused before any stress starts.
"""

from __future__ import annotations

from collections.abc import Callable

from qualify.errors import InputError
from qualify.station.binding import BoundDut, BoundStation


def scan_serials(
    station: BoundStation,
    read_line: Callable[[], str | None],
    echo: Callable[[str], None],
    *,
    duts: list[BoundDut] | None = None,
) -> list[str]:
    """Read one scanned serial per slot in slot order; return the serials, checked.

    `duts` limits the scan to some DUTs (those of the plan's kind); by default every DUT of the
    station. Raises InputError naming the slot, the scanned and the reported serial on a
    mismatch, both slots on a duplicate, and when nothing was scanned.
    """
    candidates = sorted(duts if duts is not None else station.duts, key=lambda d: d.slot)
    if not candidates:
        raise InputError(f"station {station.name} has no DUT to scan")
    scanned: list[str] = []
    where: dict[str, int] = {}
    for dut in candidates:
        echo(f"scan slot {dut.slot} ({dut.kind}), or Enter to end:")
        line = read_line()
        text = _clean(line)
        if not text:
            break
        if text in where:
            raise InputError(
                f"slot {dut.slot}: scanned serial {text!r} was already scanned for slot {where[text]}"
            )
        if dut.error:
            raise InputError(
                f"slot {dut.slot}: scanned serial {text!r}, but the device reports no serial ({dut.error})"
            )
        if text != dut.serial:
            raise InputError(
                f"slot {dut.slot}: scanned serial {text!r} but the device reports {dut.serial!r}; "
                "check the label and the slot"
            )
        where[text] = dut.slot
        scanned.append(text)
        echo(f"slot {dut.slot}: {text} ok")
    if not scanned:
        raise InputError("no serial scanned: scan at least the DUT in the first slot")
    return scanned


def _clean(line: str | None) -> str:
    """Strip what scanners add around a code: whitespace, CR/LF, and control characters."""
    if line is None:
        return ""
    return "".join(ch for ch in line if ch.isprintable()).strip()


def scan_for_run(
    station_path: str,
    kind: str,
    read_line: Callable[[], str | None],
    echo: Callable[[str], None],
    seed: int = 0,
) -> list[str]:
    """Bind the station, scan the DUTs of a plan's kind (all for a station plan), release it.

    The returned serials are what `qualify run --scan` passes to the run as its DUTs.
    """
    from qualify.clock import RealClock, VirtualClock
    from qualify.station.binding import bind_station, load_station

    spec, _ = load_station(station_path)
    clock = VirtualClock() if spec.simulation is not None else RealClock()
    station = bind_station(station_path, clock, seed)
    try:
        duts = [d for d in station.duts if kind == "station" or d.kind == kind]
        return scan_serials(station, read_line, echo, duts=duts)
    finally:
        station.close()
