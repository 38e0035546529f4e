/* HiSTN on the CPU in three fused kernels, forward and backward: the temporal head
 * (below), the node level (histn_block_*) and the region and global levels with the
 * classifier (histn_tail_*).
 *
 * Head: x (B, C, T) -> y1 = per-channel "same" filter (the fused 64-tap kernel; or y1 given)
 * -> u1 = BN1(y1) -> e1 = ELU(u1) -> y2 = 5-tap "valid" filter per channel
 * (B, C, T2) -> u2 = BN2(y2) -> e2 = ELU(u2) -> h = avgpool2(e2) * mask (B, C, T3).
 *
 * PyTorch runs this as ~25 memory passes over (B, C, T) tensors per training step; here
 * it is 3 passes forward and 3 backward, each channel handled by one thread. Built at
 * first use by physioemo/models/layers/_native.py (plain C, OpenMP, no Python headers)
 * and checked against the PyTorch layers by tests/models/test_native.py.
 *
 * BatchNorm follows torch.nn.functional.batch_norm: in training the batch mean and the
 * biased batch variance normalise, in evaluation the given (running) statistics do.
 * Sums are accumulated in double.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <omp.h>

#define MAXT 4096 /* longest window (the padded input of the first filter included) */

/* exp for x <= 0 (Cephes expf polynomial, ~1 ulp), written so that GCC vectorises it */
static inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : (x > 0.0f ? 0.0f : x);
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

/* u = x * scale + shift (BatchNorm folded); e = ELU(u) */
static inline void bn_elu(const float *x, int n, float scale, float shift, float *u, float *e) {
    for (int i = 0; i < n; i++) {
        float v = x[i] * scale + shift;
        u[i] = v;
        e[i] = v > 0.0f ? v : exp_neg(v) - 1.0f;
    }
}

static inline float elu_grad(float u) { return u > 0.0f ? 1.0f : exp_neg(u); }

/* 8 floats; unaligned loads and stores through memcpy (one instruction with AVX) */
typedef float v8 __attribute__((vector_size(32)));
static inline v8 ld8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void st8(float *p, v8 v) { memcpy(p, &v, sizeof v); }
typedef int v8i __attribute__((vector_size(32)));

/* out[j] = 0.5 (e[2 j] + e[2 j + 1]), j < n (average pooling by 2) */
static inline void pool2(const float *e, int n, float *out) {
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        v8 a = ld8(e + 2 * j), b = ld8(e + 2 * j + 8);
        v8 ev = __builtin_shuffle(a, b, (v8i){0, 2, 4, 6, 8, 10, 12, 14});
        v8 od = __builtin_shuffle(a, b, (v8i){1, 3, 5, 7, 9, 11, 13, 15});
        st8(out + j, (ev + od) * 0.5f);
    }
    for (; j < n; j++) out[j] = 0.5f * (e[2 * j] + e[2 * j + 1]);
}

/* out[2 j] = out[2 j + 1] = g[j], j < n (the transpose of pool2, without the 0.5) */
static inline void unpool2(const float *g, int n, float *out) {
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        v8 a = ld8(g + j);
        st8(out + 2 * j, __builtin_shuffle(a, (v8i){0, 0, 1, 1, 2, 2, 3, 3}));
        st8(out + 2 * j + 8, __builtin_shuffle(a, (v8i){4, 4, 5, 5, 6, 6, 7, 7}));
    }
    for (; j < n; j++) out[2 * j] = out[2 * j + 1] = g[j];
}

/* y[t] = sum_k w[k] x[t + k - p] with zeros outside 0..T-1 ("same" cross-correlation);
 * xp is scratch of T + K - 1 floats. 64 outputs at a time in 8 vector registers. */
static void conv_same_row(const float *x, int T, const float *w, int K, int p, float *xp,
                          float *y) {
    for (int i = 0; i < p; i++) xp[i] = 0.0f;
    memcpy(xp + p, x, sizeof(float) * T);
    for (int i = p + T; i < T + K - 1; i++) xp[i] = 0.0f;
    int t0 = 0;
    for (; t0 + 64 <= T; t0 += 64) {
        v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        const float *xs = xp + t0;
        for (int k = 0; k < K; k++, xs++) {
            v8 wk = (v8){0} + w[k];
            a0 += wk * ld8(xs); a1 += wk * ld8(xs + 8); a2 += wk * ld8(xs + 16);
            a3 += wk * ld8(xs + 24); a4 += wk * ld8(xs + 32); a5 += wk * ld8(xs + 40);
            a6 += wk * ld8(xs + 48); a7 += wk * ld8(xs + 56);
        }
        st8(y + t0, a0); st8(y + t0 + 8, a1); st8(y + t0 + 16, a2); st8(y + t0 + 24, a3);
        st8(y + t0 + 32, a4); st8(y + t0 + 40, a5); st8(y + t0 + 48, a6);
        st8(y + t0 + 56, a7);
    }
    if (t0 < T) {
        for (int t = t0; t < T; t++) y[t] = 0.0f;
        for (int k = 0; k < K; k++) {
            float wk = w[k];
            for (int t = t0; t < T; t++) y[t] += wk * xp[t + k];
        }
    }
}

