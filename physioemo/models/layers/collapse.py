"""Global collapse G: the region signals -> one attention-weighted signal."""

from __future__ import annotations

from torch import nn

from ...utils._checks import check_number
from ._blocks import softmax


class GlobalCollapse(nn.Module):
    """Collapse ``n_regions`` signals into one with learned attention.

    ``beta = softmax(W mean_t y + b)`` (dense ``n_regions -> n_regions``) and
    ``g(t) = sum_r beta_r y[r, t]`` (the collapse operator G of HiSTN [1]_).

    Parameters
    ----------
    n_regions : int
        Number of input signals.

    References
    ----------
    .. [1] Kuang, Song, Michoski (2024). arXiv:2408.15255.
    """

    def __init__(self, n_regions):
        super().__init__()
        self.n_regions = check_number("n_regions", n_regions, low=1, integer=True)
        self.linear = nn.Linear(self.n_regions, self.n_regions)
        self.reset_parameters()

    def reset_parameters(self):
        """Glorot-uniform weight, zero bias (Keras ``Dense`` defaults)."""
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, y):
        """Collapse.

        Parameters
        ----------
        y : torch.Tensor, shape (batch, n_regions, n_times)

        Returns
        -------
        g : torch.Tensor, shape (batch, 1, n_times)
        """
        beta = softmax(self.linear(y.mean(-1)))
        return beta.unsqueeze(-2) @ y

    def forward_mean(self, y_mean):
        """Time-mean of :meth:`forward` from the time-mean of its input.

        ``forward(y).mean(-1) == forward_mean(y.mean(-1))`` (weights from the mean, linear
        in time).

        Parameters
        ----------
        y_mean : torch.Tensor, shape (batch, n_regions)

        Returns
        -------
        g_mean : torch.Tensor, shape (batch, 1)
        """
        beta = softmax(self.linear(y_mean))
        return (beta * y_mean).sum(-1, keepdim=True)

    def extra_repr(self):  # noqa: D102 (documented by nn.Module)
        return f"n_regions={self.n_regions}"
