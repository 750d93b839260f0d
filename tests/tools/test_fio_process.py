"""The subprocess transport, exercised with fio: missing binary, exit codes, timeout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from drivers.transport.process import ProcessRunner, ToolNotFound, ToolRunner, ToolTimeout, package_for

needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed (apt-get install fio)")


def test_fio_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFound, match=r"install the 'fio' package \(apt-get install fio\)"):
        ProcessRunner("fio").run(["--version"], timeout_s=5)
    assert package_for("nvme") == "nvme-cli"


@needs_fio
def test_fio_version_runs_without_a_shell() -> None:
    runner = ProcessRunner("fio")
    assert isinstance(runner, ToolRunner)
    result = runner.run(["--version"], timeout_s=30)
    assert result.returncode == 0 and result.stdout.startswith("fio-")
    assert result.argv[0].endswith("fio") and result.argv[1:] == ("--version",)
    assert not result.signalled


@needs_fio
def test_fio_bad_option_is_returned_not_raised() -> None:
    result = ProcessRunner("fio").run(["--no-such-option-qualify"], timeout_s=30)
    assert result.returncode != 0
    assert "no-such-option-qualify" in result.stderr + result.stdout


def _endless(tmp_path: Path) -> list[str]:
    return [
        "--name=spin", f"--filename={tmp_path / 'spin.img'}", "--size=1M", "--rw=read",
        "--ioengine=psync", "--time_based", "--runtime=60s", "--output-format=terse",
    ]  # fmt: skip


@needs_fio
def test_fio_past_its_timeout_is_stopped_with_its_process_group(tmp_path: Path) -> None:
    with pytest.raises(ToolTimeout, match=r"did not finish within 0\.5 s") as caught:
        ProcessRunner("fio").run(_endless(tmp_path), timeout_s=0.5)
    assert caught.value.address == "fio"
    # fio forks a process per job; none of them may outlive the timeout.
    marker = f"--filename={tmp_path / 'spin.img'}"
    assert [p for p in os.listdir("/proc") if p.isdigit() and marker in _cmdline(p)] == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""
