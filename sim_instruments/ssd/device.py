"""The simulated NVMe SSD: media, wear, health and background operations behind a controller.

`make_ssd(sim_dut, clock, seed, model_name)` builds a drive from a parameter file and returns
(device, transport). The device evolves analytically from the shared clock and never ticks: on
every command, workload, power event or query it integrates the interval since it last looked
(power-on time, Arrhenius-weighted retention time, time above WCTEMP/CCTEMP, refreshes) in one
step per linear piece of the DUT's temperature history.

Data really stored: blocks written through NVMe I/O commands (a sparse LBA → bytes map). Bulk
workload traffic is counted, not stored; a region a workload wrote reads back as a fixed
pattern, (workload tag, LBA) repeated, so a verify that reads it finds what was written.

Power: a clean power-off is one preceded by a host shutdown notification
(`shutdown_notification()`, NVMe CC.SHN: the drive flushes its write cache); a loss without
one is unsafe. The lab syncs the drive as its power changes, so the drive sees the change at its
exact time; a DUT without a lab (`BenchDut`) tells it with `power_event(on, clean)`, and without
either the drive notices power transitions when it is next used (`sync()`).
A DUT that offers `temperature_at(t_s)` gives the device its exact temperature history; without
it the temperature between two looks is taken as linear between them. A DUT that offers `lock`
(the lab's RLock) lets the drive share it, so lab and drive can never wait on each other.

Fault switches: `drop_off`, `controller_fatal`, `error_burst`, `inject_bit_errors`,
`retire_blocks`, `clear_faults`; station-file faults arrive through `inject(kind, at_s)`.
"""

from __future__ import annotations

import base64
import math
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from drivers.errors import InstrumentError, InstrumentTimeout
from drivers.nvme.commands import Completion, NvmeCommand
from qualify.clock import Clock
from sim_instruments import noise
from sim_instruments.nvme_ssd import (
    ERROR_LOG_ENTRIES,
    SELF_TEST_RESULTS,
    STATUS_COMPARE_FAILURE,
    STATUS_INVALID_FIELD,
    STATUS_INVALID_FIRMWARE_IMAGE,
    STATUS_INVALID_FIRMWARE_SLOT,
    STATUS_NAMESPACE_WRITE_PROTECTED,
    STATUS_SANITIZE_IN_PROGRESS,
    STATUS_SELF_TEST_IN_PROGRESS,
    STATUS_UNRECOVERED_READ_ERROR,
    CommandOutcome,
    ErrorLogEntry,
    FirmwareSlots,
    NamespaceState,
    OcpHealth,
    SanitizeStatus,
    SelfTestLog,
    SelfTestResult,
    SimHealth,
    SimNvmeController,
    SimNvmeIdentity,
    SimNvmeTransport,
)
from sim_instruments.ssd import ecc, nand, timeline
from sim_instruments.ssd.ftl import WriteMix, measure_waf
from sim_instruments.ssd.model import DEFAULT_MODEL, SsdModel, load_ssd_model

STATE_SPEC = "qualify.sim_ssd_state/1"
FIRMWARE_MAGIC = b"QSIMFW01"
"""A simulated firmware image: this magic, an 8-byte ASCII revision, then any payload."""
_FIRMWARE_MAX_BYTES = 64 * 1024 * 1024
_SANICAP_CRYPTO = 1 << 0
_SANICAP_BLOCK = 1 << 1
_SANITIZE_EXIT_FAILURE = 1
_SANITIZE_BLOCK_ERASE = 2
_SANITIZE_CRYPTO_ERASE = 4
_SELF_TEST_SHORT = 1
_SELF_TEST_EXTENDED = 2
_SELF_TEST_ABORT = 0xF
_SELF_TEST_OK = 0
_SELF_TEST_ABORTED_BY_COMMAND = 1
_SELF_TEST_ABORTED_BY_RESET = 2
_SELF_TEST_ABORTED_BY_FORMAT = 4
_SELF_TEST_FAILED_SEGMENT = 7
_SELF_TEST_ABORTED_BY_SANITIZE = 9
_SENSOR_OFFSETS_K = (-3, 5)  # NAND a little cooler and the controller hotter than composite
_DSSD_VERSION = (2, 0, 0, 0)
FAULT_KINDS = (
    "drop_off",
    "drop_off_persistent",
    "controller_fatal",
    "controller_fatal_persistent",
    "error_burst",
    "spare_depletion",
)


class DutView(Protocol):
    """What the device needs from the lab's DUT: identity, power and temperature now."""

    serial: str

    def powered(self) -> bool:
        """Return whether the DUT's supply is within its operating window now."""
        ...

    def temperature_c(self) -> float:
        """Return the DUT's temperature now."""
        ...


class BenchDut:
    """A DUT on a bench, for a drive used without a lab: power and temperature set by hand.

    Keeps its temperature history so the drive sees every change exactly (`temperature_at`).
    """

    def __init__(self, serial: str, clock: Clock, temp_c: float = 25.0, powered: bool = True) -> None:
        self.serial = serial
        self.slot = 0
        self.model: str | None = None
        self._clock = clock
        self._powered = powered
        self._history: list[tuple[float, float]] = [(clock.now(), temp_c)]

    def powered(self) -> bool:
        """Return whether the bench supply is on."""
        return self._powered

    def set_power(self, on: bool) -> None:
        """Switch the bench supply (tell the drive with `power_event`)."""
        self._powered = on

    def temperature_c(self) -> float:
        """Return the temperature now."""
        return self._history[-1][1]

    def set_temperature(self, temp_c: float) -> None:
        """Step the temperature to `temp_c` from now on."""
        now = self._clock.now()
        self._history = [entry for entry in self._history if entry[0] < now] + [(now, temp_c)]

    def temperature_at(self, t_s: float) -> float:
        """Return the temperature at run time `t_s` (a step function of the changes)."""
        temp_c = self._history[0][1]
        for when, value in self._history:
            if when <= t_s:
                temp_c = value
            else:
                break
        return temp_c


@dataclass
class _Stored:
    data: bytes
    mark_h: float  # retention clock reading when the block was written


@dataclass(frozen=True)
class MediaState:
    """The bulk data's wear and error state at one instant."""

    pe_cycles: float
    retention_h: float  # age of the bulk data in hours at the RBER reference temperature
    reads_per_block: float
    rber_terms: nand.RberTerms
    codeword_failure_probability: float
    soft_decode_probability: float

    @property
    def rber(self) -> float:
        """Return the raw bit error rate."""
        return self.rber_terms.total


@dataclass(frozen=True)
class BulkIo:
    """Host traffic of one workload, as the device sees it."""

    region_start_bytes: int
    region_bytes: int
    read_bytes: int = 0
    write_bytes: int = 0
    trim_bytes: int = 0
    read_ios: int = 0
    write_ios: int = 0
    unaligned_ios: int = 0
    sequential: bool = False
    waf: float = 1.0
    runtime_s: float = 0.0
    busy_temp_c: float = 25.0
    verify: bool = False


@dataclass(frozen=True)
class BulkOutcome:
    """What a workload's reads found."""

    unrecovered_reads: int
    first_error_offset_bytes: int | None
    verify_failures: tuple[tuple[int, str], ...]
    soft_decodes: int


