"""Integrity verify throughput: ours (drivers.integrity) against fio --verify=crc32c, same 1 GiB file.

The file lives in a memory-backed file system (/dev/shm), so neither side is disk-bound; both
use buffered I/O (tmpfs refuses O_DIRECT). fio writes its own crc32c-verified blocks and
re-reads them with verify_only (1 MiB blocks, psync, one job); its figure is its reported read
bandwidth, which includes the verify. Ours writes LBA-stamped 4 KiB blocks (one header and
crc32c per 4 KiB, 256 times fio's per-1 MiB headers) and verify_pattern reads them back in
4 MiB chunks, one worker per core, and checks every header and every stored crc32c (one
hardware crc32c per 1 MiB run, against the crc the blocks' stored crcs predict); the figure is
bytes over our verify's wall time. check="crc" is fio's check (header + crc32c); check="full"
also regenerates and compares every payload byte, shown as a second line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import Figure, best_of

from drivers.integrity.blockio import verify_pattern, write_pattern

BLOCK = 4096
GEN, SEED = 7, 0x5EED


def _fio(path: Path, size: int, out: Path, *, write: bool) -> dict:
    args = [
        "fio",
        "--name=verify",
        f"--filename={path}",
        f"--size={size}",
        "--bs=1m",
        "--ioengine=psync",
        "--numjobs=1",
        "--verify=crc32c",
        "--output-format=json",
        f"--output={out}",
        f"--aux-path={out.parent}",  # fio's verify state file stays in the scratch folder
    ]
    args += ["--rw=write", "--do_verify=0"] if write else ["--rw=read", "--verify_only=1"]
    subprocess.run(args, check=True, capture_output=True, cwd=out.parent)
    job = json.loads(out.read_text())["jobs"][0]
    if job["error"]:
        raise RuntimeError(f"fio verify failed: error {job['error']}")
    return job


def measure(size_mb: int = 1024, repeats: int = 3) -> list[Figure]:
    """Return the crc-check figure against fio, and the full-compare figure as information."""
    size = size_mb << 20
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    workdir = Path(tempfile.mkdtemp(prefix="qualify-bench-", dir=shm))
    try:
        ours_file, fio_file = workdir / "ours.img", workdir / "fio.img"
        write_pattern(ours_file, 0, size // BLOCK, GEN, SEED, BLOCK)
        blocks = size // BLOCK

        def ours(check: str) -> None:
            if verify_pattern(ours_file, 0, blocks, GEN, SEED, BLOCK, check=check):  # type: ignore[arg-type]
                raise RuntimeError("our verify found damage in a freshly written file")

        crc_s, _ = best_of(repeats, lambda: ours("crc"))
        full_s, _ = best_of(max(1, repeats - 1), lambda: ours("full"))
        fio_bw = 0.0
        if shutil.which("fio") is None:
            fio_note = "fio not installed (apt-get install fio): no anchor"
            fio_value = None
        else:
            _fio(fio_file, size, workdir / "w.json", write=True)
            for _ in range(repeats):
                job = _fio(fio_file, size, workdir / "v.json", write=False)
                fio_bw = max(fio_bw, float(job["read"]["bw_bytes"]))
            fio_value, fio_note = fio_bw / 1e9, "fio 1 MiB blocks, psync, verify_only, best of runs"
        threads = os.cpu_count()
        return [
            Figure(
                "integrity verify (crc) vs fio crc32c",
                size / crc_s / 1e9,
                fio_value,
                "GB/s",
                2.0,
                target_text=">= 2x",
                notes=[
                    f"1 GiB in {shm}, ours 4 KiB blocks, {threads} cores",
                    "ours reads and checks on every core, fio on one: another busy process costs ours more",
                    fio_note,
                ],
            ),
            Figure(
                "integrity verify (full compare) vs fio",
                size / full_s / 1e9,
                fio_value,
                "GB/s",
                0.0,
                target_text="info",
                notes=["every payload byte regenerated and compared: more than fio checks"],
            ),
        ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
