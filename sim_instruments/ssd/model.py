"""Drive model parameter files (`spec: qualify.ssd_model/1`): schema, validation and loader.

A parameter file describes one drive model: identity, capacity, NAND wear and error physics,
ECC, performance, thermal limits and timings. Names resolve under
`fixtures/devices/ssd/NAME.yaml`; unknown keys and wrong types are errors that name the file
and the key path.

    spec: qualify.ssd_model/1
    name: enterprise_tlc_3p84tb
    description: free text
    identity:    {model_number, firmware, vid, ssvid, ieee_oui}
    capacity_bytes: 3840755982336
    lba_sizes_bytes: [512, 4096]
    default_lba_index: 0
    endurance:   {rated_pe_cycles, dwpd, warranty_years}
    nand:        {type, over_provisioning, page_bytes, block_bytes, spare_blocks, spare_threshold_pct,
                  bad_block_eta_pe, bad_block_shape, wear_spread, refresh_interval_powered_h,
                  reliability_degraded_media_errors}
    rber:        {epsilon, alpha, k, beta, m, n, gamma, p, q, read_term_max, ref_temp_c, ea_ev,
                  drive_sigma}
    ecc:         {codeword_data_bytes, codeword_bits, hard_decision_bits,
                  read_retry: [{correctable_bits, latency_us}, ...]}
    performance: {seq_read_bytes_s, read_iops_max, nand_program_bytes_s, write_iops_max,
                  read_latency_us, write_latency_us}
    thermal:     {wctemp_c, cctemp_c, active_rise_c, light_throttle_factor, heavy_throttle_factor}
    power:       {power_loss_protection}
    timing:      {self_test_short_s, self_test_extended_min, sanitize_block_erase_s,
                  sanitize_crypto_erase_s}
    firmware:    {slots}
    ftl:         {blocks, pages_per_block}
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qualify.resources import fixtures_dir

SPEC = "qualify.ssd_model/1"
DEFAULT_MODEL = "enterprise_tlc_3p84tb"
NAND_TYPES = ("SLC", "MLC", "TLC", "QLC")


class SsdModelError(ValueError):
    """A drive model parameter file that is missing, malformed or inconsistent."""


def models_dir() -> Path:
    """Return the folder of the shipped drive model parameter files."""
    return fixtures_dir() / "devices" / "ssd"


@dataclass(frozen=True)
class IdentityParams:
    """What the drive reports about itself in Identify Controller."""

    model_number: str
    firmware: str
    vid: int = 0x1B36
    ssvid: int = 0x1AF4
    ieee_oui: int = 0x525400


@dataclass(frozen=True)
class EnduranceParams:
    """The endurance rating: rated P/E cycles and the datasheet drive-writes-per-day."""

    rated_pe_cycles: int
    dwpd: float
    warranty_years: float


@dataclass(frozen=True)
class NandParams:
    """Physical media: over-provisioning, spare blocks, grown-bad-block wear-out, refresh."""

    type: str
    over_provisioning: float  # ρ = spare / user capacity
    page_bytes: int
    block_bytes: int
    spare_blocks: int  # blocks reserved to replace grown bad blocks
    spare_threshold_pct: int
    bad_block_eta_pe: float  # Weibull scale of block wear-out, in P/E cycles
    bad_block_shape: float
    wear_spread: float  # (max − min) / 2 of per-block erase counts, as a fraction of the mean
    refresh_interval_powered_h: float
    reliability_degraded_media_errors: int


@dataclass(frozen=True)
class RberParams:
    """Composite power law RBER = ε + α·N^k + β·N^m·t^n + γ·N^p·r^q (t in hours at ref_temp_c)."""

    epsilon: float
    alpha: float
    k: float
    beta: float
    m: float
    n: float
    gamma: float
    p: float
    q: float
    read_term_max: float
    ref_temp_c: float
    ea_ev: float
    drive_sigma: float  # lognormal drive-to-drive spread of the whole RBER


@dataclass(frozen=True)
class RetryStep:
    """One rung of the read-retry ladder: what it corrects and what it costs."""

    correctable_bits: int
    latency_us: float


@dataclass(frozen=True)
class EccParams:
    """An ECC codeword of n bits that corrects up to t bit errors after the retry ladder."""

    codeword_data_bytes: int
    codeword_bits: int
    hard_decision_bits: int
    read_retry: tuple[RetryStep, ...]

    @property
    def correctable_bits(self) -> int:
        """Return t: what the last rung of the ladder corrects."""
        return self.read_retry[-1].correctable_bits if self.read_retry else self.hard_decision_bits


@dataclass(frozen=True)
class PerformanceParams:
    """Bandwidth, IOPS and base latencies of a fresh drive at full queue depth."""

    seq_read_bytes_s: float
    read_iops_max: float
    nand_program_bytes_s: float  # host write bandwidth is this divided by the WAF
    write_iops_max: float
    read_latency_us: float
    write_latency_us: float


@dataclass(frozen=True)
class ThermalParams:
    """Composite temperature thresholds and what throttling does above them."""

    wctemp_c: float
    cctemp_c: float
    active_rise_c: float  # composite temperature rise over idle at full load in the fixture
    light_throttle_factor: float  # bandwidth fraction kept at or above WCTEMP
    heavy_throttle_factor: float  # bandwidth fraction kept at or above CCTEMP


@dataclass(frozen=True)
class PowerParams:
    """Power-loss behaviour."""

    power_loss_protection: bool


@dataclass(frozen=True)
class TimingParams:
    """Durations of background operations, in device time."""

    self_test_short_s: float
    self_test_extended_min: int
    sanitize_block_erase_s: float
    sanitize_crypto_erase_s: float


@dataclass(frozen=True)
class FtlParams:
    """Geometry of the scaled-down FTL whose measured WAF drives the full-size drive."""

    blocks: int
    pages_per_block: int


@dataclass(frozen=True)
class SsdModel:
    """One drive model, validated."""

    name: str
    description: str
    identity: IdentityParams
    capacity_bytes: int
    lba_sizes_bytes: tuple[int, ...]
    default_lba_index: int
    endurance: EnduranceParams
    nand: NandParams
    rber: RberParams
    ecc: EccParams
    performance: PerformanceParams
    thermal: ThermalParams
    power: PowerParams
    timing: TimingParams
    firmware_slots: int
    ftl: FtlParams
    source: str = "<data>"

    @property
    def physical_bytes(self) -> int:
        """Return the NAND capacity that holds user data and over-provisioning."""
        return round(self.capacity_bytes * (1.0 + self.nand.over_provisioning))

    @property
    def total_blocks(self) -> int:
        """Return the number of NAND blocks behind the user capacity and over-provisioning."""
        return max(1, self.physical_bytes // self.nand.block_bytes)

    @property
    def wctemp_k(self) -> int:
        """Return WCTEMP in kelvin as Identify Controller reports it."""
        return round(self.thermal.wctemp_c + 273.15)

    @property
    def cctemp_k(self) -> int:
        """Return CCTEMP in kelvin as Identify Controller reports it."""
        return round(self.thermal.cctemp_c + 273.15)


class _Reader:
    """Read typed values out of a mapping; every error names the file and the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> SsdModelError:
        """Return an error naming the file and the key path."""
        return SsdModelError(f"{self.source}: {path}: {message}")

    def mapping(self, data: Any, path: str, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
        """Return `data` as a mapping with no unknown and no missing keys."""
        if not isinstance(data, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(data).__name__}")
        for key in data:
            if key not in allowed:
                raise self.fail(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required):
            if key not in data:
                raise self.fail(f"{path}.{key}", "required key is missing")
        return data

    def number(self, data: Mapping[str, Any], key: str, path: str, low: float | None = None) -> float:
        """Return data[key] as a float of at least `low`."""
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            hint = ""
            if isinstance(value, str) and "e" in value.lower():
                hint = " (YAML 1.1 reads 3.6e9 as text: write the exponent with a sign, 3.6e+9)"
            raise self.fail(f"{path}.{key}", f"expected a number, got {value!r}{hint}")
        if low is not None and value < low:
            raise self.fail(f"{path}.{key}", f"must be at least {low}, got {value!r}")
        return float(value)

    def positive(self, data: Mapping[str, Any], key: str, path: str) -> float:
        """Return data[key] as a positive float."""
        value = self.number(data, key, path)
        if value <= 0:
            raise self.fail(f"{path}.{key}", f"must be positive, got {value!r}")
        return value

    def integer(self, data: Mapping[str, Any], key: str, path: str, low: int = 0) -> int:
        """Return data[key] as an int of at least `low`."""
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{path}.{key}", f"expected an integer, got {value!r}")
        if value < low:
            raise self.fail(f"{path}.{key}", f"must be at least {low}, got {value!r}")
        return value

    def text(self, data: Mapping[str, Any], key: str, path: str) -> str:
        """Return data[key] as a non-empty string."""
        value = data[key]
        if not isinstance(value, str) or not value:
            raise self.fail(f"{path}.{key}", f"expected a non-empty string, got {value!r}")
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: str) -> bool:
        """Return data[key] as a bool (no truthy strings)."""
        value = data[key]
        if not isinstance(value, bool):
            raise self.fail(f"{path}.{key}", f"expected true or false, got {value!r}")
        return value

    def fraction(self, data: Mapping[str, Any], key: str, path: str) -> float:
        """Return data[key] as a float in (0, 1]."""
        value = self.number(data, key, path)
        if not 0.0 < value <= 1.0:
            raise self.fail(f"{path}.{key}", f"must be in (0, 1], got {value!r}")
        return value