/* dw[k] += sum_t dy[t] xp[t + k] (xp: the padded input of conv_same_row) */
static void conv_same_grad_row(const float *dy, int T, const float *xp, int K, double *dw) {
    int k0 = 0;
    for (; k0 + 32 <= K; k0 += 32) {  /* 32 sums, even and odd t apart: 8 registers */
        v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        int t = 0;
        for (; t + 2 <= T; t += 2) {
            const float *xs = xp + t + k0;
            v8 d = (v8){0} + dy[t], e = (v8){0} + dy[t + 1];
            a0 += d * ld8(xs); a1 += d * ld8(xs + 8); a2 += d * ld8(xs + 16);
            a3 += d * ld8(xs + 24);
            b0 += e * ld8(xs + 1); b1 += e * ld8(xs + 9); b2 += e * ld8(xs + 17);
            b3 += e * ld8(xs + 25);
        }
        for (; t < T; t++) {
            const float *xs = xp + t + k0;
            v8 d = (v8){0} + dy[t];
            a0 += d * ld8(xs); a1 += d * ld8(xs + 8); a2 += d * ld8(xs + 16);
            a3 += d * ld8(xs + 24);
        }
        a0 += b0; a1 += b1; a2 += b2; a3 += b3;
        for (int i = 0; i < 8; i++) {
            dw[k0 + i] += a0[i];
            dw[k0 + 8 + i] += a1[i];
            dw[k0 + 16 + i] += a2[i];
            dw[k0 + 24 + i] += a3[i];
        }
    }
    for (int k = k0; k < K; k++) {
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int t = 0; t < T; t++) s += dy[t] * xp[t + k];
        dw[k] += s;
    }
}

/* Dropout from a counter-based hash: element i of h is kept when the top 24 bits of
 * mix32(mix32(i ^ seed0) + seed1) are >= thresh, and then scaled. The mask is never stored:
 * the backward pass draws it again. drop = {seed0, seed1, thresh, bits of the scale}. */
static inline uint32_t mix32(uint32_t x) {  /* "lowbias32" (C. Wellons) */
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static inline void drop_row(const uint32_t *drop, size_t first, int n, float *mk) {
    float scale;
    memcpy(&scale, drop + 3, sizeof scale);
    uint32_t base = (uint32_t)first;
    for (int j = 0; j < n; j++) {
        uint32_t r = mix32(mix32((base + (uint32_t)j) ^ drop[0]) + drop[1]);
        mk[j] = (r >> 8) >= drop[2] ? scale : 0.0f;
    }
}

/* The multipliers of row o (T3 entries) into mk: from mask, from drop, or none (0). */
static inline int row_mask(const float *mask, const uint32_t *drop, size_t o, int T3,
                           float *mk) {
    if (mask) {
        memcpy(mk, mask + o * T3, sizeof(float) * T3);
        return 1;
    }
    if (drop) {
        drop_row(drop, o * T3, T3, mk);
        return 1;
    }
    return 0;
}

/* The dropout multipliers of elements 0..n-1 (for tests and inspection). */
void histn_dropout_mask(int n, const uint32_t *drop, float *out) { drop_row(drop, 0, n, out); }

static void stats(const float *x, int B, int C, int T, int c, int stride_b, double *mean,
                  double *var) {
    double s = 0.0, ss = 0.0;
    for (int b = 0; b < B; b++) {
        const float *row = x + (size_t)b * stride_b + (size_t)c * T;
        float fs = 0.0f, fss = 0.0f;
#pragma omp simd reduction(+ : fs, fss)
        for (int t = 0; t < T; t++) {
            fs += row[t];
            fss += row[t] * row[t];
        }
        s += fs;
        ss += fss;
    }
    double n = (double)B * T;
    *mean = s / n;
    double v = ss / n - (*mean) * (*mean);
    *var = v > 0.0 ? v : 0.0;
}

/* Forward. mean/var: in training, outputs (batch statistics, biased variance); otherwise
 * inputs (running statistics). Dropout: mask (B, C, T3) multipliers (already scaled), or
 * drop (see mix32), or neither. y2 (B, C, T2) and h (B, C, T3) are outputs. */
void histn_head_forward(const float *x, const float *wt, int Kt, int pt, float *y1, int B,
                        int C, int T, const float *g1, const float *b1, const float *w,
                        int K, const float *g2, const float *b2, const float *mask,
                        const uint32_t *drop, float eps, int training, float *mean1,
                        float *var1, float *mean2,
                        float *var2, float *y2, float *h, int nthreads) {
    int T2 = T - K + 1, T3 = T2 / 2;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int c = 0; c < C; c++) {
        float u[MAXT], e[MAXT];
        if (wt) {  /* y1 = the "same" filter of x with channel c's kernel */
            for (int b = 0; b < B; b++) {
                size_t o = ((size_t)b * C + c);
                conv_same_row(x + o * T, T, wt + (size_t)c * Kt, Kt, pt, u, y1 + o * T);
            }
        }
        if (training) {
            double m, v;
            stats(y1, B, C, T, c, C * T, &m, &v);
            mean1[c] = (float)m;
            var1[c] = (float)v;
        }
        float sc1 = g1[c] / sqrtf(var1[c] + eps), sh1 = b1[c] - mean1[c] * sc1;
        const float *wc = w + (size_t)c * K;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * C + c);
            bn_elu(y1 + o * T, T, sc1, sh1, u, e);
            float *out = y2 + o * T2;
            for (int t = 0; t < T2; t++) out[t] = wc[0] * e[t];
            for (int k = 1; k < K; k++) {
                float wk = wc[k];
                for (int t = 0; t < T2; t++) out[t] += wk * e[t + k];
            }
        }
        if (training) {
            double m, v;
            stats(y2, B, C, T2, c, C * T2, &m, &v);
            mean2[c] = (float)m;
            var2[c] = (float)v;
        }
        float sc2 = g2[c] / sqrtf(var2[c] + eps), sh2 = b2[c] - mean2[c] * sc2;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * C + c);
            bn_elu(y2 + o * T2, T2, sc2, sh2, u, e);
            float *out = h + o * T3;
            pool2(e, T3, out);
            if (row_mask(mask, drop, o, T3, u))
                for (int j = 0; j < T3; j++) out[j] *= u[j];
        }
    }
}

