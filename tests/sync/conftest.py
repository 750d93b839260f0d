"""A real PostgreSQL server on loopback for fleet-database tests, started and stopped by the tests.

Debian's `postgresql` package gives initdb and pg_ctl; PostgreSQL refuses to run as root, so as
root the server runs as the `postgres` user (created if missing). Without the package the tests
skip, unless QUALIFY_PG_REQUIRED is set (CI), where they fail. psycopg is a dependency of qualify.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.cli.conftest import REPO, SIM_LAB, run_qualify


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A PostgreSQL server in a scratch folder: start, stop, and a fresh database per test."""

    bin: Path
    data: Path
    port: int
    user: str | None  # run the server as this user (when we are root)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")

    def start(self) -> None:
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        out = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-o", opts, "-w", "start"
        )
        assert out.returncode == 0, out.stdout + out.stderr + (self.data / "server.log").read_text()

    def stop(self, mode: str = "fast") -> None:
        out = self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        assert out.returncode == 0, out.stdout + out.stderr

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_db(self) -> str:
        name = "fleet_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start one PostgreSQL server for the session on a free loopback port."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("QUALIFY_PG_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
    data = Path(tempfile.mkdtemp(prefix="qualify-pg-"))
    if user:
        shutil.chown(data, user)
    server = PgServer(pg_bin, data, _free_port(), user)
    out = server._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    assert out.returncode == 0, out.stdout + out.stderr
    server.start()
    try:
        yield server
    finally:
        server._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def fleet_url(pg_server: PgServer) -> str:
    """Return the URL of a fresh, empty fleet database."""
    return pg_server.create_db()


def other_station(tmp: Path, name: str) -> Path:
    """Write a copy of the sim-lab station under another station name."""
    text = SIM_LAB.read_text().replace("name: sim-lab", f"name: {name}")
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def station_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two station databases made by the CLI: lot SPREAD on both stations, and a lot of its own each."""
    root = tmp_path_factory.mktemp("stations")
    made = {}
    for name, extra_lot in (("line1-st1", "ONLY-1"), ("line1-st2", "ONLY-2")):
        folder = root / name
        folder.mkdir()
        station = other_station(folder, name)
        db = folder / "station.db"
        for lot, seed in (("SPREAD", 1 if name.endswith("1") else 2), (extra_lot, 3)):
            proc = run_qualify(
                folder, "run", "station_smoke", "--station", str(station), "--db", str(db), "--lot", lot,
                "--seed", str(seed),
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout + proc.stderr
        made[name] = db
    return made


def copy_db(src: Path, dest_dir: Path) -> Path:
    """Copy a (closed, checkpointed) station database for one test."""
    dest = dest_dir / src.name
    for suffix in ("", "-wal"):
        if Path(str(src) + suffix).exists():
            shutil.copy(str(src) + suffix, str(dest) + suffix)
    return dest


__all__ = ["REPO", "PgServer", "copy_db", "other_station"]
