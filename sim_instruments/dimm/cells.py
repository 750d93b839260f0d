"""The DIMM's cell array, reduced to the cells that matter, and the memory a tester runs marches on.

A 16 GiB module has 1.4e11 cells; all but a few thousand behave perfectly at any condition a plan
can set. The array keeps only those: the weak tail of the retention distribution (temperature,
data pattern and variable retention time), cells whose Vmin rises with temperature, RowHammer-
vulnerable cells, and the classic faults injected at chosen addresses. Everything else reads back
what was written, so a march over the full address space gives exactly the failures of a march
over the window of these addresses, provided each access is stamped with the time it would happen
in the full run: that is what `ArrayMemory` does, so a full-size DIMM is never enumerated.

Time and refresh: every access restores its row; refresh restores every row once per refresh
interval R, so a cell left alone with refresh running is never unrestored for longer than R. A
delay element of a march suspends refresh (the tester refreshes all rows right before and after
the pause), leaving each cell unrestored for exactly the pause. A cell holding its charged value
loses it when its retention time is shorter than the longest unrestored stretch since it was last
accessed. All randomness derives from sim_instruments.noise with the seed and the DIMM's serial.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

from qualify.march import Direction, Element, MarchElement
from sim_instruments import noise
from sim_instruments.dimm.faults import WORD_BITS, Fault
from sim_instruments.dimm.params import DimmModelParams

WORD_MASK = (1 << WORD_BITS) - 1
WORDS_PER_ROW = 1024  # an 8 KiB row across the rank's data bus, in 64-bit words
VMIN_REFERENCE_C = 25.0
T_RC_NS = 48.0  # row cycle time: the fastest one bank can activate rows (DDR5 tRC ≈ 48 ns)


@dataclass(frozen=True)
class Geometry:
    """Map word addresses to banks and rows: column bits low, then bank bits, then row."""

    word_count: int
    banks: int

    def row_of(self, address: int) -> tuple[int, int]:
        """Return (bank, row) of a word address."""
        block = address // WORDS_PER_ROW
        return block % self.banks, block // self.banks

    def fraction(self, address: int, direction: Direction) -> float:
        """Return where in a pass (0..1) the access to `address` happens in `direction`."""
        position = address if direction is not Direction.DOWN else self.word_count - 1 - address
        return position / self.word_count


@dataclass(frozen=True)
class WeakCell:
    """Describe a retention-tail cell: retention at the reference temperature, charged value."""

    index: int
    address: int
    bit: int
    retention_ms: float
    charged: int
    dpd_factor: float
    vrt: bool


@dataclass(frozen=True)
class MarginalCell:
    """Describe a cell that reads `weak_value` whenever VDD is below its threshold at the temperature."""

    address: int
    bit: int
    vmin_v_at_25c: float
    weak_value: int


@dataclass(frozen=True)
class HammerCell:
    """Describe a RowHammer victim: it flips to its discharged value after `hcfirst` neighbour activations."""

    address: int
    bit: int
    hcfirst: int
    discharged: int


@dataclass
class _Site:
    """Collect everything special about one word address."""

    stuck: dict[int, int] = field(default_factory=dict)
    transition: dict[int, str] = field(default_factory=dict)
    weak: list[WeakCell] = field(default_factory=list)
    marginal: list[MarginalCell] = field(default_factory=list)
    hammer: list[HammerCell] = field(default_factory=list)
    retention: list[Fault] = field(default_factory=list)
    read_disturb: list[Fault] = field(default_factory=list)
    aggressor_of: list[Fault] = field(default_factory=list)
    state_victim_of: list[Fault] = field(default_factory=list)
    maps_to: int | None = None


@dataclass(frozen=True)
class RunConditions:
    """Hold what a run sees: module temperature, VDD, effective refresh interval, start time, speed."""

    temp_c: float
    vdd_v: float
    refresh_ms: float
    t0_s: float
    word_op_s: float
    neighbors_opposite: bool = False


class CellArray:
    """Hold the cells that matter on one DIMM, drawn deterministically from the seed and the serial."""

    def __init__(self, params: DimmModelParams, seed: int, serial: str, word_count: int, banks: int) -> None:
        self.params = params
        self.seed = seed
        self.serial = serial
        self.geometry = Geometry(word_count, banks)
        self.weak, self.marginal, self.hammer = _drawn(params, seed, serial, word_count, banks)
        self.faults: list[Fault] = []
        self._sites: dict[int, _Site] = {}
        for fault in params.faults:
            self._check_fault(fault)
        self.faults.extend(params.faults)
        self._index()

    def inject(self, fault: Fault) -> None:
        """Add a fault (after construction, as a test or a fault-injection plan does)."""
        self._check_fault(fault)
        self.faults.append(fault)
        self._index()

    def clear_injected(self) -> None:
        """Drop the faults added by inject(), keeping those of the model file."""
        self.faults = list(self.params.faults)
        self._index()

    def window(self) -> list[int]:
        """Return every word address whose behaviour can differ from a perfect cell, ascending."""
        return sorted(self._sites)

    def site(self, address: int) -> _Site | None:
        """Return what is special about `address`, or None."""
        return self._sites.get(address)

    def retention_ms(self, cell: WeakCell, temp_c: float, t_s: float, neighbors_opposite: bool) -> float:
        """Return a weak cell's retention now: temperature, variable state and data pattern applied."""
        ret = self.params.retention
        value = cell.retention_ms * 2.0 ** (-(temp_c - ret.reference_temp_c) / ret.doubling_c)
        if cell.vrt and self._vrt_low(cell, t_s):
            value /= ret.vrt_ratio
        if neighbors_opposite:
            value *= cell.dpd_factor
        return value

    def scaled_retention_ms(self, retention_ms: float, temp_c: float) -> float:
        """Return a retention time given at the reference temperature, at `temp_c`."""
        ret = self.params.retention
        return retention_ms * 2.0 ** (-(temp_c - ret.reference_temp_c) / ret.doubling_c)

    def vmin_v(self, cell: MarginalCell, temp_c: float) -> float:
        """Return the VDD below which a marginal cell fails at `temp_c`."""
        return cell.vmin_v_at_25c + self.params.vmin.tempco_v_per_c * (temp_c - VMIN_REFERENCE_C)

    def _vrt_low(self, cell: WeakCell, t_s: float) -> bool:
        ret = self.params.retention
        epoch = math.floor(t_s / ret.vrt_dwell_s)
        return noise.uniform(self.seed, self.serial, "vrt", cell.index, epoch) < ret.vrt_low_probability

    def _check_fault(self, fault: Fault) -> None:
        for address in fault.addresses():
            if address >= self.geometry.word_count:
                words = self.geometry.word_count
                raise ValueError(f"{fault.kind} fault at word 0x{address:X}: the module has {words} words")

    def _index(self) -> None:
        sites: dict[int, _Site] = {}

        def at(address: int) -> _Site:
            return sites.setdefault(address, _Site())

        for weak in self.weak:
            at(weak.address).weak.append(weak)
        for marginal in self.marginal:
            at(marginal.address).marginal.append(marginal)
        for cell in self.hammer:
            at(cell.address).hammer.append(cell)
        for fault in self.faults:
            site = at(fault.cell.address)
            bit = fault.cell.bit
            if fault.kind == "stuck_at":
                assert fault.value is not None
                site.stuck[bit] = fault.value
            elif fault.kind == "transition":
                assert fault.transition is not None
                site.transition[bit] = fault.transition
            elif fault.kind == "retention":
                site.retention.append(fault)
            elif fault.kind == "read_disturb":
                site.read_disturb.append(fault)
            elif fault.kind == "address_decoder":
                assert fault.maps_to is not None
                site.maps_to = fault.maps_to
                at(fault.maps_to)
            else:
                assert fault.aggressor is not None
                at(fault.aggressor.address).aggressor_of.append(fault)
                if fault.kind == "coupling_state":
                    site.state_victim_of.append(fault)
        self._sites = sites


