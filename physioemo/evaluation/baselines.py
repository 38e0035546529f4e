"""Baselines and a shortcut probe scored on the same windows as HiSTN.

A number is evidence only beside what trivial or shallow models reach on the same windows.
:func:`run_baselines` fits and scores, for one (subject, fold), on exactly the training and
test windows HiSTN used (the validation windows select nothing here, since no baseline has a
tuned hyper-parameter):

``majority`` (chance)
    The training split's most frequent class; scored with
    :func:`~physioemo.evaluation.metrics.compute_metrics` given, for every test window, the
    training class frequencies as constant scores (so top-2, Tri-P and Seq2HR are defined:
    the top-2 are the two most frequent training classes).
``stratified``
    Guessing each window's class at random with the training class frequencies; the
    expected weighted F1 and accuracy are computed exactly (:func:`stratified_expectation`),
    not sampled.
``classic``
    Differential entropy per channel and band (:data:`physioemo.dsp.FREQ_BANDS`, through
    :func:`physioemo.datasets.features.eeg_band_features`), standardised, multinomial
    logistic regression: the field's standard feature baseline.
``physio``
    Heart rate, SDNN and RMSSD per window from DREAMER's ECG
    (:func:`physioemo.datasets.features.heart_rate_features`, RR intervals within 10 s
    centred on the window), median-imputed, standardised, logistic regression. Needs the
    R peaks of each clip (:func:`physioemo.datasets.cache.load_r_peaks`); without them it is
    recorded as not available. Under ``sd`` the 10-s context of a training window reaches
    into the neighbouring 6-s test block, one more way in which that split is optimistic.
``probe`` (shortcut probe)
    Per-window channel means and least-squares slopes (:func:`probe_features`): the slow
    drift of each channel and no band power by construction; standardised, 5-nearest
    neighbours. When it scores near HiSTN the protocol measures clip identity (a clip's
    drift gives its label), not emotion.

Training windows are subsampled without replacement to at most ``max_train_windows``
(seeded), which keeps the baselines a small fraction of an ``sd`` fold's time (its training
split holds ~108,000 overlapping 1-s crops). All metrics are percentages, like
``record["metrics"]``.
"""

from __future__ import annotations

import time

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_number

#: Baselines in the order of the records and reports.
BASELINES = ("majority", "stratified", "classic", "physio", "probe")
#: Bumped when a baseline's definition changes (part of a run's settings).
BASELINES_VERSION = 1
#: Training windows kept for the fitted baselines (classic, physio, probe).
MAX_TRAIN_WINDOWS = 3000
#: Heart-rate context around each window in seconds (:func:`heart_rate_features`).
HR_CONTEXT_S = 10.0
#: Neighbours of the shortcut probe.
PROBE_NEIGHBORS = 5

_EEG_SFREQ = 128.0
_ECG_RATIO = 2  # DREAMER's ECG is at 256 Hz, its EEG at 128 Hz


def class_frequencies(y, n_classes=5):
    """Relative frequency of each class.

    Parameters
    ----------
    y : array-like of int, shape (n_windows,)
        Classes 0..n_classes-1.
    n_classes : int
        Number of classes.

    Returns
    -------
    freq : ndarray of float64, shape (n_classes,)
        Sums to 1.
    """
    y = np.asarray(y, dtype=np.int64)
    if y.size == 0:
        raise DataError("no training windows to count classes in; a fold needs training "
                        "windows.")
    return np.bincount(y, minlength=n_classes)[:n_classes] / y.size


def _binom_pmf(n, p):
    from scipy.stats import binom

    return binom.pmf(np.arange(n + 1), n, p)


