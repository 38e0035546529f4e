"""Fused CPU kernels for HiSTN, forward and backward, in Numba.

:func:`head` is the fused first filter then BN-ELU-taps-BN-ELU-pool-dropout; :func:`block`
the node filter, the region separable convolution, BN-ELU and the time-means; :func:`tail`
the region and global levels and the classifier on those means. Each is a
:class:`torch.autograd.Function` whose forward and backward call a Numba kernel
(:mod:`._fused_kernels`) on zero-copy NumPy views of contiguous float32 CPU tensors; the
wrappers here validate every shape (the kernels index without bounds checks) and allocate
the outputs. Dropout multipliers come from torch's generator (:func:`dropout_mask`, the
draw :class:`~physioemo.models.HiSTN` also makes with PyTorch operators), so a seed gives
the same numbers on both paths up to float rounding.

No C compiler is involved: Numba compiles the kernels on first use (about 15 s) and caches
the machine code with ``cache=True`` under its own rules: in ``__pycache__`` next to
``_fused_kernels.py`` when that folder is writable, otherwise in Numba's user cache folder
(``~/.cache/numba`` on Linux), or in ``$NUMBA_CACHE_DIR`` when set; an entry is keyed by
the source file's modification time and size, the Numba version and the CPU, so an edited
file, another Numba or another machine recompiles. The kernels run serially in the calling
thread (see :mod:`._fused_kernels` for why); use one process per core for several cores.
``PHYSIOEMO_NATIVE=0`` (or ``HiSTN.native = False``) selects the PyTorch operators instead
(same results within float32 rounding, slower on CPU). ``NUMBA_DISABLE_JIT=1`` runs the
kernels as plain Python (very slow; for debugging).
"""

from __future__ import annotations

import os

import torch

from ...exceptions import ParameterError

#: Environment variable: ``0`` selects PyTorch operators instead of the fused kernels.
ENV_VAR = "PHYSIOEMO_NATIVE"

_kernels = None
_CHUNKED = {"block_forward", "block_backward", "tail_forward", "tail_backward"}


def _k():
    """Return the kernel module, imported (and Numba loaded) on first use."""
    global _kernels
    if _kernels is None:
        from . import _fused_kernels

        _kernels = _fused_kernels
    return _kernels


def available():
    """Whether the fused kernels are enabled (``PHYSIOEMO_NATIVE`` is not ``0``)."""
    return os.environ.get(ENV_VAR, "1").strip() != "0"


def supports(x, kernel_size, first_kernel_size=1):
    """Whether :func:`head` can take input ``x`` (HiSTN's test for the fused path).

    ``x`` must be a float32 CPU tensor of shape ``(batch, n_channels, n_times)`` with
    ``n_times - kernel_size + 1 >= 2``; with a first filter (``first_kernel_size > 1``)
    ``x`` must not need a gradient; and the kernels must be enabled (:func:`available`).
    """
    return (isinstance(x, torch.Tensor) and x.device.type == "cpu"
            and x.dtype == torch.float32 and x.ndim == 3 and x.shape[0] >= 1
            and x.shape[1] >= 1 and x.shape[-1] - kernel_size + 1 >= 2
            and (first_kernel_size == 1 or not x.requires_grad) and available())


def _check(name, t, shape, dtype=torch.float32):
    """Check that ``t`` is a CPU tensor of ``dtype`` and ``shape``; return it contiguous.

    The kernels index without bounds checks: every array they get passes through here.
    """
    if not (isinstance(t, torch.Tensor) and t.dtype == dtype and t.is_cpu
            and t.shape == shape):
        if not isinstance(t, torch.Tensor):
            raise ParameterError(f"{name} must be a torch.Tensor of shape {tuple(shape)}, "
                                 f"got {type(t).__name__}; pass a tensor.")
        raise ParameterError(
            f"{name} must be a {dtype} CPU tensor of shape {tuple(shape)} for the fused "
            f"HiSTN kernels, got a {t.dtype} {t.device.type} tensor of shape "
            f"{tuple(t.shape)}; pass it in that shape (`.float().cpu()`), or use the PyTorch "
            f"layers (native=False).")
    return t if t.is_contiguous() else t.contiguous()


def _width(name, t, n_channels, fix, high=None):
    """Check that ``t`` is a (n_channels, K) filter, 1 <= K (<= high = n_times - 1).

    Returns ``(t, K)`` with ``t`` contiguous.
    """
    K = t.shape[-1] if isinstance(t, torch.Tensor) and t.ndim == 2 else 0
    if K < 1 or (high is not None and K > high):
        bound = "" if high is None else f" <= n_times - 1 = {high}"
        raise ParameterError(
            f"{name} must have shape (n_channels, kernel_size) with 1 <= kernel_size"
            f"{bound}, got {getattr(t, 'shape', type(t).__name__)}; {fix}.")
    return _check(name, t, (n_channels, K)), K


