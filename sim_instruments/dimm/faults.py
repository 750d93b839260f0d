"""Classic memory faults injected into the simulated DIMM at chosen cells, as data.

The fault models are the simple static ones of van de Goor ("Testing Semiconductor Memories",
1991) and Hamdioui et al. (MTDT 2002), plus a data-retention fault:

- stuck_at: the cell always holds `value` (SAF0, SAF1).
- transition: the cell cannot make the `up` (0→1) or `down` (1→0) transition (TF).
- coupling_inversion: a `transition` of the aggressor inverts the victim (CFin).
- coupling_idempotent: a `transition` of the aggressor forces the victim to `value` (CFid).
- coupling_state: while the aggressor holds `state`, the victim is forced to `value` (CFst).
- address_decoder: `address` reaches the cell of `maps_to` instead of its own (AF: one address
  reaches no own cell, another cell answers to two addresses).
- retention: the cell loses its `value` (the charged state) when left unrefreshed for longer than
  `retention_ms` (at the model's reference temperature, scaled like any DRAM leakage) (DRF).
- read_disturb: reading the cell while it holds `value` disturbs it: `rdf` flips it and returns
  the flipped value, `drdf` returns the right value but flips the cell, `irf` returns the wrong
  value and leaves the cell alone.
Cells are (word address, bit): a DIMM word is 64 data bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WORD_BITS = 64
FAULT_KINDS = (
    "stuck_at",
    "transition",
    "coupling_inversion",
    "coupling_idempotent",
    "coupling_state",
    "address_decoder",
    "retention",
    "read_disturb",
)
_KEYS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "stuck_at": ({"address", "bit", "value"}, set()),
    "transition": ({"address", "bit", "transition"}, set()),
    "coupling_inversion": ({"aggressor", "victim", "transition"}, set()),
    "coupling_idempotent": ({"aggressor", "victim", "transition", "value"}, set()),
    "coupling_state": ({"aggressor", "victim", "state", "value"}, set()),
    "address_decoder": ({"address", "maps_to"}, set()),
    "retention": ({"address", "bit", "retention_ms"}, {"value"}),
    "read_disturb": ({"address", "bit", "value"}, {"variant"}),
}
READ_DISTURB_VARIANTS = ("rdf", "drdf", "irf")
COUPLING_KINDS = ("coupling_inversion", "coupling_idempotent", "coupling_state")


@dataclass(frozen=True)
class Cell:
    """Name one bit cell: a word address and a bit within the 64-bit word."""

    address: int
    bit: int


@dataclass(frozen=True)
class Fault:
    """Describe one injected fault; which fields apply depends on `kind` (see the module doc)."""

    kind: str
    cell: Cell
    aggressor: Cell | None = None
    value: int | None = None
    transition: str | None = None
    state: int | None = None
    maps_to: int | None = None
    retention_ms: float | None = None
    variant: str | None = None

    @property
    def rising(self) -> bool:
        """Get whether the fault's transition is 0→1."""
        return self.transition == "up"

    def addresses(self) -> set[int]:
        """Return every word address the fault involves."""
        out = {self.cell.address}
        if self.aggressor is not None:
            out.add(self.aggressor.address)
        if self.maps_to is not None:
            out.add(self.maps_to)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the fault as the plain data from_dict reads."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind in COUPLING_KINDS:
            assert self.aggressor is not None
            data["aggressor"] = {"address": self.aggressor.address, "bit": self.aggressor.bit}
            data["victim"] = {"address": self.cell.address, "bit": self.cell.bit}
        elif self.kind == "address_decoder":
            data["address"] = self.cell.address
        else:
            data["address"] = self.cell.address
            data["bit"] = self.cell.bit
        for key in ("value", "transition", "state", "maps_to", "retention_ms", "variant"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "fault") -> Fault:
        """Build a fault from plain data; errors name the key path and the offending key."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a mapping, got {type(data).__name__}")
        kind = data.get("kind")
        if kind not in _KEYS:
            raise ValueError(f"{path}.kind: {kind!r} is not one of {', '.join(FAULT_KINDS)}")
        required, optional = _KEYS[kind]
        allowed = required | optional | {"kind"}
        for key in data:
            if key not in allowed:
                raise ValueError(f"{path}.{key}: unknown key for a {kind} fault (allowed: {sorted(allowed)})")
        for key in sorted(required):
            if key not in data:
                raise ValueError(f"{path}.{key}: required key is missing for a {kind} fault")
        if kind in COUPLING_KINDS:
            cell = _cell(data["victim"], f"{path}.victim")
            aggressor: Cell | None = _cell(data["aggressor"], f"{path}.aggressor")
            assert aggressor is not None
            if aggressor.address == cell.address:
                raise ValueError(f"{path}: aggressor and victim must be in different words")
        elif kind == "address_decoder":
            cell = Cell(_int(data, "address", path), 0)
            aggressor = None
        else:
            cell = Cell(_int(data, "address", path), _bit(data, "bit", path))
            aggressor = None
        fault = cls(
            kind=kind,
            cell=cell,
            aggressor=aggressor,
            value=_binary(data, "value", path) if "value" in data else (1 if kind == "retention" else None),
            transition=_transition(data, path) if "transition" in data else None,
            state=_binary(data, "state", path) if "state" in data else None,
            maps_to=_int(data, "maps_to", path) if "maps_to" in data else None,
            retention_ms=_positive(data, "retention_ms", path) if "retention_ms" in data else None,
            variant=_variant(data, path) if kind == "read_disturb" else None,
        )
        if fault.maps_to is not None and fault.maps_to == cell.address:
            raise ValueError(f"{path}.maps_to: an address decoder fault maps to another address")
        return fault


def _int(data: Mapping[str, Any], key: str, path: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{path}.{key}: expected a non-negative integer, got {value!r}")
    return value


def _bit(data: Mapping[str, Any], key: str, path: str) -> int:
    value = _int(data, key, path)
    if value >= WORD_BITS:
        raise ValueError(f"{path}.{key}: bit {value} is outside the {WORD_BITS}-bit word")
    return value


def _binary(data: Mapping[str, Any], key: str, path: str) -> int:
    value = data[key]
    if value not in (0, 1) or isinstance(value, bool):
        raise ValueError(f"{path}.{key}: expected 0 or 1, got {value!r}")
    return int(value)


def _positive(data: Mapping[str, Any], key: str, path: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{path}.{key}: expected a positive number, got {value!r}")
    return float(value)


def _transition(data: Mapping[str, Any], path: str) -> str:
    value = data["transition"]
    if value not in ("up", "down"):
        raise ValueError(f"{path}.transition: expected 'up' (0→1) or 'down' (1→0), got {value!r}")
    return str(value)


def _variant(data: Mapping[str, Any], path: str) -> str:
    value = data.get("variant", "rdf")
    if value not in READ_DISTURB_VARIANTS:
        raise ValueError(f"{path}.variant: expected one of {READ_DISTURB_VARIANTS}, got {value!r}")
    return str(value)


def _cell(data: Any, path: str) -> Cell:
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping with address and bit")
    for key in data:
        if key not in ("address", "bit"):
            raise ValueError(f"{path}.{key}: unknown key (allowed: address, bit)")
    for key in ("address", "bit"):
        if key not in data:
            raise ValueError(f"{path}.{key}: required key is missing")
    return Cell(_int(data, "address", path), _bit(data, "bit", path))
