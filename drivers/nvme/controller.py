"""A generic NVMe controller driver over a passthrough transport (admin commands only).

Implements `drivers.protocols.NvmeController`. Standard library only: this module also runs
inside a minimal Linux guest with a bare python3.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from drivers.errors import DeviceCommandError, ProtocolError
from drivers.nvme import commands as cmds
from drivers.nvme.commands import NSID_ALL, Completion, NvmeCommand, ThresholdType
from drivers.nvme.structures import (
    IdentifyController,
    IdentifyNamespace,
    SmartLog,
    StructureError,
)
from drivers.transport.nvme_passthrough import NvmePassthrough

_T = TypeVar("_T")


class NvmeDriver:
    """Identify, SMART and temperature thresholds of one NVMe controller.

    The driver numbers its commands (CID) so that a completion for another command, a sign
    of a confused transport, is caught instead of decoded as if it were ours.
    """

    def __init__(self, transport: NvmePassthrough) -> None:
        self._transport = transport
        self.address: str = transport.address
        self._next_cid = 0

    def admin_command(self, cmd: NvmeCommand, data: bytes | None = None) -> bytes:
        """Submit an admin command and return its data; raise DeviceCommandError on error status."""
        cmd = self._numbered(cmd)
        completion, payload = self._transport.admin(cmd, data)
        self._check(cmd, completion, payload)
        return payload

    def admin_result(self, cmd: NvmeCommand, data: bytes | None = None) -> int:
        """Submit an admin command and return completion DW0 (e.g. a Get Features value)."""
        cmd = self._numbered(cmd)
        completion, payload = self._transport.admin(cmd, data)
        self._check(cmd, completion, payload)
        return completion.result

    def identify_controller(self) -> IdentifyController:
        """Return the decoded Identify Controller data structure (CNS 01h)."""
        payload = self.admin_command(cmds.identify_controller())
        return self._decode(IdentifyController.from_bytes, payload)

    def identify_namespace(self, nsid: int = 1) -> IdentifyNamespace:
        """Return the decoded Identify Namespace data structure (CNS 00h) of `nsid`."""
        payload = self.admin_command(cmds.identify_namespace(nsid))
        return self._decode(IdentifyNamespace.from_bytes, payload)

    def smart_log(self, nsid: int = NSID_ALL) -> SmartLog:
        """Return the decoded SMART / Health Information log page (LID 02h)."""
        payload = self.admin_command(cmds.smart_log(nsid))
        return self._decode(SmartLog.from_bytes, payload)

    def get_temperature_threshold(
        self,
        sensor: int = cmds.TEMPERATURE_SENSOR_COMPOSITE,
        threshold_type: ThresholdType = ThresholdType.OVER,
    ) -> int:
        """Return a temperature threshold in kelvin (Get Features FID 04h)."""
        result = self.admin_result(cmds.get_temperature_threshold(sensor, threshold_type))
        return cmds.temperature_threshold_k(result)

    def set_temperature_threshold(
        self,
        threshold_k: int,
        sensor: int = cmds.TEMPERATURE_SENSOR_COMPOSITE,
        threshold_type: ThresholdType = ThresholdType.OVER,
        save: bool = False,
    ) -> None:
        """Set a temperature threshold in kelvin (Set Features FID 04h)."""
        self.admin_result(cmds.set_temperature_threshold(threshold_k, sensor, threshold_type, save=save))

    def close(self) -> None:
        """Release the transport."""
        self._transport.close()

    def _numbered(self, cmd: NvmeCommand) -> NvmeCommand:
        cid = self._next_cid
        self._next_cid = (cid + 1) & 0xFFFF
        return dataclasses.replace(cmd, cid=cid)

    def _check(self, cmd: NvmeCommand, completion: Completion, payload: bytes) -> None:
        what = cmds.opcode_name(cmd.opcode)
        if completion.cid != cmd.cid:
            raise ProtocolError(
                self.address,
                f"{what}: completion carries CID {completion.cid}, command was CID {cmd.cid}",
            )
        if not completion.ok:
            retry = "; do not retry" if completion.dnr else ""
            raise DeviceCommandError(
                self.address,
                f"{what} failed: {completion.status_text}{retry}",
                status=completion.status,
            )
        expected = cmd.data_len if cmd.transfer is cmds.DataTransfer.CONTROLLER_TO_HOST else 0
        if len(payload) != expected:
            raise ProtocolError(self.address, f"{what}: expected {expected} data bytes, got {len(payload)}")

    def _decode(self, decoder: Callable[[bytes], _T], payload: bytes) -> _T:
        try:
            return decoder(payload)
        except StructureError as exc:
            raise ProtocolError(self.address, str(exc)) from exc