def _check_int(name, value, low, high, why):
    if not (isinstance(value, int) and low <= value <= high):
        raise ParameterError(f"{name}={value!r} must be an integer in [{low}, {high}] "
                             f"({why}); pass a value in that range.")
    return value


def _np(t):
    return t.detach().numpy()


@torch.compiler.disable  # opaque to torch.compile: a graph break, as any kernel call
def _run(name, *args):
    """Run kernel ``name`` (serially, in the calling thread; it releases the GIL)."""
    if name in _CHUNKED:  # the samples in one chunk (one scratch set)
        args = (*args, 1)
    getattr(_k(), name)(*args)


def dropout_mask(shape, p, generator=None, dtype=torch.float32, device=None):
    """Draw inverted-dropout multipliers from torch's generator.

    Parameters
    ----------
    shape : tuple of int
        Shape of the tensor the mask multiplies.
    p : float
        Drop probability in [0, 1).
    generator : torch.Generator | None
        Source of the uniform draw (default: torch's global generator).
    dtype : torch.dtype
        Dtype of the draw and of the mask (the fused kernels take float32).
    device : torch.device | None
        Device of the draw (CUDA draws come from CUDA's generator).

    Returns
    -------
    mask : torch.Tensor, shape ``shape``
        ``0`` where ``u < p`` and ``1 / (1 - p)`` elsewhere, ``u = torch.rand(shape)``
        (the draw ``torch.rand_like`` makes for a tensor of that shape).
    """
    u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
    return (u >= p).to(dtype) * (1.0 / (1.0 - p))


class _NoGraph:
    """Stands in for an autograd context when no gradient is recorded (inference)."""

    def save_for_backward(self, *tensors):
        pass

    def mark_non_differentiable(self, *tensors):
        pass


def _apply(fn, *args):
    """``fn.apply(*args)``, or without autograd's bookkeeping when grad mode is off."""
    if torch.is_grad_enabled():
        return fn.apply(*args)
    return fn.forward(_NoGraph(), *args)


def _empty2(C):
    return torch.empty(C, 0)


