"""Cut preprocessed clips into windows that carry their metadata.

Every window comes with a row of metadata (subject, clip, start sample, valence, arousal,
dominance), so splitters and reports never have to reconstruct where a window came from.
Labels stay 5-class ordinal (rating - 1); :func:`binarize` exists but needs an explicit
threshold, and a missing or out-of-range label is an error, never a random class.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError
from ..utils._checks import check_array, check_number
from .dreamer import DIMENSIONS, EEG_SFREQ, RATING_RANGE

#: Metadata fields of each window, in order.
META_FIELDS = ("subject", "clip", "start") + DIMENSIONS
_N_CLASSES = RATING_RANGE[1] - RATING_RANGE[0] + 1


def make_windows(data, labels, *, window_samples=EEG_SFREQ, step_samples=EEG_SFREQ,
                 subject_ids=None):
    """Cut ``(n_subjects, n_clips, n_channels, n_times)`` data into labelled windows.

    Parameters
    ----------
    data : ndarray, shape (n_subjects, n_clips, n_channels, n_times)
        E.g. the output of :func:`physioemo.datasets.histn_preprocess`.
    labels : ndarray of int, shape (n_subjects, n_clips, 3)
        Class labels (rating - 1) for valence, arousal, dominance.
    window_samples : int
        Window length in samples (128 = 1 s at 128 Hz).
    step_samples : int
        Distance between window starts (equal to ``window_samples``: no overlap).
    subject_ids : sequence of int | None
        Identifier stored in ``meta["subject"]`` for each row of ``data``; default
        ``0..n_subjects-1``.

    Returns
    -------
    X : ndarray, shape (n_windows, n_channels, window_samples)
        A new C-contiguous array (a copy, same dtype as ``data``), ordered by subject, clip,
        then start.
    meta : dict of str -> ndarray of int64, shape (n_windows,)
        ``subject``, ``clip`` (0-based), ``start`` (first sample within the clip's kept
        segment), ``valence``, ``arousal``, ``dominance`` (class labels).
    """
    data = check_array("data", data, ndim=4)
    labels = np.asarray(labels)
    n_subjects, n_clips, n_channels, n_times = data.shape
    if labels.shape != (n_subjects, n_clips, len(DIMENSIONS)):
        raise ParameterError(f"labels must have shape (n_subjects, n_clips, 3) = "
                             f"{(n_subjects, n_clips, len(DIMENSIONS))} to match data "
                             f"{data.shape}, got {labels.shape}; pass the labels returned "
                             "with the data.")
    _check_classes(labels)
    window_samples = check_number("window_samples", window_samples, low=1, high=n_times,
                                  integer=True,
                                  hint=f"use a window no longer than the clips ({n_times})")
    step_samples = check_number("step_samples", step_samples, low=1, integer=True)
    if subject_ids is None:
        subject_ids = np.arange(n_subjects)
    subject_ids = np.asarray(subject_ids, dtype=np.int64)
    if subject_ids.shape != (n_subjects,):
        raise ParameterError(f"subject_ids must have one entry per subject ({n_subjects}), "
                             f"got shape {subject_ids.shape}; pass one id per row of data.")
    starts = np.arange(0, n_times - window_samples + 1, step_samples)
    n_win = starts.size
    view = np.lib.stride_tricks.sliding_window_view(data, window_samples, axis=-1)
    # (S, C, ch, n_win, W) -> (S, C, n_win, ch, W); one copy into the final layout
    # basic slicing keeps a view, so the single copy is the one into the final layout
    X = np.ascontiguousarray(np.moveaxis(view[..., ::step_samples, :][..., :n_win, :], 3, 2))
    X = X.reshape(-1, n_channels, window_samples)
    grid = np.indices((n_subjects, n_clips, n_win)).reshape(3, -1)
    meta = {"subject": subject_ids[grid[0]], "clip": grid[1].astype(np.int64),
            "start": starts[grid[2]].astype(np.int64)}
    for d, dim in enumerate(DIMENSIONS):
        meta[dim] = labels[grid[0], grid[1], d].astype(np.int64)
    return X, meta


def _check_classes(labels):
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ParameterError("labels contain NaN or infinite values; every window needs a "
                             "real rating; drop the clips without one (physioemo never draws "
                             "a random label).")
    if labels.dtype.kind not in "iuf" or (labels != np.round(labels)).any():
        raise ParameterError(f"labels must be integer classes 0..{_N_CLASSES - 1} (rating - 1),"
                             f" got dtype {labels.dtype}; pass the labels from "
                             "histn_preprocess.")
    if labels.size and (labels.min() < 0 or labels.max() >= _N_CLASSES):
        raise ParameterError(f"labels must be classes 0..{_N_CLASSES - 1} (rating - 1), got "
                             f"values {int(labels.min())}..{int(labels.max())}; subtract 1 "
                             "from 1..5 ratings.")


def binarize(labels, threshold):
    """Turn 5-class labels into low/high classes with an explicit threshold.

    Parameters
    ----------
    labels : array-like of int
        Class labels 0..4 (rating - 1), any shape.
    threshold : int | float
        In class units: a label ``>= threshold`` becomes 1 ("high"), others 0. E.g.
        ``threshold=3`` means rating >= 4 is high; ``threshold=2`` means rating >= 3.

    Returns
    -------
    binary : ndarray of int64
        Same shape as ``labels``.
    """
    if threshold is None:
        raise ParameterError("binarize needs an explicit threshold (in class units, rating - 1)"
                             ", got None; pass e.g. threshold=3 for rating >= 4 = high.")
    threshold = check_number("threshold", threshold, low=0, high=_N_CLASSES - 1,
                             low_inclusive=False,
                             hint="pick a threshold inside 1..4 so both classes can occur")
    labels = np.asarray(labels)
    _check_classes(labels)
    return (labels >= threshold).astype(np.int64)
