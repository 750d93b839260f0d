"""Fault injection for the simulated lab: links and instruments failing the way bench ones do.

A fault names its `target` (an instrument of the lab, or a DUT's device model as `slot<N>`), its
`kind` and one trigger:

- `at_s` (the default, 0): active from that virtual time on, until `until_s` if given;
- `after_commands: N`: active from the instrument's (N+1)-th command on;
- `probability: p`: each command is hit with probability p, drawn from the lab seed and the
  command's number, so the same seed and the same command sequence hit the same commands.

Instrument fault kinds, as a driver sees them through its real transport:

- `no_reply`: the command is swallowed and nothing comes back (a hung instrument): a timeout.
- `disconnect`: the instrument drops the link instead of answering. On TCP the connection is
  closed (the listener stays up, so a new connection works); on a pty the port fails for good,
  as a USB-serial adapter pulled out of its socket does.
- `garbled`: the reply arrives with every third character lost to noise.
- `partial`: the first half of the reply arrives without its terminator.
- `wrong_identity`: identity queries (`*IDN?`, `TYPE?`, `hello?`) answer as another model would.
- `stuck_reading`: measurement queries return the reply they gave last, frozen from the moment
  the fault became active; settings still work.

When several faults are active on one command, the one listed last in the configuration wins,
so a list can escalate `garbled` at 1 h to `no_reply` at 2 h.

Device faults (`target: slot<N>`, kinds defined by the device model, trigger `at_s` only) are
handed over, not modelled here: at the first lab activity at or after `at_s` the lab calls
`device.inject(kind, at_s=at_s)` once on the device model attached to that slot. A device model
without `inject` leaves the fault unapplied, which `Lab.fault_log` records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sim_instruments import noise
from sim_instruments.servers import Reply

INSTRUMENT_FAULT_KINDS = (
    "no_reply",
    "disconnect",
    "garbled",
    "partial",
    "wrong_identity",
    "stuck_reading",
)
SLOT_TARGET = re.compile(r"^slot(?P<slot>\d+)$")


class FaultTarget(Protocol):
    """What the injector needs from a simulated instrument besides its command handler."""

    def is_measurement(self, line: str) -> bool:
        """Return whether `line` is a measurement query (its reply can freeze)."""
        ...

    def impostor_reply(self, line: str) -> str | None:
        """Return another model's answer if `line` is an identity query, else None."""
        ...


@dataclass(frozen=True)
class FaultConfig:
    """One configured fault: target, kind and trigger (see the module docstring)."""

    target: str
    kind: str
    at_s: float = 0.0
    until_s: float | None = None
    after_commands: int | None = None
    probability: float | None = None

    @property
    def slot(self) -> int | None:
        """Return the slot number of a device fault (`slot<N>`), None for an instrument."""
        match = SLOT_TARGET.match(self.target)
        return int(match.group("slot")) if match else None


def validate_faults(
    faults: tuple[FaultConfig, ...], instruments: Collection[str], slots: Collection[int]
) -> None:
    """Raise ValueError naming the key path of the first fault that cannot be applied."""
    for i, fault in enumerate(faults):
        path = f"lab.faults[{i}]"
        triggers = [
            key
            for key, given in (
                ("after_commands", fault.after_commands is not None),
                ("probability", fault.probability is not None),
            )
            if given
        ]
        if len(triggers) > 1 or (triggers and (fault.at_s != 0.0 or fault.until_s is not None)):
            raise ValueError(f"{path}: give one trigger: at_s (with until_s), after_commands or probability")
        if fault.at_s < 0:
            raise ValueError(f"{path}.at_s: must not be negative")
        if fault.until_s is not None and fault.until_s <= fault.at_s:
            raise ValueError(f"{path}.until_s: must be after at_s ({fault.at_s:g} s)")
        if fault.after_commands is not None and fault.after_commands < 0:
            raise ValueError(f"{path}.after_commands: must not be negative")
        if fault.probability is not None and not 0.0 < fault.probability <= 1.0:
            raise ValueError(f"{path}.probability: must be in (0, 1]")
        slot = fault.slot
        if slot is not None:
            if slot not in slots:
                raise ValueError(f"{path}.target: no DUT in slot {slot} (slots: {sorted(slots)})")
            if triggers or fault.until_s is not None:
                raise ValueError(f"{path}: a device fault on {fault.target} fires once, at at_s")
            if not fault.kind:
                raise ValueError(f"{path}.kind: a device fault needs the device's fault kind")
            continue
        if fault.target not in instruments:
            known = ", ".join(sorted(instruments)) or "none"
            raise ValueError(
                f"{path}.target: no instrument named {fault.target!r} (instruments: {known}; "
                "or slot<N> for a DUT's device)"
            )
        if fault.kind not in INSTRUMENT_FAULT_KINDS:
            raise ValueError(f"{path}.kind: {fault.kind!r} is not one of {INSTRUMENT_FAULT_KINDS}")