class _Head(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, wt, g1, b1, w, g2, b2, mask, stats1, stats2, pt, eps, training):
        B, C, T = x.shape
        K = w.shape[1]
        T2 = T - K + 1
        mean1, var1 = (s.detach().clone().contiguous() for s in stats1)
        mean2, var2 = (s.detach().clone().contiguous() for s in stats2)
        y1 = torch.empty_like(x) if wt is not None else x
        y2 = x.new_empty(B, C, T2)
        h = x.new_empty(B, C, T2 // 2)
        wt_ = wt if wt is not None else _empty2(C)
        mask_ = mask if mask is not None else torch.empty(0, 0, 0)
        _run("head_forward", _np(x), _np(wt_), pt, _np(y1), _np(g1), _np(b1), _np(w), _np(g2),
             _np(b2), _np(mask_), mask is not None, eps, training, _np(mean1), _np(var1),
             _np(mean2), _np(var2), _np(y2), _np(h))
        ctx.save_for_backward(x, wt, y1, y2, g1, b1, w, g2, b2, mask, mean1, var1, mean2,
                              var2)
        ctx.pt, ctx.eps, ctx.training = pt, eps, training
        ctx.mark_non_differentiable(mean1, var1, mean2, var2)
        return h, mean1, var1, mean2, var2

    @staticmethod
    def backward(ctx, dh, *_):
        x, wt, y1, y2, g1, b1, w, g2, b2, mask, mean1, var1, mean2, var2 = ctx.saved_tensors
        C = x.shape[1]
        dh = dh.contiguous()
        dy1 = torch.empty_like(x)
        dg1, db1, dg2, db2 = (torch.empty_like(g1) for _ in range(4))
        dw = torch.empty_like(w)
        dwt = torch.empty_like(wt) if wt is not None else _empty2(C)
        wt_ = wt if wt is not None else _empty2(C)
        mask_ = mask if mask is not None else torch.empty(0, 0, 0)
        _run("head_backward", _np(dh), _np(x), _np(wt_), ctx.pt, _np(y1), _np(y2),
             _np(g1), _np(b1), _np(w), _np(g2), _np(b2), _np(mask_), mask is not None, ctx.eps,
             ctx.training, _np(mean1), _np(var1), _np(mean2), _np(var2), _np(dy1), _np(dg1),
             _np(db1), _np(dw), _np(dg2), _np(db2), _np(dwt))
        # with a first filter the input is data: its gradient is not computed
        dx = dy1 if wt is None else None
        return (dx, dwt if wt is not None else None, dg1, db1, dw, dg2, db2, None, None,
                None, None, None, None)


@torch.no_grad()
def _update_running(bn, mean, var, n):
    bn.num_batches_tracked += 1
    m = bn.momentum
    bn.running_mean.mul_(1.0 - m).add_(mean, alpha=m)
    bn.running_var.mul_(1.0 - m).add_(var, alpha=m * n / max(n - 1, 1))


def _bn_args(name, bn, C):
    """BatchNorm parameters and the statistics handed to a kernel, checked."""
    if bn.num_features != C or bn.weight is None or bn.momentum is None:
        raise ParameterError(
            f"{name} must be an affine BatchNorm1d({C}) with a momentum, got {bn!r}; build "
            f"it as nn.BatchNorm1d({C}, eps=..., momentum=...).")
    stats = ((torch.empty(C), torch.empty(C)) if bn.training
             else (_check(f"{name}.running_mean", bn.running_mean, (C,)),
                   _check(f"{name}.running_var", bn.running_var, (C,))))
    return bn.weight, bn.bias, stats


def head(x, bn1, taps, bn2, mask=None, kernels=None, pad_before=0):
    """``mask * avgpool2(ELU(bn2(taps(ELU(bn1(y1))))))`` in one fused kernel.

    ``y1`` is ``x``, or with ``kernels`` the per-channel "same" filter of ``x``:
    ``y1[..., c, t] = sum_k kernels[c, k] x[..., c, t + k - pad_before]``.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, n_channels, n_times)
        Float32 on the CPU. With ``kernels``, the gradient with respect to ``x`` is not
        computed (``x`` must not require one).
    bn1, bn2 : torch.nn.BatchNorm1d
        Used as PyTorch would in their current mode: batch statistics and a running-stat
        update in training, running statistics in evaluation.
    taps : torch.Tensor, shape (n_channels, kernel_size)
        Per-channel "valid" filter (cross-correlation); ``n_times - kernel_size + 1`` must
        be at least 2.
    mask : torch.Tensor | None, shape (batch, n_channels, (n_times - kernel_size + 1) // 2)
        Dropout multipliers (see :func:`dropout_mask`), or None.
    kernels : torch.Tensor | None, shape (n_channels, n_taps)
        The first filter, or None.
    pad_before : int
        Zeros before ``x`` for the first filter, in ``[0, n_taps - 1]``
        (``n_taps - 1 - pad_before`` after).

    Returns
    -------
    h : torch.Tensor, shape (batch, n_channels, (n_times - kernel_size + 1) // 2)
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or min(x.shape) < 1:
        raise ParameterError(
            f"x must be a non-empty tensor of shape (batch, n_channels, n_times), got "
            f"{getattr(x, 'shape', type(x).__name__)}; pass windows in that layout.")
    B, C, T = x.shape
    x = _check("x", x, (B, C, T))
    if kernels is not None and x.requires_grad:
        raise ParameterError("x requires a gradient, which the fused head does not compute "
                             "with a first filter (kernels); detach x or use the PyTorch "
                             "layers (native=False).")
    taps, K = _width("taps", taps, C, "use longer windows or shorter taps", high=T - 1)
    T3 = (T - K + 1) // 2
    if mask is not None:
        mask = _check("mask", mask, (B, C, T3))
    pt = 0
    if kernels is not None:
        kernels, Kt = _width("kernels", kernels, C, "pass the first filter's kernels")
        pt = _check_int("pad_before", pad_before, 0, Kt - 1, f"n_taps={Kt}")
    g1, b1, stats1 = _bn_args("bn1", bn1, C)
    g2, b2, stats2 = _bn_args("bn2", bn2, C)
    training = bn1.training
    h, mean1, var1, mean2, var2 = _apply(_Head, x, kernels, g1, b1, taps, g2, b2, mask,
                                         stats1, stats2, pt, float(bn1.eps), training)
    if training:
        _update_running(bn1, mean1, var1, B * T)
        _update_running(bn2, mean2, var2, B * (T - K + 1))
    return h


class _Block(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, M, wd, W, g3, b3, stats3, p0, eps, training, pattern):
        B, C, T = h.shape
        mean3, var3 = (s.detach().clone().contiguous() for s in stats3)
        y = torch.empty_like(h)
        a_mean, h_mean = h.new_empty(B, C), h.new_empty(B, C)
        _run("block_forward", _np(h), _np(M), _np(wd), p0, _np(W), _np(g3), _np(b3), eps,
             training, _np(mean3), _np(var3), _np(y), _np(a_mean), _np(h_mean))
        ctx.save_for_backward(h, y, M, wd, W, g3, b3, mean3, var3)
        ctx.p0, ctx.eps, ctx.training, ctx.pattern = p0, eps, training, pattern
        ctx.mark_non_differentiable(mean3, var3)
        return a_mean, h_mean, mean3, var3

    @staticmethod
    def backward(ctx, da, dhm, *_):
        h, y, M, wd, W, g3, b3, mean3, var3 = ctx.saved_tensors
        B, C, T = h.shape
        da = da.contiguous() if da is not None else h.new_zeros(B, C)
        dhm = dhm.contiguous() if dhm is not None else h.new_zeros(B, C)
        dh = torch.empty_like(h)
        dM, dwd, dW = torch.empty_like(M), torch.empty_like(wd), torch.empty_like(W)
        dg3, db3 = torch.empty_like(g3), torch.empty_like(b3)
        _run("block_backward", _np(da), _np(dhm), _np(h), _np(y), _np(M), _np(wd), ctx.p0,
             _np(W), _np(g3), _np(b3), ctx.eps, ctx.training, _np(mean3), _np(var3),
             _np(ctx.pattern), _np(dh), _np(dM), _np(dwd), _np(dW), _np(dg3), _np(db3))
        return dh, dM, dwd, dW, dg3, db3, None, None, None, None, None


def block(h, M, taps, pad_before, W, bn3, pattern=None):
    """Time-means of ``ELU(bn3(W^T taps(M^T h)))`` and of ``h`` in one fused kernel.

    Parameters
    ----------
    h : torch.Tensor, shape (batch, n_channels, n_times)
        Float32 on the CPU.
    M, W : torch.Tensor, shape (n_channels, n_channels)
        Channel mixing matrices, ``(M^T h)[j, t] = sum_i M[i, j] h[i, t]``.
    taps : torch.Tensor, shape (n_channels, kernel_size)
        Per-channel "same" filter (cross-correlation) with ``pad_before`` zeros before.
    pad_before : int
        Zeros before, in ``[0, kernel_size - 1]`` (the rest of ``kernel_size - 1`` after).
    bn3 : torch.nn.BatchNorm1d
        Used as PyTorch would in its current mode.
    pattern : torch.Tensor of bool, shape (n_channels, n_channels) | None
        Entries of ``M`` and ``W`` whose gradients are wanted (the others are returned as
        0: for block-diagonal matrices built from per-region parameters, the blocks);
        None for all.

    Returns
    -------
    a_mean, h_mean : torch.Tensor, shape (batch, n_channels)
    """
    if not isinstance(h, torch.Tensor) or h.ndim != 3 or min(h.shape) < 1:
        raise ParameterError(
            f"h must be a non-empty tensor of shape (batch, n_channels, n_times), got "
            f"{getattr(h, 'shape', type(h).__name__)}; pass the head's output.")
    B, C, T = h.shape
    h = _check("h", h, (B, C, T))
    M = _check("M", M, (C, C))
    W = _check("W", W, (C, C))
    taps, K = _width("taps", taps, C, "pass the depthwise kernels")
    p0 = _check_int("pad_before", pad_before, 0, K - 1, f"kernel_size={K}")
    if pattern is None:
        pattern = torch.ones(C, C, dtype=torch.uint8)
    else:
        pattern = _check("pattern", pattern, (C, C), dtype=torch.bool).to(torch.uint8)
    g3, b3, stats3 = _bn_args("bn3", bn3, C)
    training = bn3.training
    a_mean, h_mean, mean3, var3 = _apply(_Block, h, M, taps, W, g3, b3, stats3, p0,
                                         float(bn3.eps), training, pattern)
    if training:
        _update_running(bn3, mean3, var3, B * T)
    return a_mean, h_mean


class _Tail(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hm, am, Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc, reg, mask):
        params = (Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc)
        B, C = hm.shape
        R, n_out = P.shape[0], Wc.shape[0]
        n_feat = C + R + 1
        saved = hm.new_empty(B, 2 * C + 4 * R + 2 * n_feat)
        logits = hm.new_empty(B, n_out)
        mask_ = mask if mask is not None else torch.empty(0, 0)
        _run("tail_forward", _np(hm), _np(am), _np(reg), *map(_np, params), _np(mask_),
             mask is not None, _np(saved), _np(logits))
        ctx.save_for_backward(hm, am, saved, reg, *params)
        return logits

    @staticmethod
    def backward(ctx, dlogits):
        hm, am, saved, reg, Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc = ctx.saved_tensors
        shapes = [t.shape for t in (Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc)]
        grads = hm.new_empty(sum(s.numel() for s in shapes))
        dhm, dam = torch.empty_like(hm), torch.empty_like(am)
        _run("tail_backward", _np(dlogits.contiguous()), _np(hm), _np(am), _np(reg),
             _np(Wh), _np(Wa), _np(P), _np(Wz), _np(Wl), _np(Wc), _np(saved), _np(dhm), _np(dam),
             _np(grads))
        parts = [g.view(s) for g, s in zip(grads.split([s.numel() for s in shapes]), shapes,
                                           strict=True)]
        return (dhm, dam, *parts, None, None)


def tail(h_mean, a_mean, region_of, fusion_h, fusion_a, region_filter, collapse_z,
         collapse_lat, classifier, mask=None):
    """HiSTN's region and global levels and classifier on the time-means, fused.

    Parameters
    ----------
    h_mean, a_mean : torch.Tensor, shape (batch, n_channels)
        Time-means of the node level's ``H`` and ``A`` (from :func:`block`).
    region_of : torch.Tensor of int32, shape (n_channels,)
        Region of each channel (the regions of both fusions), each in
        ``[0, n_regions - 1]``.
    fusion_h, fusion_a : RegionAttentionFusion
    region_filter : torch.Tensor, shape (n_regions, n_regions)
        The region graph's filter matrix ``P`` (``r = z P + z_lat``).
    collapse_z, collapse_lat : GlobalCollapse
    classifier : torch.nn.Linear
        ``n_channels + n_regions + 1`` inputs.
    mask : torch.Tensor | None, shape (batch, n_channels + n_regions + 1)
        Dropout multipliers for the features before the classifier (see
        :func:`dropout_mask`), or None.

    Returns
    -------
    logits : torch.Tensor, shape (batch, n_outputs)
    """
    if not isinstance(h_mean, torch.Tensor) or h_mean.ndim != 2 or min(h_mean.shape) < 1:
        raise ParameterError(f"h_mean must be a non-empty tensor of shape (batch, "
                             f"n_channels), got {getattr(h_mean, 'shape', h_mean)}; pass "
                             f"block()'s output.")
    B, C = h_mean.shape
    R = region_filter.shape[0] if getattr(region_filter, "ndim", 0) == 2 else 0
    if not 1 <= R <= C:
        raise ParameterError(f"region_filter must have shape (n_regions, n_regions) with "
                             f"1 <= n_regions <= n_channels={C}, got "
                             f"{getattr(region_filter, 'shape', region_filter)}; pass the "
                             f"region graph's filter matrix.")
    n_out = classifier.out_features
    n_feat = C + R + 1
    reg = _check("region_of", region_of, (C,), dtype=torch.int32)
    lo, hi = int(reg.numpy().min()), int(reg.numpy().max())
    if lo < 0 or hi >= R:
        raise ParameterError(f"region_of must hold region numbers in [0, {R - 1}] "
                             f"(n_regions={R}), got values in [{lo}, {hi}]; number the "
                             f"regions from 0.")
    params = (_check("fusion_h weight matrix", fusion_h.weight_matrix(), (C, C)),
              _check("fusion_h.bias", fusion_h.bias, (C,)),
              _check("fusion_a weight matrix", fusion_a.weight_matrix(), (C, C)),
              _check("fusion_a.bias", fusion_a.bias, (C,)),
              _check("region_filter", region_filter, (R, R)),
              _check("collapse_z.linear.weight", collapse_z.linear.weight, (R, R)),
              _check("collapse_z.linear.bias", collapse_z.linear.bias, (R,)),
              _check("collapse_lat.linear.weight", collapse_lat.linear.weight, (R, R)),
              _check("collapse_lat.linear.bias", collapse_lat.linear.bias, (R,)),
              _check("classifier.weight", classifier.weight, (n_out, n_feat)),
              _check("classifier.bias", classifier.bias, (n_out,)))
    h_mean = _check("h_mean", h_mean, (B, C))
    a_mean = _check("a_mean", a_mean, (B, C))
    if mask is not None:
        mask = _check("mask", mask, (B, n_feat))
    return _apply(_Tail, h_mean, a_mean, *params, reg, mask)
