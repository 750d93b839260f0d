"""DIMM model parameter files (`spec: qualify.dimm_model/1`): what makes one simulated RDIMM unlike another.

A file names the SPD image the module carries and the statistics of the cells that matter:

    spec: qualify.dimm_model/1
    name: rdimm_healthy
    description: free text
    spd_image: samsung_M323R2GA3DB0-CWMOD.rdimm.bin   # in fixtures/spd/
    retention: {reference_temp_c, doubling_c, weak_cells, weak_min_ms, weak_max_ms, tail_exponent,
                dpd_min_factor, vrt_fraction, vrt_ratio, vrt_low_probability, vrt_dwell_s}
    vmin: {marginal_cells, worst_vmin_v_at_25c, spread_v, tempco_v_per_c}
    rowhammer: {vulnerable_cells, hcfirst_min, hcfirst_sigma, trr_tracked_rows}
    pmic: {vdd_v, vddq_v, vpp_v}
    faults: [{kind: stuck_at, address: 4096, bit: 3, value: 0}, ...]   # see faults.py

Every section and key is optional (defaults below); an unknown key or spec is an error naming the
file and the key path, as pyvisa-sim does for its device files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qualify.resources import fixtures_dir
from sim_instruments.dimm.faults import Fault

SPEC = "qualify.dimm_model/1"


@dataclass(frozen=True)
class RetentionParams:
    """Describe the weak tail of the retention-time distribution, at `reference_temp_c`.

    Tail cells' retention times follow a truncated power law between weak_min_ms and weak_max_ms:
    the fraction below t is (t^k - min^k) / (max^k - min^k) with k = tail_exponent. Leakage doubles
    every `doubling_c` (retention halves). Each cell keeps a data-pattern factor in
    [dpd_min_factor, 1] applied when its neighbours hold the opposite data (Liu et al., ISCA'13); a
    `vrt_fraction` of them are variable-retention-time cells that spend epochs of `vrt_dwell_s` in a
    low state (retention / vrt_ratio) with probability vrt_low_probability.
    """

    reference_temp_c: float = 45.0
    doubling_c: float = 10.0
    weak_cells: int = 1000
    weak_min_ms: float = 4000.0
    weak_max_ms: float = 256000.0
    tail_exponent: float = 1.0
    dpd_min_factor: float = 0.8
    vrt_fraction: float = 0.05
    vrt_ratio: float = 2.0
    vrt_low_probability: float = 0.3
    vrt_dwell_s: float = 600.0


@dataclass(frozen=True)
class VminParams:
    """Describe cells whose sense margin fails below a VDD threshold that rises with temperature."""

    marginal_cells: int = 300
    worst_vmin_v_at_25c: float = 0.985
    spread_v: float = 0.02
    tempco_v_per_c: float = 0.0006


@dataclass(frozen=True)
class RowHammerParams:
    """Describe cells that flip when neighbour rows are activated hcfirst times in a refresh window.

    hcfirst is lognormal above hcfirst_min (sigma in natural-log units); target row refresh
    protects victims of up to `trr_tracked_rows` aggressor rows per bank and refresh window, so
    patterns with more aggressors defeat it (TRRespass, Frigo et al., S&P 2020).
    """

    vulnerable_cells: int = 64
    hcfirst_min: int = 40_000
    hcfirst_sigma: float = 0.5
    trr_tracked_rows: int = 4


@dataclass(frozen=True)
class PmicParams:
    """Hold the rails' power-on setpoints in volts."""

    vdd_v: float = 1.1
    vddq_v: float = 1.1
    vpp_v: float = 1.8


@dataclass(frozen=True)
class DimmModelParams:
    """Describe one DIMM model: SPD image, cell statistics, rail setpoints and injected faults."""

    name: str
    spd_image: str = "samsung_M323R2GA3DB0-CWMOD.rdimm.bin"
    description: str = ""
    retention: RetentionParams = field(default_factory=RetentionParams)
    vmin: VminParams = field(default_factory=VminParams)
    rowhammer: RowHammerParams = field(default_factory=RowHammerParams)
    pmic: PmicParams = field(default_factory=PmicParams)
    faults: tuple[Fault, ...] = ()

    def spd_bytes(self) -> bytes:
        """Return the SPD image this module carries, read from fixtures/spd/."""
        path = Path(self.spd_image)
        if not path.is_absolute():
            path = fixtures_dir() / "spd" / self.spd_image
        return path.read_bytes()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "dimm model") -> DimmModelParams:
        """Build a model from plain data; errors name `source` and the key path."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected a mapping at the top level")
        spec = data.get("spec")
        if spec != SPEC:
            raise ValueError(f"{source}: spec: expected {SPEC!r}, got {spec!r}")
        top = {"spec", "name", "description", "spd_image", "retention", "vmin", "rowhammer", "pmic", "faults"}
        _known(data, top, source, "")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}: name: expected a non-empty string, got {name!r}")
        faults_raw = data.get("faults", [])
        if not isinstance(faults_raw, list):
            raise ValueError(f"{source}: faults: expected a list")
        try:
            faults = tuple(Fault.from_dict(raw, f"faults[{i}]") for i, raw in enumerate(faults_raw))
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        return cls(
            name=name,
            spd_image=_string(data, "spd_image", source, cls.spd_image),
            description=_string(data, "description", source, ""),
            retention=_section(data, "retention", RetentionParams, source),
            vmin=_section(data, "vmin", VminParams, source),
            rowhammer=_section(data, "rowhammer", RowHammerParams, source),
            pmic=_section(data, "pmic", PmicParams, source),
            faults=faults,
        )


def model_path(name: str) -> Path:
    """Return the file of model `name` (fixtures/devices/dimm/NAME.yaml), or `name` if it is a path."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name)
    return fixtures_dir() / "devices" / "dimm" / f"{name}.yaml"


