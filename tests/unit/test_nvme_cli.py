"""The nvme-cli transport: JSON of several nvme-cli releases parsed alike, and passthrough scripted.

Samples, each named by the release whose printer makes that shape:
- nvme-cli 2.3 (Debian bookworm's 2.4+really2.3-3): captured from QEMU 7.2's emulated NVMe
  controller in the guest of tests/tools/test_qemu_nvme.py; 128-bit counters as quoted strings.
- nvme-cli 1.x (nvme-print.c, own JSON printer): 128-bit counters through a long double,
  printed as plain numbers; error-log `status_field` is the whole Status Information word.
- later nvme-cli 2.x (util/json.c's string-to-number serializer): 128-bit counters as unquoted
  decimals of any size; error-log `status_field` without the phase tag, `phase_tag` beside it
  (2.x throughout).
- nvme-cli -H (verbose): critical_warning as an object; id-ns LBA formats in words.
- nvme-cli 3.x: reports nested in an array under a title key (obj_create in nvme-print-json.c).
- Vendor plugin smart-log (e.g. the Micron plugin): temperature_kelvin / temperature_celsius.
The passthrough tests script nvme-cli's stderr lines as 1.x and 2.x print them.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import DeviceCommandError, InstrumentError, InstrumentTimeout, ProtocolError
from drivers.nvme import commands as cmds
from drivers.nvme.commands import NvmeCommand
from drivers.nvme.controller import NvmeDriver
from drivers.nvme.structures import CriticalWarning, StructureError
from drivers.protocols import NvmeController
from drivers.transport.nvme_cli import (
    CliResult,
    NvmeCliTransport,
    error_log_from_json,
    firmware_slot_log_from_json,
    identify_controller_from_json,
    identify_namespace_from_json,
    json_temperature_k,
    json_uint,
    smart_log_from_json,
)
from drivers.transport.nvme_passthrough import NvmePassthrough

SMART_2_3: dict[str, Any] = {
    "critical_warning": 0,
    "temperature": 323,
    "avail_spare": 0,
    "spare_thresh": 0,
    "percent_used": 0,
    "endurance_grp_critical_warning_summary": 0,
    "data_units_read": "1",
    "data_units_written": "0",
    "host_read_commands": "2",
    "host_write_commands": "0",
    "controller_busy_time": "0",
    "power_cycles": "0",
    "power_on_hours": "0",
    "unsafe_shutdowns": "0",
    "media_errors": "0",
    "num_err_log_entries": "0",
    "warning_temp_time": 0,
    "critical_comp_time": 0,
    "thm_temp1_trans_count": 0,
    "thm_temp2_trans_count": 0,
    "thm_temp1_total_time": 0,
    "thm_temp2_total_time": 0,
}

SMART_1_X: dict[str, Any] = {
    "critical_warning": 4,
    "temperature": 310,
    "avail_spare": 100,
    "spare_thresh": 10,
    "percent_used": 3,
    "endurance_grp_critical_warning_summary": 0,
    "data_units_read": 1454046,
    "data_units_written": 1658016.0,
    "host_read_commands": 21916676,
    "host_write_commands": 34912549,
    "controller_busy_time": 3987,
    "power_cycles": 23,
    "power_on_hours": 696,
    "unsafe_shutdowns": 21,
    "media_errors": 0,
    "num_err_log_entries": 12,
    "warning_temp_time": 0,
    "critical_comp_time": 0,
    "temperature_sensor_1": 310,
    "temperature_sensor_2": 318,
    "thm_temp1_trans_count": 0,
    "thm_temp2_trans_count": 0,
    "thm_temp1_total_time": 0,
    "thm_temp2_total_time": 0,
}

BIG = 2**64 + 7  # a counter only the unquoted-decimal printer carries exactly


def _smart_2_x_unquoted() -> dict[str, Any]:
    doc = copy.deepcopy(SMART_2_3)
    doc.update(
        {
            "data_units_read": BIG,
            "data_units_written": 12,
            "host_read_commands": 2,
            "power_on_hours": 43800,
            "temperature_sensor_3": 333,
            "op_lifetime_energy_consumed": 0,
            "interval_power_measurement": 0,
        }
    )
    return doc


def test_smart_2_3_quoted_counters() -> None:
    log = smart_log_from_json(SMART_2_3)
    assert log.temperature_k == 323
    assert log.critical_warning == 0
    assert (log.data_units_read, log.host_read_commands) == (1, 2)
    assert log.temperature_sensors_k == (None,) * 8


def test_smart_1_x_long_double_counters_and_sensors() -> None:
    log = smart_log_from_json(SMART_1_X)
    assert log.critical_warning == CriticalWarning.RELIABILITY_DEGRADED
    assert log.data_units_written == 1658016
    assert log.num_err_log_entries == 12
    assert log.temperature_sensors_k == (310, 318, None, None, None, None, None, None)
    assert log.available_spare_pct == 100 and log.percentage_used_pct == 3


def test_smart_2_x_unquoted_counters_beyond_64_bits() -> None:
    log = smart_log_from_json(_smart_2_x_unquoted())
    assert log.data_units_read == BIG
    assert log.power_on_hours == 43800
    assert log.temperature_sensors_k[2] == 333


def test_smart_verbose_critical_warning_object() -> None:
    doc = copy.deepcopy(SMART_2_3)
    doc["critical_warning"] = {
        "value": 5,
        "available_spare": 1,
        "temp_threshold": 0,
        "reliability_degraded": 1,
        "ro": 0,
        "vmbu_failed": 0,
        "pmr_ro": 0,
    }
    assert smart_log_from_json(doc).critical_warning == 5
    # Without "value", the bits decide.
    del doc["critical_warning"]["value"]
    doc["critical_warning"]["ro"] = 1
    assert smart_log_from_json(doc).critical_warning == 0b1101


def test_smart_nested_under_a_title_key() -> None:
    doc = {"SMART/Health Information Log": [copy.deepcopy(SMART_2_3)]}
    assert smart_log_from_json(doc).temperature_k == 323
    doc_object = {"nvme0": copy.deepcopy(SMART_2_3)}
    assert smart_log_from_json(doc_object).temperature_k == 323


def test_smart_vendor_plugin_celsius_and_kelvin_keys() -> None:
    doc = copy.deepcopy(SMART_2_3)
    del doc["temperature"]
    doc["temperature_celsius"] = 40
    assert smart_log_from_json(doc).temperature_k == 313
    doc["temperature_kelvin"] = 314
    assert smart_log_from_json(doc).temperature_k == 314


def test_smart_counters_in_hex_and_hi_lo_objects() -> None:
    doc = copy.deepcopy(SMART_2_3)
    doc["media_errors"] = "0x10"
    doc["data_units_written"] = {"hi": 1, "lo": 5}
    log = smart_log_from_json(doc)
    assert log.media_errors == 16
    assert log.data_units_written == 2**64 + 5


def test_smart_missing_counter_names_the_key() -> None:
    doc = copy.deepcopy(SMART_2_3)
    del doc["media_errors"]
    with pytest.raises(StructureError, match="media_errors"):
        smart_log_from_json(doc)
    with pytest.raises(StructureError, match="no 'critical_warning' report"):
        smart_log_from_json({"error": "nothing"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (323, 323),
        (323.0, 323),
        ("323", 323),
        ("313 K", 313),
        ("313 Kelvin", 313),
        ("40 °C", 313),
        ("40°C (313 K)", 313),
        ("40 C", 313),
        ("40 Celsius", 313),
        (40, 313),  # below 200 K no drive works: Celsius
        (-5, 268),
        (0, 0),  # NVMe's "not reported"
        ({"kelvin": 300}, 300),
        ({"celsius": 27}, 300),
    ],
)
def test_temperatures_in_every_printed_form(value: Any, expected: int) -> None:
    assert json_temperature_k(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (12.0, 12),
        ("12", 12),
        ("12.000000", 12),
        ("0x1F", 31),
        ("1,234", 1234),
        ("512 bytes", 512),
        ("100%", 100),
        (str(2**100), 2**100),
        (True, 1),
        ({"value": 3}, 3),
    ],
)
def test_integers_in_every_printed_form(value: Any, expected: int) -> None:
    assert json_uint(value) == expected


@pytest.mark.parametrize("value", ["n/a", None, [], -1, float("nan"), {"x": 1}])
def test_non_numbers_are_refused(value: Any) -> None:
    with pytest.raises(StructureError):
        json_uint(value)


ID_CTRL_2_3: dict[str, Any] = {
    "vid": 6966,
    "ssvid": 6900,
    "sn": "QUALIFYDUT          ",
    "mn": "QEMU NVMe Ctrl                          ",
    "fr": "7.2.22  ",
    "rab": 6,
    "ieee": 5395456,
    "cmic": 0,
    "mdts": 7,
    "cntlid": 0,
    "ver": 66560,
    "rtd3r": 0,
    "rtd3e": 0,
    "oaes": 256,
    "ctratt": 32768,
    "oacs": 266,
    "acl": 3,
    "aerl": 3,
    "frmw": 3,
    "lpa": 7,
    "elpe": 0,
    "npss": 0,
    "avscc": 0,
    "apsta": 0,
    "wctemp": 343,
    "cctemp": 373,
    "mtfa": 0,
    "hmpre": 0,
    "hmmin": 0,
    "tnvmcap": "0",
    "unvmcap": "0",
    "sanicap": 0,
    "sqes": 102,
    "cqes": 68,
    "maxcmd": 0,
    "nn": 256,
    "oncs": 349,
    "fuses": 0,
    "fna": 0,
    "vwc": 7,
    "awun": 0,
    "awupf": 0,
    "icsvscc": 0,
    "nwpc": 0,
    "acwu": 0,
    "ocfs": 3,
    "sgls": 1,
    "mnan": 0,
    "subnqn": "nqn.2019-08.org.qemu:QUALIFYDUT",
    "psds": [{"max_power": 2500, "flags": 0}],
}


def test_id_ctrl_2_3() -> None:
    ident = identify_controller_from_json(ID_CTRL_2_3)
    assert ident.serial_number == "QUALIFYDUT"
    assert ident.model_number == "QEMU NVMe Ctrl"
    assert ident.firmware_revision == "7.2.22"
    assert ident.version == (1, 4, 0)
    assert ident.ieee_oui == 0x525400
    assert (ident.wctemp_k, ident.cctemp_k) == (343, 373)
    assert (ident.oacs, ident.oncs, ident.vwc, ident.sqes, ident.cqes) == (266, 349, 7, 102, 68)
    assert ident.subnqn == "nqn.2019-08.org.qemu:QUALIFYDUT"


def test_id_ctrl_older_release_without_late_fields() -> None:
    doc = {k: v for k, v in ID_CTRL_2_3.items() if k not in ("ocfs", "mnan", "icsvscc", "nwpc", "acwu")}
    doc["tnvmcap"] = 1.0e12  # 1.x: long double
    ident = identify_controller_from_json(doc)
    assert (ident.ocfs, ident.mnan) == (0, 0)
    assert ident.tnvmcap_bytes == 10**12
    with pytest.raises(StructureError, match="sn"):
        identify_controller_from_json({k: v for k, v in ID_CTRL_2_3.items() if k != "sn"})


ID_NS_2_3: dict[str, Any] = {
    "nsze": 131072,
    "ncap": 131072,
    "nuse": 131072,
    "nsfeat": 20,
    "nlbaf": 7,
    "flbas": 4,
    "mc": 3,
    "dpc": 31,
    "dps": 0,
    "nmic": 0,
    "rescap": 0,
    "dlfeat": 1,
    "nvmcap": "0",
    "eui64": "0000000000000000",
    "nguid": "00000000000000000000000000000000",
    "lbafs": [{"ms": ms, "ds": ds, "rp": 0} for ds in (9, 12) for ms in (0, 8, 16, 64)],
}


def test_id_ns_2_3_lba_formats() -> None:
    ns = identify_namespace_from_json(ID_NS_2_3)
    assert ns.lba_format_count == 8
    assert ns.formatted_lba_index == 4
    assert ns.block_size_bytes == 4096
    assert [f.metadata_size_bytes for f in ns.lba_formats[:4]] == [0, 8, 16, 64]


def test_id_ns_verbose_lba_formats_in_words() -> None:
    doc = copy.deepcopy(ID_NS_2_3)
    doc["nguid"] = "0123456789abcdef0123456789abcdef"
    doc["lbafs"] = [
        {
            "LBA Format": 0,
            "Metadata Size": "0 bytes",
            "Data Size": "512 bytes",
            "Relative Performance": "0x2 Good",
        },
        {
            "LBA Format": 1,
            "Metadata Size": "8 bytes",
            "Data Size": "4096 bytes",
            "Relative Performance": "0 Best",
        },
    ]
    doc["nlbaf"] = 1
    doc["flbas"] = 1
    ns = identify_namespace_from_json(doc)
    assert [(f.block_size_bytes, f.metadata_size_bytes) for f in ns.lba_formats] == [(512, 0), (4096, 8)]
    assert ns.lba_formats[0].relative_performance == 2
    assert ns.nguid == bytes.fromhex("0123456789abcdef0123456789abcdef")


def test_error_log_2_x_status_without_phase() -> None:
    doc = {
        "errors": [
            {
                "error_count": 5,
                "sqid": 1,
                "cmdid": 77,
                "status_field": 0x4281,  # DNR | SCT 2 | SC 81h, phase tag apart
                "phase_tag": 1,
                "parm_error_location": 0xFFFF,
                "lba": 4096,
                "nsid": 1,
                "vs": 0,
                "trtype": 0,
                "cs": 0,
                "trtype_spec_info": 0,
            },
            {"error_count": 0, "sqid": 0, "cmdid": 0, "status_field": 0, "phase_tag": 0},
        ]
    }
    entries = error_log_from_json(doc)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.error_count, entry.cid, entry.status, entry.phase, entry.lba) == (5, 77, 0x4281, True, 4096)
    assert entry.status_text == "Unrecovered Read Error (SCT 2, SC 81h)"


def test_error_log_1_x_whole_status_word_and_upper_case_nsid() -> None:
    doc = {
        "errors": [{"error_count": 5, "sqid": 1, "cmdid": 77, "status_field": (0x4281 << 1) | 1, "NSID": 3}]
    }
    entry = error_log_from_json(doc)[0]
    assert (entry.status, entry.phase, entry.nsid) == (0x4281, True, 3)


def test_fw_log_2_3() -> None:
    doc = {
        "nvme2": {"Active Firmware Slot (afi)": 1, "Firmware Rev Slot 1": "2314885530819505713 (1.0.....)"}
    }
    log = firmware_slot_log_from_json(doc)
    assert (log.active_slot, log.next_active_slot, log.active_revision) == (1, None, "1.0")
    assert log.revisions[1:] == (None,) * 6


class FakeNvmeCli:
    """Scripted nvme-cli: answers each run with the next result; records argv and stdin."""

    def __init__(self, *results: CliResult | BaseException, help_text: bytes = b"") -> None:
        self.results = list(results)
        self.help_text = help_text
        self.runs: list[tuple[list[str], bytes | None, float]] = []

    def __call__(self, argv: Sequence[str], stdin: bytes | None, timeout_s: float) -> CliResult:
        if "--help" in argv:
            return CliResult(0, self.help_text, b"")
        self.runs.append((list(argv), stdin, timeout_s))
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


def _ok(stdout: bytes = b"", stderr: bytes = b"") -> CliResult:
    return CliResult(0, stdout, stderr)


def test_transport_satisfies_both_protocols() -> None:
    transport = NvmeCliTransport("/dev/nvme0", runner=FakeNvmeCli())
    assert isinstance(transport, NvmePassthrough)
    assert isinstance(transport, NvmeController)
    assert transport.address == "nvme-cli:/dev/nvme0"


def test_admin_read_passes_every_dword_and_returns_raw_bytes() -> None:
    page = bytes(range(256)) * 16
    cli = FakeNvmeCli(_ok(page, b"Admin Command Identify is Success and result: 0x00000000\n"))
    transport = NvmeCliTransport("/dev/nvme0", runner=cli)
    completion, data = transport.admin(NvmeCommand(opcode=0x06, cdw10=1, data_len=4096, cid=3))
    assert completion.ok and completion.cid == 3 and data == page
    argv, stdin, timeout_s = cli.runs[0]
    assert argv[:3] == ["nvme", "admin-passthru", "/dev/nvme0"]
    assert "--opcode=0x6" in argv and "--namespace-id=0x0" in argv and "--cdw10=0x1" in argv
    assert {"--data-len=4096", "--read", "--raw-binary", "--timeout=60000"} <= set(argv)
    assert stdin is None and timeout_s > 60


@pytest.mark.parametrize(
    "stderr",
    [
        b"Admin Command Get Features is Success and result: 0x00000157\n",  # 2.x
        b"NVMe command result:00000157\n",  # 1.x
    ],
)
def test_completion_dw0_from_either_release(stderr: bytes) -> None:
    transport = NvmeCliTransport("/dev/nvme0", runner=FakeNvmeCli(_ok(b"", stderr)))
    driver = NvmeDriver(transport)
    assert driver.get_temperature_threshold() == 0x157


@pytest.mark.parametrize(
    "stderr",
    [
        b"NVMe status: Invalid Field in Command: A reserved coded value or an unsupported value"
        b" in a defined field(0x4002)\n",  # 2.x
        b"NVMe status: INVALID_FIELD: A reserved coded value or an unsupported value in a defined field(4002)\n",
    ],
)
def test_device_status_becomes_a_completion(stderr: bytes) -> None:
    transport = NvmeCliTransport("/dev/nvme0", runner=FakeNvmeCli(CliResult(2, b"", stderr)))
    completion, data = transport.admin(cmds.smart_log())
    assert (completion.sct, completion.sc, completion.dnr) == (0, 0x02, True)
    assert data == bytes(512)


def test_write_sends_data_on_stdin_and_format_gets_the_long_timeout() -> None:
    cli = FakeNvmeCli(_ok(b"", b"IO Command Write is Success and result: 0x00000000\n"), _ok())
    transport = NvmeCliTransport("/dev/nvme0", io_device="/dev/ng0n1", runner=cli, long_timeout_s=900)
    transport.io(cmds.write(1, 8, 1, 512), b"\xa5" * 512)
    transport.admin(cmds.format_nvm(1, 4))
    write_argv, write_stdin, _ = cli.runs[0]
    assert write_argv[1:3] == ["io-passthru", "/dev/ng0n1"]
    assert {"--write", "--data-len=512", "--cdw10=0x8", "--namespace-id=0x1"} <= set(write_argv)
    assert "--raw-binary" not in write_argv and write_stdin == b"\xa5" * 512
    format_argv, _, format_timeout_s = cli.runs[1]
    assert "--timeout=900000" in format_argv and "--cdw10=0x4" in format_argv
    assert format_timeout_s > 900


def test_io_node_defaults_to_the_generic_node_when_present(tmp_path: Path) -> None:
    device = str(tmp_path / "nvme0")
    cli = FakeNvmeCli(_ok(), _ok())
    transport = NvmeCliTransport(device, runner=cli)
    transport.io(cmds.flush(2))
    (tmp_path / "ng0n2").touch()
    transport.io(cmds.flush(2))
    assert [run[0][2] for run in cli.runs] == [str(tmp_path / "nvme0n2"), str(tmp_path / "ng0n2")]


def test_link_failures_raise() -> None:
    failing = NvmeCliTransport(
        "/dev/nvme0", runner=FakeNvmeCli(CliResult(1, b"", b"passthru: Invalid argument\n"))
    )
    with pytest.raises(InstrumentError, match="Invalid argument"):
        failing.admin(cmds.identify_controller())
    slow = FakeNvmeCli(subprocess.TimeoutExpired(["nvme"], 65))
    with pytest.raises(InstrumentTimeout, match="no answer"):
        NvmeCliTransport("/dev/nvme0", runner=slow).admin(cmds.identify_controller())
    missing = FakeNvmeCli(FileNotFoundError(2, "No such file or directory"))
    with pytest.raises(InstrumentError, match="cannot run nvme"):
        NvmeCliTransport("/dev/nvme0", runner=missing).admin(cmds.identify_controller())


def test_short_raw_output_is_a_protocol_error() -> None:
    transport = NvmeCliTransport("/dev/nvme0", runner=FakeNvmeCli(_ok(b"\x00" * 100)))
    with pytest.raises(ProtocolError, match="100 data bytes for a 4096-byte read"):
        transport.admin(cmds.identify_controller())


def test_reports_pin_the_output_format_version_where_nvme_cli_has_it() -> None:
    import json

    newer = FakeNvmeCli(_ok(json.dumps(SMART_2_3).encode()), help_text=b"  --output-format-version=<NUM>")
    NvmeCliTransport("/dev/nvme0", runner=newer).smart_log()
    assert "--output-format-version=1" in newer.runs[0][0]
    older = FakeNvmeCli(_ok(json.dumps(SMART_1_X).encode()), help_text=b"  --output-format=<FMT>, -o <FMT>")
    log = NvmeCliTransport("/dev/nvme0", runner=older).smart_log()
    assert older.runs[0][0] == ["nvme", "smart-log", "/dev/nvme0", "--output-format=json"]
    assert log.num_err_log_entries == 12


def test_report_failures_name_device_statuses() -> None:
    cli = FakeNvmeCli(
        CliResult(1, b"", b"NVMe status: Invalid Field in Command: ...(0x4002)\n"),
        _ok(b"not json"),
    )
    transport = NvmeCliTransport("/dev/nvme0", runner=cli)
    with pytest.raises(DeviceCommandError) as info:
        transport.report("self-test-log")
    assert info.value.status == 0x4002
    with pytest.raises(ProtocolError, match="not JSON"):
        transport.report("smart-log")


def test_version_and_closed_transport() -> None:
    cli = FakeNvmeCli(_ok(b"nvme version 2.3 (git 2.3)\nlibnvme version 1.3 (git 1.3)\n"))
    transport = NvmeCliTransport("/dev/nvme0", runner=cli)
    assert transport.version() == (2, 3)
    transport.close()
    with pytest.raises(InstrumentError, match="closed"):
        transport.version()
