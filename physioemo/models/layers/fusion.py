"""Region attention fusion F: each region's electrodes -> one attention-weighted signal."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._blocks import (
    block_diag_scatter,
    block_flat_index,
    memo_no_grad,
    region_index,
    region_mask,
    softmax,
)


class RegionAttentionFusion(nn.Module):
    """Fuse the electrodes of each region into one signal with learned attention.

    ``m = mean_t x``; for region ``r``, ``alpha_r = softmax(W_r m[S_r] + b_r)`` (a dense
    ``n_r -> n_r`` layer) and ``z_r(t) = sum_{i in S_r} alpha_{r,i} x[i, t]`` (the fusion
    operator F of HiSTN [1]_). The per-region softmax is one masked softmax over all
    channels.

    Parameters
    ----------
    groups : list of array-like of int
        Channel indices of each region; together a partition of ``0..n_channels-1``.

    References
    ----------
    .. [1] Kuang, Song, Michoski (2024). arXiv:2408.15255.
    """

    def __init__(self, groups):
        super().__init__()
        order, self.sizes = region_index(groups)
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("_flat", block_flat_index(order, self.sizes), persistent=False)
        mask = region_mask(order, self.sizes)
        # -inf outside each region so that the softmax over all channels is per region
        self.register_buffer("_neg", torch.where(mask > 0, 0.0, float("-inf")),
                             persistent=False)
        self.weight = nn.ParameterList([nn.Parameter(torch.empty(n, n)) for n in self.sizes])
        self.bias = nn.Parameter(torch.empty(int(order.numel())))
        self.reset_parameters()

    @property
    def n_regions(self):
        """Number of regions."""
        return len(self.sizes)

    def reset_parameters(self):
        """Glorot-uniform weights, zero biases (Keras ``Dense`` defaults)."""
        for w, n in zip(self.weight, self.sizes, strict=True):
            nn.init.uniform_(w, -math.sqrt(3.0 / n), math.sqrt(3.0 / n))
        nn.init.zeros_(self.bias)

    @memo_no_grad
    def weight_matrix(self):
        """Block-diagonal attention weights ``W[i, j]`` (input i -> output j), (n_ch, n_ch)."""
        return block_diag_scatter(list(self.weight), self._flat, self.order.numel())

    def attention(self, x_mean):
        """Attention weights from the time-mean.

        Parameters
        ----------
        x_mean : torch.Tensor, shape (batch, n_channels)
            ``x.mean(-1)``.

        Returns
        -------
        alpha : torch.Tensor, shape (batch, n_regions, n_channels)
            Zero outside each region; each row sums to 1.
        """
        logits = x_mean @ self.weight_matrix() + self.bias
        return softmax(logits.unsqueeze(-2) + self._neg)

    def forward(self, x):
        """Fuse.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_channels, n_times)

        Returns
        -------
        z : torch.Tensor, shape (batch, n_regions, n_times)
        """
        return self.attention(x.mean(-1)) @ x

    def forward_mean(self, x_mean):
        """Time-mean of :meth:`forward` from the time-mean of its input.

        The weights depend on ``x`` only through its time-mean and the fusion is linear in
        time, so ``forward(x).mean(-1) == forward_mean(x.mean(-1))``.

        Parameters
        ----------
        x_mean : torch.Tensor, shape (batch, n_channels)

        Returns
        -------
        z_mean : torch.Tensor, shape (batch, n_regions)
        """
        return (self.attention(x_mean) @ x_mean.unsqueeze(-1)).squeeze(-1)

    def extra_repr(self):  # noqa: D102 (documented by nn.Module)
        return f"region_sizes={self.sizes}"