class _Drawer:
    """Draw a module's special cells from the seed, the serial and the model's statistics."""

    def __init__(self, params: DimmModelParams, seed: int, serial: str, geometry: Geometry) -> None:
        self.params = params
        self.seed = seed
        self.serial = serial
        self.geometry = geometry

    def _u(self, *key: object) -> float:
        return noise.uniform(self.seed, self.serial, self.params.name, *key)

    def _address(self, *key: object) -> int:
        return min(self.geometry.word_count - 1, int(self._u(*key, "address") * self.geometry.word_count))

    def _bit(self, *key: object) -> int:
        return min(WORD_BITS - 1, int(self._u(*key, "bit") * WORD_BITS))

    def weak(self) -> list[WeakCell]:
        """Draw the retention tail: times, polarity, data-pattern factor, VRT membership."""
        ret = self.params.retention
        k = ret.tail_exponent
        low, high = ret.weak_min_ms**k, ret.weak_max_ms**k
        cells = []
        for i in range(ret.weak_cells):
            # Inverse CDF of the truncated power law (see RetentionParams).
            retention = (low + self._u("weak", i, "t") * (high - low)) ** (1.0 / k)
            cells.append(
                WeakCell(
                    index=i,
                    address=self._address("weak", i),
                    bit=self._bit("weak", i),
                    retention_ms=retention,
                    # True cells store 1 as charge and anti-cells store 0; DRAMs mix both.
                    charged=1 if self._u("weak", i, "true") < 0.5 else 0,
                    dpd_factor=ret.dpd_min_factor + (1 - ret.dpd_min_factor) * self._u("weak", i, "dpd"),
                    vrt=self._u("weak", i, "vrt") < ret.vrt_fraction,
                )
            )
        return cells

    def marginal(self) -> list[MarginalCell]:
        """Draw the Vmin-marginal cells: thresholds below the worst one, half-normal spread."""
        vmin = self.params.vmin
        cells = []
        for i in range(vmin.marginal_cells):
            below = abs(noise.gauss(self.seed, self.serial, self.params.name, "vmin", i, sigma=vmin.spread_v))
            cells.append(
                MarginalCell(
                    address=self._address("vmin", i),
                    bit=self._bit("vmin", i),
                    vmin_v_at_25c=vmin.worst_vmin_v_at_25c - below,
                    weak_value=1 if self._u("vmin", i, "value") < 0.5 else 0,
                )
            )
        return cells

    def hammer(self) -> list[HammerCell]:
        """Draw the RowHammer victims: lognormal thresholds above the minimum."""
        rh = self.params.rowhammer
        cells = []
        for i in range(rh.vulnerable_cells):
            spread = abs(
                noise.gauss(self.seed, self.serial, self.params.name, "rh", i, sigma=rh.hcfirst_sigma)
            )
            cells.append(
                HammerCell(
                    address=self._address("rh", i),
                    bit=self._bit("rh", i),
                    hcfirst=round(rh.hcfirst_min * math.exp(spread)),
                    discharged=0 if self._u("rh", i, "true") < 0.5 else 1,
                )
            )
        return cells


