"""Per-electrode short temporal convolution ("valid"), with an L2 bound per electrode."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...utils._checks import check_number
from ._taps import depthwise_taps


class ElectrodeConv(nn.Module):
    """Depthwise temporal convolution: each electrode has its own ``kernel_size``-tap filter.

    "valid" padding (``n_times -> n_times - kernel_size + 1``), no bias. Computed as
    ``kernel_size`` in-place shifted multiply-adds with a hand-written backward, which beats
    PyTorch's CPU depthwise convolution at these sizes. :meth:`apply_constraints` rescales
    every electrode's kernel to an L2 norm of at most ``max_norm`` (Keras ``MaxNorm`` on
    the depthwise kernel in HiSTN [1]_).

    Parameters
    ----------
    n_channels : int
        Number of electrodes.
    kernel_size : int
        Taps per electrode.
    max_norm : float
        Bound on each electrode's kernel L2 norm.

    References
    ----------
    .. [1] Kuang, Song, Michoski (2024). arXiv:2408.15255.
    """

    def __init__(self, n_channels=14, kernel_size=5, max_norm=1.0):
        super().__init__()
        self.n_channels = check_number("n_channels", n_channels, low=1, integer=True)
        self.kernel_size = check_number("kernel_size", kernel_size, low=1, integer=True)
        self.max_norm = check_number("max_norm", max_norm, low=0, low_inclusive=False)
        self.weight = nn.Parameter(torch.empty(self.n_channels, self.kernel_size))
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot-uniform weights as Keras computes them for a depthwise kernel."""
        k = self.kernel_size
        bound = math.sqrt(6.0 / (k * self.n_channels + k))
        nn.init.uniform_(self.weight, -bound, bound)

    def apply_constraints(self):
        """Rescale each electrode's kernel to L2 norm <= ``max_norm`` (in place, no grad)."""
        with torch.no_grad():
            norm = self.weight.norm(dim=1, keepdim=True)
            self.weight.mul_((self.max_norm / norm.clamp_min(1e-12)).clamp(max=1.0))

    def forward(self, x):
        """Filter each electrode.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_channels, n_times)

        Returns
        -------
        y : torch.Tensor, shape (batch, n_channels, n_times - kernel_size + 1)
        """
        return depthwise_taps(x, self.weight)

    def extra_repr(self):  # noqa: D102 (documented by nn.Module)
        return (f"n_channels={self.n_channels}, kernel_size={self.kernel_size}, "
                f"padding='valid', max_norm={self.max_norm}")
