"""Run qualify's NVMe driver against the QEMU DUT inside the guest and report what it sees.

Runs under the guest's bare python3 with the project's `drivers` package on the payload disk.
Each check prints one JSON line to the results port (the guest's second serial port): what
the driver decoded and what nvme-cli reports for the same device, so the host test compares
the two. The host answers one request line, {"event": "inject", ...}, by setting the QEMU
device's `smart_critical_warning` property over QMP.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import hashlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

from drivers.errors import DeviceCommandError, InstrumentError
from drivers.nvme import commands as cmds
from drivers.nvme.commands import CommitAction, SanitizeAction, SecureErase, SelfTestCode
from drivers.nvme.controller import NvmeDriver
from drivers.nvme.logs import decode_error_log
from drivers.transport.nvme_cli import NvmeCliTransport
from drivers.transport.nvme_linux import LinuxNvmeTransport

INJECTED_WARNING = 0x05  # available spare below threshold | reliability degraded
NSID = 1


def _plain(value: Any) -> Any:
    """Return `value` as JSON-ready data: dataclasses to dicts, bytes to hex, enums to ints."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


def _uptime_s() -> float:
    with open("/proc/uptime", encoding="ascii") as handle:
        return float(handle.read().split()[0])


class Reporter:
    """Write one JSON object per line to the results port."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def emit(self, **fields: Any) -> None:
        """Write one record and push it out at once, so the host sees it while the guest runs."""
        self._stream.write(json.dumps(_plain(fields), sort_keys=True) + "\n")
        self._stream.flush()


def nvme_cli(*args: str, stdin: bytes | None = None) -> dict[str, Any]:
    """Run nvme-cli and return its exit code, output (JSON when it parses) and error text."""
    done = subprocess.run(["nvme", *args], input=stdin or b"", capture_output=True, timeout=600, check=False)
    text = done.stdout.decode("utf-8", errors="replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    return {
        "argv": list(args),
        "rc": done.returncode,
        "json": parsed,
        "stdout_sha256": hashlib.sha256(done.stdout).hexdigest(),
        "stdout_len": len(done.stdout),
        "text": text[:4000] if parsed is None else None,
        "stderr": done.stderr.decode("utf-8", errors="replace").strip(),
    }


def _outcome(action: Callable[[], Any]) -> dict[str, Any]:
    """Run `action` and describe how it ended: its value, or the error's class, status and text."""
    try:
        return {"ok": True, "value": _plain(action())}
    except DeviceCommandError as exc:
        return {"ok": False, "error": "DeviceCommandError", "status": exc.status, "message": exc.message}
    except InstrumentError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": exc.message}


def find_controller(serial: str) -> str:
    """Return the controller name (nvmeN) whose serial number is `serial`."""
    for folder in sorted(glob.glob("/sys/class/nvme/nvme*")):
        with open(os.path.join(folder, "serial"), encoding="ascii") as handle:
            if handle.read().strip() == serial:
                return os.path.basename(folder)
    raise SystemExit(f"guest_checks: no NVMe controller with serial {serial!r}")


def run_checks(report: Reporter, serial: str, inject_timeout_s: float) -> None:
    """Run every check against the controller with `serial`."""
    ctrl = find_controller(serial)
    index = ctrl.removeprefix("nvme")
    dev = f"/dev/{ctrl}"
    generic = f"/dev/ng{index}n{NSID}"
    block = f"/dev/{ctrl}n{NSID}"
    report.emit(event="devices", controller=dev, generic=generic, block=block)

    driver = NvmeDriver(LinuxNvmeTransport(dev))
    cli = NvmeCliTransport(dev)
    report.emit(check="versions", nvme_cli=cli.version(), python=sys.version, kernel=os.uname().release)

    report.emit(
        check="identify_controller",
        driver=driver.identify_controller(),
        cli_parsed=cli.identify_controller(),
        cli=nvme_cli("id-ctrl", dev, "--output-format=json"),
    )
    report.emit(
        check="identify_namespace",
        driver=driver.identify_namespace(NSID),
        cli_parsed=cli.identify_namespace(NSID),
        cli=nvme_cli("id-ns", dev, f"--namespace-id={NSID}", "--output-format=json"),
        active=driver.active_namespaces(),
    )
    report.emit(
        check="smart",
        driver=driver.smart_log(),
        cli_parsed=cli.smart_log(),
        cli=nvme_cli("smart-log", dev, "--output-format=json"),
    )
    report.emit(
        check="error_log",
        driver=driver.error_log(),
        driver_all=_error_entries(driver),
        cli_parsed=cli.error_log(),
        cli=nvme_cli("error-log", dev, "--output-format=json"),
    )
    report.emit(
        check="firmware_slot",
        driver=driver.firmware_slot_log(),
        cli_parsed=cli.firmware_slot_log(),
        cli=nvme_cli("fw-log", dev, "--output-format=json"),
    )
    _check_transport_paths(report, dev, generic, block)
    _check_thresholds(report, driver, cli, dev)
    _check_unsupported(report, driver, dev)
    _check_format(report, driver, cli, dev)
    _check_io(report, driver, cli)
    _check_critical_warning(report, driver, cli, dev, inject_timeout_s)
    driver.close()


