"""Decoders of the SMART log and Identify pages against byte fixtures built from the spec.

Each fixture is written here with struct at the offsets of the NVMe Base Specification 2.0
(SMART / Health log, Identify Controller) and NVM Command Set Specification 1.0 (Identify
Namespace), never with the encoders under test.
"""

from __future__ import annotations

import struct

import pytest

from drivers.nvme.structures import (
    CriticalWarning,
    IdentifyController,
    IdentifyNamespace,
    LbaFormat,
    RelativePerformance,
    SmartLog,
    StructureError,
    decode_version,
)

BIG = 2**64 + 12345  # above 64 bits, so a decoder reading only 8 of the 16 bytes fails


def _u128(buf: bytearray, offset: int, value: int) -> None:
    struct.pack_into("<QQ", buf, offset, value & (2**64 - 1), value >> 64)


def smart_fixture() -> bytes:
    page = bytearray(512)
    page[0] = 0b0010_1001  # spare, read-only, PMR read-only
    struct.pack_into("<H", page, 1, 0x0143)  # 323 K
    page[3] = 87  # available spare %
    page[4] = 10  # available spare threshold %
    page[5] = 255  # percentage used, saturated
    page[6] = 0x04  # endurance group critical warning summary
    _u128(page, 32, BIG + 1)  # data units read
    _u128(page, 48, BIG + 2)  # data units written
    _u128(page, 64, BIG + 3)  # host read commands
    _u128(page, 80, BIG + 4)  # host write commands
    _u128(page, 96, 5_000)  # controller busy time, minutes
    _u128(page, 112, 1_234)  # power cycles
    _u128(page, 128, 43_800)  # power-on hours
    _u128(page, 144, 17)  # unsafe shutdowns
    _u128(page, 160, BIG + 5)  # media and data integrity errors
    _u128(page, 176, 99)  # error log entries
    struct.pack_into("<I", page, 192, 61)  # warning composite temperature time
    struct.pack_into("<I", page, 196, 7)  # critical composite temperature time
    struct.pack_into("<8H", page, 200, 300, 0, 310, 0, 0, 0, 0, 0x0157)  # sensors 1-8
    struct.pack_into("<IIII", page, 216, 11, 12, 13_000, 14_000)  # TMT1/2 counts, times
    return bytes(page)


def test_smart_log_decodes_every_field() -> None:
    log = SmartLog.from_bytes(smart_fixture())
    assert log.critical_warning == 0b0010_1001
    assert log.temperature_k == 323
    assert log.temperature_c == pytest.approx(49.85)
    assert log.available_spare_pct == 87
    assert log.available_spare_threshold_pct == 10
    assert log.percentage_used_pct == 255
    assert log.endurance_group_critical_warning == 0x04
    assert log.data_units_read == BIG + 1
    assert log.data_units_written == BIG + 2
    assert log.host_read_commands == BIG + 3
    assert log.host_write_commands == BIG + 4
    assert log.controller_busy_time_min == 5_000
    assert log.power_cycles == 1_234
    assert log.power_on_hours == 43_800
    assert log.unsafe_shutdowns == 17
    assert log.media_errors == BIG + 5
    assert log.num_err_log_entries == 99
    assert log.warning_temp_time_min == 61
    assert log.critical_temp_time_min == 7
    assert log.temperature_sensors_k == (300, None, 310, None, None, None, None, 343)
    assert log.thermal_mgmt_temp1_transitions == 11
    assert log.thermal_mgmt_temp2_transitions == 12
    assert log.thermal_mgmt_temp1_time_s == 13_000
    assert log.thermal_mgmt_temp2_time_s == 14_000


def test_smart_log_names_each_critical_warning_bit() -> None:
    log = SmartLog.from_bytes(smart_fixture())
    assert log.spare_below_threshold is True
    assert log.temperature_warning is False
    assert log.reliability_degraded is False
    assert log.read_only is True
    assert log.volatile_backup_failed is False
    assert log.pmr_read_only is True
    assert CriticalWarning.READ_ONLY in log.critical_warning


