"""NvmeDriver's log, format, firmware, self-test, sanitize and I/O methods over a scripted link.

`ScriptedLink` implements NvmePassthrough: it answers each command with the next scripted
(status, DW0, data) and records what the driver sent, so every test states the exact command
sequence a method must produce.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest

from drivers.errors import DeviceCommandError, InstrumentError, ProtocolError
from drivers.nvme.commands import (
    AdminOpcode,
    CommitAction,
    Completion,
    DataTransfer,
    IoOpcode,
    NvmeCommand,
    SanitizeAction,
    SecureErase,
    SelfTestCode,
)
from drivers.nvme.controller import FirmwareActivation, NvmeDriver
from drivers.nvme.structures import IdentifyController, IdentifyNamespace, LbaFormat, RelativePerformance

GUID_BYTES = bytes.fromhex("C5AF1028EABFF2A49C4F6F7CC914D5AF")


@dataclass
class Answer:
    status: int = 0
    result: int = 0
    data: bytes = b""


@dataclass
class ScriptedLink:
    """An NvmePassthrough that replays scripted answers and records every command."""

    answers: list[Answer] = field(default_factory=list)
    sent: list[tuple[str, NvmeCommand, bytes | None]] = field(default_factory=list)
    address: str = "scripted:nvme0"

    def admin(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        return self._answer("admin", cmd, data)

    def io(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        return self._answer("io", cmd, data)

    def close(self) -> None:
        pass

    def _answer(self, queue: str, cmd: NvmeCommand, data: bytes | None) -> tuple[Completion, bytes]:
        self.sent.append((queue, cmd, data))
        answer = self.answers.pop(0)
        completion = Completion.from_status(answer.status, result=answer.result, cid=cmd.cid)
        if cmd.transfer is DataTransfer.CONTROLLER_TO_HOST:
            return completion, answer.data.ljust(cmd.data_len, b"\x00")
        return completion, b""


def _controller(elpe: int = 3) -> bytes:
    page = bytearray(4096)
    page[4:24] = b"SN1".ljust(20)
    page[24:64] = b"MODEL".ljust(40)
    page[64:72] = b"FW1".ljust(8)
    page[262] = elpe
    return bytes(page)


def _namespace(
    flbas: int = 0,
    formats: tuple[tuple[int, int], ...] = ((9, 0), (12, 0), (12, 8)),
    nsze: int = 1000,
) -> bytes:
    page = bytearray(4096)
    struct.pack_into("<QQQ", page, 0, nsze, nsze, nsze)
    page[25] = len(formats) - 1
    page[26] = flbas
    for index, (lbads, ms) in enumerate(formats):
        struct.pack_into("<I", page, 128 + 4 * index, ms | (lbads << 16))
    return bytes(page)


def _driver(*answers: Answer) -> tuple[NvmeDriver, ScriptedLink]:
    link = ScriptedLink(list(answers))
    return NvmeDriver(link), link


def test_error_log_reads_elpe_plus_one_entries_and_drops_empty_ones() -> None:
    entry = bytearray(64)
    struct.pack_into("<QHHH", entry, 0, 3, 0, 12, (0x0281 << 1) | 1)
    driver, link = _driver(
        Answer(data=_controller(elpe=3)), Answer(data=bytes(entry) + bytes(64 * 3)), Answer(data=bytes(256))
    )
    entries = driver.error_log()
    assert [(e.error_count, e.cid, e.sc) for e in entries] == [(3, 12, 0x81)]
    assert link.sent[1][1].data_len == 4 * 64
    driver.error_log()  # Identify Controller is read once
    assert [cmd.opcode for _, cmd, _ in link.sent].count(AdminOpcode.IDENTIFY) == 1


def test_error_log_with_an_explicit_entry_count() -> None:
    driver, link = _driver(Answer(data=bytes(128)))
    assert driver.error_log(entries=2) == []
    assert link.sent[0][1].data_len == 128


def test_active_namespaces_pages_through_full_lists() -> None:
    first = b"".join(struct.pack("<I", n) for n in range(1, 1025))
    second = struct.pack("<II", 1025, 1030)
    driver, link = _driver(Answer(data=first), Answer(data=second))
    assert driver.active_namespaces() == [*range(1, 1025), 1025, 1030]
    assert [cmd.nsid for _, cmd, _ in link.sent] == [0, 1024]


def test_format_keeps_the_current_format_by_default_and_reports_the_new_namespace() -> None:
    driver, link = _driver(
        Answer(data=_namespace(flbas=1)),
        Answer(),
        Answer(data=_namespace(flbas=1)),
    )
    after = driver.format_nvm(1, ses=SecureErase.USER_DATA)
    assert after.block_size_bytes == 4096
    format_cmd = link.sent[1][1]
    assert format_cmd.opcode == AdminOpcode.FORMAT_NVM and format_cmd.cdw10 == 1 | (1 << 9)


def test_format_forgets_the_block_size_it_read_before() -> None:
    driver, link = _driver(
        Answer(data=_namespace(flbas=0)),  # identify for the first read: 512 B
        Answer(data=bytes(512)),
        Answer(),  # format to LBAF 1
        Answer(data=_namespace(flbas=1)),  # identify after format
        Answer(data=_namespace(flbas=1)),  # identify for the next read: 4096 B
        Answer(data=bytes(4096)),
    )
    assert len(driver.read(1, 0, 1)) == 512
    driver.format_nvm(1, lbaf=1)
    assert len(driver.read(1, 0, 1)) == 4096
    assert link.sent[-1][1].data_len == 4096


def test_lba_format_index_finds_block_and_metadata_size() -> None:
    driver, _ = _driver(Answer(data=_namespace()), Answer(data=_namespace()), Answer(data=_namespace()))
    assert driver.lba_format_index(4096) == 1
    assert driver.lba_format_index(4096, metadata_size_bytes=8) == 2
    with pytest.raises(InstrumentError, match=r"no 4096\+64 B LBA format \(512\+0, 4096\+0, 4096\+8\)"):
        driver.lba_format_index(4096, 64)


def test_write_and_read_move_whole_blocks_on_the_io_queue() -> None:
    driver, link = _driver(Answer(data=_namespace(flbas=1)), Answer(), Answer(data=b"\x11" * 8192))
    driver.write(1, 100, b"\x22" * 8192, fua=True)
    assert driver.read(1, 100, 2) == b"\x11" * 8192
    queue, write_cmd, data = link.sent[1]
    assert (queue, write_cmd.opcode, write_cmd.cdw10, write_cmd.cdw12) == (
        "io",
        IoOpcode.WRITE,
        100,
        1 | (1 << 30),
    )
    assert data == b"\x22" * 8192
    assert link.sent[2][1].data_len == 8192
    with pytest.raises(ValueError, match="whole 4096-byte blocks"):
        driver.write(1, 0, b"x" * 100)


def test_extended_metadata_travels_with_each_block() -> None:
    driver, link = _driver(Answer(data=_namespace(flbas=0x12)), Answer(data=bytes(4104)))
    assert len(driver.read(1, 0, 1)) == 4096 + 8
    assert link.sent[1][1].data_len == 4104


def test_separate_metadata_is_refused_plainly() -> None:
    driver, _ = _driver(Answer(data=_namespace(flbas=0x02)))
    with pytest.raises(InstrumentError, match="separate buffer"):
        driver.read(1, 0, 1)


def test_flush_write_zeroes_and_deallocate() -> None:
    driver, link = _driver(Answer(), Answer(), Answer())
    driver.flush(1)
    driver.write_zeroes(1, 10, 4, deallocate=True)
    driver.deallocate(1, [(64, 16), (128, 8)])
    opcodes = [(queue, cmd.opcode) for queue, cmd, _ in link.sent]
    assert opcodes == [("io", 0x00), ("io", 0x08), ("io", 0x09)]
    assert link.sent[1][1].cdw12 == 3 | (1 << 25)
    dsm_cmd, dsm_data = link.sent[2][1], link.sent[2][2]
    assert (dsm_cmd.cdw10, dsm_cmd.cdw11) == (1, 1 << 2)
    assert dsm_data == struct.pack("<IIQIIQ", 0, 16, 64, 0, 8, 128)


def test_io_errors_name_the_io_command() -> None:
    driver, _ = _driver(Answer(status=0x4080))
    with pytest.raises(DeviceCommandError, match=r"Write Zeroes \(08h\) failed: LBA Out of Range"):
        driver.write_zeroes(1, 10**9, 1)


def test_firmware_download_sends_dword_offsets_in_chunks() -> None:
    image = bytes(range(256)) * 40  # 10240 bytes: 4096 + 4096 + 2048
    driver, link = _driver(Answer(), Answer(), Answer())
    driver.firmware_download(image)
    sent = [(cmd.cdw10, cmd.cdw11, len(data or b"")) for _, cmd, data in link.sent]
    assert sent == [(1023, 0, 4096), (1023, 1024, 4096), (511, 2048, 2048)]
    assert b"".join(data or b"" for _, _, data in link.sent) == image
    with pytest.raises(ValueError, match="whole dwords"):
        driver.firmware_download(b"abc")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (0x0000, FirmwareActivation.DONE),
        (0x010B, FirmwareActivation.CONVENTIONAL_RESET),
        (0x0110, FirmwareActivation.NVM_SUBSYSTEM_RESET),
        (0x0111, FirmwareActivation.CONTROLLER_RESET),
    ],
)
def test_firmware_commit_reports_the_reset_activation_waits_for(
    status: int, outcome: FirmwareActivation
) -> None:
    driver, link = _driver(Answer(status=status))
    assert driver.firmware_commit(2, CommitAction.REPLACE_AND_ACTIVATE_AT_RESET) is outcome
    assert link.sent[0][1].cdw10 == 2 | (1 << 3)


def test_firmware_commit_failure_still_raises() -> None:
    driver, _ = _driver(Answer(status=0x4107))
    with pytest.raises(DeviceCommandError, match="Invalid Firmware Image"):
        driver.firmware_commit(1, CommitAction.REPLACE)


def test_self_test_and_sanitize_commands() -> None:
    driver, link = _driver(Answer(), Answer(), Answer())
    driver.start_self_test(SelfTestCode.EXTENDED)
    driver.abort_self_test()
    driver.sanitize(SanitizeAction.CRYPTO_ERASE, no_deallocate=True)
    assert [(cmd.opcode, cmd.cdw10) for _, cmd, _ in link.sent] == [
        (0x14, 0x2),
        (0x14, 0xF),
        (0x84, 4 | (1 << 4) | (1 << 9)),
    ]


def test_ocp_log_without_the_ocp_guid_is_a_protocol_error() -> None:
    good = bytearray(512)
    good[496:512] = GUID_BYTES
    driver, link = _driver(Answer(data=bytes(good)), Answer(data=bytes(512)))
    assert driver.ocp_smart_extended_log().guid_valid
    assert link.sent[0][1].cdw10 & 0xFF == 0xC0
    with pytest.raises(ProtocolError, match="not the OCP SMART extended GUID"):
        driver.ocp_smart_extended_log()


def test_telemetry_capture_creates_then_reads_in_4k_pieces() -> None:
    header = bytearray(512)
    header[0] = 0x07
    struct.pack_into("<HHH", header, 8, 4, 12, 20)  # data area 2 ends at block 12: 6656 bytes
    driver, link = _driver(
        Answer(data=bytes(header)), Answer(data=b"\x01" * 4096), Answer(data=b"\x02" * 2048)
    )
    capture = driver.telemetry_host_log(data_area=2)
    assert len(capture) == 13 * 512
    reads = [(cmd.cdw10 >> 8 & 0x7F, cmd.cdw12, cmd.data_len) for _, cmd, _ in link.sent]
    assert reads == [(1, 0, 512), (0, 512, 4096), (0, 4608, 2048)]


def test_logs_and_structures_decode_through_the_driver() -> None:
    fw = bytearray(512)
    fw[0] = 1
    fw[8:16] = b"FW1     "
    self_test = bytearray(564)
    for index in range(20):
        self_test[4 + 28 * index] = 0x0F
    sanitize = bytearray(512)
    struct.pack_into("<HH", sanitize, 0, 0xFFFF, 1)
    driver, _ = _driver(Answer(data=bytes(fw)), Answer(data=bytes(self_test)), Answer(data=bytes(sanitize)))
    assert driver.firmware_slot_log().active_revision == "FW1"
    assert driver.self_test_log().results == ()
    assert driver.sanitize_status().state == 1


def test_structures_build_the_fixtures_the_driver_decodes() -> None:
    # The namespace fixture above agrees with the project's own encoder.
    encoded = IdentifyNamespace(
        nsze_blocks=1000,
        ncap_blocks=1000,
        nuse_blocks=1000,
        nsfeat=0,
        nlbaf=2,
        flbas=0,
        mc=0,
        dpc=0,
        dps=0,
        nmic=0,
        rescap=0,
        nvmcap_bytes=0,
        nguid=bytes(16),
        eui64=bytes(8),
        lba_formats=(
            LbaFormat(0, 9, RelativePerformance.BEST),
            LbaFormat(0, 12, RelativePerformance.BEST),
            LbaFormat(8, 12, RelativePerformance.BEST),
        ),
    ).to_bytes()
    assert encoded == _namespace()
    assert IdentifyController.from_bytes(_controller()).elpe == 3
