"""Analyses behind the paper's three findings (Methods, "How the findings are measured"). Every function
returns arrays ready to
plot. Conventions (see the book's Methods):

- One trial's loss is ``L = mean over j = 0..T and both dims of E[j]^2``; the *instantaneous*
  loss of the rate r_k (k >= 1) is ``l_k = mean(E[k]^2)``, the first error r_k influences
  (through v_{k-1} = W_out r_k + b_out).
- The fed-back error is an input (no gradient through the controller loop), as in adaptation
  (Methods, "Adaptation"); the dynamics themselves are those of the condition (controller on or off).
- The control input of step k is ``u_k = (M * W_fb) E[k-d]`` (it enters x_{k+1}); it is compared
  with the gradients with respect to r_k, the activity it acts on.
"""

from __future__ import annotations

import functools
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as sla
import torch

from ..core.bptt import Forward, forward
from ..core.model import Network
from ..core.task import Trials
from ..learning.rules import OnlineBPTT, TrialState

__all__ = [
    "PAIRINGS", "ActivityGradients", "activity_gradients", "activity_newton", "jacobian_norms", "step_jacobians",
    "gradient_horizon", "WrecSecondOrder", "WrecHessian", "wrec_second_order", "cosine", "solve_each", "one_thread",
    "on_one_thread",
]


def cosine(a: torch.Tensor, b: torch.Tensor, dim: int = -1, eps: float = 1e-30) -> torch.Tensor:
    """Cosine similarity along ``dim``."""
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim)).clamp_min(eps)


def _single(net: Network, trials: Trials, x0: torch.Tensor, controller_on: bool, delay: int | None = None) -> Forward:
    """The forward pass of one network; ``delay`` overrides the network's feedback delay."""
    if net.stacked:
        raise ValueError("analyses take a single network")
    return forward(net, trials, x0.to(net.device, net.dtype), controller_on=controller_on, delay=delay)


def _control_inputs(net: Network, fwd: Forward, controller_on: bool, delay: int) -> torch.Tensor:
    """u_k = (M*W_fb) E[k-d] for k = 0..T-1 -> [T, B, n] (zeros with the controller off)."""
    E = fwd.E[:, 0]
    T = E.shape[0] - 1
    Efb = torch.zeros_like(E[:T])
    if delay < T:
        Efb[delay:] = E[: T - delay]
    u = Efb @ (net.W_fb * net.mask).mT
    return u if controller_on else torch.zeros_like(u)


def _rate_adjoint(net: Network, fwd: Forward, dLdE: torch.Tensor) -> torch.Tensor:
    """dL/dr_k for k = 0..T [T+1, B, n] given the direct gradients dL/dE[j] [T+1, B, 2] (feedback
    detached). Recursion (row vectors): G_j = sum_{i>=j} dL/dE[i]; gv_k = -dt G_{k+1};
    g_r_{k+1} = gv_k W_out + ga_{k+1} W_rec;  ga_k = alpha relu'(x_{k+1}) g_r_{k+1} + (1-alpha) ga_{k+1}."""
    X = fwd.X[:, 0]
    T = X.shape[0] - 1
    a, dt = net.cfg.alpha, net.cfg.dt
    G = dLdE.flip(0).cumsum(0).flip(0)  # G_j = sum_{i >= j}
    g_r = torch.zeros_like(X)
    ga = torch.zeros_like(X[0])
    for k in range(T - 1, -1, -1):
        gv = -dt * G[k + 1]
        gr = gv @ net.W_out
        if k + 1 < T:
            gr = gr + ga @ net.W_rec
        g_r[k + 1] = gr
        ga = a * (X[k + 1] > 0).to(X.dtype) * gr + (1 - a) * ga
    g_r[0] = ga @ net.W_rec
    return g_r


# Which activity a control input u_k is compared with (Methods, "How the findings are measured", finding
# 1). u_k = W_fb e_{k-d}
# enters the update of x_{k+1}, so it acts on r_{k+1}: "next" pairs u_k with -dL/dr_{k+1}, as the
# published code does (the default); "same" pairs it with -dL/dr_k (a robustness row).
PAIRINGS = ("next", "same")


