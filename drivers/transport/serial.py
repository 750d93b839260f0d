"""Serial message transport over pyserial; the only module in qualify that imports pyserial."""

from __future__ import annotations

import threading

import serial

from drivers.errors import InstrumentError, InstrumentTimeout

try:
    import termios
except ImportError:  # not POSIX: pyserial reports port failures as SerialException or OSError
    _PORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError)
else:
    # A tty that hung up (a USB adapter pulled out) fails tcflush with termios.error, which is
    # neither an OSError nor a SerialException.
    _PORT_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialTransport:
    """A MessageTransport over a serial port or any pyserial URL (`/dev/ttyUSB0`, `socket://`).

    One lock serialises every write and query, so threads sharing an instrument never interleave
    a command with another thread's reply.

    Consoles that echo each command and end every reply with a prompt (a Quarch module: the
    echoed line, the reply lines, then `>`) are read with `echo=True, prompt=">"`: a query then
    reads up to the prompt and returns the lines between echo and prompt, joined by LF.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        timeout_s: float = 2.0,
        terminator: str = "\r\n",
        echo: bool = False,
        prompt: str = "",
    ) -> None:
        if not terminator:
            raise ValueError("terminator must not be empty")
        self.address = url
        self.timeout_s = timeout_s
        self._terminator = terminator.encode("ascii")
        self._echo = echo
        self._prompt = prompt.encode("ascii")
        self._lock = threading.Lock()
        self._port: serial.SerialBase | None = None
        try:
            self._port = serial.serial_for_url(
                url, baudrate=baudrate, timeout=timeout_s, write_timeout=timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise InstrumentError(url, f"cannot open serial port: {exc}") from exc

    def set_framing(self, *, echo: bool, prompt: str) -> None:
        """Set how replies are framed: echoed command line first, and the prompt that ends them.

        A driver whose instrument talks this way calls it once, as pymeasure instruments set
        their adapter's termination.
        """
        with self._lock:
            self._echo = echo
            self._prompt = prompt.encode("ascii")

    def write(self, command: str) -> None:
        """Send one command line."""
        with self._lock:
            self._send(command)

    def query(self, command: str) -> str:
        """Send one command line and return the reply without its terminator (or prompt)."""
        with self._lock:
            port = self._open_port()
            try:
                # A reply that arrived after an earlier timeout would otherwise be taken as the
                # answer to this command.
                port.reset_input_buffer()
            except _PORT_ERRORS as exc:
                raise InstrumentError(self.address, f"{command!r} failed: {exc}") from exc
            self._send(command)
            # With a prompt the reply ends at terminator + prompt and may span lines (the echo
            # among them); without one it is the line after the echo, if any.
            end = self._terminator + self._prompt
            lines_to_read = 2 if self._echo and not self._prompt else 1
            raw = b""
            try:
                for _ in range(lines_to_read):
                    raw = port.read_until(end)
                    if not raw.endswith(end):
                        break
            except _PORT_ERRORS as exc:
                raise InstrumentError(self.address, f"{command!r} failed: {exc}") from exc
        if not raw.endswith(end):
            detail = f" (partial reply {raw!r})" if raw else ""
            raise InstrumentTimeout(
                self.address, f"no reply to {command!r} within {self.timeout_s} s{detail}"
            )
        try:
            text = raw[: -len(end)].decode("ascii")
        except UnicodeDecodeError as exc:
            raise InstrumentError(self.address, f"{command!r}: undecodable reply {raw!r}") from exc
        if not self._prompt:
            return text
        lines = text.split(self._terminator.decode("ascii"))
        return "\n".join(lines[1:] if self._echo else lines)

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
        except _PORT_ERRORS as exc:
            raise InstrumentError(self.address, f"{command!r} failed: {exc}") from exc
        except UnicodeEncodeError as exc:
            raise ValueError(f"command {command!r} is not ASCII") from exc
