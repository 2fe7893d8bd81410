"""Matched-state alignment: both controller settings from the same weights, targets and x0, with
the weights frozen, against an autograd reference written out here."""

import numpy as np
import pytest
import torch

from fbctrl.learning.adapt import RunSpec, adapt, feedback_matrix
from fbctrl.analysis.matched import EVAL_SEED_OFFSET, matched_alignment
from fbctrl.core.model import NetworkConfig, draw_x0, init_network
from fbctrl.core.task import TaskConfig, centre_out_reaches

TC = TaskConfig(T=24, go_step=4, move_steps=16)


def _net(seed=0):
    return init_network(NetworkConfig(n=12), torch.Generator().manual_seed(seed), dtype=torch.float64)


def _reference(net, W, seed, controller_on, rotation_deg=30.0):
    """Trial 0 of Generator(seed) at fixed W: per-step cos(dW_RFLO(k), -dl_k/dW) and the
    whole-trial cos(sum dW_RFLO, -dL/dW), feedback detached, all by autograd."""
    g = torch.Generator().manual_seed(seed)
    tgt = int(torch.randint(TC.n_targets, (1,), generator=g))
    x0 = draw_x0(net.cfg.n, (), g, torch.float64)
    tr = centre_out_reaches(TC, [tgt], dtype=torch.float64).rotated(rotation_deg)
    a, dt = net.cfg.alpha, net.cfg.dt
    Wv = W.clone().requires_grad_(True)
    B, W_f = feedback_matrix(net), net.W_fb * net.mask
    x, E, P = x0, [torch.zeros(2, dtype=torch.float64)], torch.zeros_like(W)
    dWs, step_losses = [], []
    for k in range(TC.T):
        u = W_f @ E[k].detach() if controller_on else 0
        x_new = (1 - a) * x + a * (net.W_in @ tr.inputs[k, 0] + net.b + Wv @ torch.relu(x) + u)
        E.append(E[k] + dt * (tr.vref[k, 0] - (net.W_out @ torch.relu(x_new) + net.b_out)))
        P = (1 - a) * P + a * torch.outer((x_new > 0).double(), torch.relu(x)).detach()
        dWs.append((B @ E[k + 1].detach())[:, None] * P)
        step_losses.append(E[k + 1].pow(2).mean())
        x = x_new
    cos = torch.nn.functional.cosine_similarity
    local = [float(cos(d.flatten(), -torch.autograd.grad(l, Wv, retain_graph=True)[0].flatten(), dim=0))
             for d, l in zip(dWs, step_losses)]
    L = torch.stack(E).pow(2).mean()
    glob = float(cos(torch.stack(dWs).sum(0).flatten(), -torch.autograd.grad(L, Wv)[0].flatten(), dim=0))
    return np.array(local), glob, tgt


def test_frozen_rflo_keeps_the_weights_and_computes_its_updates():
    net = _net()
    runs = [RunSpec(controller_on=True, lr=1.0, seed=3)]
    res = adapt(net, "rflo", runs, trials=3, frozen=True, align=True, progress=False, task_cfg=TC,
                dtype=torch.float64, keep_weights=(0, 3))
    assert torch.equal(res.W_final[0], net.W_rec)
    assert torch.equal(res.weights[0][0], net.W_rec) and torch.equal(res.weights[3][0], net.W_rec)
    assert (res.records["dW_path"] > 0).all() and (res.records["dW_trial"] == 0).all()
    with pytest.raises(ValueError, match="frozen adaptation is implemented for rule 'rflo' only"):
        adapt(net, "bptt", runs, trials=1, frozen=True, progress=False, task_cfg=TC)
    with pytest.raises(ValueError, match="keep_weights must be trial indices in 0..3"):
        adapt(net, "rflo", runs, trials=3, keep_weights=(4,), progress=False, task_cfg=TC)


def test_matched_alignment_pairs_both_settings_and_equals_autograd():
    net = _net(1)
    W = torch.stack([net.W_rec, net.W_rec * 0.8])
    out = matched_alignment(net, W, seed=5, trials=3, go_step=TC.go_step, task_cfg=TC)
    assert out["local"].shape == (2, 2, 3) and out["global"].shape == (2, 2, 3)
    np.testing.assert_array_equal(out["targets"][:, 0], out["targets"][:, 1])   # same targets on and off
    for p in range(2):
        for i, ctrl in enumerate((True, False)):
            local, glob, tgt = _reference(net, W[p], EVAL_SEED_OFFSET + 5, ctrl)
            assert out["targets"][p, i, 0] == tgt
            assert out["local"][p, i, 0] == pytest.approx(np.nanmean(local[TC.go_step:]), abs=1e-6)
            assert out["global"][p, i, 0] == pytest.approx(glob, abs=1e-6)
    # the two settings really differ (the controller changes the trajectory)
    assert not np.allclose(out["local"][:, 0], out["local"][:, 1])
