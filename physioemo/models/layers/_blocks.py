"""Helpers shared by the region layers: block-diagonal matrices over a channel partition."""

from __future__ import annotations

import torch


def region_index(groups):
    """Validate a partition of channels; return the concatenated order and the sizes."""
    from ...exceptions import ParameterError

    groups = [torch.as_tensor(g, dtype=torch.long).reshape(-1) for g in groups]
    order = torch.cat(groups) if groups else torch.zeros(0, dtype=torch.long)
    n = int(order.numel())
    if n == 0 or any(g.numel() == 0 for g in groups) or \
            not torch.equal(torch.sort(order).values, torch.arange(n)):
        raise ParameterError(
            f"groups must partition the channels 0..n_channels-1 into non-empty regions, got "
            f"{[g.tolist() for g in groups]}; give each channel exactly one region.")
    return order, [int(g.numel()) for g in groups]


def block_diag_in_order(blocks, order):
    """Block-diagonal matrix of ``blocks`` placed on the channels ``order``.

    Parameters
    ----------
    blocks : list of torch.Tensor, shapes (n_r, n_r)
    order : torch.Tensor of int, shape (n_channels,)
        The channels of region 0, then region 1, ...

    Returns
    -------
    M : torch.Tensor, shape (n_channels, n_channels)
        ``M[order[i], order[j]] = block_diag(blocks)[i, j]``.
    """
    M = torch.block_diag(*blocks)
    if torch.equal(order, torch.arange(order.numel())):
        return M
    inv = torch.argsort(order)
    return M[inv][:, inv]


def region_mask(order, sizes):
    """Membership, shape (n_regions, n_channels): 1 where channel belongs to region."""
    mask = torch.zeros(len(sizes), int(order.numel()))
    start = 0
    for r, n in enumerate(sizes):
        mask[r, order[start:start + n]] = 1.0
        start += n
    return mask
