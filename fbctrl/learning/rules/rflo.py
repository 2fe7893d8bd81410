"""Random-feedback local online learning (RFLO, Murray 2019) for W_rec during adaptation (the
book's Methods page, "Adaptation"), for R runs in lockstep, behind :class:`LearningRule`."""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import LearningRule, TrialState

__all__ = ["RFLO"]


class RFLO(LearningRule):
    """Random-feedback local online learning (Murray 2019; Methods, "Adaptation"). After step k::

        P   <- (1 - alpha) P + alpha relu'(x_{k+1}) r_k^T        (n x n, zero at trial start)
        dW_ij = lr (B E[k+1])_i P_ij

    with B = M * W_fb (n x 2) for networks with feedback, B = W_out^T without.
    """

    name = "rflo"
    defers_weights = True     # W_rec and the trace in low-rank form within a trial (below)
    adds_in_place = True      # :meth:`add_step` adds dW to W without forming it
    aligns_by_products = True  # alignment from :meth:`products_with_rates` (signals kept in ``record``)
    computes_exact_gradient = False
    supports_frozen = True     # its dense step (add_step) keeps no weights of its own beside W_rec
    published_lr_rescale = False

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

    def finish_compiled_trial(self, T: int) -> None:
        """After the engine's compiled one-run trial (``adapt._steps_one_run``) on this rule's
        factors: all T steps are recorded."""
        self._steps = T

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

