"""Session fixtures shared across test folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAIN_JOB = ("run", "jesd218_enterprise", "--sim", "--lot", "DEMO-LOT")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment a `python -m qualify` child runs in: this checkout, no $QUALIFY_DB."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}
    env.pop("QUALIFY_DB", None)
    return env


@pytest.fixture(scope="session")
def main_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the README's main job once (JESD218 enterprise on the simulated lot) for every test that reads it."""
    folder = tmp_path_factory.mktemp("main-job")
    proc = subprocess.run(
        [sys.executable, "-m", "qualify", *MAIN_JOB],
        cwd=folder,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return folder, proc
