"""Capabilities the engine, the actions and the plans know; drivers implement them.

Every driver receives an open transport and exposes one or more of these protocols. The
engine never asks which model or which transport is behind a capability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from drivers.nvme.structures import IdentifyController, SmartLog
    from drivers.workload.spec import WorkloadResult, WorkloadSpec


@runtime_checkable
class Instrument(Protocol):
    """Anything on the station that has an identity and a safe state."""

    address: str

    def identify(self) -> str:
        """Return the instrument's identity (`*IDN?` four-field string or equivalent)."""
        ...

    def safe_state(self) -> None:
        """Put the instrument in its safe state (outputs off, chamber to ambient)."""
        ...

    def close(self) -> None:
        """Release the transport."""
        ...


@runtime_checkable
class PowerSupply(Instrument, Protocol):
    """A programmable multi-channel DC supply."""

    channels: tuple[int, ...]

    def set_voltage(self, channel: int, volts: float) -> None:
        """Set a channel's output voltage."""
        ...

    def set_current_limit(self, channel: int, amps: float) -> None:
        """Set a channel's current limit."""
        ...

    def set_output(self, channel: int, on: bool) -> None:
        """Switch a channel's output on or off."""
        ...

    def measure_voltage(self, channel: int) -> float:
        """Measure a channel's output voltage in volts."""
        ...

    def measure_current(self, channel: int) -> float:
        """Measure a channel's output current in amperes."""
        ...


@runtime_checkable
class ThermalChamber(Instrument, Protocol):
    """A temperature chamber with a controlled air temperature."""

    def set_temperature(self, temp_c: float) -> None:
        """Set the air temperature setpoint and run to it."""
        ...

    def read_temperature(self) -> float:
        """Measure the chamber air temperature in °C."""
        ...

    def read_setpoint(self) -> float:
        """Return the active setpoint in °C."""
        ...


@runtime_checkable
class Multimeter(Instrument, Protocol):
    """A digital multimeter."""

    def measure_dc_voltage(self) -> float:
        """Measure DC voltage in volts."""
        ...

    def measure_dc_current(self) -> float:
        """Measure DC current in amperes."""
        ...


@runtime_checkable
class SlotPower(Instrument, Protocol):
    """Per-DUT slot power: on, off, cycle, for power-off bakes and power-loss tests."""

    def power_on(self, slot: int) -> None:
        """Switch a slot on."""
        ...

    def power_off(self, slot: int) -> None:
        """Switch a slot off."""
        ...

    def is_on(self, slot: int) -> bool:
        """Return whether a slot is powered."""
        ...


@runtime_checkable
class PowerOffNotice(Protocol):
    """A DUT told before its power goes, so it shuts down cleanly, and found again after."""

    def prepare_power_off(self) -> None:
        """Tell the device power is about to go (an NVMe shutdown notification).

        Raise InstrumentError if it could not be told: its power-off would then be unsafe.
        """
        ...

    def after_power_on(self) -> None:
        """Find the device again once its power is back (a bus rescan where the host needs one)."""
        ...


@runtime_checkable
class NvmeController(Protocol):
    """An NVMe controller reached through a passthrough transport."""

    address: str

    def identify_controller(self) -> IdentifyController:
        """Return the decoded Identify Controller data structure."""
        ...

    def smart_log(self) -> SmartLog:
        """Return the decoded SMART / Health Information log page (LID 02h)."""
        ...

    def close(self) -> None:
        """Release the transport."""
        ...


@runtime_checkable
class SpdHub(Protocol):
    """A DDR5 SPD5118 hub: the module's SPD EEPROM, its write protection and its temperature sensor."""

    address: str

    def read_spd(self) -> bytes:
        """Read the whole 1024-byte SPD image (every 128-byte page)."""
        ...

    def read_temperature(self) -> float:
        """Measure the hub's temperature sensor in °C."""
        ...

    def write_protection(self) -> int:
        """Return the write-protected 64-byte blocks as a 16-bit mask (bit n: bytes 64n..64n+63)."""
        ...

    def set_write_protection(self, blocks_mask: int) -> None:
        """Set the write-protected blocks; raise InstrumentError if the hub does not take them."""
        ...

    def write_end_user(self, offset: int, data: bytes) -> None:
        """Write and verify bytes in the end-user area (0x280..0x3FF); refuse protected blocks."""
        ...


