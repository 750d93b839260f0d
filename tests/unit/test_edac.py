"""EDAC counters on the fixture sysfs tree: snapshot, delta around a step, label → slot mapping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drivers.dimm.edac import EdacReader, PhysicalAddressMap, counts_delta
from drivers.errors import InstrumentError, ProtocolError
from drivers.protocols import EdacCounters

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "edac" / "mc"
SLOTS = {"CPU0_DIMM_A1": 1, "CPU0_DIMM_B1": 2, "cpu0_dimm_c1": 3, "mc1/dimm0": 5, "channel 1 slot 0": 6}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "mc"
    shutil.copytree(FIXTURE, root)
    return root


def _bump(path: Path, by: int) -> None:
    path.write_text(f"{int(path.read_text()) + by}\n")


def test_reader_is_an_edac_counters() -> None:
    assert isinstance(EdacReader(FIXTURE), EdacCounters)


def test_fixture_snapshot_has_two_controllers_and_their_dimms() -> None:
    snap = EdacReader(FIXTURE).read()
    assert [mc.name for mc in snap.controllers] == ["mc0", "mc1"]
    assert [d.path_key for d in snap.dimms] == [
        "mc0/dimm0", "mc0/dimm1", "mc0/dimm2", "mc0/dimm3", "mc1/dimm0", "mc1/dimm1",
    ]  # fmt: skip
    b1 = snap.dimm("CPU0_DIMM_B1")
    assert b1 is not None
    assert (b1.ce, b1.ue, b1.location, b1.size_mb) == (3, 1, "channel 1 slot 0", 65536)
    assert snap.controllers[0].mc_name.startswith("Intel_10nm")


def test_snapshot_counts_by_label_with_noinfo_entries() -> None:
    counts = EdacReader(FIXTURE).snapshot()
    assert counts["CPU0_DIMM_B1"] == (3, 1)
    assert counts["CPU0_DIMM_A1"] == (0, 0)
    assert counts["CPU_SrcID#1_MC#0_Chan#1_DIMM#0"] == (0, 0)
    assert counts["mc0/noinfo"] == (0, 0) and counts["mc1/noinfo"] == (0, 0)
    assert len(counts) == 8


def test_delta_around_a_step(tree: Path) -> None:
    reader = EdacReader(tree, slot_map=SLOTS)
    before = reader.snapshot()
    _bump(tree / "mc0" / "dimm2" / "dimm_ce_count", 5)
    _bump(tree / "mc1" / "ue_noinfo_count", 1)
    delta = reader.delta(before)
    assert delta["CPU0_DIMM_C1"] == (5, 0)
    assert delta["mc1/noinfo"] == (0, 1)
    assert delta["CPU0_DIMM_B1"] == (0, 0)  # counted before the step: not the step's errors


def test_around_fills_the_watch_when_the_block_ends(tree: Path) -> None:
    reader = EdacReader(tree)
    with reader.around() as watch:
        assert watch.delta == {}
        _bump(tree / "mc0" / "dimm0" / "dimm_ue_count", 2)
    assert watch.delta["CPU0_DIMM_A1"] == (0, 2)
    assert sum(ce + ue for ce, ue in watch.delta.values()) == 2


def test_counter_reset_counts_from_zero() -> None:
    assert counts_delta({"x": (2, 0)}, {"x": (10, 0)}) == {"x": (2, 0)}
    assert counts_delta({"new": (1, 1)}, {}) == {"new": (1, 1)}


def test_labels_locations_and_sysfs_names_map_to_slots(tree: Path) -> None:
    reader = EdacReader(tree, slot_map=SLOTS)
    snap = reader.read()
    slots = {d.path_key: reader.slot_of(d) for d in snap.dimms}
    assert slots == {
        "mc0/dimm0": 1,  # label
        "mc0/dimm1": 2,  # label wins over its location ("channel 1 slot 0" → 6)
        "mc0/dimm2": 3,  # label, case and spacing ignored
        "mc0/dimm3": None,  # not in the station's map
        "mc1/dimm0": 5,  # sysfs name
        "mc1/dimm1": 6,  # location
    }


def test_errors_by_slot_sums_what_rose(tree: Path) -> None:
    reader = EdacReader(tree, slot_map=SLOTS)
    before = reader.snapshot()
    _bump(tree / "mc0" / "dimm1" / "dimm_ce_count", 4)
    _bump(tree / "mc1" / "dimm1" / "dimm_ue_count", 1)
    _bump(tree / "mc0" / "dimm3" / "dimm_ce_count", 7)  # unmapped DIMM: no slot to blame
    assert reader.errors_by_slot(reader.delta(before)) == {2: (4, 0), 6: (0, 1)}


def test_duplicate_labels_fall_back_to_sysfs_names(tree: Path) -> None:
    (tree / "mc1" / "dimm1" / "dimm_label").write_text("CPU0_DIMM_A1\n")
    counts = EdacReader(tree).snapshot()
    assert "CPU0_DIMM_A1" not in counts
    assert {"mc0/dimm0", "mc1/dimm1"} <= set(counts)


def test_rank_directories_of_older_kernels(tmp_path: Path) -> None:
    rank = tmp_path / "mc" / "mc0" / "rank3"
    rank.mkdir(parents=True)
    (tmp_path / "mc" / "mc0" / "ce_count").write_text("2\n")
    for name, value in (("dimm_label", "DIMM_X"), ("dimm_location", "csrow 1 channel 1"), ("size", "8192")):
        (rank / name).write_text(value + "\n")
    (rank / "dimm_ce_count").write_text("2\n")
    (rank / "dimm_ue_count").write_text("0\n")
    reader = EdacReader(tmp_path / "mc", slot_map={"csrow 1 channel 1": 4})
    snap = reader.read()
    assert [d.path_key for d in snap.dimms] == ["mc0/rank3"]
    assert snap.counts()["DIMM_X"] == (2, 0)
    assert reader.slot_of(snap.dimms[0]) == 4


def test_missing_tree_and_garbled_counts_are_errors(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(InstrumentError, match="EDAC"):
        EdacReader(tmp_path / "absent").read()
    (tree / "mc0" / "dimm0" / "dimm_ce_count").write_text("lots\n")
    with pytest.raises(ProtocolError, match="expected a count"):
        EdacReader(tree).read()


def test_physical_address_map_names_the_dimm() -> None:
    amap = PhysicalAddressMap(
        [(0x1_0000_0000, 0x2_0000_0000, "CPU0_DIMM_B1"), (0, 0x8000_0000, "CPU0_DIMM_A1")]
    )
    assert amap.label_at(0x1000) == "CPU0_DIMM_A1"
    assert amap.label_at(0x1_8000_0000) == "CPU0_DIMM_B1"
    assert amap.label_at(0x9000_0000) is None  # the hole below 4 GiB
    assert amap.label_at(0x2_0000_0000) is None  # end is exclusive
    with pytest.raises(ValueError, match="overlap"):
        PhysicalAddressMap([(0, 100, "a"), (50, 200, "b")])
