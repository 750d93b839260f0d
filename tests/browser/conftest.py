"""Headless Chromium for report tests: load a page, return its DOM and console messages."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags this machine needs: no sandbox as root, and no background network traffic.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
_CONSOLE = re.compile(r'CONSOLE\((\d+)\)\] "(.*)", source: (.*)|:CONSOLE:\d+\] "(.*)"')


@dataclass
class Page:
    """What Chromium saw: the DOM after scripts ran, and console messages."""

    dom: str
    console: list[str]


@pytest.fixture
def chromium(tmp_path: Path) -> object:
    """Return load(path, screenshot=None) -> Page, driving the real headless Chromium."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (scripts/test.sh installs Debian's chromium)")

    def load(page: Path, screenshot: Path | None = None) -> Page:
        profile = tmp_path / f"profile-{page.stem}"
        url = page.resolve().as_uri()
        dom = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        console = [m.group(0) for line in dom.stderr.splitlines() if (m := _CONSOLE.search(line))]
        if screenshot is not None:
            subprocess.run(
                [
                    CHROMIUM,
                    *FLAGS,
                    f"--user-data-dir={profile}",
                    "--window-size=1280,2200",
                    f"--screenshot={screenshot}",
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
        return Page(dom=dom.stdout, console=console)

    return load
