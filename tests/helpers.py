"""Helpers shared by the tests (imported as ``tests.helpers``; pytest puts the repository root on
the path because ``tests/`` is a package).

``ROOT``: the repository root; ``DATA``: the tests' reference files (``tests/data``);
``gen(seed)``: a seeded ``torch.Generator`` (the tests never use the global RNG);
``autograd_loss_and_grads``: the pre-training loss and its gradients by autograd, the reference
for the hand-written BPTT and the trainer.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fbctrl.core.model import PARAM_NAMES, rollout

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


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
