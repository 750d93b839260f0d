"""Run a station's simulated lab as its own process, on real time scaled by a speed factor.

`qualify sim serve` calls `serve()`: the lab in a station file's `simulation.lab` section (the
shipped sim lab by default) starts its instrument servers, prints one line per instrument and a
`ready` line, then serves until SIGINT or SIGTERM and stops cleanly. Any VISA or serial client
on the machine can talk to the printed addresses; NVMe endpoints stay in-process and are not
served. The output is one record per line, space-separated `key=value` fields (addresses hold no
spaces), stable for grep and scripts:

    sim-lab station=sim-lab seed=0 speed=1
    instrument name=psu1 model=E36313A driver=keysight.e36313a address=TCPIP::127.0.0.1::40213::SOCKET
    instrument name=chamber model=SCP220 driver=espec.chamber address=/dev/pts/4
    ready
    stopped
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml

from qualify.clock import RealClock
from sim_instruments.lab import Lab

_SIM_REF_PREFIX = "${sim:"
_WAIT_SLICE_S = 0.5


def _default_drivers(lab: Lab) -> dict[str, str]:
    """Return the registry driver name for each served instrument, by its model."""
    drivers = {lab.config.chamber.name: "espec.chamber"}
    for supply in lab.config.supplies:
        drivers[supply.name] = f"keysight.{supply.model.lower()}"
    for meter in lab.config.multimeters:
        drivers[meter.name] = f"keysight.{meter.model.lower()}"
    for unit in lab.config.slot_power:
        drivers[unit.name] = "quarch.array"
    return drivers


def _station_drivers(instruments: Any) -> dict[str, str]:
    """Return the driver a station file names for each `${sim:NAME}` address."""
    drivers: dict[str, str] = {}
    for entry in instruments if isinstance(instruments, list) else []:
        if not isinstance(entry, Mapping):
            continue
        address, driver = entry.get("address"), entry.get("driver")
        if isinstance(address, str) and address.startswith(_SIM_REF_PREFIX) and isinstance(driver, str):
            drivers[address[len(_SIM_REF_PREFIX) : -1]] = driver
    return drivers


def load_station_lab(path: Path) -> tuple[str, Mapping[str, Any], dict[str, str]]:
    """Return a station file's name, its `simulation.lab` section and the drivers it names.

    Raises ValueError naming the file and key when the file holds no simulated lab.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the station file: {exc}") from exc
    simulation = data.get("simulation") if isinstance(data, Mapping) else None
    lab = simulation.get("lab") if isinstance(simulation, Mapping) else None
    if not isinstance(lab, Mapping):
        raise ValueError(f"{path}: simulation.lab: the station has no simulated lab to serve")
    name = data.get("name")
    return (name if isinstance(name, str) else path.stem), lab, _station_drivers(data.get("instruments"))


def serve(station_path: Path | None, speed: float, seed: int, out: TextIO) -> None:
    """Serve the station's simulated lab until SIGINT or SIGTERM; print addresses to `out`.

    Runs in the main thread (it installs the signal handlers and restores them on return).
    """
    if station_path is None:
        from qualify.resources import sim_station_path

        station_path = sim_station_path()
    station, lab_config, named_drivers = load_station_lab(Path(station_path))
    lab = Lab(RealClock(speed=speed), seed, lab_config)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        """Ask the serving loop to stop (the SIGINT/SIGTERM handler)."""
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        lab.start()
        drivers = {**_default_drivers(lab), **named_drivers}
        print(f"sim-lab station={station} seed={seed} speed={speed:g}", file=out)
        for name, model, address in lab.instruments():
            print(f"instrument name={name} model={model} driver={drivers[name]} address={address}", file=out)
        print("ready", file=out, flush=True)
        # A bounded wait lets the signal handler's flag be seen promptly on every platform.
        while not stop.wait(_WAIT_SLICE_S):
            pass
    finally:
        lab.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", file=out, flush=True)