def stratified_expectation(y_test, prior):
    r"""Compute the expected weighted F1 and accuracy of guessing classes with ``prior``.

    Each test window's prediction is drawn independently from ``prior`` (what
    ``sklearn.dummy.DummyClassifier(strategy="stratified")`` does with the training class
    frequencies). With ``N`` test windows, ``n_c`` of class ``c`` and ``q_c = prior[c]``,
    the true positives ``T_c ~ Binomial(n_c, q_c)`` and false positives
    ``F_c ~ Binomial(N - n_c, q_c)`` are independent, so

    .. math::

        E[\mathrm{F1}_c] = \sum_{t=0}^{n_c} \sum_{f=0}^{N-n_c}
            \mathrm{Bin}(t; n_c, q_c)\,\mathrm{Bin}(f; N-n_c, q_c)\,
            \frac{2t}{n_c + t + f},

    the expected weighted F1 is :math:`\sum_c (n_c / N) E[\mathrm{F1}_c]` (F1 = 0 for a
    class never predicted, as scikit-learn's ``zero_division=0``) and the expected accuracy
    is :math:`\sum_c (n_c / N) q_c`. Both are exact expectations, not estimates.

    Parameters
    ----------
    y_test : array-like of int, shape (n_windows,)
        True classes of the test windows.
    prior : array-like of float, shape (n_classes,)
        Guessing probabilities (the training class frequencies), summing to 1.

    Returns
    -------
    expected : dict
        ``{"weighted_f1": ..., "accuracy": ...}`` in percent.
    """
    prior = np.asarray(prior, dtype=np.float64)
    y = np.asarray(y_test, dtype=np.int64)
    if prior.ndim != 1 or prior.size < 2 or np.any(prior < 0) or not np.isclose(
            prior.sum(), 1.0):
        raise ParameterError(f"prior must be a 1-D probability vector over >= 2 classes, got "
                             f"{prior!r}; pass the training class frequencies.")
    if y.ndim != 1 or y.size == 0 or y.min() < 0 or y.max() >= prior.size:
        raise ParameterError(f"y_test must be a non-empty 1-D array of classes 0.."
                             f"{prior.size - 1}, got shape {y.shape}; pass the test labels.")
    n = y.size
    counts = np.bincount(y, minlength=prior.size)
    f1 = 0.0
    for c, n_c in enumerate(counts):
        q = prior[c]
        if n_c == 0 or q == 0:
            continue  # no weight, or never predicted (F1 = 0)
        pt, pf = _binom_pmf(n_c, q), _binom_pmf(n - n_c, q)
        t = np.arange(n_c + 1)[:, None]
        f = np.arange(n - n_c + 1)[None, :]
        ratio = 2.0 * t / (n_c + t + f)
        f1 += n_c / n * float(pt @ ratio @ pf)
    acc = float(np.sum(counts / n * prior))
    return {"weighted_f1": float(100.0 * f1), "accuracy": 100.0 * acc}