_TOP = {
    "spec",
    "name",
    "description",
    "identity",
    "capacity_bytes",
    "lba_sizes_bytes",
    "default_lba_index",
    "endurance",
    "nand",
    "rber",
    "ecc",
    "performance",
    "thermal",
    "power",
    "timing",
    "firmware",
    "ftl",
}
_RBER_KEYS = ("epsilon", "alpha", "k", "beta", "m", "n", "gamma", "p", "q", "read_term_max")


def parse_ssd_model(data: Any, source: str = "<data>") -> SsdModel:
    """Validate plain data (parsed YAML) as a drive model; errors name the source and key path."""
    r = _Reader(source)
    top = r.mapping(data, "model", _TOP, _TOP - {"description", "default_lba_index"})
    if top["spec"] != SPEC:
        raise r.fail("model.spec", f"unsupported spec {top['spec']!r} (this reader knows {SPEC!r})")

    raw = r.mapping(
        top["identity"],
        "identity",
        {"model_number", "firmware", "vid", "ssvid", "ieee_oui"},
        {"model_number", "firmware"},
    )
    identity = IdentityParams(
        model_number=r.text(raw, "model_number", "identity"),
        firmware=r.text(raw, "firmware", "identity"),
        **{key: r.integer(raw, key, "identity") for key in ("vid", "ssvid", "ieee_oui") if key in raw},
    )

    capacity_bytes = r.integer(top, "capacity_bytes", "model", low=1)
    sizes = top["lba_sizes_bytes"]
    if not isinstance(sizes, list) or not sizes:
        raise r.fail("lba_sizes_bytes", "expected a non-empty list of block sizes")
    lba_sizes = tuple(
        r.integer({"size": size}, "size", f"lba_sizes_bytes[{i}]") for i, size in enumerate(sizes)
    )
    default_lba_index = r.integer(top, "default_lba_index", "model") if "default_lba_index" in top else 0

    endurance_keys = {"rated_pe_cycles", "dwpd", "warranty_years"}
    raw = r.mapping(top["endurance"], "endurance", endurance_keys, endurance_keys)
    endurance = EnduranceParams(
        rated_pe_cycles=r.integer(raw, "rated_pe_cycles", "endurance", low=1),
        dwpd=r.positive(raw, "dwpd", "endurance"),
        warranty_years=r.positive(raw, "warranty_years", "endurance"),
    )

    nand_keys = {
        "type",
        "over_provisioning",
        "page_bytes",
        "block_bytes",
        "spare_blocks",
        "spare_threshold_pct",
        "bad_block_eta_pe",
        "bad_block_shape",
        "wear_spread",
        "refresh_interval_powered_h",
        "reliability_degraded_media_errors",
    }
    raw = r.mapping(top["nand"], "nand", nand_keys, nand_keys)
    nand_type = r.text(raw, "type", "nand")
    if nand_type not in NAND_TYPES:
        raise r.fail("nand.type", f"{nand_type!r} is not one of {', '.join(NAND_TYPES)}")
    nand = NandParams(
        type=nand_type,
        over_provisioning=r.positive(raw, "over_provisioning", "nand"),
        page_bytes=r.integer(raw, "page_bytes", "nand", low=512),
        block_bytes=r.integer(raw, "block_bytes", "nand", low=1),
        spare_blocks=r.integer(raw, "spare_blocks", "nand", low=1),
        spare_threshold_pct=r.integer(raw, "spare_threshold_pct", "nand"),
        bad_block_eta_pe=r.positive(raw, "bad_block_eta_pe", "nand"),
        bad_block_shape=r.positive(raw, "bad_block_shape", "nand"),
        wear_spread=r.number(raw, "wear_spread", "nand", low=0.0),
        refresh_interval_powered_h=r.positive(raw, "refresh_interval_powered_h", "nand"),
        reliability_degraded_media_errors=r.integer(raw, "reliability_degraded_media_errors", "nand", low=1),
    )
    if nand.block_bytes % nand.page_bytes:
        raise r.fail("nand.block_bytes", "must be a whole number of pages")
    if nand.spare_threshold_pct > 100:
        raise r.fail("nand.spare_threshold_pct", "must be a percentage (0 to 100)")

    rber_keys = {*_RBER_KEYS, "ref_temp_c", "ea_ev", "drive_sigma"}
    raw = r.mapping(top["rber"], "rber", rber_keys, rber_keys)
    rber = RberParams(
        **{key: r.number(raw, key, "rber", low=0.0) for key in _RBER_KEYS},
        ref_temp_c=r.number(raw, "ref_temp_c", "rber", low=-273.15),
        ea_ev=r.number(raw, "ea_ev", "rber", low=0.0),
        drive_sigma=r.number(raw, "drive_sigma", "rber", low=0.0),
    )

    ecc_keys = {"codeword_data_bytes", "codeword_bits", "hard_decision_bits", "read_retry"}
    raw = r.mapping(top["ecc"], "ecc", ecc_keys, ecc_keys)
    steps_raw = raw["read_retry"]
    if not isinstance(steps_raw, list):
        raise r.fail("ecc.read_retry", "expected a list of {correctable_bits, latency_us}")
    steps = []
    for i, step in enumerate(steps_raw):
        path = f"ecc.read_retry[{i}]"
        step_map = r.mapping(
            step, path, {"correctable_bits", "latency_us"}, {"correctable_bits", "latency_us"}
        )
        steps.append(
            RetryStep(
                correctable_bits=r.integer(step_map, "correctable_bits", path),
                latency_us=r.number(step_map, "latency_us", path, low=0.0),
            )
        )
    ecc = EccParams(
        codeword_data_bytes=r.integer(raw, "codeword_data_bytes", "ecc", low=512),
        codeword_bits=r.integer(raw, "codeword_bits", "ecc", low=1),
        hard_decision_bits=r.integer(raw, "hard_decision_bits", "ecc"),
        read_retry=tuple(steps),
    )
    if ecc.codeword_bits < 8 * ecc.codeword_data_bytes:
        raise r.fail("ecc.codeword_bits", "a codeword cannot be shorter than the data it protects")
    ladder = [ecc.hard_decision_bits] + [step.correctable_bits for step in ecc.read_retry]
    if any(b <= a for a, b in itertools.pairwise(ladder)):
        raise r.fail("ecc.read_retry", "each rung must correct more bits than the one before")

    perf_keys = {
        "seq_read_bytes_s",
        "read_iops_max",
        "nand_program_bytes_s",
        "write_iops_max",
        "read_latency_us",
        "write_latency_us",
    }
    raw = r.mapping(top["performance"], "performance", perf_keys, perf_keys)
    performance = PerformanceParams(**{key: r.positive(raw, key, "performance") for key in sorted(perf_keys)})

    thermal_keys = {"wctemp_c", "cctemp_c", "active_rise_c", "light_throttle_factor", "heavy_throttle_factor"}
    raw = r.mapping(top["thermal"], "thermal", thermal_keys, thermal_keys)
    thermal = ThermalParams(
        wctemp_c=r.number(raw, "wctemp_c", "thermal"),
        cctemp_c=r.number(raw, "cctemp_c", "thermal"),
        active_rise_c=r.number(raw, "active_rise_c", "thermal", low=0.0),
        light_throttle_factor=r.fraction(raw, "light_throttle_factor", "thermal"),
        heavy_throttle_factor=r.fraction(raw, "heavy_throttle_factor", "thermal"),
    )
    if thermal.cctemp_c <= thermal.wctemp_c:
        raise r.fail("thermal.cctemp_c", "must be above wctemp_c")

    raw = r.mapping(top["power"], "power", {"power_loss_protection"}, {"power_loss_protection"})
    power = PowerParams(power_loss_protection=r.boolean(raw, "power_loss_protection", "power"))

    timing_keys = {
        "self_test_short_s",
        "self_test_extended_min",
        "sanitize_block_erase_s",
        "sanitize_crypto_erase_s",
    }
    raw = r.mapping(top["timing"], "timing", timing_keys, timing_keys)
    timing = TimingParams(
        self_test_short_s=r.positive(raw, "self_test_short_s", "timing"),
        self_test_extended_min=r.integer(raw, "self_test_extended_min", "timing", low=1),
        sanitize_block_erase_s=r.positive(raw, "sanitize_block_erase_s", "timing"),
        sanitize_crypto_erase_s=r.positive(raw, "sanitize_crypto_erase_s", "timing"),
    )
    if timing.self_test_short_s > 120:
        raise r.fail("timing.self_test_short_s", "a short device self-test lasts at most two minutes")

    raw = r.mapping(top["firmware"], "firmware", {"slots"}, {"slots"})
    slots = r.integer(raw, "slots", "firmware", low=1)
    if slots > 7:
        raise r.fail("firmware.slots", "NVMe has at most 7 firmware slots")

    raw = r.mapping(top["ftl"], "ftl", {"blocks", "pages_per_block"}, {"blocks", "pages_per_block"})
    ftl = FtlParams(
        blocks=r.integer(raw, "blocks", "ftl", low=8),
        pages_per_block=r.integer(raw, "pages_per_block", "ftl", low=4),
    )

    description = top.get("description", "")
    if not isinstance(description, str):
        raise r.fail("model.description", "expected a string")
    model = SsdModel(
        name=r.text(top, "name", "model"),
        description=description,
        identity=identity,
        capacity_bytes=capacity_bytes,
        lba_sizes_bytes=lba_sizes,
        default_lba_index=default_lba_index,
        endurance=endurance,
        nand=nand,
        rber=rber,
        ecc=ecc,
        performance=performance,
        thermal=thermal,
        power=power,
        timing=timing,
        firmware_slots=slots,
        ftl=ftl,
        source=source,
    )
    if not 0 <= default_lba_index < len(lba_sizes):
        raise r.fail("model.default_lba_index", f"no LBA format {default_lba_index}")
    for i, size in enumerate(lba_sizes):
        if size < 512 or size & (size - 1) or capacity_bytes % size:
            raise r.fail(
                f"lba_sizes_bytes[{i}]",
                f"{size} is not a power of two >= 512 that divides capacity_bytes",
            )
    if ecc.codeword_data_bytes % max(lba_sizes) and max(lba_sizes) % ecc.codeword_data_bytes:
        raise r.fail("ecc.codeword_data_bytes", "codewords and LBAs must nest (one divides the other)")
    return model


def resolve_model_path(name_or_path: str | Path) -> Path:
    """Return the parameter file for a model name (under fixtures) or an explicit path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.parent != Path():
        return candidate
    return models_dir() / f"{name_or_path}.yaml"


def load_ssd_model(name_or_path: str | Path) -> SsdModel:
    """Load and validate a drive model by name (fixtures/devices/ssd/NAME.yaml) or by path."""
    path = resolve_model_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in models_dir().glob("*.yaml"))
        raise SsdModelError(
            f"{path}: no such drive model file (shipped models: {', '.join(known) or 'none'})"
        )
    # A lab of a hundred drives shares one parse; an edited file is read again.
    return _load(str(path.resolve()), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int) -> SsdModel:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SsdModelError(f"{path}: not valid YAML: {exc}") from exc
    return parse_ssd_model(data, source=path)
