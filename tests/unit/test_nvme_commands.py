"""SQE/CQE byte layouts, admin command builders and status decoding, checked at spec offsets."""

from __future__ import annotations

import struct

import pytest

from drivers.nvme import commands as cmds
from drivers.nvme.commands import (
    AdminOpcode,
    Completion,
    DataTransfer,
    NvmeCommand,
    ThresholdType,
    describe_status,
)


def _dword(raw: bytes, offset: int) -> int:
    return struct.unpack_from("<I", raw, offset)[0]


def test_sqe_fields_sit_at_their_spec_offsets() -> None:
    cmd = NvmeCommand(
        opcode=0xA5,
        nsid=0x11223344,
        cdw10=0xA0A0A0A0,
        cdw11=0xB1B1B1B1,
        cdw12=0xC2C2C2C2,
        cdw13=0xD3D3D3D3,
        cdw14=0xE4E4E4E4,
        cdw15=0xF5F5F5F5,
        cid=0xBEEF,
        fuse=0b10,
        psdt=0b01,
        cdw2=0x22222222,
        cdw3=0x33333333,
        mptr=0x1617181920212223,
        prp1=0x2425262728292A2B,
        prp2=0x3031323334353637,
    )
    raw = cmd.to_bytes()
    assert len(raw) == 64
    assert raw[0] == 0xA5  # CDW0 7:0 opcode
    assert raw[1] == 0b0100_0010  # CDW0 9:8 FUSE, 15:14 PSDT
    assert struct.unpack_from("<H", raw, 2)[0] == 0xBEEF  # CDW0 31:16 CID
    assert _dword(raw, 4) == 0x11223344  # NSID
    assert _dword(raw, 8) == 0x22222222  # CDW2
    assert _dword(raw, 12) == 0x33333333  # CDW3
    assert struct.unpack_from("<Q", raw, 16)[0] == 0x1617181920212223  # MPTR
    assert struct.unpack_from("<Q", raw, 24)[0] == 0x2425262728292A2B  # PRP1
    assert struct.unpack_from("<Q", raw, 32)[0] == 0x3031323334353637  # PRP2
    assert [_dword(raw, 40 + 4 * i) for i in range(6)] == [
        0xA0A0A0A0,
        0xB1B1B1B1,
        0xC2C2C2C2,
        0xD3D3D3D3,
        0xE4E4E4E4,
        0xF5F5F5F5,
    ]
    assert NvmeCommand.from_bytes(raw, data_len=0) == cmd


def test_sqe_decodes_spec_built_bytes() -> None:
    raw = bytearray(64)
    raw[0] = 0x06
    struct.pack_into("<H", raw, 2, 7)
    struct.pack_into("<I", raw, 4, 1)
    struct.pack_into("<I", raw, 40, 0x01)
    cmd = NvmeCommand.from_bytes(bytes(raw), data_len=4096)
    assert (cmd.opcode, cmd.cid, cmd.nsid, cmd.cdw10, cmd.data_len) == (0x06, 7, 1, 1, 4096)


@pytest.mark.parametrize("length", [0, 63, 65])
def test_sqe_rejects_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="NvmeCommand: expected 64 bytes"):
        NvmeCommand.from_bytes(bytes(length))


@pytest.mark.parametrize(
    ("field", "value"),
    [("opcode", 0x100), ("cid", 0x10000), ("fuse", 4), ("cdw10", 1 << 32), ("nsid", -1)],
)
def test_command_rejects_values_wider_than_their_field(field: str, value: int) -> None:
    kwargs = {"opcode": 0x02, field: value}
    with pytest.raises(ValueError, match=f"NvmeCommand.{field}="):
        NvmeCommand(**kwargs)


def test_smart_log_command_matches_the_reference_encoding() -> None:
    cmd = cmds.smart_log()
    assert cmd.opcode == 0x02
    assert AdminOpcode(cmd.opcode) is AdminOpcode.GET_LOG_PAGE
    assert cmd.nsid == 0xFFFFFFFF
    # (NUMDL << 16) | LID for 512 bytes: 128 dwords, 0's based 127 = 7Fh.
    assert cmd.cdw10 == 0x007F0002
    assert (cmd.cdw11, cmd.cdw12, cmd.cdw13) == (0, 0, 0)
    assert cmd.data_len == 512
    assert _dword(cmd.to_bytes(), 40) == 0x007F0002


