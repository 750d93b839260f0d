"""`serve()` runs a station's lab as its own process; plain VISA and serial clients talk to it.

The clients here use pyvisa and pyserial directly, no qualify code, as any tool on the machine
would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import pyvisa
import serial
import yaml

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^instrument name=(?P<name>\S+) model=(?P<model>\S+) driver=(?P<driver>\S+) address=(?P<address>\S+)$"
)
STARTUP_S = 30.0


class Served:
    """A `serve()` subprocess and the instruments it printed."""

    def __init__(self, station: Path | None, speed: float = 1.0, seed: int = 7) -> None:
        station_arg = "None" if station is None else f"Path({str(station)!r})"
        code = (
            "import sys\n"
            "from pathlib import Path\n"
            "from sim_instruments.serve import serve\n"
            f"serve({station_arg}, {speed!r}, {seed!r}, sys.stdout)\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.header = ""
        self.instruments: dict[str, dict[str, str]] = {}
        self._read_until_ready()

    def _read_until_ready(self) -> None:
        assert self.proc.stdout is not None
        # A watchdog instead of select(): the pipe is read through Python's buffer, which select
        # cannot see into.
        watchdog = threading.Timer(STARTUP_S, self.proc.kill)
        watchdog.start()
        try:
            for raw in self.proc.stdout:
                line = raw.rstrip("\n")
                if line == "ready":
                    return
                match = LINE.match(line)
                if match:
                    self.instruments[match.group("name")] = match.groupdict()
                elif line.startswith("sim-lab "):
                    self.header = line
        finally:
            watchdog.cancel()
        self.proc.kill()
        raise AssertionError(f"serve() did not get ready: {self.proc.communicate()}")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        """Send `signum` and return the exit code and the rest of stdout."""
        self.proc.send_signal(signum)
        rest, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode, rest


def visa_query(address: str, command: str) -> str:
    """Ask one question over a plain pyvisa `@py` connection."""
    manager = pyvisa.ResourceManager("@py")
    try:
        resource = manager.open_resource(address, read_termination="\n", write_termination="\n", timeout=2000)
        try:
            return str(resource.query(command))
        finally:
            resource.close()
    finally:
        manager.close()


def serial_exchange(address: str, command: bytes, until: bytes = b"\r\n") -> bytes:
    """Send one command over a plain pyserial port and read up to `until`."""
    port = serial.serial_for_url(address, baudrate=9600, timeout=2.0)
    try:
        port.write(command)
        return bytes(port.read_until(until))
    finally:
        port.close()


def station(tmp_path: Path) -> Path:
    """Write the shipped sim lab extended with a DMM and a slot switch."""
    data: dict[str, Any] = yaml.safe_load((REPO / "fixtures" / "stations" / "sim-lab.yaml").read_text())
    lab = data["simulation"]["lab"]
    lab["multimeters"] = [{"name": "dmm1", "model": "34465A", "volts": "slot1"}]
    lab["slot_power"] = [{"name": "sw1", "model": "QTL1461", "ports": 4}]
    for dut in lab["duts"]:
        dut["slot_power"] = "sw1"
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_shipped_station_is_served_and_stops_cleanly_on_sigterm() -> None:
    served = Served(None)
    try:
        assert served.header == "sim-lab station=sim-lab seed=7 speed=1"
        assert set(served.instruments) == {"psu1", "psu2", "chamber"}
        psu = served.instruments["psu1"]
        assert (psu["model"], psu["driver"]) == ("E36313A", "keysight.e36313a")
        idn = visa_query(psu["address"], "*IDN?")
        assert idn.startswith("Keysight Technologies,E36313A,MY")
        chamber = served.instruments["chamber"]
        assert (chamber["model"], chamber["driver"]) == ("SCP220", "espec.chamber")
        assert serial_exchange(chamber["address"], b"TYPE?\r\n") == b"T,SCP220,150.0\r\n"
    finally:
        code, rest = served.stop(signal.SIGTERM)
    assert code == 0
    assert rest.strip().splitlines()[-1] == "stopped"


def test_every_instrument_kind_answers_in_its_dialect_and_sigint_stops(tmp_path: Path) -> None:
    served = Served(station(tmp_path), seed=3)
    try:
        dmm = served.instruments["dmm1"]
        assert (dmm["model"], dmm["driver"]) == ("34465A", "keysight.34465a")
        assert visa_query(dmm["address"], "*IDN?").startswith("Keysight Technologies,34465A,")
        assert re.fullmatch(r"[+-]\d\.\d{8}E[+-]\d\d", visa_query(dmm["address"], "MEAS:VOLT:DC?"))
        switch = served.instruments["sw1"]
        assert (switch["model"], switch["driver"]) == ("QTL1461", "quarch.array")
        reply = serial_exchange(switch["address"], b"RUN:POWer? <1>\r\n", until=b"\r\n>")
        assert reply == b"RUN:POWer? <1>\r\n1:PLUGGED\r\n>"
    finally:
        code, rest = served.stop(signal.SIGINT)
    assert code == 0
    assert "stopped" in rest


def test_speed_scales_the_labs_clock() -> None:
    # At a million times real time a 12-minute ramp and its settling take about a millisecond.
    served = Served(None, speed=1e6)
    try:
        assert served.header.endswith("speed=1e+06")
        chamber = served.instruments["chamber"]["address"]
        assert serial_exchange(chamber, b"TEMP, S85.0\r\n") == b"OK:TEMP, S85.0\r\n"
        assert serial_exchange(chamber, b"MODE, CONSTANT\r\n") == b"OK:MODE, CONSTANT\r\n"
        measured_c = float(serial_exchange(chamber, b"TEMP?\r\n").split(b",")[0])
        assert measured_c == pytest.approx(85.0, abs=0.2)
    finally:
        code, _ = served.stop()
    assert code == 0


def test_a_station_without_a_simulated_lab_is_refused(tmp_path: Path) -> None:
    from sim_instruments.serve import serve

    path = tmp_path / "real.yaml"
    path.write_text("spec: qualify.station/1\nname: real\nduts: []\n")
    with pytest.raises(ValueError, match=r"real\.yaml: simulation\.lab: the station has no simulated lab"):
        serve(path, 1.0, 0, sys.stdout)
