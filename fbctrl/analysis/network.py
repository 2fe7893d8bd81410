"""Per-network analyses of the book's findings on pre-trained networks (no adaptation needed):
Figure 2c (the control input and the activity gradient), Figure 4a (closed-loop Jacobians and the
gradient horizon), Figure 5b (the control input and the Newton direction in activity space) and
the W_rec Newton direction against RFLO and the gradient. Built on :mod:`fbctrl.analysis.gradients.gradients`;
arrays are per network seed, ready to plot (Methods, "How the findings are measured").

Every measure reads the test conditions of a task (:func:`test_trial`): the centre-out reaches
under a rotation of ``rotation_deg`` degrees (the paper), or, where ``rotation_deg`` is a
``Perturbation`` and ``task_cfg`` another task's configuration, that task's test conditions under
it (the limit cycle under a ``FrequencyShift``; Methods, "Beyond the paper")."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..core.bptt import forward
from ..core.model import Network, draw_x0
from ..core.task import GO_STEP, TaskConfig, Trials, centre_out_reaches
from ..core.tasks import Perturbation, task_for_config
from ..learning.adapt import feedback_matrix
from .gradients import activity_gradients, activity_newton, cosine, gradient_horizon, step_jacobians, wrec_second_order

__all__ = ["ACTIVITY_X0_SEED", "NULL_SEED", "activity_x0s", "centre_out_trial", "test_trial", "n_conditions", "flat_cosine", "activity_cosines", "movement_mean", "closed_loop_jacobians",
           "jacobian_profile", "horizon_profile", "activity_newton_cosines", "rflo_direction", "wrec_newton_table"]


ACTIVITY_X0_SEED = 7  # initial states of the activity-space analyses


NULL_SEED = 2024      # random feedback weights of the activity-space null model


def centre_out_trial(task_cfg: TaskConfig, target: int, rotation_deg: float, dtype=torch.float64) -> Trials:
    tr = centre_out_reaches(task_cfg, [target], dtype=dtype)
    return tr.rotated(rotation_deg) if rotation_deg else tr


def n_conditions(task_cfg) -> int:
    """The test conditions of the task of ``task_cfg``: the centre-out targets of reaching (a
    ``TaskConfig``), the test frequencies of the limit cycle (a ``LimitCycleConfig``)."""
    return task_cfg.n_targets if isinstance(task_cfg, TaskConfig) else task_for_config(task_cfg).config.n_test_freqs


def test_trial(task_cfg, target: int, perturbation, dtype=torch.float64) -> Trials:
    """Test condition ``target`` of the task of ``task_cfg`` on the first trial of
    ``perturbation``: a rotation in degrees (a number) on reaching is the centre-out reach
    :func:`centre_out_trial`, as every measure of the paper's networks reads it; a
    :class:`~fbctrl.core.tasks.Perturbation` (e.g. a ``FrequencyShift`` on the limit cycle) is
    applied by the task to its test conditions (``Task.perturb``; Methods, "Beyond the paper")."""
    if isinstance(task_cfg, TaskConfig) and not isinstance(perturbation, Perturbation):
        return centre_out_trial(task_cfg, target, perturbation, dtype)
    task = task_for_config(task_cfg)
    return task.perturb(task.test_conditions(dtype), perturbation).select([target])


def activity_x0s(n: int, task_cfg, dtype=torch.float64) -> torch.Tensor:
    """One initial state per test condition of the task (:func:`n_conditions`), from ``ACTIVITY_X0_SEED``."""
    return draw_x0(n, (n_conditions(task_cfg),), torch.Generator().manual_seed(ACTIVITY_X0_SEED), dtype)


@torch.no_grad()
def activity_cosines(nets: dict[int, Network], rotation_deg: float | Perturbation = 30.0, *, controller_on: bool = True,
                     task_cfg: TaskConfig = TaskConfig(), pairing: str = "next") -> dict[str, np.ndarray]:
    """Figure 2c on the first trial of a rotation, every target, every network (float64):
    cos(u_k, -dL/dr_{k+1}) with the whole-trial loss (``cos_trial``) and with the loss of the step
    the rate first affects (``cos_inst``), for steps k = 1..T-1 -> arrays [S, 8, T-1]. u_k enters
    the update of x_{k+1}, so it is compared with the activity it acts on, r_{k+1}, as the published
    code pairs them; ``pairing="same"`` compares it with r_k instead (``analysis.PAIRINGS``).

    ``controller_on`` sets the dynamics; u_k = W_fb e_k is the control signal either way (with
    the controller off it is what the controller *would* inject). The null model replaces W_fb by
    a random Gaussian matrix (``cos_*_null``): the cosine a control signal with no relation to
    the readout would reach on the same trials (about ±1/sqrt(n))."""
    S = len(nets)
    T = task_cfg.T
    out = {k: np.zeros((S, n_conditions(task_cfg), T - 1)) for k in ("cos_trial", "cos_inst", "cos_trial_null",
                                                                  "cos_inst_null")}
    for s, (seed, net) in enumerate(nets.items()):
        net64 = net.to(dtype=torch.float64)
        d = net64.cfg.delay
        g = torch.Generator().manual_seed(NULL_SEED + int(seed))
        W_null = torch.randn(net64.W_fb.shape, generator=g, dtype=torch.float64).to(net64.device)
        x0s = activity_x0s(net64.cfg.n, task_cfg)
        for tgt in range(n_conditions(task_cfg)):
            ag = activity_gradients(net64, test_trial(task_cfg, tgt, rotation_deg), x0s[tgt:tgt + 1],
                                    controller_on=controller_on, pairing=pairing)
            out["cos_trial"][s, tgt] = ag.cos_trial[:, 0].cpu().numpy()
            out["cos_inst"][s, tgt] = ag.cos_inst[:, 0].cpu().numpy()
            E = ag.E  # [T+1, 1, 2]
            Efb = torch.zeros_like(E[:T])
            if d < T:
                Efb[d:] = E[:T - d]
            u_null = (Efb @ W_null.mT)[1:T]
            out["cos_trial_null"][s, tgt] = cosine(u_null, ag.neg_grad_trial)[:, 0].cpu().numpy()
            out["cos_inst_null"][s, tgt] = cosine(u_null, ag.neg_grad_inst)[:, 0].cpu().numpy()
    return out


def movement_mean(cos: np.ndarray, first_step: int = GO_STEP) -> np.ndarray:
    """Per seed: mean of a [S, targets, T-1] cosine array (steps k = 1..T-1) over targets and the
    movement steps k >= ``first_step``."""
    c = np.asarray(cos)[:, :, first_step - 1:]
    return c.reshape(c.shape[0], -1).mean(axis=1)


@torch.no_grad()
def closed_loop_jacobians(net: Network, fwd) -> torch.Tensor:
    """Step Jacobians with the feedback loop included (controller on), one trial [T, N, N], for the
    augmented state z_k = (x_k, e_{k-1}, ..., e_{k-m}) with m = max(d, 1) error blocks for a
    feedback delay of d steps: the activity and the errors accumulated before it is read out that
    the controller has still to feed back (e_j = E[j]). Reading x_k out adds
    dt (v^ref - W_out r_k - b_out) to the error, x_{k+1} receives alpha W_fb e_{k-d}, and the older
    errors move down one block. With D_k = relu'(x_k)::

        d = 0:  dx_{k+1}/dx_k = (1-alpha) I + alpha (W_rec - dt W_fb W_out) D_k,  dx_{k+1}/de_{k-1} = alpha W_fb
        d >= 1: dx_{k+1}/dx_k = (1-alpha) I + alpha W_rec D_k,                   dx_{k+1}/de_{k-d} = alpha W_fb
        de_k/dx_k = -dt W_out D_k,   de_k/de_{k-1} = I,   the block of e_{k-j} in z_{k+1} = that of z_k (shift)

    (at k = 0 the error e_0 = 0 does not depend on x_0; errors before the trial are zero and reach
    no path from an activity). The x-block of their products, d x_{k+L} / d x_k, is the total
    sensitivity of the activity to its past, the path through the integrated (and delayed) error
    included: a perturbation of x_k changes the hand velocity, hence every later error the
    controller feeds back, d steps later."""
    d = int(net.cfg.delay)
    m = max(d, 1)
    X = fwd.X[:, 0, 0]
    T, n = X.shape[0] - 1, X.shape[1]
    a, dt = net.cfg.alpha, net.cfg.dt
    W_f = net.W_fb * net.mask
    D = (X[:T] > 0).to(X.dtype)                               # relu'(x_k), k = 0..T-1
    eye = torch.eye(n, dtype=X.dtype, device=X.device)
    eye2 = torch.eye(2, dtype=X.dtype, device=X.device)
    de_dx = -dt * net.W_out.unsqueeze(0) * D[:, None, :]      # de_k/dx_k [T, 2, n]
    de_dx[0] = 0.0
    A = torch.zeros(T, n + 2 * m, n + 2 * m, dtype=X.dtype, device=X.device)
    inner = net.W_rec.unsqueeze(0) * D[:, None, :]
    if d == 0:                                                # e_k, fed back at once, is read out from x_k
        inner = inner + W_f @ de_dx
    A[:, :n, :n] = (1 - a) * eye + a * inner
    A[:, :n, n + 2 * (m - 1):n + 2 * m] = a * W_f             # e_{k-d}: block d-1 (block 0 when d = 0)
    A[:, n:n + 2, :n] = de_dx
    A[:, n:n + 2, n:n + 2] = eye2
    for j in range(1, m):                                     # e_{k-j} moves from block j-1 to block j
        A[:, n + 2 * j:n + 2 * j + 2, n + 2 * (j - 1):n + 2 * j] = eye2
    return A


@torch.no_grad()
def jacobian_profile(nets: dict[int, Network], rotation_deg: float | Perturbation = 30.0, *, targets=(0, 2, 4, 6),
                     lags=(1, 5, 10), stride: int = 5, norm: str = "spectral", controllers=(True, False),
                     closed_loop: bool = False, rates: bool = False,
                     task_cfg: TaskConfig = TaskConfig()) -> dict:
    """Figure 4a: norms of dx_{k+L}/dx_k = J_{k+L-1} ... J_k (J_k = (1-alpha) I + alpha W_rec
    diag(relu'(x_k)); the fed-back error is an input, as in adaptation) along the first trial of
    a rotation, at every ``stride``-th start step k, for each lag L, controller on and off.
    Returns {"steps": [K], (controller_on, L): array [S, len(targets), K] (NaN where k + L > T)};
    with ``closed_loop`` also ("loop", L): the x-block of the products of the closed-loop
    Jacobians (:func:`closed_loop_jacobians`) along the controller-on trajectory; with ``rates``
    also ("rate", key, L) for each of those keys: the rate Jacobian

        dr_{k+L}/dr_k = D_{k+L} (dx_{k+L}/dx_k) D_k,   D_k = diag(relu'(x_k)),

    the response of the rates L steps later to a change of the rates at k (a change that only
    the active units can carry, since r_k = relu(x_k); see the Methods page)."""
    ord_ = 2 if norm == "spectral" else "fro"
    T = task_cfg.T
    steps = np.arange(0, T, stride)
    out: dict = {"steps": steps}
    keys = list(controllers) + (["loop"] if closed_loop else [])
    for on in keys:
        for L in lags:
            out[(on, L)] = np.full((len(nets), len(targets), len(steps)), np.nan)
            if rates:
                out[("rate", on, L)] = np.full((len(nets), len(targets), len(steps)), np.nan)
    for s, net in enumerate(nets.values()):
        x0s = activity_x0s(net.cfg.n, task_cfg, net.dtype)
        for i, tgt in enumerate(targets):
            tr = test_trial(task_cfg, tgt, rotation_deg, net.dtype)
            for on in keys:
                fwd = forward(net, tr, x0s[tgt:tgt + 1].to(net.device), controller_on=on is not False)
                n = net.cfg.n
                J = closed_loop_jacobians(net, fwd) if on == "loop" else step_jacobians(net, fwd)
                for L in lags:
                    ks = [j for j, k in enumerate(steps) if k + L <= T]
                    if not ks:
                        continue
                    k0 = torch.as_tensor(steps[ks])
                    prod = J[k0].clone()
                    for m in range(1, L):
                        prod = J[k0 + m] @ prod
                    out[(on, L)][s, i, ks] = torch.linalg.matrix_norm(prod[:, :n, :n], ord=ord_).cpu().numpy()
                    if rates:
                        D = (fwd.X[:, 0, 0] > 0).to(prod.dtype)           # relu'(x_k), k = 0..T
                        rate = D[k0 + L][:, :, None] * prod[:, :n, :n] * D[k0][:, None, :]
                        out[("rate", on, L)][s, i, ks] = torch.linalg.matrix_norm(rate, ord=ord_).cpu().numpy()
    return out


@torch.no_grad()
def horizon_profile(nets: dict[int, Network], rotation_deg: float | Perturbation = 30.0, *, targets=(0, 2, 4, 6),
                    horizons=(1, 2, 5, 10, 20, 50), steps=None, controllers=(True, False),
                    task_cfg: TaskConfig = TaskConfig()) -> dict:
    """How much of the exact gradient of a step's loss comes from the last K steps
    (:func:`fbctrl.analysis.gradients.gradient_horizon`), controller on and off, on the first trial of a
    rotation. ``steps`` default: every 10th step from 60 on. Returns {"horizons": [H],
    (controller_on, "cos"|"norm_ratio"): [S, len(targets), H]}."""
    T = task_cfg.T
    if steps is None:
        steps = list(range(60, T, 10))
    out: dict = {"horizons": np.asarray(horizons), "steps": np.asarray(steps)}
    for on in controllers:
        for key in ("cos", "norm_ratio"):
            out[(on, key)] = np.zeros((len(nets), len(targets), len(horizons)))
    for s, net in enumerate(nets.values()):
        x0s = activity_x0s(net.cfg.n, task_cfg, net.dtype)
        for i, tgt in enumerate(targets):
            tr = test_trial(task_cfg, tgt, rotation_deg, net.dtype)
            for on in controllers:
                r = gradient_horizon(net, tr, x0s[tgt:tgt + 1], controller_on=on, horizons=horizons, steps=steps)
                out[(on, "cos")][s, i] = r["cos"]
                out[(on, "norm_ratio")][s, i] = r["norm_ratio"]
    return out


@torch.no_grad()
def activity_newton_cosines(nets: dict[int, Network], rotation_deg: float | Perturbation = 30.0, *, targets=(0, 2, 4, 6),
                            stride: int = 4, damping: float = 1e-3, task_cfg: TaskConfig = TaskConfig(),
                            pairing: str = "next") -> dict[str, np.ndarray]:
    """Figure 5b: cos(u_k, -(H_j + damping I)^-1 g_j) (Newton direction in activity space, H_j
    the exact n x n Hessian of the whole-trial loss w.r.t. r_j, the activity u_k acts on: j = k+1,
    or j = k with ``pairing="same"``) and cos(u_k, -g_j) (first order) at every ``stride``-th
    step, controller on, float64 -> {"steps": [K], "cos_newton", "cos_first_order": [S,
    len(targets), K]}."""
    T = task_cfg.T
    steps = list(range(1, T, stride))
    out = {"steps": np.asarray(steps),
           "cos_newton": np.zeros((len(nets), len(targets), len(steps))),
           "cos_first_order": np.zeros((len(nets), len(targets), len(steps)))}
    for s, net in enumerate(nets.values()):
        net64 = net.to(dtype=torch.float64)
        x0s = activity_x0s(net64.cfg.n, task_cfg)
        for i, tgt in enumerate(targets):
            r = activity_newton(net64, test_trial(task_cfg, tgt, rotation_deg), x0s[tgt:tgt + 1], controller_on=True,
                                damping=damping, steps=steps, pairing=pairing)
            out["cos_newton"][s, i] = r["cos_newton"]
            out["cos_first_order"][s, i] = r["cos_first_order"]
    return out


@torch.no_grad()
def rflo_direction(net: Network, trials: Trials, x0: torch.Tensor, t: int, *, controller_on: bool = True) -> np.ndarray:
    """RFLO's update direction after step t of one trial (learning rate 1, weights fixed within
    the trial): (B E[t+1])_i P_ij with the eligibility trace P after step t (Methods, "Adaptation") and B the
    RFLO feedback matrix (W_fb with feedback, W_out^T without)."""
    fwd = forward(net, trials, x0.to(net.device, net.dtype), controller_on=controller_on)
    X, Rr, E = fwd.X[:, 0, 0], fwd.R[:, 0, 0], fwd.E[:, 0, 0]
    a = net.cfg.alpha
    n = X.shape[1]
    P = torch.zeros(n, n, dtype=X.dtype, device=X.device)
    for k in range(t + 1):
        P.mul_(1 - a).add_(torch.outer((X[k + 1] > 0).to(X.dtype), Rr[k]), alpha=a)
    B = feedback_matrix(net)
    return ((B @ E[t + 1])[:, None] * P).cpu().numpy()


def flat_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


def wrec_newton_table(net: Network, rotation_deg: float | Perturbation = 30.0, *, targets=(1,), steps=(40, 80),
                      controllers=(True, False), iters=(25, 100, 400), n_eigs: int = 0, damping: float = 1e-3,
                      task_cfg: TaskConfig = TaskConfig()) -> list[dict]:
    """The published code's second comparison, at paper scale: for a few steps t of one rotated
    trial (per target), RFLO's update direction against the gradient, the Gauss-Newton step
    (closed form) and the damped Newton step ``-(H + damping I)^-1 g`` for the step loss l_t with
    respect to W_rec, the latter by Hessian-vector products and MINRES
    (:func:`fbctrl.analysis.gradients.wrec_second_order`) stopped after each number of iterations in
    ``iters`` (a truncated Krylov solve; the system is ill-conditioned, so the answer depends on
    where it stops, and the table shows how).

    One row per (target, controller, step): ``cos_rflo_grad``, ``cos_rflo_gn``, and per entry of
    ``iters`` the lists ``cos_rflo_newton``, ``cos_grad_newton``, ``iters_done``, ``residual``;
    ``seconds`` for the whole row; ``eigenvalues`` (``n_eigs`` > 0: largest-magnitude Hessian
    eigenvalues by Lanczos, at the first target and step of each controller state, to save time)."""
    x0s = activity_x0s(net.cfg.n, task_cfg, net.dtype)
    rows = []
    for target in targets:
        tr = test_trial(task_cfg, target, rotation_deg, net.dtype)
        x0 = x0s[target:target + 1]
        for on in controllers:
            for t in steps:
                t0 = time.perf_counter()
                d_rflo = rflo_direction(net, tr, x0, int(t), controller_on=on)
                row = {"controller_on": on, "step": int(t), "target": int(target), "iters": list(iters),
                       "cos_rflo_newton": [], "cos_grad_newton": [], "iters_done": [], "residual": [],
                       "eigenvalues": None}
                for j, it in enumerate(iters):
                    eig = n_eigs if (target == targets[0] and t == steps[0] and j == 0) else 0
                    w = wrec_second_order(net, tr, x0, int(t), controller_on=on, damping=damping, maxiter=int(it),
                                          n_eigs=eig)
                    if j == 0:
                        row["cos_rflo_grad"] = flat_cosine(d_rflo, -w.grad)
                        row["cos_rflo_gn"] = flat_cosine(d_rflo, w.gauss_newton)
                        row["cos_grad_gn"] = flat_cosine(-w.grad, w.gauss_newton)
                    if eig:
                        row["eigenvalues"] = w.eigenvalues
                    row["cos_rflo_newton"].append(flat_cosine(d_rflo, w.newton))
                    row["cos_grad_newton"].append(flat_cosine(-w.grad, w.newton))
                    row["iters_done"].append(w.minres_iters)
                    row["residual"].append(w.residual)
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
    return rows
