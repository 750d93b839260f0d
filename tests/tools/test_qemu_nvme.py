"""qualify's NVMe driver on a real Linux kernel: a QEMU guest with an emulated NVMe DUT.

One boot per session (about 10 s under TCG software emulation): the guest runs
scripts/qemu/guest_checks.py, which drives the DUT through the Linux ioctl transport and
through nvme-cli, and reports both views as JSON lines on its second serial port. The tests
below compare them. The guest image comes from scripts/qemu/build-image.sh (cached); the
project's drivers travel on a small ext4 payload disk built here with `mke2fs -d`.

Skipped, with the reason, only where QEMU cannot run: no qemu-system-x86_64, or no guest image
and no way to build one here. QUALIFY_QEMU_REQUIRED=1 turns those skips into failures (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from drivers.transport.nvme_cli import json_temperature_k, json_uint

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGE = REPO / "scripts" / "qemu" / "build-image.sh"
ROOT_PARTUUID = "51a11f1e-01"
DUT_SERIAL = "QUALIFYDUT"
DUT_BYTES = 64 * 1024 * 1024
RUN_TIMEOUT_S = 180.0  # about 10 s is normal; pytest-timeout stops any test at 300 s
# The guest's Python needs only these: the stdlib-only NVMe stack and the check script.
PAYLOAD = (
    "drivers/__init__.py",
    "drivers/errors.py",
    "drivers/nvme/__init__.py",
    "drivers/nvme/commands.py",
    "drivers/nvme/structures.py",
    "drivers/nvme/logs.py",
    "drivers/nvme/controller.py",
    "drivers/transport/__init__.py",
    "drivers/transport/nvme_passthrough.py",
    "drivers/transport/nvme_linux.py",
    "drivers/transport/nvme_cli.py",
)
GUEST_SCRIPTS = ("scripts/qemu/guest_checks.py", "scripts/qemu/guest-init.sh")

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("QUALIFY_QEMU_REQUIRED") == "1":
        pytest.fail(f"QEMU NVMe test required but cannot run: {reason}")
    pytest.skip(reason)


def _tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


@dataclass
class GuestRun:
    """Everything one guest boot reported, with its timings."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    console: str = ""
    image: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    first_record_s: float | None = None
    guest_uptime_at_start_s: float | None = None
    inject_reply: Any = None

    def check(self, name: str) -> dict[str, Any]:
        """Return the record of check `name`, failing with the guest's own account if missing."""
        if name not in self.records:
            crash = [e for e in self.events if e.get("event") == "crash"]
            detail = crash[0]["traceback"] if crash else self.console[-3000:]
            pytest.fail(f"guest reported no {name!r} check:\n{detail}")
        return self.records[name]


