"""Bind a station file to live instruments and DUTs through the driver registry.

A station with a `simulation` section starts its simulated lab in-process and binds to it
over the same transports a real lab uses; nothing above this module knows the difference.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from drivers.dimm.spd import decode_spd
from drivers.errors import InstrumentError
from drivers.protocols import NvmeController, PowerSupply, SlotPower, SpdHub, ThermalChamber
from drivers.registry import REGISTRY
from drivers.transport.open import open_transport
from qualify.clock import Clock
from qualify.errors import InputError
from qualify.station.schema import SIM_REF, DutEntry, InstrumentEntry, StationFile, SupplyBinding
from qualify.yamlsrc import YamlDoc, load_yaml, raise_if_errors, validate_doc

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class BoundInstrument:
    """An instrument of the station with its driver, or the error that kept it from opening."""

    name: str
    driver_name: str
    address: str
    driver: Any = None
    idn: str | None = None
    error: str | None = None
    # Held across a multi-command exchange (select a tester slot, run, read) that DUT
    # threads sharing the instrument must not interleave.
    lock: threading.RLock = field(default_factory=threading.RLock)

    def require(self) -> Any:
        """Return the driver; raise InstrumentError if the instrument could not be opened."""
        if self.driver is None:
            raise InstrumentError(self.address, f"{self.name} is not available: {self.error}")
        return self.driver


@dataclass
class BoundDut:
    """A DUT in its slot: the device driver, its supply and its identity."""

    slot: int
    kind: str
    address: str
    driver_name: str
    device: Any = None
    supply: BoundInstrument | None = None
    supply_binding: SupplyBinding | None = None
    serial: str = ""
    model: str | None = None
    firmware: str | None = None
    error: str | None = None
    supply_set_v: float | None = None
    providers: list[Any] = field(default_factory=list)
    tester: BoundInstrument | None = None
    tester_slot: int | None = None

    def capability(self, protocol: type[T]) -> T | None:
        """Return the DUT's device, a further device or provider, or its supply, by `protocol`."""
        for candidate in (self.device, *self.providers):
            if candidate is not None and isinstance(candidate, protocol):
                return candidate
        if protocol is PowerSupply and self.supply is not None and self.supply.driver is not None:
            return self.supply.driver
        return None

    @property
    def label(self) -> str:
        """Return `slot N (SERIAL)` for messages."""
        return f"slot {self.slot} ({self.serial})"


