"""Open the transport a driver needs from a station address."""

from __future__ import annotations

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
        raise InstrumentError(address, "no NVMe passthrough transport serves this address on this host")
    raise InstrumentError(address, f"unknown transport kind {kind!r}")
