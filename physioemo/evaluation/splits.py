"""Splitters for the DREAMER protocols of HiSTN (Kuang et al., arXiv 2408.15255, §5).

All splitters follow scikit-learn's convention: the constructor stores settings and
``split(...)`` yields index arrays. Windows are described by their *start sample* inside a
clip of ``n_times`` samples; a window covers ``[start, start + window_samples)``.

- :class:`TemporalBlockSplit` — the paper's subject-dependent (SD) split: each clip is cut
  into 10 contiguous blocks; fold ``f`` tests on block ``f``, validates on block ``f - 1``
  and trains on every window start whose window overlaps neither. Within-trial, hence
  optimistic (neighbouring seconds of the same clip are in train and test).
- :class:`ClipKFold` — leak-free subject-dependent split ("sd-strict"): whole clips are held
  out, the validation clips are taken from the training clips, and train/validation/test
  windows never share a sample.
- :class:`LeaveOneSubjectOut`, :func:`mode_labels`, :func:`correct_labels` — the
  subject-independent split and the paper's label correction (mode of the other subjects'
  ratings for each clip, ties to the lower rating).
- :func:`one_on_one_pairs` — the "1on1" pairs: pretrain on subject ``i - 1``, test on ``i``.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import DataError, ParameterError
from ..utils._checks import check_number, check_random_state

#: Window length in samples (1 s at 128 Hz), as in histn-spec §1.
WINDOW_SAMPLES = 128
#: Number of contiguous blocks per clip in the SD protocol (histn-spec §5.1).
N_BLOCKS = 10


def window_starts(n_times, window_samples=WINDOW_SAMPLES, stride=None, *, start=0, stop=None):
    """Start samples of windows that lie entirely inside ``[start, stop)``.

    Parameters
    ----------
    n_times : int
        Length of the clip in samples.
    window_samples : int
        Window length in samples.
    stride : int | None
        Distance between consecutive starts; ``None`` means non-overlapping
        (``stride = window_samples``).
    start, stop : int
        The segment of the clip; ``stop=None`` means ``n_times``.

    Returns
    -------
    starts : ndarray of int64, shape (n_windows,)
        ``start, start + stride, ...`` while ``s + window_samples <= stop``.
    """
    n_times = check_number("n_times", n_times, low=1, integer=True)
    window_samples = check_number("window_samples", window_samples, low=1, integer=True)
    stride = window_samples if stride is None else check_number("stride", stride, low=1,
                                                                 integer=True)
    stop = n_times if stop is None else min(int(stop), n_times)
    return np.arange(int(start), stop - window_samples + 1, stride, dtype=np.int64)


def _overlaps(starts, window_samples, lo, hi):
    """Whether windows ``[s, s + window_samples)`` intersect ``[lo, hi)``."""
    return (starts < hi) & (starts + window_samples > lo)


class TemporalBlockSplit:
    """The paper's subject-dependent split into contiguous temporal blocks (§5.1).

    Each clip of ``n_times`` samples is cut into ``n_blocks`` blocks of
    ``n_times // n_blocks`` samples. Fold ``f``: test = block ``f``, validation = block
    ``f - 1`` (block ``n_blocks - 1`` for ``f = 0``); training windows may start anywhere
    such that the whole window overlaps neither block. The same split applies to every clip.

    Parameters
    ----------
    n_blocks : int
        Number of blocks (10 in the paper).
    window_samples : int
        Window length in samples (128).
    """

    def __init__(self, n_blocks=N_BLOCKS, window_samples=WINDOW_SAMPLES):
        self.n_blocks = n_blocks
        self.window_samples = window_samples

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of folds."""
        return self.n_blocks

    def blocks(self, n_times):
        """Return the ``(start, stop)`` sample range of each block.

        Parameters
        ----------
        n_times : int
            Clip length in samples.

        Returns
        -------
        blocks : ndarray of int64, shape (n_blocks, 2)
        """
        n_blocks = check_number("n_blocks", self.n_blocks, low=2, integer=True)
        w = check_number("window_samples", self.window_samples, low=1, integer=True)
        size = int(n_times) // n_blocks
        if size < w:
            raise ParameterError(
                f"clips of {n_times} samples give blocks of {size} samples, shorter than the "
                f"window of {w} samples; the blocks must hold at least one window; use fewer "
                "blocks or longer clips.")
        lo = np.arange(n_blocks, dtype=np.int64) * size
        return np.stack([lo, lo + size], axis=1)

    def fold(self, fold, n_times):
        """Return the window starts of one fold.

        Parameters
        ----------
        fold : int
            Fold index, ``0 <= fold < n_blocks``.
        n_times : int
            Clip length in samples.

        Returns
        -------
        train_starts : ndarray of int64, shape (n_train,)
            Every start whose window overlaps neither the test nor the validation block.
        val_starts : ndarray of int64, shape (n_val,)
            Every start whose window lies inside the validation block.
        test_starts : ndarray of int64, shape (n_test,)
            Every start whose window lies inside the test block.
        """
        blocks = self.blocks(n_times)
        fold = check_number("fold", fold, low=0, high=len(blocks) - 1, integer=True)
        w = int(self.window_samples)
        t_lo, t_hi = blocks[fold]
        v_lo, v_hi = blocks[fold - 1]
        every = window_starts(n_times, w, 1)
        keep = ~_overlaps(every, w, t_lo, t_hi) & ~_overlaps(every, w, v_lo, v_hi)
        return (every[keep], window_starts(n_times, w, 1, start=v_lo, stop=v_hi),
                window_starts(n_times, w, 1, start=t_lo, stop=t_hi))

    def split(self, X, y=None, groups=None):
        """Yield ``(train_starts, val_starts, test_starts)`` for every fold.

        Parameters
        ----------
        X : ndarray, shape (..., n_times)
            The clips (only the length of the last axis is used).
        y, groups : None
            Ignored; present for scikit-learn compatibility.

        Yields
        ------
        train_starts, val_starts, test_starts : ndarray of int64
            See :meth:`fold`.
        """
        n_times = np.shape(X)[-1]
        for fold in range(self.get_n_splits()):
            yield self.fold(fold, n_times)


