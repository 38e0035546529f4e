"""Butterworth and notch filtering, offline (zero-phase or causal) and streaming.

All three entry points share one filter design, :func:`design_sos`, and one recursion
(Numba kernels in :mod:`physioemo.dsp._kernels`) that reproduces SciPy exactly:

* ``filter_data(..., phase="zero")`` equals ``scipy.signal.sosfiltfilt(sos, x)`` with its
  default odd padding, bit for bit;
* ``filter_data(..., phase="causal")`` equals
  ``scipy.signal.sosfilt(sos, x, zi=sosfilt_zi(sos) * x[..., :1])``;
* :class:`StreamingFilter` fed in chunks of any size gives the causal result.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_array, check_freq, check_number, check_option, check_sfreq

__all__ = ["design_sos", "filter_data", "notch_filter", "StreamingFilter"]

_PHASES = ("zero", "causal")
#: Rows per thread-pool task in offline filtering (a multiple of the kernels' row block).
_ROWS_PER_TASK = 8


def _kernels():
    # Numba compiles (or loads cached) kernels on first use, not on `import physioemo.dsp`.
    from . import _kernels

    return _kernels


def _check_notch(notch, sfreq):
    if notch is None:
        return ()
    if isinstance(notch, numbers.Real) and not isinstance(notch, bool):
        notch = (notch,)
    try:
        freqs = tuple(notch)
    except TypeError:
        raise ParameterError(f"notch frequencies must be a number or a sequence of numbers, "
                             f"got {notch!r}; pass e.g. (50.0,) or 60.0.") from None
    if not freqs:
        raise ParameterError("notch frequencies must not be empty, got (); pass e.g. (50.0,) "
                             "or None for no notch.")
    return tuple(check_freq("notch frequency", f, sfreq, allow_none=False) for f in freqs)


def design_sos(sfreq, l_freq=None, h_freq=None, *, order=4, notch=None, quality=30.0):
    """Design the second-order sections used by every filter in :mod:`physioemo.dsp`.

    A Butterworth band-pass (both cut-offs), high-pass (``h_freq=None``) or low-pass
    (``l_freq=None``), followed by one IIR notch section per frequency in ``notch``.

    Parameters
    ----------
    sfreq : float
        Sampling frequency in Hz.
    l_freq, h_freq : float | None
        Cut-off frequencies in Hz (-3 dB points). ``None`` means no high-pass
        (``l_freq``) or no low-pass (``h_freq``). Both ``None`` with a notch gives the
        notch sections only.
    order : int
        Butterworth order (a band-pass has ``2 * order`` poles, like SciPy).
    notch : float | sequence of float | None
        Notch frequencies in Hz (``scipy.signal.iirnotch``).
    quality : float
        Quality factor of each notch (``w0 / bandwidth``).

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections, usable with ``scipy.signal.sosfilt``.
    """
    from scipy import signal

    sfreq = check_sfreq(sfreq)
    l_freq = check_freq("l_freq", l_freq, sfreq)
    h_freq = check_freq("h_freq", h_freq, sfreq)
    order = check_number("order", order, low=1, high=32, integer=True,
                         hint="use a Butterworth order between 1 and 32 (4 is typical)")
    notch = _check_notch(notch, sfreq)
    quality = check_number("quality", quality, low=0, low_inclusive=False,
                           hint="pass a positive notch quality factor, e.g. 30.0")
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        raise ParameterError(f"l_freq={l_freq} must be below h_freq={h_freq} for a band-pass; "
                             "swap them, or set one to None for a high-/low-pass.")
    if l_freq is None and h_freq is None and not notch:
        raise ParameterError("l_freq and h_freq are both None and no notch was given, so "
                             "there is nothing to filter; pass l_freq and/or h_freq.")
    parts = []
    if l_freq is not None and h_freq is not None:
        parts.append(signal.butter(order, [l_freq, h_freq], btype="bandpass", fs=sfreq,
                                   output="sos"))
    elif h_freq is not None:
        parts.append(signal.butter(order, h_freq, btype="lowpass", fs=sfreq, output="sos"))
    elif l_freq is not None:
        parts.append(signal.butter(order, l_freq, btype="highpass", fs=sfreq, output="sos"))
    for freq in notch:
        b, a = signal.iirnotch(freq, quality, fs=sfreq)
        parts.append(signal.tf2sos(b, a))
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float64)


def _padlen(sos):
    """SciPy's default ``sosfiltfilt`` padding length for ``sos``."""
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1
    ntaps -= min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * ntaps