/* dL/du2 of one row from dL/dh: through the mask, the pooling and ELU2. */
static inline void row_du2(const float *dh, float *mk, const float *y2row, int T2,
                           int T3, float sc2, float sh2, float *du2) {
    /* mk: the row's multipliers, or NULL; overwritten */
    float g[MAXT];
    if (mk)
        for (int j = 0; j < T3; j++) g[j] = 0.5f * dh[j] * mk[j];
    else
        for (int j = 0; j < T3; j++) g[j] = 0.5f * dh[j];
    unpool2(g, T3, du2);
    for (int t = 2 * T3; t < T2; t++) du2[t] = 0.0f;  /* sample dropped by the pooling */
    for (int t = 0; t < T2; t++) du2[t] *= elu_grad(y2row[t] * sc2 + sh2);
}

/* Backward. dy1 (B, C, T): output. dg1, db1, dg2, db2 (C,) and dw (C, K): outputs. */
void histn_head_backward(const float *dh, const float *x, int Kt, int pt, float *dwt,
                         const float *y1, const float *y2, int B, int C,
                         int T, const float *g1, const float *b1, const float *w, int K,
                         const float *g2, const float *b2, const float *mask,
                         const uint32_t *drop, float eps, int training, const float *mean1,
                         const float *var1,
                         const float *mean2, const float *var2, float *dy1, float *dg1,
                         float *db1, float *dw, float *dg2, float *db2, int nthreads) {
    int T2 = T - K + 1, T3 = T2 / 2;
#pragma omp parallel num_threads(nthreads)
    {
    float *du2s = malloc(sizeof(float) * (size_t)B * T2);  /* dL/du2 of one channel */
#pragma omp for schedule(static)
    for (int c = 0; c < C; c++) {
        float u[MAXT], e[MAXT], dy[MAXT];
        float rs1 = 1.0f / sqrtf(var1[c] + eps), rs2 = 1.0f / sqrtf(var2[c] + eps);
        float sc1 = g1[c] * rs1, sh1 = b1[c] - mean1[c] * sc1;
        float sc2 = g2[c] * rs2, sh2 = b2[c] - mean2[c] * sc2;
        float m1 = mean1[c], m2 = mean2[c];
        const float *wc = w + (size_t)c * K;
        /* BN2 parameter gradients: sum du2 and sum du2 * xhat2 */
        double sdu = 0.0, sdux = 0.0;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * C + c);
            const float *y2row = y2 + o * T2;
            float *du = du2s + (size_t)b * T2;
            row_du2(dh + o * T3, row_mask(mask, drop, o, T3, e) ? e : NULL, y2row, T2, T3,
                    sc2, sh2, du);
            float fs = 0.0f, fsx = 0.0f;
#pragma omp simd reduction(+ : fs, fsx)
            for (int t = 0; t < T2; t++) {
                fs += du[t];
                fsx += du[t] * (y2row[t] - m2);
            }
            sdu += fs;
            sdux += fsx;
        }
        dg2[c] = (float)(sdux * rs2);
        db2[c] = (float)sdu;
        float n2 = (float)B * T2;
        float k2a = training ? (float)(sdu / n2) : 0.0f;
        float k2b = training ? (float)(sdux * rs2 / n2) * rs2 : 0.0f;
        /* through BN2, the taps and ELU1; BN1 parameter gradients */
        double dwk[64] = {0.0};
        double s1 = 0.0, s1x = 0.0;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * C + c);
            const float *y2row = y2 + o * T2, *y1row = y1 + o * T;
            const float *du = du2s + (size_t)b * T2;
            for (int t = 0; t < T2; t++)
                dy[t] = g2[c] * rs2 * (du[t] - k2a - (y2row[t] - m2) * k2b);
            bn_elu(y1row, T, sc1, sh1, u, e);
            for (int k = 0; k < K; k++) {
                float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int t = 0; t < T2; t++) acc += dy[t] * e[t + k];
                dwk[k] += acc;
            }
            float *d1 = dy1 + o * T;
            for (int t = 0; t < T; t++) d1[t] = 0.0f;
            for (int k = 0; k < K; k++) {
                float wk = wc[k];
                for (int t = 0; t < T2; t++) d1[t + k] += wk * dy[t];
            }
            float fs = 0.0f, fsx = 0.0f;
