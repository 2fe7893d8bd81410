"""Test sets and their losses (SPEC 3: centre-out, rotated centre-out, random, random pushed,
random with the controller off)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .bptt import forward
from .model import Network, draw_x0
from .task import TaskConfig, Trials, centre_out_reaches, random_reaches

__all__ = ["TestSet", "standard_test_sets", "evaluate_trials", "evaluate", "TASKS"]

TASKS = ("centre-out", "random")


@dataclass
class TestSet:
    name: str
    trials: Trials
    x0: torch.Tensor
    controller_on: bool = True


def make_trials(task: str, trials: int, generator: torch.Generator, *, rotation_deg: float = 0.0,
                push: bool = False, task_cfg: TaskConfig = TaskConfig()) -> Trials:
    """``trials`` trials of ``task``; centre-out trials are spread evenly over the targets
    (target i for trial i mod n_targets)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if trials <= 0:
        raise ValueError(f"trials must be a positive integer, got {trials}")
    if task == "random":
        return random_reaches(task_cfg, trials, generator, push=push, rotation_deg=rotation_deg)
    targets = torch.arange(trials) % task_cfg.n_targets
    return centre_out_reaches(task_cfg, targets, push=push, generator=generator, rotation_deg=rotation_deg)


def standard_test_sets(n: int, *, seed: int = 12345, batch: int = 256, centre_out_repeats: int = 8,
                       rotation_deg: float = 30.0, task_cfg: TaskConfig = TaskConfig()) -> list[TestSet]:
    """The five test sets of pre-training, drawn once from a fixed generator so that every
    network and every evaluation sees the same trials and initial states."""
    g = torch.Generator().manual_seed(seed)
    co = make_trials("centre-out", task_cfg.n_targets * centre_out_repeats, g, task_cfg=task_cfg)
    co_x0 = draw_x0(n, co.batch_shape, g)
    rnd = make_trials("random", batch, g, task_cfg=task_cfg)
    rnd_x0 = draw_x0(n, rnd.batch_shape, g)
    push = make_trials("random", batch, g, push=True, task_cfg=task_cfg)
    push_x0 = draw_x0(n, push.batch_shape, g)
    return [
        TestSet("centre_out", co, co_x0),
        TestSet(f"centre_out_rot{rotation_deg:g}", co.rotated(rotation_deg), co_x0),
        TestSet("random", rnd, rnd_x0),
        TestSet("random_push", push, push_x0),
        TestSet("random_ctrl_off", rnd, rnd_x0, controller_on=False),
    ]


def evaluate_trials(net: Network, trials: Trials, x0: torch.Tensor, *, controller_on: bool = True) -> dict:
    """Loss (mean E^2 over T+1 steps, trials, both dims) per network [S] and the final position
    error |E[T]| per trial [S, B] (S = 1 for a single network)."""
    if net.stacked:
        S = net.n_networks
        trials = Trials.stack([trials] * S)
        x0 = x0.unsqueeze(0).expand(S, *x0.shape)
    fwd = forward(net, trials, x0.to(net.device, net.dtype), controller_on=controller_on, keep_x=False)
    return {"loss": fwd.task_loss(), "final_error": fwd.E[-1].norm(dim=-1)}


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
