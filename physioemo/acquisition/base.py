"""The :class:`Source` contract every acquisition source follows.

A source is started, read repeatedly and stopped (or used as a context manager). Each
:meth:`Source.read` returns a :class:`Chunk`: channels-first float64 samples, one
timestamp per sample (seconds on the host clock, never decreasing) and the index of the
chunk's first sample in the stream, so that consecutive chunks tile the stream exactly.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ..exceptions import DeviceError


@dataclass
class Chunk:
    """A block of consecutive samples from a :class:`Source`.

    Attributes
    ----------
    data : ndarray, shape (n_channels, n_times)
        Samples in the source's physical unit (float64, C-contiguous).
    timestamps : ndarray, shape (n_times,)
        Host time of each sample in seconds since the epoch; never decreasing.
    first_sample : int
        Index of ``data[:, 0]`` in the stream (the sample counter before this chunk).
    package_num : ndarray, shape (n_times,) | None
        The board's package counter, when it has one (used to count dropped samples).
    """

    data: np.ndarray
    timestamps: np.ndarray
    first_sample: int
    package_num: np.ndarray | None = None

    @property
    def n_times(self):
        """Number of samples in the chunk."""
        return self.data.shape[1]


class Source(abc.ABC):
    """Base class of acquisition sources.

    Subclasses set :attr:`ch_names`, :attr:`sfreq` and :attr:`units` in ``_start`` (or
    earlier) and implement ``_start``, ``_read`` and ``_stop``; this class keeps the state,
    the sample counter and the monotonic-timestamp guarantee.

    Attributes
    ----------
    ch_names : list of str
        Channel names, in row order of :attr:`Chunk.data`.
    sfreq : float
        Nominal sampling frequency in Hz.
    units : str
        Physical unit of the samples (``"uV"``).
    n_samples : int
        Number of samples returned by :meth:`read` since :meth:`start`.
    """

    ch_names: list
    sfreq: float
    units: str = "uV"

    def __init__(self):
        self.n_samples = 0
        self._running = False
        self._last_ts = -np.inf

    # -- contract ---------------------------------------------------------------------
    @property
    def n_channels(self):
        """Number of channels."""
        return len(self.ch_names)

    @property
    def running(self):
        """Whether the source has been started and not stopped."""
        return self._running

    @property
    def exhausted(self):
        """Whether a finite source (a file) has delivered all its samples."""
        return False

    def start(self):
        """Connect to the device (or open the file) and start streaming.

        Returns
        -------
        self : Source
            The started source.
        """
        if self._running:
            raise DeviceError(f"{type(self).__name__} is already started; call stop() "
                              "before starting it again.")
        self.n_samples = 0
        self._last_ts = -np.inf
        self._start()
        self._running = True
        return self

    def read(self, max_samples=None):
        """Return the samples that arrived since the previous call (never blocks).

        Parameters
        ----------
        max_samples : int | None
            Return at most this many samples; the rest stay for the next call.

        Returns
        -------
        chunk : Chunk
            Possibly empty (``n_times == 0``).
        """
        if not self._running:
            raise DeviceError(f"{type(self).__name__} is not started; call start() (or use "
                              "it in a `with` block) before read().")
        data, timestamps, package_num = self._read(max_samples)
        data = np.ascontiguousarray(data, dtype=np.float64)
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != self.n_channels or \
                timestamps.shape != (data.shape[1],):
            raise DeviceError(f"{type(self).__name__} returned data of shape {data.shape} "
                              f"with {timestamps.shape} timestamps; expected "
                              f"({self.n_channels}, n_times) and (n_times,); this is a bug "
                              "in the source, please report it.")
        if timestamps.size:
            # Host clocks can step backwards (NTP); the contract is non-decreasing time.
            timestamps = np.maximum.accumulate(np.maximum(timestamps, self._last_ts))
            self._last_ts = timestamps[-1]
        chunk = Chunk(data, timestamps, self.n_samples,
                      None if package_num is None else np.asarray(package_num))
        self.n_samples += data.shape[1]
        return chunk

    def stop(self):
        """Stop streaming and release the device (safe to call twice)."""
        if self._running:
            self._running = False
            self._stop()

    def reconnect(self):
        """Try to restart a stalled stream; return whether it worked.

        The default stops and starts the source again, keeping the sample counter.
        """
        n = self.n_samples
        last = self._last_ts
        try:
            self.stop()
            self.start()
        except DeviceError:
            return False
        self.n_samples = n
        self._last_ts = last
        return True

    def info(self):
        """Return a dict describing the source (stored in the sidecar JSON)."""
        return {"source": type(self).__name__, "ch_names": list(self.ch_names),
                "sfreq": self.sfreq, "units": self.units}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "running" if self._running else "stopped"
        return (f"<{type(self).__name__} | {len(getattr(self, 'ch_names', []))} channels, "
                f"{getattr(self, 'sfreq', '?')} Hz, {state}, {self.n_samples} samples>")

    # -- to implement -------------------------------------------------------------------
    @abc.abstractmethod
    def _start(self):
        """Open the device; set ``ch_names``, ``sfreq``, ``units``."""

    @abc.abstractmethod
    def _read(self, max_samples):
        """Return ``(data, timestamps, package_num_or_None)`` of new samples."""

    @abc.abstractmethod
    def _stop(self):
        """Release the device."""
