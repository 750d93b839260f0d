"""The status page over HTTP: routes, headers, escaping, and a report link that renders."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from qualify.service.web import StatusServer
from tests.service.conftest import XSS_LOT, live_station_db


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StatusServer, str]]:
    db, run_id = live_station_db(tmp_path_factory.mktemp("live"))
    server = StatusServer(db, "127.0.0.1", 0)
    server.start()
    yield server, run_id
    server.stop()


def get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_page_shows_slots_runs_failures_escaped(live: tuple[StatusServer, str]) -> None:
    server, run_id = live
    assert server.url.startswith("http://127.0.0.1:")
    code, headers, html = get(server.url)
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert (
        "script-src" not in headers["Content-Security-Policy"]
        and "default-src 'none'" in headers["Content-Security-Policy"]
    )
    assert '<meta http-equiv="refresh" content="5">' in html
    assert (
        'data-slot="2"' in html
        and html.count('class="tag s-busy"') == 2
        and html.count('class="tag s-free"') == 2
    )
    assert "queue:lot-7" in html and f'href="/runs/{run_id}/report"' in html and "16.7 %" in html
    assert "temp_c 91 &gt; 70" in html
    assert XSS_LOT not in html and "&lt;img src=x onerror=console.error(&#39;xss&#39;)&gt;" in html


def test_json_health_report_and_unknown(live: tuple[StatusServer, str]) -> None:
    server, run_id = live
    code, _, body = get(server.url + "status.json")
    status = json.loads(body)
    (st,) = status["stations"]
    job = next(j for j in st["jobs"] if j["id"] == "queue:lot-7")
    assert code == 200 and job["items_done"] == 30 and job["items_total"] == 180 and job["eta_s"] is not None
    assert get(server.url + "healthz")[:1] == (200,)
    code, _, report = get(server.url + f"runs/{run_id}/report")
    assert code == 200 and "Qualification report: long_ssd" in report and XSS_LOT not in report
    assert get(server.url + "runs/00000000/report")[0] == 404
    assert get(server.url + "etc/passwd")[0] == 404
    assert get(server.url + "runs/../../report")[0] == 404
