"""Private Numba kernels for :mod:`physioemo.dsp`.

Each kernel receives contiguous float64 blocks prepared by a public wrapper (which
validates, coerces dtype/contiguity and moves the time axis last). The SOS recursion
is written exactly like SciPy's ``_sosfilt`` (direct form II transposed, same operation
order, no fast-math), so results are bit-identical to ``scipy.signal.sosfilt`` and
``sosfiltfilt``. Offline kernels process ``_BLOCK`` rows at once, interleaved in
memory, so the independent recursions of several rows fill the CPU pipeline. They are
serial and release the GIL; :func:`run_rows` spreads row ranges over a thread pool.

This module imports Numba; :mod:`physioemo.dsp` imports it only on first use.
"""

from __future__ import annotations

import numba as nb
import numpy as np


def n_threads():
    """Worker threads for offline work: ``NUMBA_NUM_THREADS`` if set, else the CPU count."""
    return nb.config.NUMBA_NUM_THREADS


def run_rows(kernel, n_rows, rows_per_task, *args):
    """Run ``kernel(*args, r0, r1)`` over ``range(n_rows)`` in tasks on a thread pool.

    The kernels release the GIL. Many small tasks shared by a few threads balance the
    load when another process is using one of the cores, which a static split (or a
    Numba parallel region, whose barrier waits for the slowest thread) does not.
    """
    starts = range(0, n_rows, rows_per_task)
    n_workers = min(len(starts), n_threads())
    if n_workers <= 1:
        for r0 in starts:
            kernel(*args, r0, min(r0 + rows_per_task, n_rows))
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_workers) as pool:
        jobs = [pool.submit(kernel, *args, r0, min(r0 + rows_per_task, n_rows))
                for r0 in starts]
        for job in jobs:
            job.result()


#: Rows filtered together by the offline kernels (interleaved for instruction-level
#: parallelism; 4 float64 lanes fill one AVX2 register).
_BLOCK = 4


@nb.njit(cache=True, nogil=True, inline="always")
def _cascade(sos, buf, z0, z1, start, stop, step):
    """Filter ``buf[t, :]`` for t in range(start, stop, step) through all sections."""
    n_sec = sos.shape[0]
    n_lanes = buf.shape[1]
    xc = np.empty(n_lanes)
    for t in range(start, stop, step):
        for j in range(n_lanes):
            xc[j] = buf[t, j]
        for s in range(n_sec):
            b0 = sos[s, 0]
            b1 = sos[s, 1]
            b2 = sos[s, 2]
            a1 = sos[s, 4]
            a2 = sos[s, 5]
            for j in range(n_lanes):
                xn = b0 * xc[j] + z0[s, j]
                z0[s, j] = b1 * xc[j] - a1 * xn + z1[s, j]
                z1[s, j] = b2 * xc[j] - a2 * xn
                xc[j] = xn
        for j in range(n_lanes):
            buf[t, j] = xc[j]


@nb.njit(cache=True, nogil=True, inline="always")
def _init_state(zi, buf, t, z0, z1):
    """Steady-state initial conditions ``zi * buf[t, j]`` (scipy's ``sosfilt_zi * x0``)."""
    for s in range(zi.shape[0]):
        for j in range(buf.shape[1]):
            z0[s, j] = zi[s, 0] * buf[t, j]
            z1[s, j] = zi[s, 1] * buf[t, j]


@nb.njit(cache=True, nogil=True)
def sos_causal(sos, zi, x, out, r0, r1):
    """Causal SOS filtering of rows ``r0:r1``, state initialised from each first sample.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
    zi : ndarray, shape (n_sections, 2)
        ``scipy.signal.sosfilt_zi(sos)``.
    x : ndarray, shape (n_rows, n_times)
    out : ndarray, shape (n_rows, n_times)
        Rows ``r0:r1`` are written with ``sosfilt(sos, x[i], zi=zi * x[i, 0])``.
    r0, r1 : int
        Row range.
    """
    for b in range(r0, r1, _BLOCK):
        _causal_block(sos, zi, x, out, b, min(b + _BLOCK, r1))


