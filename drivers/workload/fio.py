"""The fio driver: WorkloadSpecs run by real fio against a block device or a file.

Each run writes a job file and has fio write JSON (`--output-format=json --output=FILE`) into a
work directory, which also holds fio's verify state files across a power loss. Verify failures
come from fio's stderr, each as (byte offset, class): unwritten (bad magic: never written or
trimmed), misdirected (bad offset), stale (bad numberio/seed: an older write), corrupted (checksum).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from drivers.errors import InstrumentError, ProtocolError
from drivers.transport.process import ProcessRunner, ToolRunner
from drivers.workload.jobs import build_job_file, job_name
from drivers.workload.params import result_to_readings, spec_from_params
from drivers.workload.spec import DirectionResult, WorkloadResult, WorkloadSpec

# An EILSEQ error whose offset fio's log does not give is still a failed block.
UNKNOWN_OFFSET = -1

# What fio says before "at file F offset O, length L" → the class of the failure.
_VERIFY_CLASSES: tuple[tuple[str, str], ...] = (
    ("bad magic header", "unwritten"),
    ("bad header offset", "misdirected"),
    ("bad header numberio", "stale"),
    ("header sequence", "stale"),
    ("bad header rand_seed", "stale"),
    # A trimmed block must read back as zeros; data there means the trim was lost.
    ("trim: verify failed", "stale"),
)
_VERIFY_LINE = re.compile(
    r"^(?P<what>.*?)\bat file (?P<file>.+?) offset (?P<offset>\d+), length (?P<length>\d+)", re.MULTILINE
)
_IO_URING_DISABLED = Path("/proc/sys/kernel/io_uring_disabled")


def parse_verify_failures(stderr: str) -> list[tuple[int, str]]:
    """Return fio's verify failures from its stderr as (byte offset, class), once each, in order."""
    found: list[tuple[int, str]] = []
    seen: set[tuple[int, str]] = set()
    for match in _VERIFY_LINE.finditer(stderr):
        what = match.group("what")
        if "verify" not in what and "bad" not in what:
            continue
        cls = next((c for key, c in _VERIFY_CLASSES if key in what), "corrupted")
        item = (int(match.group("offset")), cls)
        if item not in seen:
            seen.add(item)
            found.append(item)
    return found


