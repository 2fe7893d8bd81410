"""Local and global alignment of RFLO at matched states (finding 2, the fair version of Fig 4b-c).

Along an adaptation run (``adapt(..., align=True)``) the alignment of RFLO+c and of RFLO is
measured on two different runs, so later trials compare differently adapted networks. Here both
controller settings are evaluated from the *same* weights W_rec, the same targets and the same
initial states: for each snapshot W (taken from an adaptation run at a few trials), K evaluation
trials are run twice, controller on and off, with the weights frozen (every step's RFLO update
is computed, never applied), and per trial

    local  = mean over steps k >= go of cos(dW_RFLO(k), -d l_k / dW)      (l_k = mean E[k+1]^2)
    global = cos(sum_k dW_RFLO(k), -d L / dW)                              (L = the trial's loss)

with the exact gradients through the weights each step ran with (here: W) and the fed-back error
detached (``rules.OnlineBPTT``). Both settings draw their targets and initial states from
``Generator(EVAL_SEED_OFFSET + network seed)``, so trial i has the same target and x0 in both:
the settings are paired trial by trial.

:func:`loop_alignment` measures the same at one weight matrix by autograd of the whole rollout in
float64, under both conventions for the exact gradient: the fed-back error detached (as above,
the published code's dormant branch) and the loop kept (the gradient then includes the
controller's response, Methods, "How the findings are measured"), with the scale-free per-trial efficiency
of RFLO's updates,
|sum_k dW_k| / sum_k |dW_k|, from the same weights, targets and initial states on and off
(:func:`evaluation_trials` draws them exactly as :func:`matched_alignment` does).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.model import Network, draw_x0, rollout
from ..core.task import TaskConfig, centre_out_reaches
from ..core.tasks import Perturbation, task_for_config
from ..learning.adapt import RunSpec, adapt, feedback_matrix

__all__ = ["matched_alignment", "EVAL_SEED_OFFSET", "evaluation_trials", "trial_alignment", "loop_alignment", "step_gradients"]

EVAL_SEED_OFFSET = 100_000   # evaluation trials never reuse an adaptation run's target sequence


def matched_alignment(net: Network, W: torch.Tensor, *, seed: int, trials: int = 32, go_step: int = 20,
                      rotation_deg: float = 30.0, task_cfg: TaskConfig = TaskConfig(), device=None) -> dict:
    """Alignment of RFLO with the controller on and off from the same weights.

    ``net``: one network (its W_rec is replaced); ``W``: [P, n, n] weight snapshots. Returns
    {"local": [P, 2, trials], "global": [P, 2, trials]} with axis 1 = (controller on, off), and
    "targets" [P, 2, trials] (identical along axis 1 by construction)."""
    if net.stacked:
        raise ValueError("matched_alignment takes one network")
    P = W.shape[0]
    nets = Network.stack([net.replace(W_rec=W[p].to(net.W_rec)) for p in range(P)])
    runs = [RunSpec(net_index=p, controller_on=ctrl, rotation_deg=rotation_deg, lr=1.0,
                    seed=EVAL_SEED_OFFSET + int(seed)) for p in range(P) for ctrl in (True, False)]
    res = adapt(nets, "rflo", runs, trials=trials, align=True, align_every=1, test_every=10**9, frozen=True,
                progress=False, on_divergence="mark", device=device, task_cfg=task_cfg)
    local = np.nanmean(res.records["align_local"][:, :, go_step:], axis=2).reshape(P, 2, trials)
    return {"local": local, "global": res.records["align_global"].reshape(P, 2, trials),
            "targets": res.records["target"].reshape(P, 2, trials)}


def evaluation_trials(seed: int, trials: int, n: int, n_targets: int = 8) -> tuple[list[int], torch.Tensor]:
    """The targets and initial states (float64 [trials, n]) of the matched-state evaluation of
    network ``seed``: drawn from ``Generator(EVAL_SEED_OFFSET + seed)`` in the order
    ``adapt`` draws them (each trial's target, then its x_0), so trial i is the one
    :func:`matched_alignment` runs."""
    g = torch.Generator().manual_seed(EVAL_SEED_OFFSET + int(seed))
    targets, x0s = [], []
    for _ in range(int(trials)):
        targets.append(int(torch.randint(n_targets, (1,), generator=g)))
        x0s.append(draw_x0(n, (), g, torch.float64))
    return targets, torch.stack(x0s)


def _rflo_updates(net: Network, X: torch.Tensor, R: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """RFLO's update after every step k of one trial at frozen weights, learning rate 1 (Methods, "Adaptation"):
    P_k = (1 - alpha) P_{k-1} + alpha relu'(x_{k+1}) r_k^T, dW_k = (B E[k+1])_i P_k,ij -> [T, n, n]."""
    a = net.cfg.alpha
    B = feedback_matrix(net).to(X)
    T, n = X.shape[0] - 1, X.shape[1]
    P = torch.zeros(n, n, dtype=X.dtype)
    out = torch.empty(T, n, n, dtype=X.dtype)
    for k in range(T):
        P.mul_(1 - a).add_(torch.outer((X[k + 1] > 0).to(X.dtype), R[k]), alpha=a)
        out[k] = (B @ E[k + 1])[:, None] * P
    return out


def _cos_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)


