"""The main job's report opens in headless Chromium with no console errors, verdict and tables shown."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.browser.conftest import Page


def test_console_detector_catches_errors(tmp_path: Path, chromium: Callable[..., Page]) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><p id="x">hi</p><script>console.error("boom-42")</script></body></html>')
    page = chromium(bad)
    assert '<p id="x">hi</p>' in page.dom
    assert any("boom-42" in line for line in page.console)


def test_main_job_report_in_chromium(
    tmp_path: Path, chromium: Callable[..., Page], main_job: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    folder, proc = main_job
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    (report,) = folder.glob("qualify-report-*.html")
    shot = tmp_path / "report.png"
    page = chromium(report, screenshot=shot)
    assert page.console == []
    dom = page.dom
    assert 'id="verdict"' in dom and ">PASS<" in dom
    assert 'id="criteria"' in dom and "Clopper-Pearson" in dom and "UBER upper bound" in dom
    assert 'id="duts"' in dom and dom.count("QLOT00") >= 34
    assert 'id="provenance"' in dom and 'id="timeline"' in dom and "<svg" in dom
    # The plan's own figures: wear and write amplification against time, per drive or as a band.
    for figure in ("percentage_used against run time", "waf against run time", "DUT temperature"):
        assert figure in dom, figure
    # Self-contained: nothing is fetched (XML namespace names in the SVG are not fetches).
    for fetch in ('src="http', "src='http", 'href="http', "href='http", "url(http", "@import"):
        assert fetch not in dom, fetch
    assert shot.stat().st_size > 10_000
