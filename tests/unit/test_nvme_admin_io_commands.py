"""Builders of the log, format, sanitize, self-test, firmware and NVM I/O commands, bit by bit.

Each expected dword is written from the field positions of the NVM Express Base Specification
2.0 and the NVM Command Set Specification 1.0, and checked in the encoded 64-byte SQE too.
"""

from __future__ import annotations

import struct

import pytest

from drivers.nvme import commands as cmds
from drivers.nvme.commands import (
    CommitAction,
    DataTransfer,
    DsmRange,
    NvmeCommand,
    SanitizeAction,
    SecureErase,
    SelfTestCode,
)


def _sqe_dwords(cmd: NvmeCommand) -> tuple[int, ...]:
    return struct.unpack_from("<6I", cmd.to_bytes(), 40)


def test_error_log_reads_64_bytes_an_entry() -> None:
    cmd = cmds.error_log(4)
    assert (cmd.opcode, cmd.nsid, cmd.data_len) == (0x02, 0xFFFFFFFF, 256)
    assert cmd.cdw10 == (63 << 16) | 0x01  # NUMDL 63 (64 dwords, 0's based), LID 01h
    with pytest.raises(ValueError, match="at least one"):
        cmds.error_log(0)


@pytest.mark.parametrize(
    ("builder", "lid", "size", "nsid"),
    [
        (cmds.firmware_slot_log, 0x03, 512, 0xFFFFFFFF),
        (cmds.self_test_log, 0x06, 564, 0xFFFFFFFF),
        (cmds.sanitize_status_log, 0x81, 512, 0),
        (cmds.ocp_smart_extended_log, 0xC0, 512, 0xFFFFFFFF),
    ],
)
def test_log_page_builders_name_lid_and_size(builder: object, lid: int, size: int, nsid: int) -> None:
    assert callable(builder)
    cmd = builder()
    assert cmd.opcode == 0x02
    assert cmd.cdw10 & 0xFF == lid
    assert (cmd.cdw10 >> 16) + 1 == size // 4
    assert (cmd.nsid, cmd.data_len) == (nsid, size)


def test_telemetry_host_log_sets_create_only_when_asked() -> None:
    first = cmds.telemetry_host_log(create=True)
    assert first.cdw10 == 0x07 | (1 << 8) | (127 << 16)  # LSP bit 0: create host-initiated data
    later = cmds.telemetry_host_log(offset_bytes=4096, length_bytes=8192)
    assert later.cdw10 == 0x07 | (2047 << 16)
    assert (later.cdw12, later.cdw13, later.data_len) == (4096, 0, 8192)


def test_ocp_log_carries_the_uuid_index_in_cdw14() -> None:
    cmd = cmds.ocp_smart_extended_log(uuid_index=3)
    assert cmd.cdw14 == 3
    assert _sqe_dwords(cmd)[4] == 3
    with pytest.raises(ValueError, match="7 bits"):
        cmds.get_log_page(0xC0, 0, 512, uuid_index=0x80)


def test_identify_active_namespaces_is_cns_02h_from_a_start_nsid() -> None:
    cmd = cmds.identify_active_namespaces(start_nsid=5)
    assert (cmd.opcode, cmd.nsid, cmd.cdw10, cmd.data_len) == (0x06, 5, 0x02, 4096)


def test_format_nvm_packs_lbaf_mset_pi_pil_ses() -> None:
    cmd = cmds.format_nvm(1, lbaf=0x25, ses=SecureErase.CRYPTOGRAPHIC, mset=True, pi=0b011, pil=True)
    # LBAFL 3:0 = 5, MSET 4, PI 7:5 = 3, PIL 8, SES 11:9 = 2, LBAFU 13:12 = 2.
    assert cmd.cdw10 == 0x5 | (1 << 4) | (0b011 << 5) | (1 << 8) | (2 << 9) | (2 << 12)
    assert (cmd.opcode, cmd.nsid, cmd.data_len) == (0x80, 1, 0)
    assert cmd.transfer is DataTransfer.NONE


def test_format_nvm_user_data_erase_to_lbaf_4() -> None:
    assert cmds.format_nvm(0xFFFFFFFF, 4, SecureErase.USER_DATA).cdw10 == 0x204
    with pytest.raises(ValueError, match="6 bits"):
        cmds.format_nvm(1, 64)


def test_sanitize_packs_action_and_overwrite_options() -> None:
    cmd = cmds.sanitize(
        SanitizeAction.OVERWRITE,
        allow_unrestricted_exit=True,
        overwrite_passes=5,
        overwrite_invert=True,
        no_deallocate=True,
        overwrite_pattern=0xDEADBEEF,
    )
    assert cmd.opcode == 0x84
    assert cmd.cdw10 == 3 | (1 << 3) | (5 << 4) | (1 << 8) | (1 << 9)
    assert cmd.cdw11 == 0xDEADBEEF
    # 16 passes is OWPASS 0 in the spec.
    assert cmds.sanitize(SanitizeAction.OVERWRITE, overwrite_passes=16).cdw10 == 3
    assert cmds.sanitize(SanitizeAction.BLOCK_ERASE).cdw10 == 2 | (1 << 4)
    with pytest.raises(ValueError, match="1 to 16"):
        cmds.sanitize(SanitizeAction.OVERWRITE, overwrite_passes=17)


