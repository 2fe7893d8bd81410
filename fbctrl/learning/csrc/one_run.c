/* One adaptation run on a CPU, compiled: the inner loops of fbctrl.learning.rules that run once
 * per step (RFLO's whole step) or once per past step (exact online BPTT's backward sweep), where
 * a Python loop over a few hundred numbers per call is bound by the cost of each call rather than
 * by the arithmetic. Same arithmetic, in the same order of operations per element, as the NumPy
 * code paths they replace (RFLO.recurrent_input_one / apply_step_one with adapt._steps_one_run,
 * OnlineBPTT._sweep_one_np); only the order of the sums inside a product differs (float rounding).
 *
 * Built at first use by fbctrl.learning.ckernels (cc -O3 -march=native -fopenmp-simd), loaded
 * with ctypes; every function exists for float (suffix _f32) and double (_f64). Arrays are
 * C-contiguous, row-major; the Python side checks shapes, dtypes and contiguity. */

#include <math.h>
#include <stddef.h>
#include <string.h>

#define DEFINE_KERNELS(real, SFX)                                                                  \
                                                                                                   \
/* y[i] = sum_c A[i, c] x[c], i < m (rows of A with stride lda): four rows at a time */            \
static void gemv_rows_##SFX(const real *A, ptrdiff_t lda, const real *restrict x,                \
                            real *restrict y, int m, int n)                                        \
{                                                                                                  \
    int i = 0;                                                                                     \
    for (; i + 4 <= m; i += 4) {                                                                   \
        const real *a0 = A + (ptrdiff_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;   \
        real s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                       \
        _Pragma("omp simd reduction(+:s0,s1,s2,s3)")                                               \
        for (int c = 0; c < n; c++) {                                                              \
            real xc = x[c];                                                                        \
            s0 += a0[c] * xc; s1 += a1[c] * xc; s2 += a2[c] * xc; s3 += a3[c] * xc;                \
        }                                                                                          \
        y[i] = s0; y[i + 1] = s1; y[i + 2] = s2; y[i + 3] = s3;                                    \
    }                                                                                              \
    for (; i < m; i++) {                                                                           \
        const real *a0 = A + (ptrdiff_t)i * lda;                                                   \
        real s0 = 0;                                                                               \
        _Pragma("omp simd reduction(+:s0)")                                                        \
        for (int c = 0; c < n; c++) s0 += a0[c] * x[c];                                            \
        y[i] = s0;                                                                                 \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* y[c] = sum_r x[r] A[r, c], r < m (a row vector times A): eight rows per pass over y */         \
static void gemv_cols_##SFX(const real *A, ptrdiff_t lda, const real *restrict x,                \
                            real *restrict y, int m, int n)                                        \
{                                                                                                  \
    int r = 0;                                                                                     \
    for (int c = 0; c < n; c++) y[c] = 0;                                                          \
    for (; r + 8 <= m; r += 8) {                                                                   \
        const real *a0 = A + (ptrdiff_t)r * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;   \
        const real *a4 = a3 + lda, *a5 = a4 + lda, *a6 = a5 + lda, *a7 = a6 + lda;                 \
        real x0 = x[r], x1 = x[r + 1], x2 = x[r + 2], x3 = x[r + 3];                               \
        real x4 = x[r + 4], x5 = x[r + 5], x6 = x[r + 6], x7 = x[r + 7];                           \
        for (int c = 0; c < n; c++)                                                                \
            y[c] += x0 * a0[c] + x1 * a1[c] + x2 * a2[c] + x3 * a3[c]                              \
                  + x4 * a4[c] + x5 * a5[c] + x6 * a6[c] + x7 * a7[c];                             \
    }                                                                                              \
    for (; r < m; r++) {                                                                           \
        const real *a0 = A + (ptrdiff_t)r * lda;                                                   \
        real x0 = x[r];                                                                            \
        for (int c = 0; c < n; c++) y[c] += x0 * a0[c];                                            \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* One step down the scaled adjoint sweep: h_j = aDd_{j+1} * u + h_{j+1} (row j of HX) */        \
static void sweep_down_##SFX(int n, ptrdiff_t ldh, real *HX, int j, const real *aDd, const real *u) \
{                                                                                                  \
    real *hj = HX + (ptrdiff_t)j * ldh + 1;                                                        \
    const real *hn = hj + ldh, *a = aDd + (ptrdiff_t)(j + 1) * n;                                  \
    for (int c = 0; c < n; c++) hj[c] = a[c] * u[c] + hn[c];                                       \
}                                                                                                  \
                                                                                                   \
/* Exact online BPTT, history convention: the scaled adjoint sweep of OnlineBPTT._sweep_one_np    \
 * for past steps j = k-1 .. 0, on the rule's buffers. HX [T, ldh]: row j = [s_j, h_j (n),        \
 * tail (j)]; Wcat [1+n+T, n] = [q; W_start; r_0 .. r_{T-1}]; S: the snapshots C_j [j+1, n] packed \
 * one after another (C_j at row j (j+1) / 2); aDd [T+1, n] = alpha D / (1 - alpha); u [n] work.   \
 * Rows s_j and h_k are set by the caller. Per past step:                                          \
 *     tail_{j+1} = C_j h_{j+1};   u = [s_{j+1}, h_{j+1}, tail_{j+1}] [q; W_start; R_{0..j}];      \
 *     h_j = aDd_{j+1} * u + h_{j+1}                                                               */ \
void bptt_sweep_history_##SFX(int k, int n, ptrdiff_t ldh, real *HX, const real *Wcat,            \
                               const real *S, const real *aDd, real *u)                            \
{                                                                                                  \
    for (int j = k - 1; j >= 0; j--) {                                                             \
        real *row = HX + (ptrdiff_t)(j + 1) * ldh;                                                 \
        const real *hn = row + 1;                                                                  \
        gemv_rows_##SFX(S + (ptrdiff_t)j * (j + 1) / 2 * n, n, hn, row + 1 + n, j + 1, n);         \
        gemv_cols_##SFX(Wcat, n, row, u, n + j + 2, n);                                            \
        sweep_down_##SFX(n, ldh, HX, j, aDd, u);                                                   \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* The same with the current weights W [n, n] at every past step:                                 \
 *     u = h_{j+1} W + s_{j+1} q;   h_j = aDd_{j+1} * u + h_{j+1}                                  */ \
void bptt_sweep_current_##SFX(int k, int n, ptrdiff_t ldh, real *HX, const real *W,               \
                               const real *q, const real *aDd, real *u)                            \
{                                                                                                  \
    for (int j = k - 1; j >= 0; j--) {                                                             \
        const real *row = HX + (ptrdiff_t)(j + 1) * ldh;                                           \
        const real s = row[0];                                                                     \
        gemv_cols_##SFX(W, n, row + 1, u, n, n);                                                   \
        for (int c = 0; c < n; c++) u[c] += s * q[c];                                              \
        sweep_down_##SFX(n, ldh, HX, j, aDd, u);                                                   \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* The forward step k of one run (adapt._steps): h = W_in s_k + b + W(k) r_k (+ W_f E[k-d]),     \
 * x_{k+1} = x_k + alpha (h - x_k), r_{k+1} = relu(x_{k+1}), aD_{k+1} = alpha relu'(x_{k+1}),      \
 * E_{k+1} = E_k + dt (vref_k - b_out - W_out r_{k+1}) (err_k = dt (vref_k - b_out)). On entry h   \
 * holds W(k) r_k; on return h holds alpha (h' - x_k) as the NumPy loop leaves it.                */ \
static void forward_rest_##SFX(int n, int k, int d, real alpha, real dt, real *X, real *Rh, real *aD, \
                               real *E, const real *drive, const real *err, const real *W_out,     \
                               const real *W_f, real *h)                                           \
{                                                                                                  \
    const real *xk = X + (ptrdiff_t)k * n, *dk = drive + (ptrdiff_t)k * n;                         \
    for (int c = 0; c < n; c++) h[c] += dk[c];                                                     \
    if (W_f != NULL && k - d >= 0) {                                                               \
        const real e0 = E[2 * (ptrdiff_t)(k - d)], e1 = E[2 * (ptrdiff_t)(k - d) + 1];             \
        for (int c = 0; c < n; c++) h[c] += e0 * W_f[c] + e1 * W_f[n + c];                         \
    }                                                                                              \
    real *xn = X + (ptrdiff_t)(k + 1) * n, *rn = Rh + (ptrdiff_t)(k + 1) * n;                      \
    real *an = aD + (ptrdiff_t)(k + 1) * n;                                                        \
    for (int c = 0; c < n; c++) {                                                                  \
        real hc = (h[c] - xk[c]) * alpha;                                                          \
        real x = xk[c] + hc;                                                                       \
        h[c] = hc;                                                                                 \
        xn[c] = x;                                                                                 \
        real r = (x > 0 || x != x) ? x : (real)0;                /* relu, NaN kept */              \
        rn[c] = r;                                                                                 \
        an[c] = (r > 0) ? alpha : (r != r ? r : (real)0);        /* alpha relu'(x), NaN kept */    \
    }                                                                                              \
    real o0 = 0, o1 = 0;                                                                           \
    _Pragma("omp simd reduction(+:o0,o1)")                                                         \
    for (int c = 0; c < n; c++) { o0 += W_out[c] * rn[c]; o1 += W_out[n + c] * rn[c]; }            \
    o0 *= dt; o1 *= dt;                                                                            \
    real *Ek = E + 2 * (ptrdiff_t)k, *En = Ek + 2;                                                 \
    En[0] = (Ek[0] + err[2 * (ptrdiff_t)k]) - o0;                                                  \
    En[1] = (Ek[1] + err[2 * (ptrdiff_t)k + 1]) - o1;                                              \
}                                                                                                  \
                                                                                                   \
/* Exact online BPTT (history convention), one run, step k of a trial (adapt._steps with          \
 * OnlineBPTT.recurrent_input, gradient_rows and _record): the forward step with                   \
 * W(k) = W_start + C_{k-1}^T R_{0..k-1} (Wcat rows 1..n hold W_start), the Gram row r_k . r_i     \
 * into gram [T, T], then the scaled adjoint sweep of step k's loss (seed q = -dt W_out^T E_{k+1}  \
 * into Wcat row 0, r_{k-1} into Wcat row 1+n+k-1, scales s_j = pows[k-j] into HX[j, 0]), and the \
 * update recorded in the factors: C_j += h_j * (dpow[k-j] * (-lr)), snapshot C_k = C_{0..k} into  \
 * S. |dW_k| needs the rows' Gram matrix (bptt_norm, after a BLAS product).                        */ \
void bptt_trial_step_##SFX(int k, int n, int T, int d, double alpha_, double dt_, double lr_,      \
                           double decay_, real *X, real *Rh, real *aD, real *E, const real *drive, \
                           const real *err, const real *W_out, const real *W_f, real *Wcat,       \
                           real *Cf, real *S, real *HX, real *aDd, real *gram, const real *pows,   \
                           const real *dpow, real *g, real *h, real *u)                            \
{                                                                                                  \
    const real alpha = (real)alpha_, dt = (real)dt_;                                               \
    const ptrdiff_t ldh = 1 + n + T;                                                               \
    const real *W_start = Wcat + n, *rk = Rh + (ptrdiff_t)k * n;                                   \
    gemv_rows_##SFX(W_start, n, rk, h, n, n);                    /* W_start r_k */                 \
    gemv_rows_##SFX(Rh, n, rk, g, k + 1, n);                     /* r_k . r_i, i <= k */           \
    for (int i = 0; i <= k; i++) { gram[(ptrdiff_t)k * T + i] = g[i]; gram[(ptrdiff_t)i * T + k] = g[i]; } \
    if (k >= 1) {                                                /* + (r_k R^T) C_{k-1} */         \
        gemv_cols_##SFX(Cf, n, g, u, k, n);                                                        \
        for (int c = 0; c < n; c++) h[c] += u[c];                                                  \
    }                                                                                              \
    forward_rest_##SFX(n, k, d, alpha, dt, X, Rh, aD, E, drive, err, W_out, W_f, h);               \
    /* the adjoint sweep of step k's loss */                                                       \
    const real rdec = (real)(1.0 / decay_);                                                        \
    if (k >= 1) {                                                /* aDd_k = alpha D_k / (1-alpha) */ \
        real *ad = aDd + (ptrdiff_t)k * n; const real *a = aD + (ptrdiff_t)k * n;                  \
        for (int c = 0; c < n; c++) ad[c] = a[c] * rdec;                                           \
        real *dst = Wcat + (ptrdiff_t)(n + k) * n;               /* row 1+n+(k-1): r_{k-1} */      \
        memcpy(dst, Rh + (ptrdiff_t)(k - 1) * n, sizeof(real) * (size_t)n);                        \
    }                                                                                              \
    for (int j = 0; j <= k; j++) HX[(ptrdiff_t)j * ldh] = pows[k - j];                             \
    const real c0 = E[2 * (ptrdiff_t)(k + 1)] * (-dt), c1 = E[2 * (ptrdiff_t)(k + 1) + 1] * (-dt); \
    const real *an = aD + (ptrdiff_t)(k + 1) * n;                                                  \
    real *hk = HX + (ptrdiff_t)k * ldh + 1;                                                        \
    for (int c = 0; c < n; c++) {                                                                  \
        real qc = c0 * W_out[c] + c1 * W_out[n + c];                                               \
        Wcat[c] = qc;                                                                              \
        hk[c] = an[c] * qc;                                                                        \
    }                                                                                              \
    bptt_sweep_history_##SFX(k, n, ldh, HX, Wcat, S, aDd, u);                                      \
    /* record: C_j += h_j * ws_j, ws_j = decay^(k-j) (-lr); snapshot C_k */                        \
    const real mlr = (real)(-lr_);                                                                 \
    real *snap = S + (ptrdiff_t)k * (k + 1) / 2 * n;                                               \
    for (int j = 0; j <= k; j++) {                                                                 \
        const real ws = dpow[k - j] * mlr;                                                         \
        const real *hj = HX + (ptrdiff_t)j * ldh + 1;                                              \
        real *Cj = Cf + (ptrdiff_t)j * n, *Sj = snap + (ptrdiff_t)j * n;                           \
        for (int c = 0; c < n; c++) { real v = Cj[c] + hj[c] * ws; Cj[c] = v; Sj[c] = v; }         \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* |dW_k| of online BPTT from Gram matrices: |G^T R|_F^2 = sum_ij (h_i . h_j) ws_i ws_j (r_i . r_j) \
 * over i, j <= k, with HH [k+1, k+1] = (h_i . h_j) (a BLAS product) and gram [T, T].            */ \
double bptt_norm_##SFX(int k, int T, const real *HH, const real *gram, const real *dpow, double lr_) \
{                                                                                                  \
    const real mlr = (real)(-lr_);                                                                 \
    real sq = 0;                                                                                   \
    for (int i = 0; i <= k; i++) {                                                                 \
        const real wi = dpow[k - i] * mlr;                                                         \
        const real *hh = HH + (ptrdiff_t)i * (k + 1), *gr = gram + (ptrdiff_t)i * T;               \
        real row = 0;                                                                              \
        _Pragma("omp simd reduction(+:row)")                                                       \
        for (int j = 0; j <= k; j++) row += hh[j] * (dpow[k - j] * mlr) * gr[j];                   \
        sq += row * wi;                                                                            \
    }                                                                                              \
    double v = (double)sq;                                                                         \
    return sqrt(v < 0.0 ? 0.0 : v);                                                                \
}                                                                                                  \
                                                                                                   \
/* RFLO, one run, the T steps of a trial (adapt._steps_one_run with RFLO.recurrent_input_one and  \
 * RFLO.apply_step_one): the forward step with W(k) = W_start + C_{k-1}^T R_{0..k-1}, the error,  \
 * and the update recorded in the factors. CA [T, 2n] = [C | Ahat]; W_f [2, n] or NULL (controller \
 * off); work: g [T+1], gCA [2n], h [n], s [n], t1 [n]. Returns sum_k |dW_k| (the path).          */ \
double rflo_trial_##SFX(int n, int T, int d, double alpha_, double dt_, double lr_, double decay_, \
                        real *X, real *Rh, real *aD, real *E, const real *drive, const real *err,   \
                        const real *W_out, const real *W_f, const real *W_start, real *CA,         \
                        real *rho, const real *BT, const real *up, const real *down,               \
                        real *g, real *gCA, real *h, real *s, real *t1)                            \
{                                                                                                  \
    const real alpha = (real)alpha_, dt = (real)dt_, lr = (real)lr_;                               \
    const real dd = (real)(decay_ * decay_);                                                       \
    const ptrdiff_t n2 = 2 * (ptrdiff_t)n;                                                         \
    double path = 0.0;                                                                             \
    for (int k = 0; k < T; k++) {                                                                  \
        const real *rk = Rh + (ptrdiff_t)k * n;                                                    \
        /* h = W(k) r_k = W_start r_k + (r_k . r_i)_{i<k} C_{k-1}, then the rest of the step */    \
        gemv_rows_##SFX(W_start, n, rk, h, n, n);                                                  \
        gemv_rows_##SFX(Rh, n, rk, g, k + 1, n);                 /* r_k . r_i, i <= k */           \
        real rr = g[k];                                                                            \
        if (k >= 1) {                                                                              \
            gemv_cols_##SFX(CA, n2, g, gCA, k, 2 * n);           /* [g C_{k-1} | g Ahat] */        \
            for (int c = 0; c < n; c++) h[c] += gCA[c];                                            \
        }                                                                                          \
        forward_rest_##SFX(n, k, d, alpha, dt, X, Rh, aD, E, drive, err, W_out, W_f, h);           \
        const real *an = aD + (ptrdiff_t)(k + 1) * n, *En = E + 2 * (ptrdiff_t)(k + 1);            \
        /* the update in the factors (RFLO.apply_step_one) */                                      \
        real *Ahat_k = CA + (ptrdiff_t)k * n2 + n;                                                 \
        const real upk = up[k], downk = down[k];                                                   \
        for (int c = 0; c < n; c++) Ahat_k[c] = an[c] * upk;                                       \
        const real E0 = En[0], E1 = En[1];                                                         \
        for (int c = 0; c < n; c++) {                                                              \
            real sc = (E0 * BT[c] + E1 * BT[n + c]) * lr;          /* s_k = lr B E[k+1] */         \
            s[c] = sc;                                                                             \
            t1[c] = sc * downk;                                                                    \
        }                                                                                          \
        for (int i = 0; i <= k; i++) {                           /* C_k = C_{k-1} + A_k * s_k */   \
            real *Ci = CA + (ptrdiff_t)i * n2;                                                     \
            const real *Ai = Ci + n;                                                               \
            for (int c = 0; c < n; c++) Ci[c] += Ai[c] * t1[c];                                    \
        }                                                                                          \
        const real coef = (k >= 1) ? (real)(2.0 * decay_ * (double)down[k - 1]) : (real)0;         \
        real sq = 0;                                                                               \
        for (int c = 0; c < n; c++) {                                                              \
            real rc = rho[c] * dd;                                                                 \
            if (k >= 1) rc += (an[c] * gCA[n + c]) * coef;                                         \
            rc += (an[c] * an[c]) * rr;                                                            \
            rho[c] = rc;                                                                           \
        }                                                                                          \
        _Pragma("omp simd reduction(+:sq)")                                                        \
        for (int c = 0; c < n; c++) sq += (s[c] * s[c]) * rho[c];                                  \
        double v = (double)sq;                                                                     \
        path += sqrt(v < 0.0 ? 0.0 : v);                                                           \
    }                                                                                              \
    return path;                                                                                   \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)

/* The kernels' version: fbctrl.learning.ckernels checks it after loading. */
int fbctrl_one_run_version(void) { return 1; }