@pytest.mark.parametrize(
    ("bit", "name"),
    [
        (0, "spare_below_threshold"),
        (1, "temperature_warning"),
        (2, "reliability_degraded"),
        (3, "read_only"),
        (4, "volatile_backup_failed"),
        (5, "pmr_read_only"),
    ],
)
def test_each_critical_warning_bit_maps_to_one_flag(bit: int, name: str) -> None:
    page = bytearray(512)
    page[0] = 1 << bit
    log = SmartLog.from_bytes(bytes(page))
    flags = [
        "spare_below_threshold",
        "temperature_warning",
        "reliability_degraded",
        "read_only",
        "volatile_backup_failed",
        "pmr_read_only",
    ]
    assert {f for f in flags if getattr(log, f)} == {name}


def test_smart_log_converts_units() -> None:
    log = SmartLog.from_bytes(smart_fixture())
    assert log.data_read_bytes == (BIG + 1) * 512_000
    assert log.data_written_bytes == (BIG + 2) * 512_000
    sensors_c = log.temperature_sensors_c
    assert sensors_c[0] == pytest.approx(26.85)
    assert sensors_c[1] is None
    assert sensors_c[7] == pytest.approx(69.85)


def test_smart_log_encoder_reproduces_the_spec_fixture() -> None:
    fixture = smart_fixture()
    assert SmartLog.from_bytes(fixture).to_bytes() == fixture


@pytest.mark.parametrize("length", [0, 511, 513, 4096])
def test_smart_log_rejects_wrong_length_naming_the_structure(length: int) -> None:
    with pytest.raises(StructureError, match="SmartLog: expected 512 bytes"):
        SmartLog.from_bytes(bytes(length))
    assert issubclass(StructureError, ValueError)


def _ascii(buf: bytearray, offset: int, length: int, text: str) -> None:
    buf[offset : offset + length] = text.encode("ascii").ljust(length, b" ")


TNVMCAP = 2**65 + 3_840_755_982_336


def identify_controller_fixture() -> bytes:
    page = bytearray(4096)
    struct.pack_into("<HH", page, 0, 0x144D, 0x108E)  # VID, SSVID
    _ascii(page, 4, 20, "S5RTNC0T104269")  # SN
    _ascii(page, 24, 40, "SAMSUNG MZWLJ7T6HALA-00AU3")  # MN
    _ascii(page, 64, 8, "EPK9CR5Q")  # FR, exactly 8: no padding
    page[72] = 8  # RAB
    page[73:76] = bytes([0x38, 0x25, 0x00])  # IEEE OUI 002538h, least significant byte first
    page[76] = 0x01  # CMIC
    page[77] = 9  # MDTS
    struct.pack_into("<H", page, 78, 0x41)  # CNTLID
    struct.pack_into("<I", page, 80, 0x00020000)  # VER 2.0.0
    struct.pack_into("<IIII", page, 84, 15_000_000, 10_000_000, 0x300, 0x80)  # RTD3R/E OAES CTRATT
    struct.pack_into("<H", page, 256, 0x005F)  # OACS
    page[258:266] = bytes([3, 7, 0x17, 0x0E, 63, 4, 1, 0x01])  # ACL..APSTA
    struct.pack_into("<HHH", page, 266, 0x0157, 0x0166, 100)  # WCTEMP 343, CCTEMP 358, MTFA
    struct.pack_into("<II", page, 272, 2048, 1024)  # HMPRE, HMMIN
    _u128(page, 280, TNVMCAP)  # TNVMCAP
    _u128(page, 296, 4096)  # UNVMCAP
    struct.pack_into("<I", page, 328, 0xA000_0003)  # SANICAP
    page[512] = 0x66  # SQES
    page[513] = 0x44  # CQES
    struct.pack_into("<H", page, 514, 256)  # MAXCMD
    struct.pack_into("<I", page, 516, 32)  # NN
    struct.pack_into("<HH", page, 520, 0x005F, 0x0001)  # ONCS, FUSES
    page[524] = 0x04  # FNA
    page[525] = 0x07  # VWC
    struct.pack_into("<HH", page, 526, 255, 7)  # AWUN, AWUPF
    page[530] = 1  # ICSVSCC
    page[531] = 0  # NWPC
    struct.pack_into("<HH", page, 532, 3, 0)  # ACWU, OCFS
    struct.pack_into("<II", page, 536, 0x000F_0001, 16)  # SGLS, MNAN
    nqn = b"nqn.1994-11.com.samsung:nvme:PM1733:2.5-inch:S5RTNC0T104269"
    page[768 : 768 + len(nqn)] = nqn
    return bytes(page)


