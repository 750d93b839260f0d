"""The simulated lab: a chamber, bench supplies and the DUTs they power, on real links.

The world evolves analytically from the shared clock, which the lab reads and never advances:
the chamber air ramps linearly at its ramp rate from where it was at the last change to its
target and holds there; each DUT draws its idle power when its supply channel is on within its
operating window, and sits at air temperature plus power times its thermal resistance.
Instruments speak their real dialects over loopback TCP (supplies, pyvisa `@py`) and a pty
(chamber, pyserial). `snapshot()`/`restore()` carry every mutable value, so a restored lab at the
same virtual time answers exactly as the original.

Configuration (`LabConfig.from_dict`, unknown keys are errors that name the key path):

    chamber:  {name: chamber, ambient_c: 25, ramp_c_per_min: 5.0, min_c: -40, max_c: 150}
    supplies: [{name: psu1, model: E36313A}]
    duts:     [{slot: 1, kind: ssd|dimm, serial: S1, supply: psu1, channel: 2,
                idle_w: (seeded, around 6 W ssd / 4 W dimm), rth_c_per_w: (seeded, around 2.0),
                nominal_v: 12.0, model: device model parameter file name (optional)}]
    faults:   [{target: psu1, kind: no_reply|garbled, at_s: 3600.0}]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from qualify.clock import Clock
from sim_instruments import noise
from sim_instruments.chamber_espec import EspecSim
from sim_instruments.psu_e36300 import RATINGS, E36300Sim
from sim_instruments.servers import PtyLineServer, TcpLineServer

STATE_SPEC = "qualify.sim_lab_state/1"
DUT_KINDS = ("ssd", "dimm")
FAULT_KINDS = ("no_reply", "garbled")
# Typical idle power at 12 V: an enterprise NVMe SSD idles near 6 W, a DDR5 RDIMM near 4 W.
IDLE_W_BY_KIND = {"ssd": 6.0, "dimm": 4.0}
RTH_C_PER_W = 2.0
IDLE_W_SPREAD = 0.05  # relative sigma of the seeded part-to-part variation
RTH_SPREAD = 0.10
OPERATING_WINDOW = 0.10  # a DUT runs within ±10 % of its nominal supply voltage
SUPPLY_VOLTS_NOISE = 0.0005  # 0.5 mV, below the E36300 readback accuracy
SUPPLY_AMPS_NOISE = 0.0001  # 0.1 mA
CHAMBER_TEMP_NOISE_C = 0.03


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


def _text(data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
    """Return data[key] as a non-empty string."""
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{path}.{key}: expected a non-empty string, got {value!r}")
    return value


def _integer(data: Mapping[str, Any], key: str, path: str) -> int:
    """Return data[key] as an int."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}.{key}: expected an integer, got {value!r}")
    return value


def _items(data: Mapping[str, Any], key: str, path: str) -> list[Any]:
    """Return data[key] as a list (absent means empty)."""
    value = data.get(key, [])
    if not isinstance(value, list | tuple):
        raise ValueError(f"{path}.{key}: expected a list, got {type(value).__name__}")
    return list(value)


@dataclass(frozen=True)
class ChamberConfig:
    """The chamber: its name, ambient, linear ramp rate and controller range."""

    name: str = "chamber"
    ambient_c: float = 25.0
    ramp_c_per_min: float = 5.0
    min_c: float = -40.0
    max_c: float = 150.0


@dataclass(frozen=True)
class SupplyConfig:
    """A bench supply by name and E36300 model."""

    name: str
    model: str = "E36313A"


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


@dataclass(frozen=True)
class FaultConfig:
    """From virtual time `at_s` on, instrument `target` stops answering or garbles replies."""

    target: str
    kind: str
    at_s: float = 0.0