@functools.lru_cache(maxsize=64)
def _drawn(
    params: DimmModelParams, seed: int, serial: str, word_count: int, banks: int
) -> tuple[tuple[WeakCell, ...], tuple[MarginalCell, ...], tuple[HammerCell, ...]]:
    """Draw a module's cells once per (model, seed, serial): thousands of hashes, and immutable."""
    drawer = _Drawer(params, seed, serial, Geometry(word_count, banks))
    return tuple(drawer.weak()), tuple(drawer.marginal()), tuple(drawer.hammer())


class ArrayMemory:
    """Present a CellArray's window as a MarchMemory, stamping every access with its full-run time.

    Use one per run: it starts with every tracked word at 0 and its clock at the run's start.
    `on_element` must be called as each march element starts (run_march does it when given
    `on_element=memory.on_element`); pattern runs call `begin_pass` and `hold` themselves.
    """

    def __init__(self, array: CellArray, conditions: RunConditions) -> None:
        self.array = array
        self.conditions = conditions
        self.values: dict[int, int] = dict.fromkeys(array.window(), 0)
        self._restored: dict[int, float] = dict.fromkeys(self.values, 0.0)
        self._pauses: list[tuple[float, float]] = []
        self._cursor_s = 0.0
        self._pass_start_s = 0.0
        self._pass_s = 0.0
        self._direction = Direction.UP
        self._now_s = 0.0
        vdd = conditions.vdd_v
        self._weak_value_of: dict[tuple[int, int], int] = {
            (m.address, m.bit): m.weak_value
            for m in array.marginal
            if vdd < array.vmin_v(m, conditions.temp_c)
        }

    @property
    def elapsed_s(self) -> float:
        """Get the run time so far: every finished pass and pause."""
        return self._cursor_s + self._pass_s

    def on_element(self, index: int, element: Element) -> None:
        """Start a march element: a pass over the whole array, or (for a Delay) nothing yet."""
        if isinstance(element, MarchElement):
            self.begin_pass(element.direction, len(element.ops))

    def begin_pass(self, direction: Direction, ops_per_word: int) -> None:
        """Start a pass of `ops_per_word` operations on each word of the full array."""
        self._cursor_s += self._pass_s
        self._pass_start_s = self._cursor_s
        self._pass_s = ops_per_word * self.array.geometry.word_count * self.conditions.word_op_s
        self._direction = direction

    def delay(self, ms: float) -> None:
        """Pause `ms` with refresh suspended (a retention element)."""
        self._cursor_s += self._pass_s
        self._pass_s = 0.0
        start = self._cursor_s
        self._cursor_s += ms / 1000.0
        self._pauses.append((start, self._cursor_s))

    def hold(self, ms: float) -> None:
        """Wait `ms` with refresh running (a pattern test's hold time)."""
        self._cursor_s += self._pass_s + ms / 1000.0
        self._pass_s = 0.0

    def write(self, address: int, value: int) -> None:
        """Write a word through the address decoder, with every fault's effect."""
        self._stamp(address)
        for physical in self._decode(address):
            self._store(physical, value & WORD_MASK)

    def read(self, address: int) -> int:
        """Read a word through the address decoder; retention, Vmin and read disturbs apply."""
        self._stamp(address)
        targets = self._decode(address)
        if not targets:
            return 0
        out = WORD_MASK
        for physical in targets:
            out &= self._load(physical)
        return out

    def hammer(self, sides: int, count: int) -> int:
        """Hammer every row with `sides` aggressors at `count` activations each; return flips.

        The achievable activations per aggressor are capped by what fits in one refresh window
        at tRC; each victim sees both neighbours (one for a single-sided pattern); target row
        refresh rescues victims of at most `trr_tracked_rows` aggressors per bank.
        """
        rh = self.array.params.rowhammer
        budget = int(self.conditions.refresh_ms * 1e6 / T_RC_NS) // max(1, sides)
        acts = min(count, budget)
        if sides <= rh.trr_tracked_rows:
            return 0
        disturbance = acts * (2 if sides >= 2 else 1)
        flips = 0
        for cell in self.array.hammer:
            value = self.values.get(cell.address)
            if value is None or disturbance < cell.hcfirst:
                continue
            if (value >> cell.bit & 1) != cell.discharged:
                self.values[cell.address] = value ^ (1 << cell.bit)
                flips += 1
        return flips

    def _stamp(self, address: int) -> None:
        frac = self.array.geometry.fraction(address, self._direction)
        self._now_s = self._pass_start_s + frac * self._pass_s

    def _decode(self, address: int) -> list[int]:
        site = self.array.site(address)
        if site is not None and site.maps_to is not None:
            return [site.maps_to]
        return [address] if address in self.values else []

    def _store(self, physical: int, value: int) -> None:
        old = self.values[physical]
        new = self._constrain(physical, old, value)
        self.values[physical] = new
        self._restored[physical] = self._now_s
        changed = old ^ new
        site = self.array.site(physical)
        if site is None:
            return
        if changed:
            for fault in site.aggressor_of:
                assert fault.aggressor is not None
                bit = fault.aggressor.bit
                if not changed >> bit & 1 or fault.kind == "coupling_state":
                    continue
                if (new >> bit & 1) != int(fault.rising):
                    continue
                self._couple(fault)
        self._enforce_state(site)

    def _couple(self, fault: Fault) -> None:
        victim = fault.cell
        current = self.values[victim.address]
        if fault.kind == "coupling_inversion":
            forced = current ^ (1 << victim.bit)
        else:
            assert fault.value is not None
            forced = (current & ~(1 << victim.bit)) | (fault.value << victim.bit)
        self.values[victim.address] = self._pin(victim.address, forced)

    def _enforce_state(self, site: _Site) -> None:
        for fault in site.aggressor_of:
            if fault.kind != "coupling_state":
                continue
            assert fault.aggressor is not None and fault.value is not None
            if (self.values[fault.aggressor.address] >> fault.aggressor.bit & 1) == fault.state:
                victim = fault.cell
                current = self.values[victim.address]
                forced = (current & ~(1 << victim.bit)) | (fault.value << victim.bit)
                self.values[victim.address] = self._pin(victim.address, forced)

    def _constrain(self, physical: int, old: int, new: int) -> int:
        """Apply what stops a write from landing: transitions, state coupling, stuck bits, Vmin."""
        site = self.array.site(physical)
        if site is None:
            return new
        for bit, direction in site.transition.items():
            blocked = (0, 1) if direction == "up" else (1, 0)
            if (old >> bit & 1, new >> bit & 1) == blocked:
                new ^= 1 << bit
        for fault in site.state_victim_of:
            assert fault.aggressor is not None and fault.value is not None
            if (self.values[fault.aggressor.address] >> fault.aggressor.bit & 1) == fault.state:
                new = (new & ~(1 << fault.cell.bit)) | (fault.value << fault.cell.bit)
        return self._pin(physical, new)

    def _pin(self, physical: int, value: int) -> int:
        """Force the bits a stuck-at fault or a failing Vmin cell hold, whatever else happened."""
        site = self.array.site(physical)
        if site is None:
            return value
        for bit, stuck in site.stuck.items():
            value = (value & ~(1 << bit)) | (stuck << bit)
        for cell in site.marginal:
            weak = self._weak_value_of.get((cell.address, cell.bit))
            if weak is not None:
                value = (value & ~(1 << cell.bit)) | (weak << cell.bit)
        return value

    def _load(self, physical: int) -> int:
        site = self.array.site(physical)
        value = self.values[physical]
        if site is not None:
            value = self._decay(physical, site, value)
            value = self._pin(physical, value)
            self.values[physical] = value
            returned = value
            for fault in site.read_disturb:
                assert fault.value is not None
                bit = fault.cell.bit
                if (value >> bit & 1) != fault.value:
                    continue
                flipped = value ^ (1 << bit)
                if fault.variant == "rdf":
                    self.values[physical] = flipped
                    returned = flipped
                elif fault.variant == "drdf":
                    self.values[physical] = flipped
                else:
                    returned = flipped
            value = returned
        self._restored[physical] = self._now_s
        return value

    def _decay(self, physical: int, site: _Site, value: int) -> int:
        """Discharge every leaky cell whose retention is shorter than its longest unrestored stretch."""
        if not site.weak and not site.retention:
            return value
        stretch_ms = self._unrestored_ms(self._restored[physical], self._now_s)
        if stretch_ms <= 0:
            return value
        cond = self.conditions
        t_abs = cond.t0_s + self._now_s
        for weak in site.weak:
            if (value >> weak.bit & 1) != weak.charged:
                continue
            if self.array.retention_ms(weak, cond.temp_c, t_abs, cond.neighbors_opposite) < stretch_ms:
                value ^= 1 << weak.bit
        for fault in site.retention:
            assert fault.retention_ms is not None and fault.value is not None
            bit = fault.cell.bit
            if (value >> bit & 1) == fault.value and self.array.scaled_retention_ms(
                fault.retention_ms, cond.temp_c
            ) < stretch_ms:
                value ^= 1 << bit
        return value

    def _unrestored_ms(self, since_s: float, now_s: float) -> float:
        """Return the longest time a cell went without restore between two accesses."""
        paused_s = 0.0
        longest_pause_s = 0.0
        for start, end in self._pauses:
            if start >= since_s and end <= now_s:
                paused_s += end - start
                longest_pause_s = max(longest_pause_s, end - start)
        refreshed_s = max(0.0, now_s - since_s - paused_s)
        return 1000.0 * max(min(self.conditions.refresh_ms / 1000.0, refreshed_s), longest_pause_s)


