"""NVMe through the `nvme` command of nvme-cli: passthrough commands and its JSON reports.

Two paths to one device, for hosts where a Python process may not issue NVMe ioctls itself
but may run nvme-cli (a sudo rule, a container with the tool), and as an independent
cross-check of the ioctl transport's decoding:

- `admin`/`io` run `nvme admin-passthru` / `nvme io-passthru` with `--raw-binary`, so the
  driver's own encoders and decoders do the work (implements NvmePassthrough);
- `smart_log`, `identify_controller`, `identify_namespace`, `error_log` and
  `firmware_slot_log` parse `-o json` output into the driver's structures.

nvme-cli's JSON has changed shape across releases; the parsers accept every shape named here:

- 128-bit counters: a JSON number (1.x routes them through a long double, so values past
  2^64 arrive rounded; later 2.x releases print an unquoted decimal of any size through
  util/json.c's string-to-number serializer), a quoted decimal string (2.x before that
  serializer; seen from 2.3), a "12.000000" string from the long double helper, or a
  {"hi", "lo"} object (the OCP plugin's split form);
- integers anywhere: numbers, decimal or "0x" hex strings, values with a unit ("512 bytes",
  "100%");
- temperatures: kelvin numbers (what every release prints for smart-log and id-ctrl; its
  maintainers declined to switch to Celsius), strings with a unit ("313 K", "40 °C",
  "40 C"), keys that name Celsius (`temperature_celsius`, a vendor plugin's form), and plain
  numbers below 200, which cannot be a working drive's kelvin and are read as Celsius;
- the critical warning as a number or as the verbose (-H) object with "value" or bit keys;
- reports nested one level under a title or device key, as newer releases do;
- keys in any case ("nsid" and "NSID" both occur).

Where the installed nvme-cli has `--output-format-version` (seen in its per-command help), the
transport pins version 1, the flat layout every older release prints. Standard library only:
this module also runs inside a minimal Linux guest with a bare python3.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.errors import DeviceCommandError, InstrumentError, InstrumentTimeout, ProtocolError
from drivers.nvme.commands import LONG_RUNNING_ADMIN_OPCODES, NSID_ALL, Completion, DataTransfer, NvmeCommand
from drivers.nvme.logs import ErrorLogEntry, FirmwareSlotLog
from drivers.nvme.structures import (
    KELVIN_OFFSET,
    TEMPERATURE_SENSOR_COUNT,
    CriticalWarning,
    IdentifyController,
    IdentifyNamespace,
    LbaFormat,
    RelativePerformance,
    SmartLog,
    StructureError,
    decode_version,
)

PINNED_OUTPUT_FORMAT_VERSION = 1
_CELSIUS_BELOW = 200
"""A bare temperature under this many kelvin (-73 °C) is no working drive's: read it as °C."""

_STATUS = re.compile(r"NVMe status:.*\((?:0x)?([0-9A-Fa-f]+)\)\s*$", re.MULTILINE)
_RESULT = re.compile(r"result:?\s*(?:0x)?([0-9A-Fa-f]+)")
_VERSION = re.compile(r"nvme version (\d+(?:\.\d+)*)")
_NUMBER = re.compile(r"^[+-]?(?:0[xX][0-9A-Fa-f]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")
_CONTROLLER_NODE = re.compile(r"^nvme(\d+)$")
_NAMESPACE_NODE = re.compile(r"^(?:nvme|ng)\d+n\d+$")
_CRITICAL_WARNING_BITS = {
    "available_spare": CriticalWarning.AVAILABLE_SPARE,
    "temp_threshold": CriticalWarning.TEMPERATURE,
    "reliability_degraded": CriticalWarning.RELIABILITY_DEGRADED,
    "ro": CriticalWarning.READ_ONLY,
    "vmbu_failed": CriticalWarning.VOLATILE_BACKUP_FAILED,
    "pmr_ro": CriticalWarning.PMR_READ_ONLY,
}


@dataclass(frozen=True)
class CliResult:
    """What one run of a command left: exit code, standard output and standard error."""

    returncode: int
    stdout: bytes
    stderr: bytes