@dataclass(frozen=True)
class LabConfig:
    """The whole simulated lab, validated on construction."""

    chamber: ChamberConfig = field(default_factory=ChamberConfig)
    supplies: tuple[SupplyConfig, ...] = ()
    duts: tuple[DutConfig, ...] = ()
    faults: tuple[FaultConfig, ...] = ()

    def __post_init__(self) -> None:
        chamber = self.chamber
        if chamber.ramp_c_per_min <= 0:
            raise ValueError("lab.chamber.ramp_c_per_min: must be positive")
        if not chamber.min_c < chamber.ambient_c < chamber.max_c:
            raise ValueError("lab.chamber: need min_c < ambient_c < max_c")
        names = [chamber.name] + [s.name for s in self.supplies]
        if len(set(names)) != len(names):
            raise ValueError(f"lab: instrument names must be unique, got {names}")
        supplies = {s.name: s for s in self.supplies}
        for i, supply in enumerate(self.supplies):
            if supply.model not in RATINGS:
                raise ValueError(
                    f"lab.supplies[{i}].model: unknown model {supply.model!r} "
                    f"(known: {', '.join(sorted(RATINGS))})"
                )
        slots: set[int] = set()
        serials: set[str] = set()
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
            for key in ("idle_w", "rth_c_per_w"):
                value = getattr(dut, key)
                if value is not None and value <= 0:
                    raise ValueError(f"{path}.{key}: must be positive")
        for i, fault in enumerate(self.faults):
            path = f"lab.faults[{i}]"
            if fault.target not in names:
                raise ValueError(f"{path}.target: no instrument named {fault.target!r}")
            if fault.kind not in FAULT_KINDS:
                raise ValueError(f"{path}.kind: {fault.kind!r} is not one of {FAULT_KINDS}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabConfig:
        """Build a config from plain data (parsed YAML/JSON); errors name the key path."""
        _require(data, "lab", {"chamber", "supplies", "duts", "faults"}, set())
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
        duts = []
        for i, raw in enumerate(_items(data, "duts", "lab")):
            path = f"lab.duts[{i}]"
            _require(
                raw,
                path,
                {
                    "slot",
                    "kind",
                    "serial",
                    "supply",
                    "channel",
                    "idle_w",
                    "rth_c_per_w",
                    "nominal_v",
                },
                {"slot", "kind", "serial", "supply", "channel"},
            )
            duts.append(
                DutConfig(
                    slot=_integer(raw, "slot", path),
                    kind=_text(raw, "kind", path),
                    serial=_text(raw, "serial", path),
                    supply=_text(raw, "supply", path),
                    channel=_integer(raw, "channel", path),
                    idle_w=_number(raw, "idle_w", path) if "idle_w" in raw else None,
                    rth_c_per_w=_number(raw, "rth_c_per_w", path) if "rth_c_per_w" in raw else None,
                    nominal_v=_number(raw, "nominal_v", path, 12.0),
                    model=_text(raw, "model", path) if "model" in raw else None,
                )
            )
        faults = []
        for i, raw in enumerate(_items(data, "faults", "lab")):
            path = f"lab.faults[{i}]"
            _require(raw, path, {"target", "kind", "at_s"}, {"target", "kind"})
            faults.append(
                FaultConfig(
                    target=_text(raw, "target", path),
                    kind=_text(raw, "kind", path),
                    at_s=_number(raw, "at_s", path, 0.0),
                )
            )
        return cls(chamber=chamber, supplies=tuple(supplies), duts=tuple(duts), faults=tuple(faults))


_CHAMBER_NUMBERS = ("ambient_c", "ramp_c_per_min", "min_c", "max_c")


class Chamber:
    """The chamber air: a linear ramp from the last change to the target, then a hold.

    The target is the setpoint while running CONSTANT; in STANDBY or OFF the controller stops
    and the air returns to ambient (modelled at the same rate for now).
    """

    def __init__(self, config: ChamberConfig, clock: Clock) -> None:
        self.config = config
        self._clock = clock
        self.min_c = config.min_c
        self.max_c = config.max_c
        self.setpoint_c = config.ambient_c
        self.mode = "STANDBY"
        # Alarm band just outside the controller range, as shipped, so any valid setpoint fits.
        self.upper_alarm_c = config.max_c + 5.0
        self.lower_alarm_c = config.min_c - 5.0
        self.origin_t_s = clock.now()
        self.origin_c = config.ambient_c

    @property
    def target_c(self) -> float:
        """Return where the air is heading: the setpoint when running, else ambient."""
        return self.setpoint_c if self.mode == "CONSTANT" else self.config.ambient_c

    def air_temp_at(self, t_s: float) -> float:
        """Return the air temperature at run time `t_s` (not before the last change)."""
        distance_c = self.target_c - self.origin_c
        travelled_c = self.config.ramp_c_per_min / 60.0 * max(0.0, t_s - self.origin_t_s)
        if travelled_c >= abs(distance_c):
            return self.target_c
        return self.origin_c + (travelled_c if distance_c > 0 else -travelled_c)

    def air_temp_c(self) -> float:
        """Return the air temperature now."""
        return self.air_temp_at(self._clock.now())

    def change(self, *, setpoint_c: float | None = None, mode: str | None = None) -> None:
        """Start a new ramp from the present air temperature with a new setpoint and/or mode."""
        now = self._clock.now()
        self.origin_c = self.air_temp_at(now)
        self.origin_t_s = now
        if setpoint_c is not None:
            self.setpoint_c = setpoint_c
        if mode is not None:
            self.mode = mode

    def snapshot(self) -> dict[str, Any]:
        """Return the mutable state as JSON-ready data."""
        return {
            "setpoint_c": self.setpoint_c,
            "mode": self.mode,
            "upper_alarm_c": self.upper_alarm_c,
            "lower_alarm_c": self.lower_alarm_c,
            "origin_t_s": self.origin_t_s,
            "origin_c": self.origin_c,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.setpoint_c = float(state["setpoint_c"])
        self.mode = str(state["mode"])
        self.upper_alarm_c = float(state["upper_alarm_c"])
        self.lower_alarm_c = float(state["lower_alarm_c"])
        self.origin_t_s = float(state["origin_t_s"])
        self.origin_c = float(state["origin_c"])


class SimDut:
    """One DUT's electrical and thermal truth, computed from the lab at the present time."""

    def __init__(self, lab: Lab, config: DutConfig, idle_w: float, rth_c_per_w: float) -> None:
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

    def in_window(self, volts: float) -> bool:
        """Return whether `volts` lies within ±10 % of the nominal supply voltage."""
        return abs(volts - self.nominal_v) <= OPERATING_WINDOW * self.nominal_v

    def power_w(self) -> float:
        """Return the power the DUT dissipates now."""
        return self._lab.dut_power(self)[0]

    def current_a(self) -> float:
        """Return the current the DUT draws now."""
        return self._lab.dut_power(self)[1]

    def powered(self) -> bool:
        """Return whether the DUT has a supply within its operating window now."""
        return self._lab.dut_power(self)[2]

    def temperature_c(self) -> float:
        """Return the DUT temperature now: chamber air plus power times thermal resistance."""
        return self._lab.dut_temperature_c(self)


class SimDevice(Protocol):
    """A DUT's device model attached to the lab; its state travels with the lab's snapshot."""

    def snapshot(self) -> dict[str, Any]:
        """Return the device's mutable state as JSON-serialisable data."""
        ...

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        ...


def _garble(reply: str) -> str:
    """Corrupt a reply the way a bad cable does: every third character lost to noise."""
    return "".join("?" if i % 3 == 2 else c for i, c in enumerate(reply))


class Lab:
    """The simulated lab world and the servers that expose its instruments."""

    def __init__(self, clock: Clock, seed: int, config: LabConfig | Mapping[str, Any]) -> None:
        self.config = config if isinstance(config, LabConfig) else LabConfig.from_dict(config)
        self.clock = clock
        self.seed = seed
        self._lock = threading.RLock()
        self._servers: list[TcpLineServer | PtyLineServer] = []
        self.addresses: dict[str, str] = {}
        self.chamber = Chamber(self.config.chamber, clock)
        chamber_name = self.config.chamber.name
        self._handlers: dict[str, Callable[[str], str | None]] = {
            chamber_name: EspecSim(
                self.chamber,
                lambda: noise.gauss(seed, chamber_name, "temp", clock.now(), sigma=CHAMBER_TEMP_NOISE_C),
            ).handle
        }
        self.supplies: dict[str, E36300Sim] = {}
        for supply in self.config.supplies:
            sim = E36300Sim(
                supply.model,
                serial=f"MY{int(noise.uniform(seed, 'serial', supply.name) * 1e8):08d}",
                measure=self._terminal_reader(supply.name),
                noise=self._supply_noise(supply.name),
            )
            self.supplies[supply.name] = sim
            self._handlers[supply.name] = sim.handle
        self._duts: dict[int, SimDut] = {}
        for dut in self.config.duts:
            base_w = IDLE_W_BY_KIND[dut.kind]
            idle_w = dut.idle_w or base_w * max(
                0.5, 1.0 + noise.gauss(seed, "dut", dut.serial, "idle_w", sigma=IDLE_W_SPREAD)
            )
            rth = dut.rth_c_per_w or RTH_C_PER_W * max(
                0.5, 1.0 + noise.gauss(seed, "dut", dut.serial, "rth", sigma=RTH_SPREAD)
            )
            self._duts[dut.slot] = SimDut(self, dut, idle_w, rth)
        self._devices: dict[int, SimDevice] = {}

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> dict[str, str]:
        """Start one TCP server per supply and a pty server for the chamber; return addresses."""
        if self._servers:
            raise RuntimeError("lab already started")
        try:
            for name in self.supplies:
                tcp = TcpLineServer(self._handler_for(name))
                tcp.start()
                self._servers.append(tcp)
                self.addresses[name] = tcp.address
            pty = PtyLineServer(self._handler_for(self.config.chamber.name), terminator="\r\n")
            pty.start()
            self._servers.append(pty)
            self.addresses[self.config.chamber.name] = pty.address
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

    def command(self, instrument: str, line: str) -> str | None:
        """Execute one command line on an instrument as its server would, faults included."""
        with self._lock:
            fault = self._active_fault(instrument, self.clock.now())
            if fault == "no_reply":
                return None
            reply = self._handlers[instrument](line)
            if fault == "garbled" and reply is not None:
                return _garble(reply)
            return reply

    def attach_device(self, slot: int, device: SimDevice) -> None:
        """Attach a DUT's device model (SSD, DIMM) so its state is snapshot with the lab's."""
        self.dut(slot)
        self._devices[slot] = device

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

    def snapshot(self) -> dict[str, Any]:
        """Return the complete mutable state as JSON-serialisable data."""
        with self._lock:
            return {
                "spec": STATE_SPEC,
                "seed": self.seed,
                "t_s": self.clock.now(),
                "chamber": self.chamber.snapshot(),
                "supplies": {name: sim.snapshot() for name, sim in self.supplies.items()},
                "devices": {str(slot): dev.snapshot() for slot, dev in sorted(self._devices.items())},
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a snapshot taken from a lab with the same seed and configuration."""
        if state.get("spec") != STATE_SPEC:
            raise ValueError(f"lab state spec {state.get('spec')!r} is not {STATE_SPEC!r}")
        if state.get("seed") != self.seed:
            raise ValueError(f"lab state has seed {state.get('seed')}, this lab {self.seed}")
        if set(state["supplies"]) != set(self.supplies):
            raise ValueError(
                f"lab state supplies {sorted(state['supplies'])} "
                f"differ from this lab's {sorted(self.supplies)}"
            )
        with self._lock:
            self.chamber.restore(state["chamber"])
            for slot, dev_state in state.get("devices", {}).items():
                self._devices[int(slot)].restore(dev_state)
            for name, sim in self.supplies.items():
                sim.restore(state["supplies"][name])

    def dut_temperature_c(self, dut: SimDut) -> float:
        """Return a DUT's temperature now: chamber air plus its power times its Rth."""
        with self._lock:
            return self.chamber.air_temp_c() + self.dut_power(dut)[0] * dut.rth_c_per_w

    def dut_power(self, dut: SimDut) -> tuple[float, float, bool]:
        """Return a DUT's (power W, current A, powered) from its supply channel now."""
        with self._lock:
            volts, _, loads = self._channel_solution(dut.supply, dut.channel)
        if dut not in loads or volts <= 0:
            return 0.0, 0.0, False
        set_volts = self.supplies[dut.supply].channels[dut.channel].volts
        # In CC the terminal voltage sags below the setting; each load then draws as the
        # resistance it presents at its nominal operating point (V_set² / P).
        power_w = dut.idle_w * (volts / set_volts) ** 2
        return power_w, power_w / volts, dut.in_window(volts)

    def _channel_solution(self, supply: str, channel: int) -> tuple[float, float, list[SimDut]]:
        """Return (terminal volts, total amps, loads drawing) for one supply channel now."""
        state = self.supplies[supply].channels[channel]
        if not state.on:
            return 0.0, 0.0, []
        loads = [
            dut
            for dut in self._duts.values()
            if dut.supply == supply and dut.channel == channel and dut.in_window(state.volts)
        ]
        total_w = sum(dut.idle_w for dut in loads)
        if state.volts <= 0 or total_w == 0:
            return state.volts, 0.0, loads
        demand_a = total_w / state.volts
        if demand_a <= state.amps_limit:
            return state.volts, demand_a, loads
        # Constant-current mode: the supply lowers its voltage until the loads, seen as the
        # resistance V_set² / P_total, draw exactly the limit.
        return state.amps_limit * state.volts**2 / total_w, state.amps_limit, loads

    def _terminal_reader(self, supply: str) -> Callable[[int], tuple[float, float]]:
        """Return the function the supply simulator calls to read its terminals."""

        def read(channel: int) -> tuple[float, float]:
            volts, amps, _ = self._channel_solution(supply, channel)
            return volts, amps

        return read

    def _supply_noise(self, supply: str) -> Callable[[str, int], float]:
        """Return the reading-noise function for one supply, keyed by channel and time."""

        def reading_noise(kind: str, channel: int) -> float:
            sigma = SUPPLY_VOLTS_NOISE if kind == "volts" else SUPPLY_AMPS_NOISE
            return noise.gauss(self.seed, supply, kind, channel, self.clock.now(), sigma=sigma)

        return reading_noise

    def _handler_for(self, instrument: str) -> Callable[[str], str | None]:
        """Return the line handler a server calls for `instrument`."""
        return lambda line: self.command(instrument, line)

    def _active_fault(self, instrument: str, t_s: float) -> str | None:
        """Return the kind of the fault active on `instrument` at `t_s`, if any."""
        active = [fault for fault in self.config.faults if fault.target == instrument and t_s >= fault.at_s]
        # The latest-starting fault wins, so a config can escalate garbled to no_reply.
        return max(active, key=lambda fault: fault.at_s).kind if active else None