@pytest.mark.parametrize(
    ("code", "stc"),
    [(SelfTestCode.SHORT, 1), (SelfTestCode.EXTENDED, 2), (SelfTestCode.ABORT, 0xF)],
)
def test_device_self_test_puts_stc_in_cdw10(code: SelfTestCode, stc: int) -> None:
    cmd = cmds.device_self_test(code, nsid=0)
    assert (cmd.opcode, cmd.nsid, cmd.cdw10) == (0x14, 0, stc)


def test_firmware_image_download_counts_dwords() -> None:
    cmd = cmds.firmware_image_download(offset_bytes=8192, length_bytes=4096)
    assert (cmd.opcode, cmd.cdw10, cmd.cdw11, cmd.data_len) == (0x11, 1023, 2048, 4096)
    assert cmd.transfer is DataTransfer.HOST_TO_CONTROLLER
    with pytest.raises(ValueError, match="whole dwords"):
        cmds.firmware_image_download(0, 6)
    with pytest.raises(ValueError, match="dword offset"):
        cmds.firmware_image_download(2, 4)


def test_firmware_commit_packs_slot_action_and_bpid() -> None:
    cmd = cmds.firmware_commit(2, CommitAction.REPLACE_AND_ACTIVATE_AT_RESET)
    assert (cmd.opcode, cmd.cdw10) == (0x10, 2 | (1 << 3))
    boot = cmds.firmware_commit(0, CommitAction.ACTIVATE_BOOT_PARTITION, boot_partition_id=1)
    assert boot.cdw10 == (7 << 3) | (1 << 31)
    with pytest.raises(ValueError, match="slot"):
        cmds.firmware_commit(8, CommitAction.REPLACE)


def test_read_and_write_split_slba_and_count_blocks_from_zero() -> None:
    read = cmds.read(nsid=1, slba=0x1_2345_6789, blocks=8, lba_bytes=4096, fua=True)
    assert read.opcode == 0x02 and read.transfer is DataTransfer.CONTROLLER_TO_HOST
    assert (read.cdw10, read.cdw11) == (0x2345_6789, 0x1)
    assert read.cdw12 == 7 | (1 << 30)
    assert read.data_len == 8 * 4096
    write = cmds.write(nsid=2, slba=0, blocks=1, lba_bytes=520)
    assert (write.opcode, write.nsid, write.cdw12, write.data_len) == (0x01, 2, 0, 520)
    assert write.transfer is DataTransfer.HOST_TO_CONTROLLER
    assert _sqe_dwords(read)[:3] == (0x2345_6789, 0x1, 7 | (1 << 30))


@pytest.mark.parametrize("blocks", [0, 65537])
def test_one_command_moves_1_to_65536_blocks(blocks: int) -> None:
    with pytest.raises(ValueError, match="1 to 65536"):
        cmds.read(1, 0, blocks, 512)
    assert cmds.read(1, 0, 65536, 512).cdw12 == 0xFFFF


def test_flush_and_write_zeroes() -> None:
    assert cmds.flush(3) == NvmeCommand(opcode=0x00, nsid=3)
    zeroes = cmds.write_zeroes(1, slba=2**40, blocks=16, deallocate=True, fua=True)
    assert zeroes.opcode == 0x08 and zeroes.data_len == 0
    assert (zeroes.cdw10, zeroes.cdw11) == (0, 2**8)
    assert zeroes.cdw12 == 15 | (1 << 25) | (1 << 30)


def test_dataset_management_ranges_are_16_bytes_each() -> None:
    ranges = [DsmRange(slba=0x10, blocks=8), DsmRange(slba=2**33, blocks=0xFFFF, context_attributes=0x5)]
    cmd = cmds.dataset_management(1, ranges)
    assert (cmd.opcode, cmd.cdw10, cmd.cdw11, cmd.data_len) == (0x09, 1, 1 << 2, 32)
    payload = cmds.dsm_payload(ranges)
    # Context Attributes 3:0, Length in logical blocks 7:4, Starting LBA 15:8.
    assert payload[:16] == struct.pack("<IIQ", 0, 8, 0x10)
    assert payload[16:] == struct.pack("<IIQ", 5, 0xFFFF, 2**33)
    assert cmds.dataset_management(1, ranges[:1], deallocate=False).cdw11 == 0
    with pytest.raises(ValueError, match="1 to 256"):
        cmds.dataset_management(1, [])
    with pytest.raises(ValueError, match="blocks"):
        DsmRange(slba=0, blocks=0).to_bytes()


def test_io_opcode_names_read_as_the_spec_writes_them() -> None:
    assert cmds.opcode_name(0x09, admin=False) == "Dataset Management (09h)"
    assert cmds.opcode_name(0x80) == "Format NVM (80h)"
    assert cmds.opcode_name(0x01) == "Create I/O SQ (01h)"
