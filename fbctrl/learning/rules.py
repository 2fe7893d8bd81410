"""Online learning rules for W_rec during adaptation (SPEC 4), for R runs in lockstep.

Every rule sees the same per-trial history, kept by the adaptation engine (``adapt.TrialState``),
run-major so that one run's trial is contiguous:

    X  [R, T+1, n]   pre-activations (X[:, 0] = x_0)        aD [R, T+1, n]  alpha * relu'(X)
    Rh [R, T+1, n]   rates relu(X)                          E  [R, T+1, 2]  integrated error
    Wh [R, T+1, n, n] the W_rec used at step j (online updates change it within a trial)

and answers, after step k, with the weight change ``dW`` [R, n, n] (``rule.step(state, k)``),
split as in vanilla-rtrl into "update the traces" and "read the gradient". What else a rule
offers the adaptation engine it says in attributes: ``defers_weights`` (W_rec kept in low-rank
form within a trial: ``recurrent_input``, ``apply_step``, ``materialize``), ``adds_in_place``
(``add_step``), ``aligns_by_products`` (alignment from ``products_with_rates``) and
``computes_exact_gradient`` (its updates are the exact online gradient).

Step loss (SPEC 4): ``l_k = mean_i E[k+1]_i^2``; the fed-back error is an *input*: no gradient
flows through the controller loop. Hence ``dl_k/dv_i = -dt E[k+1]`` for every i <= k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import ckernels
from .rates import PAPER_LR   # declared in fbctrl.learning.rates, re-exported here

__all__ = ["TrialState", "OnlineBPTT", "RFLO", "make_rule", "PAPER_LR", "RULES"]

RULES = ("bptt", "rflo")


@dataclass
class TrialState:
    """History of the current trial for R runs (see module docstring)."""

    X: torch.Tensor
    Rh: torch.Tensor
    aD: torch.Tensor
    E: torch.Tensor
    Wh: torch.Tensor | None
    W_out: torch.Tensor  # [R, 2, n]
    alpha: float
    dt: float


def _unbind_cache(state: TrialState):
    """Per-step views (made once per trial: no indexing of large tensors in the sweeps)."""
    cache = getattr(state, "_views", None)
    if cache is None:
        aD = state.aD.unbind(1)
        cache = {
            "aD": aD,
            "aDv": [x.unsqueeze(1) for x in aD],
            "W": state.Wh.unbind(1) if state.Wh is not None else None,
        }
        state._views = cache
    return cache


class OnlineBPTT:
    """Online BPTT: after step k, ``dW = -lr * dl_k/dW_rec``, the exact gradient of that step's
    loss back through the whole trial so far (adjoint recursion over the stored trajectory).

    What is held fixed when W_rec changes within the trial: the gradient is the derivative of
    ``l_k`` with respect to a common perturbation of W_rec at *every* past step, each past step
    keeping the weights it actually ran with (``Wh[:, j]``). In the backward sweep step j's
    Jacobian therefore uses ``W_rec(j)``, never the current weights: the trajectory and its
    Jacobians are those that really happened (the real-time recurrent learning convention), so
    old and new weights are never mixed. With c_k = -dt E[k+1], q = W_out^T c_k::

        ga_k = alpha D_{k+1} q
        ga_j = (1 - alpha) ga_{j+1} + alpha D_{j+1} (q + W_rec(j+1)^T ga_{j+1})     j = k-1 .. 0
        dl_k/dW_rec = sum_{j<=k} ga_j r_j^T

    The past weights are never stored as matrices. Within a trial every update online BPTT
    makes is a sum of outer products with the trial's own rates, dW_u = sum_{i<=u} g_i^(u) r_i^T
    (g^(u) = -lr ga^(u)), so the weights of step j+1 are

        W(j+1) = W_start + sum_{i<=j} c_i^(j) r_i^T,      c_i^(j) = sum_{u=i..j} g_i^(u)

    and h W(j+1) = h W_start + (h C_j^T) R_j: one product with the trial's starting weights (kept
    in cache) and two thin ones with the [j+1, n] factors, instead of reading a different n x n
    matrix at every past step (about 5 GB per trial at n = 400). The factors C_j are snapshots of
    a running sum, updated after each step (:meth:`step`, :meth:`apply_step`), kept one after
    another in one buffer. This is exact for the weights online BPTT itself produces; other
    rules' weight histories (the alignment analyses) are read from ``TrialState.Wh``. The
    adaptation engine uses the same form for the forward pass (:meth:`recurrent_input`) and
    forms the dense W_rec once per trial (:meth:`materialize`).

    ``weights="current"`` instead runs the sweep with the current W_rec at every past step, as
    the published code effectively does: the stored activity comes from the old weights and the
    Jacobians from the new ones, so the result is not the gradient of any function, but it needs
    no weight history and keeps one matrix in cache (faster on a CPU: the book's Performance chapter).
    Within one trial the two differ by the within-trial weight change (relative ~lr); the book
    measures that difference and says which one each result uses.
    """

    name = "bptt"
    numpy_sweep = True           # a one-run chunk on a CPU is swept by _sweep_one (False: the PyTorch sweep)
    adds_in_place = False        # no add_step: the engine adds the dW that :meth:`step` returns
    aligns_by_products = False   # its alignment reads the dense updates (:meth:`alignment`)

    def __init__(self, R: int, n: int, T: int, device=None, dtype=torch.float32, weights: str = "history"):
        if weights not in ("history", "current"):
            raise ValueError(f"weights must be 'history' or 'current', got {weights!r}")
        self.weights = weights
        self.needs_weight_history = False   # W(j) comes from the low-rank factors (class docstring)
        self.W_current = None               # the engine's weight tensor, updated in place
        self.W_start = None
        self.T = T
        self._C = torch.zeros(R, T, n, device=device, dtype=dtype)   # running sum of the rows c_i
        # snapshots C_j (rows 0..j after step j) packed one after another: C_j is rows
        # off[j]..off[j+1] of _S (allocated on the first trial that follows its own weights)
        self._off = [j * (j + 1) // 2 for j in range(T + 1)]
        self._S = None
        self._n_snaps = 0
        self._last = None                                              # (rows, weights) of the last gradient
        # adjoint rows ga_j, each led by its scale s_j and followed by room for j numbers: the
        # one-run sweep keeps [s_j, h_j, C_{j-1} h_j] contiguous so that ONE product with
        # [q; W_start; R_{0..j-1}] gives s_j q + h_j W(j) (:meth:`_sweep_one`)
        self._HX = torch.empty(R, T, 1 + n + T, device=device, dtype=dtype)
        self.GA = self._HX[..., 1: n + 1]
        # [q; W_start; r_0; ..; r_{T-1}] per run (history convention): row 0 the seed q of the
        # step whose gradient is swept, then W_start (n rows), then the trial's rates
        self._Wcat = None
        self._rates_in = 0
        self._GA_steps = self.GA.unbind(1)
        self._GAv = [g.unsqueeze(1) for g in self._GA_steps]
        self._tmp = torch.empty(R, 1, n, device=device, dtype=dtype)

    def begin_trial(self, state: TrialState) -> None:
        state._views = None
        self._n_snaps = 0
        self._last = None
        if self.weights == "history" and self.W_current is not None:
            R, T, n = self._C.shape
            if self._Wcat is None:
                self._Wcat = torch.empty(R, 1 + n + T, n, device=self._C.device, dtype=self._C.dtype)
                self.W_start = self._Wcat[:, 1: n + 1]
            self.W_start.copy_(self.W_current)
            self._rates_in = 0
            self._C.zero_()
            if self._S is None:
                R, T, n = self._C.shape
                self._S = torch.empty(R, self._off[T], n, device=self._C.device, dtype=self._C.dtype)

    def _snap(self, j: int) -> torch.Tensor:
        """C_j [R, j+1, n]: the factor rows of W(j+1) - W_start (class docstring)."""
        if j >= self._n_snaps:
            raise RuntimeError(f"online BPTT has no weight snapshot for step {j}: step() must be called "
                               f"for every step of the trial in order")
        return self._S[:, self._off[j]: self._off[j + 1]]

    def _chunks(self, state: TrialState) -> list["_Chunk"]:
        """The runs split for the backward sweep, with every per-step view made once per trial.

        On a CPU each run reads its own n x n matrix at every past step, so many runs in lockstep
        would stream all their matrices through the cache at every step; chunks of
        ``CPU_CHUNK`` runs keep theirs in cache, and a chunk of one run is swept by
        :meth:`_sweep_one` (on a GPU one batched sweep is best)."""
        v = _unbind_cache(state)
        key = ("chunks", id(self))                      # the state may be shared by two rules
        cached = v.get(key)
        if cached is not None:
            return cached
        R, T = self.GA.shape[0], self.GA.shape[1]
        step = R if (R <= self.CPU_CHUNK or self.GA.device.type != "cpu") else self.CPU_CHUNK
        cached = []
        for i in range(0, R, step):
            sl = slice(i, min(i + step, R))
            whole = step == R
            ch = _Chunk()
            ch.sl = sl
            ch.H = self._GAv if whole else [g.unsqueeze(1) for g in self.GA[sl].unbind(1)]
            ch.aD = v["aDv"] if whole else [x.unsqueeze(1) for x in state.aD[sl].unbind(1)]
            ch.tmp = self._tmp if whole else self._tmp[sl]
            if self.weights == "current":
                ch.kind, ch.W = "current", self.W_current[sl]
                if self._numpy_chunk(sl):                                    # one run: _sweep_one
                    ch.one = self._one_run_views(state, sl.start)
            elif self.W_start is not None:
                ch.kind, ch.W = "lowrank", self.W_start[sl]
                S = self._S[sl]
                ch.snaps = [S[:, self._off[j]: self._off[j + 1]] for j in range(T)]     # C_j
                Rr = state.Rh[sl]
                ch.rates = [Rr[:, :j1] for j1 in range(T + 1)]                          # R_{0..j1-1}
                ch.Ht = [g.mT for g in ch.H]                                            # [r, n, 1]
                if self._numpy_chunk(sl):                                    # one run: _sweep_one
                    ch.one = self._one_run_views(state, sl.start)
            else:   # no weights of its own to follow: read a given history
                if state.Wh is None:
                    raise RuntimeError("OnlineBPTT(weights='history') needs W_current set before "
                                       "begin_trial, or a weight history in the trial state")
                ch.kind, ch.Wh = "given", state.Wh[sl].unbind(1)
            cached.append(ch)
        v[key] = cached
        return cached

    def _hW(self, ch: "_Chunk", h: torch.Tensor, j1: int, base: torch.Tensor, alpha: float,
            out: torch.Tensor) -> torch.Tensor:
        """``out = base + alpha * h W(j1)`` for row vectors h [r, 1, n] of chunk ``ch``, with W(j1)
        the weights of step j1 under this rule's convention (history: low-rank factors; current:
        W_current)."""
        if ch.kind == "current":
            return torch.baddbmm(base, h, ch.W, alpha=alpha, out=out)
        if ch.kind == "given":
            return torch.baddbmm(base, h, ch.Wh[j1], alpha=alpha, out=out)
        torch.baddbmm(base, h, ch.W, alpha=alpha, out=out)
        if j1 >= 1:
            if j1 - 1 >= self._n_snaps:
                self._snap(j1 - 1)                                   # raises the clear error
            out.baddbmm_(torch.bmm(ch.snaps[j1 - 1], h.mT).mT, ch.rates[j1], alpha=alpha)
        return out

    def adjoint(self, state: TrialState, k: int) -> torch.Tensor:
        """ga_j for j = 0..k (into self.GA[:, :k+1]) for the loss of step k; returns GA[:, :k+1]."""
        a = state.alpha
        c = state.E[:, k + 1: k + 2].mul(-state.dt)             # [R, 1, 2]
        q = torch.bmm(c, state.W_out)                           # [R, 1, n]
        for ch in self._chunks(state):
            H, aD, qc, tmp = ch.H, ch.aD, q[ch.sl], ch.tmp
            torch.mul(aD[k + 1], qc, out=H[k])
            for j in range(k - 1, -1, -1):
                self._hW(ch, H[j + 1], j + 1, qc, 1.0, tmp)     # q + W(j+1)^T ga_{j+1}
                torch.mul(H[j + 1], 1.0 - a, out=H[j])
                H[j].addcmul_(aD[j + 1], tmp)
        return self.GA[:, : k + 1]

    def all_step_adjoints(self, state: TrialState, T: int) -> torch.Tensor:
        """Adjoints ga_j^(k) of every step loss k = 0..T-1 of a finished trial, [R, k, n, j], in
        ONE backward sweep: the adjoints of all T step losses are propagated together as the rows
        of a [T, n] matrix (row k active for j <= k), so each past weight matrix is read once per
        trial instead of once per step. Same weights convention as :meth:`adjoint`.
        dl_k/dW_rec = GA[:, k] @ r_{0..T-1} (see :meth:`all_step_gradients`). The result is a
        work buffer that the next call overwrites."""
        v = _unbind_cache(state)
        aD = v["aD"]
        a = state.alpha
        R, n = state.Rh.shape[0], state.Rh.shape[-1]
        c = state.E[:, 1: T + 1].mul(-state.dt)                 # [R, T, 2]
        Q = torch.bmm(c, state.W_out)                           # [R, T, n]: q_k per row
        GA_all = self._buffer("_GA_all", (R, T, n, T))          # [R, k, n, j]
        ga = torch.zeros(R, T, n, dtype=Q.dtype, device=Q.device)
        for j in range(T - 1, -1, -1):
            sub = ga[:, j:]                                     # rows k >= j (others stay zero)
            if j + 1 < T:
                Wn = v["W"][j + 1] if self.weights == "history" else self.W_current
                tmp = torch.baddbmm(Q[:, j:], sub, Wn)
            else:
                tmp = Q[:, j:].clone()
            sub.mul_(1.0 - a).addcmul_(aD[j + 1].unsqueeze(1), tmp)
            GA_all[..., j] = ga
        return GA_all

    def all_step_gradients(self, state: TrialState, T: int) -> torch.Tensor:
        """dl_k/dW_rec for every step k = 0..T-1 of a finished trial, [R, T, n, n]."""
        GA_all = self.all_step_adjoints(state, T)
        R, n = GA_all.shape[0], GA_all.shape[2]
        G = torch.bmm(GA_all.reshape(R, T * n, T), state.Rh[:, :T])  # one [T*n, T] @ [T, n] product
        return G.reshape(R, T, n, n)

    def alignment(self, state: TrialState, T: int, dW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos(dW_k, -dl_k/dW_rec) for every step [R, T], and cos(sum_k dW_k, -sum_k dl_k/dW_rec)
        [R], for the weight changes dW [R, T, n, n] some rule made during the finished trial.
        The gradients are never formed: with G_k = GA_k r^T (GA_k [n, T], r [T, n]),
        <dW_k, G_k> = <dW_k r^T, GA_k> and |G_k|^2 = <GA_k^T GA_k, r r^T>."""
        R, K, n = dW.shape[0], dW.shape[1], dW.shape[2]
        Rt = state.Rh[:, :T]                                    # [R, J, n]
        M = torch.bmm(dW.reshape(R, K * n, n), Rt.mT).reshape(R, K, n, T)   # dW_k r_j
        dnorm = torch.linalg.vector_norm(dW, dim=(-1, -2))
        return self.alignment_from_products(state, T, M, dnorm, dW.sum(1))

    def alignment_from_products(self, state: TrialState, T: int, M: torch.Tensor, dnorm: torch.Tensor,
                                dsum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`alignment` from M [R, k, n, j] = dW_k r_j, |dW_k| [R, T] and sum_k dW_k [R, n, n]
        (a rule that knows its updates' structure supplies these without forming every dW_k)."""
        GA = self.all_step_adjoints(state, T)                   # [R, K, n, J]
        R, K, n, J = GA.shape
        Rt = state.Rh[:, :T]                                    # [R, J, n]
        dots = torch.bmm(M.reshape(R * K, 1, n * J), GA.reshape(R * K, n * J, 1)).reshape(R, K)
        gram = torch.matmul(GA.mT, GA)                          # [R, K, J, J]
        rr = torch.bmm(Rt, Rt.mT).unsqueeze(1)                  # [R, 1, J, J]
        gnorm = (gram * rr).sum((-1, -2)).clamp_min(0).sqrt()
        local = -dots / (dnorm * gnorm).clamp_min(1e-30)
        Gsum = torch.bmm(GA.sum(1), Rt)                         # [R, n, n]
        glob = -(dsum * Gsum).sum((-1, -2)) / (torch.linalg.vector_norm(dsum, dim=(-1, -2))
                                              * torch.linalg.vector_norm(Gsum, dim=(-1, -2))).clamp_min(1e-30)
        return local, glob

    def gradient_rows(self, state: TrialState, k: int) -> None:
        """The adjoints of step k's loss, ga_j = rows_j * w_j (j <= k), left in ``self._last``.

        Fast path (two fused products per past step): with s_j = (1 - alpha)^-(k-j) the scaled
        adjoints h_j = s_j ga_j obey h_k = ga_k and
        ``h_j = h_{j+1} + s_j alpha D_{j+1} (q + h_{j+1} W(j+1) / s_{j+1})``, and
        ``dl_k/dW_rec = sum_j h_j (r_j / s_j)^T``. Used while s_0 stays far from float overflow."""
        a = state.alpha
        if k * -math.log1p(-a) > 60.0:
            self.adjoint(state, k)
            self._last = (self.GA[:, : k + 1], None)
            return
        c = state.E[:, k + 1: k + 2].mul(-state.dt)
        q = torch.bmm(c, state.W_out)
        decay = 1.0 - a
        if self.weights == "history" and self.W_start is not None and k >= 1:
            if k - 1 >= self._n_snaps:
                self._snap(k - 1)                                   # raises the clear error
            if self._rates_in < k:                                  # r_0..r_{k-1} below W_start
                n = self.GA.shape[-1]
                self._Wcat[:, 1 + n + self._rates_in: 1 + n + k].copy_(state.Rh[:, self._rates_in: k])
                self._rates_in = k
        for ch in self._chunks(state):
            if ch.one is not None:                              # one run on a CPU
                self._sweep_one(ch.one, q[ch.sl.start, 0], k, decay)
                continue
            H, aD, qc, tmp, W = ch.H, ch.aD, q[ch.sl], ch.tmp, ch.W if ch.kind != "given" else None
            torch.mul(aD[k + 1], qc, out=H[k])
            inv_next = 1.0                                      # 1 / s_{j+1}
            # the loops are written out per kind: this is the innermost loop of online BPTT
            if ch.kind == "lowrank":
                snaps, rates, Ht = ch.snaps, ch.rates, ch.Ht
                for j in range(k - 1, -1, -1):
                    # q + h_{j+1} W(j+1) / s_{j+1},  W(j+1) = W_start + C_j^T R_{0..j}
                    torch.baddbmm(qc, H[j + 1], W, alpha=inv_next, out=tmp)
                    # (C_j h^T reads the snapshot row by row: faster than h C_j^T from memory)
                    # (a fresh result: bmm into a strided slice of a buffer falls back to a loop)
                    tmp.baddbmm_(torch.bmm(snaps[j], Ht[j + 1]).mT, rates[j + 1], alpha=inv_next)
                    inv_j = inv_next * decay
                    torch.addcmul(H[j + 1], aD[j + 1], tmp, value=1.0 / inv_j, out=H[j])
                    inv_next = inv_j
            elif ch.kind == "current":
                for j in range(k - 1, -1, -1):
                    torch.baddbmm(qc, H[j + 1], W, alpha=inv_next, out=tmp)
                    inv_j = inv_next * decay
                    torch.addcmul(H[j + 1], aD[j + 1], tmp, value=1.0 / inv_j, out=H[j])
                    inv_next = inv_j
            else:
                for j in range(k - 1, -1, -1):
                    self._hW(ch, H[j + 1], j + 1, qc, inv_next, tmp)
                    inv_j = inv_next * decay
                    torch.addcmul(H[j + 1], aD[j + 1], tmp, value=1.0 / inv_j, out=H[j])
                    inv_next = inv_j
        w = self._decay_pows(k, decay, state.Rh.dtype, state.Rh.device)   # 1/s_j = decay^(k-j)
        self._last = (self.GA[:, : k + 1], w)                  # ga_j = h_j / s_j

    # ---- one run on a CPU, the whole step compiled (adapt._bptt_steps_compiled) ----------------

    one_run_numpy = False

    @property
    def one_run_compiled(self) -> bool:
        """Whether one run on a CPU can take the compiled trial step (history convention, the
        compiled kernels available: ``ckernels``)."""
        return self.weights == "history" and self.numpy_sweep and ckernels.available(self.GA.dtype)

    def one_run_ok(self, alpha: float) -> bool:
        """Whether the sweep's scales s_j = (1 - alpha)^-(k-j) stay far from float overflow for
        this trial length (else the engine runs the PyTorch step, whose sweep falls back to
        :meth:`adjoint`)."""
        return (self.GA.shape[1] - 1) * -math.log1p(-alpha) < 60.0

    def one_run_compiled_views(self, state: TrialState) -> dict:
        """Run 0's buffers as NumPy views (same memory) for the compiled step, plus its work
        buffers; made once (every buffer lives as long as the rule). Needs W_current set and a
        first :meth:`begin_trial`."""
        if self._Wcat is None or self._S is None:
            raise RuntimeError("OnlineBPTT.one_run_compiled_views needs W_current set and begin_trial called")
        T, n = self.GA.shape[1], self.GA.shape[2]
        HX = self._HX[0].numpy()
        dt = HX.dtype
        decay = 1.0 - state.alpha
        e = np.arange(T, dtype=np.float64)
        gram = self._gram_buf(state)[0].numpy()
        dpow = (decay ** e).astype(dt)                               # (1 - alpha)^m, as _decay_pows
        v = dict(Wcat=self._Wcat[0].numpy(), C=self._C[0].numpy(), S=self._S[0].numpy(), HX=HX,
                 aDd=np.zeros((T + 1, n), dtype=dt), gram=gram, pows=self._scale_pows(decay, dt).copy(),
                 dpow=dpow, g=np.empty(T + 1, dtype=dt), u=np.empty(n, dtype=dt),
                 rows=HX[:, 1: n + 1], HH=np.empty(T * T, dtype=dt))
        v["gram_p"], v["dpow_p"] = gram.ctypes.data, dpow.ctypes.data
        return v

    def finish_compiled_trial(self, T: int) -> None:
        """After the compiled steps of a trial: every snapshot and rate is in place."""
        self._n_snaps = T
        self._rates_in = T - 1
        self._last = None

    def _numpy_chunk(self, sl: slice) -> bool:
        return self.numpy_sweep and sl.stop - sl.start == 1 and self.GA.device.type == "cpu"

    def _one_run_views(self, state: TrialState, i: int) -> dict:
        """NumPy views (same memory) of run i's buffers for :meth:`_sweep_one`, made once per trial."""
        T, n = self.GA.shape[1], self.GA.shape[2]
        HX = self._HX[i].numpy()
        v = dict(h=[HX[j, 1: n + 1] for j in range(T)], s=HX[:, 0], aD=state.aD[i].numpy(),
                 aDd=np.empty((T + 1, n), dtype=HX.dtype), filled=[0], u=np.empty(n, dtype=HX.dtype))
        if self.weights == "current":
            v["W"] = self.W_current[i].numpy()
            v["sq"] = np.empty((T, n), dtype=HX.dtype)
        else:
            Wc, S1 = self._Wcat[i].numpy(), self._S[i].numpy()
            v.update(q=Wc[0], tail=[HX[j, 1 + n: 1 + n + j] for j in range(T)],
                     hext=[HX[j, : 1 + n + j] for j in range(T)], Wcat=[Wc[: 1 + n + j] for j in range(T)],
                     snaps=[S1[self._off[j]: self._off[j + 1]] for j in range(T)])
        if ckernels.available(HX.dtype):               # the compiled sweep (ckernels), on the same buffers
            ptr = ckernels.ptr
            if self.weights == "current":
                v["c"] = (ckernels.function("bptt_sweep_current", HX.dtype), n, HX.shape[1], ptr(HX), ptr(v["W"]),
                          ptr(v["aDd"]), ptr(v["u"]))
            else:
                v["c"] = (ckernels.function("bptt_sweep_history", HX.dtype), n, HX.shape[1], ptr(HX), ptr(Wc),
                          ptr(S1), ptr(v["aDd"]), ptr(v["u"]))
        return v

    def _sweep_one(self, v: dict, q: torch.Tensor, k: int, decay: float) -> None:
        """The scaled adjoint sweep of :meth:`gradient_rows` for ONE run on a CPU, in NumPy on
        the rule's own buffers (1-D BLAS products and ufuncs cost about half of PyTorch's per-call
        overhead, and this loop runs T(T+1)/2 times per trial).

        With s_j = (1 - alpha)^-(k-j), h_j = s_j ga_j and u_j = s_{j+1} q + h_{j+1} W(j+1)::

            h_k = alpha D_{k+1} q,     h_j = h_{j+1} + (alpha D_{j+1} / (1 - alpha)) * u_j

        (the recursion of :meth:`adjoint` multiplied by s_j). History convention: ``C_j h_{j+1}``
        into the row's tail, then u_j as ONE product of the row [s_{j+1}, h_{j+1}, C_j h_{j+1}]
        with [q; W_start; R_{0..j}]; current convention: u_j = h_{j+1} W_current + s_{j+1} q.
        Four calls per past step; the scales s_j lead the rows (``self._last`` reads 1/s_j)."""
        with np.errstate(all="ignore"):     # a diverging run overflows silently, as in PyTorch
            self._sweep_one_np(v, q, k, decay)

    def _sweep_one_np(self, v: dict, q: torch.Tensor, k: int, decay: float) -> None:
        h, aD, aDd, u, f = v["h"], v["aD"], v["aDd"], v["u"], v["filled"]
        if f[0] < k:                                        # alpha D_{j+1} / (1 - alpha), rows <= k
            np.multiply(aD[f[0] + 1: k + 1], 1.0 / decay, out=aDd[f[0] + 1: k + 1])
            f[0] = k
        pows = self._scale_pows(decay, h[0].dtype)
        v["s"][: k + 1] = pows[k::-1]                       # s_j, j = 0..k
        qn = q.numpy()
        np.multiply(aD[k + 1], qn, out=h[k])
        if "c" in v:                                        # compiled: the same loop (ckernels)
            if k >= 1:
                fn, n_, ldh, HXp, Wp, *rest = v["c"]
                if "W" in v:
                    fn(k, n_, ldh, HXp, Wp, ckernels.ptr(qn), *rest)
                else:
                    v["q"][:] = qn
                    fn(k, n_, ldh, HXp, Wp, *rest)
            return
        dot, mul, add = np.dot, np.multiply, np.add
        if "W" in v:                                        # current weights
            W, sq = v["W"], v["sq"]
            np.multiply.outer(pows[k::-1], qn, out=sq[: k + 1])
            for j in range(k - 1, -1, -1):
                dot(h[j + 1], W, out=u)
                add(u, sq[j + 1], out=u)
                mul(aDd[j + 1], u, out=h[j])
                add(h[j], h[j + 1], out=h[j])
            return
        v["q"][:] = qn
        tail, hext, Wcat, snaps = v["tail"], v["hext"], v["Wcat"], v["snaps"]
        for j in range(k - 1, -1, -1):
            dot(snaps[j], h[j + 1], out=tail[j + 1])        # C_j h_{j+1}
            dot(hext[j + 1], Wcat[j + 1], out=u)            # s_{j+1} q + h_{j+1} W(j+1)
            mul(aDd[j + 1], u, out=h[j])
            add(h[j], h[j + 1], out=h[j])

    def _scale_pows(self, decay: float, dtype) -> np.ndarray:
        """(1 - alpha)^-m for m = 0..T-1 (the sweep's scales s_j = (1 - alpha)^-(k-j))."""
        cache = getattr(self, "_spow_cache", None)
        if cache is None or cache[0] != (decay, dtype):
            e = np.arange(self.GA.shape[1], dtype=np.float64)
            cache = ((decay, dtype), (decay ** -e).astype(dtype))
            self._spow_cache = cache
        return cache[1]

    def gradient(self, state: TrialState, k: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """dl_k/dW_rec [R, n, n] = sum_j ga_j r_j^T (see :meth:`gradient_rows`), into ``out`` if
        given."""
        self.gradient_rows(state, k)
        rows, w = self._last
        Rk = state.Rh[:, : k + 1]
        if w is not None:
            Rk = torch.mul(Rk, w, out=self._buffer("_Rw", state.Rh.shape)[:, : k + 1])
        return torch.bmm(rows.mT, Rk, out=out)

    def _buffer(self, name: str, shape) -> torch.Tensor:
        """A work buffer kept between steps (a fresh multi-MB tensor per step costs page faults)."""
        buf = getattr(self, name, None)
        if buf is None or buf.shape != tuple(shape):
            buf = torch.empty(shape, dtype=self.GA.dtype, device=self.GA.device)
            setattr(self, name, buf)
        return buf

    # Runs per chunk of the backward sweep on a CPU (see :meth:`_chunks`): 1, each run by
    # :meth:`_sweep_one` (NumPy, measured faster per run than batched chunks of 4 in PyTorch:
    # ``python -m fbctrl bench adapt``, key bptt_c_batch32); > 1 runs the batched PyTorch sweep
    # that a GPU uses (the tests compare the two).
    CPU_CHUNK = 1

    def _decay_pows(self, k, decay, dtype, device):
        cache = getattr(self, "_pow_cache", None)
        if cache is None or cache[0] != (decay, dtype, device):
            T = self.GA.shape[1]
            e = torch.arange(T - 1, -1, -1, dtype=torch.float64)
            cache = ((decay, dtype, device), (decay ** e).to(dtype=dtype, device=device))
            self._pow_cache = cache
        T = self.GA.shape[1]
        return cache[1][T - 1 - k:].reshape(1, -1, 1)

    def step(self, state: TrialState, k: int, lr: torch.Tensor) -> torch.Tensor:
        """Weight change after step k: -lr * dl_k/dW_rec (lr [R]; 0 for a run that must not
        move), in a buffer that the next call overwrites. The caller adds it to W_current; with the history convention the low-rank
        factors of the weights record it too (class docstring)."""
        n = self.GA.shape[-1]
        dW = self.gradient(state, k, out=self._buffer("_dW", (self.GA.shape[0], n, n)))
        dW.mul_(-lr.reshape(-1, 1, 1))
        if self.weights == "history" and self.W_start is not None:
            self._record(k, lr)
        return dW

    def _record(self, k: int, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add step k's update rows g_i = -lr ga_i = rows_i * ws_i (i <= k) to the running factor
        sum C and snapshot it as C_k; returns (rows [R, k+1, n], ws [R, k+1, 1]). No temporary of
        the rows' size is made (a fresh multi-MB tensor per step costs page faults)."""
        rows, w = self._last                                      # ga_i = rows_i * w_i, i <= k
        scale = -lr.reshape(-1, 1, 1)
        ws = scale.expand(-1, k + 1, 1) if w is None else w * scale
        C = self._C[:, : k + 1]
        C.addcmul_(rows, ws)
        self._S[:, self._off[k]: self._off[k + 1]].copy_(C)
        self._n_snaps = k + 1
        return rows, ws

    # ---- weights kept in low-rank form during a trial (history convention) -----------------
    #
    # Within a trial W(k) = W_start + C_{k-1}^T R_{0..k-1} (class docstring), so the adaptation
    # engine need not add an n x n update to a dense W_rec at every step (an [n, k+1] x [k+1, n]
    # product per step, as costly as the backward sweep itself): the forward step reads W(k)
    # from the factors, |dW_k| comes from Gram matrices, and W_rec is formed once per trial.

    @property
    def defers_weights(self) -> bool:
        return self.weights == "history"

    @property
    def computes_exact_gradient(self) -> bool:
        """Its updates are the exact online gradient (the alignment needs no second OnlineBPTT)."""
        return self.weights == "history"

    def recurrent_input(self, state: TrialState, k: int, base: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = base + r_k W(k)^T`` [R, 1, n] with W(k) from the factors (rates r_0..r_k must be
        in ``state.Rh``). Also records the Gram row r_k . r_i (i <= k) for :meth:`apply_step`."""
        if self.W_start is None:
            raise RuntimeError("OnlineBPTT.recurrent_input needs W_current set before begin_trial")
        rk = state.Rh[:, k: k + 1]
        torch.baddbmm(base, rk, self.W_start.mT, out=out)
        gram = self._gram_buf(state)
        row = torch.bmm(rk, state.Rh[:, : k + 1].mT)                  # [R, 1, k+1]
        gram[:, k: k + 1, : k + 1] = row
        gram[:, : k + 1, k: k + 1] = row.mT
        if k >= 1:
            out.baddbmm_(row[:, :, :k], self._C[:, :k])               # (r_k R^T) C_{k-1}
        return out

    def _gram_buf(self, state: TrialState) -> torch.Tensor:
        g = getattr(self, "_gram", None)
        R, T = self._C.shape[0], self._C.shape[1]
        if g is None or g.shape != (R, T, T):
            g = self._gram = torch.zeros(R, T, T, dtype=self._C.dtype, device=self._C.device)
        return g

    def apply_step(self, state: TrialState, k: int, lr: torch.Tensor) -> torch.Tensor:
        """Record step k's update in the factors (no dense weights change); returns |dW_k| per
        run [R], from |G^T R|_F^2 = sum((G G^T) * (R R^T)) over the rows i <= k."""
        self.gradient_rows(state, k)
        rows, ws = self._record(k, lr)                            # G = rows * ws
        gram = self._gram[:, : k + 1, : k + 1]
        sq = (torch.bmm(rows, rows.mT).mul_(ws * ws.mT).mul_(gram)).sum((1, 2))
        return sq.clamp_min(0).sqrt()

    def materialize(self, state: TrialState, W: torch.Tensor) -> torch.Tensor:
        """``W = W_start + C^T R`` after the last step of a trial (in place); returns W."""
        T = self._n_snaps
        if T == 0:
            return W.copy_(self.W_start)
        return torch.baddbmm(self.W_start, self._C[:, :T].mT, state.Rh[:, :T], out=W)


class _Chunk:
    """A chunk of the runs of an :class:`OnlineBPTT` with the per-step views its sweep reads
    (``kind``: "current", "lowrank" (W_start and the factor snapshots) or "given" (a stored
    weight history))."""

    __slots__ = ("sl", "H", "aD", "tmp", "kind", "W", "snaps", "rates", "Ht", "Wh", "one")

    def __init__(self):
        self.one = None


class RFLO:
    """Random-feedback local online learning (Murray 2019), SPEC 4. After step k::

        P   <- (1 - alpha) P + alpha relu'(x_{k+1}) r_k^T        (n x n, zero at trial start)
        dW_ij = lr (B E[k+1])_i P_ij

    with B = M * W_fb (n x 2) for networks with feedback, B = W_out^T without.
    """

    name = "rflo"
    needs_weight_history = False
    defers_weights = True     # W_rec and the trace in low-rank form within a trial (below)
    adds_in_place = True      # :meth:`add_step` adds dW to W without forming it
    aligns_by_products = True  # alignment from :meth:`products_with_rates` (signals kept in ``record``)
    computes_exact_gradient = False

    def __init__(self, R: int, n: int, T: int, B: torch.Tensor, device=None, dtype=torch.float32):
        self.P = torch.zeros(R, n, n, device=device, dtype=dtype)
        self.B = B  # [R, n, 2]
        self.BT = B.mT.contiguous()               # [R, 2, n]: the signal as a row, E B^T
        self.record: torch.Tensor | None = None   # [R, T, n] scaled signals, when set (add_step)
        self.W_current = None                     # the engine's weight tensor (low-rank form)
        self.W_start = None
        self._CA = torch.zeros(R, T, 2 * n, device=device, dtype=dtype)
        self.C = self._CA[..., :n]                                    # weight factors C_k
        self.A = self._CA[..., n:]                                    # trace factors A_k
        self.rho = torch.zeros(R, 1, n, device=device, dtype=dtype)   # |P_k[a, :]|^2
        self._Pr = None
        self._rr = None
        self._steps = 0

    def begin_trial(self, state: TrialState) -> None:
        self.P.zero_()
        state._views = None
        self._steps = 0
        if self.W_current is not None:
            if self.W_start is None:
                self.W_start = self.W_current.clone()
            else:
                self.W_start.copy_(self.W_current)
            self.C.zero_()
            self.rho.zero_()

    def update_trace(self, state: TrialState, k: int) -> None:
        a = state.alpha
        self.P.mul_(1.0 - a).baddbmm_(state.aD[:, k + 1].unsqueeze(2), state.Rh[:, k: k + 1])

    def signal(self, state: TrialState, k: int) -> torch.Tensor:
        """B E[k+1] as a column [R, n, 1]."""
        return torch.bmm(self.B, state.E[:, k + 1].unsqueeze(2))

    def step(self, state: TrialState, k: int, lr: torch.Tensor) -> torch.Tensor:
        self.update_trace(state, k)
        s = self.signal(state, k).mul_(lr.reshape(-1, 1, 1))
        return self.P * s

    def add_step(self, state: TrialState, k: int, lr: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """``W += dW`` with dW as in :meth:`step`, without forming dW; returns |dW| per run [R]
        (|dW|^2 = sum_i (lr (B E)_i)^2 |P_i|^2 from the row norms of the trace). While
        ``self.record`` holds a buffer [R, T, n], the scaled signal of every step is kept there
        for :meth:`products_with_rates`."""
        self.update_trace(state, k)
        s = self.signal(state, k).mul_(lr.reshape(-1, 1, 1))                 # [R, n, 1]
        if self.record is not None:
            self.record[:, k] = s.squeeze(2)
        rows = torch.linalg.vector_norm(self.P, dim=2, keepdim=True)        # [R, n, 1]
        W.addcmul_(self.P, s)
        return torch.linalg.vector_norm(rows.mul_(s), dim=(1, 2))

    # ---- trace and weights in low-rank form within a trial ----------------------------------
    #
    # The trace is a sum of outer products with the trial's own rates, and so is every update:
    #     P_k = A_k^T R_{0..k},        A_k[i] = (1 - alpha)^(k-i) alpha relu'(x_{i+1})   (i <= k)
    #     dW_u = diag(s_u) P_u    =>   W(k+1) = W_start + C_k^T R_{0..k},
    #     C_k[i] = sum_{u=i..k} s_u * A_u[i],   i.e.  C_k = C_{k-1} + A_k * s_k,
    # with s_u = lr B E[u+1] the step's scaled signal. The forward step reads W(k) as
    # r_k W_start^T + (r_k . r_i)_i C_{k-1} (one n x n product, with W_start in cache, and thin
    # [k, n] ones), and |dW_k|^2 = sum_a s_a^2 rho_k[a] with the trace's squared row norms
    #     rho_k = (1-alpha)^2 rho_{k-1} + 2 (1-alpha) aD_{k+1} * (P_{k-1} r_k) + aD_{k+1}^2 |r_k|^2,
    #     P_{k-1} r_k = (r_k . r_i)_{i<k} A_{k-1}.
    # No n x n trace is built and no n x n update is added per step: per step the rule costs one
    # n x n product and O(k n); W_rec is formed once per trial (:meth:`materialize`). The dense
    # form (:meth:`add_step`, :meth:`step`) serves trials whose alignment is measured.

    def _lowrank_views(self, state: TrialState):
        """Per-step views of the factors and rates, made once per trial state (no slicing in the
        step loop)."""
        v = getattr(self, "_lr_views", None)
        if v is None or v[0] is not state.Rh:
            T = self.A.shape[1]
            Rh = state.Rh
            v = (Rh, {
                "r": Rh.split(1, dim=1),                                  # r_k [R, 1, n]
                "RT": [Rh[:, : k + 1].mT for k in range(T)],              # R_{0..k}^T
                "A": [self.A[:, :k] for k in range(T + 1)],               # rows 0..k-1
                "Ar": self.A.split(1, dim=1),
                "C": [self.C[:, :k] for k in range(T + 1)],
                "CT": [self.C[:, :k].mT for k in range(T + 1)],
                "Rp": [Rh[:, :k] for k in range(T + 1)],
                "aD": state.aD.split(1, dim=1),
                "E": state.E.split(1, dim=1),
            })
            self._lr_views = v
        return v[1]

    def recurrent_input(self, state: TrialState, k: int, base: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = base + r_k W(k)^T`` [R, 1, n] with W(k) from the factors (rates r_0..r_k in
        ``state.Rh``); keeps P_{k-1} r_k and |r_k|^2 for :meth:`apply_step`."""
        if self.W_start is None:
            raise RuntimeError("RFLO.recurrent_input needs W_current set before begin_trial")
        v = self._lowrank_views(state)
        rk = v["r"][k]
        torch.baddbmm(base, rk, self.W_start.mT, out=out)
        g = torch.bmm(rk, v["RT"][k])                                 # [R, 1, k+1]: r_k . r_i
        self._rr = g[:, :, k:]
        if k >= 1:
            gk = g[:, :, :k]
            out.baddbmm_(gk, v["C"][k])
            self._Pr = torch.bmm(gk, v["A"][k])                       # P_{k-1} r_k as a row
        else:
            self._Pr = None
        return out

    def apply_step(self, state: TrialState, k: int, lr: torch.Tensor) -> torch.Tensor:
        """Record step k's update in the factors (no dense weights change); returns |dW_k| [R]."""
        if k != self._steps:
            raise RuntimeError(f"RFLO.apply_step got step {k}, expected {self._steps}: steps must come in order")
        v = self._lowrank_views(state)
        decay = 1.0 - state.alpha
        aDn = v["aD"][k + 1]                                          # [R, 1, n]
        if k >= 1:
            v["A"][k].mul_(decay)
        v["Ar"][k].copy_(aDn)
        s = torch.bmm(v["E"][k + 1], self.BT).mul_(lr.reshape(-1, 1, 1))   # [R, 1, n]
        v["C"][k + 1].addcmul_(v["A"][k + 1], s)
        self.rho.mul_(decay * decay)
        if self._Pr is not None:
            self.rho.addcmul_(aDn, self._Pr, value=2.0 * decay)
        self.rho.addcmul_(aDn.square(), self._rr)
        self._steps = k + 1
        return torch.bmm(s.square_(), self.rho.mT).reshape(-1).clamp_min_(0.0).sqrt_()

    # ---- the same low-rank step for ONE run on a CPU, in NumPy --------------------------------
    #
    # Per step the rule costs one n x n product and O(k n) work in a dozen small calls; PyTorch's
    # per-call overhead (a few microseconds) then dominates, NumPy's is about half of it. The
    # adaptation engine runs a single run on a CPU through these (``adapt._steps_one_run``): the
    # arithmetic of :meth:`recurrent_input` and :meth:`apply_step` on the same C and rho, with
    # the trace factors kept undecayed, Ahat[i] = (1 - alpha)^-i alpha relu'(x_{i+1}), so that
    # A_k = (1 - alpha)^k Ahat and no O(k n) pass rescales them every step:
    #     C_k = C_{k-1} + Ahat_{0..k} * ((1 - alpha)^k s_k),   P_{k-1} r_k = (1 - alpha)^(k-1) g Ahat.
    # C and Ahat sit side by side in one [T, 2n] buffer per run, so ONE product g [C | Ahat]
    # gives both the forward's g C and the trace's g Ahat. (1 - alpha)^-i must stay far from
    # float overflow: :meth:`one_run_ok`.

    one_run_numpy = True
    one_run_compiled = False   # its compiled trial runs inside the NumPy step's place (adapt._steps_one_run)

    def one_run_ok(self, alpha: float) -> bool:
        """Whether the one-run NumPy step can keep its undecayed factors for this trial length."""
        return (self.A.shape[1] - 1) * -math.log1p(-alpha) < 60.0

    def one_run_views(self, state: TrialState) -> dict:
        """NumPy views (same memory) of run 0's factors and of the trial state, plus work buffers;
        valid while the buffers live (the engine makes them once, after the first begin_trial)."""
        if self.W_start is None:
            raise RuntimeError("RFLO.one_run_views needs W_current set before begin_trial")
        n, T = self.A.shape[2], self.A.shape[1]
        CA = self._CA[0].numpy()
        dt = CA.dtype
        decay = 1.0 - state.alpha
        return dict(W_start=self.W_start[0].numpy(), CA=CA, C=CA[:, :n], Ahat=CA[:, n:],
                    rho=self.rho[0, 0].numpy(), BT=self.BT[0].numpy(), Rh=state.Rh[0].numpy(),
                    aD=state.aD[0].numpy(), E=state.E[0].numpy(), g=np.empty(T + 1, dtype=dt),
                    gCA=np.empty(2 * n, dtype=dt), t1=np.empty(n, dtype=dt), s=np.empty(n, dtype=dt),
                    AS=np.empty((T, n), dtype=dt), decay=decay,
                    up=(decay ** -np.arange(T, dtype=np.float64)).astype(dt),      # (1 - alpha)^-i
                    down=(decay ** np.arange(T, dtype=np.float64)).astype(dt))     # (1 - alpha)^k

    def recurrent_input_one(self, v: dict, k: int, base: np.ndarray, out: np.ndarray) -> np.ndarray:
        """:meth:`recurrent_input` for one run in NumPy: ``out = base + W(k) r_k``."""
        rk, n = v["Rh"][k], v["t1"].shape[0]
        np.dot(v["W_start"], rk, out=out)
        out += base
        g = v["g"][: k + 1]
        np.dot(v["Rh"][: k + 1], rk, out=g)                          # r_k . r_i, i <= k
        v["rr"] = g[k]
        if k >= 1:
            gCA = v["gCA"]
            np.dot(g[:k], v["CA"][:k], out=gCA)                       # [g C_{k-1} | g Ahat]
            out += gCA[:n]
        return out

    def apply_step_one(self, v: dict, k: int, lr: float) -> float:
        """:meth:`apply_step` for one run in NumPy; returns |dW_k|."""
        if k != self._steps:
            raise RuntimeError(f"RFLO.apply_step_one got step {k}, expected {self._steps}: steps must come in order")
        decay, down = v["decay"], v["down"]
        Ahat, aDn, s, t1, rho = v["Ahat"], v["aD"][k + 1], v["s"], v["t1"], v["rho"]
        np.multiply(aDn, v["up"][k], out=Ahat[k])
        np.dot(v["E"][k + 1], v["BT"], out=s)
        s *= lr                                                       # s_k = lr B E[k+1]
        np.multiply(s, down[k], out=t1)
        C = v["C"][: k + 1]
        C += np.multiply(Ahat[: k + 1], t1, out=v["AS"][: k + 1])     # C_k = C_{k-1} + A_k * s_k
        rho *= decay * decay
        if k >= 1:                                                    # + 2 (1-alpha) aD * (P_{k-1} r_k)
            np.multiply(aDn, v["gCA"][t1.shape[0]:], out=t1)
            t1 *= 2.0 * decay * down[k - 1]
            rho += t1
        np.multiply(aDn, aDn, out=t1)
        t1 *= v["rr"]
        rho += t1
        self._steps = k + 1
        np.multiply(s, s, out=t1)
        return math.sqrt(max(float(np.dot(t1, rho)), 0.0))

    def materialize(self, state: TrialState, W: torch.Tensor) -> torch.Tensor:
        """``W = W_start + C^T R`` after the last step of a trial (in place); returns W."""
        if self._steps == 0:
            return W.copy_(self.W_start)
        v = self._lowrank_views(state)
        return torch.baddbmm(self.W_start, v["CT"][self._steps], v["Rp"][self._steps], out=W)

    def products_with_rates(self, state: TrialState, T: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """M [R, k, n, j] = dW_k r_j for every step k and rate r_j of the finished trial, from the
        trace's structure instead of the n x n updates: P_k = sum_{i<=k} (1-alpha)^(k-i) alpha
        d_{i+1} r_i^T, so Q_k = P_k r^T obeys Q_k = (1-alpha) Q_{k-1} + alpha d_{k+1} (r_k . r_j)_j
        and dW_k r_j = s_k * Q_k[:, j] with s_k the step's scaled signal (``self.record``)."""
        if self.record is None:
            raise RuntimeError("RFLO.products_with_rates needs the signals recorded (set rule.record)")
        R, n = self.P.shape[0], self.P.shape[1]
        Rt = state.Rh[:, :T]
        rr = torch.bmm(Rt, Rt.mT)                                            # [R, T, T]
        Q = torch.zeros(R, n, T, dtype=self.P.dtype, device=self.P.device)
        M = out if out is not None else torch.empty(R, T, n, T, dtype=self.P.dtype, device=self.P.device)
        decay = 1.0 - state.alpha
        for k in range(T):
            Q.mul_(decay).baddbmm_(state.aD[:, k + 1].unsqueeze(2), rr[:, k: k + 1])
            torch.mul(Q, self.record[:, k].unsqueeze(2), out=M[:, k])
        return M


def make_rule(name: str, R: int, n: int, T: int, *, B: torch.Tensor | None = None, device=None,
              dtype=torch.float32, bptt_weights: str = "history"):
    if name == "bptt":
        return OnlineBPTT(R, n, T, device=device, dtype=dtype, weights=bptt_weights)
    if name == "rflo":
        if B is None:
            raise ValueError("RFLO needs its feedback matrix B")
        return RFLO(R, n, T, B, device=device, dtype=dtype)
    raise ValueError(f"rule must be one of {', '.join(RULES)}, got {name!r}")
