"""Serial message transport over pyserial; the only module in qualify that imports pyserial."""

from __future__ import annotations

import threading

import serial

from drivers.errors import InstrumentError, InstrumentTimeout


class SerialTransport:
    """A MessageTransport over a serial port or any pyserial URL (`/dev/ttyUSB0`, `socket://`).

    One lock serialises every write and query, so threads sharing an instrument never interleave
    a command with another thread's reply.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        timeout_s: float = 2.0,
        terminator: str = "\r\n",
    ) -> None:
        if not terminator:
            raise ValueError("terminator must not be empty")
        self.address = url
        self.timeout_s = timeout_s
        self._terminator = terminator.encode("ascii")
        self._lock = threading.Lock()
        self._port: serial.SerialBase | None = None
        try:
            self._port = serial.serial_for_url(
                url, baudrate=baudrate, timeout=timeout_s, write_timeout=timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InstrumentError(url, f"cannot open serial port: {exc}") from exc

    def write(self, command: str) -> None:
        """Send one command line."""
        with self._lock:
            self._send(command)

    def query(self, command: str) -> str:
        """Send one command line and return the reply line without its terminator."""
        with self._lock:
            port = self._open_port()
            try:
                # A reply that arrived after an earlier timeout would otherwise be taken as the
                # answer to this command.
                port.reset_input_buffer()
            except (serial.SerialException, OSError) as exc:
                raise InstrumentError(self.address, f"{command!r} failed: {exc}") from exc
            self._send(command)
            try:
                raw = port.read_until(self._terminator)
            except (serial.SerialException, OSError) as exc:
                raise InstrumentError(self.address, f"{command!r} failed: {exc}") from exc
        if not raw.endswith(self._terminator):
            detail = f" (partial reply {raw!r})" if raw else ""
            raise InstrumentTimeout(
                self.address, f"no reply to {command!r} within {self.timeout_s} s{detail}"
            )
        try:
            return raw[: -len(self._terminator)].decode("ascii")
        except UnicodeDecodeError as exc:
            raise InstrumentError(self.address, f"{command!r}: undecodable reply {raw!r}") from exc

    def close(self) -> None:
        """Close the port; closing twice is harmless."""
        with self._lock:
            if self._port is None:
                return
            port, self._port = self._port, None
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                raise InstrumentError(self.address, f"close failed: {exc}") from exc

    def _open_port(self) -> serial.SerialBase:
        """Return the open port or raise if the transport was closed."""
        if self._port is None:
            raise InstrumentError(self.address, "transport is closed")
        return self._port

    def _send(self, command: str) -> None:
        """Write one terminated command; the caller holds the lock."""
        port = self._open_port()
        try:
            port.write(command.encode("ascii") + self._terminator)
            port.flush()
        except serial.SerialTimeoutException as exc:
            raise InstrumentTimeout(self.address, f"write of {command!r} timed out") from exc
        except (serial.SerialException, OSError) as exc:
            raise InstrumentError(self.address, f"{command!r} failed: {exc}") from exc
        except UnicodeEncodeError as exc:
            raise ValueError(f"command {command!r} is not ASCII") from exc
