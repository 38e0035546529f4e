"""Replay of an EDF+/BDF+ recording as a :class:`Source` (no BrainFlow needed)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..exceptions import DataError
from ..utils._checks import check_number
from .base import Source


@contextmanager
def open_edf(path):
    """Open an EDF/BDF file whose channels share one rate; yield ``(reader, sfreq)``.

    Raises :class:`DataError` for a file that is not EDF/BDF or mixes sampling rates.
    """
    import pyedflib

    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as err:
        raise DataError(f"cannot read {str(path)!r} as EDF/BDF ({err}); pass an EDF+ or "
                        "BDF+ recording.") from None
    try:
        rates = {reader.getSampleFrequency(i) for i in range(reader.signals_in_file)}
        if len(rates) > 1:
            raise DataError(f"{str(path)!r} mixes sampling rates {sorted(rates)}; replay "
                            "needs one rate for every channel; resample first.")
        yield reader, float(rates.pop()) if rates else float("nan")
    finally:
        reader.close()


class EDFSource(Source):
    """Stream a recorded EDF+/BDF+ file at real time or faster.

    Parameters
    ----------
    path : str | Path
        The recording (for example one written by ``physioemo acquire``).
    speed : float | None
        Replay this many times faster than real time; ``None`` delivers as fast as it is
        read (in blocks of ``sfreq`` samples).

    Attributes
    ----------
    annotations : list of dict
        The file's annotations (``onset``, ``duration``, ``description``).
    """

    def __init__(self, path, *, speed=1.0):
        super().__init__()
        self.path = path
        self.speed = speed
        self._load_header()

    def _load_header(self):
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise DataError(f"recording {str(path)!r} does not exist; pass the path of an "
                            "EDF+ or BDF+ file.")
        if self.speed is not None:
            check_number("speed", self.speed, low=0, low_inclusive=False,
                         hint="pass speed=1.0 for real time or None for as fast as possible")
        with open_edf(path) as (reader, sfreq):
            n = reader.signals_in_file
            self.ch_names = reader.getSignalLabels()
            self.sfreq = sfreq
            self.units = reader.getPhysicalDimension(0) if n else "uV"
            self.physical_min = float(reader.getPhysicalMinimum(0))
            self.physical_max = float(reader.getPhysicalMaximum(0))
            onsets, durations, texts = reader.readAnnotations()
            self.annotations = [{"onset": float(o), "duration": float(d), "description": t}
                                for o, d, t in zip(onsets, durations, texts, strict=True)]
            self._reader_path = path
        self.line_freq = None
        self.rate_factor = self.speed or 1.0

    @property
    def exhausted(self):
        """Whether every sample of the file has been read."""
        return self._running and self.n_samples >= self._data.shape[1]

    def info(self):
        """Return a dict describing the source (stored in the sidecar JSON)."""
        out = super().info()
        out.update({"file": str(self._reader_path), "speed": self.speed})
        return out

    def _start(self):
        import pyedflib

        reader = pyedflib.EdfReader(str(self._reader_path))
        try:
            self._data = np.vstack([reader.readSignal(i)
                                    for i in range(reader.signals_in_file)])
        finally:
            reader.close()
        self._t0 = time.time()

    def _read(self, max_samples):
        n_total = self._data.shape[1]
        i0 = self.n_samples
        if self.speed is None:
            i1 = min(n_total, i0 + int(self.sfreq))
        else:
            due = int((time.time() - self._t0) * self.sfreq * self.speed)
            i1 = min(n_total, max(i0, due))
        if max_samples is not None:
            i1 = min(i1, i0 + int(max_samples))
        rate = self.sfreq * (self.speed or 1.0)
        timestamps = self._t0 + np.arange(i0, i1) / rate
        return self._data[:, i0:i1], timestamps, None

    def _stop(self):
        self._data = None