Runner = Callable[[Sequence[str], bytes | None, float], CliResult]


def run_subprocess(argv: Sequence[str], stdin: bytes | None, timeout_s: float) -> CliResult:
    """Run `argv` without a shell and return its result; raise TimeoutExpired or OSError."""
    done = subprocess.run(list(argv), input=stdin or b"", capture_output=True, timeout=timeout_s, check=False)
    return CliResult(done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------------------------------------
# Value parsers: one JSON value of any shape nvme-cli has printed into an int or a kelvin.


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


def json_uint(value: Any, name: str = "value") -> int:
    """Return a non-negative integer from a JSON value in any form nvme-cli prints."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise StructureError(f"{name}: {value!r} is not a count")
        # 1.x routes 128-bit counters through a long double: whole, but rounded past 2^64.
        number = round(value)
    elif isinstance(value, str):
        number = _uint_from_text(value, name)
    elif isinstance(value, Mapping):
        number = _uint_from_object(value, name)
    else:
        raise StructureError(f"{name}: {value!r} is not a number")
    if number < 0:
        raise StructureError(f"{name}: {value!r} is negative")
    return number


def _uint_from_text(text: str, name: str) -> int:
    cleaned = text.strip().replace(",", "")
    match = _NUMBER.match(cleaned)
    if match is None:
        raise StructureError(f"{name}: {text!r} is not a number")
    token = match.group(0)
    if token.lower().startswith(("0x", "+0x", "-0x")):
        return int(token, 16)
    if any(ch in token for ch in ".eE"):
        return round(float(token))
    return int(token)


def _uint_from_object(value: Mapping[str, Any], name: str) -> int:
    keys = {_norm(k): v for k, v in value.items()}
    if "hi" in keys and "lo" in keys:
        return (json_uint(keys["hi"], name) << 64) | json_uint(keys["lo"], name)
    if "value" in keys:
        return json_uint(keys["value"], name)
    raise StructureError(f"{name}: object {dict(value)!r} holds no value")


def json_temperature_k(value: Any, name: str = "temperature", celsius: bool = False) -> int:
    """Return a temperature in whole kelvin from a JSON value; `celsius` when the key says °C."""
    if isinstance(value, Mapping):
        keys = {_norm(k): v for k, v in value.items()}
        for key, is_c in (
            ("kelvin", False),
            ("k", False),
            ("celsius", True),
            ("c", True),
            ("value", celsius),
        ):
            if key in keys:
                return json_temperature_k(keys[key], name, celsius=is_c)
        raise StructureError(f"{name}: object {dict(value)!r} holds no temperature")
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        match = _NUMBER.match(text)
        if match is None:
            raise StructureError(f"{name}: {value!r} is not a temperature")
        number = float(match.group(0))
        unit = text[match.end() :].strip().lstrip("°").strip().lower()
        if unit.startswith(("k", "kelvin")):
            return round(number)
        if unit.startswith(("c", "celsius")):
            return round(number + KELVIN_OFFSET)
        return _bare_temperature_k(number, celsius)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StructureError(f"{name}: {value!r} is not a temperature")
    return _bare_temperature_k(float(value), celsius)


def _bare_temperature_k(number: float, celsius: bool) -> int:
    if number == 0 and not celsius:
        return 0  # NVMe's "not reported", whatever the unit
    if celsius or number < _CELSIUS_BELOW:
        return round(number + KELVIN_OFFSET)
    return round(number)


class _Doc:
    """A JSON object whose keys are looked up case- and punctuation-insensitively."""

    def __init__(self, raw: Mapping[str, Any], what: str) -> None:
        self.what = what
        self._keys = {_norm(k): v for k, v in raw.items()}

    def has(self, *names: str) -> bool:
        return any(_norm(n) in self._keys for n in names)

    def get(self, *names: str) -> Any:
        for name in names:
            if _norm(name) in self._keys:
                return self._keys[_norm(name)]
        return None

    def require(self, *names: str) -> Any:
        value = self.get(*names)
        if value is None:
            raise StructureError(f"{self.what}: no {' / '.join(names)} in nvme-cli's JSON")
        return value

    def uint(self, *names: str, default: int | None = None) -> int:
        value = self.get(*names)
        if value is None:
            if default is None:
                raise StructureError(f"{self.what}: no {' / '.join(names)} in nvme-cli's JSON")
            return default
        return json_uint(value, f"{self.what}.{names[0]}")

    def text(self, *names: str) -> str:
        value = self.require(*names)
        return str(value).strip(" \x00")


def _find_report(doc: Any, marker: str, what: str) -> Mapping[str, Any]:
    """Return the object that carries `marker`: the document itself or one level inside it."""
    if isinstance(doc, Mapping):
        if _Doc(doc, what).has(marker):
            return doc
        for value in doc.values():
            inner = value[0] if isinstance(value, list) and value else value
            if isinstance(inner, Mapping) and _Doc(inner, what).has(marker):
                return inner
    raise StructureError(f"{what}: nvme-cli's JSON holds no {marker!r} report")


# ---------------------------------------------------------------------------------------------
# Reports: nvme-cli JSON documents into the driver's structures.


def smart_log_from_json(doc: Any) -> SmartLog:
    """Build a SmartLog from `nvme smart-log -o json` output of any known shape."""
    report = _Doc(_find_report(doc, "critical_warning", "smart-log"), "smart-log")
    warning_value = report.require("critical_warning")
    if isinstance(warning_value, Mapping):
        inner = _Doc(warning_value, "smart-log.critical_warning")
        if inner.has("value"):
            warning = inner.uint("value")
        else:
            warning = 0
            for key, bit in _CRITICAL_WARNING_BITS.items():
                if inner.uint(key, default=0):
                    warning |= int(bit)
    else:
        warning = json_uint(warning_value, "smart-log.critical_warning")
    if report.has("temperature_celsius", "temperature_c") and not report.has("temperature_kelvin"):
        temp_k = json_temperature_k(report.require("temperature_celsius", "temperature_c"), celsius=True)
    else:
        temp_k = json_temperature_k(report.require("temperature_kelvin", "temperature"))
    sensors: list[int | None] = []
    for index in range(1, TEMPERATURE_SENSOR_COUNT + 1):
        value = report.get(f"temperature_sensor_{index}")
        # nvme-cli leaves out sensors that read 0 (not implemented).
        sensors.append(None if value is None else json_temperature_k(value, f"temperature_sensor_{index}"))
    return SmartLog(
        critical_warning=CriticalWarning(warning & 0xFF),
        temperature_k=temp_k,
        available_spare_pct=report.uint("avail_spare", "available_spare"),
        available_spare_threshold_pct=report.uint("spare_thresh", "available_spare_threshold"),
        percentage_used_pct=report.uint("percent_used", "percentage_used"),
        endurance_group_critical_warning=report.uint("endurance_grp_critical_warning_summary", default=0),
        data_units_read=report.uint("data_units_read"),
        data_units_written=report.uint("data_units_written"),
        host_read_commands=report.uint("host_read_commands", "host_reads"),
        host_write_commands=report.uint("host_write_commands", "host_writes"),
        controller_busy_time_min=report.uint("controller_busy_time", "ctrl_busy_time"),
        power_cycles=report.uint("power_cycles"),
        power_on_hours=report.uint("power_on_hours"),
        unsafe_shutdowns=report.uint("unsafe_shutdowns"),
        media_errors=report.uint("media_errors"),
        num_err_log_entries=report.uint("num_err_log_entries"),
        warning_temp_time_min=report.uint("warning_temp_time", default=0),
        critical_temp_time_min=report.uint("critical_comp_time", default=0),
        temperature_sensors_k=tuple(sensors),
        thermal_mgmt_temp1_transitions=report.uint("thm_temp1_trans_count", default=0),
        thermal_mgmt_temp2_transitions=report.uint("thm_temp2_trans_count", default=0),
        thermal_mgmt_temp1_time_s=report.uint("thm_temp1_total_time", default=0),
        thermal_mgmt_temp2_time_s=report.uint("thm_temp2_total_time", default=0),
    )


# IdentifyController fields named as nvme-cli names them, where the two differ.
_ID_CTRL_KEYS = {
    "serial_number": "sn",
    "model_number": "mn",
    "firmware_revision": "fr",
    "ieee_oui": "ieee",
    "rtd3r_us": "rtd3r",
    "rtd3e_us": "rtd3e",
    "wctemp_k": "wctemp",
    "cctemp_k": "cctemp",
    "tnvmcap_bytes": "tnvmcap",
    "unvmcap_bytes": "unvmcap",
}
_ID_CTRL_REQUIRED = {"vid", "sn", "mn", "fr", "ver"}


def identify_controller_from_json(doc: Any) -> IdentifyController:
    """Build an IdentifyController from `nvme id-ctrl -o json` output.

    Fields an older nvme-cli does not print decode as 0; the identity fields (VID, SN, MN,
    FR, VER) are required.
    """
    report = _Doc(_find_report(doc, "mn", "id-ctrl"), "id-ctrl")
    values: dict[str, Any] = {}
    for name in IdentifyController.__dataclass_fields__:
        key = _ID_CTRL_KEYS.get(name, name)
        if name in ("serial_number", "model_number", "firmware_revision", "subnqn"):
            values[name] = report.text(key) if key in _ID_CTRL_REQUIRED or report.has(key) else ""
        elif name == "version":
            values[name] = decode_version(report.uint("ver"))
        elif name in ("wctemp_k", "cctemp_k"):
            values[name] = json_temperature_k(report.get(key), key) if report.has(key) else 0
        else:
            values[name] = report.uint(key, default=None if key in _ID_CTRL_REQUIRED else 0)
    return IdentifyController(**values)


def _lba_format_from_json(entry: Mapping[str, Any]) -> LbaFormat:
    item = _Doc(entry, "id-ns.lbafs")
    if item.has("ds"):
        lbads = item.uint("ds")
    else:
        # The verbose (-H) form gives the data size in bytes: "4096 bytes".
        size = item.uint("data_size")
        lbads = size.bit_length() - 1 if size else 0
    return LbaFormat(
        metadata_size_bytes=item.uint("ms", "metadata_size", default=0),
        lbads=lbads,
        relative_performance=RelativePerformance(item.uint("rp", "relative_performance", default=0) & 0b11),
    )


def identify_namespace_from_json(doc: Any) -> IdentifyNamespace:
    """Build an IdentifyNamespace from `nvme id-ns -o json` output."""
    report = _Doc(_find_report(doc, "nsze", "id-ns"), "id-ns")
    formats = tuple(_lba_format_from_json(entry) for entry in report.require("lbafs"))
    nguid = report.get("nguid") or ""
    eui64 = report.get("eui64") or ""
    return IdentifyNamespace(
        nsze_blocks=report.uint("nsze"),
        ncap_blocks=report.uint("ncap"),
        nuse_blocks=report.uint("nuse"),
        nsfeat=report.uint("nsfeat", default=0),
        nlbaf=report.uint("nlbaf", default=len(formats) - 1),
        flbas=report.uint("flbas"),
        mc=report.uint("mc", default=0),
        dpc=report.uint("dpc", default=0),
        dps=report.uint("dps", default=0),
        nmic=report.uint("nmic", default=0),
        rescap=report.uint("rescap", default=0),
        nvmcap_bytes=report.uint("nvmcap", default=0),
        nguid=bytes.fromhex(str(nguid)) if nguid else bytes(16),
        eui64=bytes.fromhex(str(eui64)) if eui64 else bytes(8),
        lba_formats=formats,
    )


def error_log_from_json(doc: Any) -> list[ErrorLogEntry]:
    """Build Error Information entries from `nvme error-log -o json`, empty slots dropped.

    nvme-cli 2.x prints `status_field` without the phase tag and `phase_tag` beside it;
    1.x printed the whole Status Information word as `status_field`.
    """
    top = _Doc(doc, "error-log") if isinstance(doc, Mapping) else None
    entries = top.require("errors") if top is not None else doc
    if not isinstance(entries, list):
        raise StructureError("error-log: nvme-cli's JSON holds no list of errors")
    found = []
    for raw in entries:
        item = _Doc(raw, "error-log.errors")
        status = item.uint("status_field", default=0)
        if item.has("phase_tag"):
            phase = bool(item.uint("phase_tag"))
        else:
            phase, status = bool(status & 1), status >> 1
        location = item.uint("parm_error_location", default=0)
        entry = ErrorLogEntry(
            error_count=item.uint("error_count"),
            sqid=item.uint("sqid", default=0),
            cid=item.uint("cmdid", default=0),
            phase=phase,
            status=status,
            parameter_error_byte=location & 0xFF,
            parameter_error_bit=(location >> 8) & 0x7,
            lba=item.uint("lba", default=0),
            nsid=item.uint("nsid", default=0),
            vendor_specific_page=item.uint("vs", default=0),
            transport_type=item.uint("trtype", default=0),
            csi=item.uint("csi", default=0),
            opcode=item.uint("opcode", default=0),
            command_specific=item.uint("cs", default=0),
            transport_specific=item.uint("trtype_spec_info", default=0),
            log_page_version=item.uint("log_page_version", default=0),
        )
        if entry.valid:
            found.append(entry)
    return found


def firmware_slot_log_from_json(doc: Any) -> FirmwareSlotLog:
    """Build a FirmwareSlotLog from `nvme fw-log -o json` ({device: {"Active Firmware Slot (afi)": ...}})."""
    report = _Doc(_find_report(doc, "Active Firmware Slot (afi)", "fw-log"), "fw-log")
    afi = report.uint("Active Firmware Slot (afi)")
    revisions: list[str | None] = []
    for slot in range(1, 8):
        value = report.get(f"Firmware Rev Slot {slot}")
        if value is None:
            revisions.append(None)
            continue
        # Printed as "<the 8 bytes as a little-endian u64> (<printable text>)"; the number is exact.
        raw = json_uint(str(value).split("(", 1)[0], f"fw-log.slot{slot}").to_bytes(8, "little")
        revisions.append(raw.decode("ascii", errors="replace").strip(" \x00"))
    next_slot = (afi >> 4) & 0x7
    return FirmwareSlotLog(
        active_slot=afi & 0x7, next_active_slot=next_slot or None, revisions=tuple(revisions)
    )


# ---------------------------------------------------------------------------------------------
# The transport.


class NvmeCliTransport:
    """One NVMe controller through the `nvme` executable (implements NvmePassthrough).

    `device` is the node nvme-cli opens (`/dev/nvme0`, `/dev/ng0n1`, `/dev/nvme0n1`); I/O
    commands go to `io_device`, by default the device itself when it is a namespace node, else
    the namespace node of the command's NSID (`/dev/ngXnN`, or `/dev/nvmeXnN` on kernels
    without generic nodes). `timeout_s` bounds each command, `long_timeout_s` Format NVM and
    Firmware Commit. `runner` stands in for subprocess, so tests script nvme-cli.
    """

    def __init__(
        self,
        device: str,
        *,
        nvme: str = "nvme",
        io_device: str | None = None,
        timeout_s: float = 60.0,
        long_timeout_s: float = 600.0,
        runner: Runner = run_subprocess,
    ) -> None:
        self.device = device
        self.address: str = f"nvme-cli:{device}"
        self._nvme = nvme
        self._io_device = io_device
        self._timeout_s = timeout_s
        self._long_timeout_s = long_timeout_s
        self._runner = runner
        self._closed = False
        self._pins: dict[str, bool] = {}

    # -- NvmePassthrough ---------------------------------------------------------------------

    def admin(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        """Submit one admin command through `nvme admin-passthru`."""
        return self._passthru("admin-passthru", self.device, cmd, data)

    def io(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        """Submit one I/O command through `nvme io-passthru` on the command's namespace node."""
        return self._passthru("io-passthru", self._namespace_node(cmd.nsid), cmd, data)

    def close(self) -> None:
        """Mark the transport closed; nvme-cli holds nothing open between commands."""
        self._closed = True

    # -- JSON reports ------------------------------------------------------------------------

    def version(self) -> tuple[int, ...]:
        """Return nvme-cli's version, e.g. (2, 3), from `nvme version`."""
        done = self._run([self._nvme, "version"])
        match = _VERSION.search(done.stdout.decode("utf-8", errors="replace"))
        if match is None:
            raise ProtocolError(self.address, f"`nvme version` printed no version: {done.stdout[:80]!r}")
        return tuple(int(part) for part in match.group(1).split("."))

    def report(self, subcommand: str, *args: str) -> Any:
        """Run `nvme SUBCOMMAND DEVICE ARGS -o json` and return the parsed document."""
        argv = [self._nvme, subcommand, self.device, *args, "--output-format=json"]
        if self._pin_supported(subcommand):
            argv.append(f"--output-format-version={PINNED_OUTPUT_FORMAT_VERSION}")
        done = self._run(argv)
        if done.returncode != 0:
            raise self._failure(subcommand, done)
        try:
            return json.loads(done.stdout.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise ProtocolError(self.address, f"nvme {subcommand}: output is not JSON ({exc})") from exc

    def smart_log(self, nsid: int = NSID_ALL) -> SmartLog:
        """Return the SMART / Health log as nvme-cli reports it."""
        args = [] if nsid == NSID_ALL else [f"--namespace-id={nsid}"]
        return self._parse(smart_log_from_json, self.report("smart-log", *args))

    def identify_controller(self) -> IdentifyController:
        """Return Identify Controller as nvme-cli reports it."""
        return self._parse(identify_controller_from_json, self.report("id-ctrl"))

    def identify_namespace(self, nsid: int = 1) -> IdentifyNamespace:
        """Return Identify Namespace of `nsid` as nvme-cli reports it."""
        return self._parse(identify_namespace_from_json, self.report("id-ns", f"--namespace-id={nsid}"))

    def error_log(self, entries: int | None = None) -> list[ErrorLogEntry]:
        """Return the Error Information log as nvme-cli reports it, empty slots dropped."""
        args = [] if entries is None else [f"--log-entries={entries}"]
        return self._parse(error_log_from_json, self.report("error-log", *args))

    def firmware_slot_log(self) -> FirmwareSlotLog:
        """Return the Firmware Slot Information log as nvme-cli reports it."""
        return self._parse(firmware_slot_log_from_json, self.report("fw-log"))

    # -- internals ---------------------------------------------------------------------------

    def _parse(self, parser: Callable[[Any], Any], doc: Any) -> Any:
        try:
            return parser(doc)
        except (StructureError, ValueError, TypeError, AttributeError) as exc:
            raise ProtocolError(self.address, f"nvme-cli JSON: {exc}") from exc

    def _namespace_node(self, nsid: int) -> str:
        if self._io_device is not None:
            return self._io_device
        name = os.path.basename(self.device)
        if _NAMESPACE_NODE.match(name):
            return self.device
        match = _CONTROLLER_NODE.match(name)
        if match is None:
            raise InstrumentError(self.address, f"cannot tell the namespace node for NSID {nsid}")
        folder = os.path.dirname(self.device) or "/dev"
        generic = os.path.join(folder, f"ng{match.group(1)}n{nsid}")
        return generic if os.path.exists(generic) else os.path.join(folder, f"nvme{match.group(1)}n{nsid}")

    def _pin_supported(self, subcommand: str) -> bool:
        if subcommand not in self._pins:
            done = self._run([self._nvme, subcommand, "--help"])
            text = (done.stdout + done.stderr).decode("utf-8", errors="replace")
            self._pins[subcommand] = "output-format-version" in text
        return self._pins[subcommand]

    def _passthru(
        self, verb: str, node: str, cmd: NvmeCommand, data: bytes | None
    ) -> tuple[Completion, bytes]:
        transfer = cmd.transfer
        if transfer is DataTransfer.BIDIRECTIONAL:
            raise ValueError(f"{self.address}: nvme-cli cannot move data both ways in one command")
        sends = transfer is DataTransfer.HOST_TO_CONTROLLER and cmd.data_len > 0
        if sends and (data is None or len(data) != cmd.data_len):
            raise ValueError(f"{self.address}: command sends {cmd.data_len} bytes, got {data!r:.40}")
        if not sends and data is not None:
            raise ValueError(f"{self.address}: data out given for a {transfer.name} command")
        long_running = verb == "admin-passthru" and cmd.opcode in LONG_RUNNING_ADMIN_OPCODES
        timeout_s = max(self._timeout_s, self._long_timeout_s) if long_running else self._timeout_s
        argv = [
            self._nvme,
            verb,
            node,
            f"--opcode={cmd.opcode:#x}",
            f"--namespace-id={cmd.nsid:#x}",
            f"--cdw2={cmd.cdw2:#x}",
            f"--cdw3={cmd.cdw3:#x}",
            *(f"--cdw{n}={getattr(cmd, f'cdw{n}'):#x}" for n in range(10, 16)),
            f"--timeout={round(timeout_s * 1000)}",
        ]
        if cmd.data_len:
            argv.append(f"--data-len={cmd.data_len}")
            # Written data arrives on standard input, read data leaves as raw bytes on stdout.
            argv.append("--write" if sends else "--read")
            if not sends:
                argv.append("--raw-binary")
        done = self._run(argv, data if sends else None, timeout_s)
        stderr = done.stderr.decode("utf-8", errors="replace")
        status_match = _STATUS.search(stderr)
        if status_match is not None:
            status = int(status_match.group(1), 16)
            if not 0 <= status <= 0x7FFF:
                raise ProtocolError(self.address, f"nvme {verb}: status {status:#x} is not 15 bits")
            completion = Completion.from_status(status, cid=cmd.cid)
            return completion, bytes(cmd.data_len) if transfer is DataTransfer.CONTROLLER_TO_HOST else b""
        if done.returncode != 0:
            raise self._failure(verb, done)
        result_match = _RESULT.search(stderr) or _RESULT.search(done.stdout.decode("ascii", errors="replace"))
        result = int(result_match.group(1), 16) & 0xFFFF_FFFF if result_match else 0
        completion = Completion.from_status(0, result=result, cid=cmd.cid)
        if transfer is not DataTransfer.CONTROLLER_TO_HOST or not cmd.data_len:
            return completion, b""
        if len(done.stdout) != cmd.data_len:
            raise ProtocolError(
                self.address, f"nvme {verb}: {len(done.stdout)} data bytes for a {cmd.data_len}-byte read"
            )
        return completion, done.stdout

    def _run(self, argv: list[str], stdin: bytes | None = None, timeout_s: float | None = None) -> CliResult:
        if self._closed:
            raise InstrumentError(self.address, "transport is closed")
        limit_s = self._timeout_s if timeout_s is None else timeout_s
        # The process gets a few seconds beyond the command's own timeout to report it.
        try:
            return self._runner(argv, stdin, limit_s + 5.0)
        except subprocess.TimeoutExpired as exc:
            raise InstrumentTimeout(self.address, f"{argv[1]}: no answer in {limit_s:g} s") from exc
        except OSError as exc:
            raise InstrumentError(self.address, f"cannot run {argv[0]}: {exc.strerror or exc}") from exc

    def _failure(self, what: str, done: CliResult) -> InstrumentError:
        message = done.stderr.decode("utf-8", errors="replace").strip() or f"exit code {done.returncode}"
        status = _STATUS.search(message)
        if status is not None:
            # The device answered with an error status: a device result, not a broken link.
            return DeviceCommandError(
                self.address, f"nvme {what}: {message}", status=int(status.group(1), 16)
            )
        return InstrumentError(self.address, f"nvme {what}: {message}")
