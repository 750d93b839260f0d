"""Session fixtures shared across test folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAIN_JOB = ("run", "jesd218_enterprise", "--sim", "--lot", "DEMO-LOT")


@pytest.fixture(scope="session")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the README's main job once (JESD218 enterprise on the simulated lot) for every test that reads it."""
    folder = tmp_path_factory.mktemp("main-job")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("QUALIFY_DB", None)
    proc = subprocess.run(
        [sys.executable, "-m", "qualify", *MAIN_JOB],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return folder, proc