def test_identify_controller_decodes_every_field() -> None:
    ident = IdentifyController.from_bytes(identify_controller_fixture())
    assert ident.vid == 0x144D
    assert ident.ssvid == 0x108E
    assert ident.serial_number == "S5RTNC0T104269"
    assert ident.model_number == "SAMSUNG MZWLJ7T6HALA-00AU3"
    assert ident.firmware_revision == "EPK9CR5Q"
    assert ident.rab == 8
    assert ident.ieee_oui == 0x002538
    assert ident.cmic == 0x01
    assert ident.mdts == 9
    assert ident.cntlid == 0x41
    assert ident.version == (2, 0, 0)
    assert ident.version_str == "2.0.0"
    assert ident.rtd3r_us == 15_000_000
    assert ident.rtd3e_us == 10_000_000
    assert ident.oaes == 0x300
    assert ident.ctratt == 0x80
    assert ident.oacs == 0x005F
    assert (ident.acl, ident.aerl, ident.frmw, ident.lpa) == (3, 7, 0x17, 0x0E)
    assert (ident.elpe, ident.npss, ident.avscc, ident.apsta) == (63, 4, 1, 0x01)
    assert ident.wctemp_k == 343
    assert ident.cctemp_k == 358
    assert ident.wctemp_c == pytest.approx(69.85)
    assert ident.cctemp_c == pytest.approx(84.85)
    assert ident.mtfa == 100
    assert (ident.hmpre, ident.hmmin) == (2048, 1024)
    assert ident.tnvmcap_bytes == TNVMCAP
    assert ident.unvmcap_bytes == 4096
    assert ident.sanicap == 0xA000_0003
    assert (ident.sqes, ident.cqes, ident.maxcmd) == (0x66, 0x44, 256)
    assert ident.nn == 32
    assert (ident.oncs, ident.fuses, ident.fna, ident.vwc) == (0x005F, 0x0001, 0x04, 0x07)
    assert (ident.awun, ident.awupf, ident.icsvscc, ident.nwpc) == (255, 7, 1, 0)
    assert (ident.acwu, ident.ocfs, ident.sgls, ident.mnan) == (3, 0, 0x000F_0001, 16)
    assert ident.subnqn == "nqn.1994-11.com.samsung:nvme:PM1733:2.5-inch:S5RTNC0T104269"
    assert ident.volatile_write_cache_present is True
    assert ident.smart_per_namespace is False  # LPA 0x0E has bit 0 clear
    assert ident.max_data_transfer_bytes() == 4096 << 9


def test_identify_controller_strips_nul_padding_and_reads_older_versions() -> None:
    page = bytearray(identify_controller_fixture())
    page[4:24] = b"SN-NUL".ljust(20, b"\x00")
    page[64:72] = b"1.0".ljust(8, b" ")
    struct.pack_into("<I", page, 80, 0x00010400)
    page[77] = 0
    ident = IdentifyController.from_bytes(bytes(page))
    assert ident.serial_number == "SN-NUL"
    assert ident.firmware_revision == "1.0"
    assert ident.version == (1, 4, 0)
    assert ident.max_data_transfer_bytes() is None


def test_identify_controller_encoder_reproduces_the_spec_fixture() -> None:
    fixture = identify_controller_fixture()
    assert IdentifyController.from_bytes(fixture).to_bytes() == fixture


@pytest.mark.parametrize("length", [512, 4095, 4097])
def test_identify_controller_rejects_wrong_length(length: int) -> None:
    with pytest.raises(StructureError, match="IdentifyController: expected 4096 bytes"):
        IdentifyController.from_bytes(bytes(length))


@pytest.mark.parametrize(
    ("ver", "expected"),
    [(0x00020000, (2, 0, 0)), (0x00010302, (1, 3, 2)), (0x00020100, (2, 1, 0))],
)
def test_decode_version(ver: int, expected: tuple[int, int, int]) -> None:
    assert decode_version(ver) == expected


