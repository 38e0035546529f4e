"""Marker listeners: loopback TCP/UDP text markers, LSL marker streams and keyboard keys.

Each listener runs a background thread that puts what it receives into a
:class:`~physioemo.acquisition.markers.MarkerHub`, byte for byte; when it stops it first
reads what is still waiting. Network listeners bind to 127.0.0.1 only and log the port
they got once the bind succeeded.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time

from ..exceptions import DeviceError
from ..utils.logging import logger

#: Host the TCP/UDP marker listeners bind to (loopback only: markers come from this machine).
MARKER_HOST = "127.0.0.1"


def _lines(data):
    """Split received bytes into marker lines (a newline ends a line; a CR before it too)."""
    return [line[:-1] if line.endswith(b"\r") else line for line in data.split(b"\n")]


class _Listener:
    """A background thread feeding a hub; ``start``/``stop``."""

    origin = "?"

    def __init__(self, hub):
        self.hub = hub
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._open()
        self._thread = threading.Thread(target=self._run, name=f"markers-{self.origin}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        try:
            self._drain()  # what arrived before the stop is a marker too
        finally:
            self._close()

    def _open(self):
        pass

    def _drain(self):
        pass

    def _close(self):
        pass


class TCPMarkers(_Listener):
    """Accept text markers, one per line, on a loopback TCP port.

    Parameters
    ----------
    hub : MarkerHub
        Where markers go.
    port : int
        TCP port on 127.0.0.1 (0 picks a free one, see :attr:`port` after start).
    """

    origin = "tcp"

    def __init__(self, hub, port):
        super().__init__(hub)
        self.port = port

    def _open(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((MARKER_HOST, int(self.port)))
        except OSError as err:
            self._sock.close()
            raise DeviceError(f"cannot listen for TCP markers on {MARKER_HOST}:{self.port} "
                              f"({err.strerror}); the port must be free; pick another "
                              "port in --markers tcp:PORT.") from None
        self._sock.listen(8)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        self._clients = {}
        logger.info("listening for TCP markers on %s:%d", MARKER_HOST, self.port)

    def _run(self):
        while not self._stop.is_set():
            socks = [self._sock, *self._clients]
            try:
                ready, _, _ = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                return
            for s in ready:
                if s is self._sock:
                    self._accept()
                else:
                    self._receive(s)

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setblocking(False)
            self._clients[conn] = b""

    def _receive(self, s, until_empty=False):
        """Read what waits on ``s``; queue each complete line; at EOF the rest too."""
        while True:
            try:
                data = s.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            now = time.time()
            if not data:
                rest = self._clients.pop(s, b"")
                if rest:
                    self.hub.add(_lines(rest)[0], self.origin, now)
                s.close()
                return
            *lines, self._clients[s] = _lines(self._clients[s] + data)
            for line in lines:
                self.hub.add(line, self.origin, now)
            if not until_empty:
                return

    def _drain(self):
        if getattr(self, "_sock", None) is None:
            return
        self._accept()
        for s in list(self._clients):
            self._receive(s, until_empty=True)
        for s, rest in list(self._clients.items()):  # a last line without its newline
            if rest:
                self.hub.add(_lines(rest)[0], self.origin, time.time())
            self._clients[s] = b""

    def _close(self):
        for s in list(getattr(self, "_clients", {})):
            s.close()
        if getattr(self, "_sock", None) is not None:
            self._sock.close()


def _udp_drops(sock):
    """Datagrams the kernel dropped for ``sock`` (Linux ``/proc/net/udp``), else None."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        with open("/proc/net/udp") as fid:
            for line in fid.readlines()[1:]:
                cols = line.split()
                if len(cols) > 12 and cols[9] == inode:
                    return int(cols[12])
    except (OSError, ValueError):
        pass
    return None


