"""One simulated DDR5 RDIMM: SPD5118 hub, PMIC and cell array on its slot's I2C bus, with snapshot/restore.

`make_dimm(sim_dut, clock, seed, model_name)` builds it for a lab DUT; attach it with
`Lab.attach_device(slot, dimm)` so its state travels with the lab's checkpoint and the lab's
`slot<N>` faults reach `inject(kind, at_s)`. The module's temperature and power come from the
lab (chamber air plus its dissipation); VDD is whatever the PMIC is programmed to, by a PMIC
driver over I2C or by the tester's margin setting.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from drivers.dimm.spd import decode_spd, with_crc
from qualify.clock import Clock
from sim_instruments import noise
from sim_instruments.dimm.cells import CellArray
from sim_instruments.dimm.faults import Cell, Fault
from sim_instruments.dimm.i2c_bus import SimI2cBus
from sim_instruments.dimm.params import DimmModelParams, load_model
from sim_instruments.dimm.pmic import (
    REG_PROGRAMMABLE,
    REG_VR_ENABLE,
    VID_STEP_V,
    VR_ENABLE,
    SimPmic5000,
    vid_code,
)
from sim_instruments.dimm.spd_hub import SimSpd5118

STATE_SPEC = "qualify.sim_dimm_state/1"
# Faults the lab can hand to a module (`faults: [{target: slot3, kind: stuck_bit, at_s: 3600}]`):
# a cell sticks at a seeded address and value; the PMIC shuts its regulators down (as on an
# over-temperature or over-current event); the sideband stops acknowledging (a hung hub).
DEVICE_FAULT_KINDS = ("stuck_bit", "error_storm", "pmic_shutdown", "sideband_hang")
ERROR_STORM_CELLS = 256  # a failing row buffer or a cracked solder joint: many cells at once
HUB_BASE_ADDR = 0x50  # SPD5118: 1010 + HID (JESD300-5)
PMIC_BASE_ADDR = 0x48  # PMIC: 1001 + HID (JESD301), the hub's HID shared
BYTES_PER_WORD = 8
# The tester moves data at the module's data rate with about 60 % bus efficiency for march
# traffic (row misses, read/write turnarounds) *(check against a real tester's march times)*.
BUS_EFFICIENCY = 0.6


class LabDut(Protocol):
    """Name what a DIMM model needs from the lab's DUT: identity, temperature and power."""

    slot: int
    serial: str

    def temperature_c(self) -> float:
        """Return the DUT temperature now."""
        ...

    def powered(self) -> bool:
        """Return whether the slot supply is within its window now."""
        ...

    def power_w(self) -> float:
        """Return the power drawn now."""
        ...

    def current_a(self) -> float:
        """Return the current drawn now."""
        ...


@dataclass(frozen=True)
class Environment:
    """Hold what the lab showed the module at its last sense(): temperature, supply, power."""

    temp_c: float = 25.0
    powered: bool = False
    power_w: float = 0.0
    vin_v: float = 0.0