def _apply_sos(data, sos, phase, what):
    """Validate ``data`` and run the offline kernel over its last axis."""
    from scipy.signal import sosfilt_zi

    phase = check_option("phase", phase, _PHASES)
    data = check_array("data", data, min_ndim=1)
    edge = _padlen(sos) if phase == "zero" else 0
    n_times = data.shape[-1]
    if phase == "zero" and n_times <= edge:
        raise DataError(f"data has {n_times} samples on its last axis but zero-phase {what} "
                        f"needs more than {edge} (the edge padding, {edge} samples, must be "
                        f"shorter than the signal); pass at least {edge + 1} samples, lower "
                        "the order, or use phase='causal'.")
    if n_times == 0:
        raise DataError("data has 0 samples on its last axis; at least 1 is needed for "
                        "causal filtering; pass a non-empty signal.")
    shape = data.shape
    x = np.ascontiguousarray(data.reshape(-1, n_times), dtype=np.float64)
    out = np.empty_like(x)
    zi = np.ascontiguousarray(sosfilt_zi(sos))
    kernels = _kernels()
    if phase == "zero":
        kernels.run_rows(kernels.sos_zero_phase, x.shape[0], _ROWS_PER_TASK, sos, zi, x, edge,
                         out)
    else:
        kernels.run_rows(kernels.sos_causal, x.shape[0], _ROWS_PER_TASK, sos, zi, x, out)
    return out.reshape(shape)


def filter_data(data, sfreq, l_freq, h_freq, *, order=4, phase="zero"):
    """Butterworth band-pass, high-pass or low-pass filter along the last axis.

    Parameters
    ----------
    data : ndarray, shape (..., n_times)
        Floating-point signal; time is the last axis. Any leading shape, e.g.
        ``(n_channels, n_times)`` or ``(n_epochs, n_channels, n_times)``.
    sfreq : float
        Sampling frequency in Hz.
    l_freq : float | None
        High-pass cut-off in Hz; ``None`` for a low-pass.
    h_freq : float | None
        Low-pass cut-off in Hz (below Nyquist); ``None`` for a high-pass.
    order : int
        Butterworth order.
    phase : ``"zero"`` | ``"causal"``
        ``"zero"``: forward-backward filtering, identical to
        ``scipy.signal.sosfiltfilt(sos, data)`` (odd extension of ``3 * (2 *
        n_sections + 1)`` samples at each edge). ``"causal"``: one forward pass,
        identical to ``scipy.signal.sosfilt(sos, data, zi=sosfilt_zi(sos) *
        data[..., :1])`` — the steady state for the first sample, so there is no
        start-up transient; this is also what :class:`StreamingFilter` computes.

    Returns
    -------
    filtered : ndarray of float64, shape (..., n_times)
        A new array.

    See Also
    --------
    design_sos : the second-order sections used.
    StreamingFilter : the same causal filter applied chunk by chunk.
    """
    sos = design_sos(sfreq, l_freq, h_freq, order=order)
    return _apply_sos(data, sos, phase, f"filtering with order={order}")


def notch_filter(data, sfreq, freqs=(50.0,), *, quality=30.0, phase="zero"):
    """Remove line noise with one IIR notch (``scipy.signal.iirnotch``) per frequency.

    Parameters
    ----------
    data : ndarray, shape (..., n_times)
        Floating-point signal; time is the last axis.
    sfreq : float
        Sampling frequency in Hz.
    freqs : float | sequence of float
        Frequencies to remove in Hz, e.g. ``(50.0, 100.0)``; each below Nyquist.
    quality : float
        Quality factor ``freq / bandwidth`` of each notch.
    phase : ``"zero"`` | ``"causal"``
        As in :func:`filter_data`: ``"zero"`` equals ``scipy.signal.sosfiltfilt`` and
        ``"causal"`` equals ``sosfilt`` with steady-state initial conditions, using the
        cascade of notch sections from :func:`design_sos`.

    Returns
    -------
    filtered : ndarray of float64, shape (..., n_times)
    """
    sfreq = check_sfreq(sfreq)
    if freqs is None:
        raise ParameterError("freqs must be a frequency or a sequence of frequencies in Hz, "
                             "got None; pass e.g. freqs=(50.0,).")
    sos = design_sos(sfreq, None, None, notch=freqs, quality=quality)
    return _apply_sos(data, sos, phase, "notch filtering")


