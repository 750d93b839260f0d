"""VISA message transport over pyvisa; the only module in qualify that imports pyvisa."""

from __future__ import annotations

import contextlib
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

    After a timeout the next command first clears the device (viClear), so a reply that arrives
    late is discarded instead of being taken as the answer to the next query. On a raw socket, a
    timeout caused by the instrument closing the connection is reported as such, and the
    transport refuses further use at once instead of waiting out one timeout per command.
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
        self._needs_clear = False
        self._lost = False
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
            resource = self._ready_resource()
            try:
                resource.write(command)
            except (VisaError, OSError) as exc:
                raise self._translate(exc, command) from exc

    def query(self, command: str) -> str:
        """Send one command line and return the reply line without its terminator."""
        with self._lock:
            resource = self._ready_resource()
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
        sock = self._socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _socket(self) -> socket.socket | None:
        """Return the raw socket under a pyvisa-py SOCKET session, if there is one."""
        sessions = getattr(self._resource.visalib, "sessions", {})
        sock = getattr(sessions.get(self._resource.session), "interface", None)
        return sock if isinstance(sock, socket.socket) else None

    def _peer_closed(self) -> bool:
        """Return whether the instrument closed a raw socket connection (EOF or reset)."""
        sock = self._socket()
        if sock is None:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _ready_resource(self) -> Any:
        """Return the open resource, cleared of late replies after a timeout."""
        if self._resource is None:
            raise InstrumentError(self.address, "transport is closed")
        if self._lost:
            raise InstrumentError(self.address, "the instrument closed the connection")
        if self._needs_clear:
            self._needs_clear = False
            # A device clear discards a reply still on its way; a backend that cannot clear
            # this resource kind leaves nothing to discard either.
            with contextlib.suppress(VisaError, OSError, NotImplementedError):
                self._resource.clear()
        return self._resource

    def _translate(self, exc: Exception, command: str) -> InstrumentError:
        """Map a pyvisa or socket error to InstrumentTimeout or InstrumentError."""
        timed_out = isinstance(exc, TimeoutError) or (
            isinstance(exc, VisaIOError) and exc.error_code == constants.StatusCode.error_timeout
        )
        if isinstance(exc, BrokenPipeError | ConnectionResetError) or (timed_out and self._peer_closed()):
            self._lost = True
            return InstrumentError(self.address, f"{command!r}: the instrument closed the connection")
        if timed_out:
            self._needs_clear = True
            return InstrumentTimeout(self.address, f"no reply to {command!r} within {self.timeout_ms} ms")
        return InstrumentError(self.address, f"{command!r} failed: {exc}")