#pragma omp simd reduction(+ : fs, fsx)
            for (int t = 0; t < T; t++) {
                d1[t] *= u[t] > 0.0f ? 1.0f : e[t] + 1.0f;  /* ELU' from ELU */
                fs += d1[t];
                fsx += d1[t] * (y1row[t] - m1);
            }
            s1 += fs;
            s1x += fsx;
        }
        for (int k = 0; k < K; k++) dw[(size_t)c * K + k] = (float)dwk[k];
        dg1[c] = (float)(s1x * rs1);
        db1[c] = (float)s1;
        float n1 = (float)B * T;
        float k1a = training ? (float)(s1 / n1) : 0.0f;
        float k1b = training ? (float)(s1x * rs1 / n1) * rs1 : 0.0f;
        float a1 = g1[c] * rs1;
        double dwt_c[MAXT];
        for (int k = 0; k < Kt; k++) dwt_c[k] = 0.0;
        for (int b = 0; b < B; b++) {
            size_t o = ((size_t)b * C + c);
            const float *y1row = y1 + o * T;
            float *d1 = dy1 + o * T;
            for (int t = 0; t < T; t++) d1[t] = a1 * (d1[t] - k1a - (y1row[t] - m1) * k1b);
            if (dwt) {  /* kernel gradient of the "same" filter that made y1 from x */
                const float *xr = x + o * T;
                for (int i = 0; i < pt; i++) e[i] = 0.0f;
                memcpy(e + pt, xr, sizeof(float) * T);
                for (int i = pt + T; i < T + Kt - 1; i++) e[i] = 0.0f;
                conv_same_grad_row(d1, T, e, Kt, dwt_c);
            }
        }
        if (dwt)
            for (int k = 0; k < Kt; k++) dwt[(size_t)c * Kt + k] = (float)dwt_c[k];
    }
    free(du2s);
    }
}

/* ---------------------------------------------------------------------------------------
 * HiSTN's node level after the head, fused, down to the time-means the classifier sees:
 *
 * h (B, C, T) -> m = M^T h (node Chebyshev filters) -> d = per-channel K-tap "same" filter
 * (p0 zeros before) -> y = W^T d (region pointwise mixing) -> a = ELU(BN3(y)); outputs the
 * time-means of a and h, (B, C) each. Matrices act on the channel axis:
 * m[j, t] = sum_i M[i, j] h[i, t]. One sample per thread step; per-thread sums, added in
 * thread order. The
 * gradients of M and W are computed where `pattern` is non-zero (the entries that are
 * parameters; all when it is NULL) and are 0 elsewhere.
 */

/* out[j, :] = sum_i A[i, j] x[i, :] (A^T x on the channel axis); with transpose,
 * out[j, :] = sum_i A[j, i] x[i, :] (A x, the backward of the first). */
static void mix(const float *A, int transpose, const float *x, int C, int T, float *out) {
    size_t si = transpose ? 1 : (size_t)C, sj = transpose ? (size_t)C : 1;
    for (int j = 0; j < C; j++) {
        float *o = out + (size_t)j * T;
        for (int t = 0; t < T; t++) o[t] = 0.0f;
        for (int i = 0; i < C; i++) {
            float a = A[i * si + j * sj];
            if (a == 0.0f) continue;
            const float *xi = x + (size_t)i * T;
            for (int t = 0; t < T; t++) o[t] += a * xi[t];
        }
    }
}

