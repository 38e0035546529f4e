"""Short per-channel temporal filters as in-place shifted multiply-adds, with a hand backward.

PyTorch's CPU depthwise convolution is slow for a handful of taps, and the autograd graph
of ``sum_j x[..., j:j + n] * w[:, j]`` allocates a zero-filled gradient per slice. This
function computes the same thing with one output buffer forward and one per input backward.
"""

from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=64)
def _spans(n_in, n_out, k, p0):
    """(tap, output start, output stop, input start) of every tap's valid overlap."""
    out = []
    for j in range(k):
        t0, t1 = max(0, p0 - j), min(n_out, n_in + p0 - j)
        if t1 > t0:
            out.append((j, t0, t1, t0 + j - p0))
    return tuple(out)


def _taps_forward(x, w, p0, p1):
    n_in, k = x.shape[-1], w.shape[1]
    n_out = n_in + p0 + p1 - k + 1
    spans = _spans(n_in, n_out, k, p0)
    # start from a tap that covers every output sample (no zero fill), if there is one
    first = next((sp for sp in spans if sp[1] == 0 and sp[2] == n_out), None)
    if first is not None:
        j, _, _, s0 = first
        y = x[..., s0:s0 + n_out] * w[:, j:j + 1]
    else:
        y = x.new_zeros(x.shape[:-1] + (n_out,))
    for sp in spans:
        if sp is not first:
            j, t0, t1, s0 = sp
            y[..., t0:t1].addcmul_(x[..., s0:s0 + t1 - t0], w[:, j:j + 1])
    return y, spans


class _DepthwiseTaps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, p0, p1):
        y, ctx.spans = _taps_forward(x, w, p0, p1)
        ctx.save_for_backward(x, w)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dx = dw = None
        reduce_dims = tuple(d for d in range(dy.ndim) if d != dy.ndim - 2)
        if ctx.needs_input_grad[0]:
            dx = torch.zeros_like(x)
            for j, t0, t1, s0 in ctx.spans:
                dx[..., s0:s0 + t1 - t0].addcmul_(dy[..., t0:t1], w[:, j:j + 1])
        if ctx.needs_input_grad[1]:
            dw = torch.zeros_like(w)
            for j, t0, t1, s0 in ctx.spans:
                dw[:, j] = (dy[..., t0:t1] * x[..., s0:s0 + t1 - t0]).sum(reduce_dims)
        return dx, dw, None, None


def depthwise_taps(x, w, pad_before=0, pad_after=0):
    """Per-channel temporal filter (cross-correlation) with zero padding.

    Parameters
    ----------
    x : torch.Tensor, shape (..., n_channels, n_times)
        Input.
    w : torch.Tensor, shape (n_channels, n_taps)
        One filter per channel.
    pad_before, pad_after : int
        Zeros added before and after (0, 0 = "valid"; ``(k-1)//2`` and the rest = "same").

    Returns
    -------
    y : torch.Tensor, shape (..., n_channels, n_times + pad_before + pad_after - n_taps + 1)
        ``y[..., c, t] = sum_j w[c, j] x[..., c, t + j - pad_before]``.
    """
    if not torch.is_grad_enabled():  # inference: skip the autograd Function's overhead
        return _taps_forward(x, w, int(pad_before), int(pad_after))[0]
    return _DepthwiseTaps.apply(x, w, int(pad_before), int(pad_after))
