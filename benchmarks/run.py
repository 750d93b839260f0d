"""Run every benchmark figure once on this machine and print ours, the anchor's and the ratio.

    python benchmarks/run.py [--only NAME ...] [--size-mb 1024] [--memtester-mb 1024] [--quick]

Each figure module measures ours and its anchor in this one run, on the same data; the final
table gives both, the ratio (how many times better ours is: >1 is better) and the issue's
target. A figure whose anchor tool is missing says so and is not judged. Takes about five
minutes (memtester and the 100-SSD plan are most of it); --quick shrinks the memory sizes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import copy_check
import ingest
import integrity_verify
import jesd218_100
import march_copy
import memtester_list
import overhead
from common import Figure


def _figures(args: argparse.Namespace) -> dict[str, Callable[[], list[Figure]]]:
    size = args.size_mb
    return {
        "integrity": lambda: integrity_verify.measure(size),
        "memtester": lambda: memtester_list.measure(size, args.memtester_mb),
        "march": lambda: march_copy.measure(size),
        "copy": lambda: copy_check.measure(size, seconds=4.0 if args.quick else 8.0),
        "ingest": lambda: ingest.measure(),
        "overhead": lambda: overhead.measure(),
        "jesd218": lambda: jesd218_100.measure(args.duts),
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def table(figures: list[Figure]) -> str:
    """Return the final table: figure, ours, anchor, unit, ratio, target and verdict."""
    head = ("figure", "ours", "anchor", "unit", "ratio", "target", "verdict")
    rows = []
    for f in figures:
        verdict = {True: "MET", False: "MISSED", None: "not judged"}[f.met]
        if f.target_text == "info":
            verdict = "info"
        ratio = "n/a" if f.ratio is None else f"{f.ratio:.2f}x"
        rows.append((f.name, _fmt(f.ours), _fmt(f.anchor), f.unit, ratio, f.target_text, verdict))
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    line = "  ".join("{:<" + str(w) + "}" for w in widths)
    out = [line.format(*head), line.format(*("-" * w for w in widths))]
    out += [line.format(*r) for r in rows]
    return "\n".join(out)


def main() -> int:
    """Parse arguments, run the chosen figures, print each as it lands and the table at the end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="figures to run (default all)")
    parser.add_argument("--size-mb", type=int, default=1024, help="memory and file size (MiB)")
    parser.add_argument(
        "--memtester-mb", type=int, default=1024, help="memtester's own size (scaled if not --size-mb)"
    )
    parser.add_argument("--duts", type=int, default=100, help="simulated SSDs for the JESD218 plan")
    parser.add_argument("--quick", action="store_true", help="256 MiB sizes, 64 MiB memtester")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.memtester_mb = 256, 64
    figures = _figures(args)
    chosen = args.only or list(figures)
    unknown = sorted(set(chosen) - set(figures))
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; known: {', '.join(figures)}")
    print(f"qualify benchmarks on {os.cpu_count()} cores; sizes {args.size_mb} MiB", flush=True)
    results: list[Figure] = []
    failed = 0
    for name in chosen:
        start = time.perf_counter()
        try:
            got = figures[name]()
        except Exception:
            failed += 1
            print(f"[{name}] FAILED:\n{traceback.format_exc()}", flush=True)
            continue
        for f in got:
            ratio = "n/a" if f.ratio is None else f"{f.ratio:.2f}x"
            print(
                f"[{name}] {f.name}: ours {_fmt(f.ours)} {f.unit}, anchor {_fmt(f.anchor)} {f.unit}, "
                f"ratio {ratio} (target {f.target_text})",
                flush=True,
            )
            for note in f.notes:
                print(f"    {note}", flush=True)
        print(f"    ({time.perf_counter() - start:.0f} s)", flush=True)
        results += got
    print()
    print(table(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