def _build_image() -> Path:
    started = time.monotonic()
    done = subprocess.run(["bash", str(BUILD_IMAGE)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        if "needs root" in why or "not found" in why:
            _unavailable(f"no QEMU guest image and none can be built here: {why}")
        pytest.fail(f"scripts/qemu/build-image.sh failed: {done.stderr[-3000:]}")
    folder = Path(done.stdout.strip().splitlines()[-1])
    if not (folder / "image.json").is_file():
        pytest.fail(f"build-image.sh printed {folder}, which holds no image.json")
    print(f"qemu guest image: {folder} ({time.monotonic() - started:.1f} s to find or build)")
    return folder


def _payload(tmp: Path) -> Path:
    mke2fs = _tool("mke2fs")
    if mke2fs is None:
        _unavailable("mke2fs (e2fsprogs) is missing, so no payload disk can be made")
    tree = tmp / "payload"
    for relative in PAYLOAD:
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, target)
    for relative in GUEST_SCRIPTS:
        shutil.copy2(REPO / relative, tree / Path(relative).name)
    (tree / "guest-init.sh").chmod(0o755)
    image = tmp / "payload.ext4"
    subprocess.run([mke2fs, "-q", "-t", "ext4", "-d", str(tree), str(image), "16M"], check=True)
    return image


class Qmp:
    """A minimal QMP client on QEMU's unix socket: capabilities, then one command at a time."""

    def __init__(self, path: Path, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout_s)
                self._sock.connect(str(path))
                break
            except OSError:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._buffer = b""
        self._read()  # the greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP socket closed")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run one QMP command and return its `return` value; events in between are skipped."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error']}")

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


def _boot(image: Path, payload: Path, tmp: Path) -> GuestRun:
    qemu = _tool("qemu-system-x86_64")
    assert qemu is not None
    dut = tmp / "dut.img"
    with dut.open("wb") as handle:
        handle.truncate(DUT_BYTES)
    results = tmp / "results.jsonl"
    console = tmp / "console.log"
    qmp_path = tmp / "qmp.sock"
    accel = os.environ.get("QUALIFY_QEMU_ACCEL", "tcg")
    argv = [
        qemu,
        "-nodefaults",
        "-no-user-config",
        "-machine",
        f"q35,accel={accel}",
        "-m",
        "512",
        "-smp",
        "1",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        str(image / "vmlinuz"),
        "-append",
        f"console=ttyS0 root=PARTUUID={ROOT_PARTUUID} rootwait rw init=/sbin/qualify-init panic=-1 quiet",
        "-serial",
        f"file:{console}",
        "-serial",
        f"file:{results}",
        "-qmp",
        f"unix:{qmp_path},server=on,wait=off",
        # snapshot=on: the cached root image and the payload stay untouched by the guest.
        "-drive",
        f"if=none,id=root,file={image / 'rootfs.img'},format=raw,snapshot=on",
        "-device",
        "nvme,drive=root,serial=QROOT",
        "-drive",
        f"if=none,id=payload,file={payload},format=raw,snapshot=on",
        "-device",
        "nvme,drive=payload,serial=QPAYLOAD",
        # discard=unmap: QEMU reports DLFEAT 1 (deallocated blocks read as zeros) but, with
        # its default discard=ignore, would keep the data a Dataset Management deallocates.
        "-drive",
        f"if=none,id=dut,file={dut},format=raw,discard=unmap",
        "-device",
        f"nvme,id=dut0,drive=dut,serial={DUT_SERIAL}",
    ]
    run = GuestRun(image=json.loads((image / "image.json").read_text()))
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    qmp: Qmp | None = None
    consumed = 0
    try:
        qmp = Qmp(qmp_path)
        while True:
            finished = process.poll() is not None
            if results.exists():
                text = results.read_bytes().decode("utf-8", errors="replace")
                complete = text[: text.rfind("\n") + 1]
                for line in complete[consumed:].splitlines():
                    line = line.strip()
                    if not line.startswith("{"):
                        continue
                    record = json.loads(line)
                    if run.first_record_s is None:
                        run.first_record_s = time.monotonic() - started
                    if "check" in record:
                        run.records[record["check"]] = record
                        continue
                    run.events.append(record)
                    if record.get("event") == "start":
                        run.guest_uptime_at_start_s = record.get("uptime_s")
                    if record.get("event") == "inject":
                        # The fault arrives while the guest runs, as a real drive's would.
                        run.inject_reply = qmp.execute(
                            "qom-set",
                            path="/machine/peripheral/dut0",
                            property="smart_critical_warning",
                            value=record["value"],
                        )
                consumed = len(complete)
            if finished:
                break
            if time.monotonic() - started > RUN_TIMEOUT_S:
                process.kill()
                pytest.fail(f"QEMU guest still running after {RUN_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
    finally:
        if qmp is not None:
            qmp.close()
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode("utf-8", errors="replace")
    run.wall_s = time.monotonic() - started
    run.console = console.read_text(errors="replace") if console.exists() else ""
    if not any(e.get("event") == "done" for e in run.events):
        pytest.fail(f"guest never reported done; qemu said {output[-2000:]!r}\n{run.console[-3000:]}")
    return run


@pytest.fixture(scope="session")
def guest(tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    """Boot the guest once for the session and return what it reported."""
    if _tool("qemu-system-x86_64") is None:
        _unavailable("qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
    tmp = tmp_path_factory.mktemp("qemu-nvme")
    image = _build_image()
    payload = _payload(tmp)
    run = _boot(image, payload, tmp)
    print(
        f"qemu guest: first report {run.first_record_s:.1f} s after start, "
        f"guest uptime at start {run.guest_uptime_at_start_s} s, whole run {run.wall_s:.1f} s"
    )
    return run


def _cli_json(record: dict[str, Any]) -> dict[str, Any]:
    cli = record["cli"]
    assert cli["rc"] == 0, cli["stderr"]
    assert isinstance(cli["json"], dict)
    return cli["json"]


def test_qemu_guest_boots_quickly_and_reports_versions(guest: GuestRun) -> None:
    versions = guest.check("versions")
    assert versions["nvme_cli"][0] >= 1
    assert versions["kernel"] == guest.image["kernel"]
    assert guest.guest_uptime_at_start_s is not None and guest.guest_uptime_at_start_s < 60
    assert guest.wall_s < RUN_TIMEOUT_S


def test_qemu_identify_controller_matches_nvme_cli(guest: GuestRun) -> None:
    record = guest.check("identify_controller")
    ours, cli = record["driver"], _cli_json(record)
    assert ours["serial_number"] == cli["sn"].strip() == DUT_SERIAL
    assert ours["model_number"] == cli["mn"].strip()
    assert ours["firmware_revision"] == cli["fr"].strip()
    assert ours["vid"] == json_uint(cli["vid"])
    assert ours["ssvid"] == json_uint(cli["ssvid"])
    assert ours["ieee_oui"] == json_uint(cli["ieee"])
    assert ours["subnqn"] == cli["subnqn"]
    ver = json_uint(cli["ver"])
    assert ours["version"] == [ver >> 16, (ver >> 8) & 0xFF, ver & 0xFF]
    for ours_key, cli_key in (
        ("mdts", "mdts"),
        ("cntlid", "cntlid"),
        ("oacs", "oacs"),
        ("frmw", "frmw"),
        ("lpa", "lpa"),
        ("elpe", "elpe"),
        ("wctemp_k", "wctemp"),
        ("cctemp_k", "cctemp"),
        ("sanicap", "sanicap"),
        ("nn", "nn"),
        ("oncs", "oncs"),
        ("vwc", "vwc"),
        ("sqes", "sqes"),
        ("cqes", "cqes"),
        ("sgls", "sgls"),
        ("tnvmcap_bytes", "tnvmcap"),
    ):
        assert ours[ours_key] == json_uint(cli[cli_key]), ours_key
    # The nvme-cli JSON path decodes to the same structure as the ioctl path.
    assert record["cli_parsed"] == ours


def test_qemu_identify_namespace_and_lba_formats_match_nvme_cli(guest: GuestRun) -> None:
    record = guest.check("identify_namespace")
    ours, cli = record["driver"], _cli_json(record)
    assert record["active"] == [1]
    for key in ("nsze", "ncap", "nuse"):
        assert ours[f"{key}_blocks"] == json_uint(cli[key])
    assert ours["flbas"] == json_uint(cli["flbas"])
    assert ours["nlbaf"] == json_uint(cli["nlbaf"]) == len(cli["lbafs"]) - 1
    formats = [(f["metadata_size_bytes"], f["lbads"]) for f in ours["lba_formats"]]
    assert formats == [(json_uint(f["ms"]), json_uint(f["ds"])) for f in cli["lbafs"]]
    assert record["cli_parsed"] == ours


def test_qemu_smart_log_matches_nvme_cli(guest: GuestRun) -> None:
    record = guest.check("smart")
    ours, cli = record["driver"], _cli_json(record)
    assert ours["temperature_k"] == json_temperature_k(cli["temperature"])
    assert ours["critical_warning"] == json_uint(cli["critical_warning"]) == 0
    for ours_key, cli_key in (
        ("available_spare_pct", "avail_spare"),
        ("available_spare_threshold_pct", "spare_thresh"),
        ("percentage_used_pct", "percent_used"),
        ("power_cycles", "power_cycles"),
        ("power_on_hours", "power_on_hours"),
        ("unsafe_shutdowns", "unsafe_shutdowns"),
        ("media_errors", "media_errors"),
        ("num_err_log_entries", "num_err_log_entries"),
        ("warning_temp_time_min", "warning_temp_time"),
        ("critical_temp_time_min", "critical_comp_time"),
    ):
        assert ours[ours_key] == json_uint(cli[cli_key]), ours_key
    # Counters move between the two reads (nvme-cli's own Get Log Page is a read command).
    for key in ("data_units_read", "host_read_commands", "host_write_commands", "data_units_written"):
        assert 0 <= json_uint(cli[key]) - ours[key] <= 4, key
    parsed = record["cli_parsed"]
    assert parsed["temperature_k"] == ours["temperature_k"]
    assert parsed["critical_warning"] == ours["critical_warning"]


def test_qemu_error_log_matches_nvme_cli(guest: GuestRun) -> None:
    record = guest.check("error_log")
    cli = _cli_json(record)
    assert len(record["driver_all"]) == len(cli["errors"])
    for ours, theirs in zip(record["driver_all"], cli["errors"], strict=True):
        assert ours["error_count"] == json_uint(theirs["error_count"])
        assert ours["status"] == json_uint(theirs["status_field"])
        assert ours["nsid"] == json_uint(theirs.get("nsid", theirs.get("NSID", 0)))
    assert record["driver"] == record["cli_parsed"]


def test_qemu_firmware_slot_log_matches_nvme_cli(guest: GuestRun) -> None:
    record = guest.check("firmware_slot")
    cli = _cli_json(record)
    slots = next(iter(cli.values()))
    assert record["driver"]["active_slot"] == json_uint(slots["Active Firmware Slot (afi)"]) & 0x7
    assert record["driver"] == record["cli_parsed"]
    assert record["driver"]["revisions"][record["driver"]["active_slot"] - 1]


def test_qemu_every_device_node_and_nvme_cli_reach_the_same_controller(guest: GuestRun) -> None:
    paths = guest.check("transport_paths")["paths"]
    assert len(paths) == 4
    assert {p["serial"] for p in paths.values()} == {DUT_SERIAL}
    assert len({p["nsze"] for p in paths.values()}) == 1
    namespace_nodes = [v["nsid"] for k, v in paths.items() if "n1" in Path(k).name]
    assert namespace_nodes == [1, 1]


def test_qemu_temperature_threshold_drives_the_critical_warning(guest: GuestRun) -> None:
    record = guest.check("temperature_threshold")
    assert record["lowered_k"] == record["temperature_k"] - 10
    assert record["warning_when_lowered"] & 0x02
    assert record["cli_warning_when_lowered"] & 0x02
    assert record["restored_k"] == record["before_k"]
    assert not record["warning_when_restored"] & 0x02
    feature = record["cli_feature"]
    assert feature["rc"] == 0, feature["stderr"]
    current = int(feature["text"].rsplit("Current value:", 1)[1].split()[0], 16)
    assert current & 0xFFFF == record["restored_k"]


def test_qemu_unsupported_commands_end_as_named_device_statuses(guest: GuestRun) -> None:
    record = guest.check("unsupported")
    for name, outcome in record["driver"].items():
        assert outcome["ok"] is False, name
        assert outcome["error"] in ("DeviceCommandError", "ProtocolError"), (name, outcome)
    # Where nvme-cli issues the same command, it reports the same status code.
    for name, cli in record["cli"].items():
        ours = record["driver"][name]
        assert cli["rc"] != 0, name
        if "(0x" in cli["stderr"]:
            code = int(cli["stderr"].rsplit("(0x", 1)[1].split(")")[0], 16)
            assert ours["status"] == code, (name, cli["stderr"], ours)


def test_qemu_format_nvm_switches_to_4k_blocks_and_erases(guest: GuestRun) -> None:
    record = guest.check("format")
    assert record["before_block_bytes"] == 512
    assert record["marker_written"] is True
    assert record["after_block_bytes"] == 4096
    assert record["lba0_zero_after"] is True
    cli = _cli_json(record)
    assert json_uint(cli["flbas"]) & 0xF == record["lbaf"]
    assert json_uint(cli["lbafs"][record["lbaf"]]["ds"]) == 12
    assert record["after"]["nsze_blocks"] == json_uint(cli["nsze"]) == DUT_BYTES // 4096
    assert record["cli_parsed"] == record["after"]


def test_qemu_write_read_verify_on_the_namespace(guest: GuestRun) -> None:
    record = guest.check("io")
    assert record["block_bytes"] == 4096
    assert record["last_lba"] == DUT_BYTES // 4096 - 1
    assert [r["slba"] for r in record["ranges"]] == [0, DUT_BYTES // 4096 // 2, record["last_lba"]]
    for item in record["ranges"]:
        assert item["match"] is True, item
        assert item["cli_match"] is True, item
    assert record["write_zeroes_zeroed"] is True
    assert record["write_zeroes_kept_neighbours"] is True
    assert record["cli_write_read_by_ioctl"] is True
    out_of_range = record["out_of_range"]
    assert out_of_range["error"] == "DeviceCommandError"
    assert out_of_range["status"] & 0xFF == 0x80  # LBA Out of Range
    assert "LBA Out of Range" in out_of_range["message"]


def test_qemu_deallocated_blocks_read_as_dlfeat_promises(guest: GuestRun) -> None:
    dlfeat = json_uint(_cli_json(guest.check("format"))["dlfeat"])
    if dlfeat & 0x7 != 0x1:
        pytest.skip(f"DLFEAT {dlfeat:#x} promises no zeros after deallocation")
    assert guest.check("io")["deallocated_reads_zero"] is True


def test_qemu_injected_critical_warning_reaches_the_driver(guest: GuestRun) -> None:
    record = guest.check("critical_warning")
    assert guest.inject_reply == {}
    assert record["before"] == 0
    assert record["driver"] & record["injected"] == record["injected"] == 0x05
    assert record["spare_below_threshold"] is True
    assert record["reliability_degraded"] is True
    assert json_uint(_cli_json(record)["critical_warning"]) == record["driver"]
    assert record["cli_parsed"] == record["driver"]