def step_gradients(net: Network, X: torch.Tensor, E: torch.Tensor, *, controller_on: bool, loop: bool) -> torch.Tensor:
    """d l_k / dW_rec for every step loss l_k = mean E[k+1]^2 of one trial at fixed weights
    (float64 [T, n, n]), by one backward sweep of all T adjoints at once. With the rollout
    x_{m+1} = (1 - a) x_m + a (W r_m + I_m + F e_{m-d}), e_{m+1} = e_m + dt (vref_m - W_out r_{m+1} - b_out)
    (F = M * W_fb, d the feedback delay), the adjoints of loss k, xi_m = dl_k/dx_m and
    eps_m = dl_k/de_m, obey (m = T .. 1)

        eps_m = [m = k+1] e_m + eps_{m+1} + [loop] a F^T xi_{m+d+1}
        xi_m  = (1 - a) xi_{m+1} + a D_m W^T xi_{m+1} - dt D_m W_out^T eps_m,   D_m = relu'(x_m)

    and dl_k/dW = a sum_m xi_m r_{m-1}^T. ``loop=False`` drops the F^T term (the fed-back error
    detached, the published code's convention); with the controller off there is no F term."""
    a, dt, d = net.cfg.alpha, net.cfg.dt, int(net.cfg.delay)
    W, W_out = net.W_rec.detach().to(X), net.W_out.detach().to(X)
    F = (net.W_fb * net.mask).detach().to(X)
    T, n = X.shape[0] - 1, X.shape[1]
    D = (X > 0).to(X)
    xi = torch.zeros(T + d + 2, T, n, dtype=X.dtype)              # xi[m] for m = 0 .. T+d+1 (zero past T)
    eps = torch.zeros(T, E.shape[1], dtype=X.dtype)
    for m in range(T, 0, -1):
        if controller_on and loop:
            eps = eps + a * (xi[m + d + 1] @ F)
        eps[m - 1] += E[m]
        xi[m] = ((1 - a) * xi[m + 1] + a * (xi[m + 1] @ W) * D[m] - dt * (eps @ W_out) * D[m])
    R = torch.relu(X)
    return a * torch.einsum("mkn,mj->knj", xi[1:T + 1], R[:T])


def trial_alignment(net: Network, trial, x0: torch.Tensor, *, controller_on: bool, loop: bool) -> dict:
    """One trial at the network's weights (float64): per step k the cosine of RFLO's update dW_k
    with -dl_k/dW_rec, l_k = mean E[k+1]^2 (``local`` [T]), the cosine of sum_k dW_k with
    -dL/dW_rec, L = sum_k l_k (``global``), the scale-free efficiency |sum_k dW_k| / sum_k |dW_k|
    (``efficiency``) and the step gradients (``step_gradients`` [T, n, n], :func:`step_gradients`:
    the fed-back error detached, ``loop=False``, or kept, ``loop=True``). One trial: ``trial`` of
    batch shape [1]."""
    net = net.to(dtype=torch.float64)
    with torch.no_grad():
        ro = rollout(net, trial.to(dtype=torch.float64), controller_on=controller_on,
                     x0=x0.reshape(1, -1).to(torch.float64))
        X, E = ro.x[:, 0], ro.E[:, 0]
        T = X.shape[0] - 1
        grads = step_gradients(net, X, E, controller_on=controller_on, loop=loop)
        dW = _rflo_updates(net, X, ro.r[:, 0], E)
        total = dW.sum(0)
        return {"local": _cos_rows(dW, -grads).numpy(),
                "global": float(_cos_rows(total[None], -grads.sum(0)[None])[0]),
                "efficiency": float(total.norm() / dW.reshape(T, -1).norm(dim=1).sum().clamp_min(1e-300)),
                "step_gradients": grads}


def loop_alignment(net: Network, *, seed: int, trials: int = 32, go_step: int = 20,
                   rotation_deg: float | Perturbation = 30.0, task_cfg=TaskConfig()) -> dict:
    """At ``net``'s weights, controller on and off (axis 0 of every array), on the matched-state
    evaluation trials of network ``seed`` (:func:`evaluation_trials`): local alignment (mean over
    steps k >= go_step) and global alignment with the fed-back error detached and with the loop
    kept (``local_detached``, ``local_loop``, ``global_detached``, ``global_loop`` [2, trials];
    with the controller off nothing is fed back, so both conventions are the same), the
    scale-free efficiency (``efficiency`` [2, trials]) and ``targets`` [trials]. ``rotation_deg``
    may be a ``Perturbation`` of the task of ``task_cfg`` (e.g. the limit cycle's
    ``FrequencyShift``): the trials are then that task's test conditions under it."""
    if net.stacked:
        raise ValueError("loop_alignment takes one network")
    if isinstance(task_cfg, TaskConfig) and not isinstance(rotation_deg, Perturbation):
        base = centre_out_reaches(task_cfg, dtype=torch.float64)
        base = base.rotated(rotation_deg) if rotation_deg else base
    else:       # another task's test conditions under its perturbation (Methods, "Beyond the paper")
        task = task_for_config(task_cfg)
        base = task.perturb(task.test_conditions(torch.float64), rotation_deg)
    targets, x0s = evaluation_trials(seed, trials, net.cfg.n, base.batch_shape[0])
    keys = ("local_detached", "local_loop", "global_detached", "global_loop", "efficiency")
    out = {k: np.full((2, trials), np.nan) for k in keys}
    for i, (tgt, x0) in enumerate(zip(targets, x0s)):
        trial = base.select([tgt])
        for c, on in enumerate((True, False)):
            for loop in ((False, True) if on else (False,)):
                r = trial_alignment(net, trial, x0, controller_on=on, loop=loop)
                tag = "loop" if loop else "detached"
                out[f"local_{tag}"][c, i] = float(np.mean(r["local"][go_step:]))
                out[f"global_{tag}"][c, i] = r["global"]
                out["efficiency"][c, i] = r["efficiency"]
        out["local_loop"][1, i], out["global_loop"][1, i] = out["local_detached"][1, i], out["global_detached"][1, i]
    out["targets"] = np.asarray(targets)
    return out