def _error_entries(driver: NvmeDriver) -> list[Any]:
    # Every slot, empty ones included, to compare the count with what nvme-cli prints.
    entries = driver.identify_controller().elpe + 1
    return [_plain(e) for e in decode_error_log(driver.admin_command(cmds.error_log(entries)))]


def _check_transport_paths(report: Reporter, dev: str, generic: str, block: str) -> None:
    """Identify through the controller, generic and block nodes, and through nvme-cli."""
    seen = {}
    for path in (dev, generic, block):
        transport = LinuxNvmeTransport(path)
        with_driver = NvmeDriver(transport)
        seen[path] = {
            "nsid": transport.nsid,
            "serial": with_driver.identify_controller().serial_number,
            "nsze": with_driver.identify_namespace(NSID).nsze_blocks,
        }
        with_driver.close()
    via_cli = NvmeDriver(NvmeCliTransport(dev))
    seen[f"nvme-cli:{dev}"] = {
        "nsid": None,
        "serial": via_cli.identify_controller().serial_number,
        "nsze": via_cli.identify_namespace(NSID).nsze_blocks,
    }
    report.emit(check="transport_paths", paths=seen)


def _check_thresholds(report: Reporter, driver: NvmeDriver, cli: NvmeCliTransport, dev: str) -> None:
    """Lower the over-temperature threshold below the drive's temperature and back."""
    before = driver.get_temperature_threshold()
    temp_k = driver.smart_log().temperature_k
    driver.set_temperature_threshold(temp_k - 10)
    lowered = driver.get_temperature_threshold()
    warning_low = int(driver.smart_log().critical_warning)
    cli_low = cli.smart_log().critical_warning
    driver.set_temperature_threshold(before)
    restored = driver.get_temperature_threshold()
    warning_restored = int(driver.smart_log().critical_warning)
    report.emit(
        check="temperature_threshold",
        before_k=before,
        temperature_k=temp_k,
        lowered_k=lowered,
        warning_when_lowered=warning_low,
        cli_warning_when_lowered=int(cli_low),
        restored_k=restored,
        warning_when_restored=warning_restored,
        # nvme-cli 2.3 has no JSON form of get-feature: "... Current value:0x000157".
        cli_feature=nvme_cli("get-feature", dev, "--feature-id=4"),
    )


def _check_unsupported(report: Reporter, driver: NvmeDriver, dev: str) -> None:
    """Send commands QEMU's controller lacks: each must end as a named device status."""
    report.emit(
        check="unsupported",
        driver={
            "sanitize": _outcome(lambda: driver.sanitize(SanitizeAction.BLOCK_ERASE)),
            "self_test": _outcome(lambda: driver.start_self_test(SelfTestCode.SHORT)),
            "firmware_commit": _outcome(lambda: driver.firmware_commit(1, CommitAction.ACTIVATE_AT_RESET)),
            "self_test_log": _outcome(driver.self_test_log),
            "sanitize_status": _outcome(driver.sanitize_status),
            "telemetry": _outcome(lambda: driver.telemetry_host_header(create=True)),
            "ocp_smart": _outcome(driver.ocp_smart_extended_log),
        },
        cli={
            "sanitize": nvme_cli("sanitize", dev, "--sanact=2"),
            "self_test": nvme_cli("device-self-test", dev, "--self-test-code=1"),
            "firmware_commit": nvme_cli("fw-commit", dev, "--slot=1", "--action=2"),
            "self_test_log": nvme_cli("self-test-log", dev, "--output-format=json"),
            "sanitize_status": nvme_cli("sanitize-log", dev, "--output-format=json"),
        },
    )