def garble(reply: str) -> str:
    """Corrupt a reply the way a bad cable does: every third character lost to noise."""
    return "".join("?" if i % 3 == 2 else c for i, c in enumerate(reply))


def _command_key(line: str) -> str:
    """Return a command line with case and spacing normalised, as the key of a frozen reply."""
    return " ".join(line.strip().upper().split())


class FaultInjector:
    """Applies the configured faults to each command an instrument receives.

    Its state (command counts, frozen replies, fired device faults, the log) travels in the lab
    snapshot, so a restored lab fails exactly where the original would have.
    """

    def __init__(self, faults: tuple[FaultConfig, ...], seed: int) -> None:
        self.faults = faults
        self.seed = seed
        self.command_counts: dict[str, int] = {}
        self.frozen: dict[str, dict[str, str]] = {}
        self.fired: set[int] = set()
        self.log: list[dict[str, Any]] = []

    def on_command(
        self, target: str, line: str, now_s: float, sim: FaultTarget, execute: Callable[[], str | None]
    ) -> Reply:
        """Run one command line through the faults active on `target`; return what to send."""
        count = self.command_counts.get(target, 0) + 1
        self.command_counts[target] = count
        index = self._active(target, now_s, count)
        kind = self.faults[index].kind if index is not None else None
        if index is not None and index not in self.fired:
            self.fired.add(index)
            self.log.append({"t_s": now_s, "target": target, "kind": kind, "command": count})
        if kind == "no_reply":
            return Reply(None)
        if kind == "disconnect":
            return Reply(None, hangup=True)
        if kind == "wrong_identity":
            impostor = sim.impostor_reply(line)
            if impostor is not None:
                return Reply(impostor)
        measurement = sim.is_measurement(line)
        frozen = self.frozen.setdefault(target, {})
        key = _command_key(line)
        if kind == "stuck_reading" and measurement and key in frozen:
            return Reply(frozen[key])
        reply = execute()
        if measurement and reply is not None:
            frozen[key] = reply
        if reply is None:
            return Reply(None)
        if kind == "garbled":
            return Reply(garble(reply))
        if kind == "partial":
            return Reply(reply[: max(1, len(reply) // 2)], terminated=False)
        return Reply(reply)

    def due_device_faults(self, now_s: float) -> list[tuple[int, FaultConfig]]:
        """Return the device faults due at `now_s` that have not fired yet, by index."""
        return [
            (i, fault)
            for i, fault in enumerate(self.faults)
            if fault.slot is not None and i not in self.fired and fault.at_s <= now_s
        ]

    def mark_fired(self, index: int, note: str) -> None:
        """Record that device fault `index` was handed over (or why it was not)."""
        fault = self.faults[index]
        self.fired.add(index)
        self.log.append({"t_s": fault.at_s, "target": fault.target, "kind": fault.kind, "note": note})

    def snapshot(self) -> dict[str, Any]:
        """Return the injector's state as JSON-ready data."""
        return {
            "command_counts": dict(self.command_counts),
            "frozen": {target: dict(replies) for target, replies in self.frozen.items()},
            "fired": sorted(self.fired),
            "log": [dict(entry) for entry in self.log],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load state produced by snapshot()."""
        self.command_counts = {str(k): int(v) for k, v in state["command_counts"].items()}
        self.frozen = {str(t): {str(k): str(v) for k, v in r.items()} for t, r in state["frozen"].items()}
        self.fired = {int(i) for i in state["fired"]}
        self.log = [dict(entry) for entry in state["log"]]

    def _active(self, target: str, now_s: float, count: int) -> int | None:
        """Return the index of the fault that acts on this command, the last listed winning."""
        winner = None
        for i, fault in enumerate(self.faults):
            if fault.target != target:
                continue
            if fault.after_commands is not None:
                active = count > fault.after_commands
            elif fault.probability is not None:
                active = noise.uniform(self.seed, "fault", i, count) < fault.probability
            else:
                active = fault.at_s <= now_s and (fault.until_s is None or now_s < fault.until_s)
            if active:
                winner = i
        return winner