def test_get_log_page_splits_numd_and_offset_across_dwords() -> None:
    length = 0x40000 * 4  # NUMD 0's based = 0x3FFFF: NUMDL 0xFFFF, NUMDU 0x3
    cmd = cmds.get_log_page(0x07, nsid=0, length_bytes=length, offset_bytes=0x1_0000_0200)
    assert cmd.cdw10 == (0xFFFF << 16) | 0x07
    assert cmd.cdw11 & 0xFFFF == 0x3
    assert cmd.cdw12 == 0x200  # LPOL
    assert cmd.cdw13 == 0x1  # LPOU
    assert cmd.data_len == length


def test_get_log_page_encodes_lsp_rae_and_lsi() -> None:
    cmd = cmds.get_log_page(0x02, nsid=1, length_bytes=4, lsp=0x5, lsi=0xABCD, rae=True)
    assert cmd.cdw10 == 0x02 | (0x5 << 8) | (1 << 15)  # NUMD 0 for one dword
    assert cmd.cdw11 == 0xABCD << 16


@pytest.mark.parametrize(("length", "offset"), [(0, 0), (6, 0), (-4, 0), (512, 2), (512, -4)])
def test_get_log_page_rejects_partial_dwords(length: int, offset: int) -> None:
    with pytest.raises(ValueError, match="get_log_page"):
        cmds.get_log_page(0x02, nsid=0xFFFFFFFF, length_bytes=length, offset_bytes=offset)


def test_identify_commands_select_cns_and_read_4096_bytes() -> None:
    ctrl = cmds.identify_controller()
    assert (ctrl.opcode, ctrl.nsid, ctrl.cdw10, ctrl.data_len) == (0x06, 0, 0x01, 4096)
    ns = cmds.identify_namespace(3)
    assert (ns.opcode, ns.nsid, ns.cdw10, ns.data_len) == (0x06, 3, 0x00, 4096)
    other = cmds.identify(0x02, cntid=0x1234, csi=0x02)
    assert other.cdw10 == 0x1234_0002  # CNTID 31:16, CNS 7:0
    assert other.cdw11 == 0x02 << 24  # CSI 31:24


def test_set_temperature_threshold_packs_tmpth_tmpsel_thsel_and_sv() -> None:
    cmd = cmds.set_temperature_threshold(0x0155, sensor=2, threshold_type=ThresholdType.UNDER, save=True)
    assert cmd.opcode == 0x09
    assert cmd.cdw10 == 0x8000_0004  # SV bit 31, FID 04h
    assert cmd.cdw11 == 0x0012_0155  # THSEL 21:20 = 1, TMPSEL 19:16 = 2, TMPTH 15:0
    assert cmd.data_len == 0


def test_get_temperature_threshold_selects_sensor_and_value() -> None:
    cmd = cmds.get_temperature_threshold(sensor=0, sel=cmds.FeatureSelect.DEFAULT)
    assert cmd.opcode == 0x0A
    assert cmd.cdw10 == (1 << 8) | 0x04  # SEL 10:8, FID 7:0
    assert cmd.cdw11 == 0
    assert cmds.temperature_threshold_k(0x0012_0157) == 0x157


def test_temperature_threshold_rejects_values_wider_than_16_bits() -> None:
    with pytest.raises(ValueError, match="does not fit in 16 bits"):
        cmds.set_temperature_threshold(0x10000)


@pytest.mark.parametrize(
    ("opcode", "transfer"),
    [
        (0x02, DataTransfer.CONTROLLER_TO_HOST),
        (0x06, DataTransfer.CONTROLLER_TO_HOST),
        (0x09, DataTransfer.HOST_TO_CONTROLLER),
        (0x0A, DataTransfer.CONTROLLER_TO_HOST),
        (0x08, DataTransfer.NONE),
        (0x03, DataTransfer.BIDIRECTIONAL),
    ],
)
def test_transfer_direction_comes_from_opcode_low_bits(opcode: int, transfer: DataTransfer) -> None:
    assert NvmeCommand(opcode=opcode).transfer is transfer


