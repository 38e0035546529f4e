"""Per-window features: EEG band power / differential entropy and ECG heart rate / HRV.

The EEG features are :func:`physioemo.dsp.band_power` and
:func:`physioemo.dsp.differential_entropy`, the same functions that run on a live
recording, so offline and online features agree. They use a constant-detrended,
Hann-windowed periodogram: the DC offset of raw Emotiv data (thousands of units) is removed
per window instead of leaking into the features, as it does when each raw window is
band-pass filtered from a zero filter state.

ECG: R peaks are found once per recording (:func:`detect_r_peaks`) and each window gets
the heart rate and HRV (SDNN, RMSSD) of the RR intervals in a context around it
(:func:`heart_rate_features`), so 1-s EEG windows can carry a meaningful heart rate.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError
from ..utils._checks import check_array, check_number, check_option, check_sfreq
from .dreamer import DIMENSIONS, ECG_SFREQ, EEG_SFREQ

#: Columns of :func:`heart_rate_features`.
HEART_FEATURES = ("heart_rate_bpm", "sdnn_ms", "rmssd_ms")
_QRS_BAND = (5.0, 20.0)
_MIN_RR_S = 0.3  # 200 bpm


def eeg_band_features(windows, sfreq=EEG_SFREQ, bands=None, *, kind="de"):
    """Band features of EEG windows through :mod:`physioemo.dsp`.

    Parameters
    ----------
    windows : ndarray, shape (..., n_channels, window_samples)
        Raw or preprocessed windows (the per-window mean is removed before the
        periodogram, so DC offsets do not matter).
    sfreq : float
        Sampling frequency in Hz.
    bands : mapping of str to (float, float) | None
        Bands in Hz; default :data:`physioemo.dsp.FREQ_BANDS`.
    kind : str
        ``"de"`` (differential entropy), ``"power"`` (absolute band power) or
        ``"relative"`` (band power over total power).

    Returns
    -------
    features : ndarray, shape (..., n_channels, n_bands)
        One value per window, channel and band.
    """
    from .. import dsp

    check_option("kind", kind, ("de", "power", "relative"))
    if kind == "de":
        return dsp.differential_entropy(windows, sfreq, bands)
    return dsp.band_power(windows, sfreq, bands, relative=kind == "relative")


def detect_r_peaks(ecg, sfreq=ECG_SFREQ):
    """Find R peaks in one ECG lead.

    The lead is band-passed 5-20 Hz (zero phase, :func:`physioemo.dsp.filter_data`), its
    polarity is taken from the larger of the positive and negative 99.5th percentiles, and
    peaks at least 0.3 s apart and above 35 % of that percentile are kept.

    Parameters
    ----------
    ecg : ndarray, shape (n_times,) or (n_leads, n_times)
        ECG, any offset and units. Rows of a 2-D array are independent recordings of equal
        length, filtered in one call.
    sfreq : float
        Sampling frequency in Hz.

    Returns
    -------
    peaks : ndarray of int64, shape (n_peaks,) | list of such arrays
        Sample indices of the R peaks, increasing (a list, one per row, for 2-D input).
    """
    from scipy.signal import find_peaks

    from ..dsp import filter_data

    sfreq = check_sfreq(sfreq)
    ecg = np.asarray(ecg)
    if ecg.ndim not in (1, 2):
        raise ParameterError(f"ecg must be 1-D (n_times,) or 2-D (n_leads, n_times), got shape "
                             f"{ecg.shape}; pass one lead or a stack of equal-length leads.")
    ecg = check_array("ecg", ecg, min_times=int(2 * sfreq))
    y = filter_data(np.asarray(ecg, dtype=np.float64), sfreq, *_QRS_BAND)
    rows = y.reshape(-1, y.shape[-1])
    hi, lo = np.percentile(rows, [99.5, 0.5], axis=-1)
    out = []
    for r in range(rows.shape[0]):
        row, top = rows[r], hi[r]
        if -lo[r] > hi[r]:
            row, top = -row, -lo[r]
        if top <= 0:
            out.append(np.zeros(0, dtype=np.int64))
            continue
        peaks, _ = find_peaks(row, height=0.35 * top, distance=max(1, int(_MIN_RR_S * sfreq)))
        out.append(peaks.astype(np.int64))
    return out[0] if ecg.ndim == 1 else out


def heart_rate_features(r_peaks, sfreq, starts, window_samples, *, context_s=10.0):
    """Heart rate and HRV around each window from R-peak times.

    Parameters
    ----------
    r_peaks : ndarray of int, shape (n_peaks,)
        R-peak sample indices (at ``sfreq``), increasing.
    sfreq : float
        Sampling frequency of ``r_peaks``, ``starts`` and ``window_samples`` in Hz.
    starts : ndarray of int, shape (n_windows,)
        First sample of each window.
    window_samples : int
        Window length in samples.
    context_s : float
        RR intervals whose both beats lie within ``context_s`` seconds centred on the
        window's centre are used.

    Returns
    -------
    features : ndarray of float64, shape (n_windows, 3)
        Columns :data:`HEART_FEATURES`: mean heart rate (60 / mean RR, bpm), SDNN (std of
        RR, ms, ddof=0) and RMSSD (ms). NaN where the context holds fewer than 2 RR
        intervals (never a made-up value).
    """
    sfreq = check_sfreq(sfreq)
    context_s = check_number("context_s", context_s, low=0, low_inclusive=False)
    r = np.asarray(r_peaks, dtype=np.float64) / sfreq
    starts = np.asarray(starts, dtype=np.float64) / sfreq
    centres = starts + 0.5 * window_samples / sfreq
    out = np.full((starts.size, len(HEART_FEATURES)), np.nan)
    if r.size < 3:
        return out
    rr = np.diff(r)
    # interval k spans r[k]..r[k+1]; keep those fully inside [c - h, c + h]
    lo = np.searchsorted(r, centres - context_s / 2, side="left")
    hi = np.searchsorted(r, centres + context_s / 2, side="right") - 1  # last beat inside
    c1 = np.concatenate([[0.0], np.cumsum(rr)])
    c2 = np.concatenate([[0.0], np.cumsum(rr ** 2)])
    d = np.diff(rr)
    cd = np.concatenate([[0.0], np.cumsum(d ** 2)])
    n = hi - lo  # number of intervals lo..hi-1
    ok = n >= 2
    lo_, hi_, n_ = lo[ok], hi[ok], n[ok]
    mean = (c1[hi_] - c1[lo_]) / n_
    var = np.maximum((c2[hi_] - c2[lo_]) / n_ - mean ** 2, 0.0)
    # successive differences d[k] = rr[k+1] - rr[k] for k in lo..hi-2
    msd = (cd[hi_ - 1] - cd[lo_]) / (n_ - 1)
    out[ok, 0] = 60.0 / mean
    out[ok, 1] = 1000.0 * np.sqrt(var)
    out[ok, 2] = 1000.0 * np.sqrt(msd)
    return out


def dreamer_features(dreamer, *, subjects=None, window_s=1.0, step_s=None, bands=None,
                     kind="de", ecg=True, context_s=10.0):
    """Window the whole stimulus of every clip and compute EEG and ECG features.

    This is the classic DREAMER feature pipeline (e.g. TorchEEG's ``DREAMERDataset`` with
    a DE transform): non-overlapping windows over each complete stimulus, band features per
    window and channel, plus the heart rate of the matching ECG.

    Parameters
    ----------
    dreamer : Dreamer
        From :func:`physioemo.datasets.load_dreamer` (eager or lazy).
    subjects : sequence of int | None
        0-based subject indices (default all).
    window_s : float
        Window length in seconds.
    step_s : float | None
        Step between windows in seconds (default ``window_s``).
    bands : mapping of str to (float, float) | None
        EEG bands (default :data:`physioemo.dsp.FREQ_BANDS`).
    kind : str
        ``"de"``, ``"power"`` or ``"relative"`` (see :func:`eeg_band_features`).
    ecg : bool
        Also compute :func:`heart_rate_features` from the first ECG lead.
    context_s : float
        Heart-rate context around each window in seconds.

    Returns
    -------
    eeg : ndarray of float64, shape (n_windows, 14, n_bands)
        Band features.
    heart : ndarray of float64, shape (n_windows, 3) | None
        Heart features (:data:`HEART_FEATURES`), or None when ``ecg=False``.
    meta : dict of str -> ndarray of int64, shape (n_windows,)
        ``subject`` (0-based), ``clip``, ``start`` (EEG sample within the stimulus),
        ``valence``, ``arousal``, ``dominance`` (class = rating - 1).
    """
    from ..dsp import sliding_windows
    from .dreamer import _check_finite, _check_subjects

    subjects = _check_subjects(subjects, dreamer.n_subjects)
    sfreq = float(dreamer.eeg_sfreq)
    window_s = check_number("window_s", window_s, low=0, low_inclusive=False)
    step_s = window_s if step_s is None else check_number("step_s", step_s, low=0,
                                                           low_inclusive=False)
    win, step = int(round(window_s * sfreq)), int(round(step_s * sfreq))
    if win < 2 or step < 1:
        raise ParameterError(f"window_s={window_s} and step_s={step_s} give {win} and {step} "
                             f"samples at {sfreq:g} Hz; use at least 2 samples per window.")
    ratio = int(round(dreamer.ecg_sfreq / sfreq))
    peaks = _dreamer_r_peaks(dreamer, subjects) if ecg else None
    eeg_parts, heart_parts, meta_parts = [], [], []
    for s in subjects:
        subj = dreamer.subjects[s]
        for j in range(subj.n_clips):
            x = subj.eeg_stimulus[j]
            if x.shape[-1] < win:
                continue
            _check_finite(x, f"EEG stimulus of subject {s + 1}, clip {j + 1}")
            w = sliding_windows(x, win, step)  # (14, n_win, win) view
            eeg_parts.append(np.moveaxis(eeg_band_features(w, sfreq, bands, kind=kind), 0, 1))
            n_win = w.shape[-2]
            starts = np.arange(n_win) * step
            if ecg:
                heart_parts.append(heart_rate_features(peaks[s, j], dreamer.ecg_sfreq,
                                                       starts * ratio, win * ratio,
                                                       context_s=context_s))
            m = np.empty((3 + len(DIMENSIONS), n_win), dtype=np.int64)
            m[0], m[1], m[2] = s, j, starts
            m[3:] = (subj.ratings[j] - 1)[:, None]
            meta_parts.append(m)
    meta_arr = np.concatenate(meta_parts, axis=1)
    keys = ("subject", "clip", "start") + DIMENSIONS
    meta = {k: meta_arr[i] for i, k in enumerate(keys)}
    heart = np.concatenate(heart_parts) if ecg else None
    return np.concatenate(eeg_parts), heart, meta


def _dreamer_r_peaks(dreamer, subjects):
    """R peaks of the first ECG lead of every stimulus, ``{(subject, clip): peaks}``.

    Clips of equal length (in DREAMER a clip has the same length for every subject) are
    filtered together in one batched call.
    """
    from .dreamer import _check_finite

    groups = {}
    for s in subjects:
        for j, x in enumerate(dreamer.subjects[s].ecg_stimulus):
            groups.setdefault(x.shape[-1], []).append((s, j))
    out = {}
    for n_times, keys in groups.items():
        if n_times < 2 * dreamer.ecg_sfreq:
            for key in keys:
                out[key] = np.zeros(0, dtype=np.int64)
            continue
        batch = np.empty((len(keys), n_times))
        for i, (s, j) in enumerate(keys):
            batch[i] = dreamer.subjects[s].ecg_stimulus[j][0]
            _check_finite(batch[i], f"ECG stimulus of subject {s + 1}, clip {j + 1}")
        for key, p in zip(keys, detect_r_peaks(batch, dreamer.ecg_sfreq), strict=True):
            out[key] = p
    return out