NGUID = bytes(range(0x10, 0x20))
EUI64 = bytes(range(0xA0, 0xA8))


def identify_namespace_fixture(nlbaf: int = 1, flbas: int = 0x01) -> bytes:
    page = bytearray(4096)
    struct.pack_into("<QQQ", page, 0, 937_684_566, 937_684_000, 12_345_678)  # NSZE NCAP NUSE
    page[24] = 0x1A  # NSFEAT
    page[25] = nlbaf  # NLBAF, 0's based
    page[26] = flbas  # FLBAS
    page[27:32] = bytes([0x03, 0x1F, 0x01, 0x01, 0xFF])  # MC DPC DPS NMIC RESCAP
    _u128(page, 48, 937_684_566 * 4096)  # NVMCAP
    page[104:120] = NGUID
    page[120:128] = EUI64
    struct.pack_into("<I", page, 128, (9 << 16) | (2 << 24))  # LBAF0: 512 B, no MD, good
    struct.pack_into("<I", page, 132, 8 | (12 << 16) | (0 << 24))  # LBAF1: 4 KiB + 8 B, best
    return bytes(page)


def test_identify_namespace_decodes_every_field() -> None:
    ns = IdentifyNamespace.from_bytes(identify_namespace_fixture())
    assert ns.nsze_blocks == 937_684_566
    assert ns.ncap_blocks == 937_684_000
    assert ns.nuse_blocks == 12_345_678
    assert ns.nsfeat == 0x1A
    assert ns.nlbaf == 1
    assert ns.lba_format_count == 2
    assert ns.flbas == 0x01
    assert (ns.mc, ns.dpc, ns.dps, ns.nmic, ns.rescap) == (0x03, 0x1F, 0x01, 0x01, 0xFF)
    assert ns.nvmcap_bytes == 937_684_566 * 4096
    assert ns.nguid == NGUID
    assert ns.eui64 == EUI64
    assert ns.lba_formats == (
        LbaFormat(0, 9, RelativePerformance.GOOD),
        LbaFormat(8, 12, RelativePerformance.BEST),
    )
    assert [f.block_size_bytes for f in ns.lba_formats] == [512, 4096]
    assert ns.formatted_lba_index == 1
    assert ns.metadata_extended is False
    assert ns.block_size_bytes == 4096
    assert ns.active_lba_format.metadata_size_bytes == 8
    assert ns.size_bytes == 937_684_566 * 4096


def test_identify_namespace_uses_flbas_upper_bits_past_16_formats() -> None:
    page = bytearray(identify_namespace_fixture(nlbaf=19, flbas=0x10 | (0b01 << 5) | 0x2))
    struct.pack_into("<I", page, 128 + 4 * 18, 13 << 16)  # LBAF18: 8 KiB
    ns = IdentifyNamespace.from_bytes(bytes(page))
    assert ns.formatted_lba_index == 18
    assert ns.metadata_extended is True
    assert ns.block_size_bytes == 8192
    assert len(ns.lba_formats) == 20


def test_identify_namespace_ignores_flbas_upper_bits_with_16_or_fewer_formats() -> None:
    ns = IdentifyNamespace.from_bytes(identify_namespace_fixture(nlbaf=1, flbas=0x61))
    assert ns.formatted_lba_index == 1


def test_identify_namespace_rejects_flbas_beyond_the_reported_formats() -> None:
    with pytest.raises(StructureError, match="FLBAS selects LBA format 3 of 2"):
        IdentifyNamespace.from_bytes(identify_namespace_fixture(nlbaf=1, flbas=0x03))


def test_identify_namespace_encoder_reproduces_the_spec_fixture() -> None:
    fixture = identify_namespace_fixture()
    assert IdentifyNamespace.from_bytes(fixture).to_bytes() == fixture


@pytest.mark.parametrize("length", [0, 4095, 8192])
def test_identify_namespace_rejects_wrong_length(length: int) -> None:
    with pytest.raises(StructureError, match="IdentifyNamespace: expected 4096 bytes"):
        IdentifyNamespace.from_bytes(bytes(length))
