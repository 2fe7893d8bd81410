"""Helpers shared by the tests (imported as ``tests.helpers``; pytest puts the repository root on
the path because ``tests/`` is a package).

``ROOT``: the repository root; ``DATA``: the tests' reference files (``tests/data``);
``gen(seed)``: a seeded ``torch.Generator`` (the tests never use the global RNG);
``autograd_loss_and_grads``: the pre-training loss and its gradients by autograd, the reference
for the hand-written BPTT and the trainer; ``unit_meta(path)``: a unit file's ``meta`` read
directly from the ``.npz``; ``fake_sweep``: sweep files with chosen final losses;
``SHORT_TASK`` and ``small_net``: a short reaching task and a small float64 network for the
adaptation tests; ``untrained_net``: an untrained network whose small feedback gain keeps the
loop stable (the analyses' and the chapters' tiny stores); ``kernels``: switch the one-run kernels for one test; ``notebook_cells`` and
``cited_by_module``: a book notebook's cells and the glue keys its markdown expects from its
chapter's module.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from fbctrl.core.model import PARAM_NAMES, NetworkConfig, init_network, rollout
from fbctrl.core.task import TaskConfig
from fbctrl.experiments import paper
from fbctrl.experiments.store import file_sha256
from fbctrl.learning import ckernels

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SHORT_TASK = TaskConfig(T=24, go_step=4, move_steps=16)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def autograd_loss_and_grads(net, trials, x0, controller_on, delay, rate=2e-3, weights=1e-3, recurrent=1e-3):
    """The pre-training loss (Methods, "Pre-training") written out on top of model.rollout,
    differentiated by autograd: task + rate * mean r^2 + weights * (|W_in| + |W_out| + |b_out| +
    |W_fb * mask| + |b|) + recurrent * |W_rec|, Frobenius norms."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.params().items()}
    ro = rollout(net.replace(**params), trials, x0=x0, controller_on=controller_on, delay=delay)
    p = params
    task = ro.E.pow(2).mean()
    rate_term = ro.r[1:].pow(2).mean()
    wsum = (p["W_in"].norm() + p["W_out"].norm() + p["b_out"].norm() + (p["W_fb"] * net.mask).norm()
            + p["b"].norm())
    loss = task + rate * rate_term + weights * wsum + recurrent * p["W_rec"].norm()
    grads = torch.autograd.grad(loss, [p[k] for k in PARAM_NAMES])
    return loss.detach(), task.detach(), rate_term.detach(), dict(zip(PARAM_NAMES, grads)), ro


def unit_meta(path) -> dict:
    """The ``meta`` of a unit file, read with numpy and json alone (not through the store)."""
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


def fake_sweep(cfg, cond, finals):
    """Sweep files for ``cond`` whose final test loss per rate (same for every seed) is ``finals``."""
    for lr, f in zip(cfg.sweep_rates[cond.rule.value], finals):
        for u in paper.sweep_units(cfg, cond, [lr]):
            rec = {"test_loss": np.full(u.trials, f)}
            ck = paper.PretrainUnit("fb", u.seed).path(cfg)       # the network it was run on, where there is one
            net = {"sha256": file_sha256(ck)} if ck.is_file() else {}
            paper.write_unit(cfg, u, rec, {"diverged_trial": -1 if math.isfinite(f) else 0, "network": net})


def small_net(n=12, density=1.0, seed=0, dtype=torch.float64, scale=1.0):
    """A network of ``n`` units (seed ``seed``) with its recurrent weights scaled by ``scale``."""
    net = init_network(NetworkConfig(n=n, feedback_density=density), gen(seed), dtype=dtype)
    return net.replace(W_rec=net.W_rec * scale)


def untrained_net(n: int, seed: int, density: float = 1.0):
    """An untrained network of ``n`` units (seed ``seed``) whose feedback weights are scaled by
    0.05: a small feedback gain keeps the untrained loop stable."""
    net = init_network(NetworkConfig(n=n, feedback_density=density), gen(seed))
    return net.replace(W_fb=net.W_fb * 0.05)


def kernels(monkeypatch, mode: str):
    """Switch the one-run kernels (fbctrl.learning.ckernels) for this test; undone after it."""
    monkeypatch.setenv("FBCTRL_KERNELS", mode)
    ckernels.reset()
    return ckernels


def notebook_cells(name: str) -> list[dict]:
    """The cells of ``book/{name}.ipynb``."""
    return json.loads((ROOT / "book" / f"{name}.ipynb").read_text())["cells"]


def cited_by_module(name: str) -> set[str]:
    """Keys the markdown of ``book/{name}.ipynb`` cites, less those the notebook glues itself (its
    set-up cell) and those of another notebook (``other.ipynb::key``)."""
    cells = notebook_cells(name)
    cited = {k for c in cells if c["cell_type"] == "markdown" for k in re.findall(r"\{glue:text\}`([^`]+)`",
                                                                                   "".join(c["source"])) if "::" not in k}
    own = {k for c in cells if c["cell_type"] == "code"
           for k in re.findall(r"glue_\w+\(\"(\w+)\"", "".join(c["source"]))}
    return cited - own


def shipped_store(ck: Path, res: Path, n: int, sizes) -> None:
    """A tiny store of the shipped family (networks pre-trained with pushes) in ``ck`` / ``res``:
    untrained networks of ``n`` units with feedback (seeds 0, 1) and without (seed 5), and their
    units at ``sizes`` computed by the store's runner as ``paper --networks shipped`` does."""
    from fbctrl import book
    from fbctrl.book import data
    from fbctrl.core.checkpoint import save_checkpoint
    from fbctrl.experiments import shipped

    conf = {"n": n, "batches": 3, "batch_size": 4, "train_push": True, "feedback_density": 1.0, "delay": 0}
    for s in (0, 1):
        save_checkpoint(untrained_net(n, s), ck / f"fb_n{n}_seed{s}.pt", {"seed": s, "config": conf})
    save_checkpoint(untrained_net(n, 5, density=0.0), ck / f"nofb_n{n}_seed5.pt",
                    {"seed": 5, "config": {**conf, "feedback_density": 0.0}})
    cfg = data.store_config(book.validate_params(profile="default", checkpoint_dir=str(ck), results_dir=str(res)))
    paper.run_plan(cfg, progress=False, log=lambda *a: None, planner=lambda c: shipped.plan(c, sizes))


def strong_loop_trial(net, n: int):
    """Target 3 of a 30 degree rotation on ``net`` in float64 with its feedback 20 times stronger
    (so that the loop matters), controller on: (net, task, trials, forward pass)."""
    from fbctrl.analysis import network
    from fbctrl.core.bptt import forward
    from fbctrl.core.task import centre_out_reaches

    net = net.to(dtype=torch.float64)
    net = net.replace(W_fb=net.W_fb * 20)
    tc = TaskConfig()
    tr = centre_out_reaches(tc, [3], dtype=torch.float64).rotated(30.0)
    x0 = network.activity_x0s(n, tc)[3:4]
    return net, tc, tr, forward(net, tr, x0, controller_on=True)