def _cqe(dw0: int, dw1: int, sqhd: int, sqid: int, cid: int, status_word: int) -> bytes:
    raw = bytearray(16)
    struct.pack_into("<I", raw, 0, dw0)
    struct.pack_into("<I", raw, 4, dw1)
    struct.pack_into("<H", raw, 8, sqhd)
    struct.pack_into("<H", raw, 10, sqid)
    struct.pack_into("<H", raw, 12, cid)
    struct.pack_into("<H", raw, 14, status_word)
    return bytes(raw)


def test_cqe_decodes_fields_from_spec_offsets() -> None:
    # DW3 bits 31:16: P bit 16, SC 24:17, SCT 27:25, CRD 29:28, M 30, DNR 31.
    word = 1 | (0x02 << 1) | (0 << 9) | (0b01 << 12) | (0 << 14) | (1 << 15)
    cqe = Completion.from_bytes(_cqe(0xDEADBEEF, 0x12345678, 7, 1, 0x1234, word))
    assert cqe.result == 0xDEADBEEF
    assert cqe.dw1 == 0x12345678
    assert (cqe.sq_head, cqe.sq_id, cqe.cid) == (7, 1, 0x1234)
    assert cqe.phase is True
    assert (cqe.sct, cqe.sc, cqe.crd) == (0, 0x02, 1)
    assert cqe.more is False
    assert cqe.dnr is True
    assert cqe.ok is False
    # The Linux ioctl convention: SC | SCT << 8 | CRD << 11 | M << 13 | DNR << 14.
    assert cqe.status == 0x4802
    assert cqe.status_text == "Invalid Field in Command (SCT 0, SC 02h)"
    assert cqe.to_bytes() == _cqe(0xDEADBEEF, 0x12345678, 7, 1, 0x1234, word)


def test_cqe_media_error_with_more_bit_and_phase_clear() -> None:
    word = 0 | (0x81 << 1) | (2 << 9) | (1 << 14)
    cqe = Completion.from_bytes(_cqe(0, 0, 0, 0, 9, word))
    assert cqe.phase is False
    assert (cqe.sct, cqe.sc, cqe.more, cqe.dnr) == (2, 0x81, True, False)
    assert cqe.status_text == "Unrecovered Read Error (SCT 2, SC 81h)"


def test_successful_completion_is_ok() -> None:
    cqe = Completion.from_bytes(_cqe(0x157, 0, 1, 0, 3, 1))
    assert cqe.ok is True
    assert cqe.status == 0
    assert cqe.status_text == "Successful Completion (SCT 0, SC 00h)"


@pytest.mark.parametrize("length", [15, 17])
def test_cqe_rejects_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="Completion: expected 16 bytes"):
        Completion.from_bytes(bytes(length))


def test_from_status_matches_linux_ioctl_status_values() -> None:
    cqe = Completion.from_status(0x4001, result=5, cid=2)  # NVME_SC_INVALID_OPCODE | DNR
    assert (cqe.sct, cqe.sc, cqe.dnr, cqe.result, cqe.cid) == (0, 0x01, True, 5, 2)
    assert cqe.status == 0x4001
    with pytest.raises(ValueError, match="15 bits"):
        Completion.from_status(0x8000)


@pytest.mark.parametrize(
    ("sct", "sc", "text"),
    [
        (0, 0x01, "Invalid Command Opcode (SCT 0, SC 01h)"),
        (0, 0x0B, "Invalid Namespace or Format (SCT 0, SC 0Bh)"),
        (0, 0x80, "LBA Out of Range (SCT 0, SC 80h)"),
        (1, 0x09, "Invalid Log Page (SCT 1, SC 09h)"),
        (1, 0x0D, "Feature Identifier Not Saveable (SCT 1, SC 0Dh)"),
        (2, 0x85, "Compare Failure (SCT 2, SC 85h)"),
        (7, 0x12, "Unrecognised Vendor Specific Status (SCT 7, SC 12h)"),
        (5, 0x00, "Unrecognised Reserved Status Code Type (SCT 5, SC 00h)"),
    ],
)
def test_describe_status_names_the_status_in_words(sct: int, sc: int, text: str) -> None:
    assert describe_status(sct, sc) == text


def test_opcode_name_is_readable() -> None:
    assert cmds.opcode_name(0x06) == "Identify (06h)"
    assert cmds.opcode_name(0x02) == "Get Log Page (02h)"
    assert cmds.opcode_name(0x7C) == "Opcode (7Ch)"
    assert cmds.opcode_name(0x02, admin=False) == "Read (02h)"