@dataclass
class DriveState:
    """Every mutable value of a drive except its stored blocks; JSON-ready via asdict()."""

    lba_index: int
    t_sync_s: float
    temp_sync_c: float
    powered: bool
    firmware_revisions: list[str]
    last_off_clean: bool = True
    shutdown_notified: bool = False  # the host announced the power-off; a loss now is clean
    retention_clock_h: float = 0.0
    refresh_mark_h: float = 0.0
    refresh_powered_h: float = 0.0
    bulk_mark_h: float = 0.0
    bulk_reads_per_block: float = 0.0
    above_wctemp: bool = False
    # Workloads handed over but not yet past: [start s, end s, temp °C, keep, fresh age fraction];
    # keep < 0 when the workload wrote nothing.
    busy: list[list[float]] = field(default_factory=list)
    host_read_bytes: int = 0
    host_write_bytes: int = 0
    host_read_commands: int = 0
    host_write_commands: int = 0
    busy_s: float = 0.0
    power_cycles: int = 0
    power_on_s: float = 0.0
    unsafe_shutdowns: int = 0
    incomplete_shutdowns: int = 0
    plp_starts: int = 0
    media_errors: int = 0
    uncorrectable_reads: int = 0
    soft_ecc_errors: int = 0
    error_count: int = 0
    warning_temp_s: float = 0.0
    critical_temp_s: float = 0.0
    nand_write_bytes: float = 0.0
    nand_read_bytes: float = 0.0
    extra_erases: int = 0
    retired_blocks: int = 0
    refresh_count: int = 0
    throttle_events: int = 0
    unaligned_io: int = 0
    write_cache: bool = True
    active_slot: int = 1
    next_slot: int = 0
    read_seq: int = 0
    workload_seq: int = 0
    telemetry_generation: int = 0
    telemetry_data: str = ""
    firmware_staging: dict[str, str] = field(default_factory=dict)
    self_test: dict[str, Any] | None = None
    self_test_results: list[dict[str, int]] = field(default_factory=list)
    sanitize: dict[str, Any] | None = None
    global_data_erased: bool = False
    error_log: list[dict[str, int]] = field(default_factory=list)
    dropped: str = ""  # "", "power_cycle" (cleared by a power cycle) or "persistent"
    fatal: str = ""
    bursts: list[list[int]] = field(default_factory=list)  # [start byte, end byte)
    corruptions: dict[str, list[int]] = field(default_factory=dict)  # LBA -> [bits, silent]
    unflushed: dict[str, list[Any] | None] = field(default_factory=dict)  # LBA -> previous block
    extents: list[list[int]] = field(default_factory=list)  # [start byte, end byte, tag], sorted
    pending_faults: list[list[Any]] = field(default_factory=list)  # [kind, at_s] from the lab