@dataclass
class BoundStation:
    """A bound station: instruments and DUTs by name, and the simulated lab if any."""

    name: str
    path: Path
    sha256: str
    spec: StationFile
    instruments: dict[str, BoundInstrument] = field(default_factory=dict)
    duts: list[BoundDut] = field(default_factory=list)
    lab: Any = None

    def find(self, protocol: type[T]) -> tuple[BoundInstrument, T] | None:
        """Return the first instrument whose driver provides `protocol`."""
        for inst in self.instruments.values():
            if inst.driver is not None and isinstance(inst.driver, protocol):
                return inst, inst.driver
        for inst in self.instruments.values():
            if inst.driver is None and protocol in REGISTRY.get(inst.driver_name).provides:
                return inst, inst.require()  # raises: the instrument is there but dead
        return None

    def chamber(self) -> tuple[BoundInstrument, ThermalChamber] | None:
        """Return the station's chamber, if it has one."""
        return self.find(ThermalChamber)  # type: ignore[type-abstract]

    def describe_error(self, exc: InstrumentError) -> str:
        """Name the instrument or DUT behind an error by its station name and address."""
        for inst in self.instruments.values():
            if inst.address == exc.address:
                return f"{inst.name} ({exc.address}): {exc.message}"
        for dut in self.duts:
            if dut.address == exc.address:
                return f"slot {dut.slot} ({exc.address}): {exc.message}"
        return str(exc)

    def safe_state(self) -> list[str]:
        """Put every instrument in its safe state; return the errors met on the way."""
        errors = []

        # Testers and meters settle while the DUTs still have power; then DUT power goes off
        # before the chamber moves, so no DUT sits powered through a ramp.
        def order(inst: BoundInstrument) -> int:
            if isinstance(inst.driver, ThermalChamber):
                return 2
            return 1 if isinstance(inst.driver, PowerSupply | SlotPower) else 0

        ordered = sorted(self.instruments.values(), key=order)
        for inst in ordered:
            if inst.driver is None:
                continue
            try:
                inst.driver.safe_state()
            except Exception as exc:  # every instrument gets its chance, whatever one raises
                errors.append(f"{inst.name} ({inst.address}): {exc}")
        return errors

    def snapshot(self) -> dict[str, Any]:
        """Return the state a resumed run needs to continue this station (the lab's, if any)."""
        return {"lab": self.lab.snapshot()} if self.lab is not None else {}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore state saved by snapshot()."""
        if self.lab is not None and "lab" in state:
            self.lab.restore(state["lab"])

    def close(self) -> None:
        """Close every transport and stop the simulated lab."""
        for inst in self.instruments.values():
            if inst.driver is not None:
                try:
                    inst.driver.close()
                except Exception as exc:  # closing must not hide the run's own outcome
                    log.warning("closing %s: %s", inst.name, exc)
        for dut in self.duts:
            if dut.device is not None and hasattr(dut.device, "close"):
                try:
                    dut.device.close()
                except Exception as exc:  # as above
                    log.warning("closing slot %s: %s", dut.slot, exc)
        if self.lab is not None:
            self.lab.stop()


def load_station(path: str | Path) -> tuple[StationFile, str]:
    """Read and validate a station file; return it with its SHA-256."""
    p = Path(path)
    doc = load_yaml(p)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a station file is a mapping with spec, name, instruments and duts")
    station = validate_doc(doc, StationFile)
    raise_if_errors(_check_references(station, doc))
    return station, hashlib.sha256(p.read_bytes()).hexdigest()


def _check_references(station: StationFile, doc: YamlDoc) -> list[InputError]:
    """Check names across the file: unique names and slots, known drivers, bound supplies."""
    errors = []
    names = [i.name for i in station.instruments]
    seen: set[str] = set()
    for i, entry in enumerate(station.instruments):
        if entry.name in seen:
            errors.append(doc.error(("instruments", i, "name"), f"instrument name {entry.name!r} repeats"))
        seen.add(entry.name)
        try:
            REGISTRY.get(entry.driver)
        except LookupError as exc:
            errors.append(doc.error(("instruments", i, "driver"), str(exc)))
        if SIM_REF.search(entry.address) and station.simulation is None:
            errors.append(
                doc.error(
                    ("instruments", i, "address"),
                    "refers to the simulated lab, but there is no simulation section",
                )
            )
    slots: set[int] = set()
    for i, dut in enumerate(station.duts):
        if dut.slot in slots:
            errors.append(doc.error(("duts", i, "slot"), f"slot {dut.slot} repeats"))
        slots.add(dut.slot)
        try:
            REGISTRY.get(dut.driver)
        except LookupError as exc:
            errors.append(doc.error(("duts", i, "driver"), str(exc)))
        for j, extra in enumerate(dut.devices):
            try:
                REGISTRY.get(extra.driver)
            except LookupError as exc:
                errors.append(doc.error(("duts", i, "devices", j, "driver"), str(exc)))
        if dut.tester and dut.tester.instrument not in names:
            errors.append(
                doc.error(
                    ("duts", i, "tester", "instrument"), f"no instrument named {dut.tester.instrument!r}"
                )
            )
        if dut.supply and dut.supply.instrument not in names:
            errors.append(
                doc.error(
                    ("duts", i, "supply", "instrument"),
                    f"no instrument named {dut.supply.instrument!r} "
                    f"(instruments: {', '.join(names) or 'none'})",
                )
            )
        if dut.kind not in station.limits:
            errors.append(
                doc.error(
                    ("duts", i, "kind"), f"limits states no max_supply_v / max_case_temp_c for {dut.kind}"
                )
            )
    return errors


def bind_station(path: str | Path, clock: Clock, seed: int) -> BoundStation:
    """Load a station file, start its simulated lab if it has one, and open every driver."""
    spec, sha = load_station(path)
    station = BoundStation(name=spec.name, path=Path(path), sha256=sha, spec=spec)
    endpoints: dict[str, Any] = {}
    served: dict[str, str] = {}
    if spec.simulation is not None:
        station.lab, served, endpoints = _start_lab(spec, clock, seed, Path(path))
    try:
        for entry in spec.instruments:
            station.instruments[entry.name] = _bind_instrument(entry, served, endpoints)
        for dut in spec.duts:
            station.duts.append(_bind_dut(dut, station, endpoints))
    except BaseException:
        station.close()
        raise
    return station


def _start_lab(
    spec: StationFile, clock: Clock, seed: int, path: Path
) -> tuple[Any, dict[str, str], dict[str, Any]]:
    from sim_instruments.endpoints import start_lab

    assert spec.simulation is not None
    try:
        return start_lab(spec.simulation.lab, clock, seed)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"simulated lab: {exc}", file=str(path), key="simulation.lab") from None


def _resolve(address: str, served: dict[str, str]) -> str:
    def sub(match: Any) -> str:
        name = match.group(1)
        if name not in served:
            raise InputError(f"address refers to ${{sim:{name}}} but the simulated lab has no {name!r}")
        return served[name]

    return SIM_REF.sub(sub, address)


def _bind_instrument(
    entry: InstrumentEntry, served: dict[str, str], endpoints: dict[str, Any]
) -> BoundInstrument:
    address = _resolve(entry.address, served)
    spec = REGISTRY.get(entry.driver)
    inst = BoundInstrument(name=entry.name, driver_name=entry.driver, address=address)
    try:
        transport = open_transport(
            spec.transport,
            address,
            timeout_ms=entry.timeout_ms,
            options=entry.options,
            endpoints=endpoints,
        )
        inst.driver = spec.factory(transport, dict(entry.options))
        inst.idn = inst.driver.identify()
    except InstrumentError as exc:
        inst.error = exc.message
        if inst.driver is not None:
            inst.driver.close()
            inst.driver = None
    return inst


def _bind_dut(entry: DutEntry, station: BoundStation, endpoints: dict[str, Any]) -> BoundDut:
    spec = REGISTRY.get(entry.driver)
    dut = BoundDut(slot=entry.slot, kind=entry.kind, address=entry.address, driver_name=entry.driver)
    if entry.supply is not None:
        dut.supply = station.instruments[entry.supply.instrument]
        dut.supply_binding = entry.supply
    if entry.tester is not None:
        dut.tester = station.instruments[entry.tester.instrument]
        dut.tester_slot = entry.tester.slot
    try:
        transport = open_transport(
            spec.transport,
            entry.address,
            timeout_ms=entry.timeout_ms,
            options=entry.options,
            endpoints=endpoints,
        )
        dut.device = spec.factory(transport, dict(entry.options))
        for extra in entry.devices:
            extra_spec = REGISTRY.get(extra.driver)
            extra_transport = open_transport(
                extra_spec.transport,
                extra.address,
                timeout_ms=entry.timeout_ms,
                options=extra.options,
                endpoints=endpoints,
            )
            dut.providers.append(extra_spec.factory(extra_transport, dict(extra.options)))
        # Capabilities the simulated lab gives a slot directly (a simulated drive's workloads).
        dut.providers.extend(endpoints.get(f"providers://slot{entry.slot}", []))
        if entry.block_device is not None:
            from drivers.workload.fio import FioWorkload

            dut.providers.append(FioWorkload(entry.block_device))
        power_up(dut)
        identify(dut)
    except InstrumentError as exc:
        dut.error = exc.message
        dut.serial = dut.serial or f"UNKNOWN-SLOT{entry.slot}"
    return dut


def power_up(dut: BoundDut) -> None:
    """Power a DUT at its nominal voltage so it can be identified (bring-up of a slot)."""
    binding = dut.supply_binding
    if binding is None or dut.supply is None:
        return
    psu = dut.supply.require()
    psu.set_current_limit(binding.channel, binding.current_limit_a)
    psu.set_voltage(binding.channel, binding.nominal_v)
    psu.set_output(binding.channel, True)
    dut.supply_set_v = binding.nominal_v


def identify(dut: BoundDut) -> None:
    """Read the DUT's serial, model and firmware from the device itself."""
    nvme = dut.capability(NvmeController)  # type: ignore[type-abstract]
    if nvme is not None:
        ident = nvme.identify_controller()
        dut.serial = ident.serial_number
        dut.model, dut.firmware = ident.model_number, ident.firmware_revision
        return
    hub = dut.capability(SpdHub)  # type: ignore[type-abstract]
    if hub is not None:
        spd = decode_spd(hub.read_spd())
        dut.serial = spd.serial_number
        dut.model = f"{spd.part_number} ({spd.module_type.name}, {spd.speed_grade})"
        dut.firmware = f"SPD {spd.spd_revision} rev {spd.module_revision_code:02X}"
        return
    raise InstrumentError(dut.address, f"no way to identify a {dut.kind} through driver {dut.driver_name}")