class ClipKFold:
    """Leak-free subject-dependent split: whole clips held out ("sd-strict").

    The clips are shuffled (seeded) and dealt into ``n_splits`` groups. Fold ``f`` tests on
    group ``f``, validates on group ``f - 1`` and trains on the remaining clips, so no clip
    (hence no sample) is shared between training, validation and test. Windows inside a
    split are non-overlapping and keep the natural class distribution.

    Parameters
    ----------
    n_splits : int
        Number of folds (6 gives 3 test, 3 validation and 12 training clips of 18).
    shuffle : bool
        Shuffle the clips before dealing them.
    random_state : int | numpy.random.Generator | None
        Seed of the shuffle.
    """

    def __init__(self, n_splits=6, shuffle=True, random_state=0):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Return the number of folds."""
        return self.n_splits

    def split_clips(self, n_clips):
        """Yield ``(train_clips, val_clips, test_clips)`` clip indices for every fold.

        Parameters
        ----------
        n_clips : int
            Number of clips.

        Yields
        ------
        train_clips, val_clips, test_clips : ndarray of int64
            Disjoint, sorted clip indices covering ``range(n_clips)``.
        """
        k = check_number("n_splits", self.n_splits, low=3, integer=True,
                         hint="use at least 3 folds (test, validation and training groups)")
        if n_clips < k:
            raise ParameterError(f"n_splits={k} needs at least {k} clips, got {n_clips}; use "
                                 "fewer folds.")
        order = np.arange(n_clips)
        if self.shuffle:
            order = check_random_state(self.random_state).permutation(n_clips)
        groups = np.array_split(order, k)
        for f in range(k):
            test = np.sort(groups[f])
            val = np.sort(groups[f - 1])
            train = np.setdiff1d(order, np.concatenate([test, val]))
            yield train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)

    def split(self, X, y=None, groups=None):
        """Yield ``(train, val, test)`` window indices grouped by clip.

        Parameters
        ----------
        X : array-like, shape (n_windows, ...)
            The windows (only their number is used).
        y : None
            Ignored.
        groups : array-like of int, shape (n_windows,)
            The clip of each window.

        Yields
        ------
        train, val, test : ndarray of int64
            Indices into the windows.
        """
        if groups is None:
            raise ParameterError("ClipKFold.split needs groups (the clip of each window), got "
                                 "None; pass groups=clip_ids.")
        groups = np.asarray(groups)
        if len(groups) != len(X):
            raise ParameterError(f"groups must have one entry per window ({len(X)}), got "
                                 f"{len(groups)}; pass the clip id of every window.")
        clips, inverse = np.unique(groups, return_inverse=True)
        for train, val, test in self.split_clips(len(clips)):
            yield (np.flatnonzero(np.isin(inverse, train)),
                   np.flatnonzero(np.isin(inverse, val)),
                   np.flatnonzero(np.isin(inverse, test)))


def mode_labels(labels, axis=0):
    """Most frequent label along ``axis``; ties go to the lowest label.

    Parameters
    ----------
    labels : array-like of int, shape (..., n_subjects, ...)
        Non-negative integer labels (classes 0..4 or ratings 1..5).
    axis : int
        Axis to take the mode over (the subjects).

    Returns
    -------
    mode : ndarray of int64
        ``labels`` with ``axis`` removed.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or (labels.size and labels.min() < 0):
        raise DataError(f"labels must be non-negative integers, got dtype {labels.dtype}; "
                        "pass class indices 0..4.")
    moved = np.moveaxis(labels, axis, -1)
    n_values = int(labels.max()) + 1 if labels.size else 1
    counts = (moved[..., None] == np.arange(n_values)).sum(axis=-2)
    return counts.argmax(axis=-1).astype(np.int64)  # argmax takes the first (lowest) tie


