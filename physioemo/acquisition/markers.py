"""Event markers: keyboard keys, loopback TCP/UDP text markers and LSL marker streams.

Every marker source puts a :class:`Marker` into a :class:`MarkerHub`; the acquisition
loop places each marker on the sample whose timestamp matches ``host_time`` and stores it
in full in the recording's journal and sidecar (see :mod:`physioemo.acquisition.edf` for
what the EDF+ itself can hold). Markers are never dropped: a TCP line or UDP datagram line
is one marker, kept byte for byte (bytes that are not UTF-8 are kept as bytes), with no
length or rate limit; listeners read what is still waiting when they stop. Network
listeners bind to 127.0.0.1 only, and log the port they got once the bind succeeded.
"""

from __future__ import annotations

import itertools
import queue
import select
import socket
import sys
import threading
import time
from typing import NamedTuple

from ..exceptions import DeviceError, ParameterError
from ..utils.logging import logger

#: Host the TCP/UDP marker listeners bind to (loopback only: markers come from this machine).
MARKER_HOST = "127.0.0.1"


class Marker(NamedTuple):
    """One received marker."""

    #: When it was received, in seconds since the epoch.
    host_time: float
    #: Its text: exactly the bytes received if they are UTF-8, else with ``\xNN`` escapes.
    text: str
    #: Where it came from: ``"tcp"``, ``"udp"``, ``"lsl"`` or ``"key"``.
    origin: str
    #: The exact bytes received when they are not valid UTF-8, else ``None``.
    raw: bytes | None = None


class MarkerHub:
    """Thread-safe queue of received markers; nothing received is dropped or changed.

    Attributes
    ----------
    n_received : int
        Markers queued so far.
    """

    def __init__(self):
        self._queue = queue.SimpleQueue()
        self._count = itertools.count(1)
        self.n_received = 0

    def add(self, text, origin, host_time=None):
        """Queue a marker received at ``host_time`` (seconds since the epoch; now).

        Parameters
        ----------
        text : str | bytes
            The marker; bytes are kept exactly (see :class:`Marker`). An empty marker
            carries nothing and is not queued; any other text is kept whole, spaces,
            NUL and all.
        origin : str
            Where it came from.
        host_time : float | None
            When it was received.
        """
        raw = None
        if isinstance(text, (bytes, bytearray)):
            data = bytes(text)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text, raw = data.decode("utf-8", "backslashreplace"), data
        text = str(text)
        if text:
            self._queue.put(Marker(time.time() if host_time is None else float(host_time),
                                   text, origin, raw))
            self.n_received = next(self._count)

    def drain(self):
        """Return and remove every waiting marker, a list of :class:`Marker`."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out


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


class UDPMarkers(_Listener):
    """Accept text markers as UDP datagrams on a loopback port (one or more lines each).

    Parameters
    ----------
    hub : MarkerHub
        Where markers go.
    port : int
        UDP port on 127.0.0.1 (0 picks a free one).
    """

    origin = "udp"

    def __init__(self, hub, port):
        super().__init__(hub)
        self.port = port

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

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self._add(data)

    def _add(self, data):
        now = time.time()
        for line in _lines(data):
            self.hub.add(line, self.origin, now)

    def _drain(self):
        if getattr(self, "_sock", None) is None:
            return
        self._sock.setblocking(False)
        while True:
            try:
                self._add(self._sock.recv(65536))
            except OSError:
                return

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


def parse_marker_specs(specs):
    """Parse ``--markers`` values into ``(kind, argument)`` pairs.

    Parameters
    ----------
    specs : list of str
        Items such as ``"tcp:5000"``, ``"udp:5001"``, ``"lsl:PsychoPy"``, ``"lsl"`` or
        ``"keyboard"``.

    Returns
    -------
    parsed : list of tuple
        ``("tcp", 5000)``, ``("udp", 5001)``, ``("lsl", "PsychoPy" or None)``,
        ``("keyboard", None)``.
    """
    out = []
    for spec in specs or ():
        kind, _, arg = str(spec).partition(":")
        kind = kind.lower()
        if kind in ("tcp", "udp"):
            try:
                port = int(arg)
            except ValueError:
                port = -1
            if not 0 <= port <= 65535:
                raise ParameterError(f"marker source {spec!r} needs a port number 0-65535 "
                                     f"after '{kind}:', got {arg!r}; write e.g. {kind}:5000.")
            out.append((kind, port))
        elif kind == "lsl":
            out.append(("lsl", arg or None))
        elif kind in ("keyboard", "key", "keys"):
            out.append(("keyboard", None))
        else:
            raise ParameterError(f"unknown marker source {spec!r}; it must be tcp:PORT, "
                                 "udp:PORT, lsl[:NAME] or keyboard; fix --markers.")
    return out


def make_listeners(specs, hub):
    """Create (not start) the listeners for parsed ``--markers`` specs."""
    out = []
    for kind, arg in specs:
        if kind == "tcp":
            out.append(TCPMarkers(hub, arg))
        elif kind == "udp":
            out.append(UDPMarkers(hub, arg))
        elif kind == "lsl":
            out.append(LSLMarkers(hub, arg))
        else:
            out.append(KeyboardMarkers(hub))
    return out
