"""Test sets and their losses (Methods, "Pre-training": centre-out, rotated centre-out, random, random pushed,
random with the controller off; the limit cycle's: ``core.tasks.LimitCycle.test_sets``)."""

from __future__ import annotations

import torch

from .bptt import forward
from .model import Network, draw_x0
from .task import TaskConfig, Trials
from .tasks import REACH_SETS, LimitCycle, LimitCycleConfig, Reach, TestSet, cycle_metrics
from .tasks.perturbations import FrequencyShift

__all__ = ["TestSet", "standard_test_sets", "evaluate_trials", "evaluate", "evaluate_cycles", "TASKS", "make_trials"]

TASKS = REACH_SETS


def make_trials(task: str, trials: int, generator: torch.Generator, *, rotation_deg: float = 0.0,
                push: bool = False, task_cfg: TaskConfig = TaskConfig()) -> Trials:
    """``trials`` reaching trials of the test set ``task`` ('centre-out' or 'random'; ``Reach.make_trials``)."""
    return Reach(task_cfg).make_trials(task, trials, generator, rotation_deg=rotation_deg, push=push)


def standard_test_sets(n: int, *, seed: int = 12345, batch: int = 256, centre_out_repeats: int = 8,
                       rotation_deg: float = 30.0, task_cfg: TaskConfig = TaskConfig()) -> list[TestSet]:
    """The five test sets of pre-training on the reaching task (``Reach.test_sets``)."""
    return Reach(task_cfg).test_sets(n, seed=seed, batch=batch, centre_out_repeats=centre_out_repeats,
                                     rotation_deg=rotation_deg)


def evaluate_trials(net: Network, trials: Trials, x0: torch.Tensor, *, controller_on: bool = True,
                    keep_outputs: bool = False) -> dict:
    """Loss (mean E^2 over T+1 steps, trials, both dims) per network [S] and the final position
    error |E[T]| per trial [S, B] (S = 1 for a single network); with ``keep_outputs`` also the
    outputs v [T, S, B, 2] (v_k = (E[k] - E[k+1]) / dt + vref_k)."""
    if net.stacked:
        S = net.n_networks
        trials = Trials.stack([trials] * S)
        x0 = x0.unsqueeze(0).expand(S, *x0.shape)
    fwd = forward(net, trials, x0.to(net.device, net.dtype), controller_on=controller_on, keep_x=False)
    out = {"loss": fwd.task_loss(), "final_error": fwd.E[-1].norm(dim=-1)}
    if keep_outputs:
        vref = trials.vref.to(fwd.E.device, fwd.E.dtype)
        vref = vref if net.stacked else vref.unsqueeze(1)
        out["v"] = (fwd.E[:-1] - fwd.E[1:]) / net.cfg.dt + vref
    return out


def evaluate(net: Network, task: str = "centre-out", *, rotation_deg: float = 0.0, controller_on: bool = True,
             push: bool = False, trials: int = 64, seed: int = 0, task_cfg: TaskConfig = TaskConfig()) -> dict:
    """Evaluate one network: mean loss and, for centre-out, the mean final position error per target."""
    g = torch.Generator().manual_seed(seed)
    tr = make_trials(task, trials, g, rotation_deg=rotation_deg, push=push, task_cfg=task_cfg)
    x0 = draw_x0(net.cfg.n, tr.batch_shape, g)
    res = evaluate_trials(net, tr, x0, controller_on=controller_on)
    out = {"loss": float(res["loss"][0]), "final_error": float(res["final_error"].mean())}
    if task == "centre-out":
        fe = res["final_error"][0]
        out["final_error_per_target"] = [float(fe[tr.target == i].mean()) if (tr.target == i).any() else None
                                         for i in range(task_cfg.n_targets)]
    return out


def evaluate_cycles(net: Network, *, shift_hz: float = 0.0, controller_on: bool = True, trials: int = 64,
                    seed: int = 0, task_cfg: LimitCycleConfig = LimitCycleConfig()) -> dict:
    """Evaluate one limit-cycle network on the test frequencies (trial i at frequency i mod
    n_test_freqs), the target shifted by ``shift_hz``: the loss, and the error of the output's
    spectral-peak frequency against the target's (Hz; mean and per test frequency)."""
    task = LimitCycle(task_cfg)
    g = torch.Generator().manual_seed(seed)
    base = task.test_conditions()
    tr = base.select(torch.arange(trials) % base.batch_shape[0])
    if shift_hz:
        tr = task.perturb(tr, FrequencyShift(shift_hz))
    x0 = draw_x0(net.cfg.n, tr.batch_shape, g)
    res = evaluate_trials(net, tr, x0, controller_on=controller_on, keep_outputs=True)
    m = cycle_metrics(res["v"][:, 0].cpu(), tr, task_cfg)
    err = m["freq_error_hz"]
    return {"loss": float(res["loss"][0]), "freq_error_hz": float(err.mean()),
            "amplitude": float(m["amplitude"].mean()),
            "freq_error_per_test_freq": [float(err[tr.target == i].mean()) for i in range(base.batch_shape[0])
                                         if (tr.target == i).any()]}