def load_model(name: str) -> DimmModelParams:
    """Load and validate a DIMM model file by name or path; errors name the file and the key."""
    path = model_path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read DIMM model: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    return DimmModelParams.from_dict(data, str(path))


def _known(data: Mapping[str, Any], allowed: set[str], source: str, path: str) -> None:
    for key in data:
        if key not in allowed:
            raise ValueError(f"{source}: {path}{key}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _string(data: Mapping[str, Any], key: str, source: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{source}: {key}: expected a string, got {value!r}")
    return value


def _section(data: Mapping[str, Any], key: str, kind: type[Any], source: str) -> Any:
    raw = data.get(key, {})
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: {key}: expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    _known(raw, set(fields), source, f"{key}.")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        default = fields[name].default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{source}: {key}.{name}: expected a number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ValueError(f"{source}: {key}.{name}: expected an integer, got {value!r}")
        if value < 0:
            raise ValueError(f"{source}: {key}.{name}: must not be negative, got {value!r}")
        values[name] = int(value) if isinstance(default, int) else float(value)
    section = kind(**values)
    _check(section, key, source)
    return section


def _check(section: Any, key: str, source: str) -> None:
    if isinstance(section, RetentionParams):
        if not 0 < section.weak_min_ms < section.weak_max_ms:
            raise ValueError(f"{source}: {key}: need 0 < weak_min_ms < weak_max_ms")
        if not 0 < section.dpd_min_factor <= 1 or not 0 <= section.vrt_fraction <= 1:
            raise ValueError(f"{source}: {key}: dpd_min_factor in (0, 1], vrt_fraction in [0, 1]")
        if section.vrt_ratio < 1 or min(section.doubling_c, section.tail_exponent, section.vrt_dwell_s) <= 0:
            raise ValueError(f"{source}: {key}: vrt_ratio >= 1; doubling_c, tail_exponent, vrt_dwell_s > 0")
    if isinstance(section, RowHammerParams) and section.hcfirst_min < 1:
        raise ValueError(f"{source}: {key}.hcfirst_min: must be at least 1")
