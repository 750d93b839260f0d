"""Line servers that put a simulated instrument behind a real link: loopback TCP or a pty.

A handler turns one command line into a reply line, or None when the command has no reply (a
SCPI setting, or an instrument that has stopped answering). A handler may also return a `Reply`
to send text without its terminator (a partial reply) or to hang up the link (a disconnect).
Drivers reach these servers through their ordinary transports (pyvisa `@py` sockets, pyserial),
so the whole stack runs as on a bench.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """What a server sends back for one command line, beyond a plain reply string."""

    text: str | None = None
    """The reply text; None sends nothing."""
    terminated: bool = True
    """False sends the text without its terminator, as a link that drops the end of a reply."""
    hangup: bool = False
    """True closes the link instead of answering (TCP: this connection; pty: the port)."""


LineHandler = Callable[[str], str | Reply | None]


def _as_reply(result: str | Reply | None) -> Reply:
    """Return a handler's result as a Reply."""
    return result if isinstance(result, Reply) else Reply(result)


_READ_CHUNK_BYTES = 4096


class _Wakeup:
    """A pipe that, once set, stays readable: every thread selecting on it wakes and sees stop."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        self.is_set = False

    def fileno(self) -> int:
        """Return the readable end, for selectors."""
        return self._read_fd

    def set(self) -> None:
        """Wake every waiting thread; the byte is never read, so the pipe stays readable."""
        if not self.is_set:
            self.is_set = True
            os.write(self._write_fd, b"x")

    def close(self) -> None:
        """Release both ends of the pipe."""
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _split_lines(buffer: bytes, end: bytes = b"\n") -> tuple[list[str], bytes]:
    """Split lines ending in `end` off `buffer`; return them (CR/LF stripped) and the rest."""
    *complete, rest = buffer.split(end)
    lines = [raw.strip(b"\r\n").decode("ascii", errors="replace") for raw in complete]
    return lines, rest


class TcpLineServer:
    """Serve a line handler on a loopback TCP port, one thread per connection, LF-terminated."""

    def __init__(self, handler: LineHandler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._requested_port = port
        self._listener: socket.socket | None = None
        self._wakeup: _Wakeup | None = None
        self._threads: list[threading.Thread] = []
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0

    @property
    def address(self) -> str:
        """Return the VISA resource string a pyvisa client opens: `TCPIP::host::port::SOCKET`."""
        if not self.port:
            raise RuntimeError("server not started")
        return f"TCPIP::{self._host}::{self.port}::SOCKET"

    def start(self) -> None:
        """Bind, listen and start accepting connections in a background thread."""
        if self._listener is not None:
            raise RuntimeError("server already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._host, self._requested_port))
        listener.listen()
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._wakeup = _Wakeup()
        self._spawn(self._accept_loop, f"TcpLineServer-accept-{self.port}")

    def stop(self) -> None:
        """Stop accepting, close every connection, join every thread."""
        if self._listener is None or self._wakeup is None:
            return
        self._wakeup.set()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._threads.clear()
        self._listener.close()
        self._wakeup.close()
        self._listener = None
        self._wakeup = None

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        """Start and remember a daemon thread so stop() can join it."""
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        """Accept connections until stopped; each gets its own serving thread."""
        assert self._listener is not None and self._wakeup is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wakeup, selectors.EVENT_READ)
            while not self._wakeup.is_set:
                for key, _ in selector.select():
                    if key.fileobj is self._wakeup:
                        return
                    try:
                        conn, peer = self._listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(True)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    with self._lock:
                        self._connections.append(conn)
                    self._spawn(self._serve, f"TcpLineServer-{self.port}-{peer[1]}", conn)

    def _serve(self, conn: socket.socket) -> None:
        """Read lines from one connection and write the handler's replies until EOF or stop."""
        assert self._wakeup is not None
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(conn, selectors.EVENT_READ)
            selector.register(self._wakeup, selectors.EVENT_READ)
            while True:
                events = selector.select()
                if any(key.fileobj is self._wakeup for key, _ in events):
                    return
                try:
                    chunk = conn.recv(_READ_CHUNK_BYTES)
                except OSError:
                    return
                if not chunk:
                    return
                lines, buffer = _split_lines(buffer + chunk)
                for line in lines:
                    reply = _as_reply(self._handler(line))
                    if reply.hangup:
                        self._hang_up(conn)
                        return
                    if reply.text is not None:
                        data = reply.text.encode("ascii", errors="replace")
                        try:
                            conn.sendall(data + b"\n" if reply.terminated else data)
                        except OSError:
                            return

    def _hang_up(self, conn: socket.socket) -> None:
        """Close one connection as an instrument that drops its link does; keep listening."""
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()