def correct_labels(labels, train_subjects):
    """Apply the paper's label correction for subject-independent training (§5.2).

    For each clip and dimension, every training subject's label is replaced by the mode of
    the training subjects' labels (ties to the lower rating). The test subject's labels are
    never used nor changed.

    Parameters
    ----------
    labels : ndarray of int, shape (n_subjects, n_clips, n_dimensions)
        Class labels of every subject.
    train_subjects : array-like of int
        Indices of the training subjects (the test subject excluded).

    Returns
    -------
    corrected : ndarray of int64, shape (n_train_subjects, n_clips, n_dimensions)
        The corrected labels of ``train_subjects``, in that order.
    """
    labels = np.asarray(labels)
    train_subjects = np.asarray(train_subjects, dtype=np.int64)
    mode = mode_labels(labels[train_subjects], axis=0)
    return np.broadcast_to(mode, (len(train_subjects),) + mode.shape).copy()


class LeaveOneSubjectOut:
    """Leave-one-subject-out over the subjects (the paper's "reston1").

    Parameters
    ----------
    test_subjects : array-like of int | None
        Subjects to use as test subjects; ``None`` means all of them.
    """

    def __init__(self, test_subjects=None):
        self.test_subjects = test_subjects

    def split(self, n_subjects):
        """Yield ``(train_subjects, test_subject)`` for every test subject.

        Parameters
        ----------
        n_subjects : int
            Number of subjects.

        Yields
        ------
        train_subjects : ndarray of int64
            All subjects but the test subject.
        test_subject : int
        """
        everyone = np.arange(n_subjects)
        tests = everyone if self.test_subjects is None else np.asarray(self.test_subjects)
        for s in tests:
            yield everyone[everyone != s], int(s)


def one_on_one_pairs(n_subjects, test_subjects=None):
    """List the "1on1" pairs: pretrain on subject ``i - 1``, test on subject ``i``.

    The first subject is paired with the last one (23 → 1 in DREAMER numbering).

    Parameters
    ----------
    n_subjects : int
        Number of subjects.
    test_subjects : array-like of int | None
        Test subjects (0-based); ``None`` means all.

    Returns
    -------
    pairs : list of (int, int)
        ``(pretrain_subject, test_subject)``.
    """
    n_subjects = check_number("n_subjects", n_subjects, low=2, integer=True)
    tests = range(n_subjects) if test_subjects is None else test_subjects
    return [(int((s - 1) % n_subjects), int(s)) for s in tests]
