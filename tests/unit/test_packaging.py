"""The wheel carries the plans, report templates and sim-lab fixtures, so `--sim` works installed."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("qualify-*.whl")
    return built


def test_wheel_contains_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "qualify/_data/test_plans/common/station_smoke.yaml",
        "qualify/_data/reports/run.html.j2",
        "qualify/_data/fixtures/stations/sim-lab.yaml",
        "qualify/pytest_plugin/run.ini",
        "drivers/protocols.py",
        "sim_instruments/lab.py",
    ):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "qualify = qualify.cli:main" in text and "[pytest11]" in text


def test_installed_wheel_runs_the_sim_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    code = "import qualify.resources as r; print(r.data_root())"
    root = subprocess.run([python, "-c", code], cwd=work, capture_output=True, text=True, check=True).stdout
    assert "_data" in root and str(REPO) not in root
    proc = subprocess.run(
        [python, "-m", "qualify", "run", "station_smoke", "--sim"], cwd=work, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "qualify.db").is_file() and list(work.glob("qualify-report-*.html"))