def load_fio_json(text: str) -> dict[str, Any]:
    """Return fio's JSON report; fio may print warnings before it, which are skipped."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in fio's output")
    data = json.loads(text[start:])
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise ValueError("fio's JSON has no jobs list")
    return data


def _percentile_us(clat: Mapping[str, Any], key: str, scale_to_us: float) -> float | None:
    percentiles = clat.get("percentile")
    if not isinstance(percentiles, Mapping) or key not in percentiles:
        return None
    return float(percentiles[key]) * scale_to_us


def parse_direction(data: Mapping[str, Any]) -> DirectionResult:
    """Return one direction (`read`, `write`, `trim`) of a fio job in explicit units."""
    # fio ≥ 3 reports completion latency in ns (`clat_ns`); older fio in µs (`clat`).
    clat: Mapping[str, Any] = data.get("clat_ns") or {}
    scale = 1e-3
    if not clat and isinstance(data.get("clat"), Mapping):
        clat, scale = data["clat"], 1.0
    measured = int(clat.get("N", 0) or 0) > 0
    max_raw = clat.get("max")
    return DirectionResult(
        iops=float(data.get("iops", 0.0)),
        bw_bytes_s=float(data.get("bw_bytes", float(data.get("bw", 0)) * 1024)),
        io_bytes=int(data.get("io_bytes", int(data.get("io_kbytes", 0)) * 1024)),
        lat_p50_us=_percentile_us(clat, "50.000000", scale) if measured else None,
        lat_p99_us=_percentile_us(clat, "99.000000", scale) if measured else None,
        lat_p999_us=_percentile_us(clat, "99.900000", scale) if measured else None,
        lat_max_us=float(max_raw) * scale if measured and max_raw is not None else None,
    )


def parse_job(job: Mapping[str, Any], name: str | None = None) -> WorkloadResult:
    """Return one fio JSON job as a WorkloadResult (verify failures are added by the caller)."""
    result = WorkloadResult(name=name or str(job.get("jobname", "")))
    for direction in ("read", "write", "trim"):
        if isinstance(job.get(direction), Mapping):
            setattr(result, direction, parse_direction(job[direction]))
    runtime_ms = job.get("job_runtime")
    if runtime_ms is None:
        runtime_ms = max(int(job.get(d, {}).get("runtime", 0)) for d in ("read", "write", "trim"))
    result.runtime_s = float(runtime_ms) / 1000.0
    code = int(job.get("error", 0) or 0)
    if code:
        result.errors = max(1, int(job.get("total_err", 1) or 1))
        result.error_text = f"fio error {code} ({errno.errorcode.get(code, '?')}: {os.strerror(code)})"
    return result


def parse_fio_output(json_text: str, stderr: str, specs: Sequence[WorkloadSpec]) -> list[WorkloadResult]:
    """Return one WorkloadResult per spec from fio's JSON report and its stderr.

    Verify failures carry no job name in fio's log: they go to the verifying job that ended
    with an error (to each of them if several did, which a caller avoids by running verify
    jobs alone).
    """
    data = load_fio_json(json_text)
    by_name = {str(j.get("jobname")): j for j in data["jobs"]}
    results = []
    for spec in specs:
        job = by_name.get(job_name(spec))
        if job is None:
            raise ValueError(f"fio's report has no job {job_name(spec)!r}")
        results.append(parse_job(job, spec.name))
    failures = parse_verify_failures(stderr)
    verifying = [
        r for r, s in zip(results, specs, strict=True) if s.verify is not None and (r.errors or failures)
    ]
    if len(verifying) > 1:
        verifying = [r for r in verifying if r.errors] or verifying
    for result in verifying:
        result.verify_failures = list(failures)
        if not failures and result.error_text and "EILSEQ" in result.error_text:
            result.verify_failures = [(UNKNOWN_OFFSET, "corrupted")] * result.errors
    return results


def is_block_device(target: str | Path) -> bool:
    """Return whether `target` is a block device (`/dev/nvme0n1`), not a file."""
    try:
        return stat.S_ISBLK(os.stat(target).st_mode)
    except OSError:
        return False


class FioWorkload:
    """A BlockWorkload that runs WorkloadSpecs with fio against one device or file.

    `workdir` keeps job files, JSON reports and verify state files; give a lasting one for a
    power-loss test: the write spec saves its state (`verify_state_save`) and, after the cut, a
    verify_only spec *with the same name* loads it (`verify_state_load`), since fio names the
    state file after the job. Without a workdir, a private temporary directory is used and
    removed by `close()`.
    """

    def __init__(
        self,
        target: str | Path,
        *,
        runner: ToolRunner | None = None,
        ioengine: str | None = None,
        workdir: str | Path | None = None,
        min_bw_bytes_s: float = 50e6,
        timeout_margin_s: float = 120.0,
    ) -> None:
        """Bind to `target`; `ioengine` None picks io_uring/libaio for devices, psync for files."""
        self.target = str(target)
        self.address = self.target
        self._runner: ToolRunner = runner if runner is not None else ProcessRunner("fio")
        self._ioengine = ioengine
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="qualify-fio-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._min_bw_bytes_s = min_bw_bytes_s
        self._margin_s = timeout_margin_s
        self._runs = 0

    def run(self, spec: WorkloadSpec) -> WorkloadResult:
        """Run one spec and return its result."""
        return self.run_all([spec])[0]

    def run_workload(self, job: dict[str, object]) -> dict[str, float]:
        """Run a plan's job mapping and return flat readings (see drivers.workload.params)."""
        return result_to_readings(self.run(spec_from_params(job)))

    def run_all(self, specs: Sequence[WorkloadSpec]) -> list[WorkloadResult]:
        """Run specs one after another in one fio invocation; return their results in order."""
        job = build_job_file(specs, filename=self.target, ioengine=self.ioengine())
        self._runs += 1
        stem = f"{self._runs:04d}-{job_name(specs[0])}"
        job_path = self.workdir / f"{stem}.fio"
        json_path = self.workdir / f"{stem}.json"
        job_path.write_text(job.render())
        result = self._runner.run(
            [
                "--output-format=json",
                f"--output={json_path}",
                f"--aux-path={self.workdir}",
                str(job_path),
            ],
            timeout_s=self.timeout_s(specs),
            cwd=self.workdir,
        )
        try:
            json_text = json_path.read_text()
        except FileNotFoundError:
            json_text = ""
        if not json_text.strip():
            raise InstrumentError(
                self.address,
                f"fio exited {result.returncode} without a report: {_tail(result.stderr or result.stdout)}",
            )
        try:
            return parse_fio_output(json_text, result.stderr, specs)
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(self.address, f"unreadable fio report {json_path}: {exc}") from exc

    def timeout_s(self, specs: Sequence[WorkloadSpec]) -> float:
        """Return how long the specs may take before fio is stopped as hung."""
        total = 0.0
        for spec in specs:
            if spec.runtime_s is not None:
                total += spec.runtime_s
            else:
                amount = spec.io_bytes if spec.io_bytes is not None else spec.size_bytes or 0
                total += amount * spec.numjobs / self._min_bw_bytes_s
        return total * 1.2 + self._margin_s

    def ioengine(self) -> str:
        """Return the I/O engine: the configured one, else the best this host and target allow."""
        if self._ioengine is None:
            if is_block_device(self.target):
                engines = self._available_engines()
                uring_ok = "io_uring" in engines and _io_uring_enabled()
                self._ioengine = "io_uring" if uring_ok else "libaio" if "libaio" in engines else "psync"
            else:
                self._ioengine = "psync"
        return self._ioengine

    def _available_engines(self) -> set[str]:
        result = self._runner.run(["--enghelp"], timeout_s=30.0)
        return {line.strip() for line in result.stdout.splitlines()[1:] if line.strip()}

    def close(self) -> None:
        """Remove the private work directory (a given one is left as it is)."""
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _io_uring_enabled() -> bool:
    try:
        return _IO_URING_DISABLED.read_text().strip() == "0"
    except OSError:
        # Kernels before 6.6 have no switch: io_uring is on wherever it is built in.
        return True


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