static void taps_same(const float *m, const float *wd, int C, int T, int K, int p0,
                      float *d) {
    /* d[c, t] = sum_k wd[c, k] m[c, t + k - p0] (zeros outside) */
    for (int c = 0; c < C; c++) {
        const float *mc = m + (size_t)c * T;
        float *dc = d + (size_t)c * T;
        for (int t = 0; t < T; t++) dc[t] = 0.0f;
        for (int k = 0; k < K; k++) {
            float wk = wd[(size_t)c * K + k];
            int s = k - p0, t0 = s < 0 ? -s : 0, t1 = s > 0 ? T - s : T;
            for (int t = t0; t < t1; t++) dc[t] += wk * mc[t + s];
        }
    }
}

/* out[i] = sum over threads of parts[t * size + i], i in [from, to), in thread order: the
 * same rounding on every run with the same thread count (a critical section would add in
 * arrival order). */
static void ordered_sum(const double *parts, int nparts, size_t size, size_t from, size_t to,
                        double *out) {
    for (size_t i = from; i < to; i++) {
        double s = 0.0;
        for (int t = 0; t < nparts; t++) s += parts[(size_t)t * size + i];
        out[i] = s;
    }
}

void histn_block_forward(const float *h, int B, int C, int T, const float *M,
                         const float *wd, int K, int p0, const float *W, const float *g3,
                         const float *b3, float eps, int training, float *mean3,
                         float *var3, float *y, float *a_mean, float *h_mean,
                         int nthreads) {
    double *sum = calloc((size_t)2 * C, sizeof(double));
    double *parts = calloc((size_t)2 * C * nthreads, sizeof(double));
#pragma omp parallel num_threads(nthreads)
    {
        float *m = malloc(sizeof(float) * 2 * C * T), *d = m + (size_t)C * T;
        double *loc = parts + (size_t)2 * C * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            const float *hb = h + (size_t)b * C * T;
            float *yb = y + (size_t)b * C * T;
            mix(M, 0, hb, C, T, m);
            taps_same(m, wd, C, T, K, p0, d);
            mix(W, 0, d, C, T, yb);
            for (int c = 0; c < C; c++) {
                const float *hr = hb + (size_t)c * T, *yr = yb + (size_t)c * T;
                float s = 0.0f, ss = 0.0f, sh = 0.0f;
#pragma omp simd reduction(+ : s, ss, sh)
                for (int t = 0; t < T; t++) {
                    s += yr[t];
                    ss += yr[t] * yr[t];
                    sh += hr[t];
                }
                loc[c] += s;
                loc[C + c] += ss;
                h_mean[(size_t)b * C + c] = sh / T;
            }
        }
#pragma omp single
        ordered_sum(parts, nthreads, (size_t)2 * C, 0, (size_t)2 * C, sum);
#pragma omp single
        if (training) {
            for (int c = 0; c < C; c++) {
                double n = (double)B * T, mu = sum[c] / n, v = sum[C + c] / n - mu * mu;
                mean3[c] = (float)mu;
                var3[c] = (float)(v > 0.0 ? v : 0.0);
            }
        }
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            for (int c = 0; c < C; c++) {
                float sc = g3[c] / sqrtf(var3[c] + eps), sh = b3[c] - mean3[c] * sc;
                const float *yr = y + ((size_t)b * C + c) * T;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int t = 0; t < T; t++) {
                    float v = yr[t] * sc + sh;
                    s += v > 0.0f ? v : exp_neg(v) - 1.0f;
                }
                a_mean[(size_t)b * C + c] = s / T;
            }
        }
        free(m);
    }
    free(sum);
    free(parts);
}