@runtime_checkable
class Pmic(Protocol):
    """A DDR5 module PMIC (JESD301): rail telemetry and programmable output for margining."""

    address: str

    def read_rails(self) -> dict[str, tuple[float, float]]:
        """Measure each rail as {name: (volts, amps)}: VDD, VDDQ and VPP."""
        ...

    def rail_setpoint(self, rail: str) -> float:
        """Return a rail's programmed output voltage in volts."""
        ...

    def set_rail_voltage(self, rail: str, volts: float) -> None:
        """Program a rail's output voltage on the PMIC's 5 mV grid (margining), then verify it."""
        ...

    def read_input_voltage(self) -> float:
        """Measure the PMIC's bulk input (the slot's 12 V) in volts."""
        ...


@runtime_checkable
class MemoryTester(Protocol):
    """A DIMM slot tester: runs a qualify.march algorithm at a refresh interval, logs failing words."""

    address: str

    def identify(self) -> str:
        """Return the tester's `*IDN?` four-field identity."""
        ...

    def run_test(
        self,
        slot: int,
        algorithm: str,
        refresh_ms: float,
        *,
        delay_ms: float = 0.0,
        vdd_margin_pct: float = 0.0,
        tcr: bool = True,
    ) -> list[int]:
        """Run an algorithm on a slot (retention pauses, VDD margin, temperature-compensated refresh).

        Return the failing word addresses, ascending.
        """
        ...

    def error_log(self, slot: int) -> list[tuple[int, int, int, int]]:
        """Return the last run's failures on a slot as (address, bit mask, element, op)."""
        ...

    def last_duration_s(self, slot: int) -> float:
        """Return the device time the last run on a slot took, in seconds."""
        ...


@runtime_checkable
class BlockWorkload(Protocol):
    """Runs an I/O workload (fio job, PTS round) against a block device or namespace.

    fio (`drivers.workload.fio.FioWorkload`) and the simulated SSD both implement it, so a plan
    cannot tell which one ran its workload.
    """

    def run(self, spec: WorkloadSpec) -> WorkloadResult:
        """Run one job and return per-direction figures, errors and verify findings."""
        ...

    def run_workload(self, job: dict[str, object]) -> dict[str, float]:
        """Run a plan's job mapping (`drivers.workload.params`); return flat readings.

        Readings: `{read,write,trim}_{iops,bw_bytes_s,io_bytes,lat_p50_us,lat_p99_us,
        lat_p999_us,lat_max_us}`, `runtime_s`, `errors`, `verify_failures` and
        `verify_{unwritten,misdirected,stale,corrupted}`.
        """
        ...


@runtime_checkable
class HostMemoryStress(Protocol):
    """Stresses host memory that holds the DUT modules (stressapptest, memtester, March)."""

    def run_stress(self, size_bytes: int, seconds: float) -> dict[str, float]:
        """Run a stress pass; return bandwidth and miscompare counts.

        Readings: `passed` (1 or 0), `miscompares`, `failed_tests`, `runtime_s`, `size_bytes`,
        `edac_ce`, `edac_ue`, `unattributed`, `bw_bytes_s` when the tool measures it, and
        `slot{N}_{miscompares,ce,ue}` for each DUT slot an error was attributed to.
        """
        ...


@runtime_checkable
class EdacCounters(Protocol):
    """Reads the kernel's EDAC corrected/uncorrected error counters per DIMM."""

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Return {dimm label: (corrected, uncorrected)} now.

        A DIMM without a unique label is keyed `mcN/dimmM`; errors a controller could not pin
        on a DIMM are keyed `mcN/noinfo`.
        """
        ...

    def delta(self, before: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """Return how much each counter rose since the `before` snapshot."""
        ...


@runtime_checkable
class NvmeMedia(Protocol):
    """An NVMe drive's media operations: format, I/O by LBA, and the OCP health log."""

    def identify_namespace(self, nsid: int = 1) -> Any:
        """Return the decoded Identify Namespace (block size, size in blocks)."""
        ...

    def format_nvm(self, nsid: int = 1, lbaf: int | None = None, ses: Any = 0) -> Any:
        """Format a namespace, optionally erasing user data securely."""
        ...

    def read(self, nsid: int, slba: int, blocks: int, fua: bool = False) -> bytes:
        """Read logical blocks."""
        ...

    def write(self, nsid: int, slba: int, data: bytes, fua: bool = False) -> None:
        """Write whole logical blocks."""
        ...

    def ocp_smart_extended_log(self, uuid_index: int = 0) -> Any:
        """Return the OCP SMART / Health Information Extended log (LID C0h)."""
        ...