@dataclass
class SlotRecord:
    """Hold a tester slot's settings and last run for this module; JSON-ready, it travels in snapshots."""

    mode: str = "MARCH"
    algorithm: str = "March C-"
    notation: str = ""
    pattern: str = "CHECKER"
    delay_ms: float = 0.0
    hold_ms: float = 1000.0
    refresh_ms: float = 32.0
    tcr: bool = True
    hammer_sides: int = 2
    hammer_count: int = 100_000
    state: str = "IDLE"
    started_s: float = 0.0
    duration_s: float = 0.0
    error_count: int = 0
    error_bits: int = 0
    errors: list[tuple[int, int, int, int]] = field(default_factory=list)
    conditions: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlotRecord:
        """Build a record from to_dict() data."""
        record = cls(**{k: v for k, v in data.items() if k != "errors"})
        record.errors = [(int(a), int(m), int(e), int(o)) for a, m, e, o in data.get("errors", [])]
        return record

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready data."""
        data = asdict(self)
        data["errors"] = [list(entry) for entry in self.errors]
        return data


SERIAL_OFFSET = 0x205


def stamp_serial(image: bytes, serial: str) -> bytes:
    """Write a DUT's serial into the SPD's JEDEC serial field (0x205–0x208) and fix the CRC.

    Eight hex digits are taken as the four serial bytes, as readers show them; any other
    serial is hashed to four bytes, so every simulated module reads back a distinct serial.
    """
    try:
        raw = bytes.fromhex(serial) if len(serial) == 8 else b""
    except ValueError:
        raw = b""
    if len(raw) != 4:
        raw = hashlib.blake2b(serial.encode(), digest_size=4).digest()
    out = bytearray(image)
    out[SERIAL_OFFSET : SERIAL_OFFSET + 4] = raw
    return with_crc(bytes(out))


class SimDimm:
    """Simulate a DDR5 RDIMM in a lab slot: hub and PMIC on `bus`, cells, and its tester `record`."""

    def __init__(
        self,
        dut: LabDut,
        clock: Clock,
        seed: int,
        params: DimmModelParams,
        *,
        hid: int = 0,
        write_protect_override: bool = False,
    ) -> None:
        if not 0 <= hid <= 7:
            raise ValueError(f"a DDR5 sideband HID is 0..7, got {hid}")
        self.dut = dut
        self.clock = clock
        self.seed = seed
        self.params = params
        self.serial = dut.serial
        self.slot = dut.slot
        # On a lab DUT the module shares the lab's lock, as the simulated SSD does: one lock
        # cannot be taken in two orders, and a snapshot never sees a transaction half done.
        self.lock: threading.RLock = getattr(dut, "lock", None) or threading.RLock()
        image = stamp_serial(params.spd_bytes(), dut.serial)
        self.spd = decode_spd(image)
        if not self.spd.crc_valid:
            raise ValueError(f"DIMM model {params.name}: SPD image {params.spd_image} fails its CRC")
        self.word_count = self.spd.capacity_bytes // BYTES_PER_WORD
        self.word_op_s = 1.0 / (self.spd.data_rate_mts * 1e6 * BUS_EFFICIENCY)
        banks = self.spd.sdram.banks * self.spd.ranks
        self.cells = CellArray(params, seed, dut.serial, self.word_count, banks)
        self.env = Environment()
        self.hub = SimSpd5118(image, lambda: self.env.temp_c, write_protect_override=write_protect_override)
        pmic0 = self.spd.pmic0
        self.pmic = SimPmic5000(
            lambda: self.env.vin_v,
            lambda: self.env.power_w,
            lambda: self.env.temp_c,
            vendor=pmic0.manufacturer.to_spd() if pmic0 else bytes((0x80, 0xB3)),
            revision=pmic0.revision if pmic0 else 0x40,
            setpoints_v={
                "SWA": params.pmic.vdd_v,
                "SWB": params.pmic.vdd_v,
                "SWC": params.pmic.vddq_v,
                "SWD": params.pmic.vpp_v,
            },
        )
        self.hub_addr = HUB_BASE_ADDR + hid
        self.pmic_addr = PMIC_BASE_ADDR + hid
        self.bus = SimI2cBus(
            f"sim-i2c://slot{dut.slot}",
            powered=lambda: self.env.powered,
            lock=self.lock,
            prepare=self.sense,
        )
        self.bus.attach(self.hub_addr, self.hub)
        self.bus.attach(self.pmic_addr, self.pmic)
        self.record = SlotRecord()
        self.injected: list[Fault] = []
        self.device_faults: list[tuple[str, float]] = []
        self._pending: list[tuple[str, float]] = []
        self._pending_lock = threading.Lock()
        self.bus.before_transaction = self.apply_pending
        self.sense()

    def sense(self) -> Environment:
        """Sample the lab (temperature, supply, power) into `env`, before taking `lock`.

        The module samples first, and the hub, the PMIC and the tester read the sample, so a
        module with a lock of its own (no lab) never calls out while holding it; on a lab DUT
        `lock` is the lab's, which the lab's calls re-enter.
        """
        amps = self.dut.current_a()
        power_w = self.dut.power_w()
        self.env = Environment(
            temp_c=self.dut.temperature_c(),
            powered=self.dut.powered(),
            power_w=power_w,
            vin_v=power_w / amps if amps > 0 else 0.0,
        )
        return self.env

    def temperature_c(self) -> float:
        """Return the module temperature at the last sense() (what its hub sensor sees)."""
        return self.env.temp_c

    def powered(self) -> bool:
        """Return whether the module ran at the last sense(): slot in window and PMIC enabled."""
        return self.env.powered and self.pmic.enabled()

    def vdd_v(self) -> float:
        """Return the DRAM core supply now (SWA, the VDD phase the array sees)."""
        return self.pmic.output_v("SWA")

    def nominal_vdd_v(self) -> float:
        """Return the model's power-on VDD setpoint."""
        return self.params.pmic.vdd_v

    def program_vdd(self, volts: float) -> float:
        """Program SWA and SWB to `volts` (rounded to the 5 mV grid) as a tester's sideband does."""
        with self.lock:
            code = vid_code(0.800, round(volts / VID_STEP_V) * VID_STEP_V)
            mode = self.pmic.registers[REG_PROGRAMMABLE]
            self.pmic.i2c_write(bytes((REG_PROGRAMMABLE, mode | 0x04)))
            for register in (0x21, 0x23):
                keep = self.pmic.registers[register] & 0x01
                self.pmic.i2c_write(bytes((register, code << 1 | keep)))
            self.pmic.i2c_write(bytes((REG_PROGRAMMABLE, mode)))
            return self.pmic.setpoint_v("SWA")

    def inject_fault(self, fault: Fault | Mapping[str, Any]) -> Fault:
        """Add a classic fault to the cell array now (a mapping is read as in a model file)."""
        built = fault if isinstance(fault, Fault) else Fault.from_dict(fault)
        with self.lock:
            self.cells.inject(built)
            self.injected.append(built)
        return built

    def inject(self, kind: str, at_s: float = 0.0) -> None:
        """Take a lab device fault (`target: slot<N>`): one of DEVICE_FAULT_KINDS, as of `at_s`.

        The lab calls this in the middle of settling its own state, so the fault is queued
        here and applied by the module's next operation under the module's lock.
        """
        if kind not in DEVICE_FAULT_KINDS:
            raise ValueError(f"DIMM device fault {kind!r} is not one of {', '.join(DEVICE_FAULT_KINDS)}")
        with self._pending_lock:
            self._pending.append((kind, float(at_s)))

    def apply_pending(self) -> None:
        """Apply queued lab faults; callers hold `lock`."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for kind, at_s in pending:
            self.device_faults.append((kind, at_s))
            self._apply_device_fault(kind, at_s)

    def _apply_device_fault(self, kind: str, at_s: float) -> None:
        if kind == "stuck_bit":
            self.cells.inject(self._seeded_stuck_bit(at_s))
        elif kind == "error_storm":
            for i in range(ERROR_STORM_CELLS):
                self.cells.inject(self._seeded_stuck_bit(at_s + i * 1e-6))
        elif kind == "pmic_shutdown":
            self.pmic.registers[REG_VR_ENABLE] &= ~VR_ENABLE & 0xFF
        elif kind == "sideband_hang":
            self.bus.hung = True

    def _seeded_stuck_bit(self, at_s: float) -> Fault:
        u = [noise.uniform(self.seed, self.serial, "stuck_bit", at_s, part) for part in ("a", "b", "v")]
        return Fault(
            "stuck_at",
            Cell(min(self.word_count - 1, int(u[0] * self.word_count)), min(63, int(u[1] * 64))),
            value=int(u[2] < 0.5),
        )

    def snapshot(self) -> dict[str, Any]:
        """Return the module's mutable state as JSON-ready data.

        The lab calls this under its own lock at a checkpoint; on a lab DUT that is the
        module's lock too, so no transaction is half done.
        """
        self.apply_pending()
        return {
            "spec": STATE_SPEC,
            "model": self.params.name,
            "serial": self.serial,
            "hub": self.hub.snapshot(),
            "pmic": self.pmic.snapshot(),
            "injected": [fault.to_dict() for fault in self.injected],
            "device_faults": [[kind, at_s] for kind, at_s in self.device_faults],
            "sideband_hung": self.bus.hung,
            "record": self.record.to_dict(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot() of a module with the same model and serial (no module lock)."""
        if state.get("spec") != STATE_SPEC:
            raise ValueError(f"DIMM state spec {state.get('spec')!r} is not {STATE_SPEC!r}")
        if state.get("model") != self.params.name or state.get("serial") != self.serial:
            raise ValueError(
                f"DIMM state is for {state.get('model')}/{state.get('serial')}, "
                f"this module is {self.params.name}/{self.serial}"
            )
        with self._pending_lock:
            self._pending = []
        self.hub.restore(state["hub"])
        self.pmic.restore(state["pmic"])
        self.cells.clear_injected()
        self.injected = []
        for raw in state.get("injected", []):
            self.inject_fault(raw)
        self.device_faults = [(str(kind), float(at_s)) for kind, at_s in state.get("device_faults", [])]
        for kind, at_s in self.device_faults:
            if kind == "stuck_bit":
                self.cells.inject(self._seeded_stuck_bit(at_s))
        self.bus.hung = bool(state.get("sideband_hung", False))
        self.record = SlotRecord.from_dict(state["record"])


def make_dimm(
    sim_dut: LabDut,
    clock: Clock,
    seed: int,
    model_name: str = "rdimm_healthy",
    *,
    hid: int = 0,
    write_protect_override: bool = False,
) -> SimDimm:
    """Build the DIMM for a lab DUT from a model file (fixtures/devices/dimm/NAME.yaml or a path)."""
    return SimDimm(
        sim_dut, clock, seed, load_model(model_name), hid=hid, write_protect_override=write_protect_override
    )
