"""Plan job mappings → WorkloadSpec, and WorkloadResult → flat readings."""

from __future__ import annotations

import pytest

from drivers.workload.jobs import JESD219_ENTERPRISE_BS_SPLIT
from drivers.workload.params import result_to_readings, spec_from_params
from drivers.workload.spec import DirectionResult, WorkloadResult


def test_spec_fields_with_bs_shorthand_and_pair_lists() -> None:
    spec = spec_from_params(
        {"name": "r", "rw": "randread", "bs": 4096, "runtime_s": 5, "zones": [[80, 20], [20, 80]]}
    )
    assert spec.bs_split == ((4096, 1.0),)
    assert spec.zones == ((80, 20), (20, 80))
    spec = spec_from_params({"rw": "write", "bs_split": [[4096, 0.5], [8192, 0.5]], "size_bytes": 1 << 20})
    assert spec.name == "workload" and spec.bs_split == ((4096, 0.5), (8192, 0.5))


def test_profiles_build_the_standard_workloads() -> None:
    spec = spec_from_params({"profile": "jesd219_enterprise", "runtime_s": 30, "seed": 4})
    assert spec.bs_split == JESD219_ENTERPRISE_BS_SPLIT and spec.seed == 4
    spec = spec_from_params({"profile": "ai_checkpoint_burst", "checkpoint_bytes": 1 << 30})
    assert spec.rw == "write"


def test_bad_job_mappings_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown workload parameters: blocksize"):
        spec_from_params({"rw": "read", "blocksize": 4096, "size_bytes": 1})
    with pytest.raises(ValueError, match="unknown workload profile"):
        spec_from_params({"profile": "nope"})
    with pytest.raises(ValueError, match="unknown parameters bs"):
        spec_from_params({"profile": "jesd219_enterprise", "bs": 4096, "runtime_s": 1})
    with pytest.raises(ValueError, match="bs or bs_split"):
        spec_from_params({"rw": "read", "bs": 4096, "bs_split": [[4096, 1.0]], "size_bytes": 1})
    with pytest.raises(ValueError, match="whole number"):
        spec_from_params({"rw": "read", "bs": 4096.5, "size_bytes": 1})
    with pytest.raises(ValueError, match="list of pairs"):
        spec_from_params({"rw": "read", "zones": [50, 50], "size_bytes": 1})


def test_readings_are_flat_and_skip_unmeasured_latency() -> None:
    result = WorkloadResult(
        name="x",
        write=DirectionResult(iops=1000.0, bw_bytes_s=4096e3, io_bytes=4096, lat_p99_us=80.0),
        runtime_s=2.5,
        errors=2,
        verify_failures=[(0, "stale"), (4096, "corrupted"), (8192, "corrupted")],
    )
    readings = result_to_readings(result)
    assert readings["write_bw_bytes_s"] == 4096e3 and readings["write_lat_p99_us"] == 80.0
    assert "write_lat_p50_us" not in readings and "read_lat_p99_us" not in readings
    assert readings["read_iops"] == 0.0
    assert (readings["runtime_s"], readings["errors"], readings["verify_failures"]) == (2.5, 2.0, 3.0)
    assert (readings["verify_corrupted"], readings["verify_stale"], readings["verify_unwritten"]) == (
        2.0,
        1.0,
        0.0,
    )