@nb.njit(cache=True, nogil=True)
def _causal_block(sos, zi, x, out, r0, r1):
    """Rows ``r0:r1`` (at most ``_BLOCK``) of :func:`sos_causal`, interleaved."""
    n_times = x.shape[1]
    n_sec = sos.shape[0]
    n_used = r1 - r0
    buf = np.zeros((n_times, _BLOCK))
    for j in range(n_used):
        for t in range(n_times):
            buf[t, j] = x[r0 + j, t]
    z0 = np.empty((n_sec, _BLOCK))
    z1 = np.empty((n_sec, _BLOCK))
    _init_state(zi, buf, 0, z0, z1)
    _cascade(sos, buf, z0, z1, 0, n_times, 1)
    for j in range(n_used):
        for t in range(n_times):
            out[r0 + j, t] = buf[t, j]


@nb.njit(cache=True, nogil=True)
def sos_zero_phase(sos, zi, x, edge, out, r0, r1):
    """Forward-backward SOS filtering of rows ``r0:r1``, exactly ``scipy.signal.sosfiltfilt``.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
    zi : ndarray, shape (n_sections, 2)
        ``scipy.signal.sosfilt_zi(sos)``.
    x : ndarray, shape (n_rows, n_times)
        ``n_times > edge``.
    edge : int
        Odd-extension length on each side (scipy's ``padlen``).
    out : ndarray, shape (n_rows, n_times)
    r0, r1 : int
        Row range.
    """
    for b in range(r0, r1, _BLOCK):
        _zero_phase_block(sos, zi, x, edge, out, b, min(b + _BLOCK, r1))


@nb.njit(cache=True, nogil=True)
def _zero_phase_block(sos, zi, x, edge, out, r0, r1):
    """Rows ``r0:r1`` (at most ``_BLOCK``) of :func:`sos_zero_phase`, interleaved."""
    n_times = x.shape[1]
    n_sec = sos.shape[0]
    n_ext = n_times + 2 * edge
    n_used = r1 - r0
    buf = np.zeros((n_ext, _BLOCK))
    for j in range(n_used):
        i = r0 + j
        first = x[i, 0]
        last = x[i, n_times - 1]
        for k in range(edge):
            buf[k, j] = 2.0 * first - x[i, edge - k]
            buf[n_times + edge + k, j] = 2.0 * last - x[i, n_times - 2 - k]
        for t in range(n_times):
            buf[edge + t, j] = x[i, t]
    z0 = np.empty((n_sec, _BLOCK))
    z1 = np.empty((n_sec, _BLOCK))
    _init_state(zi, buf, 0, z0, z1)
    _cascade(sos, buf, z0, z1, 0, n_ext, 1)
    _init_state(zi, buf, n_ext - 1, z0, z1)
    _cascade(sos, buf, z0, z1, n_ext - 1, -1, -1)
    for j in range(n_used):
        for t in range(n_times):
            out[r0 + j, t] = buf[edge + t, j]


_F1 = nb.types.Array(nb.types.float64, 1, "C")
_F2 = nb.types.Array(nb.types.float64, 2, "C")
_F3 = nb.types.Array(nb.types.float64, 3, "C")
_I1 = nb.types.Array(nb.types.int64, 1, "C")