def checker_bit(geometry: Geometry, address: int, bit: int) -> int:
    """Return a cell's value in the checkerboard: alternating along the word and from row to row."""
    return (bit + geometry.row_of(address)[1]) & 1


def pattern_word(name: str, geometry: Geometry, address: int) -> int:
    """Return the word a named data pattern puts at `address`."""
    row_odd = geometry.row_of(address)[1] & 1
    if name == "SOLID0":
        return 0
    if name == "SOLID1":
        return WORD_MASK
    if name in ("CHECKER", "CHECKER_INV"):
        word = 0xAAAA_AAAA_AAAA_AAAA if row_odd else 0x5555_5555_5555_5555
        return word ^ WORD_MASK if name == "CHECKER_INV" else word
    if name in ("ROWSTRIPE", "ROWSTRIPE_INV"):
        word = WORD_MASK if row_odd else 0
        return word ^ WORD_MASK if name == "ROWSTRIPE_INV" else word
    raise ValueError(f"unknown data pattern {name!r}")


PATTERNS = ("SOLID0", "SOLID1", "CHECKER", "CHECKER_INV", "ROWSTRIPE", "ROWSTRIPE_INV")
# Patterns whose neighbouring cells hold opposite data: the worst case for data-pattern dependence.
OPPOSING_PATTERNS = frozenset({"CHECKER", "CHECKER_INV", "ROWSTRIPE", "ROWSTRIPE_INV"})