void histn_block_backward(const float *da, const float *dhm, const float *h,
                          const float *y, int B, int C, int T, const float *M,
                          const float *wd, int K, int p0, const float *W, const float *g3,
                          const float *b3, float eps, int training, const float *mean3,
                          const float *var3, const unsigned char *pattern, float *dh,
                          float *dM, float *dwd, float *dW, float *dg3, float *db3,
                          int nthreads) {
    size_t CC = (size_t)C * C, CK = (size_t)C * K;
    size_t size = 2 * C + 2 * CC + CK;
    double *acc = calloc(size, sizeof(double)), *parts = calloc(size * nthreads, sizeof(double));
    float *sc = malloc(sizeof(float) * 4 * C), *sh = sc + C, *rs = sc + 2 * C;
    for (int c = 0; c < C; c++) {
        rs[c] = 1.0f / sqrtf(var3[c] + eps);
        sc[c] = g3[c] * rs[c];
        sh[c] = b3[c] - mean3[c] * sc[c];
    }
    float invT = 1.0f / T;
#pragma omp parallel num_threads(nthreads)
    {
        float *m = malloc(sizeof(float) * 4 * C * T), *d = m + (size_t)C * T;
        float *dy = d + (size_t)C * T, *dm = dy + (size_t)C * T;
        double *loc = parts + size * omp_get_thread_num();
        double *l_sdu = loc, *l_sdux = loc + C, *l_dM = loc + 2 * C, *l_dW = l_dM + CC;
        double *l_dwd = l_dW + CC;
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            for (int c = 0; c < C; c++) {
                const float *yr = y + ((size_t)b * C + c) * T;
                float g = da[(size_t)b * C + c] * invT, mu = mean3[c], s = 0.0f, sx = 0.0f;
#pragma omp simd reduction(+ : s, sx)
                for (int t = 0; t < T; t++) {
                    float du = g * elu_grad(yr[t] * sc[c] + sh[c]);
                    s += du;
                    sx += du * (yr[t] - mu);
                }
                l_sdu[c] += s;
                l_sdux[c] += sx;
            }
        }
#pragma omp single
        ordered_sum(parts, nthreads, size, 0, (size_t)2 * C, acc);
        float n = (float)B * T;
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            const float *hb = h + (size_t)b * C * T, *yb = y + (size_t)b * C * T;
            /* dy through ELU and BN3 */
            for (int c = 0; c < C; c++) {
                const float *yr = yb + (size_t)c * T;
                float *dyr = dy + (size_t)c * T;
                float g = da[(size_t)b * C + c] * invT, mu = mean3[c];
                float ka = training ? (float)(acc[c] / n) : 0.0f;
                float kb = training ? (float)(acc[C + c] * rs[c] / n) * rs[c] : 0.0f;
                for (int t = 0; t < T; t++) {
                    float du = g * elu_grad(yr[t] * sc[c] + sh[c]);
                    dyr[t] = sc[c] * (du - ka - (yr[t] - mu) * kb);
                }
            }
            mix(M, 0, hb, C, T, m);
            taps_same(m, wd, C, T, K, p0, d);
            /* y = W^T d: dW[i, j] += d[i] . dy[j]; dd = W dy (into d, no longer needed) */
            for (int i = 0; i < C; i++) {
                const float *di = d + (size_t)i * T;
                for (int j = 0; j < C; j++) {
                    if (pattern && !pattern[(size_t)i * C + j]) continue;
                    const float *dyj = dy + (size_t)j * T;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int t = 0; t < T; t++) s += di[t] * dyj[t];
                    l_dW[(size_t)i * C + j] += s;
                }
            }
            mix(W, 1, dy, C, T, d);
            /* taps: dwd[c, k] += dd[c] . m[c, shifted]; dm[c, t + s] += wd[c, k] dd[c, t] */
            for (int c = 0; c < C; c++) {
                const float *ddc = d + (size_t)c * T, *mc = m + (size_t)c * T;
                float *dmc = dm + (size_t)c * T;
                for (int t = 0; t < T; t++) dmc[t] = 0.0f;
                for (int k = 0; k < K; k++) {
                    float wk = wd[(size_t)c * K + k], s = 0.0f;
                    int sft = k - p0, t0 = sft < 0 ? -sft : 0, t1 = sft > 0 ? T - sft : T;
#pragma omp simd reduction(+ : s)
                    for (int t = t0; t < t1; t++) s += ddc[t] * mc[t + sft];
                    for (int t = t0; t < t1; t++) dmc[t + sft] += wk * ddc[t];
                    l_dwd[(size_t)c * K + k] += s;
                }
            }
            /* m = M^T h: dM[i, j] += h[i] . dm[j]; dh = M dm + dh_mean / T */
            for (int i = 0; i < C; i++) {
                const float *hi = hb + (size_t)i * T;
                for (int j = 0; j < C; j++) {
                    if (pattern && !pattern[(size_t)i * C + j]) continue;
                    const float *dmj = dm + (size_t)j * T;
                    float s = 0.0f;
#pragma omp simd reduction(+ : s)
                    for (int t = 0; t < T; t++) s += hi[t] * dmj[t];
                    l_dM[(size_t)i * C + j] += s;
                }
            }
            float *dhb = dh + (size_t)b * C * T;
            mix(M, 1, dm, C, T, dhb);
            for (int c = 0; c < C; c++) {
                float g = dhm[(size_t)b * C + c] * invT;
                float *r = dhb + (size_t)c * T;
                for (int t = 0; t < T; t++) r[t] += g;
            }
        }
        free(m);
    }
    ordered_sum(parts, nthreads, size, 2 * C, size, acc);
    for (int c = 0; c < C; c++) {
        dg3[c] = (float)(acc[C + c] * rs[c]);
        db3[c] = (float)acc[c];
    }
    for (size_t i = 0; i < CC; i++) {
        dM[i] = (float)acc[2 * C + i];
        dW[i] = (float)acc[2 * C + CC + i];
    }
    for (size_t i = 0; i < CK; i++) dwd[i] = (float)acc[2 * C + 2 * CC + i];
    free(acc);
    free(parts);
    free(sc);
}

