"""Frequency bands: the one place they are defined."""

from __future__ import annotations

from types import MappingProxyType

#: EEG frequency bands in Hz, name -> (low, high), ordered from low to high.
#: A band holds the frequencies ``low <= f < high`` (the convention of
#: :func:`physioemo.dsp.band_power`). These are the bands used across DREAMER/SEED work.
FREQ_BANDS = MappingProxyType({
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 14.0),
    "beta": (14.0, 31.0),
    "gamma": (31.0, 45.0),
})

__all__ = ["FREQ_BANDS"]
