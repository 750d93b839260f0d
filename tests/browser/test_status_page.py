"""The station status page in headless Chromium: loads with no console errors, shows runs and slots."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from qualify.service.web import StatusServer
from tests.browser.conftest import _CONSOLE, CHROMIUM, FLAGS
from tests.service.conftest import XSS_LOT, live_station_db


def chromium(url: str, profile: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """Load a page over HTTP; return its DOM after scripts ran and the console lines."""
    assert CHROMIUM is not None
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    console = [m.group(0) for line in dom.stderr.splitlines() if (m := _CONSOLE.search(line))]
    if screenshot is not None:
        subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1400", f"--screenshot={screenshot}", url],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    return dom.stdout, console


def test_status_page_in_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/test.sh installs Debian's chromium)")
    db, run_id = live_station_db(tmp_path)
    server = StatusServer(db, "127.0.0.1", 0)
    server.start()
    try:
        shot = tmp_path / "status.png"
        dom, console = chromium(server.url, tmp_path / "profile", shot)
        report_dom, report_console = chromium(f"{server.url}runs/{run_id}/report", tmp_path / "profile2")
    finally:
        server.stop()
    assert console == [] and report_console == []
    assert "Station sim-lab" in dom and 'id="service-state">running<' in dom
    assert dom.count('class="slot"') == 4 and dom.count(">busy<") == 2
    assert 'data-state="running"' in dom and 'data-state="waiting"' in dom and "queue:lot-7" in dom
    assert f'href="/runs/{run_id}/report"' in dom and "QSIM0003" in dom and "temp_c 91 &gt; 70" in dom
    assert "<img" not in dom and XSS_LOT not in dom  # the lot's markup shows as text
    assert "Qualification report: long_ssd" in report_dom
    assert shot.stat().st_size > 10_000
