"""Open the transport a driver needs from a station address."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from drivers.errors import InstrumentError
from drivers.registry import TransportKind


def open_transport(
    kind: TransportKind,
    address: str,
    *,
    timeout_ms: int,
    options: Mapping[str, Any],
    endpoints: Mapping[str, Any],
) -> Any:
    """Return an open transport of `kind` for `address`.

    `endpoints` holds in-process links that a station provides by address (the simulated
    lab's NVMe controllers); every other address goes through the real transport.
    """
    if address in endpoints:
        return endpoints[address]
    if kind == "visa":
        from drivers.transport.visa import VisaTransport

        return VisaTransport(address, timeout_ms=timeout_ms, backend=str(options.get("visa_backend", "@py")))
    if kind == "serial":
        from drivers.transport.serial import SerialTransport

        return SerialTransport(
            address,
            baudrate=int(options.get("baudrate", 9600)),
            timeout_s=timeout_ms / 1000.0,
        )
    if kind == "nvme":
        return _open_nvme(address, timeout_ms=timeout_ms, options=options)
    if kind == "i2c":
        from drivers.transport.i2c import open_i2c

        return open_i2c(address, timeout_ms=timeout_ms)
    raise InstrumentError(address, f"unknown transport kind {kind!r}")


_NVME_CLI_PREFIX = "nvme-cli:"
_LINUX_NVME_NODE = re.compile(r"^/dev/(?:nvme\d+|nvme\d+n\d+|ng\d+n\d+)$")


def _open_nvme(address: str, *, timeout_ms: int, options: Mapping[str, Any]) -> Any:
    """Open `/dev/nvmeN`, `/dev/nvmeNnM` or `/dev/ngNnM` by ioctl, `nvme-cli:/dev/...` through nvme-cli.

    Options: `nvme_timeout_ms` overrides the station timeout for NVMe commands (a Format NVM
    outlasts an instrument query); `nvme_cli` names the nvme executable (e.g. a wrapper that
    runs it through sudo).
    """
    command_timeout_ms = int(options.get("nvme_timeout_ms", timeout_ms))
    if address.startswith(_NVME_CLI_PREFIX):
        from drivers.transport.nvme_cli import NvmeCliTransport

        device = address[len(_NVME_CLI_PREFIX) :]
        if not _LINUX_NVME_NODE.match(device):
            raise InstrumentError(
                address, "nvme-cli addresses name an NVMe device node, e.g. nvme-cli:/dev/nvme0"
            )
        return NvmeCliTransport(
            device, nvme=str(options.get("nvme_cli", "nvme")), timeout_s=command_timeout_ms / 1000.0
        )
    if _LINUX_NVME_NODE.match(address):
        from drivers.transport.nvme_linux import LinuxNvmeTransport

        return LinuxNvmeTransport(address, timeout_ms=command_timeout_ms)
    raise InstrumentError(
        address, "no NVMe transport serves this address: use /dev/nvmeN, /dev/ngNnM or nvme-cli:/dev/nvmeN"
    )
