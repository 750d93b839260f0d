"""The kernel's EDAC error counters per memory controller and per DIMM, mapped to station slots.

Reads `/sys/devices/system/edac/mc/mcN/{ce,ue,ce_noinfo,ue_noinfo}_count` and each
`mcN/dimmN` (`rankN` on kernels that count per rank) `dimm_{ce,ue}_count`, `dimm_label`,
`dimm_location`, `size`. A snapshot before a step and one after give the step's delta; the
station's slot map names which DUT slot a DIMM label or location is. The root is injectable so
tests read a fixture tree.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from drivers.errors import InstrumentError, ProtocolError

EDAC_MC_ROOT = Path("/sys/devices/system/edac/mc")
NOINFO_SUFFIX = "/noinfo"

_MC = re.compile(r"^mc(\d+)$")
_DIMM = re.compile(r"^(dimm|rank)(\d+)$")


@dataclass(frozen=True)
class DimmCounters:
    """One DIMM (or rank) as EDAC reports it."""

    controller: str
    name: str
    label: str
    location: str
    size_mb: int | None
    ce: int
    ue: int

    @property
    def path_key(self) -> str:
        """Return the DIMM's sysfs name under its controller (`mc0/dimm3`)."""
        return f"{self.controller}/{self.name}"


@dataclass(frozen=True)
class ControllerCounters:
    """One memory controller's totals and the errors it could not pin on a DIMM."""

    name: str
    mc_name: str
    ce: int
    ue: int
    ce_noinfo: int
    ue_noinfo: int


@dataclass(frozen=True)
class EdacSnapshot:
    """Every controller and DIMM counter at one moment."""

    controllers: tuple[ControllerCounters, ...]
    dimms: tuple[DimmCounters, ...]

    def key_of(self, dimm: DimmCounters) -> str:
        """Return the DIMM's key: its label when set and unique, else `mcN/dimmM`."""
        if dimm.label and sum(1 for d in self.dimms if d.label == dimm.label) == 1:
            return dimm.label
        return dimm.path_key

    def counts(self) -> dict[str, tuple[int, int]]:
        """Return {DIMM key: (corrected, uncorrected)}, plus `mcN/noinfo` for unattributed errors."""
        out = {self.key_of(d): (d.ce, d.ue) for d in self.dimms}
        for mc in self.controllers:
            out[mc.name + NOINFO_SUFFIX] = (mc.ce_noinfo, mc.ue_noinfo)
        return out

    def dimm(self, key: str) -> DimmCounters | None:
        """Return the DIMM with this key, label or `mcN/dimmM` name."""
        for d in self.dimms:
            if key in (self.key_of(d), d.label, d.path_key):
                return d
        return None