def probe_features(windows):
    """Shortcut-probe features: each channel's mean and least-squares slope.

    Parameters
    ----------
    windows : ndarray, shape (n_windows, n_channels, window_samples)
        EEG windows.

    Returns
    -------
    features : ndarray of float64, shape (n_windows, 2 * n_channels)
        Means of the channels, then their slopes (per sample, the ``polyfit`` degree-1
        coefficient): a window's offset and slow drift, with no band-power information.
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] < 2:
        raise ParameterError(f"windows must have shape (n_windows, n_channels, "
                             f"window_samples >= 2), got {x.shape}; pass gathered windows.")
    t = np.arange(x.shape[-1], dtype=np.float64)
    t -= t.mean()
    mean = x.mean(-1)
    slope = (x @ t) / (t @ t)
    return np.concatenate([mean, slope], axis=1)


def classic_features(windows, sfreq=_EEG_SFREQ):
    """Differential entropy per channel and band, flattened.

    Parameters
    ----------
    windows : ndarray, shape (n_windows, n_channels, window_samples)
        EEG windows.
    sfreq : float
        Sampling frequency in Hz.

    Returns
    -------
    features : ndarray of float64, shape (n_windows, n_channels * n_bands)
        Channel-major (all bands of channel 0 first), bands of
        :data:`physioemo.dsp.FREQ_BANDS`. A band with zero power (``-inf``) is clipped to
        the smallest finite value, so flat windows do not break the fit.
    """
    from ..datasets.features import eeg_band_features

    de = eeg_band_features(np.asarray(windows, dtype=np.float64), sfreq, kind="de")
    de = de.reshape(len(de), -1)
    return np.maximum(de, np.finfo(np.float64).min / 4)


def physio_features(rows, starts, r_peaks, window_samples=128, *, context_s=HR_CONTEXT_S):
    """Heart rate, SDNN and RMSSD around each EEG window.

    Parameters
    ----------
    rows : ndarray of int, shape (n_windows,)
        Clip of each window (index into ``r_peaks``).
    starts : ndarray of int, shape (n_windows,)
        EEG start sample (128 Hz) of each window within the kept 60 s.
    r_peaks : sequence of ndarray of int
        Per clip, R-peak ECG samples (256 Hz) counted from the first kept EEG sample
        (negative before it).
    window_samples : int
        EEG window length in samples.
    context_s : float
        RR intervals within this many seconds centred on the window are used.

    Returns
    -------
    features : ndarray of float64, shape (n_windows, 3)
        :data:`physioemo.datasets.features.HEART_FEATURES`; NaN where fewer than 2 RR
        intervals fall in the context.
    """
    from ..datasets.dreamer import ECG_SFREQ
    from ..datasets.features import heart_rate_features

    rows, starts = np.asarray(rows), np.asarray(starts)
    out = np.full((rows.size, 3), np.nan)
    for r in np.unique(rows):
        sel = rows == r
        out[sel] = heart_rate_features(np.asarray(r_peaks[r]), ECG_SFREQ,
                                       starts[sel] * _ECG_RATIO,
                                       window_samples * _ECG_RATIO, context_s=context_s)
    return out


def subsample(n_windows, max_windows, seed):
    """Draw at most ``max_windows`` of ``n_windows`` window indices without replacement.

    Parameters
    ----------
    n_windows, max_windows : int
        Windows available and kept.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    idx : ndarray of int64, shape (min(n_windows, max_windows),)
        Increasing; every window when ``n_windows <= max_windows``.
    """
    if n_windows <= max_windows:
        return np.arange(n_windows)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_windows, max_windows, replace=False)).astype(np.int64)


def _fit_score(model, x_train, y_train, x_test, y_test, n_classes):
    from .metrics import compute_metrics

    model.fit(x_train, y_train)
    scores = np.zeros((len(x_test), n_classes))
    scores[:, model.classes_] = model.predict_proba(x_test)
    return compute_metrics(y_test, scores)


def _logistic(seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000,
                                                              random_state=seed))


def _plain(metrics):
    return {k: (int(v) if k == "n_windows" else float(v)) for k, v in metrics.items()}


def run_baselines(train, test, *, seed, r_peaks=None, n_classes=5,
                  max_train_windows=MAX_TRAIN_WINDOWS):
    """Fit and score every baseline on one fold's windows.

    Parameters
    ----------
    train, test : WindowSet
        The fold's training and test windows (:class:`physioemo.training.trainer.WindowSet`)
        whose rows index the clips of one subject.
    seed : int
        Seeds the training subsample and the models.
    r_peaks : sequence of ndarray of int | None
        Per clip (row of ``train.data``), R-peak ECG samples counted from the first kept
        EEG sample (:func:`physioemo.datasets.cache.load_r_peaks`); ``None`` records
        ``physio`` as not available.
    n_classes : int
        Number of classes.
    max_train_windows : int
        The fitted baselines use at most this many training windows, drawn without
        replacement (all of them when there are fewer).

    Returns
    -------
    baselines : dict
        ``{name: {"metrics": {...}, "seconds": float, ...}}`` for every name of
        :data:`BASELINES`; metrics in percent. ``physio`` is
        ``{"available": False, "reason": ...}`` without ECG. ``n_train`` counts the
        training windows a fitted baseline used.
    """
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .metrics import compute_metrics

    max_train_windows = check_number("max_train_windows", max_train_windows, low=1,
                                     integer=True)
    out = {}
    y_train, y_test = train.y, test.y
    t0 = time.perf_counter()
    prior = class_frequencies(y_train, n_classes)
    out["majority"] = {"metrics": _plain(compute_metrics(
        y_test, np.broadcast_to(prior, (len(test), n_classes)))),
        "class": int(np.argmax(prior)), "seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    out["stratified"] = {"metrics": stratified_expectation(y_test, prior),
                         "seconds": time.perf_counter() - t0}

    t0 = time.perf_counter()
    sub = train.subset(subsample(len(train), max_train_windows, seed))
    x_train, x_test = sub.gather(), test.gather()
    ys = sub.y
    gather_s = time.perf_counter() - t0
    single = len(np.unique(ys)) < 2  # one training class: the classifiers cannot fit

    def fitted(name, model_fn, features_fn):
        t1 = time.perf_counter()
        f_train, f_test = features_fn(x_train, sub), features_fn(x_test, test)
        if single:
            scores = np.zeros((len(test), n_classes))
            scores[:, ys[0]] = 1.0
            metrics = compute_metrics(y_test, scores)
        else:
            metrics = _fit_score(model_fn(), f_train, ys, f_test, y_test, n_classes)
        out[name] = {"metrics": _plain(metrics), "n_train": int(len(sub)),
                     "seconds": gather_s / 3 + time.perf_counter() - t1}

    fitted("classic", lambda: _logistic(seed), lambda x, w: classic_features(x))
    if r_peaks is None:
        out["physio"] = {"available": False,
                         "reason": "no ECG R peaks were passed (run_protocol(ecg=...))"}
    else:
        def physio_model():
            from sklearn.impute import SimpleImputer

            return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                 _logistic(seed))

        fitted("physio", physio_model,
               lambda x, w: physio_features(w.rows, w.starts, r_peaks, w.window_samples))
        out["physio"]["available"] = True
    fitted("probe", lambda: make_pipeline(
        StandardScaler(), KNeighborsClassifier(PROBE_NEIGHBORS)),
        lambda x, w: probe_features(x))
    return {name: out[name] for name in BASELINES}


def check_r_peaks(ecg, n_subjects, n_clips):
    """Validate ``run_protocol``'s ``ecg`` argument.

    Parameters
    ----------
    ecg : sequence of sequence of array-like of int | None
        ``ecg[subject][clip]``: R-peak ECG samples of that clip.
    n_subjects, n_clips : int
        Shape of the EEG data.

    Returns
    -------
    ecg : list of list of ndarray of int64 | None
    """
    if ecg is None:
        return None
    ok = len(ecg) == n_subjects and all(len(s) == n_clips for s in ecg)
    if not ok:
        raise DataError(f"ecg must hold R peaks for each of the {n_subjects} subject(s) x "
                        f"{n_clips} clips of data, got {len(ecg)} subject(s) with "
                        f"{sorted({len(s) for s in ecg})} clips; pass the output of "
                        "load_r_peaks for the same subjects.")
    return [[np.asarray(p, dtype=np.int64) for p in s] for s in ecg]
