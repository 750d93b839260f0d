"""The simulated lab: a chamber, bench supplies, meters, slot switches and DUTs, on real links.

The world evolves analytically from the shared clock, which the lab reads and never advances;
every value is a closed-form function of time between events (commands, trips), so a 2000-hour
bake costs one evaluation:

- Chamber air: the controller ramps its working setpoint from the present air temperature to
  the target at the ramp rate, and the air follows the working setpoint through a second-order
  underdamped loop, the closed-loop model of a PID-controlled chamber: during a ramp the air
  trails the ramp by `rate × lag_s` (the lag's time constant), and at the end of the ramp it
  overshoots slightly and rings down, as chamber plots show. `overshoot_pct` is the loop's step
  overshoot, which fixes the damping; `lag_s` fixes its natural frequency. With the controller
  stopped (STANDBY, OFF, or an alarm stop) the air relaxes to ambient with `passive_tau_s`.
- Alarms: if the air leaves the controller's alarm band the controller stops at that instant
  (found on the closed form, not at the next query) and the air relaxes to ambient.
- DUTs: each draws its power (idle plus any load its device model sets) while its supply channel
  is on within its operating window and its slot switch is closed; its temperature follows
  chamber air plus power × thermal resistance through a first-order lag (`thermal_tau_s`).
- Supplies: per-channel over-voltage and over-current protection trip and latch as the E36300
  does; the measured current follows the DUTs' load.

Instruments speak their real dialects over loopback TCP (supplies and meters, pyvisa `@py`) and
ptys (chamber and slot switch, pyserial). `snapshot()`/`restore()` carry every mutable value, so
a restored lab at the same virtual time answers exactly as the original.

Configuration (`LabConfig.from_dict`, unknown keys are errors that name the key path):

    chamber:     {name: chamber, ambient_c: 25, ramp_c_per_min: 5.0, min_c: -40, max_c: 150,
                  lag_s: 10, overshoot_pct: 20, passive_tau_s: 1800}
    supplies:    [{name: psu1, model: E36313A}]
    multimeters: [{name: dmm1, model: 34465A, volts: slot1 | psu1:2, amps: slot1,
                   temp: slot1 | chamber}]          (each input optional: what is wired to it)
    slot_power:  [{name: sw1, model: QTL1461, ports: 4}]
    duts:        [{slot: 1, kind: ssd|dimm, serial: S1, supply: psu1, channel: 2,
                   idle_w: (seeded, around 6 W ssd / 4 W dimm), rth_c_per_w: (seeded, ~2.0),
                   thermal_tau_s: (240 ssd / 90 dimm), nominal_v: 12.0,
                   slot_power: sw1, slot_power_port: (the slot number),
                   model: device model parameter file name (optional)}]
    faults:      [{target: psu1 | slot3, kind: no_reply, at_s: 3600.0}]   (see faults.py)

A device model attached to a slot (`attach_device`) may implement `inject(kind, at_s=...)` to
receive `slot<N>` faults, and may set its DUT's extra load with `SimDut.set_load_w()`. One that
implements `sync()` is brought up to date just before its DUT's thermal course or power changes
(`SimDevice`); `SimDut.temperature_at(t_s)` gives the DUT's temperature at any remembered time,
and `SimDut.lock` the lab's lock, which such a model shares so the two never wait on each other.
"""

from __future__ import annotations

import cmath
import dataclasses
import math
import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qualify.clock import Clock
from sim_instruments import noise
from sim_instruments.chamber_espec import CONTROLLER, EspecSim
from sim_instruments.dmm_34465a import MODELS as DMM_MODELS
from sim_instruments.dmm_34465a import TruevoltSim
from sim_instruments.faults import INSTRUMENT_FAULT_KINDS, FaultConfig, FaultInjector, validate_faults
from sim_instruments.psu_e36300 import RATINGS, E36300Sim
from sim_instruments.servers import PtyLineServer, Reply, TcpLineServer
from sim_instruments.slot_power_quarch import CONTROLLER_MODELS, MAX_PORTS, QuarchArraySim

__all__ = [
    "ChamberConfig",
    "DutConfig",
    "FaultConfig",
    "Lab",
    "LabConfig",
    "MultimeterConfig",
    "SimDevice",
    "SimDut",
    "SlotPowerConfig",
    "SupplyConfig",
]

STATE_SPEC = "qualify.sim_lab_state/2"
DUT_KINDS = ("ssd", "dimm")
FAULT_KINDS = INSTRUMENT_FAULT_KINDS
# Typical idle power at 12 V: an enterprise NVMe SSD idles near 6 W, a DDR5 RDIMM near 4 W.
IDLE_W_BY_KIND = {"ssd": 6.0, "dimm": 4.0}
# A U.2 drive (~150 g of aluminium at ~2 °C/W) settles in minutes, a heat-spread RDIMM faster.
THERMAL_TAU_S_BY_KIND = {"ssd": 240.0, "dimm": 90.0}
RTH_C_PER_W = 2.0
IDLE_W_SPREAD = 0.05  # relative sigma of the seeded part-to-part variation
RTH_SPREAD = 0.10
OPERATING_WINDOW = 0.10  # a DUT runs within ±10 % of its nominal supply voltage
SUPPLY_VOLTS_NOISE = 0.0005  # 0.5 mV, below the E36300 readback accuracy
SUPPLY_AMPS_NOISE = 0.0001  # 0.1 mA
CHAMBER_TEMP_NOISE_C = 0.03
DMM_NOISE = {"volts": 5e-6, "amps": 1e-6, "temp": 0.02}  # 6½-digit meter, thermocouple junction
UPPER_ALARM = 1
LOWER_ALARM = 2
# The alarm search samples the closed form at 1/32 of the ringing period and refines crossings
# by bisection; ringing below 1e-9 °C is treated as settled.
_SCAN_SAMPLES_PER_PERIOD = 32
_SETTLED_C = 1e-9
_BISECTIONS = 60
# How many changes (DUT pins, chamber pieces) the lab remembers for temperatures in the past:
# device models never look back further than their last sync; the bound keeps a long-running
# lab's memory flat. Past it, the older half is forgotten.
HISTORY_CHANGES = 4096
_SIGNAL_SLOT = re.compile(r"^slot(?P<slot>\d+)$")
_SIGNAL_CHANNEL = re.compile(r"^(?P<supply>[^:]+):(?P<channel>\d+)$")


def _require(data: Mapping[str, Any], path: str, allowed: set[str], required: set[str]) -> None:
    """Raise ValueError naming the path of an unknown or missing key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise ValueError(f"{path}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required):
        if key not in data:
            raise ValueError(f"{path}.{key}: required key is missing")


def _number(data: Mapping[str, Any], key: str, path: str, default: float | None = None) -> float:
    """Return data[key] as a float; booleans and strings are errors that name the key path."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{path}.{key}: expected a number, got {value!r}")
    return float(value)


def _optional_number(data: Mapping[str, Any], key: str, path: str) -> float | None:
    """Return data[key] as a float, or None when absent."""
    return _number(data, key, path) if key in data else None


