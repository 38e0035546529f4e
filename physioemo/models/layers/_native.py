"""Fused native kernels for HiSTN on the CPU, forward and backward.

:func:`head` is the fused first filter then BN-ELU-taps-BN-ELU-pool-dropout; :func:`block`
the node filter, the region separable convolution, BN-ELU and the time-means; :func:`tail`
the region and global levels and the classifier on those means.

``_native.c`` is plain C with OpenMP; it is compiled once with the system's C compiler
(``$CC``, else ``cc``) into ``$PHYSIOEMO_CACHE_DIR/native`` (default
``~/.cache/physioemo/native``), under a name that hashes the source, the flags and the
machine, and loaded with :mod:`ctypes`. Without a compiler, or with
``PHYSIOEMO_NATIVE=0``, :func:`available` is false and HiSTN runs the same model with
PyTorch operators (same results within float32 rounding, other dropout draws, slower on
CPU).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from ...utils.logging import logger

#: Environment variable: ``0`` disables the native kernel.
ENV_VAR = "PHYSIOEMO_NATIVE"
_SOURCE = Path(__file__).with_name("_native.c")
_FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=256", "-fopenmp", "-fno-math-errno",
          "-fno-trapping-math", "-shared", "-fPIC"]
_MAX_TIMES, _MAX_TAPS = 4096, 64  # MAXT in _native.c; the taps' gradient buffer
_MAX_CHANNELS = 64  # the tail's per-sample buffers (regions <= channels)
_lock = threading.Lock()
_lib = None
_tried = False

_f32 = ctypes.POINTER(ctypes.c_float)
_u32 = ctypes.POINTER(ctypes.c_uint32)
_i = ctypes.c_int


def _build(cache):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise OSError("no C compiler (cc/gcc) on PATH")
    src = _SOURCE.read_bytes()
    tag = hashlib.sha256(src + " ".join([cc, *_FLAGS, platform.machine(),
                                         platform.node()]).encode()).hexdigest()[:16]
    lib = cache / f"histn_head-{tag}.so"
    if not lib.exists():
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
        os.close(fd)
        try:
            proc = subprocess.run([cc, *_FLAGS, str(_SOURCE), "-o", tmp, "-lm"],
                                  capture_output=True, text=True)
            if proc.returncode:
                raise OSError(f"{cc} failed: {proc.stderr.strip()[-500:]}")
            os.replace(tmp, lib)  # atomic: concurrent workers never load a partial file
            logger.debug("compiled %s", lib)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return ctypes.CDLL(str(lib))


def _load():
    global _lib, _tried
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get(ENV_VAR, "1").strip() == "0":
            return None
        from ...datasets.cache import default_cache_dir

        try:
            lib = _build(default_cache_dir() / "native")
            _declare(lib)
        except (OSError, AttributeError) as err:  # AttributeError: a library lacks a symbol
            logger.warning("physioemo's native HiSTN kernel is unavailable (%s); training "
                           "uses PyTorch operators instead, which is slower on CPU. Set "
                           "%s=0 to silence this.", err, ENV_VAR)
            return None
        _lib = lib
        return lib


def _declare(lib):
    """Declare the C signatures on ``lib`` (AttributeError if a symbol is missing)."""
    lib.histn_head_forward.argtypes = [_f32, _f32, _i, _i, _f32, _i, _i, _i, _f32, _f32,
                                       _f32, _i, _f32, _f32, _f32, _u32, ctypes.c_float,
                                       _i, _f32, _f32, _f32, _f32, _f32, _f32, _i]
    lib.histn_head_backward.argtypes = [_f32, _f32, _i, _i, _f32, _f32, _f32, _i, _i, _i,
                                        _f32, _f32, _f32, _i, _f32, _f32, _f32, _u32,
                                        ctypes.c_float, _i, _f32, _f32, _f32, _f32,
                                        _f32, _f32, _f32, _f32, _f32, _f32, _i]
    lib.histn_dropout_mask.argtypes = [_i, _u32, _f32]
    lib.histn_block_forward.argtypes = [_f32, _i, _i, _i, _f32, _f32, _i, _i, _f32, _f32,
                                        _f32, ctypes.c_float, _i, _f32, _f32, _f32,
                                        _f32, _f32, _i]
    lib.histn_block_backward.argtypes = [_f32, _f32, _f32, _f32, _i, _i, _i, _f32, _f32,
                                         _i, _i, _f32, _f32, _f32, ctypes.c_float, _i,
                                         _f32, _f32, ctypes.c_void_p, _f32, _f32, _f32,
                                         _f32, _f32, _f32, _i]
    _ip = ctypes.POINTER(ctypes.c_int)
    lib.histn_tail_forward.argtypes = [_f32, _f32, _i, _i, _i, _i, _ip] + [_f32] * 11 + [
        _u32, _f32, _f32, _i]
    lib.histn_tail_backward.argtypes = [_f32, _f32, _f32, _i, _i, _i, _i, _ip] + [
        _f32] * 10 + [_i]
    for fn in ("histn_head_forward", "histn_head_backward", "histn_block_forward",
               "histn_block_backward", "histn_dropout_mask", "histn_tail_forward",
               "histn_tail_backward"):
        getattr(lib, fn).restype = None


def available():
    """Whether the native kernel is compiled and loaded (compiles it on first call)."""
    return _load() is not None


def supports(x, kernel_size, first_kernel_size=1):
    """Whether :func:`head` and :func:`block` can take input ``x``.

    Float32 on the CPU, at most 64 channels, ``n_times + first_kernel_size - 1`` at most
    4096, ``kernel_size`` at most 64 and shorter than ``n_times``; with a first filter
    (``first_kernel_size > 1``) ``x`` must not need a gradient. Builds the kernel on first
    call.
    """
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.ndim == 3
            and x.shape[1] <= _MAX_CHANNELS and x.shape[-1] + first_kernel_size - 1 <= _MAX_TIMES
            and kernel_size <= _MAX_TAPS and x.shape[-1] - kernel_size + 1 >= 2
            and (first_kernel_size == 1 or not x.requires_grad) and available())


def _p(t):
    return ctypes.cast(t.data_ptr(), _f32) if t is not None else None


def _pi(t):
    return ctypes.cast(t.data_ptr(), ctypes.POINTER(ctypes.c_int))


def _require():
    if not available():
        raise RuntimeError("the native HiSTN kernel is unavailable; check available() first")


def _bn_stats(bn, like):
    """Statistics handed to a kernel: running ones in evaluation, buffers in training."""
    if bn.training:
        return like.new_empty(bn.num_features), like.new_empty(bn.num_features)
    return bn.running_mean, bn.running_var


def dropout_spec(p, generator=None):
    """Draw a dropout for :func:`head`: two 32-bit seeds from PyTorch's generator.

    Parameters
    ----------
    p : float
        Drop probability in [0, 1).
    generator : torch.Generator | None
        Source of the seeds (default: PyTorch's global generator, so ``torch.manual_seed``
        makes runs repeatable).

    Returns
    -------
    spec : ctypes array of 4 uint32
        ``seed0, seed1``, the 24-bit keep threshold ``round(p * 2**24)`` and the bits of
        the float32 scale ``1 / (1 - p)``.
    """
    seeds = torch.randint(0, 2 ** 32, (2,), dtype=torch.int64, generator=generator).tolist()
    scale = ctypes.c_float(1.0 / (1.0 - p))
    bits = ctypes.cast(ctypes.pointer(scale), _u32).contents.value
    return (ctypes.c_uint32 * 4)(seeds[0], seeds[1], round(p * (1 << 24)), bits)


def dropout_mask(n, spec):
    """Return the multipliers (0 or ``1 / (1 - p)``) that ``spec`` gives elements 0..n-1.

    Element ``i`` is the flat index in :func:`head`'s output ``(batch, n_channels,
    n_out)``; a test and inspection aid (the kernel never stores the mask).
    """
    _require()
    out = torch.empty(n)
    _lib.histn_dropout_mask(n, spec, _p(out))
    return out


class _Head(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, wt, g1, b1, w, g2, b2, mask, drop, stats1, stats2, pt, eps,
                training):
        x, w = x.contiguous(), w.contiguous()
        wt = wt.contiguous() if wt is not None else None
        g1, b1, g2, b2 = (p.detach().contiguous() for p in (g1, b1, g2, b2))
        mask = mask.contiguous() if mask is not None else None
        B, C, T = x.shape
        K = w.shape[1]
        T2 = T - K + 1
        mean1, var1 = (s.detach().clone().contiguous() for s in stats1)
        mean2, var2 = (s.detach().clone().contiguous() for s in stats2)
        y1 = torch.empty_like(x) if wt is not None else x
        y2 = x.new_empty(B, C, T2)
        h = x.new_empty(B, C, T2 // 2)
        kt = wt.shape[1] if wt is not None else 0
        _lib.histn_head_forward(_p(x), _p(wt), kt, pt, _p(y1), B, C, T, _p(g1), _p(b1),
                                _p(w), K, _p(g2), _p(b2), _p(mask), drop, eps, int(training),
                                _p(mean1), _p(var1), _p(mean2), _p(var2), _p(y2), _p(h),
                                torch.get_num_threads())
        ctx.save_for_backward(x, wt, y1, y2, g1, b1, w, g2, b2, mask, mean1, var1, mean2,
                              var2)
        ctx.pt, ctx.eps, ctx.training, ctx.drop = pt, eps, training, drop
        ctx.mark_non_differentiable(mean1, var1, mean2, var2)
        return h, mean1, var1, mean2, var2

    @staticmethod
    def backward(ctx, dh, *_):
        x, wt, y1, y2, g1, b1, w, g2, b2, mask, mean1, var1, mean2, var2 = ctx.saved_tensors
        B, C, T = x.shape
        K = w.shape[1]
        dh = dh.contiguous()
        dy1 = torch.empty_like(x)
        dg1, db1, dg2, db2 = (torch.empty_like(g1) for _ in range(4))
        dw = torch.empty_like(w)
        dwt = torch.empty_like(wt) if wt is not None else None
        kt = wt.shape[1] if wt is not None else 0
        _lib.histn_head_backward(_p(dh), _p(x), kt, ctx.pt, _p(dwt), _p(y1), _p(y2), B, C,
                                 T, _p(g1), _p(b1), _p(w), K, _p(g2), _p(b2), _p(mask),
                                 ctx.drop, ctx.eps, int(ctx.training), _p(mean1), _p(var1),
                                 _p(mean2), _p(var2), _p(dy1), _p(dg1), _p(db1), _p(dw),
                                 _p(dg2), _p(db2), torch.get_num_threads())
        # with a first filter the input is data: its gradient is not computed
        dx = dy1 if wt is None else None
        return (dx, dwt, dg1, db1, dw, dg2, db2, None, None, None, None, None, None, None)


@torch.no_grad()
def _update_running(bn, mean, var, n):
    bn.num_batches_tracked += 1
    m = bn.momentum
    bn.running_mean.mul_(1.0 - m).add_(mean, alpha=m)
    bn.running_var.mul_(1.0 - m).add_(var, alpha=m * n / max(n - 1, 1))


def head(x, bn1, taps, bn2, mask=None, kernels=None, pad_before=0, dropout=None):
    """``mask * avgpool2(ELU(bn2(taps(ELU(bn1(y1))))))`` in one native kernel.

    ``y1`` is ``x``, or with ``kernels`` the per-channel "same" filter of ``x``:
    ``y1[..., c, t] = sum_k kernels[c, k] x[..., c, t + k - pad_before]``.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, n_channels, n_times)
        Float32 on the CPU. With ``kernels``, the gradient with respect to ``x`` is not
        computed (check :func:`supports`).
    bn1, bn2 : torch.nn.BatchNorm1d
        Used as PyTorch would in their current mode: batch statistics and a running-stat
        update in training, running statistics in evaluation.
    taps : torch.Tensor, shape (n_channels, kernel_size)
        Per-channel "valid" filter (cross-correlation).
    mask : torch.Tensor | None, shape (batch, n_channels, (n_times - kernel_size + 1) // 2)
        Dropout multipliers (0 or ``1 / (1 - p)``), or None.
    dropout : ctypes array | None
        Instead of ``mask``, a :func:`dropout_spec`: the kernel draws the mask itself (by
        hashing each element's index with the spec's seeds) and never stores it.
    kernels : torch.Tensor | None, shape (n_channels, n_taps)
        The first filter, or None.
    pad_before : int
        Zeros before ``x`` for the first filter (``n_taps - 1 - pad_before`` after).

    Returns
    -------
    h : torch.Tensor, shape (batch, n_channels, (n_times - kernel_size + 1) // 2)
    """
    _require()
    training = bn1.training
    h, mean1, var1, mean2, var2 = _Head.apply(x, kernels, bn1.weight, bn1.bias, taps,
                                              bn2.weight, bn2.bias, mask, dropout,
                                              _bn_stats(bn1, x), _bn_stats(bn2, x),
                                              int(pad_before), bn1.eps, training)
    if training:
        B, _, T = x.shape
        _update_running(bn1, mean1, var1, B * T)
        _update_running(bn2, mean2, var2, B * (T - taps.shape[1] + 1))
    return h


class _Block(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, M, wd, W, g3, b3, stats3, p0, eps, training, pattern):
        h, M, wd, W = (t.contiguous() for t in (h, M, wd, W))
        g3, b3 = g3.detach().contiguous(), b3.detach().contiguous()
        B, C, T = h.shape
        mean3, var3 = (s.detach().clone().contiguous() for s in stats3)
        y = torch.empty_like(h)
        a_mean, h_mean = h.new_empty(B, C), h.new_empty(B, C)
        _lib.histn_block_forward(_p(h), B, C, T, _p(M), _p(wd), wd.shape[1], p0, _p(W),
                                 _p(g3), _p(b3), eps, int(training), _p(mean3), _p(var3),
                                 _p(y), _p(a_mean), _p(h_mean), torch.get_num_threads())
        ctx.save_for_backward(h, y, M, wd, W, g3, b3, mean3, var3)
        ctx.p0, ctx.eps, ctx.training = p0, eps, training
        ctx.pattern = pattern.to(torch.uint8).contiguous() if pattern is not None else None
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
        _lib.histn_block_backward(_p(da), _p(dhm), _p(h), _p(y), B, C, T, _p(M), _p(wd),
                                  wd.shape[1], ctx.p0, _p(W), _p(g3), _p(b3), ctx.eps,
                                  int(ctx.training), _p(mean3), _p(var3),
                                  ctx.pattern.data_ptr() if ctx.pattern is not None else None,
                                  _p(dh), _p(dM),
                                  _p(dwd), _p(dW), _p(dg3), _p(db3), torch.get_num_threads())
        return dh, dM, dwd, dW, dg3, db3, None, None, None, None, None


def block(h, M, taps, pad_before, W, bn3, pattern=None):
    """Time-means of ``ELU(bn3(W^T taps(M^T h)))`` and of ``h`` in one native kernel.

    Parameters
    ----------
    h : torch.Tensor, shape (batch, n_channels, n_times)
        Float32 on the CPU.
    M, W : torch.Tensor, shape (n_channels, n_channels)
        Channel mixing matrices, ``(M^T h)[j, t] = sum_i M[i, j] h[i, t]``.
    taps : torch.Tensor, shape (n_channels, kernel_size)
        Per-channel "same" filter (cross-correlation) with ``pad_before`` zeros before.
    pad_before : int
        Zeros before (the rest of ``kernel_size - 1`` after).
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
    _require()
    training = bn3.training
    a_mean, h_mean, mean3, var3 = _Block.apply(h, M, taps, W, bn3.weight, bn3.bias,
                                               _bn_stats(bn3, h), int(pad_before), bn3.eps,
                                               training, pattern)
    if training:
        _update_running(bn3, mean3, var3, h.shape[0] * h.shape[2])
    return a_mean, h_mean


class _Tail(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hm, am, Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc, reg, drop):
        hm, am = hm.contiguous(), am.contiguous()
        params = [t.detach().contiguous() for t in (Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc)]
        B, C = hm.shape
        R, n_out = P.shape[0], Wc.shape[0]
        n_feat = C + R + 1
        saved = hm.new_empty(B, 2 * C + 4 * R + 2 * n_feat)
        logits = hm.new_empty(B, n_out)
        _lib.histn_tail_forward(_p(hm), _p(am), B, C, R, n_out, _pi(reg), *map(_p, params), drop,
                                _p(saved), _p(logits), torch.get_num_threads())
        ctx.save_for_backward(hm, am, saved, reg, *params)
        return logits

    @staticmethod
    def backward(ctx, dlogits):
        hm, am, saved, reg, Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc = ctx.saved_tensors
        B, C = hm.shape
        R, n_out = P.shape[0], Wc.shape[0]
        shapes = [t.shape for t in (Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc)]
        grads = hm.new_empty(sum(s.numel() for s in shapes))
        dhm, dam = torch.empty_like(hm), torch.empty_like(am)
        _lib.histn_tail_backward(_p(dlogits.contiguous()), _p(hm), _p(am), B, C, R, n_out,
                                 _pi(reg), _p(Wh), _p(Wa), _p(P), _p(Wz), _p(Wl), _p(Wc),
                                 _p(saved), _p(dhm), _p(dam), _p(grads),
                                 torch.get_num_threads())
        parts = [g.view(s) for g, s in zip(grads.split([s.numel() for s in shapes]), shapes,
                                           strict=True)]
        return (dhm, dam, *parts, None, None)


def tail(h_mean, a_mean, region_of, fusion_h, fusion_a, region_filter, collapse_z,
         collapse_lat, classifier, dropout=None):
    """HiSTN's region and global levels and classifier on the time-means, natively.

    Parameters
    ----------
    h_mean, a_mean : torch.Tensor, shape (batch, n_channels)
        Time-means of the node level's ``H`` and ``A`` (from :func:`block`).
    region_of : torch.Tensor of int32, shape (n_channels,)
        Region of each channel (the regions of both fusions).
    fusion_h, fusion_a : RegionAttentionFusion
    region_filter : torch.Tensor, shape (n_regions, n_regions)
        The region graph's filter matrix ``P`` (``r = z P + z_lat``).
    collapse_z, collapse_lat : GlobalCollapse
    classifier : torch.nn.Linear
    dropout : ctypes array | None
        A :func:`dropout_spec` for the features before the classifier, or None.

    Returns
    -------
    logits : torch.Tensor, shape (batch, n_outputs)
    """
    _require()
    return _Tail.apply(h_mean, a_mean, fusion_h.weight_matrix(), fusion_h.bias,
                       fusion_a.weight_matrix(), fusion_a.bias, region_filter,
                       collapse_z.linear.weight, collapse_z.linear.bias,
                       collapse_lat.linear.weight, collapse_lat.linear.bias, classifier.weight,
                       classifier.bias, region_of, dropout)
