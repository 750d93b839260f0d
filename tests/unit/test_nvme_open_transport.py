"""How a station address picks its NVMe transport: ioctl for device nodes, nvme-cli by prefix."""

from __future__ import annotations

import pytest

from drivers.errors import InstrumentError
from drivers.transport.nvme_cli import NvmeCliTransport
from drivers.transport.open import open_transport


def _open(address: str, **options: object) -> object:
    return open_transport("nvme", address, timeout_ms=5000, options=options, endpoints={})


def test_nvme_cli_prefix_opens_the_nvme_cli_transport() -> None:
    transport = _open("nvme-cli:/dev/nvme0", nvme_cli="/usr/local/bin/nvme-sudo", nvme_timeout_ms=30_000)
    assert isinstance(transport, NvmeCliTransport)
    assert transport.device == "/dev/nvme0"
    assert transport.address == "nvme-cli:/dev/nvme0"


@pytest.mark.parametrize("address", ["nvme-cli:/tmp/nvme0", "nvme-cli:", "nvme-cli:/dev/sda"])
def test_nvme_cli_needs_an_nvme_device_node(address: str) -> None:
    with pytest.raises(InstrumentError, match="name an NVMe device node"):
        _open(address)


@pytest.mark.parametrize("address", ["/dev/nvme97", "/dev/ng97n1", "/dev/nvme97n1"])
def test_device_nodes_open_through_the_ioctl_transport(address: str) -> None:
    # No such node on a test host: the ioctl transport is the one that tried to open it.
    with pytest.raises(InstrumentError, match="cannot open") as info:
        _open(address)
    assert info.value.address == address


@pytest.mark.parametrize("address", ["/dev/sda", "/dev/nvme0n1p1", "nvme0", "TCPIP::1.2.3.4::INSTR"])
def test_other_addresses_are_refused_with_the_accepted_forms(address: str) -> None:
    with pytest.raises(InstrumentError, match="/dev/nvmeN, /dev/ngNnM or nvme-cli:/dev/nvmeN"):
        _open(address)


def test_station_endpoints_still_win() -> None:
    sentinel = object()
    assert (
        open_transport("nvme", "/dev/nvme0", timeout_ms=1, options={}, endpoints={"/dev/nvme0": sentinel})
        is sentinel
    )