def _check_format(report: Reporter, driver: NvmeDriver, cli: NvmeCliTransport, dev: str) -> None:
    """Format to the 4096-byte LBA format with a user data erase, after writing a marker."""
    before = driver.identify_namespace(NSID)
    marker = bytes(range(256)) * (before.block_size_bytes // 256)
    driver.write(NSID, 0, marker)
    marker_read = driver.read(NSID, 0, 1) == marker
    lbaf = driver.lba_format_index(4096)
    started = time.monotonic()
    after = driver.format_nvm(NSID, lbaf, SecureErase.USER_DATA)
    elapsed_s = time.monotonic() - started
    report.emit(
        check="format",
        lbaf=lbaf,
        before_block_bytes=before.block_size_bytes,
        after=after,
        after_block_bytes=after.block_size_bytes,
        marker_written=marker_read,
        lba0_zero_after=not any(driver.read(NSID, 0, 1)),
        format_s=elapsed_s,
        cli_parsed=cli.identify_namespace(NSID),
        cli=nvme_cli("id-ns", dev, f"--namespace-id={NSID}", "--output-format=json"),
    )


def _pattern(seed: int, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _check_io(report: Reporter, driver: NvmeDriver, cli: NvmeCliTransport) -> None:
    """Write, read back and verify at the start, middle and last LBA; zero and trim ranges."""
    namespace = driver.identify_namespace(NSID)
    block = namespace.block_size_bytes
    last = namespace.nsze_blocks - 1
    # A transport of its own: closing this driver must not close the caller's nvme-cli link.
    cli_driver = NvmeDriver(NvmeCliTransport(cli.device))
    results = []
    for slba, blocks in ((0, 8), (namespace.nsze_blocks // 2, 32), (last, 1)):
        data = _pattern(slba, blocks * block)
        driver.write(NSID, slba, data, fua=(slba == last))
        back = driver.read(NSID, slba, blocks)
        via_cli = cli_driver.read(NSID, slba, blocks)
        results.append(
            {
                "slba": slba,
                "blocks": blocks,
                "match": back == data,
                "cli_match": via_cli == data,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    driver.flush(NSID)
    mid = namespace.nsze_blocks // 2
    driver.write_zeroes(NSID, mid, 8)
    zeroed = not any(driver.read(NSID, mid, 8))
    rest_kept = driver.read(NSID, mid + 8, 24) == _pattern(mid, 32 * block)[8 * block :]
    driver.write(NSID, 64, _pattern(64, 16 * block))
    driver.deallocate(NSID, [(64, 16)])
    trimmed = driver.read(NSID, 64, 16)
    cli_write = _pattern(7, 2 * block)
    cli_driver.write(NSID, 100, cli_write)
    cli_written_read_by_ioctl = driver.read(NSID, 100, 2) == cli_write
    cli_driver.close()
    report.emit(
        check="io",
        block_bytes=block,
        last_lba=last,
        ranges=results,
        write_zeroes_zeroed=zeroed,
        write_zeroes_kept_neighbours=rest_kept,
        deallocated_reads_zero=not any(trimmed),
        cli_write_read_by_ioctl=cli_written_read_by_ioctl,
        out_of_range=_outcome(lambda: driver.read(NSID, last + 1, 1)),
    )


def _check_critical_warning(
    report: Reporter, driver: NvmeDriver, cli: NvmeCliTransport, dev: str, timeout_s: float
) -> None:
    """Ask the host to inject a critical warning, then watch the SMART log until it shows."""
    before = int(driver.smart_log().critical_warning)
    report.emit(event="inject", value=INJECTED_WARNING)
    deadline = time.monotonic() + timeout_s
    seen = before
    while time.monotonic() < deadline:
        seen = int(driver.smart_log().critical_warning)
        if seen & INJECTED_WARNING == INJECTED_WARNING:
            break
        time.sleep(0.2)
    smart = driver.smart_log()
    report.emit(
        check="critical_warning",
        injected=INJECTED_WARNING,
        before=before,
        driver=int(smart.critical_warning),
        spare_below_threshold=smart.spare_below_threshold,
        reliability_degraded=smart.reliability_degraded,
        cli_parsed=int(cli.smart_log().critical_warning),
        cli=nvme_cli("smart-log", dev, "--output-format=json"),
    )


def main() -> int:
    """Parse arguments, run the checks, report the end (or the failure) and return 0."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serial", default="QUALIFYDUT")
    parser.add_argument("--out", default="/dev/ttyS1")
    parser.add_argument("--inject-timeout-s", type=float, default=60.0)
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8") as stream:
        report = Reporter(stream)
        report.emit(event="start", uptime_s=_uptime_s())
        try:
            run_checks(report, args.serial, args.inject_timeout_s)
        except Exception as exc:  # the host must hear about any failure, whatever it was
            report.emit(event="crash", error=repr(exc), traceback=traceback.format_exc())
        report.emit(event="done", uptime_s=_uptime_s())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
