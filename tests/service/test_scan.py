"""The operator's barcode scan: each serial checked against what the device in its slot reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from qualify.errors import InputError
from qualify.service.scan import scan_for_run, scan_serials
from qualify.station.binding import BoundDut, BoundStation
from tests.cli.conftest import SIM_LAB


def station(*duts: tuple[int, str, str | None]) -> BoundStation:
    st = BoundStation(name="bench", path=Path("bench.yaml"), sha256="0" * 64, spec=None)  # type: ignore[arg-type]
    for slot, serial, error in duts:
        st.duts.append(
            BoundDut(
                slot=slot, kind="ssd", address=f"sim://{slot}", driver_name="nvme", serial=serial, error=error
            )
        )
    return st


def lines(*typed: str | None) -> Callable[[], str | None]:
    queue = list(typed)
    return lambda: queue.pop(0) if queue else None


BENCH = station((2, "SN-B", None), (1, "SN-A", None), (3, "SN-C", None))


def test_scans_in_slot_order_and_blank_line_ends() -> None:
    said: list[str] = []
    got = scan_serials(BENCH, lines(" SN-A\r\n", "SN-B\n", "", "SN-C"), said.append)
    assert got == ["SN-A", "SN-B"]
    assert said[0].startswith("scan slot 1") and "slot 2: SN-B ok" in said


def test_end_of_input_ends_the_scan() -> None:
    assert scan_serials(BENCH, lines("SN-A", "SN-B", "SN-C"), lambda s: None) == ["SN-A", "SN-B", "SN-C"]


def test_mismatch_names_slot_scanned_and_reported() -> None:
    with pytest.raises(InputError, match=r"slot 2: scanned serial 'SN-C' but the device reports 'SN-B'"):
        scan_serials(BENCH, lines("SN-A", "SN-C"), lambda s: None)


def test_duplicate_names_both_slots() -> None:
    with pytest.raises(InputError, match=r"slot 2: scanned serial 'SN-A' was already scanned for slot 1"):
        scan_serials(BENCH, lines("SN-A", "SN-A"), lambda s: None)


def test_dead_device_cannot_be_confirmed() -> None:
    bench = station((1, "UNKNOWN-SLOT1", "no answer to identify"))
    with pytest.raises(InputError, match=r"slot 1: scanned serial 'SN-A', but the device reports no serial"):
        scan_serials(bench, lines("SN-A"), lambda s: None)


def test_nothing_scanned_is_refused() -> None:
    with pytest.raises(InputError, match="no serial scanned"):
        scan_serials(BENCH, lines(""), lambda s: None)


def test_scan_against_the_simulated_lab() -> None:
    """The serials come from the devices themselves (NVMe identify over the sim transport)."""
    assert scan_for_run(str(SIM_LAB), "ssd", lines("QSIM0001", "QSIM0002", ""), lambda s: None) == [
        "QSIM0001",
        "QSIM0002",
    ]
    with pytest.raises(
        InputError, match="slot 1: scanned serial 'QSIM0002' but the device reports 'QSIM0001'"
    ):
        scan_for_run(str(SIM_LAB), "ssd", lines("QSIM0002"), lambda s: None)
