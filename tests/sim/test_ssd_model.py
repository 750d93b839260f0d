"""Drive model parameter files: the shipped lots, versioning, and errors that name the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim_instruments.ssd import SsdModelError, load_ssd_model
from sim_instruments.ssd.model import models_dir, parse_ssd_model


def raw(name: str = "enterprise_tlc_3p84tb") -> dict[str, Any]:
    data = yaml.safe_load((models_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_shipped_models_load_by_name_and_by_path() -> None:
    healthy = load_ssd_model("enterprise_tlc_3p84tb")
    assert healthy.capacity_bytes == 3_840_755_982_336
    assert healthy.nand.type == "TLC"
    assert healthy.endurance.rated_pe_cycles == 3000
    assert healthy.lba_sizes_bytes == (512, 4096)
    assert healthy.ecc.correctable_bits == 1100
    by_path = load_ssd_model(models_dir() / "enterprise_tlc_3p84tb.yaml")
    assert by_path == healthy


def test_the_weak_lot_differs_only_in_its_media() -> None:
    healthy, weak = raw(), raw("weak_media_tlc_3p84tb")
    assert weak["rber"]["beta"] > healthy["rber"]["beta"]
    assert weak["nand"]["spare_blocks"] < healthy["nand"]["spare_blocks"]
    for key in ("identity", "capacity_bytes", "ecc", "performance", "thermal", "power", "timing", "ftl"):
        assert weak[key] == healthy[key], key


def test_unknown_keys_are_rejected_by_name(tmp_path: Path) -> None:
    data = raw()
    data["ecc"]["read_retry"][1]["latency"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SsdModelError, match=r"bad\.yaml: ecc\.read_retry\[1\]\.latency: unknown key"):
        load_ssd_model(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(spec="qualify.ssd_model/2"), r"model\.spec: unsupported spec"),
        (lambda d: d.update(colour="red"), r"model\.colour: unknown key"),
        (lambda d: d["nand"].pop("spare_blocks"), r"nand\.spare_blocks: required key is missing"),
        (lambda d: d["nand"].update(type="PLC"), r"nand\.type: 'PLC' is not one of"),
        (lambda d: d["rber"].update(beta="6.28e-5"), r"rber\.beta: expected a number.*exponent with a sign"),
        (lambda d: d["thermal"].update(cctemp_c=60.0), r"thermal\.cctemp_c: must be above wctemp_c"),
        (lambda d: d.update(lba_sizes_bytes=[520]), r"lba_sizes_bytes\[0\]: 520 is not a power of two"),
        (lambda d: d["ecc"]["read_retry"][0].update(correctable_bits=100), r"ecc\.read_retry: each rung"),
        (lambda d: d["timing"].update(self_test_short_s=300.0), r"timing\.self_test_short_s: .*two minutes"),
        (
            lambda d: d["power"].update(power_loss_protection="yes"),
            r"power\.power_loss_protection: expected true",
        ),
    ],
)
def test_bad_values_are_errors_that_name_the_key(change: Any, message: str) -> None:
    data = copy.deepcopy(raw())
    change(data)
    with pytest.raises(SsdModelError, match=message):
        parse_ssd_model(data, "test.yaml")


def test_a_missing_model_lists_the_shipped_ones() -> None:
    with pytest.raises(SsdModelError, match="enterprise_tlc_3p84tb, weak_media_tlc_3p84tb"):
        load_ssd_model("no_such_drive")
