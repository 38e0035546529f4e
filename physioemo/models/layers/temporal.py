"""HiSTN's temporal head: shared temporal kernels, then per-electrode mixing, fused."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...utils._checks import check_number, check_option
from ._blocks import memo_no_grad

IMPLS = ("banded", "literal")


class _BandMatrices(torch.autograd.Function):
    """``h`` (n_channels, k) -> ``B[c, s, t] = h[c, s - t + p]`` (0 where out of the band).

    Built from strided views of the zero-padded kernels instead of a gather: the forward
    is one copy and the backward sums the diagonals of ``dB`` through a strided view (the
    generic index backward was ~1 ms per step at batch 256).
    """

    @staticmethod
    def forward(ctx, h, n, p):
        c, k = h.shape
        ctx.shape = (n, k, p)
        # with the rows flipped (s' = n - 1 - s) the matrix is a Hankel matrix of the
        # flipped kernels, i.e. a view with strides (1, 1) into them padded by n
        hfp = F.pad(h.flip(-1), (n, n)).contiguous()
        rows = hfp.as_strided((c, n, n), (hfp.stride(0), 1, 1), k - p)
        return rows.flip(1)

    @staticmethod
    def backward(ctx, grad):
        n, k, p = ctx.shape
        # dh[c, j] = sum_s dB[c, s, s + p - j]: pad the columns by k and walk the band
        # with a row stride of (row length + 1)
        gp = F.pad(grad, (k, k)).contiguous()
        width = n + 2 * k
        diag = gp.as_strided((gp.shape[0], n, k), (gp.stride(0), width + 1, 1), p + 1)
        return diag.sum(1).flip(-1), None, None


class FusedTemporalConv(nn.Module):
    """Shared temporal convolution + per-electrode mixing, computed as one fused kernel.

    The literal layer convolves every electrode with ``n_filters`` shared kernels
    ``k_f`` ("same" padding: ``(kernel_size - 1) // 2`` samples before, the rest after, no
    bias) and mixes the outputs per electrode: ``y_c = sum_f a[f, c] (k_f * x_c)``. Both
    maps are linear with nothing between them, so ``y_c = h_c * x_c`` with the fused kernel
    ``h_c = sum_f a[f, c] k_f`` (``n_filters`` times fewer operations). With
    ``impl="banded"`` each ``h_c`` is laid out as a banded ``n_times x n_times`` Toeplitz
    matrix and the layer is one batched matmul (much faster on CPU than a depthwise
    convolution); ``impl="literal"`` runs the unfused conv2d + mixing, kept as the
    reference. Both give the same outputs and gradients up to rounding.

    Parameters
    ----------
    n_channels : int
        Number of electrodes.
    n_times : int
        Window length in samples (the banded matrices are ``n_times x n_times``).
    n_filters : int
        Number of shared temporal kernels.
    kernel_size : int
        Taps per kernel.
    max_norm : float
        Bound on ``|a[f, c]|`` enforced by :meth:`apply_constraints`.
    impl : {"banded", "literal"}
        How :meth:`forward` computes the layer.
    """

    def __init__(self, n_channels=14, n_times=128, n_filters=8, kernel_size=64, max_norm=1.0,
                 impl="banded"):
        super().__init__()
        self.n_channels = check_number("n_channels", n_channels, low=1, integer=True)
        self.n_times = check_number("n_times", n_times, low=1, integer=True)
        self.n_filters = check_number("n_filters", n_filters, low=1, integer=True)
        self.kernel_size = check_number("kernel_size", kernel_size, low=1, integer=True)
        self.max_norm = check_number("max_norm", max_norm, low=0, low_inclusive=False)
        self.impl = check_option("impl", impl, IMPLS)
        self.pad_before = (self.kernel_size - 1) // 2
        self.pad_after = self.kernel_size - 1 - self.pad_before
        self.kernels = nn.Parameter(torch.empty(self.n_filters, self.kernel_size))
        self.mixing = nn.Parameter(torch.empty(self.n_filters, self.n_channels))
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot-uniform kernels and mixing weights, with the fans Keras computes.

        Keras' Glorot-uniform bound is ``sqrt(6 / (fan_in + fan_out))`` with
        ``fan_in = receptive_field * shape[-2]`` and ``fan_out = receptive_field *
        shape[-1]`` (``receptive_field`` = product of the other axes). The reference builds
        the shared kernels as ``Conv2D(n_filters, (kernel_size, 1))`` on one input channel
        (kernel ``(kernel_size, 1, 1, n_filters)``: fans ``kernel_size`` and ``kernel_size *
        n_filters``) and the mixing as ``DepthwiseConv2D((1, n_filters))`` over the
        ``n_channels`` electrodes (kernel ``(1, n_filters, n_channels, 1)``: fans
        ``n_filters * n_channels`` and ``n_filters``), so the mixing bound is
        ``sqrt(6 / 120) = 0.224`` for 8 filters and 14 electrodes.
        """
        bound = math.sqrt(6.0 / (self.kernel_size + self.kernel_size * self.n_filters))
        nn.init.uniform_(self.kernels, -bound, bound)
        bound = min(math.sqrt(6.0 / (self.n_filters * self.n_channels + self.n_filters)),
                    self.max_norm)
        nn.init.uniform_(self.mixing, -bound, bound)

    @memo_no_grad
    def fused_kernels(self):
        """Per-electrode kernels ``h[c] = sum_f a[f, c] k_f``, shape (n_channels, kernel_size)."""
        return self.mixing.transpose(0, 1) @ self.kernels

    @memo_no_grad  # built once for inference, not for every window
    def band_matrices(self):
        """Banded Toeplitz matrices, shape (n_channels, n_times, n_times).

        ``y[..., c, t] = sum_s x[..., c, s] B[c, s, t]`` is the "same" convolution of
        electrode ``c`` with its fused kernel.
        """
        return _BandMatrices.apply(self.fused_kernels(), self.n_times, self.pad_before)

    def apply_constraints(self):
        """Clamp the mixing weights to ``[-max_norm, max_norm]`` (in place, no grad)."""
        with torch.no_grad():
            self.mixing.clamp_(-self.max_norm, self.max_norm)

    def forward(self, x):
        """Filter every electrode.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_channels, n_times)

        Returns
        -------
        y : torch.Tensor, shape (batch, n_channels, n_times)
        """
        if self.impl == "literal":
            return self.forward_literal(x)
        # (n_channels, batch, n_times) @ (n_channels, n_times, n_times)
        y = torch.bmm(x.transpose(0, 1), self.band_matrices())
        # one cheap copy back to (batch, n_channels, n_times) memory order: BatchNorm and
        # the layers after it run faster on contiguous tensors
        return y.transpose(0, 1).contiguous()

    def forward_literal(self, x):
        """Compute the unfused reference: conv2d with the shared kernels, then mixing.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_channels, n_times)

        Returns
        -------
        y : torch.Tensor, shape (batch, n_channels, n_times)
        """
        xp = F.pad(x, (self.pad_before, self.pad_after)).unsqueeze(1)
        z = F.conv2d(xp, self.kernels.view(self.n_filters, 1, 1, self.kernel_size))
        return (z * self.mixing[None, :, :, None]).sum(1)

    def extra_repr(self):  # noqa: D102 (documented by nn.Module)
        return (f"n_channels={self.n_channels}, n_times={self.n_times}, "
                f"n_filters={self.n_filters}, kernel_size={self.kernel_size}, "
                f"padding=({self.pad_before}, {self.pad_after}), max_norm={self.max_norm}, "
                f"impl={self.impl!r}")
