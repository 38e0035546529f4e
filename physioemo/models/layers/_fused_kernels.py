"""Private Numba kernels for :mod:`physioemo.models.layers._fused` (HiSTN on the CPU).

Three fused forward/backward pairs, each taking contiguous float32 NumPy arrays that the
public wrappers in ``_fused`` have validated and allocated:

- head: x (B, C, T) -> y1 = per-channel "same" filter of x (the fused 64-tap kernel; or
  y1 = x) -> u1 = BN1(y1) -> e1 = ELU(u1) -> y2 = K-tap "valid" filter per channel
  (B, C, T2) -> u2 = BN2(y2) -> e2 = ELU(u2) -> h = avgpool2(e2) * mask (B, C, T3);
- block: h (B, C, T) -> m = M^T h -> d = per-channel "same" filter -> y = W^T d ->
  a = ELU(BN3(y)); outputs the time-means of a and h, (B, C) each;
- tail: HiSTN's region and global levels and the classifier on those time-means.

BatchNorm follows ``torch.nn.functional.batch_norm``: in training the batch mean and the
biased batch variance normalise (sums in float64), in evaluation the given running
statistics do. Dropout multipliers are inputs (drawn from torch's generator by the
caller). Parameter gradients are summed per sample (or per channel) and then over samples
in index order, so runs repeat bit for bit, and the values would not change if the loops
over channels or chunks of samples ran in parallel.

The kernels are serial, in the calling thread: beside PyTorch's OpenMP pool, whose idle
threads spin, a Numba thread pool (``parallel=True``, workqueue or Numba's own OpenMP
runtime) lost the cores and ran a training step 10x slower on 2 cores (benchmarks/
results/train.md of commit 094fc7d); one process per core (``evaluate --jobs K
--threads 1``) is how physioemo uses several cores.

``fastmath`` allows reassociation (vectorised sums) and fused multiply-adds, nothing that
changes NaN/inf handling. Arrays are allocated where needed: no fixed-size buffer.
Under ``NUMBA_DISABLE_JIT=1`` every kernel is plain Python (slow, same values up to float
rounding; debuggable).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_FAST = {"reassoc", "contract", "nsz", "arcp"}
_OPTS = dict(cache=True, nogil=True, fastmath=_FAST)

F0, F1, HALF = np.float32(0.0), np.float32(1.0), np.float32(0.5)
_LOG2E, _LN2_HI, _LN2_LO = np.float32(1.44269504088896341), np.float32(0.693359375), \
    np.float32(2.12194440e-4)
_EXP_P = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                       4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_EXP_LO = np.float32(-87.0)
_NEG_INF = np.float32(-np.inf)

if nb.config.DISABLE_JIT:
    def _bits_to_f32(i):
        """Return the float32 whose bits are the int32 ``i`` (plain Python)."""
        return np.array(i, np.int32).view(np.float32)[()]
else:
    from llvmlite import ir
    from numba.extending import intrinsic

    @intrinsic
    def _bits_to_f32(typingctx, i):
        """Return the float32 whose bits are the int32 ``i`` (an LLVM bitcast: vectorises)."""
        if i != nb.types.int32:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return nb.types.float32(nb.types.int32), codegen


@nb.njit(**_OPTS)
def _exp_neg(x):
    """exp(x) for float32 x <= 0 (Cephes expf polynomial, ~1 ulp; vectorises)."""
    x = _EXP_LO if x < _EXP_LO else x
    x = F0 if x > F0 else x
    n = np.floor(x * _LOG2E + HALF)
    r = x - n * _LN2_HI + n * _LN2_LO
    p = _EXP_P[0]
    p = p * r + _EXP_P[1]
    p = p * r + _EXP_P[2]
    p = p * r + _EXP_P[3]
    p = p * r + _EXP_P[4]
    p = p * r + _EXP_P[5]
    p = p * r * r + r + F1
    return p * _bits_to_f32(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))


@nb.njit(**_OPTS)
def _elu(v):
    return v if v > F0 else _exp_neg(v) - F1


@nb.njit(**_OPTS)
def _elu_grad(v):
    return F1 if v > F0 else _exp_neg(v)


@nb.njit(**_OPTS)
def _bn_elu(x, scale, shift, u, e):
    """Set u = x * scale + shift (BatchNorm folded) and e = ELU(u)."""
    for i in range(x.shape[0]):
        v = x[i] * scale + shift
        u[i] = v
        e[i] = _elu(v)


@nb.njit(**_OPTS)
def _pad(x, p, n, xp):
    """xp[:n] = x with p zeros before and zeros after."""
    T = x.shape[0]
    for i in range(p):
        xp[i] = F0
    for t in range(T):
        xp[p + t] = x[t]
    for i in range(p + T, n):
        xp[i] = F0


@nb.njit(**_OPTS)
def _conv_same_row(x, w, p, xp, y):
    """y[t] = sum_k w[k] x[t + k - p], zeros outside ("same" cross-correlation)."""
    T, K = x.shape[0], w.shape[0]
    _pad(x, p, T + K - 1, xp)
    t = 0
    while t + 4 <= T:  # four outputs a pass: each load of w serves four sums
        x0 = xp[t:t + K]
        x1 = xp[t + 1:t + 1 + K]
        x2 = xp[t + 2:t + 2 + K]
        x3 = xp[t + 3:t + 3 + K]
        s0 = F0
        s1 = F0
        s2 = F0
        s3 = F0
        for k in range(K):
            wk = w[k]
            s0 += wk * x0[k]
            s1 += wk * x1[k]
            s2 += wk * x2[k]
            s3 += wk * x3[k]
        y[t] = s0
        y[t + 1] = s1
        y[t + 2] = s2
        y[t + 3] = s3
        t += 4
    t_end = t
    for t in range(t_end, T):
        xs = xp[t:t + K]
        s = F0
        for k in range(K):
            s += w[k] * xs[k]
        y[t] = s


@nb.njit(**_OPTS)
def _corr_grad(dy, xp, dw):
    """dw[k] += sum_t dy[t] xp[t + k] (float32 sums), four taps a pass."""
    T, K = dy.shape[0], dw.shape[0]
    k = 0
    while k + 4 <= K:
        e0 = xp[k:k + T]
        e1 = xp[k + 1:k + 1 + T]
        e2 = xp[k + 2:k + 2 + T]
        e3 = xp[k + 3:k + 3 + T]
        s0 = F0
        s1 = F0
        s2 = F0
        s3 = F0
        for t in range(T):
            d = dy[t]
            s0 += d * e0[t]
            s1 += d * e1[t]
            s2 += d * e2[t]
            s3 += d * e3[t]
        dw[k] += s0
        dw[k + 1] += s1
        dw[k + 2] += s2
        dw[k + 3] += s3
        k += 4
    k_end = k
    for k in range(k_end, K):
        ek = xp[k:k + T]
        s = F0
        for t in range(T):
            s += dy[t] * ek[t]
        dw[k] += s


@nb.njit(**_OPTS)
def _stats(y, c):
    """Batch mean and biased variance of channel c of y (B, C, T), in float64."""
    B, T = y.shape[0], y.shape[2]
    s = 0.0
    ss = 0.0
    for b in range(B):
        fs = F0
        fss = F0
        for t in range(T):
            v = y[b, c, t]
            fs += v
            fss += v * v
        s += fs
        ss += fss
    n = float(B) * float(T)
    mean = s / n
    var = ss / n - mean * mean
    return mean, max(var, 0.0)


@nb.njit(**_OPTS)
def head_forward(x, wt, pt, y1, g1, b1, w, g2, b2, mask, has_mask, eps, training,
                 mean1, var1, mean2, var2, y2, h):
    """Forward of the head; see the module docstring.

    ``wt`` (C, Kt) is the first filter (Kt = 0: none, and y1 is x); y1 (B, C, T), y2
    (B, C, T2) and h (B, C, T3) are outputs; mean/var are outputs in training and the
    running statistics otherwise. ``mask`` (B, C, T3) multiplies h when ``has_mask``.
    """
    eps = np.float32(eps)
    B, C, T = x.shape
    K, Kt = w.shape[1], wt.shape[1]
    T2 = T - K + 1
    T3 = T2 // 2
    for c in range(C):
        u = np.empty(T, np.float32)
        e = np.empty(T, np.float32)
        if Kt > 0:
            xp = np.empty(T + Kt, np.float32)
            for b in range(B):
                _conv_same_row(x[b, c], wt[c], pt, xp, y1[b, c])
        if training:
            m, v = _stats(y1, c)
            mean1[c] = np.float32(m)
            var1[c] = np.float32(v)
        sc1 = g1[c] / np.sqrt(var1[c] + eps)
        sh1 = b1[c] - mean1[c] * sc1
        for b in range(B):
            _bn_elu(y1[b, c], sc1, sh1, u, e)
            out = y2[b, c]
            w0 = w[c, 0]
            for t in range(T2):
                out[t] = w0 * e[t]
            for k in range(1, K):
                wk = w[c, k]
                ek = e[k:k + T2]  # a view: offset-free indices vectorise
                for t in range(T2):
                    out[t] += wk * ek[t]
        if training:
            m, v = _stats(y2, c)
            mean2[c] = np.float32(m)
            var2[c] = np.float32(v)
        sc2 = g2[c] / np.sqrt(var2[c] + eps)
        sh2 = b2[c] - mean2[c] * sc2
        for b in range(B):
            _bn_elu(y2[b, c], sc2, sh2, u, e)
            out = h[b, c]
            for j in range(T3):
                out[j] = HALF * (e[2 * j] + e[2 * j + 1])
            if has_mask:
                mk = mask[b, c]
                for j in range(T3):
                    out[j] *= mk[j]


@nb.njit(**_OPTS)
def head_backward(dh, x, wt, pt, y1, y2, g1, b1, w, g2, b2, mask, has_mask, eps,
                  training, mean1, var1, mean2, var2, dy1, dg1, db1, dw, dg2, db2, dwt):
    """Backward of the head.

    dy1 (B, C, T), dg1, db1, dg2, db2 (C,), dw (C, K) and, with a first filter (Kt > 0),
    dwt (C, Kt) are outputs.
    """
    eps = np.float32(eps)
    B, C, T = y1.shape
    K, Kt = w.shape[1], wt.shape[1]
    T2 = T - K + 1
    T3 = T2 // 2
    for c in range(C):
        u = np.empty(T, np.float32)
        e = np.empty(T + Kt, np.float32)
        dy = np.empty(T2, np.float32)
        du2s = np.empty((B, T2), np.float32)  # dL/du2 of this channel
        rs1 = F1 / np.sqrt(var1[c] + eps)
        rs2 = F1 / np.sqrt(var2[c] + eps)
        sc1 = g1[c] * rs1
        sh1 = b1[c] - mean1[c] * sc1
        sc2 = g2[c] * rs2
        sh2 = b2[c] - mean2[c] * sc2
        m1, m2 = mean1[c], mean2[c]
        # through the mask, the pooling and ELU2; BN2's parameter gradients
        sdu = 0.0
        sdux = 0.0
        for b in range(B):
            y2row = y2[b, c]
            du = du2s[b]
            dhr = dh[b, c]
            if has_mask:
                mk = mask[b, c]
                for j in range(T3):
                    g = HALF * dhr[j] * mk[j]
                    du[2 * j] = g
                    du[2 * j + 1] = g
            else:
                for j in range(T3):
                    g = HALF * dhr[j]
                    du[2 * j] = g
                    du[2 * j + 1] = g
            for t in range(2 * T3, T2):  # the sample dropped by the pooling
                du[t] = F0
            fs = F0
            fsx = F0
            for t in range(T2):
                du[t] *= _elu_grad(y2row[t] * sc2 + sh2)
                fs += du[t]
                fsx += du[t] * (y2row[t] - m2)
            sdu += fs
            sdux += fsx
        dg2[c] = np.float32(sdux * rs2)
        db2[c] = np.float32(sdu)
        n2 = np.float32(B * T2)
        k2a = np.float32(sdu / n2) if training else F0
        k2b = np.float32(sdux * rs2 / n2) * rs2 if training else F0
        # through BN2, the taps and ELU1; BN1's parameter gradients
        dwk = np.zeros(K)
        s1 = 0.0
        s1x = 0.0
        a2 = g2[c] * rs2
        for b in range(B):
            y2row = y2[b, c]
            y1row = y1[b, c]
            du = du2s[b]
            for t in range(T2):
                dy[t] = a2 * (du[t] - k2a - (y2row[t] - m2) * k2b)
            _bn_elu(y1row, sc1, sh1, u, e)
            for k in range(K):
                ek = e[k:k + T2]
                acc = F0
                for t in range(T2):
                    acc += dy[t] * ek[t]
                dwk[k] += acc
            d1 = dy1[b, c]
            for t in range(T):
                d1[t] = F0
            for k in range(K):
                wk = w[c, k]
                d1k = d1[k:k + T2]
                for t in range(T2):
                    d1k[t] += wk * dy[t]
            fs = F0
            fsx = F0
            for t in range(T):
                d1[t] *= F1 if u[t] > F0 else e[t] + F1  # ELU' from ELU
                fs += d1[t]
                fsx += d1[t] * (y1row[t] - m1)
            s1 += fs
            s1x += fsx
        for k in range(K):
            dw[c, k] = np.float32(dwk[k])
        dg1[c] = np.float32(s1x * rs1)
        db1[c] = np.float32(s1)
        n1 = np.float32(B * T)
        k1a = np.float32(s1 / n1) if training else F0
        k1b = np.float32(s1x * rs1 / n1) * rs1 if training else F0
        a1 = g1[c] * rs1
        dwt_c = np.zeros(Kt)
        for b in range(B):
            y1row = y1[b, c]
            d1 = dy1[b, c]
            for t in range(T):
                d1[t] = a1 * (d1[t] - k1a - (y1row[t] - m1) * k1b)
            if Kt > 0:  # the kernel gradient of the "same" filter that made y1 from x
                _pad(x[b, c], pt, T + Kt - 1, e)
                _corr_grad(d1, e, dwt_c)
        for k in range(Kt):
            dwt[c, k] = np.float32(dwt_c[k])


@nb.njit(**_OPTS)
def _mix(A, x, out):
    """out[j, :] = sum_i A[i, j] x[i, :] (A^T x on the channel axis); zeros of A skipped."""
    C, T = x.shape
    for j in range(C):
        o = out[j]
        for t in range(T):
            o[t] = F0
        for i in range(C):
            a = A[i, j]
            if a == F0:
                continue
            xi = x[i]
            for t in range(T):
                o[t] += a * xi[t]


@nb.njit(**_OPTS)
def _taps_same(m, wd, p0, d):
    """d[c, t] = sum_k wd[c, k] m[c, t + k - p0] (zeros outside)."""
    C, T = m.shape
    K = wd.shape[1]
    for c in range(C):
        mc = m[c]
        dc = d[c]
        for t in range(T):
            dc[t] = F0
        for k in range(K):
            wk = wd[c, k]
            s = k - p0
            t0 = -s if s < 0 else 0
            t1 = T - s if s > 0 else T
            src = mc[t0 + s:t1 + s]  # views: offset-free indices vectorise
            dst = dc[t0:t1]
            for t in range(t1 - t0):
                dst[t] += wk * src[t]


@nb.njit(**_OPTS)
def _sum_rows(parts, out):
    """out[i] = sum_b parts[b, i], b in order (independent of the thread count)."""
    n = parts.shape[1]
    for i in range(n):
        out[i] = 0.0
    for b in range(parts.shape[0]):
        row = parts[b]
        for i in range(n):
            out[i] += row[i]


@nb.njit(**_OPTS)
def block_forward(h, M, wd, p0, W, g3, b3, eps, training, mean3, var3, y, a_mean, h_mean,
                  n_chunks):
    """Forward of the node level; y (B, C, T), a_mean and h_mean (B, C) are outputs."""
    eps = np.float32(eps)
    B, C, T = h.shape
    fT = np.float32(T)
    parts = np.empty((B, 2 * C))
    n_chunks = max(1, min(B, n_chunks))  # one scratch set per chunk of samples
    for ch in range(n_chunks):
        m = np.empty((C, T), np.float32)
        d = np.empty((C, T), np.float32)
        for b in range(ch * B // n_chunks, (ch + 1) * B // n_chunks):
            hb = h[b]
            yb = y[b]
            _mix(M, hb, m)
            _taps_same(m, wd, p0, d)
            _mix(W, d, yb)
            for c in range(C):
                hr = hb[c]
                yr = yb[c]
                s = F0
                ss = F0
                sh = F0
                for t in range(T):
                    s += yr[t]
                    ss += yr[t] * yr[t]
                    sh += hr[t]
                parts[b, c] = s
                parts[b, C + c] = ss
                h_mean[b, c] = sh / fT
    if training:
        tot = np.empty(2 * C)
        _sum_rows(parts, tot)
        n = float(B) * float(T)
        for c in range(C):
            mu = tot[c] / n
            v = tot[C + c] / n - mu * mu
            mean3[c] = np.float32(mu)
            var3[c] = np.float32(max(v, 0.0))
    for b in range(B):
        for c in range(C):
            sc = g3[c] / np.sqrt(var3[c] + eps)
            sh = b3[c] - mean3[c] * sc
            yr = y[b, c]
            s = F0
            for t in range(T):
                s += _elu(yr[t] * sc + sh)
            a_mean[b, c] = s / fT


@nb.njit(**_OPTS)
def block_backward(da, dhm, h, y, M, wd, p0, W, g3, b3, eps, training, mean3, var3,
                   pattern, dh, dM, dwd, dW, dg3, db3, n_chunks):
    """Backward of the node level.

    dh (B, C, T), dM, dW (C, C), dwd (C, K), dg3, db3 (C,) are outputs; dM and dW are
    computed where ``pattern`` (C, C) is non-zero, 0 elsewhere.
    """
    eps = np.float32(eps)
    B, C, T = h.shape
    K = wd.shape[1]
    CC = C * C
    invT = F1 / np.float32(T)
    rs = np.empty(C, np.float32)
    sc = np.empty(C, np.float32)
    sh = np.empty(C, np.float32)
    for c in range(C):
        rs[c] = F1 / np.sqrt(var3[c] + eps)
        sc[c] = g3[c] * rs[c]
        sh[c] = b3[c] - mean3[c] * sc[c]
    Mt = np.ascontiguousarray(M.T)
    Wt = np.ascontiguousarray(W.T)
    parts1 = np.empty((B, 2 * C))
    for b in range(B):
        for c in range(C):
            yr = y[b, c]
            g = da[b, c] * invT
            mu = mean3[c]
            s = F0
            sx = F0
            for t in range(T):
                du = g * _elu_grad(yr[t] * sc[c] + sh[c])
                s += du
                sx += du * (yr[t] - mu)
            parts1[b, c] = s
            parts1[b, C + c] = sx
    acc1 = np.empty(2 * C)
    _sum_rows(parts1, acc1)
    n = np.float32(B * T)
    size = 2 * CC + C * K
    parts2 = np.zeros((B, size))
    n_chunks = max(1, min(B, n_chunks))  # one scratch set per chunk of samples
    for ch in range(n_chunks):
        m = np.empty((C, T), np.float32)
        d = np.empty((C, T), np.float32)
        dy = np.empty((C, T), np.float32)
        dm = np.empty((C, T), np.float32)
        for b in range(ch * B // n_chunks, (ch + 1) * B // n_chunks):
            hb = h[b]
            yb = y[b]
            loc = parts2[b]
            # dy through ELU and BN3
            for c in range(C):
                yr = yb[c]
                dyr = dy[c]
                g = da[b, c] * invT
                mu = mean3[c]
                ka = np.float32(acc1[c] / n) if training else F0
                kb = np.float32(acc1[C + c] * rs[c] / n) * rs[c] if training else F0
                for t in range(T):
                    du = g * _elu_grad(yr[t] * sc[c] + sh[c])
                    dyr[t] = sc[c] * (du - ka - (yr[t] - mu) * kb)
            _mix(M, hb, m)
            _taps_same(m, wd, p0, d)
            # y = W^T d: dW[i, j] = d[i] . dy[j]; dd = W dy (into d, no longer needed)
            for i in range(C):
                di = d[i]
                for j in range(C):
                    if pattern[i, j] == 0:
                        continue
                    dyj = dy[j]
                    s = F0
                    for t in range(T):
                        s += di[t] * dyj[t]
                    loc[CC + i * C + j] = s
            _mix(Wt, dy, d)
            # taps: dwd[c, k] = dd[c] . m[c, shifted]; dm[c, t + s] += wd[c, k] dd[c, t]
            for c in range(C):
                ddc = d[c]
                mc = m[c]
                dmc = dm[c]
                for t in range(T):
                    dmc[t] = F0
                for k in range(K):
                    wk = wd[c, k]
                    sft = k - p0
                    t0 = -sft if sft < 0 else 0
                    t1 = T - sft if sft > 0 else T
                    src = ddc[t0:t1]
                    msh = mc[t0 + sft:t1 + sft]
                    dst = dmc[t0 + sft:t1 + sft]
                    s = F0
                    for t in range(t1 - t0):
                        s += src[t] * msh[t]
                    for t in range(t1 - t0):
                        dst[t] += wk * src[t]
                    loc[2 * CC + c * K + k] = s
            # m = M^T h: dM[i, j] = h[i] . dm[j]; dh = M dm + dh_mean / T
            for i in range(C):
                hi = hb[i]
                for j in range(C):
                    if pattern[i, j] == 0:
                        continue
                    dmj = dm[j]
                    s = F0
                    for t in range(T):
                        s += hi[t] * dmj[t]
                    loc[i * C + j] = s
            dhb = dh[b]
            _mix(Mt, dm, dhb)
            for c in range(C):
                g = dhm[b, c] * invT
                r = dhb[c]
                for t in range(T):
                    r[t] += g
    acc2 = np.empty(size)
    _sum_rows(parts2, acc2)
    for c in range(C):
        dg3[c] = np.float32(acc1[C + c] * rs[c])
        db3[c] = np.float32(acc1[c])
    for i in range(C):
        for j in range(C):
            dM[i, j] = np.float32(acc2[i * C + j])
            dW[i, j] = np.float32(acc2[CC + i * C + j])
    for c in range(C):
        for k in range(K):
            dwd[c, k] = np.float32(acc2[2 * CC + c * K + k])


# ---------------------------------------------------------------------------------------
# The region and global levels and the classifier, on the time-means (B, C) of H and A.
# Per sample, with region(j) the region of channel j:
#   alpha = softmax within each region of (hm Wh + bh);  z[r] = sum_{j in r} alpha_j hm_j
#   (the same with am, Wa, ba gives zl);  rr = z P + zl;
#   g = sum_r softmax(Wz z + bz)_r z_r + sum_r softmax(Wl zl + bl)_r zl_r;
#   f = [hm + am, rr, g];  logits = Wc (f * mask) + bc.
# saved (B, S) keeps per sample: alpha_h, alpha_a (C each), z, zl, beta_z, beta_l (R each),
# f and the dropout multipliers (F each); S = 2 C + 4 R + 2 F.


@nb.njit(**_OPTS)
def _fuse(v, W, bias, reg, R, alpha, z, mx, tot):
    """Attention fusion of one sample: alpha (C), z (R) from values v (C); mx, tot: scratch."""
    C = v.shape[0]
    for r in range(R):
        mx[r] = _NEG_INF
        tot[r] = F0
    for j in range(C):
        lg = bias[j]
        for i in range(C):
            lg += v[i] * W[i, j]
        alpha[j] = lg
        if lg > mx[reg[j]]:
            mx[reg[j]] = lg
    for r in range(R):
        z[r] = F0
    for j in range(C):
        alpha[j] = math.exp(alpha[j] - mx[reg[j]])
        tot[reg[j]] += alpha[j]
    for j in range(C):
        alpha[j] /= tot[reg[j]]
        z[reg[j]] += alpha[j] * v[j]


@nb.njit(**_OPTS)
def _collapse(y, W, bias, beta):
    """Attention collapse of one sample: beta (R); returns g. W (R, R) is (out, in)."""
    R = y.shape[0]
    mx = _NEG_INF
    for k in range(R):
        u = bias[k]
        for r in range(R):
            u += W[k, r] * y[r]
        beta[k] = u
        if u > mx:
            mx = u
    s = F0
    for k in range(R):
        beta[k] = math.exp(beta[k] - mx)
        s += beta[k]
    g = F0
    for k in range(R):
        beta[k] /= s
        g += beta[k] * y[k]
    return g


@nb.njit(**_OPTS)
def tail_forward(hm, am, reg, Wh, bh, Wa, ba, P, Wz, bz, Wl, bl, Wc, bc, mask, has_mask,
                 saved, logits, n_chunks):
    """Forward of the tail; saved (B, S) and logits (B, O) are outputs."""
    B, C = hm.shape
    R = P.shape[0]
    O = Wc.shape[0]  # noqa: E741 (n_outputs, as in the C it replaces)
    F = C + R + 1
    n_chunks = max(1, min(B, n_chunks))  # one scratch set per chunk of samples
    for ch in range(n_chunks):
        mx = np.empty(R, np.float32)
        tot = np.empty(R, np.float32)
        for b in range(ch * B // n_chunks, (ch + 1) * B // n_chunks):
            h = hm[b]
            a = am[b]
            s = saved[b]
            ah = s[:C]
            aa = s[C:2 * C]
            z = s[2 * C:2 * C + R]
            zl = s[2 * C + R:2 * C + 2 * R]
            bz_ = s[2 * C + 2 * R:2 * C + 3 * R]
            bl_ = s[2 * C + 3 * R:2 * C + 4 * R]
            f = s[2 * C + 4 * R:2 * C + 4 * R + F]
            mk = s[2 * C + 4 * R + F:2 * C + 4 * R + 2 * F]
            _fuse(h, Wh, bh, reg, R, ah, z, mx, tot)
            _fuse(a, Wa, ba, reg, R, aa, zl, mx, tot)
            for j in range(C):
                f[j] = h[j] + a[j]
            for q in range(R):
                v = zl[q]
                for r in range(R):
                    v += z[r] * P[r, q]
                f[C + q] = v
            f[C + R] = _collapse(z, Wz, bz, bz_) + _collapse(zl, Wl, bl, bl_)
            for k in range(F):
                mk[k] = mask[b, k] if has_mask else F1
            for o in range(O):
                v = bc[o]
                for k in range(F):
                    v += Wc[o, k] * (f[k] * mk[k])
                logits[b, o] = v


@nb.njit(**_OPTS)
def _collapse_back(y, beta, g, dg, W, dy, dW, db):
    """Backward of _collapse: adds to dy (R), dW (R * R, flat) and db (R) from dg."""
    R = y.shape[0]
    for k in range(R):
        du = beta[k] * dg * (y[k] - g)
        dy[k] += beta[k] * dg
        db[k] += du
        for r in range(R):
            dy[r] += W[k, r] * du
            dW[k * R + r] += du * y[r]


@nb.njit(**_OPTS)
def _fuse_back(v, alpha, z, dz, W, reg, dv, dW, db, dl):
    """Backward of _fuse: adds to dv (C), dW (C * C, flat) and db (C) from dz (R)."""
    C = v.shape[0]
    for j in range(C):
        r = reg[j]
        dv[j] += alpha[j] * dz[r]
        dl[j] = alpha[j] * dz[r] * (v[j] - z[r])
        db[j] += dl[j]
    for i in range(C):
        s = F0
        for j in range(C):
            s += W[i, j] * dl[j]
            dW[i * C + j] += v[i] * dl[j]
        dv[i] += s


@nb.njit(**_OPTS)
def tail_backward(dlogits, hm, am, reg, Wh, Wa, P, Wz, Wl, Wc, saved, dhm, dam, grads,
                  n_chunks):
    """Backward of the tail.

    dhm, dam (B, C) and the parameter gradients are outputs, the latter flat in grads in
    the order Wh (C C), bh (C), Wa (C C), ba (C), P (R R), Wz (R R), bz (R), Wl (R R),
    bl (R), Wc (O F), bc (O).
    """
    B, C = hm.shape
    R = P.shape[0]
    O = Wc.shape[0]  # noqa: E741 (n_outputs, as in the C it replaces)
    F = C + R + 1
    CC, RR = C * C, R * R
    o_bh = CC
    o_Wa = o_bh + C
    o_ba = o_Wa + CC
    o_P = o_ba + C
    o_Wz = o_P + RR
    o_bz = o_Wz + RR
    o_Wl = o_bz + R
    o_bl = o_Wl + RR
    o_Wc = o_bl + R
    o_bc = o_Wc + O * F
    size = o_bc + O
    parts = np.zeros((B, size))
    n_chunks = max(1, min(B, n_chunks))  # one scratch set per chunk of samples
    for ch in range(n_chunks):
        df = np.empty(F, np.float32)
        dz = np.empty(R, np.float32)
        dzl = np.empty(R, np.float32)
        dl = np.empty(C, np.float32)
        for b in range(ch * B // n_chunks, (ch + 1) * B // n_chunks):
            df[:] = F0
            g = parts[b]
            h = hm[b]
            a = am[b]
            s = saved[b]
            dlog = dlogits[b]
            ah = s[:C]
            aa = s[C:2 * C]
            z = s[2 * C:2 * C + R]
            zl = s[2 * C + R:2 * C + 2 * R]
            bz_ = s[2 * C + 2 * R:2 * C + 3 * R]
            bl_ = s[2 * C + 3 * R:2 * C + 4 * R]
            f = s[2 * C + 4 * R:2 * C + 4 * R + F]
            mk = s[2 * C + 4 * R + F:2 * C + 4 * R + 2 * F]
            for o in range(O):
                g[o_bc + o] += dlog[o]
                for k in range(F):
                    g[o_Wc + o * F + k] += dlog[o] * (f[k] * mk[k])
                    df[k] += Wc[o, k] * dlog[o]
            for k in range(F):
                df[k] *= mk[k]
            dh = dhm[b]
            da = dam[b]
            for j in range(C):
                dh[j] = df[j]
                da[j] = df[j]
            for r in range(R):
                v = F0
                for q in range(R):
                    v += P[r, q] * df[C + q]
                    g[o_P + r * R + q] += z[r] * df[C + q]
                dz[r] = v
                dzl[r] = df[C + r]
            dg = df[C + R]
            gz = F0
            gl = F0
            for r in range(R):
                gz += bz_[r] * z[r]
                gl += bl_[r] * zl[r]
            _collapse_back(z, bz_, gz, dg, Wz, dz, g[o_Wz:o_bz], g[o_bz:o_Wl])
            _collapse_back(zl, bl_, gl, dg, Wl, dzl, g[o_Wl:o_bl], g[o_bl:o_Wc])
            _fuse_back(h, ah, z, dz, Wh, reg, dh, g[:o_bh], g[o_bh:o_Wa], dl)
            _fuse_back(a, aa, zl, dzl, Wa, reg, da, g[o_Wa:o_ba], g[o_ba:o_P], dl)
    acc = np.empty(size)
    _sum_rows(parts, acc)
    for i in range(size):
        grads[i] = np.float32(acc[i])
