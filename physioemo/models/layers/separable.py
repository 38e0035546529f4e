"""Region-wise separable convolution: depthwise temporal filter + pointwise mixing per region."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...utils._checks import check_number
from ._blocks import block_diag_scatter, block_flat_index, memo_no_grad, region_index
from ._taps import depthwise_taps


class RegionSeparableConv(nn.Module):
    """Separable convolution applied to each region of electrodes separately.

    Every channel gets its own ``kernel_size``-tap "same" temporal filter (depthwise, no
    bias); then the channels of each region are mixed by a ``n_r x n_r`` pointwise matrix
    (no bias, ``|w| <= max_norm`` by :meth:`apply_constraints`). The result keeps the
    original channel order, as concatenating the regions back does in HiSTN [1]_; the
    pointwise matrices act as one block-diagonal matmul.

    Parameters
    ----------
    groups : list of array-like of int
        Channel indices of each region; together a partition of ``0..n_channels-1``.
    kernel_size : int
        Depthwise taps (odd: ``(kernel_size - 1) // 2`` of padding on each side).
    max_norm : float
        Bound on the absolute value of each pointwise weight.

    References
    ----------
    .. [1] Kuang, Song, Michoski (2024). arXiv:2408.15255.
    """

    def __init__(self, groups, kernel_size=5, max_norm=1.0):
        super().__init__()
        order, self.sizes = region_index(groups)
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("_flat", block_flat_index(order, self.sizes), persistent=False)
        self.n_channels = int(order.numel())
        self.kernel_size = check_number("kernel_size", kernel_size, low=1, integer=True)
        self.max_norm = check_number("max_norm", max_norm, low=0, low_inclusive=False)
        self.pad_before = (self.kernel_size - 1) // 2
        self.pad_after = self.kernel_size - 1 - self.pad_before
        self.depthwise = nn.Parameter(torch.empty(self.n_channels, self.kernel_size))
        self.pointwise = nn.ParameterList(
            [nn.Parameter(torch.empty(n, n)) for n in self.sizes])
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot-uniform depthwise and pointwise weights (Keras' defaults, per region)."""
        start = 0
        for w, n in zip(self.pointwise, self.sizes, strict=True):
            k = self.kernel_size
            bound = math.sqrt(6.0 / (k * n + k))
            nn.init.uniform_(self.depthwise[start:start + n], -bound, bound)
            nn.init.uniform_(w, -math.sqrt(3.0 / n), math.sqrt(3.0 / n))
            start += n

    @memo_no_grad
    def pointwise_matrix(self):
        """Block-diagonal pointwise matrix ``W[i, j]`` (input i -> output j), (n_ch, n_ch)."""
        return block_diag_scatter(list(self.pointwise), self._flat, self.order.numel())

    def apply_constraints(self):
        """Clamp the pointwise weights to ``[-max_norm, max_norm]`` (in place, no grad)."""
        with torch.no_grad():
            for w in self.pointwise:
                w.clamp_(-self.max_norm, self.max_norm)

    def forward(self, x):
        """Filter and mix.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_channels, n_times)

        Returns
        -------
        y : torch.Tensor, shape (batch, n_channels, n_times)
        """
        y = depthwise_taps(x, self.depthwise, self.pad_before, self.pad_after)
        return self.pointwise_matrix().transpose(0, 1) @ y

    def extra_repr(self):  # noqa: D102 (documented by nn.Module)
        return (f"region_sizes={self.sizes}, kernel_size={self.kernel_size}, padding='same', "
                f"max_norm={self.max_norm}")
