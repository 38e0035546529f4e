"""Classification metrics for ordinal 1..5 ratings (NumPy only).

Every score function takes ``(y_true, scores)``: class indices of shape ``(n_windows,)`` and
class scores (probabilities or logits) of shape ``(n_windows, n_classes)``, and returns a
percentage. ``r1``/``r2`` are the classes with the largest and second-largest score (ties go
to the lower class index). Tri-P and Seq2HR are the ordinal metrics of HiSTN [1]_.

References
----------
.. [1] Kuang, Song, Michoski (2024). arXiv:2408.15255.
"""

from __future__ import annotations

import numpy as np

from ..exceptions import ParameterError
from ..utils._checks import check_array, check_number

METRICS = ("weighted_f1", "macro_f1", "accuracy", "top2_accuracy", "tri_p", "seq2hr")


def _check(y_true, scores):
    scores = check_array("scores", scores, ndim=2)
    n, n_classes = scores.shape
    y = np.asarray(y_true)
    if y.ndim != 1 or y.shape[0] != n or n == 0:
        raise ParameterError(f"y_true must have shape ({n},) to match scores of shape "
                             f"{scores.shape}, got {y.shape}; pass one label per row of scores.")
    y = _as_labels("y_true", y, n_classes)
    if n_classes < 2:
        raise ParameterError(f"scores must have at least 2 columns (classes), got {n_classes};"
                             " pass one score per class.")
    return y, scores


def _as_labels(name, y, n_classes):
    if y.dtype.kind not in "iub":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or not np.array_equal(y, y.round()):
            raise ParameterError(f"{name} must hold integer class indices, got dtype "
                                 f"{y.dtype}; pass rating - 1 as integers.")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ParameterError(f"{name} must lie in 0..{n_classes - 1}, got values "
                             f"{y.min()}..{y.max()}; use class = rating - 1.")
    return y


def _top2(scores):
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, 0], order[:, 1]


def _f1_per_class(y, pred, n_classes):
    cm = _confusion(y, pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    denom = support + predicted
    # F1 = 2 tp / (2 tp + fp + fn); 0 when a class is neither true nor predicted
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return f1, support, predicted


def _confusion(y, pred, n_classes):
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes)


def weighted_f1(y_true, scores):
    """F1 per class averaged with the true class counts as weights, in percent.

    Equals ``sklearn.metrics.f1_score(y, argmax(scores), average="weighted") * 100``
    (the paper's headline metric).
    """
    y, scores = _check(y_true, scores)
    f1, support, _ = _f1_per_class(y, scores.argmax(1), scores.shape[1])
    return float(100.0 * (f1 * support).sum() / support.sum())


def macro_f1(y_true, scores):
    """Unweighted mean F1 over the classes present in ``y_true`` or predicted, in percent.

    Equals ``sklearn.metrics.f1_score(y, argmax(scores), average="macro") * 100``.
    """
    y, scores = _check(y_true, scores)
    f1, support, predicted = _f1_per_class(y, scores.argmax(1), scores.shape[1])
    present = (support + predicted) > 0
    return float(100.0 * f1[present].mean())


def accuracy(y_true, scores):
    """Percentage of windows whose top-scored class is the true class."""
    y, scores = _check(y_true, scores)
    return float(100.0 * np.mean(scores.argmax(1) == y))


def top2_accuracy(y_true, scores):
    """Percentage of windows whose true class is among the two top-scored (of all classes)."""
    y, scores = _check(y_true, scores)
    r1, r2 = _top2(scores)
    return float(100.0 * np.mean((r1 == y) | (r2 == y)))


def tri_p(y_true, scores):
    """Tri-P: percentage of windows with ``|r1 - y| <= 1`` (off by at most one rating)."""
    y, scores = _check(y_true, scores)
    return float(100.0 * np.mean(np.abs(scores.argmax(1) - y) <= 1))


def seq2hr(y_true, scores):
    """Sequential top-2 hit rate: ``|r1 - r2| == 1`` and ``y in {r1, r2}``, in percent."""
    y, scores = _check(y_true, scores)
    r1, r2 = _top2(scores)
    return float(100.0 * np.mean((np.abs(r1 - r2) == 1) & ((r1 == y) | (r2 == y))))


def confusion_matrix(y_true, y_pred_or_scores, n_classes=5):
    """Count the windows of each (true class, predicted class) pair.

    Parameters
    ----------
    y_true : array-like of int, shape (n_windows,)
        True classes.
    y_pred_or_scores : array-like, shape (n_windows,) or (n_windows, n_classes)
        Predicted classes, or scores (their argmax is the prediction).
    n_classes : int
        Number of classes (the matrix is ``n_classes x n_classes`` even if some are absent).

    Returns
    -------
    cm : ndarray of int64, shape (n_classes, n_classes)
        ``cm[i, j]`` = windows of class ``i`` predicted as ``j``; a new array every call.
    """
    n_classes = check_number("n_classes", n_classes, low=1, integer=True)
    pred = np.asarray(y_pred_or_scores)
    if pred.ndim == 2:
        if pred.shape[1] != n_classes:
            raise ParameterError(f"scores have {pred.shape[1]} columns but n_classes="
                                 f"{n_classes}; pass n_classes={pred.shape[1]}.")
        pred = check_array("scores", pred).argmax(1)
    y = np.asarray(y_true)
    if y.ndim != 1 or pred.ndim != 1 or y.shape != pred.shape:
        raise ParameterError(f"y_true and predictions must be 1-D of equal length, got shapes "
                             f"{y.shape} and {pred.shape}; pass one prediction per label.")
    y = _as_labels("y_true", y, n_classes)
    pred = _as_labels("y_pred", pred, n_classes)
    return _confusion(y, pred, n_classes).astype(np.int64)


def compute_metrics(y_true, scores):
    """All score metrics at once.

    Parameters
    ----------
    y_true : array-like of int, shape (n_windows,)
        True classes.
    scores : array-like, shape (n_windows, n_classes)
        Class scores.

    Returns
    -------
    metrics : dict of str to float
        ``weighted_f1``, ``macro_f1``, ``accuracy``, ``top2_accuracy``, ``tri_p``,
        ``seq2hr`` (percentages) and ``n_windows``.
    """
    out = {name: globals()[name](y_true, scores) for name in METRICS}
    out["n_windows"] = int(np.asarray(y_true).shape[0])
    return out