def _pattern(tag: int, lba: int, block_bytes: int) -> bytes:
    """Return what a bulk workload left in a block: (tag, LBA) repeated."""
    return struct.pack("<QQ", tag, lba) * (block_bytes // 16)


def _flip_bits(data: bytes, bits: int, key: tuple[object, ...], seed: int) -> bytes:
    """Return `data` with `bits` distinct bits flipped at positions drawn from the key."""
    out = bytearray(data)
    total = len(out) * 8
    chosen: set[int] = set()
    draw = 0
    while len(chosen) < min(bits, total):
        chosen.add(int(noise.uniform(seed, *key, draw) * total))
        draw += 1
    for position in chosen:
        out[position // 8] ^= 1 << (position % 8)
    return bytes(out)


def parse_firmware_image(image: bytes) -> str | None:
    """Return the revision a simulated firmware image carries, or None if it is not one."""
    if len(image) < 16 or not image.startswith(FIRMWARE_MAGIC):
        return None
    try:
        revision = image[8:16].decode("ascii").rstrip(" \x00")
    except UnicodeDecodeError:
        return None
    return revision or None


def build_firmware_image(revision: str, payload_bytes: int = 4080) -> bytes:
    """Return a simulated firmware image for `revision` (at most 8 ASCII characters)."""
    raw = revision.encode("ascii")
    if not raw or len(raw) > 8:
        raise ValueError(f"firmware revision {revision!r}: 1 to 8 ASCII characters")
    return FIRMWARE_MAGIC + raw.ljust(8, b" ") + bytes(payload_bytes)


class SimSsd:
    """One simulated NVMe SSD (implements NvmeBackend for its SimNvmeController)."""

    def __init__(self, model: SsdModel, serial: str, clock: Clock, seed: int, dut: DutView) -> None:
        self.model = model
        self.serial = serial
        self.seed = seed
        self._clock = clock
        self._dut = dut
        # The drive calls into the lab (power, temperature) while holding its lock; a DUT that
        # offers the lab's own re-entrant lock makes both one lock, so neither can wait on the other.
        self.lock: threading.RLock = getattr(dut, "lock", None) or threading.RLock()
        self.identity = SimNvmeIdentity(
            serial=serial,
            model=model.identity.model_number,
            firmware=model.identity.firmware,
            capacity_bytes=model.capacity_bytes,
            vid=model.identity.vid,
            ssvid=model.identity.ssvid,
            ieee_oui=model.identity.ieee_oui,
            lba_sizes_bytes=model.lba_sizes_bytes,
            active_lba_index=model.default_lba_index,
            wctemp_k=model.wctemp_k,
            cctemp_k=model.cctemp_k,
            sanicap=_SANICAP_CRYPTO | _SANICAP_BLOCK,
        )
        self.controller = SimNvmeController(
            self.identity,
            self.health,
            backend=self,
            self_test_extended_min=model.timing.self_test_extended_min,
            firmware_slots=model.firmware_slots,
        )
        # Part-to-part spread: a drive's RBER and block wear-out scale, fixed by seed and serial.
        sigma = model.rber.drive_sigma
        self.rber_factor = math.exp(noise.gauss(seed, "ssd", serial, "rber", sigma=sigma))
        self.bad_block_eta_pe = model.nand.bad_block_eta_pe * math.exp(
            noise.gauss(seed, "ssd", serial, "bad_block_eta", sigma=sigma)
        )
        revisions = [model.identity.firmware] + [""] * (model.firmware_slots - 1)
        self.state = DriveState(
            lba_index=model.default_lba_index,
            t_sync_s=clock.now(),
            temp_sync_c=dut.temperature_c(),
            powered=dut.powered(),
            firmware_revisions=revisions,
        )
        if self.state.powered:
            self.state.power_cycles = 1  # a drive built in a powered slot has been switched on once
        self._blocks: dict[int, _Stored] = {}
        self._temp_at: Callable[[float], float] | None = getattr(dut, "temperature_at", None)

    # Time and power ---------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the drive's state up to the clock, noticing power changes since the last look."""
        with self.lock:
            powered = self._dut.powered()  # the lab may hand over due faults while answering
            if powered != self.state.powered:
                self._power_transition(powered, clean=False)
            else:
                self._advance(self._clock.now())
            if self.state.pending_faults:
                self._apply_pending_faults()

    def power_event(self, on: bool, clean: bool = False, at_s: float | None = None) -> None:
        """Tell the drive its supply switched on or off just now, or at run time `at_s`.

        `clean`: the host sent a shutdown notification first (as `shutdown_notification()`
        records). `at_s` dates a change found after the fact; it makes no call into the lab.
        """
        with self.lock:
            when_s = self._clock.now() if at_s is None else max(at_s, self.state.t_sync_s)
            if on == self.state.powered:
                self._advance(when_s)
                if not on and clean:
                    self.state.last_off_clean = True
                return
            self._power_transition(on, clean, when_s)

    def shutdown_notification(self) -> None:
        """Take the host's shutdown notification (CC.SHN): flush the write cache, shut down.

        A power loss from now on is clean. A host that sends commands again has reset the
        controller, which clears the notification. Raise InstrumentTimeout if the drive is
        unpowered, off the bus or in fatal status: it never reports the shutdown complete.
        """
        with self.lock:
            self.before_command()
            st = self.state
            if st.dropped or st.fatal:
                raise InstrumentTimeout(
                    self.controller.name, "the controller never reported the shutdown complete (CSTS.SHST)"
                )
            st.unflushed = {}
            st.shutdown_notified = True

    def before_command(self) -> None:
        """Sync, then raise InstrumentTimeout if the drive cannot answer (unpowered)."""
        self.sync()
        if not self.state.powered:
            raise InstrumentTimeout(self.controller.name, "no response: the drive is not powered")
        self.state.shutdown_notified = False

    def _temp_now(self, t_s: float) -> float:
        """Return the DUT's temperature at `t_s` (now, without a history) without settling the lab."""
        return self._temp_at(t_s) if self._temp_at is not None else self._dut.temperature_c()

    def _power_transition(self, on: bool, clean: bool, now: float | None = None) -> None:
        st = self.state
        now = self._clock.now() if now is None else now
        self._advance(now)
        clean = clean or st.shutdown_notified
        st.shutdown_notified = False
        if not on:
            self._finish_self_test(now, aborted_result=_SELF_TEST_ABORTED_BY_RESET)
            if not clean:
                if self.model.power.power_loss_protection:
                    st.plp_starts += 1  # the capacitors flush the write cache
                else:
                    self._lose_unflushed()
                    st.incomplete_shutdowns += 1
            st.unflushed = {}
            st.powered = False
            st.last_off_clean = clean
            st.above_wctemp = False
            return
        st.powered = True
        st.power_cycles += 1
        if not st.last_off_clean:
            st.unsafe_shutdowns += 1
        st.last_off_clean = False
        if st.next_slot:
            st.active_slot, st.next_slot = st.next_slot, 0
        if st.dropped == "power_cycle":
            st.dropped = ""
        if st.fatal == "power_cycle":
            st.fatal = ""
        if not st.dropped:
            self.controller.come_back()
        self.controller.reset()
        st.above_wctemp = self._temp_now(now) >= self.model.thermal.wctemp_c

    def _lose_unflushed(self) -> None:
        for key, previous in self.state.unflushed.items():
            lba = int(key)
            if previous is None:
                self._blocks.pop(lba, None)
            else:
                self._blocks[lba] = _Stored(base64.b64decode(previous[0]), float(previous[1]))

    def _idle_knots(
        self, a_s: float, b_s: float, t0_s: float, now_s: float, temp_now_c: float
    ) -> list[timeline.Knot]:
        temp_at = self._temp_at
        if temp_at is not None:
            # The temperature now is known already: the lab need not be asked twice.
            return timeline.knots(
                lambda t_s: temp_now_c if t_s == now_s else temp_at(t_s), a_s, b_s, 0.0, 0.0
            )

        def linear(t_s: float) -> float:
            span = now_s - t0_s
            if span <= 0:
                return temp_now_c
            return self.state.temp_sync_c + (temp_now_c - self.state.temp_sync_c) * (t_s - t0_s) / span

        return [(a_s, linear(a_s)), (b_s, linear(b_s))]

    def _advance(self, now: float) -> None:
        st = self.state
        t0 = st.t_sync_s
        temp_now_c = self._temp_now(now)
        if now <= t0:
            st.temp_sync_c = temp_now_c  # a step at this instant starts the next piece
            return
        rber_params = self.model.rber
        points: list[timeline.Knot] = []

        def accrue(piece: list[timeline.Knot]) -> None:
            st.retention_clock_h += timeline.af_hours(piece, rber_params.ea_ev, rber_params.ref_temp_c)
            points.extend(piece)

        t = t0
        remaining = []
        for start_s, end_s, temp_c, keep, fresh in st.busy:
            a, b = min(max(start_s, t), now), min(max(end_s, t), now)
            if a > t:
                accrue(self._idle_knots(t, a, t0, now, temp_now_c))
            if b > a:
                accrue([(a, temp_c), (b, temp_c)])
            t = max(t, b)
            if end_s <= now:
                if keep >= 0:
                    self._settle_bulk_write(keep, fresh, temp_c, end_s - start_s)
            else:
                remaining.append([start_s, end_s, temp_c, keep, fresh])
        st.busy = remaining
        if now > t:
            accrue(self._idle_knots(t, now, t0, now, temp_now_c))
        elif not any(start_s <= now < end_s for start_s, end_s, _, _, _ in remaining):
            points.append((now, temp_now_c))  # a workload just ended: the drive is idle again
        if st.powered:
            thermal = self.model.thermal
            dt_s = now - t0
            st.power_on_s += dt_s
            above_warning = timeline.seconds_at_or_above(points, thermal.wctemp_c)
            above_critical = timeline.seconds_at_or_above(points, thermal.cctemp_c)
            st.warning_temp_s += above_warning - above_critical
            st.critical_temp_s += above_critical
            crossings, st.above_wctemp = timeline.upward_crossings(points, thermal.wctemp_c, st.above_wctemp)
            st.throttle_events += crossings
            self._background_refresh(dt_s / 3600.0, now, points)
        st.t_sync_s = now
        st.temp_sync_c = temp_now_c
        self._finish_self_test(now, aborted_result=None)

    def _settle_bulk_write(self, keep: float, fresh: float, temp_c: float, runtime_s: float) -> None:
        """Age the bulk data as of a workload's end: kept data aged through it, new data is young."""
        st = self.state
        rber_params = self.model.rber
        busy_h = nand.arrhenius_af(rber_params.ea_ev, rber_params.ref_temp_c, temp_c) * runtime_s / 3600.0
        age_h = keep * self._age_h(st.bulk_mark_h) + (1.0 - keep) * fresh * busy_h
        st.bulk_mark_h = st.retention_clock_h - age_h

    def _background_refresh(self, powered_h: float, now: float, points: Sequence[timeline.Knot]) -> None:
        """Rewrite all data every refresh interval of power-on time (firmware cannot see off-time).

        `points` is the temperature over the powered interval that ends at `now`.
        """
        st = self.state
        interval_h = self.model.nand.refresh_interval_powered_h
        st.refresh_powered_h += powered_h
        if st.refresh_powered_h < interval_h:
            return
        count = math.floor(st.refresh_powered_h / interval_h)
        st.refresh_powered_h -= count * interval_h
        st.refresh_count += count
        rber_params = self.model.rber
        # The last refresh ran refresh_powered_h ago, within this powered interval: the data
        # has aged since by the Arrhenius integral of that stretch of the history.
        since = timeline.clip(points, now - st.refresh_powered_h * 3600.0, now)
        st.refresh_mark_h = st.retention_clock_h - timeline.af_hours(
            since, rber_params.ea_ev, rber_params.ref_temp_c
        )
        st.bulk_reads_per_block = 0.0
        st.nand_write_bytes += count * self.used_bytes()

    # Media physics ----------------------------------------------------------------------------

    @property
    def block_bytes(self) -> int:
        """Return the LBA size the namespace is formatted with now."""
        return self.model.lba_sizes_bytes[self.state.lba_index]

    def pe_cycles(self) -> float:
        """Return the average P/E cycles of the NAND: NAND bytes written over physical bytes."""
        return self.state.nand_write_bytes / self.model.physical_bytes + self.state.extra_erases

    def _age_h(self, mark_h: float) -> float:
        return max(0.0, self.state.retention_clock_h - max(mark_h, self.state.refresh_mark_h))

    def rber_terms(self, pe_cycles: float, retention_h: float, reads: float) -> nand.RberTerms:
        """Return this drive's RBER terms (the model's power law times the drive's factor)."""
        return nand.rber_terms(self.model.rber, pe_cycles, retention_h, reads).scaled(self.rber_factor)

    def media_state(self) -> MediaState:
        """Return the bulk data's wear and error state now."""
        with self.lock:
            self.sync()
            return self._media_state(self.state.bulk_mark_h)

    def _media_state(self, mark_h: float) -> MediaState:
        st = self.state
        terms = self.rber_terms(self.pe_cycles(), self._age_h(mark_h), st.bulk_reads_per_block)
        ladder = ecc.ladder_exceedance(self.model.ecc, terms.total)
        return MediaState(
            pe_cycles=self.pe_cycles(),
            retention_h=self._age_h(mark_h),
            reads_per_block=st.bulk_reads_per_block,
            rber_terms=terms,
            codeword_failure_probability=ladder[-1],
            soft_decode_probability=ladder[0],
        )

    def grown_bad_blocks(self) -> int:
        """Return the blocks retired so far: Weibull wear-out in P/E plus injected retirements."""
        fraction = nand.grown_bad_fraction(
            self.pe_cycles(), self.bad_block_eta_pe, self.model.nand.bad_block_shape
        )
        return math.floor(self.model.total_blocks * fraction) + self.state.retired_blocks

    def spare_blocks_left(self) -> int:
        """Return the spare blocks not yet used to replace bad ones."""
        return max(0, self.model.nand.spare_blocks - self.grown_bad_blocks())

    def read_only(self) -> bool:
        """Return whether the media went read-only (no spare block left)."""
        return self.spare_blocks_left() == 0

    def waf_for(self, mix: WriteMix) -> float:
        """Return the WAF the scaled-down FTL measures for this drive's OP and a write mix."""
        ftl = self.model.ftl
        return measure_waf(self.model.nand.over_provisioning, mix, ftl.blocks, ftl.pages_per_block).waf

    def dut_temp_c(self) -> float:
        """Return the DUT's temperature now, before any workload's self-heating."""
        return self._temp_now(self._clock.now())

    def composite_temp_c(self) -> float:
        """Return the composite temperature now: the workload's while busy, else the DUT's."""
        now = self._clock.now()
        for start_s, end_s, temp_c, _, _ in self.state.busy:
            if start_s <= now < end_s:
                return temp_c
        return self._temp_now(now)

    def throttle_factor(self, temp_c: float) -> float:
        """Return the bandwidth fraction the drive keeps at `temp_c` (throttling above WCTEMP)."""
        thermal = self.model.thermal
        if temp_c >= thermal.cctemp_c:
            return thermal.heavy_throttle_factor
        if temp_c >= thermal.wctemp_c:
            return thermal.light_throttle_factor
        return 1.0

    def used_bytes(self) -> int:
        """Return the bytes of the namespace that hold data (bulk regions and stored blocks)."""
        bulk = sum(end - start for start, end, _ in self.state.extents)
        stored = sum(1 for lba in self._blocks if self._extent_tag(lba * self.block_bytes) is None)
        return min(self.model.capacity_bytes, bulk + stored * self.block_bytes)

    # Health pages -----------------------------------------------------------------------------

    def health(self) -> SimHealth:
        """Return the SMART / Health values now."""
        with self.lock:
            self.sync()
            st = self.state
            temp_k = round(self.composite_temp_c() + nand.KELVIN_OFFSET)
            spare_pct = math.floor(100 * self.spare_blocks_left() / self.model.nand.spare_blocks)
            warning = 0
            if spare_pct < self.model.nand.spare_threshold_pct:
                warning |= 1 << 0
            read_only = self.read_only()
            if read_only or st.fatal or st.media_errors >= self.model.nand.reliability_degraded_media_errors:
                warning |= 1 << 2
            if read_only:
                warning |= 1 << 3
            return SimHealth(
                temperature_k=temp_k,
                available_spare_pct=spare_pct,
                available_spare_threshold_pct=self.model.nand.spare_threshold_pct,
                percentage_used_pct=math.floor(100 * self.pe_cycles() / self.model.endurance.rated_pe_cycles),
                data_units_read=-(-st.host_read_bytes // 512_000),
                data_units_written=-(-st.host_write_bytes // 512_000),
                host_read_commands=st.host_read_commands,
                host_write_commands=st.host_write_commands,
                controller_busy_time_min=math.floor(st.busy_s / 60),
                power_cycles=st.power_cycles,
                power_on_hours=math.floor(st.power_on_s / 3600),
                unsafe_shutdowns=st.unsafe_shutdowns,
                media_errors=st.media_errors,
                num_err_log_entries=st.error_count,
                critical_warning=warning,
                warning_temp_time_min=min(0xFFFFFFFF, math.floor(st.warning_temp_s / 60)),
                critical_temp_time_min=min(0xFFFFFFFF, math.floor(st.critical_temp_s / 60)),
                temperature_sensors_k=tuple(temp_k + offset for offset in _SENSOR_OFFSETS_K),
            )

    def ocp_health(self) -> OcpHealth:
        """Return the OCP SMART extended (C0h) values now."""
        with self.lock:
            self.sync()
            st = self.state
            pe = self.pe_cycles()
            spread = self.model.nand.wear_spread
            spare = self.model.nand.spare_blocks
            rho = self.model.nand.over_provisioning
            endurance = self.model.endurance
            return OcpHealth(
                physical_media_units_written=round(st.nand_write_bytes),
                physical_media_units_read=round(st.nand_read_bytes),
                bad_user_nand_blocks_raw=self.grown_bad_blocks(),
                bad_user_nand_blocks_normalized=math.floor(100 * self.spare_blocks_left() / spare),
                uncorrectable_read_errors=st.uncorrectable_reads,
                soft_ecc_errors=st.soft_ecc_errors,
                # The system area runs in SLC mode, rated for ten times the TLC cycles.
                system_data_used_pct=min(255, math.floor(10 * pe / endurance.rated_pe_cycles)),
                refresh_count=st.refresh_count,
                user_data_erase_count_max=min(0xFFFFFFFF, math.ceil(pe * (1 + spread))),
                user_data_erase_count_min=min(0xFFFFFFFF, math.floor(pe * (1 - spread))),
                thermal_throttling_events=min(255, st.throttle_events),
                thermal_throttling_status=self._throttle_level(self.composite_temp_c()),
                dssd_version=_DSSD_VERSION,
                incomplete_shutdowns=st.incomplete_shutdowns,
                free_blocks_pct=math.floor(100 * rho / (1 + rho) * self.spare_blocks_left() / spare),
                capacitor_health_pct=100 if self.model.power.power_loss_protection else 0xFFFF,
                unaligned_io=st.unaligned_io,
                nuse_blocks=self.used_bytes() // self.block_bytes,
                plp_start_count=st.plp_starts,
                endurance_estimate_bytes=round(
                    endurance.dwpd * self.model.capacity_bytes * 365 * endurance.warranty_years
                ),
            )

    def _throttle_level(self, temp_c: float) -> int:
        if not self.state.powered:
            return 0
        thermal = self.model.thermal
        return 2 if temp_c >= thermal.cctemp_c else 1 if temp_c >= thermal.wctemp_c else 0

    def fatal(self) -> bool:
        """Return whether the controller is in fatal status (CSTS.CFS)."""
        return bool(self.state.fatal)

    def namespace(self) -> NamespaceState:
        """Return the namespace's LBA format and the blocks in use."""
        return NamespaceState(
            lba_index=self.state.lba_index, nuse_blocks=self.used_bytes() // self.block_bytes
        )

    def firmware_revision(self) -> str:
        """Return the firmware revision running now."""
        return self.state.firmware_revisions[self.state.active_slot - 1]

    def error_log(self) -> Sequence[ErrorLogEntry]:
        """Return the Error Information entries, newest first."""
        return [ErrorLogEntry(**entry) for entry in self.state.error_log]

    def log_error(self, sqid: int, cid: int, status: int, lba: int, nsid: int) -> None:
        """Record a command error in the Error Information log."""
        st = self.state
        st.error_count += 1
        entry = ErrorLogEntry(
            error_count=st.error_count, sqid=sqid, cid=cid, status=status, lba=lba, nsid=nsid
        )
        st.error_log = [asdict(entry), *st.error_log][:ERROR_LOG_ENTRIES]

    def firmware_slots(self) -> FirmwareSlots:
        """Return the Firmware Slot log values."""
        st = self.state
        return FirmwareSlots(st.active_slot, st.next_slot, tuple(st.firmware_revisions))

    def telemetry(self, create: bool) -> tuple[int, bytes]:
        """Return (generation, data area 1) of host-initiated telemetry, capturing it if asked."""
        st = self.state
        if create:
            st.telemetry_generation = (st.telemetry_generation + 1) % 256
            media = self._media_state(st.bulk_mark_h)
            capture = struct.pack(
                "<8sQQQddI",
                b"QSIMTLM1",
                math.floor(st.power_on_s / 3600),
                st.media_errors,
                st.refresh_count,
                media.pe_cycles,
                media.rber,
                round(self.composite_temp_c() + nand.KELVIN_OFFSET),
            )
            st.telemetry_data = base64.b64encode(capture.ljust(512, b"\x00")).decode("ascii")
        data = base64.b64decode(st.telemetry_data) if st.telemetry_data else bytes(512)
        return st.telemetry_generation, data

    def write_cache_enabled(self) -> bool:
        """Return whether the volatile write cache is enabled."""
        return self.state.write_cache

    def set_write_cache(self, enabled: bool) -> None:
        """Enable or disable the volatile write cache (disabling it flushes)."""
        self.state.write_cache = enabled
        if not enabled:
            self.state.unflushed = {}

    # Background operations --------------------------------------------------------------------

    def _sanitizing(self) -> bool:
        sanitize = self.state.sanitize
        return sanitize is not None and self._clock.now() < float(sanitize["end_s"])

    def sanitize_status(self) -> SanitizeStatus:
        """Return the Sanitize Status log values."""
        st = self.state
        timing = self.model.timing
        estimates = {
            "block_erase_s": round(timing.sanitize_block_erase_s),
            "crypto_erase_s": round(timing.sanitize_crypto_erase_s),
        }
        if st.sanitize is None:
            return SanitizeStatus(global_data_erased=st.global_data_erased, **estimates)
        start, end = float(st.sanitize["start_s"]), float(st.sanitize["end_s"])
        now = self._clock.now()
        if now < end:
            progress = min(0xFFFE, math.floor(65536 * (now - start) / (end - start)))
            return SanitizeStatus(progress, 2, st.global_data_erased, int(st.sanitize["cdw10"]), **estimates)
        return SanitizeStatus(0xFFFF, 1, st.global_data_erased, int(st.sanitize["cdw10"]), **estimates)

    def sanitize(self, action: int, no_deallocate: bool, cdw10: int) -> CommandOutcome:
        """Start a sanitize: block erase (an erase of every block) or crypto erase (a key change)."""
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        if action == _SANITIZE_EXIT_FAILURE:
            return CommandOutcome()  # this model never fails a sanitize, so there is no failure mode
        timing = self.model.timing
        if action == _SANITIZE_BLOCK_ERASE:
            duration_s = timing.sanitize_block_erase_s
            self.state.extra_erases += 1
        elif action == _SANITIZE_CRYPTO_ERASE:
            duration_s = timing.sanitize_crypto_erase_s
        else:
            return CommandOutcome(STATUS_INVALID_FIELD)  # overwrite is not in SANICAP
        self._finish_self_test(self._clock.now(), aborted_result=_SELF_TEST_ABORTED_BY_SANITIZE)
        self._discard_user_data()
        now = self._clock.now()
        self.state.sanitize = {"cdw10": cdw10, "start_s": now, "end_s": now + duration_s}
        self.state.global_data_erased = True
        return CommandOutcome()

    def format_nvm(self, lba_index: int, secure_erase: int) -> CommandOutcome:
        """Format with an LBA format; user data is discarded (SES 1 also erases every block)."""
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        self._finish_self_test(self._clock.now(), aborted_result=_SELF_TEST_ABORTED_BY_FORMAT)
        self._discard_user_data()
        self.state.lba_index = lba_index
        if secure_erase == 1:
            self.state.extra_erases += 1
        return CommandOutcome()

    def _discard_user_data(self) -> None:
        st = self.state
        self._blocks.clear()
        st.corruptions = {}
        st.unflushed = {}
        st.extents = []
        st.bulk_mark_h = st.retention_clock_h
        st.bulk_reads_per_block = 0.0

    def self_test_log(self) -> SelfTestLog:
        """Return the Device Self-test log values."""
        st = self.state
        results = tuple(SelfTestResult(**entry) for entry in st.self_test_results)
        if st.self_test is None:
            return SelfTestLog(results=results)
        start, end = float(st.self_test["start_s"]), float(st.self_test["end_s"])
        pct = min(99, math.floor(100 * (self._clock.now() - start) / (end - start)))
        return SelfTestLog(int(st.self_test["code"]), pct, results)

    def start_self_test(self, code: int, nsid: int) -> CommandOutcome:
        """Start a short (1) or extended (2) self-test, or abort the running one (Fh)."""
        st = self.state
        now = self._clock.now()
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        if code == _SELF_TEST_ABORT:
            self._finish_self_test(now, aborted_result=_SELF_TEST_ABORTED_BY_COMMAND)
            return CommandOutcome()
        if code not in (_SELF_TEST_SHORT, _SELF_TEST_EXTENDED):
            return CommandOutcome(STATUS_INVALID_FIELD)
        if st.self_test is not None:
            return CommandOutcome(STATUS_SELF_TEST_IN_PROGRESS)
        timing = self.model.timing
        duration_s = (
            timing.self_test_short_s if code == _SELF_TEST_SHORT else 60.0 * timing.self_test_extended_min
        )
        st.self_test = {"code": code, "nsid": nsid, "start_s": now, "end_s": now + duration_s}
        return CommandOutcome()

    def _finish_self_test(self, now: float, aborted_result: int | None) -> None:
        """Record the running self-test's result if it ended by `now`, or abort it if asked."""
        st = self.state
        test = st.self_test
        if test is None:
            return
        end_s = float(test["end_s"])
        if now < end_s and aborted_result is None:
            return
        code, nsid = int(test["code"]), int(test["nsid"])
        finished = now >= end_s
        overrun_s = max(0.0, now - end_s)
        poh = math.floor(max(0.0, st.power_on_s - overrun_s) / 3600)
        result = SelfTestResult(code=code, result=aborted_result or _SELF_TEST_OK, power_on_hours=poh)
        if finished:
            result = self._self_test_verdict(code, nsid, poh)
        st.self_test = None
        st.self_test_results = [asdict(result), *st.self_test_results][:SELF_TEST_RESULTS]

    def _self_test_verdict(self, code: int, nsid: int, poh: int) -> SelfTestResult:
        st = self.state
        if (
            self.read_only()
            or st.fatal
            or st.media_errors >= self.model.nand.reliability_degraded_media_errors
        ):
            return SelfTestResult(code=code, result=_SELF_TEST_FAILED_SEGMENT, segment=1, power_on_hours=poh)
        if code == _SELF_TEST_EXTENDED:
            bad = self._first_bad_lba()
            if bad is not None:
                # Segment 2 is the media scan; NSID, FLBA, SCT and SC are valid.
                status = STATUS_UNRECOVERED_READ_ERROR
                return SelfTestResult(
                    code=code,
                    result=_SELF_TEST_FAILED_SEGMENT,
                    segment=2,
                    valid_diagnostic=0b1111,
                    power_on_hours=poh,
                    nsid=1,
                    failing_lba=bad,
                    sct=(status >> 8) & 0x7,
                    sc=status & 0xFF,
                )
        return SelfTestResult(code=code, result=_SELF_TEST_OK, power_on_hours=poh)

    def _first_bad_lba(self) -> int | None:
        """Return the lowest LBA a media scan cannot read back, if any."""
        candidates = [start // self.block_bytes for start, _ in self.state.bursts]
        correctable = self.model.ecc.correctable_bits
        candidates += [
            int(lba)
            for lba, (bits, silent) in self.state.corruptions.items()
            if bits > correctable and not silent
        ]
        return min(candidates) if candidates else None

    def firmware_download(self, offset_bytes: int, data: bytes) -> CommandOutcome:
        """Keep one piece of a firmware image until the commit."""
        staged = sum(len(base64.b64decode(piece)) for piece in self.state.firmware_staging.values())
        if offset_bytes + len(data) > _FIRMWARE_MAX_BYTES or staged + len(data) > _FIRMWARE_MAX_BYTES:
            return CommandOutcome(STATUS_INVALID_FIELD)
        self.state.firmware_staging[str(offset_bytes)] = base64.b64encode(data).decode("ascii")
        return CommandOutcome()

    def _staged_image(self) -> bytes | None:
        pieces = sorted(
            (int(offset), base64.b64decode(data)) for offset, data in self.state.firmware_staging.items()
        )
        image = bytearray()
        for offset, piece in pieces:
            if offset != len(image):
                return None  # a gap or an overlap: not a whole image
            image += piece
        return bytes(image) if image else None

    def firmware_commit(self, slot: int, action: int) -> CommandOutcome:
        """Commit the downloaded image (CA 0/1/3) and/or activate a slot (CA 1/2/3)."""
        st = self.state
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        slots = self.model.firmware_slots
        if slot > slots:
            return CommandOutcome(STATUS_INVALID_FIRMWARE_SLOT)
        target = slot or (2 if slots > 1 else 1)  # slot 0: the controller picks the first writable
        if action in (0, 1, 3):
            if target == 1:
                return CommandOutcome(STATUS_INVALID_FIRMWARE_SLOT)  # slot 1 is read-only
            image = self._staged_image()
            revision = parse_firmware_image(image) if image is not None else None
            if revision is None:
                return CommandOutcome(STATUS_INVALID_FIRMWARE_IMAGE)
            st.firmware_revisions[target - 1] = revision
            st.firmware_staging = {}
            if action == 1:
                st.next_slot = target
            elif action == 3:
                st.active_slot, st.next_slot = target, 0
            return CommandOutcome()
        if action == 2:
            if not st.firmware_revisions[target - 1]:
                return CommandOutcome(STATUS_INVALID_FIRMWARE_SLOT)
            st.next_slot = target
            return CommandOutcome()
        return CommandOutcome(STATUS_INVALID_FIELD)

    # I/O ---------------------------------------------------------------------------------------

    def _extent_tag(self, offset_bytes: int) -> int | None:
        for start, end, tag in self.state.extents:
            if start <= offset_bytes < end:
                return tag
        return None

    def _remove_extents(self, start: int, end: int) -> None:
        kept: list[list[int]] = []
        for a, b, tag in self.state.extents:
            if b <= start or a >= end:
                kept.append([a, b, tag])
                continue
            if a < start:
                kept.append([a, start, tag])
            if b > end:
                kept.append([end, b, tag])
        self.state.extents = sorted(kept)

    def _add_extent(self, start: int, end: int, tag: int) -> None:
        self._remove_extents(start, end)
        self.state.extents = sorted([*self.state.extents, [start, end, tag]])

    def _in_burst(self, lba: int) -> bool:
        offset = lba * self.block_bytes
        return any(start <= offset < end for start, end in self.state.bursts)

    def _codeword_fails(self, lba: int, mark_h: float) -> tuple[bool, bool]:
        """Return (uncorrectable, needed retry) for the codeword(s) holding an LBA's data."""
        media = self._media_state(mark_h)
        size = self.block_bytes
        cw_bytes = self.model.ecc.codeword_data_bytes
        uncorrectable = soft = False
        for cw in range(lba * size // cw_bytes, ((lba + 1) * size - 1) // cw_bytes + 1):
            # One uniform per codeword and write: as the data ages its failure probability
            # grows past the uniform and stays past it, as a real bad codeword would.
            u = noise.uniform(self.seed, "ssd", self.serial, "codeword", cw, repr(mark_h))
            uncorrectable |= u < media.codeword_failure_probability
            soft |= u < media.soft_decode_probability
        return uncorrectable, soft

    def _account_read(self, nbytes: int) -> None:
        st = self.state
        st.nand_read_bytes += nbytes
        pages_per_block = self.model.nand.block_bytes / self.model.nand.page_bytes
        st.bulk_reads_per_block += nbytes / self.model.physical_bytes * pages_per_block

    def read(self, slba: int, nlb: int) -> CommandOutcome:
        """Read blocks: stored data, a bulk region's pattern, or zeroes where nothing was written."""
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        st = self.state
        size = self.block_bytes
        correctable = self.model.ecc.correctable_bits
        out = bytearray()
        failed: int | None = None
        for lba in range(slba, slba + nlb):
            stored = self._blocks.get(lba)
            tag = None if stored is not None else self._extent_tag(lba * size)
            if stored is not None:
                data, mark_h, written = stored.data, stored.mark_h, True
            elif tag is not None:
                data, mark_h, written = _pattern(tag, lba, size), st.bulk_mark_h, True
            else:
                data, mark_h, written = bytes(size), 0.0, False
            if self._in_burst(lba):
                failed = lba
                break
            corruption = st.corruptions.get(str(lba))
            if corruption is not None:
                bits, silent = corruption
                if bits > correctable and not silent:
                    failed = lba
                    break
                if bits > correctable:
                    data = _flip_bits(data, bits, ("ssd", self.serial, "flip", lba), self.seed)
                else:
                    st.soft_ecc_errors += 1
            elif written:
                uncorrectable, soft = self._codeword_fails(lba, mark_h)
                if uncorrectable:
                    failed = lba
                    break
                st.soft_ecc_errors += int(soft)
            out += data
        st.host_read_commands += 1
        st.host_read_bytes += nlb * size
        st.read_seq += 1
        self._account_read(nlb * size)
        if failed is not None:
            st.media_errors += 1
            st.uncorrectable_reads += 1
            return CommandOutcome(STATUS_UNRECOVERED_READ_ERROR, data=bytes(out), error_lba=failed)
        return CommandOutcome(data=bytes(out))

    def write(self, slba: int, data: bytes, fua: bool) -> CommandOutcome:
        """Store whole blocks; without power-loss protection unflushed ones die with the power."""
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        if self.read_only():
            return CommandOutcome(STATUS_NAMESPACE_WRITE_PROTECTED, error_lba=slba)
        st = self.state
        size = self.block_bytes
        volatile = st.write_cache and not fua and not self.model.power.power_loss_protection
        for index in range(len(data) // size):
            lba = slba + index
            key = str(lba)
            if volatile and key not in st.unflushed:
                previous = self._blocks.get(lba)
                st.unflushed[key] = (
                    None
                    if previous is None
                    else [base64.b64encode(previous.data).decode("ascii"), previous.mark_h]
                )
            self._blocks[lba] = _Stored(data[index * size : (index + 1) * size], st.retention_clock_h)
            st.corruptions.pop(key, None)
        st.host_write_commands += 1
        st.host_write_bytes += len(data)
        # Command-level traffic is kilobytes to megabytes; bulk workloads carry the wear, so
        # these writes are counted once on the NAND rather than paying for an FTL measurement.
        st.nand_write_bytes += len(data)
        if (slba * size) % 4096 or len(data) % 4096:
            st.unaligned_io += 1
        st.global_data_erased = False
        return CommandOutcome()

    def flush(self) -> CommandOutcome:
        """Make every completed write durable."""
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        self.state.unflushed = {}
        return CommandOutcome()

    def write_uncorrectable(self, slba: int, nlb: int) -> CommandOutcome:
        """Mark blocks unreadable until written again (Write Uncorrectable)."""
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        for lba in range(slba, slba + nlb):
            self.state.corruptions[str(lba)] = [self.model.ecc.codeword_bits, 0]
        return CommandOutcome()

    def compare(self, slba: int, data: bytes) -> CommandOutcome:
        """Compare blocks with `data` (Compare Failure on a mismatch)."""
        outcome = self.read(slba, len(data) // self.block_bytes)
        if outcome.status != 0:
            return CommandOutcome(outcome.status, error_lba=outcome.error_lba)
        return (
            CommandOutcome()
            if outcome.data == data
            else CommandOutcome(STATUS_COMPARE_FAILURE, error_lba=slba)
        )

    def _drop_range(self, slba: int, nlb: int) -> None:
        st = self.state
        lbas = (
            range(slba, slba + nlb)
            if nlb < len(self._blocks)
            else [lba for lba in self._blocks if slba <= lba < slba + nlb]
        )
        for lba in lbas:
            self._blocks.pop(lba, None)
        st.corruptions = {k: v for k, v in st.corruptions.items() if not slba <= int(k) < slba + nlb}
        st.unflushed = {k: v for k, v in st.unflushed.items() if not slba <= int(k) < slba + nlb}
        size = self.block_bytes
        self._remove_extents(slba * size, (slba + nlb) * size)

    def write_zeroes(self, slba: int, nlb: int, deallocate: bool) -> CommandOutcome:
        """Set blocks to zeroes (they read back as zeroes whether deallocated or not)."""
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        if self.read_only():
            return CommandOutcome(STATUS_NAMESPACE_WRITE_PROTECTED, error_lba=slba)
        self._drop_range(slba, nlb)
        return CommandOutcome()

    def deallocate(self, ranges: Sequence[tuple[int, int]]) -> CommandOutcome:
        """Deallocate (trim) ranges; they read back as zeroes."""
        if self._sanitizing():
            return CommandOutcome(STATUS_SANITIZE_IN_PROGRESS)
        for slba, nlb in ranges:
            self._drop_range(slba, nlb)
        return CommandOutcome()

    # Bulk workloads ----------------------------------------------------------------------------

    def apply_bulk(self, io: BulkIo) -> BulkOutcome:
        """Account one workload's traffic: counters, wear, data regions, retention, read errors."""
        with self.lock:
            self.sync()
            st = self.state
            st.shutdown_notified = False  # I/O means the host brought the controller back
            st.workload_seq += 1
            tag = st.workload_seq
            start = max([self._clock.now()] + [end_s for _, end_s, _, _, _ in st.busy])
            st.busy_s += io.runtime_s
            outcome = self._bulk_reads(io, tag) if io.read_bytes else BulkOutcome(0, None, (), 0)
            keep, fresh = self._bulk_writes(io, tag) if io.write_bytes else (-1.0, 0.0)
            st.busy.append([start, start + io.runtime_s, io.busy_temp_c, keep, fresh])
            if io.trim_bytes:
                end = io.region_start_bytes + min(io.region_bytes, io.trim_bytes)
                self._remove_extents(io.region_start_bytes, end)
            st.host_read_bytes += io.read_bytes
            st.host_write_bytes += io.write_bytes
            st.host_read_commands += io.read_ios
            st.host_write_commands += io.write_ios
            st.unaligned_io += io.unaligned_ios
            return outcome

    def _written_bytes_in(self, start: int, end: int) -> int:
        return sum(max(0, min(b, end) - max(a, start)) for a, b, _ in self.state.extents)

    def _bulk_reads(self, io: BulkIo, tag: int) -> BulkOutcome:
        st = self.state
        region_end = io.region_start_bytes + io.region_bytes
        passes = io.read_bytes / io.region_bytes  # how many times each byte was read, on average
        written = self._written_bytes_in(io.region_start_bytes, region_end)
        media = self._media_state(st.bulk_mark_h)
        cw_bytes = self.model.ecc.codeword_data_bytes
        codewords = written * passes / cw_bytes
        expected = codewords * media.codeword_failure_probability
        burst_bytes = sum(max(0, min(b, region_end) - max(a, io.region_start_bytes)) for a, b in st.bursts)
        expected += burst_bytes / cw_bytes * passes
        correctable = self.model.ecc.correctable_bits
        size = self.block_bytes
        silent: list[tuple[int, str]] = []
        for key, (bits, is_silent) in sorted(st.corruptions.items(), key=lambda item: int(item[0])):
            offset = int(key) * size
            if not io.region_start_bytes <= offset < region_end or bits <= correctable:
                continue
            if is_silent:
                if io.verify:
                    silent.append((offset, "checksum"))
            else:
                expected += min(1.0, passes)
        u = noise.uniform(self.seed, "ssd", self.serial, "bulk_uecc", tag)
        errors = ecc.poisson_quantile(u, expected)
        soft = round(codewords * max(0.0, media.soft_decode_probability - media.codeword_failure_probability))
        st.soft_ecc_errors += soft
        st.media_errors += errors
        st.uncorrectable_reads += errors
        self._account_read(io.read_bytes)
        first: int | None = None
        if errors:
            first = self._log_bulk_errors(io, tag, errors)
        return BulkOutcome(errors, first, tuple(silent), soft)

    def _log_bulk_errors(self, io: BulkIo, tag: int, errors: int) -> int:
        """Add error log entries for a workload's unrecovered reads; return the first offset."""
        st = self.state
        size = self.block_bytes
        blocks = max(1, io.region_bytes // size)
        offsets = []
        for index in range(min(errors, ERROR_LOG_ENTRIES)):
            lba = io.region_start_bytes // size + math.floor(
                noise.uniform(self.seed, "ssd", self.serial, "bulk_uecc_lba", tag, index) * blocks
            )
            offsets.append(lba * size)
            entry = ErrorLogEntry(
                error_count=st.error_count + index + 1,
                sqid=1,
                cid=0xFFFF,
                status=STATUS_UNRECOVERED_READ_ERROR,
                lba=lba,
                nsid=1,
            )
            st.error_log = [asdict(entry), *st.error_log][:ERROR_LOG_ENTRIES]
        st.error_count += errors
        return min(offsets)

    def _bulk_writes(self, io: BulkIo, tag: int) -> tuple[float, float]:
        """Account a workload's writes; return (share of old data kept, mean age of the new).

        The new data's age at the workload's end is a fraction of the workload's duration: half
        of it for one pass, less when LBAs are rewritten many times over.
        """
        st = self.state
        passes = io.write_bytes / io.region_bytes
        start = io.region_start_bytes
        if io.sequential:
            fresh = min(io.write_bytes, io.region_bytes)
            covered_end = start + fresh
            overwritten = 1.0
            fresh_age = 0.5 / max(1.0, passes)
        else:
            # Uniform random writes of W bytes over a region R reach 1 − e^(−W/R) of it, and
            # a block's last write is exponentially distributed in age, truncated at the start.
            fraction = -math.expm1(-passes)
            fresh = round(io.region_bytes * fraction)
            covered_end = start + io.region_bytes
            overwritten = fraction
            fresh_age = 0.5 if passes < 1e-6 else 1.0 / passes - math.exp(-passes) / fraction
        used_before = self.used_bytes()
        size = self.block_bytes
        for lba in [lba for lba in self._blocks if start <= lba * size < covered_end]:
            if (
                overwritten >= 1.0
                or noise.uniform(self.seed, "ssd", self.serial, "overwrite", lba, tag) < overwritten
            ):
                self._blocks.pop(lba)
                st.corruptions.pop(str(lba), None)
        self._add_extent(start, covered_end, tag)
        used_after = max(1, self.used_bytes())
        # The bulk data's age and read count are averages over the data.
        keep = max(0.0, min(1.0, (used_after - fresh) / used_after)) if used_before else 0.0
        st.bulk_reads_per_block *= keep
        st.nand_write_bytes += io.write_bytes * io.waf
        st.global_data_erased = False
        return keep, fresh_age

    # Faults -------------------------------------------------------------------------------------

    def drop_off(self, persistent: bool = False) -> None:
        """Drop off the bus: commands time out until a power cycle (or until cleared if persistent)."""
        with self.lock:
            self.state.dropped = "persistent" if persistent else "power_cycle"
            self.controller.drop_off()

    def controller_fatal(self, persistent: bool = False) -> None:
        """Enter controller fatal status: every command fails with Internal Error."""
        with self.lock:
            self.state.fatal = "persistent" if persistent else "power_cycle"

    def error_burst(self, slba: int, nlb: int) -> None:
        """Make reads of blocks [slba, slba + nlb) fail as unrecovered read errors."""
        with self.lock:
            size = self.block_bytes
            self.state.bursts.append([slba * size, (slba + nlb) * size])

    def inject_bit_errors(self, lba: int, bits: int, silent: bool = False) -> None:
        """Flip `bits` bits in an LBA's codeword: corrected if within t, else a media error.

        With `silent`, errors beyond t are miscorrected: the read succeeds with corrupted data.
        A write to the LBA clears it.
        """
        with self.lock:
            self.state.corruptions[str(lba)] = [bits, int(silent)]

    def retire_blocks(self, count: int) -> None:
        """Retire `count` good blocks at once (a die failure), consuming spare blocks."""
        with self.lock:
            self.state.retired_blocks += count

    def inject(self, kind: str, at_s: float = 0.0) -> None:
        """Accept a station-file device fault (`target: slot<N>`) handed over by the lab.

        Kinds: drop_off, drop_off_persistent, controller_fatal, controller_fatal_persistent,
        error_burst (1 MiB of unreadable blocks at a place seeded by `at_s`), spare_depletion
        (every spare block retired: read-only media). The lab calls this in the middle of
        settling its own state, so the fault is only queued here and takes effect at the
        drive's next sync, before the host can see anything.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(
                f"{self.serial}: unknown SSD fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})"
            )
        self.state.pending_faults.append([kind, at_s])

    def _apply_pending_faults(self) -> None:
        pending, self.state.pending_faults = self.state.pending_faults, []
        for kind, at_s in pending:
            if kind in ("drop_off", "drop_off_persistent"):
                self.drop_off(persistent=kind.endswith("persistent"))
            elif kind in ("controller_fatal", "controller_fatal_persistent"):
                self.controller_fatal(persistent=kind.endswith("persistent"))
            elif kind == "error_burst":
                nlb = (1 << 20) // self.block_bytes
                blocks = self.model.capacity_bytes // self.block_bytes - nlb
                slba = math.floor(noise.uniform(self.seed, "ssd", self.serial, "burst", float(at_s)) * blocks)
                self.error_burst(slba, nlb)
            else:
                self.retire_blocks(self.model.nand.spare_blocks)

    def clear_faults(self) -> None:
        """Clear every injected fault (planted bit errors in stored data stay until rewritten)."""
        with self.lock:
            st = self.state
            st.dropped = ""
            st.fatal = ""
            st.bursts = []
            self.controller.come_back()

    # Snapshot ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Bring the drive up to now, then return its complete state (stored data base64).

        Syncing first makes every checkpoint of the lab (after each engine step) a point of the
        drive's temperature and power history, so a bake between two commands is seen even by
        a DUT that cannot report its past temperatures.
        """
        with self.lock:
            self.sync()
            return {
                "spec": STATE_SPEC,
                "model": self.model.name,
                "serial": self.serial,
                "state": asdict(self.state),
                "blocks": {
                    str(lba): [base64.b64encode(block.data).decode("ascii"), block.mark_h]
                    for lba, block in sorted(self._blocks.items())
                },
                "controller": self.controller.snapshot(),
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot() of a drive with the same model and serial."""
        if state.get("spec") != STATE_SPEC:
            raise ValueError(f"SSD state spec {state.get('spec')!r} is not {STATE_SPEC!r}")
        if state.get("model") != self.model.name or state.get("serial") != self.serial:
            raise ValueError(
                f"SSD state is for {state.get('model')}/{state.get('serial')}, "
                f"this drive is {self.model.name}/{self.serial}"
            )
        with self.lock:
            self.state = DriveState(**state["state"])
            self._blocks = {
                int(lba): _Stored(base64.b64decode(data), float(mark))
                for lba, (data, mark) in state["blocks"].items()
            }
            self.controller.restore(state["controller"])


class SimSsdTransport(SimNvmeTransport):
    """The NVMe passthrough link to a simulated SSD: answers only while the drive is powered."""

    def __init__(self, device: SimSsd, address: str | None = None) -> None:
        super().__init__(device.controller, address)
        self.device = device

    def _before_command(self) -> None:
        self.device.before_command()

    def shutdown_notification(self) -> None:
        """Notify the drive that its power is about to be removed (NVMe CC.SHN)."""
        if self._closed:
            raise InstrumentError(self.address, "transport is closed")
        try:
            self.device.shutdown_notification()
        except InstrumentTimeout as exc:
            raise InstrumentTimeout(self.address, exc.message) from exc

    def after_power_on(self) -> None:
        """Do nothing: the simulated link reaches its drive again as soon as power is back."""

    def _submit(
        self,
        submit: Callable[[bytes, bytes | None], tuple[bytes, bytes]],
        cmd: NvmeCommand,
        data: bytes | None,
    ) -> tuple[Completion, bytes]:
        with self.device.lock:
            return super()._submit(submit, cmd, data)


def make_ssd(
    sim_dut: DutView, clock: Clock, seed: int, model_name: str | None = None
) -> tuple[SimSsd, SimSsdTransport]:
    """Build a simulated SSD for a lab DUT: (device to attach to the lab, its NVMe transport).

    The model is `model_name`, else the DUT's `model` from the station file, else the shipped
    enterprise TLC drive. The transport's address is `sim-nvme://slot<N>`.
    """
    name = model_name or getattr(sim_dut, "model", None) or DEFAULT_MODEL
    device = SimSsd(load_ssd_model(name), sim_dut.serial, clock, seed, sim_dut)
    slot = getattr(sim_dut, "slot", None)
    address = f"sim-nvme://slot{slot}" if slot is not None else f"sim-nvme:{sim_dut.serial}"
    return device, SimSsdTransport(device, address=address)
