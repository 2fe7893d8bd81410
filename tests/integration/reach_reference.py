"""Reaching results on small networks, for the check that the task interface changed none of them.

``compute()`` runs, at a few seconds' cost, the code paths the refactor to ``core.tasks`` and
``NetworkSpec`` went through: pre-training (pushed and published data, a delay, a sparse mask),
the test sets of pre-training, adaptation with RFLO and exact online BPTT (with the alignment, a
delay, the controller on and off) and the closed-loop Jacobian profile. The file
``tests/data/reach_reference.npz`` holds what the code *before* the refactor computed (commit
2f1eb54, made with ``python tests/integration/reach_reference.py tests/data/reach_reference.npz`` on that
commit's package); ``tests/integration/test_reach_reference.py`` recomputes it with the current code and compares.
Only functions both versions have are called here.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from fbctrl.analysis import network
from fbctrl.core.evaluate import evaluate_trials, standard_test_sets
from fbctrl.core.task import TaskConfig
from fbctrl.core.train import PretrainConfig, pretrain
from fbctrl.learning.adapt import RunSpec, adapt

TC = TaskConfig(T=30, go_step=5, move_steps=20)
PRETRAIN = {  # name -> (density, delay, pushes)
    "fb_push": (1.0, 0, True), "nofb": (0.0, 0, False), "fb_d2": (1.0, 2, False), "fb0.5": (0.5, 0, False),
}


def _pretrained(density: float, delay: int, push: bool):
    cfg = PretrainConfig(n=20, feedback_density=density, delay=delay, batches=3, batch_size=8, eval_every=1,
                         checkpoint_every=10, train_push=push)
    return pretrain(cfg, [0, 1], None, progress=False, task_cfg=TC)


def compute() -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    out = {}
    for name, (density, delay, push) in PRETRAIN.items():
        tr = _pretrained(density, delay, push)
        for k, v in tr.params.items():
            out[f"pretrain/{name}/{k}"] = v.numpy().copy()
        for k, v in tr.evals.items():
            out[f"pretrain/{name}/eval_{k}"] = np.asarray(v, dtype=np.float64)
        if name in ("fb_push", "fb_d2"):
            nets = tr.current_net()
            net0 = nets.select(0)
            for ts in standard_test_sets(20, batch=16, centre_out_repeats=2, task_cfg=TC):
                out[f"tests/{name}/{ts.name}"] = evaluate_trials(nets, ts.trials, ts.x0,
                                                                 controller_on=ts.controller_on)["loss"].numpy()
            runs = [RunSpec(0, True, 30.0, 1e-3, 3), RunSpec(1, False, 45.0, 2e-4, 4)]
            for rule in ("rflo", "bptt"):
                res = adapt(nets, rule, runs, trials=3, task_cfg=TC, align=True, progress=False)
                for k, v in res.records.items():
                    out[f"adapt/{name}/{rule}/{k}"] = np.asarray(v, dtype=np.float64)
                one = adapt(net0, rule, [RunSpec(0, True, 30.0, 1e-3, 5)], trials=2, task_cfg=TC, progress=False)
                out[f"adapt1/{name}/{rule}/test_loss"] = one.records["test_loss"]
            if delay == 0:
                prof = network.jacobian_profile({0: net0.to(dtype=torch.float64)}, 30.0, targets=(1,), lags=(1, 3),
                                                stride=4, closed_loop=True, task_cfg=TC)
                for key in ((True, 3), (False, 3), ("loop", 3)):
                    out[f"jacobian/{name}/{key[0]}_{key[1]}"] = prof[key]
    return out


if __name__ == "__main__":
    np.savez_compressed(sys.argv[1], **compute())
