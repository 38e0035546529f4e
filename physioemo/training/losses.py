"""Training targets (Gaussian ordinal smoothing, one-hot, uniform) and soft cross-entropy.

The Gaussian ordinal smoothing is HiSTN's proposed label treatment [1]_: a rating's target
spreads over its neighbours so that near misses cost less than far ones.

References
----------
.. [1] Kuang, Song, Michoski (2024). arXiv:2408.15255.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..exceptions import ParameterError
from ..utils._checks import check_number, check_option

SMOOTHINGS = ("gaussian", "onehot", "uniform")


def _labels(y, n_classes):
    n_classes = check_number("n_classes", n_classes, low=2, integer=True)
    y_arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y_arr.ndim != 1 or y_arr.size == 0:
        raise ParameterError(f"y must be a non-empty 1-D array of class indices, got shape "
                             f"{y_arr.shape}; pass one label per window.")
    if y_arr.dtype.kind not in "iub":
        if y_arr.dtype.kind != "f" or not np.all(np.isfinite(y_arr)) or \
                not np.array_equal(y_arr, np.round(y_arr)):
            raise ParameterError(f"y must hold integer class indices, got dtype {y_arr.dtype};"
                                 " pass rating - 1 as integers.")
    y_arr = y_arr.astype(np.int64)
    if y_arr.min() < 0 or y_arr.max() >= n_classes:
        raise ParameterError(f"y must lie in 0..{n_classes - 1} (n_classes={n_classes}), got "
                             f"values {y_arr.min()}..{y_arr.max()}; use class = rating - 1.")
    return torch.as_tensor(y_arr), n_classes


def gaussian_targets(y, n_classes=5, sigma=0.5):
    """Gaussian ordinal soft targets.

    ``q_k(y) = exp(-(k - y)^2 / (2 sigma^2)) / sum_j exp(-(j - y)^2 / (2 sigma^2))``.

    Parameters
    ----------
    y : array-like of int, shape (n_windows,)
        Class indices (rating - 1).
    n_classes : int
        Number of ordered classes.
    sigma : float
        Width in classes (0.5 in the paper; smaller tends to one-hot).

    Returns
    -------
    targets : torch.Tensor, shape (n_windows, n_classes), float32
        Rows sum to 1.
    """
    y, n_classes = _labels(y, n_classes)
    sigma = check_number("sigma", sigma, low=0, low_inclusive=False,
                         hint="pass a positive width, e.g. sigma=0.5")
    k = torch.arange(n_classes, dtype=torch.float64)
    logits = -((k[None, :] - y[:, None].to(torch.float64)) ** 2) / (2.0 * sigma**2)
    return torch.softmax(logits, dim=1).to(torch.float32)


def onehot_targets(y, n_classes=5):
    """Hard one-hot targets, shape (n_windows, n_classes), float32."""
    y, n_classes = _labels(y, n_classes)
    return F.one_hot(y, n_classes).to(torch.float32)


def uniform_targets(y, n_classes=5, epsilon=0.1):
    """Uniform label smoothing ``(1 - epsilon) onehot + epsilon / n_classes``.

    The same targets as ``torch.nn.functional.cross_entropy(..., label_smoothing=epsilon)``.

    Returns
    -------
    targets : torch.Tensor, shape (n_windows, n_classes), float32
    """
    y, n_classes = _labels(y, n_classes)
    epsilon = check_number("epsilon", epsilon, low=0.0, high=1.0)
    onehot = F.one_hot(y, n_classes).to(torch.float64)
    return ((1.0 - epsilon) * onehot + epsilon / n_classes).to(torch.float32)


def make_targets(y, smoothing="gaussian", n_classes=5, sigma=0.5, epsilon=0.1):
    """Training targets by name.

    Parameters
    ----------
    y : array-like of int, shape (n_windows,)
        Class indices.
    smoothing : {"gaussian", "onehot", "uniform"}
        Gaussian ordinal smoothing (the paper's), hard one-hot, or PyTorch-style uniform.
    n_classes : int
        Number of classes.
    sigma : float
        Width of the Gaussian smoothing.
    epsilon : float
        Mass spread uniformly by the uniform smoothing.

    Returns
    -------
    targets : torch.Tensor, shape (n_windows, n_classes), float32
    """
    smoothing = check_option("smoothing", smoothing, SMOOTHINGS)
    if smoothing == "gaussian":
        return gaussian_targets(y, n_classes, sigma)
    if smoothing == "uniform":
        return uniform_targets(y, n_classes, epsilon)
    return onehot_targets(y, n_classes)


def soft_cross_entropy(logits, targets, weight=None):
    """Cross-entropy ``-sum_k q_k log softmax(logits)_k`` against soft targets.

    Parameters
    ----------
    logits : torch.Tensor, shape (n, n_classes)
        Model outputs (not softmaxed).
    targets : torch.Tensor, shape (n, n_classes)
        Target distributions (rows sum to 1).
    weight : torch.Tensor | None, shape (n,)
        Per-sample weights. The reduction is then ``sum(w * loss) / n``, as Keras applies
        ``sample_weight`` (``sum_over_batch_size``), not ``sum(w * loss) / sum(w)``.

    Returns
    -------
    loss : torch.Tensor, scalar
        Mean over samples (weighted as above).
    """
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ParameterError(f"logits and targets must both have shape (n, n_classes), got "
                             f"{tuple(logits.shape)} and {tuple(targets.shape)}; build targets "
                             "with make_targets(y, n_classes=logits.shape[1]).")
    loss = -(targets * F.log_softmax(logits, dim=-1)).sum(-1)
    if weight is None:
        return loss.mean()
    weight = torch.as_tensor(weight, dtype=loss.dtype, device=loss.device)
    if weight.shape != loss.shape:
        raise ParameterError(f"weight must have shape ({loss.shape[0]},) (one per sample), got "
                             f"{tuple(weight.shape)}; use class_weights(y, n_classes).")
    return (weight * loss).sum() / loss.shape[0]


def class_weights(y, n_classes=5):
    """Per-sample class weights ``w = max_c n_c / n_{y_i}`` (rarest present class weighs most).

    Parameters
    ----------
    y : array-like of int, shape (n_windows,)
        Class indices.
    n_classes : int
        Number of classes.

    Returns
    -------
    weight : torch.Tensor, shape (n_windows,), float32
        ``1`` for windows of the most frequent class.
    """
    y, n_classes = _labels(y, n_classes)
    counts = torch.bincount(y, minlength=n_classes).to(torch.float64)
    per_class = counts.max() / counts.clamp_min(1.0)
    return per_class[y].to(torch.float32)