def _text(data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    """Return data[key] as a non-empty string."""
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{path}.{key}: expected a non-empty string, got {value!r}")
    return value


def _optional_text(data: Mapping[str, Any], key: str, path: str) -> str | None:
    """Return data[key] as a non-empty string, or None when absent or null."""
    return _text(data, key, path) if data.get(key) is not None else None


def _integer(data: Mapping[str, Any], key: str, path: str, default: int | None = None) -> int:
    """Return data[key] as an int."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}.{key}: expected an integer, got {value!r}")
    return value


def _optional_integer(data: Mapping[str, Any], key: str, path: str) -> int | None:
    """Return data[key] as an int, or None when absent."""
    return _integer(data, key, path) if key in data else None


def _items(data: Mapping[str, Any], key: str, path: str) -> list[Any]:
    """Return data[key] as a list (absent means empty)."""
    value = data.get(key, [])
    if not isinstance(value, list | tuple):
        raise ValueError(f"{path}.{key}: expected a list, got {type(value).__name__}")
    return list(value)


@dataclass(frozen=True)
class ChamberConfig:
    """The chamber: name, ambient, ramp rate, controller range and air-loop dynamics."""

    name: str = "chamber"
    ambient_c: float = 25.0
    ramp_c_per_min: float = 5.0
    min_c: float = -40.0
    max_c: float = 150.0
    # A 10 s loop lag and 20 % step overshoot make a 5 °C/min ramp end about 0.8 °C behind the
    # ramp and overshoot by about 0.3 °C, the size of an ESPEC controller's rated fluctuation.
    lag_s: float = 10.0
    overshoot_pct: float = 20.0
    passive_tau_s: float = 1800.0


@dataclass(frozen=True)
class SupplyConfig:
    """A bench supply by name and E36300 model."""

    name: str
    model: str = "E36313A"


@dataclass(frozen=True)
class MultimeterConfig:
    """A Truevolt DMM and the lab signals wired to its inputs (None: nothing wired)."""

    name: str
    model: str = "34465A"
    volts: str | None = None
    amps: str | None = None
    temp: str | None = None


@dataclass(frozen=True)
class SlotPowerConfig:
    """A Quarch array controller whose ports switch DUT slots."""

    name: str
    model: str = "QTL1461"
    ports: int = 4


@dataclass(frozen=True)
class DutConfig:
    """A DUT in a slot, powered from one supply channel; None means a seeded default."""

    slot: int
    kind: str
    serial: str
    supply: str
    channel: int
    idle_w: float | None = None
    rth_c_per_w: float | None = None
    nominal_v: float = 12.0
    model: str | None = None
    thermal_tau_s: float | None = None
    slot_power: str | None = None
    slot_power_port: int | None = None


_CHAMBER_NUMBERS = (
    "ambient_c",
    "ramp_c_per_min",
    "min_c",
    "max_c",
    "lag_s",
    "overshoot_pct",
    "passive_tau_s",
)
_DUT_KEYS = {
    "slot",
    "kind",
    "serial",
    "supply",
    "channel",
    "idle_w",
    "rth_c_per_w",
    "nominal_v",
    "model",
    "thermal_tau_s",
    "slot_power",
    "slot_power_port",
}
_FAULT_KEYS = {"target", "kind", "at_s", "until_s", "after_commands", "probability"}


@dataclass(frozen=True)
class LabConfig:
    """The whole simulated lab, validated on construction."""

    chamber: ChamberConfig = field(default_factory=ChamberConfig)
    supplies: tuple[SupplyConfig, ...] = ()
    duts: tuple[DutConfig, ...] = ()
    faults: tuple[FaultConfig, ...] = ()
    multimeters: tuple[MultimeterConfig, ...] = ()
    slot_power: tuple[SlotPowerConfig, ...] = ()

    def __post_init__(self) -> None:
        self._check_chamber()
        names = [
            self.chamber.name,
            *(s.name for s in self.supplies),
            *(m.name for m in self.multimeters),
            *(p.name for p in self.slot_power),
        ]
        if len(set(names)) != len(names):
            raise ValueError(f"lab: instrument names must be unique, got {names}")
        for i, supply in enumerate(self.supplies):
            if supply.model not in RATINGS:
                raise ValueError(
                    f"lab.supplies[{i}].model: unknown model {supply.model!r} "
                    f"(known: {', '.join(sorted(RATINGS))})"
                )
        for i, unit in enumerate(self.slot_power):
            if unit.model not in CONTROLLER_MODELS:
                raise ValueError(
                    f"lab.slot_power[{i}].model: unknown model {unit.model!r} "
                    f"(known: {', '.join(CONTROLLER_MODELS)})"
                )
            if not 1 <= unit.ports <= MAX_PORTS:
                raise ValueError(f"lab.slot_power[{i}].ports: must be 1 to {MAX_PORTS}")
        self._check_duts()
        for i, meter in enumerate(self.multimeters):
            self._check_meter(i, meter)
        validate_faults(self.faults, names, {dut.slot for dut in self.duts})

    def _check_chamber(self) -> None:
        """Raise ValueError on chamber parameters no controller could have."""
        chamber = self.chamber
        for key in ("ramp_c_per_min", "lag_s", "passive_tau_s"):
            if getattr(chamber, key) <= 0:
                raise ValueError(f"lab.chamber.{key}: must be positive")
        if not 0 < chamber.overshoot_pct <= 50:
            raise ValueError("lab.chamber.overshoot_pct: must be in (0, 50]")
        if not chamber.min_c < chamber.ambient_c < chamber.max_c:
            raise ValueError("lab.chamber: need min_c < ambient_c < max_c")

    def _check_duts(self) -> None:
        """Raise ValueError naming the key path of the first inconsistent DUT."""
        supplies = {s.name: s for s in self.supplies}
        switches = {p.name: p for p in self.slot_power}
        slots: set[int] = set()
        serials: set[str] = set()
        ports: set[tuple[str, int]] = set()
        for i, dut in enumerate(self.duts):
            path = f"lab.duts[{i}]"
            if dut.kind not in DUT_KINDS:
                raise ValueError(f"{path}.kind: {dut.kind!r} is not one of {DUT_KINDS}")
            if dut.slot in slots:
                raise ValueError(f"{path}.slot: slot {dut.slot} is used twice")
            if dut.serial in serials:
                raise ValueError(f"{path}.serial: serial {dut.serial!r} is used twice")
            slots.add(dut.slot)
            serials.add(dut.serial)
            if dut.supply not in supplies:
                raise ValueError(f"{path}.supply: no supply named {dut.supply!r}")
            if dut.channel not in RATINGS[supplies[dut.supply].model]:
                raise ValueError(f"{path}.channel: {dut.supply} has no channel {dut.channel}")
            if dut.nominal_v <= 0:
                raise ValueError(f"{path}.nominal_v: must be positive")
            for key in ("idle_w", "rth_c_per_w", "thermal_tau_s"):
                value = getattr(dut, key)
                if value is not None and value <= 0:
                    raise ValueError(f"{path}.{key}: must be positive")
            if dut.slot_power is None:
                if dut.slot_power_port is not None:
                    raise ValueError(f"{path}.slot_power_port: needs slot_power")
                continue
            if dut.slot_power not in switches:
                raise ValueError(f"{path}.slot_power: no slot_power unit named {dut.slot_power!r}")
            port = dut.slot_power_port if dut.slot_power_port is not None else dut.slot
            if not 1 <= port <= switches[dut.slot_power].ports:
                key = "slot_power_port" if dut.slot_power_port is not None else "slot"
                raise ValueError(
                    f"{path}.{key}: {dut.slot_power} has ports 1 to {switches[dut.slot_power].ports}, "
                    f"not {port} (set slot_power_port)"
                )
            if (dut.slot_power, port) in ports:
                raise ValueError(f"{path}.slot_power_port: port {port} of {dut.slot_power} is used twice")
            ports.add((dut.slot_power, port))

    def _check_meter(self, i: int, meter: MultimeterConfig) -> None:
        """Raise ValueError naming the key path of a meter input wired to nothing known."""
        path = f"lab.multimeters[{i}]"
        if meter.model not in DMM_MODELS:
            raise ValueError(f"{path}.model: unknown model {meter.model!r} (known: {', '.join(DMM_MODELS)})")
        slots = {dut.slot for dut in self.duts}
        supplies = {s.name: s for s in self.supplies}
        for key, allowed in (
            ("volts", "slot<N> or <supply>:<channel>"),
            ("amps", "slot<N>"),
            ("temp", "slot<N>"),
        ):
            signal = getattr(meter, key)
            if signal is None:
                continue
            slot = _SIGNAL_SLOT.match(signal)
            channel = _SIGNAL_CHANNEL.match(signal)
            if slot is not None:
                if int(slot.group("slot")) not in slots:
                    raise ValueError(f"{path}.{key}: no DUT in slot {slot.group('slot')}")
            elif key == "volts" and channel is not None:
                supply = supplies.get(channel.group("supply"))
                if supply is None or int(channel.group("channel")) not in RATINGS[supply.model]:
                    raise ValueError(f"{path}.volts: no supply channel {signal!r}")
            elif not (key == "temp" and signal == self.chamber.name):
                extra = f" or {self.chamber.name}" if key == "temp" else ""
                raise ValueError(f"{path}.{key}: {signal!r} is not {allowed}{extra}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabConfig:
        """Build a config from plain data (parsed YAML/JSON); errors name the key path."""
        _require(data, "lab", {"chamber", "supplies", "multimeters", "slot_power", "duts", "faults"}, set())
        raw_chamber = data.get("chamber", {})
        _require(raw_chamber, "lab.chamber", {"name", *_CHAMBER_NUMBERS}, set())
        default = ChamberConfig()
        chamber = ChamberConfig(
            name=_text(raw_chamber, "name", "lab.chamber", default.name),
            **{
                key: _number(raw_chamber, key, "lab.chamber", getattr(default, key))
                for key in _CHAMBER_NUMBERS
            },
        )
        supplies = []
        for i, raw in enumerate(_items(data, "supplies", "lab")):
            path = f"lab.supplies[{i}]"
            _require(raw, path, {"name", "model"}, {"name"})
            supplies.append(
                SupplyConfig(name=_text(raw, "name", path), model=_text(raw, "model", path, "E36313A"))
            )
        meters = []
        for i, raw in enumerate(_items(data, "multimeters", "lab")):
            path = f"lab.multimeters[{i}]"
            _require(raw, path, {"name", "model", "volts", "amps", "temp"}, {"name"})
            meters.append(
                MultimeterConfig(
                    name=_text(raw, "name", path),
                    model=_text(raw, "model", path, "34465A"),
                    volts=_optional_text(raw, "volts", path),
                    amps=_optional_text(raw, "amps", path),
                    temp=_optional_text(raw, "temp", path),
                )
            )
        switches = []
        for i, raw in enumerate(_items(data, "slot_power", "lab")):
            path = f"lab.slot_power[{i}]"
            _require(raw, path, {"name", "model", "ports"}, {"name"})
            switches.append(
                SlotPowerConfig(
                    name=_text(raw, "name", path),
                    model=_text(raw, "model", path, "QTL1461"),
                    ports=_integer(raw, "ports", path, 4),
                )
            )
        duts = []
        for i, raw in enumerate(_items(data, "duts", "lab")):
            path = f"lab.duts[{i}]"
            _require(raw, path, _DUT_KEYS, {"slot", "kind", "serial", "supply", "channel"})
            duts.append(
                DutConfig(
                    slot=_integer(raw, "slot", path),
                    kind=_text(raw, "kind", path),
                    serial=_text(raw, "serial", path),
                    supply=_text(raw, "supply", path),
                    channel=_integer(raw, "channel", path),
                    idle_w=_optional_number(raw, "idle_w", path),
                    rth_c_per_w=_optional_number(raw, "rth_c_per_w", path),
                    nominal_v=_number(raw, "nominal_v", path, 12.0),
                    model=_optional_text(raw, "model", path),
                    thermal_tau_s=_optional_number(raw, "thermal_tau_s", path),
                    slot_power=_optional_text(raw, "slot_power", path),
                    slot_power_port=_optional_integer(raw, "slot_power_port", path),
                )
            )
        faults = []
        for i, raw in enumerate(_items(data, "faults", "lab")):
            path = f"lab.faults[{i}]"
            _require(raw, path, _FAULT_KEYS, {"target", "kind"})
            faults.append(
                FaultConfig(
                    target=_text(raw, "target", path),
                    kind=_text(raw, "kind", path),
                    at_s=_number(raw, "at_s", path, 0.0),
                    until_s=_optional_number(raw, "until_s", path),
                    after_commands=_optional_integer(raw, "after_commands", path),
                    probability=_optional_number(raw, "probability", path),
                )
            )
        return cls(
            chamber=chamber,
            supplies=tuple(supplies),
            duts=tuple(duts),
            faults=tuple(faults),
            multimeters=tuple(meters),
            slot_power=tuple(switches),
        )


@dataclass(frozen=True)
class _Piece:
    """The air temperature over [start_s, end_s): a0 + a1·τ + Σ Re(C·e^(λτ)), τ = t − start_s."""

    start_s: float
    end_s: float
    a0: float
    a1: float
    modes: tuple[tuple[complex, complex], ...]
    controlled: bool

    def value(self, t_s: float) -> float:
        """Return the air temperature at `t_s`."""
        tau = t_s - self.start_s
        return self.a0 + self.a1 * tau + sum((c * cmath.exp(lam * tau)).real for c, lam in self.modes)

    def rate(self, t_s: float) -> float:
        """Return the air temperature's rate of change at `t_s` (°C/s)."""
        tau = t_s - self.start_s
        return self.a1 + sum((c * lam * cmath.exp(lam * tau)).real for c, lam in self.modes)


def loop_parameters(lag_s: float, overshoot_pct: float) -> tuple[float, float]:
    """Return (damping ratio ζ, natural frequency ωn in rad/s) of the air loop.

    The step overshoot fixes ζ = −ln(OS) / √(π² + ln² OS); a second-order loop trails a ramp
    by 2ζ/ωn seconds, which `lag_s` names, so ωn = 2ζ / lag_s.
    """
    log_os = math.log(overshoot_pct / 100.0)
    zeta = -log_os / math.sqrt(math.pi**2 + log_os**2)
    return zeta, 2.0 * zeta / lag_s


class Chamber:
    """The chamber air, controller mode and alarm band, evolving in closed form (module doc)."""

    def __init__(self, config: ChamberConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self.min_c = config.min_c
        self.max_c = config.max_c
        self.setpoint_c = config.ambient_c
        self.commanded_mode = "STANDBY"
        # Alarm band just outside the controller range, as shipped, so any valid setpoint fits.
        self.upper_alarm_c = config.max_c + 5.0
        self.lower_alarm_c = config.min_c - 5.0
        zeta, omega_n = loop_parameters(config.lag_s, config.overshoot_pct)
        self._lag_s = config.lag_s
        self._pole = complex(-zeta * omega_n, omega_n * math.sqrt(1.0 - zeta * zeta))
        self.before_change: Callable[[], None] | None = None
        """Called just before the trajectory changes, so DUT thermal states can be pinned."""
        self.origin_t_s = clock.now()
        self.origin_c = config.ambient_c
        self.origin_rate_c_per_s = 0.0
        self.alarm: tuple[float, int] | None = None
        """(time, code) of the alarm stop on the present trajectory, if it has one."""
        self.pieces = self._build()
        self.past_pieces: list[_Piece] = []
        """Earlier trajectories, each piece cut where the next trajectory began, oldest first."""

    @property
    def mode(self) -> str:
        """Return the operating mode now: STANDBY once an alarm has stopped a run."""
        if self.commanded_mode == "CONSTANT" and self._tripped(self._clock.now()):
            return "STANDBY"
        return self.commanded_mode

    def alarms(self) -> list[int]:
        """Return the active alarm codes now."""
        return [self.alarm[1]] if self.alarm is not None and self._tripped(self._clock.now()) else []

    @property
    def target_c(self) -> float:
        """Return where the air is heading: the setpoint under control, else ambient."""
        return self.pieces[-1].a0

    def air_temp_at(self, t_s: float) -> float:
        """Return the air temperature at run time `t_s` (the earliest remembered before that)."""
        piece = self._piece_at(t_s)
        return piece.value(max(t_s, piece.start_s))

    def pieces_since(self, t_s: float) -> list[_Piece]:
        """Return the trajectory from the piece that holds `t_s` on, earlier trajectories included."""
        first = bisect_right(self.past_pieces, t_s, key=lambda piece: piece.end_s)
        return [*self.past_pieces[first:], *self.pieces]

    def forget_before(self, t_s: float) -> None:
        """Drop remembered pieces that ended by `t_s`."""
        del self.past_pieces[: bisect_right(self.past_pieces, t_s, key=lambda piece: piece.end_s)]

    def air_temp_c(self) -> float:
        """Return the air temperature now."""
        return self.air_temp_at(self._clock.now())

    def change(self, *, setpoint_c: float | None = None, mode: str | None = None) -> None:
        """Start a new trajectory from the present air state with a new setpoint and/or mode.

        A run command (mode CONSTANT) acknowledges an alarm stop; anything else leaves the
        controller stopped.
        """
        now = self._clock.now()
        if self.before_change is not None:
            self.before_change()
        piece = self._piece_at(now)
        self.origin_c, self.origin_rate_c_per_s = piece.value(now), piece.rate(now)
        self.past_pieces += [
            dataclasses.replace(old, end_s=min(old.end_s, now)) for old in self.pieces if old.start_s < now
        ]
        self.origin_t_s = now
        if setpoint_c is not None:
            self.setpoint_c = setpoint_c
        if mode is not None:
            self.commanded_mode = mode
        if not (self._tripped(now) and mode != "CONSTANT"):
            self.alarm = None
        self._replan(now)

    def set_alarm_limits(self, upper_c: float, lower_c: float) -> None:
        """Set the absolute alarm band; the air may trip it from now on."""
        now = self._clock.now()
        self.upper_alarm_c, self.lower_alarm_c = upper_c, lower_c
        if not self._tripped(now):
            self.alarm = None
            self._replan(now)

    def snapshot(self) -> dict[str, Any]:
        """Return the mutable state as JSON-ready data."""
        return {
            "setpoint_c": self.setpoint_c,
            "mode": self.commanded_mode,
            "upper_alarm_c": self.upper_alarm_c,
            "lower_alarm_c": self.lower_alarm_c,
            "origin_t_s": self.origin_t_s,
            "origin_c": self.origin_c,
            "origin_rate_c_per_s": self.origin_rate_c_per_s,
            "alarm": list(self.alarm) if self.alarm is not None else None,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.setpoint_c = float(state["setpoint_c"])
        self.commanded_mode = str(state["mode"])
        self.upper_alarm_c = float(state["upper_alarm_c"])
        self.lower_alarm_c = float(state["lower_alarm_c"])
        self.origin_t_s = float(state["origin_t_s"])
        self.origin_c = float(state["origin_c"])
        self.origin_rate_c_per_s = float(state["origin_rate_c_per_s"])
        alarm = state["alarm"]
        self.alarm = (float(alarm[0]), int(alarm[1])) if alarm is not None else None
        self.pieces = self._build()
        self.past_pieces = []

    def _tripped(self, t_s: float) -> bool:
        """Return whether an alarm has stopped the controller by `t_s`."""
        return self.alarm is not None and self.alarm[0] <= t_s

    def _piece_at(self, t_s: float) -> _Piece:
        """Return the piece of the trajectory that holds `t_s` (the earliest remembered before that)."""
        if t_s < self.pieces[0].start_s and self.past_pieces:
            return self.pieces_since(t_s)[0]
        for piece in self.pieces:
            if t_s < piece.end_s:
                return piece
        return self.pieces[-1]

    def _replan(self, scan_from_s: float) -> None:
        """Rebuild the trajectory and find where it first leaves the alarm band, if it does."""
        self.pieces = self._build()
        if self.alarm is None and self.pieces[0].controlled:
            self.alarm = self._scan(scan_from_s)
            if self.alarm is not None:
                self.pieces = self._build()

    def _build(self) -> list[_Piece]:
        """Return the trajectory from the origin: ramp and hold under control, or relaxation."""
        t0, y0, v0 = self.origin_t_s, self.origin_c, self.origin_rate_c_per_s
        if self.commanded_mode != "CONSTANT" or self._tripped(t0):
            return [self._relaxation(t0, y0)]
        rate_c_per_s = self.config.ramp_c_per_min / 60.0
        distance_c = self.setpoint_c - y0
        ramp_s = abs(distance_c) / rate_c_per_s
        pieces = []
        if ramp_s > 0:
            ramp = self._loop(t0, t0 + ramp_s, y0, math.copysign(rate_c_per_s, distance_c), y0, v0)
            pieces.append(ramp)
            t0, y0, v0 = ramp.end_s, ramp.value(ramp.end_s), ramp.rate(ramp.end_s)
        pieces.append(self._loop(t0, math.inf, self.setpoint_c, 0.0, y0, v0))
        if self.alarm is not None:
            alarm_s = self.alarm[0]
            kept = [p for p in pieces if p.start_s < alarm_s]
            last = kept[-1]
            kept[-1] = _Piece(last.start_s, alarm_s, last.a0, last.a1, last.modes, True)
            kept.append(self._relaxation(alarm_s, last.value(alarm_s)))
            pieces = kept
        return pieces

    def _loop(self, start_s: float, end_s: float, r0: float, rdot: float, y0: float, v0: float) -> _Piece:
        """Return the air under control for a working setpoint r0 + rdot·τ from state (y0, v0).

        The particular solution trails the input by rdot·lag; the complex mode carries the
        initial state's difference from it (value p, and q so the derivative matches).
        """
        a0 = r0 - rdot * self._lag_s
        p = y0 - a0
        sigma, omega_d = -self._pole.real, self._pole.imag
        q = -((v0 - rdot) + sigma * p) / omega_d
        return _Piece(start_s, end_s, a0, rdot, ((complex(p, q), self._pole),), True)

    def _relaxation(self, start_s: float, y0: float) -> _Piece:
        """Return the air with the controller stopped: first order to ambient."""
        ambient = self.config.ambient_c
        pole = complex(-1.0 / self.config.passive_tau_s, 0.0)
        return _Piece(start_s, math.inf, ambient, 0.0, ((complex(y0 - ambient, 0.0), pole),), False)

    def _scan(self, from_s: float) -> tuple[float, int] | None:
        """Return the first (time, code) at or after `from_s` where the air leaves the band."""
        for piece in self.pieces:
            if piece.end_s <= from_s or not piece.controlled:
                continue
            found = _first_exit(piece, max(from_s, piece.start_s), self.lower_alarm_c, self.upper_alarm_c)
            if found is not None:
                return found
        return None


def _bisect(f: Callable[[float], float], low_s: float, high_s: float) -> float:
    """Return where f changes sign in [low_s, high_s] (f(low_s) and f(high_s) differ in sign)."""
    f_low = f(low_s)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (low_s + high_s)
        f_mid = f(mid)
        if (f_mid > 0) == (f_low > 0):
            low_s, f_low = mid, f_mid
        else:
            high_s = mid
    return high_s


def _crossing(piece: _Piece, limit_c: float, low_s: float, high_s: float) -> float:
    """Return when the air crosses `limit_c` between low_s (inside) and high_s (outside)."""
    return _bisect(lambda t_s: piece.value(t_s) - limit_c, low_s, high_s)


def _first_exit(piece: _Piece, from_s: float, lower_c: float, upper_c: float) -> tuple[float, int] | None:
    """Return the first (time, code) in the piece after `from_s` where the air leaves the band.

    The ringing part is sampled at a fraction of its period (an extremum between samples shows
    as a sign change of the derivative and is located by bisection); once it has decayed the air
    is linear in time and its crossing is solved exactly.
    """
    value, rate = piece.value, piece.rate
    if value(from_s) > upper_c:
        return from_s, UPPER_ALARM
    if value(from_s) < lower_c:
        return from_s, LOWER_ALARM
    amplitude = sum(abs(c) for c, _ in piece.modes)
    decay = min(-lam.real for _, lam in piece.modes)
    omega = max(abs(lam.imag) for _, lam in piece.modes)
    settled_s = piece.start_s + (math.log(amplitude / _SETTLED_C) / decay if amplitude > _SETTLED_C else 0.0)
    scan_end_s = min(piece.end_s, settled_s)
    step_s = 2.0 * math.pi / omega / _SCAN_SAMPLES_PER_PERIOD
    t0, d0 = from_s, rate(from_s)
    while t0 < scan_end_s:
        t1 = min(t0 + step_s, scan_end_s)
        d1 = rate(t1)
        # An extremum between two samples shows as a sign change of the derivative; the air is
        # monotonic between t0 and it, so a limit it passes is crossed once there.
        t_probe = _bisect(rate, t0, t1) if (d0 > 0) != (d1 > 0) else t1
        for probe_s in (t_probe, t1):
            probed_c = value(probe_s)
            if probed_c > upper_c:
                return _crossing(piece, upper_c, t0, probe_s), UPPER_ALARM
            if probed_c < lower_c:
                return _crossing(piece, lower_c, t0, probe_s), LOWER_ALARM
        t0, d0 = t1, d1
    if scan_end_s < piece.end_s and piece.a1 != 0.0:
        limit, code = (upper_c, UPPER_ALARM) if piece.a1 > 0 else (lower_c, LOWER_ALARM)
        cross_s = piece.start_s + (limit - piece.a0) / piece.a1
        if max(from_s, scan_end_s) <= cross_s < piece.end_s:
            return cross_s, code
    return None


def _dut_step(
    piece: _Piece, from_s: float, temp_c: float, drive_c: float, tau_s: float, to_s: float
) -> float:
    """Return a DUT's temperature at `to_s` from `temp_c` at `from_s`, both within `piece`.

    The DUT is a first-order lag (τ = tau_s) driven by air + drive_c (power × Rth): each term of
    the air's closed form passes through 1 / (1 + λτ), and the initial difference decays.
    """
    shift_s = from_s - piece.start_s
    tau = to_s - from_s
    a0 = piece.a0 + piece.a1 * shift_s
    base = a0 + drive_c - tau_s * piece.a1
    forced_now, forced_then = base, base + piece.a1 * tau
    for c, lam in piece.modes:
        c_here = c * cmath.exp(lam * shift_s)
        gain = 1.0 + lam * tau_s
        if abs(gain) < 1e-12:
            # Air relaxing at exactly the DUT's own rate: the forced response is τ·e^(λτ)/τd.
            forced_then += (c_here / tau_s * tau * cmath.exp(lam * tau)).real
        else:
            forced_now += (c_here / gain).real
            forced_then += (c_here / gain * cmath.exp(lam * tau)).real
    return forced_then + (temp_c - forced_now) * math.exp(-tau / tau_s)


@dataclass
class _Thermal:
    """A DUT's temperature pinned at a time, and the power it has dissipated since."""

    t_s: float
    temp_c: float
    power_w: float


class SimDut:
    """One DUT's electrical and thermal truth, computed from the lab at the present time."""

    def __init__(
        self, lab: Lab, config: DutConfig, idle_w: float, rth_c_per_w: float, thermal_tau_s: float
    ) -> None:
        self._lab = lab
        self.slot = config.slot
        self.kind = config.kind
        self.serial = config.serial
        self.supply = config.supply
        self.channel = config.channel
        self.nominal_v = config.nominal_v
        self.model = config.model
        self.idle_w = idle_w
        self.rth_c_per_w = rth_c_per_w
        self.thermal_tau_s = thermal_tau_s
        self.slot_power = config.slot_power
        self.slot_power_port = config.slot_power_port if config.slot_power_port is not None else config.slot
        self.load_w = 0.0

    @property
    def nominal_w(self) -> float:
        """Return the power drawn at the nominal supply voltage: idle plus the present load."""
        return self.idle_w + self.load_w

    def in_window(self, volts: float) -> bool:
        """Return whether `volts` lies within ±10 % of the nominal supply voltage."""
        return abs(volts - self.nominal_v) <= OPERATING_WINDOW * self.nominal_v

    def set_load_w(self, load_w: float) -> None:
        """Set the power the DUT draws above idle at nominal voltage (a device model's workload)."""
        if load_w < 0:
            raise ValueError(f"load must not be negative, got {load_w} W")
        self._lab.set_load_w(self, load_w)

    def power_w(self) -> float:
        """Return the power the DUT dissipates now."""
        return self._lab.dut_power(self)[0]

    def current_a(self) -> float:
        """Return the current the DUT draws now."""
        return self._lab.dut_power(self)[1]

    def powered(self) -> bool:
        """Return whether the DUT has a supply within its operating window and its slot is on."""
        return self._lab.dut_power(self)[2]

    def temperature_c(self) -> float:
        """Return the DUT temperature now (first-order lag behind air plus power × Rth)."""
        return self._lab.dut_temperature_c(self)

    def temperature_at(self, t_s: float) -> float:
        """Return the DUT temperature at run time `t_s`, past or future, from the lab's closed form.

        The past is exact back to the lab's start or restore (or its oldest remembered change);
        the future assumes nothing changes. Nothing is settled first, so a device model may call
        this while the lab calls it.
        """
        return self._lab.dut_temperature_at(self, t_s)

    @property
    def lock(self) -> threading.RLock:
        """Return the lab's re-entrant lock, for a device model to share: one lock cannot deadlock."""
        return self._lab.lock


class SimDevice(Protocol):
    """A DUT's device model attached to the lab; its state travels with the lab's snapshot.

    Optionally it implements `inject(kind: str, at_s: float) -> None` to receive `slot<N>`
    faults (drop-off, error storm, ...) as of virtual time `at_s`; the lab calls it once, while
    holding the lab's lock, at the first lab activity at or after `at_s`. A device model that
    also names its kinds in a `fault_kinds` attribute has the configured kinds checked when it
    attaches, so a misspelt kind fails at start-up rather than in the middle of a run.

    A model that integrates its DUT's history implements `sync() -> None` (bring itself up to
    now); the lab calls it just before it changes the DUT's temperature course (chamber command,
    load change) and just as its power changes, still on the old course, so the model sees
    every change at its exact time. A power loss found after the fact (an over-current trip
    that took effect before the lab looked) goes to `power_event(False, at_s=...)` if the model
    has it. The lab calls both while holding its lock.
    """

    def snapshot(self) -> dict[str, Any]:
        """Return the device's mutable state as JSON-serialisable data."""
        ...

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        ...


class _Instrument(Protocol):
    """A simulated instrument as the lab drives it."""

    def handle(self, line: str) -> str | None:
        """Execute one command line and return the reply."""
        ...

    def is_measurement(self, line: str) -> bool:
        """Return whether `line` is a measurement query."""
        ...

    def impostor_reply(self, line: str) -> str | None:
        """Return another model's identity reply, if `line` asks for identity."""
        ...


_Solution = tuple[float, float, list[SimDut], bool]


class Lab:
    """The simulated lab world and the servers that expose its instruments."""

    def __init__(self, clock: Clock, seed: int, config: LabConfig | Mapping[str, Any]) -> None:
        self.config = config if isinstance(config, LabConfig) else LabConfig.from_dict(config)
        self.clock = clock
        self.seed = seed
        self._lock = threading.RLock()
        self._servers: list[TcpLineServer | PtyLineServer] = []
        self.addresses: dict[str, str] = {}
        self.models: dict[str, str] = {}
        self.chamber = Chamber(self.config.chamber, clock)
        self.chamber.before_change = self._pin_all
        chamber_name = self.config.chamber.name
        self._instruments: dict[str, _Instrument] = {
            chamber_name: EspecSim(
                self.chamber,
                lambda: noise.gauss(seed, chamber_name, "temp", clock.now(), sigma=CHAMBER_TEMP_NOISE_C),
            )
        }
        self.models[chamber_name] = CONTROLLER
        self.supplies: dict[str, E36300Sim] = {}
        for supply in self.config.supplies:
            sim = E36300Sim(
                supply.model,
                serial=f"MY{int(noise.uniform(seed, 'serial', supply.name) * 1e8):08d}",
                measure=self._terminal_reader(supply.name),
                noise=self._supply_noise(supply.name),
            )
            self.supplies[supply.name] = sim
            self._instruments[supply.name] = sim
            self.models[supply.name] = supply.model
        self.multimeters: dict[str, TruevoltSim] = {}
        for meter in self.config.multimeters:
            dmm = TruevoltSim(
                meter.model,
                serial=f"MY{int(noise.uniform(seed, 'serial', meter.name) * 1e8):08d}",
                signal=self._signal_reader(meter),
                noise=self._meter_noise(meter.name),
            )
            self.multimeters[meter.name] = dmm
            self._instruments[meter.name] = dmm
            self.models[meter.name] = meter.model
        self.slot_power: dict[str, QuarchArraySim] = {}
        for unit in self.config.slot_power:
            array = QuarchArraySim(
                unit.model,
                serial=f"{int(noise.uniform(seed, 'serial', unit.name) * 1e4):04d}",
                ports=unit.ports,
            )
            self.slot_power[unit.name] = array
            self._instruments[unit.name] = array
            self.models[unit.name] = unit.model
        self._duts: dict[int, SimDut] = {}
        for dut in self.config.duts:
            base_w = IDLE_W_BY_KIND[dut.kind]
            idle_w = dut.idle_w or base_w * max(
                0.5, 1.0 + noise.gauss(seed, "dut", dut.serial, "idle_w", sigma=IDLE_W_SPREAD)
            )
            rth = dut.rth_c_per_w or RTH_C_PER_W * max(
                0.5, 1.0 + noise.gauss(seed, "dut", dut.serial, "rth", sigma=RTH_SPREAD)
            )
            tau_s = dut.thermal_tau_s or THERMAL_TAU_S_BY_KIND[dut.kind]
            self._duts[dut.slot] = SimDut(self, dut, idle_w, rth, tau_s)
        self._on_channel: dict[tuple[str, int], list[SimDut]] = {}
        for sim_dut in self._duts.values():
            self._on_channel.setdefault((sim_dut.supply, sim_dut.channel), []).append(sim_dut)
        now = clock.now()
        self._thermal = {slot: _Thermal(now, self.chamber.air_temp_at(now), 0.0) for slot in self._duts}
        # Earlier pins, oldest first: with the chamber's past pieces they give each DUT's past.
        self._thermal_past: dict[int, list[_Thermal]] = {slot: [] for slot in self._duts}
        self._cc_since: dict[tuple[str, int], float] = {}
        self._faults = FaultInjector(self.config.faults, seed)
        self._devices: dict[int, SimDevice] = {}

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def lock(self) -> threading.RLock:
        """Return the re-entrant lock that guards the lab's state (device models may share it)."""
        return self._lock

    @property
    def fault_log(self) -> list[dict[str, Any]]:
        """Return when each configured fault first acted (and device faults' hand-over notes)."""
        with self._lock:
            return [dict(entry) for entry in self._faults.log]

    def start(self) -> dict[str, str]:
        """Start a TCP server per supply and meter and a pty per serial instrument; return addresses."""
        if self._servers:
            raise RuntimeError("lab already started")
        try:
            for name in [*self.supplies, *self.multimeters]:
                tcp = TcpLineServer(self._handler_for(name))
                tcp.start()
                self._servers.append(tcp)
                self.addresses[name] = tcp.address
            serial_servers = [
                (self.config.chamber.name, PtyLineServer(self._handler_for(self.config.chamber.name)))
            ]
            serial_servers += [
                (name, PtyLineServer(self._handler_for(name), echo=True, prompt=">"))
                for name in self.slot_power
            ]
            for name, pty in serial_servers:
                pty.start()
                self._servers.append(pty)
                self.addresses[name] = pty.address
        except BaseException:
            self.stop()
            raise
        return dict(self.addresses)

    def stop(self) -> None:
        """Stop every server and join its threads; stopping twice is harmless."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()
        self.addresses.clear()

    def respond(self, instrument: str, line: str) -> Reply:
        """Execute one command line on an instrument as its server would, faults included."""
        with self._lock:
            now = self.clock.now()
            self._settle(now)
            sim = self._instruments[instrument]
            reply = self._faults.on_command(instrument, line, now, sim, lambda: sim.handle(line))
            self._update(now)
            return reply

    def command(self, instrument: str, line: str) -> str | None:
        """Execute one command line and return the text that would come back (None: nothing)."""
        reply = self.respond(instrument, line)
        return None if reply.hangup else reply.text

    def refresh(self) -> None:
        """Apply what time and outside changes imply now: trips, load changes, device faults."""
        with self._lock:
            now = self.clock.now()
            self._settle(now)
            self._update(now)

    def attach_device(self, slot: int, device: SimDevice) -> None:
        """Attach a DUT's device model (SSD, DIMM) so its state is snapshot with the lab's."""
        self.dut(slot)
        kinds = getattr(device, "fault_kinds", None)
        if kinds is not None:
            for i, fault in enumerate(self.config.faults):
                if fault.slot == slot and fault.kind not in kinds:
                    raise ValueError(
                        f"lab.faults[{i}].kind: the device in slot {slot} has no fault {fault.kind!r} "
                        f"(its kinds: {', '.join(kinds)})"
                    )
        with self._lock:
            self._devices[slot] = device
            self._settle(self.clock.now())

    def device(self, slot: int) -> SimDevice:
        """Return the device model attached to `slot`."""
        return self._devices[slot]

    def dut(self, slot: int) -> SimDut:
        """Return the DUT in `slot`."""
        try:
            return self._duts[slot]
        except KeyError:
            raise KeyError(f"no DUT in slot {slot} (slots: {sorted(self._duts)})") from None

    def duts(self) -> list[SimDut]:
        """Return every DUT, by slot."""
        return [self._duts[slot] for slot in sorted(self._duts)]

    def set_load_w(self, dut: SimDut, load_w: float) -> None:
        """Change a DUT's load above idle from now on; supply current and heat follow."""
        with self._lock:
            now = self.clock.now()
            self._settle(now)
            dut.load_w = load_w
            self._update(now)

    def snapshot(self) -> dict[str, Any]:
        """Return the complete mutable state as JSON-serialisable data."""
        with self._lock:
            self._settle(self.clock.now())
            return {
                "spec": STATE_SPEC,
                "seed": self.seed,
                "t_s": self.clock.now(),
                "chamber": self.chamber.snapshot(),
                "supplies": {name: sim.snapshot() for name, sim in self.supplies.items()},
                "multimeters": {name: sim.snapshot() for name, sim in self.multimeters.items()},
                "slot_power": {name: sim.snapshot() for name, sim in self.slot_power.items()},
                "duts": {
                    str(slot): {
                        "t_s": pinned.t_s,
                        "temp_c": pinned.temp_c,
                        "power_w": pinned.power_w,
                        "load_w": self._duts[slot].load_w,
                    }
                    for slot, pinned in sorted(self._thermal.items())
                },
                "cc_since": [
                    [supply, channel, t_s] for (supply, channel), t_s in sorted(self._cc_since.items())
                ],
                "faults": self._faults.snapshot(),
                "devices": {str(slot): dev.snapshot() for slot, dev in sorted(self._devices.items())},
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a snapshot taken from a lab with the same seed and configuration."""
        if state.get("spec") != STATE_SPEC:
            raise ValueError(f"lab state spec {state.get('spec')!r} is not {STATE_SPEC!r}")
        if state.get("seed") != self.seed:
            raise ValueError(f"lab state has seed {state.get('seed')}, this lab {self.seed}")
        for key, mine in (
            ("supplies", self.supplies),
            ("multimeters", self.multimeters),
            ("slot_power", self.slot_power),
            ("duts", {str(slot): dut for slot, dut in self._duts.items()}),
        ):
            if set(state[key]) != set(mine):
                raise ValueError(
                    f"lab state {key} {sorted(state[key])} differ from this lab's {sorted(mine)}"
                )
        with self._lock:
            self.chamber.restore(state["chamber"])
            for slot, dev_state in state.get("devices", {}).items():
                self._devices[int(slot)].restore(dev_state)
            for group, sims in (
                ("supplies", self.supplies),
                ("multimeters", self.multimeters),
                ("slot_power", self.slot_power),
            ):
                for name, sim in sims.items():
                    sim.restore(state[group][name])
            for slot, pinned in state["duts"].items():
                self._thermal[int(slot)] = _Thermal(
                    float(pinned["t_s"]), float(pinned["temp_c"]), float(pinned["power_w"])
                )
                self._thermal_past[int(slot)] = []
                self._duts[int(slot)].load_w = float(pinned["load_w"])
            self._cc_since = {(str(s), int(ch)): float(t_s) for s, ch, t_s in state["cc_since"]}
            self._faults.restore(state["faults"])

    def dut_temperature_c(self, dut: SimDut) -> float:
        """Return a DUT's temperature now from its pinned state along the chamber trajectory."""
        with self._lock:
            now = self.clock.now()
            self._settle(now)
            return self._temperature_at(dut, now)

    def dut_temperature_at(self, dut: SimDut, t_s: float) -> float:
        """Return a DUT's temperature at run time `t_s` from its pins along the chamber's course."""
        with self._lock:
            return self._temperature_at(dut, t_s)

    def dut_power(self, dut: SimDut) -> tuple[float, float, bool]:
        """Return a DUT's (power W, current A, powered) from its supply channel and slot now."""
        with self._lock:
            self._settle(self.clock.now())
            return self._dut_power(dut, self._channel_solution(dut.supply, dut.channel))

    def instruments(self) -> list[tuple[str, str, str]]:
        """Return (name, model, address) of every served instrument, in serving order."""
        return [(name, self.models[name], address) for name, address in self.addresses.items()]

    def _dut_power(self, dut: SimDut, solution: _Solution) -> tuple[float, float, bool]:
        """Return a DUT's (power W, current A, powered) given its channel's solution."""
        volts, _, loads, _ = solution
        if dut not in loads or volts <= 0:
            return 0.0, 0.0, False
        set_volts = self.supplies[dut.supply].channels[dut.channel].volts
        # In CC the terminal voltage sags below the setting; each load then draws as the
        # resistance it presents at its nominal operating point (V_set² / P).
        power_w = dut.nominal_w * (volts / set_volts) ** 2
        return power_w, power_w / volts, dut.in_window(volts)

    def _connected(self, dut: SimDut) -> bool:
        """Return whether the DUT's slot switch (if it has one) passes power."""
        return dut.slot_power is None or self.slot_power[dut.slot_power].is_on(dut.slot_power_port)

    def _channel_solution(self, supply: str, channel: int) -> _Solution:
        """Return (terminal volts, total amps, loads drawing, in CC) for one supply channel now."""
        state = self.supplies[supply].channels[channel]
        if not state.on:
            return 0.0, 0.0, [], False
        loads = [
            dut
            for dut in self._on_channel.get((supply, channel), [])
            if self._connected(dut) and dut.in_window(state.volts)
        ]
        total_w = sum(dut.nominal_w for dut in loads)
        if state.volts <= 0 or total_w == 0:
            return state.volts, 0.0, loads, False
        demand_a = total_w / state.volts
        if demand_a <= state.amps_limit:
            return state.volts, demand_a, loads, False
        # Constant-current mode: the supply lowers its voltage until the loads, seen as the
        # resistance V_set² / P_total, draw exactly the limit.
        return state.amps_limit * state.volts**2 / total_w, state.amps_limit, loads, True

    def _temperature_at(self, dut: SimDut, t_s: float) -> float:
        """Return a DUT's temperature at `t_s` from the pin in force then; ValueError if forgotten."""
        pinned = self._thermal[dut.slot]
        if t_s < pinned.t_s:
            past = self._thermal_past[dut.slot]
            index = bisect_right(past, t_s, key=lambda pin: pin.t_s) - 1
            if index < 0:
                oldest_s = past[0].t_s if past else pinned.t_s
                raise ValueError(
                    f"slot {dut.slot}: the lab's temperature history starts at {oldest_s:.6g} s, "
                    f"not at {t_s:.6g} s"
                )
            pinned = past[index]
        drive_c = pinned.power_w * dut.rth_c_per_w
        temp_c, now_s = pinned.temp_c, pinned.t_s
        for piece in self.chamber.pieces_since(now_s):
            if t_s <= now_s:
                break
            if piece.end_s <= now_s:
                continue
            end_s = min(t_s, piece.end_s)
            temp_c = _dut_step(piece, max(now_s, piece.start_s), temp_c, drive_c, dut.thermal_tau_s, end_s)
            now_s = end_s
        return temp_c

    def _pin(self, dut: SimDut, t_s: float, power_w: float) -> None:
        """Pin a DUT's temperature at `t_s` and let it dissipate `power_w` from then on."""
        pinned = self._thermal[dut.slot]
        t_s = max(t_s, pinned.t_s)
        self._thermal[dut.slot] = _Thermal(t_s, self._temperature_at(dut, t_s), power_w)
        if t_s > pinned.t_s:
            self._thermal_past[dut.slot].append(pinned)
            if len(self._thermal_past[dut.slot]) > HISTORY_CHANGES:
                self._forget_before(self._thermal_past[dut.slot][HISTORY_CHANGES // 2].t_s)

    def _pin_all(self) -> None:
        """Pin every DUT now, before the chamber trajectory changes under them."""
        with self._lock:
            now = self.clock.now()
            self._settle(now)
            for dut in self._duts.values():
                self._sync_device(dut)
                self._pin(dut, now, self._thermal[dut.slot].power_w)
            if len(self.chamber.past_pieces) > HISTORY_CHANGES:
                self._forget_before(self.chamber.past_pieces[HISTORY_CHANGES // 2].end_s)

    def _forget_before(self, t_s: float) -> None:
        """Forget the DUTs' and the chamber's course before `t_s`, keeping what later times need."""
        oldest_s = t_s
        for dut in self._duts.values():
            pinned = self._thermal[dut.slot]
            past = self._thermal_past[dut.slot]
            if pinned.t_s <= t_s:
                past.clear()
                oldest_s = min(oldest_s, pinned.t_s)
                continue
            if not past or past[0].t_s >= t_s:
                continue
            # A pin at the horizon carries on the course the forgotten pins set.
            index = bisect_right(past, t_s, key=lambda pin: pin.t_s) - 1
            horizon = _Thermal(t_s, self._temperature_at(dut, t_s), past[index].power_w)
            past[: index + 1] = [horizon]
        self.chamber.forget_before(oldest_s)

    def _sync_device(self, dut: SimDut, lost_power_at_s: float | None = None) -> None:
        """Bring a DUT's device model up to now on the DUT's present course, before that changes.

        `lost_power_at_s`: the DUT lost its power at that (possibly past) instant.
        """
        device = self._devices.get(dut.slot)
        if device is None:
            return
        power_event = getattr(device, "power_event", None)
        if lost_power_at_s is not None and lost_power_at_s < self.clock.now() and power_event is not None:
            power_event(False, at_s=lost_power_at_s)
            return
        sync = getattr(device, "sync", None)
        if sync is not None:
            sync()

    def _trip(self, supply: str, channel: int, protection: str, t_s: float) -> None:
        """Trip a channel's protection at `t_s`: its DUTs lose power from that instant."""
        # The output is off before the devices look, so they see the loss at its time.
        self.supplies[supply].trip(channel, protection)
        self._cc_since.pop((supply, channel), None)
        for dut in self._on_channel.get((supply, channel), []):
            self._sync_device(dut, lost_power_at_s=t_s)
            self._pin(dut, t_s, 0.0)

    def _settle(self, now_s: float) -> None:
        """Apply what happened by `now_s` without a command: OCP trips, device faults."""
        for (supply, channel), since_s in sorted(self._cc_since.items()):
            state = self.supplies[supply].channels[channel]
            if state.on and state.ocp_on and since_s + state.ocp_delay_s <= now_s:
                self._trip(supply, channel, "ocp", since_s + state.ocp_delay_s)
        for index, fault in self._faults.due_device_faults(now_s):
            assert fault.slot is not None
            device = self._devices.get(fault.slot)
            if device is None:
                continue  # handed over once a device model attaches to the slot
            inject = getattr(device, "inject", None)
            if inject is None:
                self._faults.mark_fired(index, "device model has no inject(): fault not applied")
                continue
            # Marked first: inject() may call back into the lab, which settles again.
            self._faults.mark_fired(index, "injected")
            try:
                inject(fault.kind, at_s=fault.at_s)
            except Exception as exc:  # a refusal must not kill the server thread that got here
                self._faults.log[-1]["note"] = f"device refused the fault: {exc}"

    def _update(self, now_s: float) -> None:
        """Apply a change made now: protection trips, then DUTs whose power changed."""
        for supply, sim in self.supplies.items():
            for channel, state in sim.channels.items():
                if not state.on:
                    self._cc_since.pop((supply, channel), None)
                    continue
                volts, _, _, constant_current = self._channel_solution(supply, channel)
                if abs(volts) > state.ovp_v:
                    self._trip(supply, channel, "ovp", now_s)
                elif constant_current and state.ocp_on:
                    since_s = self._cc_since.setdefault((supply, channel), now_s)
                    if since_s + state.ocp_delay_s <= now_s:
                        self._trip(supply, channel, "ocp", since_s + state.ocp_delay_s)
                else:
                    self._cc_since.pop((supply, channel), None)
        solutions: dict[tuple[str, int], _Solution] = {}
        for dut in self._duts.values():
            key = (dut.supply, dut.channel)
            if key not in solutions:
                solutions[key] = self._channel_solution(*key)
            power_w = self._dut_power(dut, solutions[key])[0]
            if power_w != self._thermal[dut.slot].power_w:
                # The device sees the new power state on the old thermal course: its history
                # runs exactly to this instant, and a power change happens now, not later.
                self._sync_device(dut)
                self._pin(dut, now_s, power_w)

    def _terminal_reader(self, supply: str) -> Callable[[int], tuple[float, float]]:
        """Return the function the supply simulator calls to read its terminals."""

        def read(channel: int) -> tuple[float, float]:
            volts, amps, _, _ = self._channel_solution(supply, channel)
            return volts, amps

        return read

    def _supply_noise(self, supply: str) -> Callable[[str, int], float]:
        """Return the reading-noise function for one supply, keyed by channel and time."""

        def reading_noise(kind: str, channel: int) -> float:
            sigma = SUPPLY_VOLTS_NOISE if kind == "volts" else SUPPLY_AMPS_NOISE
            return noise.gauss(self.seed, supply, kind, channel, self.clock.now(), sigma=sigma)

        return reading_noise

    def _signal_reader(self, meter: MultimeterConfig) -> Callable[[str], float | None]:
        """Return the function a meter calls to read the true value on one of its inputs."""

        def read(function: str) -> float | None:
            signal = {"volts": meter.volts, "amps": meter.amps, "temp": meter.temp}[function]
            if signal is None:
                return None
            if signal == self.config.chamber.name:
                return self.chamber.air_temp_c()
            channel = _SIGNAL_CHANNEL.match(signal)
            if channel is not None:
                return self._channel_solution(channel.group("supply"), int(channel.group("channel")))[0]
            slot = _SIGNAL_SLOT.match(signal)
            assert slot is not None  # LabConfig validated every signal
            dut = self._duts[int(slot.group("slot"))]
            if function == "temp":
                return self._temperature_at(dut, self.clock.now())
            solution = self._channel_solution(dut.supply, dut.channel)
            if function == "amps":
                return self._dut_power(dut, solution)[1]
            # The rail at the DUT is the channel's terminal voltage while its slot switch is closed.
            return solution[0] if self._connected(dut) else 0.0

        return read

    def _meter_noise(self, meter: str) -> Callable[[str], float]:
        """Return the reading-noise function for one meter, keyed by function and time."""
        return lambda function: noise.gauss(
            self.seed, meter, function, self.clock.now(), sigma=DMM_NOISE[function]
        )

    def _handler_for(self, instrument: str) -> Callable[[str], Reply]:
        """Return the line handler a server calls for `instrument`."""
        return lambda line: self.respond(instrument, line)