/* ---------------------------------------------------------------------------------------
 * HiSTN's region and global levels and the classifier, on the time-means (B, C) of H and
 * A, forward and backward, one sample per thread step (PyTorch spends ~100 small
 * operations here). Per sample, with region(j) the region of channel j:
 *   alpha = softmax within each region of (hm Wh + bh);  z[r] = sum_{j in r} alpha_j hm_j
 *   (the same with am, Wa, ba gives zl);  rr = z P + zl;
 *   g = sum_r softmax(Wz z + bz)_r z_r + sum_r softmax(Wl zl + bl)_r zl_r;
 *   f = [hm + am, rr, g];  logits = Wc (f * dropout) + bc.
 * saved (B, S) keeps per sample: alpha_h, alpha_a (C each), z, zl, beta_z, beta_l (R each),
 * f, the dropout multipliers (F each); S = 2 C + 4 R + 2 F.
 */

typedef struct {
    int C, R, O, F, S;
    const int *reg;
} tail_dims;

/* attention fusion of one sample: alpha (C), z (R) from values v (C), W (C x C), b (C) */
static void fuse(const tail_dims *d, const float *v, const float *W, const float *b,
                 float *alpha, float *z) {
    int C = d->C, R = d->R;
    float mx[64];
    for (int r = 0; r < R; r++) mx[r] = -INFINITY;
    for (int j = 0; j < C; j++) {
        float l = b[j];
        for (int i = 0; i < C; i++) l += v[i] * W[(size_t)i * C + j];
        alpha[j] = l;
        if (l > mx[d->reg[j]]) mx[d->reg[j]] = l;
    }
    float sum[64];
    for (int r = 0; r < R; r++) sum[r] = 0.0f, z[r] = 0.0f;
    for (int j = 0; j < C; j++) {
        alpha[j] = expf(alpha[j] - mx[d->reg[j]]);
        sum[d->reg[j]] += alpha[j];
    }
    for (int j = 0; j < C; j++) {
        alpha[j] /= sum[d->reg[j]];
        z[d->reg[j]] += alpha[j] * v[j];
    }
}

/* attention collapse of one sample: beta (R), returns g, from y (R), W (R x R, out x in) */
static float collapse(int R, const float *y, const float *W, const float *b, float *beta) {
    float mx = -INFINITY, s = 0.0f, g = 0.0f;
    for (int k = 0; k < R; k++) {
        float u = b[k];
        for (int r = 0; r < R; r++) u += W[(size_t)k * R + r] * y[r];
        beta[k] = u;
        if (u > mx) mx = u;
    }
    for (int k = 0; k < R; k++) s += (beta[k] = expf(beta[k] - mx));
    for (int k = 0; k < R; k++) g += (beta[k] /= s) * y[k];
    return g;
}

void histn_tail_forward(const float *hm, const float *am, int B, int C, int R, int O,
                        const int *reg, const float *Wh, const float *bh, const float *Wa,
                        const float *ba, const float *P, const float *Wz, const float *bz,
                        const float *Wl, const float *bl, const float *Wc, const float *bc,
                        const uint32_t *drop, float *saved, float *logits, int nthreads) {
    tail_dims d = {C, R, O, C + R + 1, 2 * C + 4 * R + 2 * (C + R + 1), reg};
    int F = d.F;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *h = hm + (size_t)b * C, *a = am + (size_t)b * C;
        float *s = saved + (size_t)b * d.S;
        float *ah = s, *aa = ah + C, *z = aa + C, *zl = z + R, *bz_ = zl + R, *bl_ = bz_ + R;
        float *f = bl_ + R, *mk = f + F;
        fuse(&d, h, Wh, bh, ah, z);
        fuse(&d, a, Wa, ba, aa, zl);
        for (int j = 0; j < C; j++) f[j] = h[j] + a[j];
        for (int q = 0; q < R; q++) {
            float v = zl[q];
            for (int r = 0; r < R; r++) v += z[r] * P[(size_t)r * R + q];
            f[C + q] = v;
        }
        f[C + R] = collapse(R, z, Wz, bz, bz_) + collapse(R, zl, Wl, bl, bl_);
        if (drop)
            drop_row(drop, (size_t)b * F, F, mk);
        else
            for (int k = 0; k < F; k++) mk[k] = 1.0f;
        float *out = logits + (size_t)b * O;
        for (int o = 0; o < O; o++) {
            float v = bc[o];
            for (int k = 0; k < F; k++) v += Wc[(size_t)o * F + k] * f[k] * mk[k];
            out[o] = v;
        }
    }
}

/* backward of collapse: adds to dy (R), dW (R x R), db (R) from dg */
static void collapse_back(int R, const float *y, const float *beta, float g, float dg,
                          const float *W, float *dy, double *dW, double *db) {
    for (int k = 0; k < R; k++) {
        float du = beta[k] * dg * (y[k] - g);
        dy[k] += beta[k] * dg;
        db[k] += du;
        for (int r = 0; r < R; r++) {
            dy[r] += W[(size_t)k * R + r] * du;
            dW[(size_t)k * R + r] += du * y[r];
        }
    }
}