# An explicit signature: a chunk of another dtype/layout raises TypeError (the wrapper
# then validates and converts it) instead of compiling a new specialisation.
@nb.njit(nb.int64(_F2, _F2, _F2, _F2, _F3, _F1, _I1), cache=True, nogil=True)
def sos_stream(sos, zi, x, out, z, xc, counters):
    """Filter one chunk into ``out`` carrying the per-channel state ``z``.

    Channels are the inner loop so their independent recursions overlap (the state is
    stored channel-last for that); the arithmetic per channel is scipy's.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
    zi : ndarray, shape (n_sections, 2)
        ``scipy.signal.sosfilt_zi(sos)``, used on the very first sample.
    x : ndarray, shape (n_channels, n_chunk)
    out : ndarray, shape (n_channels, n_chunk)
        May be ``x`` itself.
    z : ndarray, shape (n_sections, 2, n_channels)
        Filter state, updated in place.
    xc : ndarray, shape (n_channels,)
        Scratch space.
    counters : ndarray of int64, shape (2,)
        ``[started, n_samples_seen]``: ``started`` is 0 until the state has been
        initialised from the first sample; ``n_samples_seen`` counts samples per channel.

    Returns
    -------
    status : int
        0 on success, -1 if the shapes of ``x``, ``out`` and ``z`` disagree, else the
        number of non-finite input samples. On a non-zero status nothing was changed.
    """
    if x.shape[0] != z.shape[2] or out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1]:
        return -1
    n_ch, n_times = x.shape
    n_sec = sos.shape[0]
    n_bad = 0
    for i in range(n_ch):
        for t in range(n_times):
            v = x[i, t]
            if not (v - v == 0.0):  # NaN or inf
                n_bad += 1
    if n_bad or n_times == 0:
        return n_bad
    if counters[0] == 0:
        for s in range(n_sec):
            for i in range(n_ch):
                z[s, 0, i] = zi[s, 0] * x[i, 0]
                z[s, 1, i] = zi[s, 1] * x[i, 0]
        counters[0] = 1
    counters[1] += n_times
    for t in range(n_times):
        for i in range(n_ch):
            xc[i] = x[i, t]
        for s in range(n_sec):
            b0 = sos[s, 0]
            b1 = sos[s, 1]
            b2 = sos[s, 2]
            a1 = sos[s, 4]
            a2 = sos[s, 5]
            z0 = z[s, 0]
            z1 = z[s, 1]
            for i in range(n_ch):
                xn = b0 * xc[i] + z0[i]
                z0[i] = b1 * xc[i] - a1 * xn + z1[i]
                z1[i] = b2 * xc[i] - a2 * xn
                xc[i] = xn
        for i in range(n_ch):
            out[i, t] = xc[i]
    return 0


@nb.njit(cache=True, nogil=True)
def detrend_window(x, win, r0, out):
    """Remove each window's mean and multiply by ``win``, for rows ``r0:r0 + len(out)``.

    Serial and GIL-free: :mod:`physioemo.dsp.spectral` runs batches of rows in threads
    (one Numba parallel region per small batch would cost a thread wake-up each).

    Parameters
    ----------
    x : ndarray, shape (n_outer, n_windows, n_samples)
        Any strides (e.g. a :func:`sliding_windows` view); row ``r`` is
        ``x[r // n_windows, r % n_windows]``.
    win : ndarray, shape (n_samples,)
    r0 : int
        First row.
    out : ndarray, shape (n_rows, n_samples)
    """
    n_win = x.shape[1]
    n_samp = x.shape[2]
    for i in range(out.shape[0]):
        r = r0 + i
        a = r // n_win
        b = r - a * n_win
        mean = 0.0
        for k in range(n_samp):
            mean += x[a, b, k]
        mean /= n_samp
        for k in range(n_samp):
            out[i, k] = (x[a, b, k] - mean) * win[k]


@nb.njit(cache=True, nogil=True)
def band_sums(spec, lo, hi, weight, out):
    """Weighted sums of ``|spec|**2`` over bin ranges (serial, GIL-free).

    Parameters
    ----------
    spec : ndarray of complex128, shape (n_rows, n_freqs)
    lo, hi : ndarray of int64, shape (n_bands,)
        Bin range ``lo[j] <= k < hi[j]`` of each band.
    weight : ndarray, shape (n_freqs,)
        Per-bin factor (density scaling, one-sided doubling, bin width).
    out : ndarray, shape (n_rows, n_bands)
    """
    for r in range(spec.shape[0]):
        for j in range(lo.shape[0]):
            acc = 0.0
            for k in range(lo[j], hi[j]):
                v = spec[r, k]
                acc += (v.real * v.real + v.imag * v.imag) * weight[k]
            out[r, j] = acc
