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
import time
from typing import NamedTuple

from ..exceptions import ParameterError
from .listeners import (
    MARKER_HOST,
    KeyboardMarkers,
    LSLMarkers,
    TCPMarkers,
    UDPMarkers,
)

__all__ = ["MARKER_HOST", "KeyboardMarkers", "LSLMarkers", "Marker", "MarkerHub",
           "TCPMarkers", "UDPMarkers", "make_listeners", "parse_marker_specs"]


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
