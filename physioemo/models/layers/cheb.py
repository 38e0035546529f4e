"""Chebyshev polynomial graph filter with scalar weights (one filter for the whole graph)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._blocks import memo_no_grad


class ChebGraphFilter(nn.Module):
    """Chebyshev graph filter ``P = sum_k w_k T_k`` applied on the channel axis.

    ``out[..., j, t] = sum_i P[i, j] x[..., i, t]``: the same as the paper's
    ``out[t, j] = sum_i X[t, i] P[i, j]`` with time on the last axis. Unlike PyG's
    :class:`~torch_geometric.nn.ChebConv` the weights are scalars (one per order, no
    feature mixing), as in HiSTN [1]_; on graphs of 2-5 nodes a dense matmul is faster
    than sparse message passing.

    Parameters
    ----------
    basis : torch.Tensor, shape (K + 1, n_nodes, n_nodes)
        ``T_0 .. T_K`` from :func:`physioemo.models.graphs.chebyshev_basis`; kept as a
        buffer.

    References
    ----------
    .. [1] Kuang, Song, Michoski (2024). arXiv:2408.15255.
    """

    def __init__(self, basis):
        super().__init__()
        basis = torch.as_tensor(basis, dtype=torch.float32)
        if basis.ndim != 3 or basis.shape[1] != basis.shape[2]:
            from ...exceptions import ParameterError

            raise ParameterError(f"basis must have shape (K + 1, n_nodes, n_nodes), got "
                                 f"{tuple(basis.shape)}; build it with chebyshev_basis().")
        self.register_buffer("basis", basis)
        self.weight = nn.Parameter(torch.empty(basis.shape[0]))
        self.reset_parameters()

    @property
    def K(self):
        """Highest Chebyshev order."""
        return self.basis.shape[0] - 1

    @property
    def n_nodes(self):
        """Number of graph nodes."""
        return self.basis.shape[1]

    def reset_parameters(self):
        """Glorot-uniform weights as Keras draws them, bound ``sqrt(3 / (K + 1))``.

        The reference creates the ``K + 1`` weights with ``add_weight`` and no initialiser,
        i.e. Keras' default Glorot-uniform; for a 1-D shape Keras takes ``fan_in = fan_out =
        K + 1``, so the bound is ``sqrt(6 / (2 (K + 1)))``: 1 for K = 2 (graph G0),
        sqrt(3 / 2) = 1.22 for K = 1 and sqrt(3 / 4) = 0.87 for K = 3 (graphs G1/G2).
        """
        bound = math.sqrt(3.0 / self.basis.shape[0])
        nn.init.uniform_(self.weight, -bound, bound)

    @memo_no_grad
    def filter_matrix(self):
        """Return ``P = sum_k w_k T_k``, shape (n_nodes, n_nodes)."""
        n = self.basis.shape[1]
        return (self.weight @ self.basis.reshape(self.basis.shape[0], n * n)).view(n, n)

    def forward(self, x):
        """Filter ``x``.

        Parameters
        ----------
        x : torch.Tensor, shape (..., n_nodes, n_times)

        Returns
        -------
        out : torch.Tensor, shape (..., n_nodes, n_times)
        """
        return self.filter_matrix().transpose(0, 1) @ x

    def extra_repr(self):  # noqa: D102 (documented by nn.Module)
        return f"n_nodes={self.n_nodes}, K={self.K}"
