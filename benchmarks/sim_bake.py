"""Time a simulated 1000-hour power-off bake of 64 DUTs on the simulated lab.

The chamber goes to the bake temperature through the real ESPEC driver over its pty, the DUTs
stay unpowered, virtual time jumps to the end of the bake, and every DUT's state (temperature,
power, powered) is read. The lab evolves in closed form, so the bake costs one evaluation per
reading, not one per simulated second. Prints wall seconds, DUT count, virtual hours and the
ratio of virtual to wall time; the anchor is under one wall second.

    python benchmarks/sim_bake.py [--duts 64] [--hours 1000] [--bake-c 125]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from drivers.chamber.espec import EspecChamber
from drivers.transport.serial import SerialTransport
from qualify.clock import VirtualClock
from sim_instruments.lab import Lab

ANCHOR_WALL_S = 1.0
DUTS_PER_CHANNEL = 2
CHANNELS = (2, 3)


def lab_config(duts: int) -> dict[str, Any]:
    """Return a lab with `duts` SSDs, two per 25 V supply channel."""
    per_supply = DUTS_PER_CHANNEL * len(CHANNELS)
    supplies = [
        {"name": f"psu{i + 1}", "model": "E36313A"} for i in range((duts + per_supply - 1) // per_supply)
    ]
    return {
        "chamber": {"name": "chamber", "max_c": 150.0},
        "supplies": supplies,
        "duts": [
            {
                "slot": slot,
                "kind": "ssd",
                "serial": f"BAKE{slot:04d}",
                "supply": f"psu{(slot - 1) // per_supply + 1}",
                "channel": CHANNELS[((slot - 1) // DUTS_PER_CHANNEL) % len(CHANNELS)],
            }
            for slot in range(1, duts + 1)
        ],
    }


def bake(duts: int, hours: float, bake_c: float) -> tuple[float, list[tuple[float, float, bool]]]:
    """Run the bake; return the wall seconds it took and each DUT's final (°C, W, powered)."""
    start = time.perf_counter()
    clock = VirtualClock()
    lab = Lab(clock, seed=1, config=lab_config(duts))
    addresses = lab.start()
    chamber = EspecChamber(SerialTransport(addresses["chamber"], timeout_s=2.0))
    try:
        chamber.set_temperature(bake_c)
        clock.advance_to(hours * 3600.0)
        states = [(dut.temperature_c(), dut.power_w(), dut.powered()) for dut in lab.duts()]
        air_c = chamber.read_temperature()
    finally:
        chamber.close()
        lab.stop()
    wall_s = time.perf_counter() - start
    if abs(air_c - bake_c) > 0.5 or any(abs(temp_c - bake_c) > 1e-6 or on for temp_c, _, on in states):
        raise SystemExit(f"bake ended off target: air {air_c} °C, DUTs {states[:3]}...")
    return wall_s, states


def main() -> None:
    """Parse arguments, run the bake and print its figures against the anchor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duts", type=int, default=64)
    parser.add_argument("--hours", type=float, default=1000.0)
    parser.add_argument("--bake-c", type=float, default=125.0)
    args = parser.parse_args()
    wall_s, states = bake(args.duts, args.hours, args.bake_c)
    ratio = args.hours * 3600.0 / wall_s
    verdict = "within" if wall_s < ANCHOR_WALL_S else "OVER"
    print(
        f"sim_bake duts={len(states)} virtual_h={args.hours:g} wall_s={wall_s:.4f} "
        f"virtual_per_wall={ratio:.3g} anchor_wall_s={ANCHOR_WALL_S:g} ({verdict} anchor, "
        f"{ANCHOR_WALL_S / wall_s:.1f}x headroom)"
    )


if __name__ == "__main__":
    main()