class UDPMarkers(_Listener):
    """Accept text markers as UDP datagrams on a loopback port (one or more lines each).

    UDP has no flow control: a sender faster than this reader fills the socket's receive
    buffer and the operating system drops datagrams. On Linux the drops are counted in
    :attr:`n_lost` when the listener stops, so that such a loss is stated, never silent.

    Parameters
    ----------
    hub : MarkerHub
        Where markers go.
    port : int
        UDP port on 127.0.0.1 (0 picks a free one).

    Attributes
    ----------
    n_lost : int | None
        Datagrams the operating system dropped before they were read (``None`` where it
        cannot say).
    """

    origin = "udp"

    def __init__(self, hub, port):
        super().__init__(hub)
        self.port = port
        self.n_lost = None

    def _open(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((MARKER_HOST, int(self.port)))
        except OSError as err:
            self._sock.close()
            raise DeviceError(f"cannot listen for UDP markers on {MARKER_HOST}:{self.port} "
                              f"({err.strerror}); the port must be free; pick another "
                              "port in --markers udp:PORT.") from None
        try:  # room for bursts while the reader waits for the GIL (the kernel may cap it)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        except OSError:
            pass
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        logger.info("listening for UDP markers on %s:%d", MARKER_HOST, self.port)

    def _receive(self):
        data = self._sock.recv(65536)
        now = time.time()
        for line in _lines(data):
            self.hub.add(line, self.origin, now)

    def _run(self):
        while not self._stop.is_set():
            try:
                self._receive()
            except TimeoutError:
                continue
            except OSError:
                return

    def _drain(self):
        if getattr(self, "_sock", None) is None:
            return
        self._sock.setblocking(False)
        while True:
            try:
                self._receive()
            except OSError:
                break
        self.n_lost = _udp_drops(self._sock)

    def _close(self):
        if getattr(self, "_sock", None) is not None:
            self._sock.close()


class LSLMarkers(_Listener):
    """Read an LSL marker stream (for example the one PsychoPy sends).

    Parameters
    ----------
    hub : MarkerHub
        Where markers go.
    name : str | None
        Stream name to resolve; ``None`` takes the first stream of type ``Markers``.
    timeout_s : float
        How long to look for the stream at start.
    """

    origin = "lsl"

    def __init__(self, hub, name=None, timeout_s=5.0):
        super().__init__(hub)
        self.name = name
        self.timeout_s = timeout_s

    def _open(self):
        import pylsl

        if self.name:
            streams = pylsl.resolve_byprop("name", self.name, timeout=self.timeout_s)
        else:
            streams = pylsl.resolve_byprop("type", "Markers", timeout=self.timeout_s)
        if not streams:
            what = f"named {self.name!r}" if self.name else "of type 'Markers'"
            raise DeviceError(f"no LSL marker stream {what} found within {self.timeout_s:g} "
                              "s; start the sender (e.g. PsychoPy) first or fix the name in "
                              "--markers lsl:NAME.")
        self._inlet = pylsl.StreamInlet(streams[0], processing_flags=pylsl.proc_clocksync)
        self._inlet.open_stream(timeout=self.timeout_s)
        self._local_clock = pylsl.local_clock

    def _run(self):
        while not self._stop.is_set():
            try:
                sample, ts = self._inlet.pull_sample(timeout=0.05)
            except Exception as err:  # noqa: BLE001 - a lost stream must not kill acquisition
                logger.warning("LSL marker stream lost: %s", err)
                return
            if sample is None:
                continue
            # LSL time (already clock-synced to this host) -> host wall-clock time
            host = time.time() - (self._local_clock() - ts)
            self.hub.add(" ".join(str(s) for s in sample), self.origin, host)

    def _close(self):
        inlet = getattr(self, "_inlet", None)
        if inlet is not None:
            inlet.close_stream()


class KeyboardMarkers(_Listener):
    """Turn key presses in the terminal into markers (``key:<c>``); needs a TTY.

    ``q`` is not a marker: it asks the acquisition to stop (see :attr:`quit_requested`).
    """

    origin = "key"

    def __init__(self, hub):
        super().__init__(hub)
        self.quit_requested = threading.Event()
        self._saved = None

    def _open(self):
        if not sys.stdin.isatty():
            raise DeviceError("keyboard markers need an interactive terminal (stdin is not a "
                              "TTY); drop 'keyboard' from --markers or run in a terminal.")
        import termios
        import tty

        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)

    def _run(self):
        import os

        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if ready:
                ch = os.read(self._fd, 1).decode(errors="backslashreplace")
                if ch == "q":
                    self.quit_requested.set()
                elif ch.strip():
                    self.hub.add(f"key:{ch}", self.origin)

    def _close(self):
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None
