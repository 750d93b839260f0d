"""What a host memory stress run found, and which DUT slot each error points at.

A failing physical address names a DIMM through the station's address map; an EDAC counter
that rose during the run names one through its label or location. Either way the station's
slot map turns the DIMM into the slot of the DUT under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.dimm.edac import EdacReader, EdacSnapshot, PhysicalAddressMap, counts_delta


@dataclass(frozen=True)
class Miscompare:
    """One word that read back wrong, as the tool reported it."""

    physical_address: int | None = None
    virtual_address: int | None = None
    offset_bytes: int | None = None  # within the tool's buffer (memtester without -p)
    expected: int | None = None
    actual: int | None = None
    reread: int | None = None
    dimm: str | None = None  # the tool's own DIMM name, when it knows one
    test: str | None = None  # memtester's test name

    @property
    def bits_flipped(self) -> int | None:
        """Return how many bits differ between what was expected and what was read."""
        if self.expected is None or self.actual is None:
            return None
        return (self.expected ^ self.actual).bit_count()


@dataclass
class SlotErrors:
    """Errors attributed to one DUT slot: tool miscompares and EDAC counts during the run."""

    miscompares: int = 0
    ce: int = 0
    ue: int = 0


@dataclass
class MemStressResult:
    """One host memory stress run: verdict, bandwidth, miscompares and where they point."""

    tool: str
    passed: bool
    status: str  # the tool's own verdict line or exit-code reading
    size_bytes: int
    runtime_s: float
    bw_bytes_s: float | None = None
    miscompares: int = 0
    errors: list[Miscompare] = field(default_factory=list)
    failed_tests: list[str] = field(default_factory=list)
    exit_code: int | None = None
    edac_delta: dict[str, tuple[int, int]] = field(default_factory=dict)
    slots: dict[int, SlotErrors] = field(default_factory=dict)
    unattributed: int = 0  # miscompares and EDAC errors no slot could be named for

    def readings(self) -> dict[str, float]:
        """Return flat readings for HostMemoryStress.run_stress (bandwidth only when measured)."""
        out = {
            "passed": 1.0 if self.passed else 0.0,
            "miscompares": float(self.miscompares),
            "failed_tests": float(len(self.failed_tests)),
            "runtime_s": self.runtime_s,
            "size_bytes": float(self.size_bytes),
            "edac_ce": float(sum(ce for ce, _ in self.edac_delta.values())),
            "edac_ue": float(sum(ue for _, ue in self.edac_delta.values())),
            "unattributed": float(self.unattributed),
        }
        if self.bw_bytes_s is not None:
            out["bw_bytes_s"] = self.bw_bytes_s
        for slot, errs in sorted(self.slots.items()):
            out[f"slot{slot}_miscompares"] = float(errs.miscompares)
            out[f"slot{slot}_ce"] = float(errs.ce)
            out[f"slot{slot}_ue"] = float(errs.ue)
        return out


def attribute(
    result: MemStressResult,
    *,
    edac: EdacReader | None,
    after: EdacSnapshot | None,
    address_map: PhysicalAddressMap | None,
) -> None:
    """Fill `result.slots` and `result.unattributed` from its errors and EDAC delta."""
    slots: dict[int, SlotErrors] = {}
    unattributed = 0
    for err in result.errors:
        label = err.dimm if err.dimm and err.dimm != "DIMM Unknown" else None
        if address_map is not None and err.physical_address is not None:
            label = address_map.label_at(err.physical_address) or label
        slot = edac.slot_of_key(label, after) if (edac is not None and label is not None) else None
        if slot is None:
            unattributed += 1
        else:
            slots.setdefault(slot, SlotErrors()).miscompares += 1
    # Errors past the ones the tool printed in detail have no address: count them as unattributed.
    unattributed += max(0, result.miscompares - len(result.errors))
    if edac is not None:
        for key, (ce, ue) in result.edac_delta.items():
            if not (ce or ue):
                continue
            slot = edac.slot_of_key(key, after)
            if slot is None:
                unattributed += ce + ue
                continue
            errs = slots.setdefault(slot, SlotErrors())
            errs.ce += ce
            errs.ue += ue
    result.slots = slots
    result.unattributed = unattributed


def edac_delta(after: EdacSnapshot | None, before: EdacSnapshot | None) -> dict[str, tuple[int, int]]:
    """Return the EDAC counts' rise between two snapshots (empty without an EDAC reader)."""
    if after is None or before is None:
        return {}
    return counts_delta(after.counts(), before.counts())