class PtyLineServer:
    """Serve a line handler on a pseudo-terminal; clients open `.address` with pyserial.

    `echo` sends each command line back before its reply and `prompt` follows every reply, for
    consoles that talk that way (a Quarch module echoes and prompts with `>`).
    """

    def __init__(
        self, handler: LineHandler, terminator: str = "\r\n", echo: bool = False, prompt: str = ""
    ) -> None:
        self._handler = handler
        self._terminator = terminator.encode("ascii")
        self._echo = echo
        self._prompt = prompt.encode("ascii")
        self._master_fd = -1
        self._slave_fd = -1
        self._slave_path = ""
        self._wakeup: _Wakeup | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """Return the slave device path (e.g. `/dev/pts/7`) that a serial client opens."""
        if not self._slave_path:
            raise RuntimeError("server not started")
        return self._slave_path

    def start(self) -> None:
        """Open the pty pair and serve the master side in a background thread."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        self._master_fd, self._slave_fd = os.openpty()
        # Raw mode before any client opens: with echo on, our replies would come back to us as
        # commands, and CR/LF translation would corrupt the terminator.
        tty.setraw(self._slave_fd)
        self._slave_path = os.ttyname(self._slave_fd)
        self._wakeup = _Wakeup()
        self._thread = threading.Thread(
            target=self._serve, name=f"PtyLineServer-{self._slave_path}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, join the thread and close both ends of the pty."""
        if self._thread is None or self._wakeup is None:
            return
        self._wakeup.set()
        self._thread.join()
        # The slave end stays open while serving so that a client closing its port does not hang
        # up the master; it goes last.
        for fd in (self._master_fd, self._slave_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master_fd = self._slave_fd = -1
        self._wakeup.close()
        self._thread = None
        self._wakeup = None

    def _serve(self) -> None:
        """Read terminated lines from the master side and write the handler's replies."""
        assert self._wakeup is not None
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._master_fd, selectors.EVENT_READ)
            selector.register(self._wakeup, selectors.EVENT_READ)
            while True:
                events = selector.select()
                if any(key.fileobj is self._wakeup for key, _ in events):
                    return
                try:
                    chunk = os.read(self._master_fd, _READ_CHUNK_BYTES)
                except OSError:
                    return
                lines, buffer = _split_lines(buffer + chunk, self._terminator[-1:])
                for line in lines:
                    reply = _as_reply(self._handler(line))
                    if reply.hangup:
                        # A serial port has no connection to drop: a disconnect is the adapter
                        # pulled out, so the port fails for good, as a USB-serial port does.
                        master_fd, self._master_fd = self._master_fd, -1
                        selector.unregister(master_fd)
                        with contextlib.suppress(OSError):
                            os.close(master_fd)
                        return
                    if reply.text is not None:
                        os.write(self._master_fd, self._frame(line, reply))

    def _frame(self, line: str, reply: Reply) -> bytes:
        """Return the bytes a reply puts on the line: echo, text, terminator, prompt."""
        echo = line.encode("ascii", "replace") + self._terminator if self._echo else b""
        data = reply.text.encode("ascii", "replace") if reply.text is not None else b""
        if not reply.terminated:
            return echo + data
        return echo + data + self._terminator + self._prompt