def counts_delta(
    after: Mapping[str, tuple[int, int]], before: Mapping[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Return the per-key increase from `before` to `after`.

    A counter that went down was reset (driver reload, `reset_counters`); its increase is then
    everything it counted since, its current value.
    """
    out = {}
    for key, (ce, ue) in after.items():
        ce0, ue0 = before.get(key, (0, 0))
        out[key] = (ce - ce0 if ce >= ce0 else ce, ue - ue0 if ue >= ue0 else ue)
    return out


def _normalise(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass
class EdacWatch:
    """What changed while a `with reader.around():` block ran (filled in when it ends)."""

    before: EdacSnapshot
    after: EdacSnapshot | None = None
    delta: dict[str, tuple[int, int]] = field(default_factory=dict)


class EdacReader:
    """An EdacCounters that reads Linux EDAC sysfs under `root` and maps DIMMs to slots.

    `slot_map` maps a DIMM label, a location (`channel 0 slot 1`) or a `mcN/dimmM` name to the
    station slot of the DUT in it; matching ignores case and runs of spaces.
    """

    def __init__(self, root: str | Path = EDAC_MC_ROOT, slot_map: Mapping[str, int] | None = None) -> None:
        """Read counters under `root` (the `.../edac/mc` directory)."""
        self.root = Path(root)
        self.address = str(self.root)
        self._slots = {_normalise(k): v for k, v in (slot_map or {}).items()}

    def read(self) -> EdacSnapshot:
        """Return every controller's and DIMM's counters now."""
        if not self.root.is_dir():
            raise InstrumentError(
                self.address, "no EDAC memory controllers (is the platform's EDAC driver loaded?)"
            )
        controllers, dimms = [], []
        for mc_dir in sorted(self._children(self.root, _MC)):
            controllers.append(
                ControllerCounters(
                    name=mc_dir.name,
                    mc_name=self._text(mc_dir / "mc_name"),
                    ce=self._int(mc_dir / "ce_count"),
                    ue=self._int(mc_dir / "ue_count"),
                    ce_noinfo=self._int(mc_dir / "ce_noinfo_count"),
                    ue_noinfo=self._int(mc_dir / "ue_noinfo_count"),
                )
            )
            for dimm_dir in sorted(self._children(mc_dir, _DIMM)):
                size = self._text(dimm_dir / "size")
                dimms.append(
                    DimmCounters(
                        controller=mc_dir.name,
                        name=dimm_dir.name,
                        label=self._text(dimm_dir / "dimm_label"),
                        location=" ".join(self._text(dimm_dir / "dimm_location").split()),
                        size_mb=int(size) if size.isdigit() else None,
                        ce=self._int(dimm_dir / "dimm_ce_count"),
                        ue=self._int(dimm_dir / "dimm_ue_count"),
                    )
                )
        return EdacSnapshot(tuple(controllers), tuple(dimms))

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Return {DIMM key: (corrected, uncorrected)} now, with `mcN/noinfo` entries."""
        return self.read().counts()

    def delta(self, before: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """Return how much each counter rose since the `before` snapshot."""
        return counts_delta(self.snapshot(), before)

    @contextmanager
    def around(self) -> Iterator[EdacWatch]:
        """Snapshot before and after the block; the yielded watch holds the delta afterwards."""
        watch = EdacWatch(before=self.read())
        yield watch
        watch.after = self.read()
        watch.delta = counts_delta(watch.after.counts(), watch.before.counts())

    def slot_of(self, dimm: DimmCounters) -> int | None:
        """Return the station slot holding `dimm` (by label, then location, then sysfs name)."""
        for name in (dimm.label, dimm.location, dimm.path_key):
            if name and _normalise(name) in self._slots:
                return self._slots[_normalise(name)]
        return None

    def slot_of_key(self, key: str, snapshot: EdacSnapshot | None = None) -> int | None:
        """Return the station slot of the DIMM a counts key (or label) names, if mapped."""
        if _normalise(key) in self._slots:
            return self._slots[_normalise(key)]
        dimm = (snapshot or self.read()).dimm(key)
        return self.slot_of(dimm) if dimm is not None else None

    def errors_by_slot(
        self, delta: Mapping[str, tuple[int, int]], snapshot: EdacSnapshot | None = None
    ) -> dict[int, tuple[int, int]]:
        """Return {slot: (corrected, uncorrected)} for the DIMMs in `delta` that rose and map to a slot."""
        snap = snapshot or self.read()
        out: dict[int, tuple[int, int]] = {}
        for key, (ce, ue) in delta.items():
            if not (ce or ue):
                continue
            slot = self.slot_of_key(key, snap)
            if slot is not None:
                ce0, ue0 = out.get(slot, (0, 0))
                out[slot] = (ce0 + ce, ue0 + ue)
        return out

    @staticmethod
    def _children(parent: Path, pattern: re.Pattern[str]) -> list[Path]:
        return [p for p in parent.iterdir() if pattern.match(p.name) and p.is_dir()]

    @staticmethod
    def _text(path: Path) -> str:
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise InstrumentError(str(path), f"cannot read: {exc}") from exc

    def _int(self, path: Path) -> int:
        text = self._text(path)
        if not text:
            return 0  # drivers that do not count a kind of error leave its file out
        try:
            return int(text)
        except ValueError:
            raise ProtocolError(str(path), f"expected a count, read {text!r}") from None


@dataclass(frozen=True)
class PhysicalAddressMap:
    """Physical address ranges → DIMM label, from the station file (or dmidecode type 20).

    Channel interleaving spreads a DIMM over many small ranges; give every range, or accept
    that an address outside them is attributed through the EDAC delta instead.
    """

    ranges: Sequence[tuple[int, int, str]]  # (start, end exclusive, DIMM label)

    def __post_init__(self) -> None:
        ordered = sorted(self.ranges)
        for (_, end0, label0), (start1, _, label1) in itertools.pairwise(ordered):
            if start1 < end0:
                raise ValueError(f"address ranges of {label0} and {label1} overlap at {start1:#x}")
        object.__setattr__(self, "ranges", tuple(ordered))

    def label_at(self, physical_address: int) -> str | None:
        """Return the label of the DIMM that holds `physical_address`, if a range covers it."""
        starts = [start for start, _, _ in self.ranges]
        index = bisect.bisect_right(starts, physical_address) - 1
        if index >= 0:
            start, end, label = self.ranges[index]
            if start <= physical_address < end:
                return label
        return None