/* backward of fuse: adds to dv (C), dW (C x C), db (C) from dz (R) */
static void fuse_back(const tail_dims *d, const float *v, const float *alpha, const float *z,
                      const float *dz, const float *W, float *dv, double *dW, double *db) {
    int C = d->C;
    float dl[64];
    for (int j = 0; j < C; j++) {
        int r = d->reg[j];
        dv[j] += alpha[j] * dz[r];
        dl[j] = alpha[j] * dz[r] * (v[j] - z[r]);
        db[j] += dl[j];
    }
    for (int i = 0; i < C; i++) {
        float s = 0.0f;
        for (int j = 0; j < C; j++) {
            s += W[(size_t)i * C + j] * dl[j];
            dW[(size_t)i * C + j] += v[i] * dl[j];
        }
        dv[i] += s;
    }
}

/* Gradients: dhm, dam (B, C); parameters in one array of doubles summed over samples,
 * in this order: Wh (C C), bh (C), Wa (C C), ba (C), P (R R), Wz (R R), bz (R), Wl (R R),
 * bl (R), Wc (O F), bc (O), written as floats to grads. */
void histn_tail_backward(const float *dlogits, const float *hm, const float *am, int B,
                         int C, int R, int O, const int *reg, const float *Wh,
                         const float *Wa, const float *P, const float *Wz, const float *Wl,
                         const float *Wc, const float *saved, float *dhm, float *dam,
                         float *grads, int nthreads) {
    tail_dims d = {C, R, O, C + R + 1, 2 * C + 4 * R + 2 * (C + R + 1), reg};
    int F = d.F;
    size_t CC = (size_t)C * C, RR = (size_t)R * R;
    size_t o_bh = CC, o_Wa = o_bh + C, o_ba = o_Wa + CC, o_P = o_ba + C, o_Wz = o_P + RR;
    size_t o_bz = o_Wz + RR, o_Wl = o_bz + R, o_bl = o_Wl + RR, o_Wc = o_bl + R;
    size_t o_bc = o_Wc + (size_t)O * F, size = o_bc + O;
    double *parts = calloc(size * nthreads, sizeof(double)), *acc = malloc(size * sizeof(double));
#pragma omp parallel num_threads(nthreads)
    {
        double *g = parts + size * omp_get_thread_num();
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++) {
            const float *h = hm + (size_t)b * C, *a = am + (size_t)b * C;
            const float *s = saved + (size_t)b * d.S, *dlog = dlogits + (size_t)b * O;
            const float *ah = s, *aa = ah + C, *z = aa + C, *zl = z + R, *bz_ = zl + R;
            const float *bl_ = bz_ + R, *f = bl_ + R, *mk = f + F;
            float df[192], dz[64], dzl[64];
            for (int k = 0; k < F; k++) df[k] = 0.0f;
            for (int o = 0; o < O; o++) {
                g[o_bc + o] += dlog[o];
                for (int k = 0; k < F; k++) {
                    g[o_Wc + (size_t)o * F + k] += dlog[o] * f[k] * mk[k];
                    df[k] += Wc[(size_t)o * F + k] * dlog[o];
                }
            }
            for (int k = 0; k < F; k++) df[k] *= mk[k];
            float *dh = dhm + (size_t)b * C, *da = dam + (size_t)b * C;
            for (int j = 0; j < C; j++) dh[j] = da[j] = df[j];
            const float *drr = df + C;
            for (int r = 0; r < R; r++) {
                float v = 0.0f;
                for (int q = 0; q < R; q++) {
                    v += P[(size_t)r * R + q] * drr[q];
                    g[o_P + (size_t)r * R + q] += z[r] * drr[q];
                }
                dz[r] = v;
                dzl[r] = drr[r];
            }
            float dg = df[C + R], gz = 0.0f, gl = 0.0f;
            for (int r = 0; r < R; r++) gz += bz_[r] * z[r], gl += bl_[r] * zl[r];
            collapse_back(R, z, bz_, gz, dg, Wz, dz, g + o_Wz, g + o_bz);
            collapse_back(R, zl, bl_, gl, dg, Wl, dzl, g + o_Wl, g + o_bl);
            fuse_back(&d, h, ah, z, dz, Wh, dh, g, g + o_bh);
            fuse_back(&d, a, aa, zl, dzl, Wa, da, g + o_Wa, g + o_ba);
        }
    }
    ordered_sum(parts, nthreads, size, 0, size, acc);
    for (size_t i = 0; i < size; i++) grads[i] = (float)acc[i];
    free(parts);
    free(acc);
}