def _paired_steps(T: int, pairing: str) -> slice:
    """The activity indices paired with u_1..u_{T-1}: r_2..r_T ("next") or r_1..r_{T-1} ("same")."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    return slice(2, T + 1) if pairing == "next" else slice(1, T)


@dataclass
class ActivityGradients:
    """Per step k = 1..T-1 and trial: the control input u_k and -dL/dr_j (whole trial) and
    -dl_j/dr_j (instantaneous) of the activity it is paired with (j = k+1, or j = k with
    ``pairing="same"``), with their cosines [T-1, B]."""

    u: torch.Tensor
    neg_grad_trial: torch.Tensor
    neg_grad_inst: torch.Tensor
    cos_trial: torch.Tensor
    cos_inst: torch.Tensor
    E: torch.Tensor


@torch.no_grad()
def activity_gradients(net: Network, trials: Trials, x0: torch.Tensor, *, controller_on: bool = True,
                       delay: int | None = None, pairing: str = "next") -> ActivityGradients:
    """Figure 2c: does the control signal point along -dL/dr (Methods, "How the findings are measured",
    finding 1)? ``pairing``:
    which activity u_k is compared with (:data:`PAIRINGS`)."""
    d = net.cfg.delay if delay is None else delay
    fwd = _single(net, trials, x0, controller_on, d)
    E = fwd.E[:, 0]
    T = E.shape[0] - 1
    dLdE = E / (T + 1)  # d/dE of mean over (T+1) x 2 of E^2 = 2E / (2 (T+1))
    g_trial = _rate_adjoint(net, fwd, dLdE)
    # instantaneous: l_k = mean(E[k]^2) -> dl_k/dr_k = -dt W_out^T E[k]
    g_inst = -net.cfg.dt * (E @ net.W_out)
    u = _control_inputs(net, fwd, True, d)
    ks, js = slice(1, T), _paired_steps(T, pairing)
    return ActivityGradients(u=u[ks], neg_grad_trial=-g_trial[js], neg_grad_inst=-g_inst[js],
                             cos_trial=cosine(u[ks], -g_trial[js]), cos_inst=cosine(u[ks], -g_inst[js]),
                             E=E)


@torch.no_grad()
def activity_hessians(net: Network, fwd: Forward, steps) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Hessians of the whole-trial loss w.r.t. r_k for the given steps, one trial (B = 1).

    The map r_k -> (E[k], ..., E[T]) is piecewise linear (ReLU, feedback as input) and L is
    quadratic in E, so H_k = J_k^T J_k / (T+1) with J_k = dE/dr_k, exactly (away from the
    measure-zero ReLU kinks). J_k for all k comes from one backward sweep with 2 (T+1) columns.
    Returns (H [len(steps), n, n], J-based gradient g [len(steps), n])."""
    X = fwd.X[:, 0, 0]
    E = fwd.E[:, 0, 0]
    T = X.shape[0] - 1
    n = X.shape[1]
    a, dt = net.cfg.alpha, net.cfg.dt
    # columns c = (j, m): E[j]_m; dE[j]_m / dv_i = -dt e_m for i < j
    ncol = 2 * (T + 1)
    jidx = torch.arange(T + 1, device=X.device).repeat_interleave(2)
    midx = torch.arange(2, device=X.device).repeat(T + 1)
    onehot = torch.zeros(2, ncol, dtype=X.dtype, device=X.device)
    onehot[midx, torch.arange(ncol)] = 1.0
    want = {int(k): i for i, k in enumerate(steps)}
    Js = [None] * len(want)
    ga = torch.zeros(n, ncol, dtype=X.dtype, device=X.device)
    for k in range(T - 1, -1, -1):
        active = (jidx > k).to(X.dtype)                # columns whose E[j] depends on v_k
        gv = -dt * onehot * active                       # [2, ncol]
        gr = net.W_out.mT @ gv
        if k + 1 < T:
            gr = gr + net.W_rec.mT @ ga
        if k + 1 in want:
            Js[want[k + 1]] = gr.mT.clone()              # J_{k+1}: [ncol, n]
        ga = a * (X[k + 1] > 0).to(X.dtype)[:, None] * gr + (1 - a) * ga
    if 0 in want:
        Js[want[0]] = (net.W_rec.mT @ ga).mT.clone()
    J = torch.stack(Js)                                  # [K, ncol, n]
    H = J.mT @ J / (T + 1)
    Ecol = E.reshape(-1)                                 # (j, m) order matches the columns
    g = (J.mT @ Ecol) / (T + 1)
    return H, g


