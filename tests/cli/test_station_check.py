"""`qualify station check` names every instrument's identity, and a dead one with its address."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.conftest import run_qualify


def test_sim_station_check_prints_identities(tmp_path: Path) -> None:
    proc = run_qualify(tmp_path, "station", "check", "--sim")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ESPEC,SCP220" in proc.stdout
    assert proc.stdout.count("Keysight Technologies,E36313A") == 2
    assert proc.stdout.count("QSIM E3 U.2 3.84TB") == 4
    assert "DEAD" not in proc.stdout


def test_dead_instrument_is_named_with_address_and_exit_3(
    tmp_path: Path, station_variant: Callable[..., Path]
) -> None:
    def dead_psu2(data: dict[str, Any]) -> None:
        data["simulation"]["lab"]["faults"] = [{"target": "psu2", "kind": "no_reply", "at_s": 0.0}]
        data["instruments"][2]["timeout_ms"] = 150

    proc = run_qualify(tmp_path, "station", "check", "--station", str(station_variant(dead_psu2)))
    assert proc.returncode == 3
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert any("instrument psu2 at TCPIP::127.0.0.1::" in e and "no reply" in e for e in errors), proc.stderr
    assert not any("psu1" in e or "chamber" in e for e in errors)
    assert "Traceback" not in proc.stderr


def test_sim_serve_prints_addresses_and_stops_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    import pyvisa

    from tests.cli.conftest import REPO

    proc = subprocess.Popen(
        [sys.executable, "-m", "qualify", "sim", "serve", "--speed", "10"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        psu = next(line for line in lines if line.startswith("instrument name=psu1 "))
        address = psu.split("address=")[1]
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(address, read_termination="\n", write_termination="\n", timeout=2000)
        assert inst.query("*IDN?").startswith("Keysight Technologies,E36313A,")
        inst.close()
        rm.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err
