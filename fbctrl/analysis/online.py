"""Online correction by the feedback controller (the paper's Figure 1a).

A pre-trained network is run, without any weight change, on centre-out reaches that are plain,
rotated (the first trial of a visuomotor rotation) or pushed, with its controller on and off.
Switching the controller off drops only the ``W_fb e`` term from the dynamics (Methods,
"Network"); the error and the loss are computed in the same way in both cases.

Pushed reaches here get exactly one pulse each (the amplitude and duration of the training pushes,
Methods, "Task") during the movement, on one output dimension drawn at random, so that every trial is perturbed; the
pushes of pre-training (probability 0.25 per dimension, centred anywhere in steps 20..189) leave
most test trials unperturbed.

Everything is drawn from ``torch.Generator(EVAL_SEED)``: every network sees the same trials and
initial states.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..core.evaluate import evaluate_trials
from ..core.model import Network, draw_x0, rollout
from ..core.task import TaskConfig, Trials, centre_out_reaches, centre_out_targets, rotate

__all__ = ["EVAL_SEED", "Condition", "single_pushes", "fixed_push", "conditions", "loss_table",
           "trial_traces", "seed_traces", "single_trial"]

EVAL_SEED = 12345


@dataclass
class Condition:
    name: str        # key: "plain", "rotated", "pushed"
    label: str       # for tables and legends
    trials: Trials
    x0: torch.Tensor


def single_pushes(task_cfg: TaskConfig, batch: int, generator: torch.Generator, *,
                  window: tuple[int, int] | None = None) -> torch.Tensor:
    """One push per trial [T, B, 2]: ``push_amplitude`` for ``push_duration`` steps on one output
    dimension (drawn at random), centred on a step drawn uniformly from ``window`` (default: the
    middle 60 % of the movement)."""
    if window is None:
        window = (task_cfg.go_step + task_cfg.move_steps // 5, task_cfg.go_step + 4 * task_cfg.move_steps // 5)
    dim = torch.randint(0, 2, (batch,), generator=generator)
    centre = torch.randint(window[0], window[1] + 1, (batch,), generator=generator)
    first = centre - task_cfg.push_duration // 2
    k = torch.arange(task_cfg.T)[:, None]
    on = (k >= first) & (k < first + task_cfg.push_duration)  # [T, B]
    push = torch.zeros(task_cfg.T, batch, 2, dtype=torch.float64)
    push[on.unsqueeze(-1).expand(-1, -1, 2) & (torch.arange(2) == dim[:, None])] = task_cfg.push_amplitude
    return push


def fixed_push(task_cfg: TaskConfig, batch: int = 1, *, step: int | None = None, dim: int = 0) -> torch.Tensor:
    """The same push for every trial [T, B, 2]: amplitude ``push_amplitude`` on output dimension
    ``dim`` for ``push_duration`` steps centred on ``step`` (default: mid-movement)."""
    if dim not in (0, 1):
        raise ValueError(f"dim must be 0 (x) or 1 (y), got {dim!r}")
    step = task_cfg.go_step + task_cfg.move_steps // 2 if step is None else int(step)
    first = step - task_cfg.push_duration // 2
    push = torch.zeros(task_cfg.T, batch, 2, dtype=torch.float64)
    push[max(first, 0):max(first + task_cfg.push_duration, 0), :, dim] = task_cfg.push_amplitude
    return push


def conditions(n: int, *, rotation_deg: float = 30.0, repeats: int = 8, task_cfg: TaskConfig = TaskConfig(),
               seed: int = EVAL_SEED) -> list[Condition]:
    """Centre-out reaches (each target ``repeats`` times) plain, rotated by ``rotation_deg`` and
    pushed, with one set of initial states (networks of size ``n``) shared by all three."""
    if repeats <= 0:
        raise ValueError(f"repeats must be a positive integer, got {repeats}")
    g = torch.Generator().manual_seed(seed)
    targets = torch.arange(task_cfg.n_targets * repeats) % task_cfg.n_targets
    plain = centre_out_reaches(task_cfg, targets)
    x0 = draw_x0(n, plain.batch_shape, g)
    pushed = replace(plain, push=single_pushes(task_cfg, len(targets), g).to(plain.push.dtype))
    return [
        Condition("plain", "centre-out", plain, x0),
        Condition("rotated", f"centre-out, rotated {rotation_deg:g}°", plain.rotated(rotation_deg), x0),
        Condition("pushed", "centre-out, pushed", pushed, x0),
    ]


@torch.no_grad()
def loss_table(nets: dict[int, Network], conds: list[Condition]) -> dict[tuple[str, bool], np.ndarray]:
    """Trial loss (mean e^2) per seed for every condition and controller state:
    ``{(condition name, controller_on): array [S]}`` in the order of ``nets``."""
    if not nets:
        return {}
    stacked = Network.stack(list(nets.values()))
    out = {}
    for c in conds:
        for on in (True, False):
            out[(c.name, on)] = evaluate_trials(stacked, c.trials, c.x0, controller_on=on)["loss"].cpu().numpy()
    return out


@torch.no_grad()
def trial_traces(net: Network, trials: Trials, x0: torch.Tensor, *, controller_on: bool = True,
                 delay: int | None = None) -> dict[str, np.ndarray]:
    """One rollout (``model.rollout``) and what the figures need, as numpy arrays:
    ``err`` |e| [T+1, B], ``hand`` hand position [T+1, B, 2] (start + dt * cumulative output velocity,
    pushes included), ``ref`` reference position [T+1, B, 2] (start + dt * cumulative lagged
    reference velocity, rotated if the trials are), ``loss`` per trial [B], ``u_norm`` |u| [T, B]."""
    ro = rollout(net, trials, x0=x0.to(net.device, net.dtype), controller_on=controller_on, delay=delay)
    dt = net.cfg.dt
    start = trials.start.cpu().to(torch.float64)   # the trials may be on the network's device
    v = ro.v.detach().cpu().to(torch.float64)
    vref = trials.vref.cpu().to(torch.float64)
    zero = torch.zeros_like(start)[None]
    hand = start + torch.cat([zero, dt * v.cumsum(0)])
    ref = start + torch.cat([zero, dt * vref.cumsum(0)])
    E = ro.E.detach().cpu().to(torch.float64)
    return {"err": E.norm(dim=-1).numpy(), "hand": hand.numpy(), "ref": ref.numpy(),
            "loss": E.pow(2).mean(dim=(0, 2)).numpy(), "u_norm": ro.u.detach().cpu().norm(dim=-1).numpy()}


def seed_traces(nets: dict[int, Network], cond: Condition, *, controller_on: bool) -> dict[str, np.ndarray]:
    """:func:`trial_traces` for every network: ``err`` [S, T+1] (mean over the condition's trials),
    ``hand`` [S, T+1, B, 2], ``ref`` [T+1, B, 2], ``loss`` [S]."""
    tr = [trial_traces(n, cond.trials, cond.x0, controller_on=controller_on) for n in nets.values()]
    return {"err": np.stack([t["err"].mean(1) for t in tr]), "hand": np.stack([t["hand"] for t in tr]),
            "ref": tr[0]["ref"], "loss": np.array([t["loss"].mean() for t in tr])}


def single_trial(task_cfg: TaskConfig, n: int, *, target: int = 0, rotation_deg: float = 0.0, push: bool = False,
                 push_step: int | None = None, push_dim: int | None = None, seed: int = EVAL_SEED
                 ) -> tuple[Trials, torch.Tensor, np.ndarray]:
    """One centre-out trial (``target`` index), optionally rotated and pushed (a push orthogonal
    to the reach's main axis, mid-movement, unless ``push_dim`` says otherwise), with a fixed
    initial state. Returns (trials, x0 [1, n], the rotated target position [2])."""
    tr = centre_out_reaches(task_cfg, [target])
    if push:
        if push_dim is None:
            end = centre_out_targets(task_cfg)[target]
            push_dim = 1 if abs(float(end[0])) >= abs(float(end[1])) else 0
        tr = replace(tr, push=fixed_push(task_cfg, 1, step=push_step, dim=push_dim).to(tr.push.dtype))
    if rotation_deg:
        tr = tr.rotated(rotation_deg)
    x0 = draw_x0(n, tr.batch_shape, torch.Generator().manual_seed(seed))
    tgt = rotate(centre_out_targets(task_cfg)[target], rotation_deg).numpy()
    return tr, x0, tgt