@dataclass(frozen=True)
class PatternFailure:
    """Record one word that read back wrong in a pattern test."""

    address: int
    expected: int
    actual: int

    @property
    def mask(self) -> int:
        """Get the failing bits."""
        return self.expected ^ self.actual


def run_pattern(
    array: CellArray,
    conditions: RunConditions,
    pattern: str,
    hold_ms: float,
    *,
    hammer_sides: int = 0,
    hammer_count: int = 0,
) -> tuple[list[PatternFailure], float]:
    """Write a data pattern, hold it `hold_ms` with refresh running (hammering if asked), read it back.

    Returns the failing words and the run's duration in seconds. With refresh at R, a cell fails
    when its retention under the pattern is shorter than R: a REAPER-style retention profile
    (Patel et al., ISCA'17) when R is longer than the module's specification.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"unknown data pattern {pattern!r} (known: {', '.join(PATTERNS)})")
    opposing = replace(conditions, neighbors_opposite=pattern in OPPOSING_PATTERNS)
    memory = ArrayMemory(array, opposing)
    window = array.window()
    memory.begin_pass(Direction.UP, 1)
    expected = {address: pattern_word(pattern, array.geometry, address) for address in window}
    for address in window:
        memory.write(address, expected[address])
    memory.hold(hold_ms)
    if hammer_sides:
        memory.hammer(hammer_sides, hammer_count)
    memory.begin_pass(Direction.UP, 1)
    failures = []
    for address in window:
        actual = memory.read(address)
        if actual != expected[address]:
            failures.append(PatternFailure(address, expected[address], actual))
    return failures, memory.elapsed_s
