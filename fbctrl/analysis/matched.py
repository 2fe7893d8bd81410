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
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.model import Network
from ..core.task import TaskConfig
from ..learning.adapt import RunSpec, adapt

__all__ = ["matched_alignment", "EVAL_SEED_OFFSET"]

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
