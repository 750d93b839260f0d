"""The read-only status page of a served station: stdlib http.server in a thread, jinja2 autoescaped.

Routes: `/` (the page; refreshes itself every few seconds with a meta refresh, no script),
`/status.json`, `/runs/RUN_ID/report` (the run's qualification report, rendered on request)
and `/healthz`. Nothing on it writes: every request opens the database read-only and closes it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jinja2

from qualify.errors import QualifyError
from qualify.resources import reports_dir

log = logging.getLogger(__name__)
REFRESH_S = 5
_RUN_REPORT = re.compile(r"^/runs/([0-9a-fA-F-]{8,36})/report$")
# No script may run, nothing may be fetched; the page and reports use inline styles and SVG only.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def status_environment() -> jinja2.Environment:
    """Return the status page's template environment; autoescape is on for every template."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(reports_dir() / "status")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_status_page(db_path: Path, station: str | None = None, *, refresh_s: int = REFRESH_S) -> str:
    """Return the status page HTML of the stations served from a database."""
    from qualify.service.status import station_status

    status = station_status(db_path, station)
    return status_environment().get_template("status.html.j2").render(status=status, refresh_s=refresh_s)


class StatusServer:
    """Serve the status page on host:port (0 picks a free port) from a daemon thread."""

    def __init__(self, db_path: Path, host: str = "127.0.0.1", port: int = 0, *, station: str | None = None):
        self.db_path = db_path
        self.station = station
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the page's address."""
        host, port = self.httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="status-page", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _handler(server: StatusServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "qualify-station"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/":
                    self._send(HTTPStatus.OK, "text/html", render_status_page(server.db_path, server.station))
                elif path == "/status.json":
                    from qualify.service.status import station_status

                    body = json.dumps(station_status(server.db_path, server.station), indent=2)
                    self._send(HTTPStatus.OK, "application/json", body)
                elif path == "/healthz":
                    self._send(HTTPStatus.OK, "text/plain", "ok\n")
                elif match := _RUN_REPORT.match(path):
                    from qualify.report.render import render_run

                    self._send(HTTPStatus.OK, "text/html", render_run(server.db_path, match.group(1)))
                else:
                    self._send(HTTPStatus.NOT_FOUND, "text/plain", "not found\n")
            except QualifyError as exc:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", f"{exc}\n")
            except Exception:  # a page that fails must not take the service down
                log.exception("status page %s", path)
                self._send(
                    HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", "internal error (see the service log)\n"
                )

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(self, code: HTTPStatus, kind: str, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", _CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("status page: " + format, *args)

    return Handler
