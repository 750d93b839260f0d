"""The NVMe passthrough contract: submit one command, get its completion and data back.

The Linux ioctl transport (`nvme_linux`, `/dev/nvmeN`), the nvme-cli transport (`nvme_cli`)
and the simulated lab's transport implement it.
Standard library only: this module also runs inside a minimal Linux guest with a bare python3.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from drivers.nvme.commands import Completion, NvmeCommand


@runtime_checkable
class NvmePassthrough(Protocol):
    """A link to one NVMe controller's admin queue and one of its I/O queues.

    Contract for implementations:
    - A command that completes with an error status is returned, not raised: the caller reads
      `Completion.status`. Only link failures raise: `InstrumentTimeout` when no completion
      arrives, `InstrumentError` for any other failure of the link itself.
    - For a controller-to-host command the returned bytes are exactly `cmd.data_len` long (the
      host buffer, zero where the controller transferred less); otherwise they are empty.
    - For a host-to-controller command `data` is the buffer sent and must be `cmd.data_len`
      bytes long.
    - The returned completion carries the command's CID, so a caller can match the two.
    """

    address: str

    def admin(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        """Submit one command to the admin queue and wait for its completion."""
        ...

    def io(self, cmd: NvmeCommand, data: bytes | None = None) -> tuple[Completion, bytes]:
        """Submit one command to the I/O queue and wait for its completion."""
        ...

    def close(self) -> None:
        """Release the link."""
        ...
