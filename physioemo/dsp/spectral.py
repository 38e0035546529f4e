"""Band power, differential entropy and sliding windows, offline and online.

Band power follows ``scipy.signal.periodogram(x, sfreq, window="hann",
detrend="constant")`` (one-sided, density scaling): the power of a band is the sum of
the periodogram over the bins ``low <= f < high`` times the bin width ``sfreq /
n_times``. The batched implementation (detrend and window in Numba, one real FFT per
window, bin sums in Numba) agrees with that oracle to ~1e-14 relative.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_array, check_number, check_option, check_sfreq
from .bands import FREQ_BANDS

__all__ = ["band_power", "differential_entropy", "sliding_windows", "OnlineBandPower"]

_KINDS = ("power", "de")
#: Samples per batch of windows (~1 MB of float64: the FFT buffers stay in cache).
_BATCH_SAMPLES = 131_072


def _check_bands(bands, sfreq):
    """Return ``(names, lows, highs)`` for ``bands`` (``None`` means FREQ_BANDS)."""
    if bands is None:
        bands = FREQ_BANDS
    if not isinstance(bands, Mapping) or not bands:
        raise ParameterError(f"bands must be a non-empty mapping name -> (low, high) in Hz, got "
                             f"{bands!r}; pass e.g. {{'alpha': (8.0, 14.0)}} or None for "
                             "FREQ_BANDS.")
    nyq = sfreq / 2.0
    lows, highs = [], []
    for name, edges in bands.items():
        ok = (isinstance(edges, (tuple, list, np.ndarray)) and len(edges) == 2
              and all(isinstance(e, numbers.Real) and not isinstance(e, bool)
                      and np.isfinite(e) for e in edges))
        if not ok:
            raise ParameterError(f"band {name!r} must be a (low, high) pair of finite numbers "
                                 f"in Hz, got {edges!r}; pass e.g. (8.0, 14.0).")
        low, high = float(edges[0]), float(edges[1])
        if not 0 <= low < high <= nyq:
            raise ParameterError(f"band {name!r}=({low}, {high}) must satisfy 0 <= low < high "
                                 f"<= Nyquist ({nyq} Hz for sfreq={sfreq}); fix the band "
                                 "edges or resample.")
        lows.append(low)
        highs.append(high)
    return tuple(bands), np.array(lows), np.array(highs)


class _Plan:
    """Window, bin ranges and per-bin weights for one (sfreq, n_times, bands) setting."""

    def __init__(self, sfreq, n_times, bands, relative):
        from scipy.fft import rfftfreq
        from scipy.signal import get_window

        self.names, lows, highs = _check_bands(bands, sfreq)
        self.relative = relative
        self.n_times = n_times
        self.window = np.ascontiguousarray(get_window("hann", n_times), dtype=np.float64)
        freqs = rfftfreq(n_times, 1.0 / sfreq)  # the same bin frequencies as periodogram
        # periodogram density scaling, one-sided doubling (not DC, not an even-length
        # Nyquist bin), times the bin width: power = sum(Pxx[bins]) * df.
        df = sfreq / n_times
        weight = np.full(freqs.size, 2.0)
        weight[0] = 1.0
        if n_times % 2 == 0:
            weight[-1] = 1.0
        self.weight = weight / (sfreq * np.sum(self.window ** 2)) * df
        if relative:
            lows = np.append(lows, lows.min())
            highs = np.append(highs, highs.max())
        # bins with low <= f < high, by exact comparison with periodogram's frequencies
        self.lo = np.searchsorted(freqs, lows, side="left").astype(np.int64)
        self.hi = np.searchsorted(freqs, highs, side="left").astype(np.int64)
        empty = np.flatnonzero(self.hi <= self.lo)
        if empty.size:
            j = int(empty[0])
            name = self.names[j] if j < len(self.names) else "total"
            raise ParameterError(
                f"band {name!r} ({lows[j]}-{highs[j]} Hz) contains no frequency bin for "
                f"windows of {n_times} samples at sfreq={sfreq} (bin width {df:g} Hz); use "
                "longer windows or wider bands.")

    def _batch(self, x3, res, r0, r1):
        """Band powers of rows ``r0:r1`` (GIL released in every step)."""
        from scipy import fft

        from . import _kernels

        buf = np.empty((r1 - r0, self.n_times))
        _kernels.detrend_window(x3, self.window, r0, buf)
        spec = fft.rfft(buf, axis=-1, overwrite_x=True)
        _kernels.band_sums(spec, self.lo, self.hi, self.weight, res[r0:r1])

    def compute(self, x3, out):
        """Band powers of every window of ``x3`` (n_outer, n_windows, n_times) into out."""
        from . import _kernels

        n_rows = x3.shape[0] * x3.shape[1]
        res = np.empty((n_rows, self.lo.size))
        # batches small enough for the cache, spread over a few threads
        step = max(1, _BATCH_SAMPLES // self.n_times)
        _kernels.run_rows(self._batch, n_rows, step, x3, res)
        if self.relative:
            out[...] = res[:, :-1] / res[:, -1:]
        else:
            out[...] = res
        return out


def _band_power(data, sfreq, bands, relative, name="data"):
    sfreq = check_sfreq(sfreq)
    data = check_array(name, data, min_ndim=2)
    if data.dtype != np.float64:  # float16/float32/longdouble: compute in float64
        data = data.astype(np.float64)
    n_times = data.shape[-1]
    if n_times < 2:
        raise DataError(f"{name} has {n_times} sample(s) on its last axis; band power needs at "
                        "least 2 (one window of n_times samples per channel); pass longer "
                        "windows.")
    plan = _Plan(sfreq, n_times, bands, bool(relative))
    lead = data.shape[:-1]
    x3 = data.reshape((-1,) + data.shape[-2:])  # a view whenever the strides allow
    out = np.empty((int(np.prod(lead)), len(plan.names)))
    plan.compute(x3, out)
    return out.reshape(lead + (len(plan.names),)), plan


def band_power(data, sfreq, bands=None, *, relative=False):
    """Power in each frequency band from the Hann-windowed periodogram.

    Parameters
    ----------
    data : ndarray, shape (..., n_channels, n_times)
        Floating-point signal (e.g. one window per channel, or the output of
        :func:`sliding_windows`: ``(n_channels, n_windows, window_samples)``). The
        whole last axis is one periodogram.
    sfreq : float
        Sampling frequency in Hz.
    bands : mapping of str to (float, float) | None
        Band name -> ``(low, high)`` in Hz; ``None`` uses :data:`FREQ_BANDS`. A band
        holds the bins ``low <= f < high``.
    relative : bool
        Divide each band by the total power over the full span of ``bands``
        (``min(low)`` to ``max(high)``; 1-45 Hz for :data:`FREQ_BANDS`).

    Returns
    -------
    power : ndarray, shape (..., n_channels, n_bands)
        ``sum(Pxx[low <= f < high]) * (sfreq / n_times)`` where ``f, Pxx =
        scipy.signal.periodogram(data, sfreq, window="hann", detrend="constant")``,
        in squared data units (e.g. V²), bands in the order of ``bands``.
    """
    return _band_power(data, sfreq, bands, relative)[0]


def differential_entropy(data, sfreq, bands=None):
    """Differential entropy of each band, ``0.5 * ln(2 * pi * e * P)``.

    For a Gaussian band-limited signal of power ``P`` this is its differential
    entropy, the DE feature of DREAMER/SEED work.

    Parameters
    ----------
    data : ndarray, shape (..., n_channels, n_times)
        Floating-point signal.
    sfreq : float
        Sampling frequency in Hz.
    bands : mapping of str to (float, float) | None
        As in :func:`band_power`.

    Returns
    -------
    de : ndarray, shape (..., n_channels, n_bands)
        ``0.5 * np.log(2 * np.pi * np.e * band_power(data, sfreq, bands))``; ``-inf``
        for a band with zero power.
    """
    power = band_power(data, sfreq, bands)
    return _de(power)


def _de(power):
    return 0.5 * np.log(2.0 * np.pi * np.e * power)


def sliding_windows(data, window_samples, step_samples):
    """Windows along the last axis as a read-only view (no copy).

    Parameters
    ----------
    data : ndarray, shape (..., n_times)
        Any array; time is the last axis.
    window_samples : int
        Samples per window (``<= n_times``).
    step_samples : int
        Samples between the starts of consecutive windows (``window_samples`` for
        non-overlapping windows). Trailing samples that do not fill a window are dropped.

    Returns
    -------
    windows : ndarray, shape (..., n_windows, window_samples)
        ``windows[..., k, :] == data[..., k * step_samples:k * step_samples +
        window_samples]``, with ``n_windows = (n_times - window_samples) //
        step_samples + 1``. A view of ``data``: it shares memory and is read-only.
    """
    data = check_array("data", data, min_ndim=1, dtype_kind=None, finite=False)
    window_samples = check_number("window_samples", window_samples, low=1, integer=True)
    step_samples = check_number("step_samples", step_samples, low=1, integer=True)
    n_times = data.shape[-1]
    if window_samples > n_times:
        raise DataError(f"window_samples={window_samples} is longer than data's last axis "
                        f"({n_times} samples, shape {data.shape}); a window must fit in the "
                        "signal, so use shorter windows or a longer signal.")
    view = np.lib.stride_tricks.sliding_window_view(data, window_samples, axis=-1)
    return view[..., ::step_samples, :]


class OnlineBandPower:
    """Band power or DE of the most recent window of a stream.

    Keeps the last ``window_samples`` samples of every channel; after each
    :meth:`update` with a full window available the result equals
    :func:`band_power` (or :func:`differential_entropy`) on those samples.

    Parameters
    ----------
    sfreq : float
        Sampling frequency in Hz.
    n_channels : int
        Channels (rows) of every chunk.
    window_samples : int
        Length of the analysed window in samples (e.g. ``int(sfreq)`` for 1 s).
    bands : mapping of str to (float, float) | None
        As in :func:`band_power`; ``None`` uses :data:`FREQ_BANDS`.
    kind : ``"power"`` | ``"de"``
        Band power or differential entropy.
    relative : bool
        Relative band power (only with ``kind="power"``).

    Attributes
    ----------
    n_samples_seen_ : int
        Samples per channel received since the last reset.
    """

    def __init__(self, sfreq, n_channels, window_samples, *, bands=None, kind="power",
                 relative=False):
        self.sfreq = sfreq
        self.n_channels = n_channels
        self.window_samples = window_samples
        self.bands = bands
        self.kind = kind
        self.relative = relative

    def __repr__(self):
        return (f"OnlineBandPower(sfreq={self.sfreq!r}, n_channels={self.n_channels!r}, "
                f"window_samples={self.window_samples!r}, bands={self.bands!r}, "
                f"kind={self.kind!r}, relative={self.relative!r})")

    def reset(self):
        """Validate the settings and forget all samples; return ``self``."""
        sfreq = check_sfreq(self.sfreq)
        n_ch = check_number("n_channels", self.n_channels, low=1, integer=True)
        n_win = check_number("window_samples", self.window_samples, low=2, integer=True)
        check_option("kind", self.kind, _KINDS)
        if self.relative and self.kind == "de":
            raise ParameterError("relative=True only applies to kind='power', got kind='de'; "
                                 "use kind='power' or relative=False.")
        self._plan = _Plan(sfreq, n_win, self.bands, bool(self.relative))
        # twice the window so the latest window is always one contiguous slice
        self._ring = np.zeros((n_ch, 2 * n_win))
        self._pos = 0  # next write position in the first half
        self._n_ch, self._n_win = n_ch, n_win
        self._out = np.empty((n_ch, len(self._plan.names)))
        self.n_samples_seen_ = 0
        return self

    @property
    def band_names(self):
        """Names of the bands, in output order."""
        if not hasattr(self, "_plan"):
            self.reset()
        return self._plan.names

    def update(self, chunk):
        """Append a chunk; return the latest window's features when one is full.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_chunk)
            The next samples of every channel.

        Returns
        -------
        features : ndarray, shape (n_channels, n_bands) | None
            Band power (or DE) of the last ``window_samples`` samples, or ``None``
            while fewer samples have been received.
        """
        if not hasattr(self, "_plan"):
            self.reset()
        chunk = check_array("chunk", chunk, ndim=2)
        if chunk.shape[0] != self._n_ch:
            raise DataError(f"chunk has {chunk.shape[0]} channel(s) (shape {chunk.shape}) but "
                            f"this OnlineBandPower has n_channels={self._n_ch}; pass chunks "
                            "of shape (n_channels, n_chunk).")
        n_win = self._n_win
        n_new = chunk.shape[1]
        if n_new >= n_win:
            self._ring[:, :n_win] = chunk[:, -n_win:]
            self._ring[:, n_win:] = chunk[:, -n_win:]
            self._pos = 0
        else:
            # the sample at position p lives at p and p + n_win, so
            # ring[:, pos:pos + n_win] is always the latest window in time order
            first = min(n_new, n_win - self._pos)
            self._ring[:, self._pos:self._pos + first] = chunk[:, :first]
            self._ring[:, self._pos + n_win:self._pos + n_win + first] = chunk[:, :first]
            rest = n_new - first
            if rest:
                self._ring[:, :rest] = chunk[:, first:]
                self._ring[:, n_win:n_win + rest] = chunk[:, first:]
            self._pos = (self._pos + n_new) % n_win
        self.n_samples_seen_ += n_new
        if self.n_samples_seen_ < n_win:
            return None
        return self.compute()

    def window(self):
        """Return a copy of the latest window, shape (n_channels, window_samples)."""
        if not hasattr(self, "_plan"):
            self.reset()
        return self._ring[:, self._pos:self._pos + self._n_win].copy()

    def compute(self):
        """Features of the latest full window.

        Returns
        -------
        features : ndarray, shape (n_channels, n_bands)
            A new array.
        """
        if not hasattr(self, "_plan") or self.n_samples_seen_ < self._n_win:
            seen = getattr(self, "n_samples_seen_", 0)
            raise DataError(f"OnlineBandPower needs {self.window_samples} samples per channel "
                            f"before it can compute, got {seen}; call update() with more "
                            "samples first.")
        latest = self._ring[None, :, self._pos:self._pos + self._n_win]
        out = self._plan.compute(latest, np.empty_like(self._out))
        return _de(out) if self.kind == "de" else out
