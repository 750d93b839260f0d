"""VISA message transport over pyvisa; the only module in qualify that imports pyvisa."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pyvisa
from pyvisa import constants
from pyvisa.errors import Error as VisaError
from pyvisa.errors import VisaIOError

from drivers.errors import InstrumentError, InstrumentTimeout


class VisaTransport:
    """A MessageTransport over one VISA resource (`TCPIP::host::port::SOCKET`, USB, GPIB...).

    One lock serialises every write and query: several DUT threads share one supply, and a
    query's reply must go to the thread that asked.
    """

    def __init__(
        self,
        address: str,
        timeout_ms: int = 2000,
        backend: str = "@py",
        read_termination: str = "\n",
        write_termination: str = "\n",
    ) -> None:
        self.address = address
        self.timeout_ms = timeout_ms
        self._lock = threading.Lock()
        self._resource: Any = None
        try:
            self._manager = pyvisa.ResourceManager(backend)
        except (VisaError, OSError, ValueError) as exc:
            raise InstrumentError(address, f"no VISA backend {backend!r}: {exc}") from exc
        try:
            self._resource = self._manager.open_resource(
                address,
                read_termination=read_termination,
                write_termination=write_termination,
                timeout=timeout_ms,
            )
        except (VisaError, OSError, ValueError) as exc:
            self._manager.close()
            raise InstrumentError(address, f"cannot open VISA resource: {exc}") from exc
        if address.upper().endswith("::SOCKET"):
            self._disable_nagle()

    def write(self, command: str) -> None:
        """Send one command line."""
        with self._lock:
            resource = self._open_resource()
            try:
                resource.write(command)
            except (VisaError, OSError) as exc:
                raise self._translate(exc, command) from exc

    def query(self, command: str) -> str:
        """Send one command line and return the reply line without its terminator."""
        with self._lock:
            resource = self._open_resource()
            try:
                reply: str = resource.query(command)
            except (VisaError, OSError) as exc:
                raise self._translate(exc, command) from exc
            except UnicodeDecodeError as exc:
                raise InstrumentError(self.address, f"{command!r}: undecodable reply") from exc
        return reply.rstrip("\r\n")

    def close(self) -> None:
        """Close the resource; closing twice is harmless."""
        with self._lock:
            if self._resource is None:
                return
            resource, self._resource = self._resource, None
            try:
                resource.close()
                self._manager.close()
            except (VisaError, OSError) as exc:
                raise InstrumentError(self.address, f"close failed: {exc}") from exc

    def _disable_nagle(self) -> None:
        """Set TCP_NODELAY on a raw socket resource, as NI-VISA does by default.

        With Nagle on, a setting followed by `SYST:ERR?` waits out the instrument's delayed ACK
        (40 ms on Linux) because the setting has no reply to carry the ACK. pyvisa-py 0.8 maps
        VI_ATTR_TCPIP_NODELAY to a setter that refuses it, so fall back to its session's socket.
        """
        try:
            self._resource.set_visa_attribute(constants.VI_ATTR_TCPIP_NODELAY, constants.VI_TRUE)
            return
        except Exception:  # noqa: S110 - pyvisa-py raises its own UnknownAttribute here
            pass
        sessions = getattr(self._resource.visalib, "sessions", {})
        sock = getattr(sessions.get(self._resource.session), "interface", None)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _open_resource(self) -> Any:
        """Return the open resource or raise if the transport was closed."""
        if self._resource is None:
            raise InstrumentError(self.address, "transport is closed")
        return self._resource

    def _translate(self, exc: Exception, command: str) -> InstrumentError:
        """Map a pyvisa or socket error to InstrumentTimeout or InstrumentError."""
        if isinstance(exc, VisaIOError) and exc.error_code == constants.StatusCode.error_timeout:
            return InstrumentTimeout(self.address, f"no reply to {command!r} within {self.timeout_ms} ms")
        if isinstance(exc, TimeoutError):
            return InstrumentTimeout(self.address, f"{command!r} timed out: {exc}")
        return InstrumentError(self.address, f"{command!r} failed: {exc}")