def solve_each(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x_i = A_i^-1 b_i for a stack A [B, n, n], b [B, n], one matrix at a time. Not the batched
    ``torch.linalg.solve``: on a CPU, once ``torch.set_num_threads`` has been called with more than one
    thread, its batched LU runs MKL's getrf on several threads at once and fails ("Pivots given to
    lu_solve must all be greater or equal to 1") or returns wrong numbers for n above about 14
    (pytorch/pytorch issue 142815). A single matrix takes the safe path (the same LU work)."""
    return torch.stack([torch.linalg.solve(A[i], b[i]) for i in range(A.shape[0])]) if A.shape[0] else b.clone()


@contextmanager
def one_thread():
    """CPU intra-op threads set to 1 inside, restored after. For chains of batch-1 products such as
    the W_rec Hessian-vector products (a 400 x 400 matrix times a vector, two per step and MINRES
    iteration), where waking another thread for each product costs more than it saves
    (``python -m fbctrl bench adapt``, ``wrec_newton_step``; the Performance chapter)."""
    n = torch.get_num_threads()
    if n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n > 1:
            torch.set_num_threads(n)


def on_one_thread(f):
    """``f`` run inside :func:`one_thread`."""
    @functools.wraps(f)
    def run(*args, **kwargs):
        with one_thread():
            return f(*args, **kwargs)
    return run


@torch.no_grad()
def activity_newton(net: Network, trials: Trials, x0: torch.Tensor, *, controller_on: bool = True,
                    damping: float = 1e-3, delay: int | None = None, steps=None,
                    pairing: str = "next") -> dict[str, np.ndarray]:
    """Figure 5b: cosine between the control input u_k and the Newton direction in activity space
    ``-(H_j + damping I)^-1 g_j`` (H_j the n x n Hessian of the whole-trial loss w.r.t. r_j, the
    activity u_k acts on: j = k+1, or j = k with ``pairing="same"``, :data:`PAIRINGS`), with the
    first-order direction -g_j for comparison. ``steps``: the steps k (default 1..T-1). One trial
    (batch 1)."""
    if int(np.prod(trials.batch_shape)) != 1:
        raise ValueError("activity_newton takes one trial (batch 1)")
    d = net.cfg.delay if delay is None else delay
    fwd = _single(net, trials, x0, controller_on, d)
    T = fwd.X.shape[0] - 1
    steps = list(range(1, T)) if steps is None else list(steps)
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    shift = 1 if pairing == "next" else 0
    if any(not 0 <= k + shift <= T for k in steps):
        raise ValueError(f"steps must lie in 0..{T - shift} for pairing {pairing!r}, got {steps}")
    H, g = activity_hessians(net, fwd, [k + shift for k in steps])
    n = H.shape[-1]
    eye = torch.eye(n, dtype=H.dtype, device=H.device)
    newton = -solve_each(H + damping * eye, g)
    u = _control_inputs(net, fwd, True, d)[:, 0][steps]
    return {"step": np.asarray(steps), "cos_newton": cosine(u, newton).cpu().numpy(),
            "cos_first_order": cosine(u, -g).cpu().numpy(), "newton": newton.cpu().numpy(),
            "grad": g.cpu().numpy()}


@torch.no_grad()
def step_jacobians(net: Network, fwd: Forward, *, closed_loop: bool = False, controller_on: bool = True) -> torch.Tensor:
    """J_k = dx_{k+1}/dx_k = (1 - alpha) I + alpha W_eff diag(relu'(x_k)) for k = 0..T-1, one trial
    [T, n, n]. W_eff = W_rec, or with ``closed_loop`` (controller on, delay 0) the loop through the
    fed-back error included: W_rec - dt (M * W_fb) W_out."""
    X = fwd.X[:, 0, 0]
    T, n = X.shape[0] - 1, X.shape[1]
    a = net.cfg.alpha
    W = net.W_rec
    if closed_loop and controller_on:
        if net.cfg.delay != 0:
            raise ValueError("closed_loop Jacobians are defined here for delay 0")
        W = W - net.cfg.dt * (net.W_fb * net.mask) @ net.W_out
    D = (X[:T] > 0).to(X.dtype)                          # relu'(x_k)
    eye = torch.eye(n, dtype=X.dtype, device=X.device)
    return (1 - a) * eye + a * W.unsqueeze(0) * D[:, None, :]


@torch.no_grad()
def jacobian_norms(net: Network, trials: Trials, x0: torch.Tensor, *, controller_on: bool = True,
                   lags=(1,), closed_loop: bool = False, ord=2) -> dict[int, np.ndarray]:
    """Figure 4a: norms of dx_{k+L}/dx_k = J_{k+L-1} ... J_k along one trial, for each lag L ->
    {L: array [T - L + 1]} (index k). ``ord``: 2 (spectral) or 'fro'."""
    fwd = _single(net, trials, x0, controller_on)
    J = step_jacobians(net, fwd, closed_loop=closed_loop, controller_on=controller_on)
    T = J.shape[0]
    out = {}
    for L in lags:
        if L < 1 or L > T:
            raise ValueError(f"lag must lie in 1..{T}, got {L}")
        prod = J[: T - L + 1].clone()
        for i in range(1, L):
            prod = J[i: T - L + 1 + i] @ prod
        if ord == 2:  # largest singular value as sqrt of the top eigenvalue of P^T P (3x faster than SVD)
            out[int(L)] = torch.linalg.eigvalsh(prod.mT @ prod)[..., -1].clamp_min(0).sqrt().cpu().numpy()
        else:
            out[int(L)] = torch.linalg.matrix_norm(prod, ord=ord).cpu().numpy()
    return out


@torch.no_grad()
def gradient_horizon(net: Network, trials: Trials, x0: torch.Tensor, *, controller_on: bool = True,
                     horizons=(1, 2, 5, 10, 20, 50), steps=None) -> dict[str, np.ndarray]:
    """How much of the exact gradient of step t's loss (l_t = mean E[t+1]^2, w.r.t. W_rec, fixed
    weights) comes from the last K steps: G_t^K = sum_{j > t-K} ga_j r_j^T. Returns for each K
    the cosine and the norm ratio |G_t^K| / |G_t|, averaged over the given steps (one trial)."""
    fwd = _single(net, trials, x0, controller_on)
    X, Rr, E = fwd.X[:, 0], fwd.R[:, 0], fwd.E[:, 0]   # [T+1, 1, n] with B = 1 as "runs"
    T = X.shape[0] - 1
    n = X.shape[-1]
    a = net.cfg.alpha
    st = TrialState(X=X.transpose(0, 1), Rh=Rr.transpose(0, 1).contiguous(),
                    aD=((X > 0).to(X.dtype) * a).transpose(0, 1).contiguous(), E=E.transpose(0, 1).contiguous(),
                    Wh=None, W_out=net.W_out.unsqueeze(0).expand(X.shape[1], -1, -1), alpha=a, dt=net.cfg.dt)
    rule = OnlineBPTT(X.shape[1], n, T, device=X.device, dtype=X.dtype, weights="current")
    rule.W_current = net.W_rec.unsqueeze(0).expand(X.shape[1], -1, -1)
    steps = list(range(max(horizons), T)) if steps is None else list(steps)
    cos = np.zeros((len(steps), len(horizons)))
    ratio = np.zeros_like(cos)
    for i, t in enumerate(steps):
        GA = rule.adjoint(st, t)                          # [B, t+1, n]
        full = torch.bmm(GA.mT, st.Rh[:, : t + 1])
        for j, K in enumerate(horizons):
            lo = max(0, t + 1 - K)
            part = torch.bmm(GA[:, lo:].mT, st.Rh[:, lo: t + 1])
            cos[i, j] = float(cosine(part.reshape(-1), full.reshape(-1), dim=0))
            ratio[i, j] = float(part.norm() / full.norm().clamp_min(1e-30))
    return {"horizon": np.asarray(horizons), "cos": cos.mean(0), "norm_ratio": ratio.mean(0),
            "cos_per_step": cos, "steps": np.asarray(steps)}


# ---- second order with respect to W_rec, at paper scale -------------------------------------

@dataclass
class WrecSecondOrder:
    step: int
    grad: np.ndarray            # dl_t/dW_rec [n, n]
    newton: np.ndarray          # -(H + damping I)^-1 g
    gauss_newton: np.ndarray    # -(GN + damping I)^-1 g
    minres_info: int
    minres_iters: int
    residual: float
    eigenvalues: np.ndarray | None
    seconds: float


def _step_loss_fn(net: Network, trials: Trials, x0: torch.Tensor, e_fb: torch.Tensor, t: int,
                  controller_on: bool):
    """W_rec -> (l_t, E[t+1]) for one trial replayed with the fed-back errors as fixed inputs
    (plain autograd-differentiable reference for :class:`WrecHessian`)."""
    trials = trials.to(net.device, net.dtype)
    s = trials.inputs[:, 0]
    vref = trials.vref[:, 0]
    push = trials.push[:, 0]
    a, dt = net.cfg.alpha, net.cfg.dt
    W_f = net.W_fb * net.mask
    drive = s @ net.W_in.mT + net.b
    if controller_on:
        drive = drive + e_fb @ W_f.mT

    def f(W):
        x = x0
        E = torch.zeros(2, dtype=x0.dtype, device=x0.device)
        for k in range(t + 1):
            x = (1 - a) * x + a * (drive[k] + W @ torch.relu(x))
            v = net.W_out @ torch.relu(x) + net.b_out + push[k]
            E = E + dt * (vref[k] - v)
        return E.pow(2).mean(), E

    return f


class WrecHessian:
    """Gradient, Jacobian and exact Hessian-vector products of ``l_t(W) = mean(E[t+1]^2)`` with
    respect to W_rec for one trial, fed-back errors fixed (inputs), weights fixed over the trial.

    Forward (row vectors): x_{k+1} = (1-alpha) x_k + alpha (d_k + W r_k), r = relu(x),
    E = sum_{k<=t} dt (vref_k - W_out r_{k+1} - b_out - p_k). Gradient with c = -dt E,
    q = W_out^T c: ga_t = alpha D_{t+1} q, ga_j = (1-alpha) ga_{j+1} + alpha D_{j+1} (q + W^T ga_{j+1}),
    g = sum_j ga_j r_j^T. Hessian-vector product in direction V (Pearlmutter's R-operator; ReLU
    is piecewise linear so D is constant): forward x'_{k+1} = (1-alpha) x'_k + alpha (V r_k + W D_k x'_k),
    E' = -dt W_out sum_k D_{k+1} x'_{k+1}, q' = -dt W_out^T E'; backward
    ga'_j = (1-alpha) ga'_{j+1} + alpha D_{j+1} (q' + V^T ga_{j+1} + W^T ga'_{j+1});
    H V = sum_j ga'_j r_j^T + ga_j (D_j x'_j)^T. Two matrix-vector products per step."""

    def __init__(self, net: Network, trials: Trials, x0: torch.Tensor, e_fb: torch.Tensor, t: int,
                 controller_on: bool):
        a, dt = net.cfg.alpha, net.cfg.dt
        self.a, self.dt, self.t = a, dt, t
        W = net.W_rec.detach()
        self.W, self.W_out = W, net.W_out.detach()
        drive = trials.inputs[:, 0] @ net.W_in.mT + net.b
        if controller_on:
            drive = drive + e_fb @ (net.W_fb * net.mask).mT
        x = x0.reshape(-1)
        X = [x]
        for k in range(t + 1):
            x = (1 - a) * x + a * (drive[k] + W @ torch.relu(x))
            X.append(x)
        X = torch.stack(X)                                          # x_0 .. x_{t+1}
        self.R = torch.relu(X)
        self.aD = a * (X > 0).to(X.dtype)
        v = self.R[1:] @ self.W_out.mT + net.b_out + trials.push[: t + 1, 0]
        self.E = dt * (trials.vref[: t + 1, 0] - v).sum(0)
        self.GA = self._adjoint(-dt * self.E @ self.W_out)
        self.grad = self.GA.mT @ self.R[: t + 1]
        # J_m = dE_m/dW = -dt G(e_m): the gradient recursion is linear in c
        self.J = torch.stack([-dt * (self._adjoint(self.W_out[m]).mT @ self.R[: t + 1]) for m in range(2)])

    def _adjoint(self, q: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        t, a, W = self.t, self.a, self.W
        GA = torch.empty(t + 1, q.shape[-1], dtype=q.dtype, device=q.device)
        GA[t] = self.aD[t + 1] * q
        for j in range(t - 1, -1, -1):
            h = q + GA[j + 1] @ W
            if extra is not None:
                h = h + extra[j + 1]
            GA[j] = (1 - a) * GA[j + 1] + self.aD[j + 1] * h
        return GA

    def hvp(self, V: torch.Tensor) -> torch.Tensor:
        t, a, W = self.t, self.a, self.W
        VR = self.R[: t + 1] @ V.mT                                 # rows (V r_k)^T
        xd = torch.zeros_like(self.R)
        for k in range(t + 1):
            xd[k + 1] = (1 - a) * xd[k] + a * VR[k] + (self.aD[k] * xd[k]) @ W.mT
        Rd = (self.aD / a) * xd                                     # D_k x'_k
        Ed = -self.dt * (Rd[1:].sum(0) @ self.W_out.mT)
        qd = (-self.dt * Ed) @ self.W_out
        GAd = self._adjoint(qd, extra=self.GA @ V)
        return GAd.mT @ self.R[: t + 1] + self.GA.mT @ Rd[: t + 1]


@on_one_thread
def wrec_second_order(net: Network, trials: Trials, x0: torch.Tensor, t: int, *, controller_on: bool = True,
                      damping: float = 1e-3, maxiter: int = 500, rtol: float = 1e-6, n_eigs: int = 0,
                      delay: int | None = None) -> WrecSecondOrder:
    """Newton step for l_t w.r.t. W_rec at paper scale (n^2 = 160,000 unknowns): exact
    Hessian-vector products (:class:`WrecHessian`, R-operator, two matrix-vector products per
    step) and scipy's MINRES on
    ``(H + damping I) x = g`` (H may be indefinite); ``n_eigs`` > 0 also gives the largest-
    magnitude Hessian eigenvalues by Lanczos (scipy eigsh). The Gauss-Newton direction uses
    GN = J^T J (l_t = |E[t+1]|^2 / 2, J = dE[t+1]/dW_rec, rank 2), solved in closed form by
    Woodbury: (GN + lam I)^-1 J^T E = J^T (J J^T + lam I)^-1 E. Runs on one CPU thread
    (:func:`one_thread`): its products are batch-1 and a second thread only adds overhead."""
    t0 = time.perf_counter()
    d = net.cfg.delay if delay is None else delay
    fwd = _single(net, trials, x0, controller_on, d)
    E = fwd.E[:, 0, 0]
    T = E.shape[0] - 1
    if not 0 <= t < T:
        raise ValueError(f"step t must lie in 0..{T - 1}, got {t}")
    e_fb = torch.zeros(T, 2, dtype=E.dtype, device=E.device)
    if d < T:
        e_fb[d:] = E[: T - d]
    hess = WrecHessian(net, trials.to(net.device, net.dtype), x0.reshape(-1).to(net.device, net.dtype), e_fb, t,
                       controller_on)
    W0 = net.W_rec.detach()
    n = W0.shape[0]
    g = hess.grad
    hvp = hess.hvp

    def matvec(vec):
        v = torch.as_tensor(np.asarray(vec).reshape(n, n), dtype=W0.dtype, device=W0.device)
        return (hvp(v) + damping * v).reshape(-1).cpu().numpy().astype(np.float64)

    op = sla.LinearOperator((n * n, n * n), matvec=matvec, dtype=np.float64)
    gnp = g.reshape(-1).cpu().numpy().astype(np.float64)
    iters = [0]

    def cb(_):
        iters[0] += 1

    sol, info = sla.minres(op, gnp, rtol=rtol, maxiter=maxiter, callback=cb)
    resid = float(np.linalg.norm(matvec(sol) - gnp) / np.linalg.norm(gnp))
    newton = -sol.reshape(n, n)
    # Gauss-Newton: l = mean(E^2) = |E|^2 / 2 -> GN = J^T J (d2l/dE2 = I), g = J^T E
    J = hess.J.reshape(2, -1)
    c = hess.E  # g = J^T E
    small = J @ J.mT + damping * torch.eye(2, dtype=W0.dtype, device=W0.device)
    gn = -(J.mT @ torch.linalg.solve(small, c)).reshape(n, n)
    eigs = None
    if n_eigs > 0:
        hop = sla.LinearOperator((n * n, n * n), dtype=np.float64, matvec=lambda v: matvec(v) - damping * np.asarray(v))
        eigs = sla.eigsh(hop, k=n_eigs, which="LM", return_eigenvectors=False, tol=1e-4)
        eigs = np.sort(eigs)[::-1]
    return WrecSecondOrder(step=t, grad=g.cpu().numpy(), newton=newton, gauss_newton=gn.cpu().numpy(),
                           minres_info=int(info), minres_iters=iters[0], residual=resid, eigenvalues=eigs,
                           seconds=time.perf_counter() - t0)