class StreamingFilter:
    """Causal Butterworth (+ notch) filter that carries its state across chunks.

    Feeding a recording through :meth:`process` in chunks of any sizes gives exactly
    ``scipy.signal.sosfilt(sos, x, zi=sosfilt_zi(sos) * x[:, :1])`` on the whole
    recording, with ``sos = design_sos(sfreq, l_freq, h_freq, order=order, notch=notch,
    quality=quality)``; without a notch that is ``filter_data(x, ..., phase="causal")``.
    The state is initialised from the first sample received (steady state, no
    start-up transient).

    Parameters
    ----------
    sfreq : float
        Sampling frequency in Hz.
    n_channels : int
        Number of channels (rows) of every chunk.
    l_freq, h_freq : float | None
        Cut-offs in Hz, as in :func:`filter_data`.
    notch : float | sequence of float | None
        Line-noise frequencies to notch out, in Hz.
    order : int
        Butterworth order.
    quality : float
        Quality factor of each notch.

    Attributes
    ----------
    sos_ : ndarray, shape (n_sections, 6)
        The filter, set on the first :meth:`process` (or :meth:`reset`).
    n_samples_seen_ : int
        Samples per channel processed since the last reset.

    Notes
    -----
    The hot path allocates nothing when an output array is passed:
    ``filt.process(chunk, out=buf)`` (``out`` may be ``chunk`` itself). Without
    ``out`` a new array is returned.
    """

    def __init__(self, sfreq, n_channels, *, l_freq, h_freq, notch=None, order=4,
                 quality=30.0):
        self.sfreq = sfreq
        self.n_channels = n_channels
        self.l_freq = l_freq
        self.h_freq = h_freq
        self.notch = notch
        self.order = order
        self.quality = quality

    def __repr__(self):
        return (f"StreamingFilter(sfreq={self.sfreq!r}, n_channels={self.n_channels!r}, "
                f"l_freq={self.l_freq!r}, h_freq={self.h_freq!r}, notch={self.notch!r}, "
                f"order={self.order!r}, quality={self.quality!r})")

    def reset(self):
        """Design the filter (if needed) and forget the state; return ``self``."""
        from scipy.signal import sosfilt_zi

        n_ch = check_number("n_channels", self.n_channels, low=1, integer=True)
        self.sos_ = design_sos(self.sfreq, self.l_freq, self.h_freq, order=self.order,
                               notch=self.notch, quality=self.quality)
        self._zi = np.ascontiguousarray(sosfilt_zi(self.sos_))
        self._state = np.zeros((self.sos_.shape[0], 2, n_ch))
        self._scratch = np.empty(n_ch)
        self._counters = np.zeros(2, dtype=np.int64)  # [started, n_samples_seen]
        self._n_ch = n_ch
        self._kernel = _kernels().sos_stream
        return self

    @property
    def n_samples_seen_(self):
        """Samples per channel processed since the last reset."""
        if not hasattr(self, "_counters"):
            return 0
        return int(self._counters[1])

    def _coerce(self, chunk, out):
        chunk = check_array("chunk", chunk, ndim=2, finite=False)
        if chunk.shape[0] != self._n_ch:
            raise DataError(f"chunk has {chunk.shape[0]} channel(s) (shape {chunk.shape}) but "
                            f"this StreamingFilter has n_channels={self._n_ch}; pass chunks "
                            "of shape (n_channels, n_chunk).")
        # the kernel's signature wants C-contiguous, writeable float64: copy if needed
        chunk = np.require(chunk, np.float64, ["C_CONTIGUOUS", "WRITEABLE"])
        if out is None:
            out = np.empty_like(chunk)
        elif (not isinstance(out, np.ndarray) or out.shape != chunk.shape
              or out.dtype != np.float64 or not out.flags.c_contiguous
              or not out.flags.writeable):
            raise ParameterError(f"out must be a writeable C-contiguous float64 array of shape "
                                 f"{chunk.shape}, got "
                                 f"{getattr(out, 'shape', type(out).__name__)}; pass "
                                 "np.empty_like(chunk) or the chunk itself.")
        return chunk, out

    def process(self, chunk, out=None):
        """Filter the next chunk.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_chunk)
            The next samples of every channel (any ``n_chunk >= 0``).
        out : ndarray, shape (n_channels, n_chunk) | None
            Where to write the result (float64, C-contiguous; may be ``chunk``).
            Passing it makes the call allocation-free.

        Returns
        -------
        filtered : ndarray of float64, shape (n_channels, n_chunk)
            ``out`` if given, else a new array.
        """
        try:
            kernel = self._kernel
        except AttributeError:
            self.reset()
            kernel = self._kernel
        # Fast path: the kernel's fixed signature accepts only C-contiguous float64
        # arrays and checks the shapes itself; anything else is validated and converted.
        given = out
        try:
            if out is None:
                out = np.empty(chunk.shape)
            status = kernel(self.sos_, self._zi, chunk, out, self._state, self._scratch,
                            self._counters)
        except (TypeError, AttributeError):
            status = -1
        if status == -1:
            chunk, out = self._coerce(chunk, given)
            status = kernel(self.sos_, self._zi, chunk, out, self._state, self._scratch,
                            self._counters)
        if status:
            raise DataError(f"chunk contains {status} NaN or infinite value(s) (shape "
                            f"{chunk.shape}); the filter state was left unchanged; all "
                            "samples must be finite, so interpolate or drop the bad samples.")
        return out
