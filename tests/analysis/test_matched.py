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


# ---- both conventions of the exact gradient, and the matched-state efficiency ------------------

def _rollout_reference(net, W, tgt, x0, controller_on, loop, rotation_deg=30.0):
    """The rollout written out step by step (float64): step losses l_k = mean E[k+1]^2 as functions
    of W, the fed-back error E[k-d] (the network's delay d; zero while k < d) kept in the graph
    (``loop``) or detached; RFLO's updates at fixed W, with the current error E[k+1]."""
    tr = centre_out_reaches(TC, [tgt], dtype=torch.float64).rotated(rotation_deg)
    a, dt, d = net.cfg.alpha, net.cfg.dt, int(net.cfg.delay)
    B, W_f = feedback_matrix(net), net.W_fb * net.mask
    x, E, P = x0, [torch.zeros(2, dtype=torch.float64)], torch.zeros_like(W)
    dWs, losses = [], []
    for k in range(TC.T):
        e = E[k - d] if k >= d else torch.zeros(2, dtype=torch.float64)
        e_fb = e if loop else e.detach()
        u = W_f @ e_fb if controller_on else 0
        x_new = (1 - a) * x + a * (net.W_in @ tr.inputs[k, 0] + net.b + W @ torch.relu(x) + u)
        E.append(E[k] + dt * (tr.vref[k, 0] - (net.W_out @ torch.relu(x_new) + net.b_out)))
        P = (1 - a) * P + a * torch.outer((x_new > 0).double(), torch.relu(x)).detach()
        dWs.append((B @ E[k + 1].detach())[:, None] * P)
        losses.append(E[k + 1].pow(2).mean())
        x = x_new
    return torch.stack(dWs), losses


def _check_trial_alignment_against_autograd(net, tgt, x0):
    """trial_alignment's step gradients (detached and loop kept), local and global alignment and
    efficiency on one rotated reach, against autograd of :func:`_rollout_reference`."""
    from fbctrl.analysis.matched import trial_alignment
    trial = centre_out_reaches(TC, [tgt], dtype=torch.float64).rotated(30.0)
    for loop in (False, True):
        got = trial_alignment(net, trial, x0, controller_on=True, loop=loop)
        Wv = net.W_rec.clone().requires_grad_(True)
        dWs, losses = _rollout_reference(net, Wv, tgt, x0, True, loop)
        ref = torch.stack([torch.autograd.grad(l, Wv, retain_graph=True)[0] for l in losses])
        torch.testing.assert_close(got["step_gradients"], ref, rtol=1e-10, atol=1e-13)
        cos = torch.nn.functional.cosine_similarity
        ref_local = np.array([float(cos(d.flatten(), -g.flatten(), dim=0)) for d, g in zip(dWs, ref)])
        np.testing.assert_allclose(got["local"], ref_local, rtol=1e-9, atol=1e-12)
        assert got["global"] == pytest.approx(float(cos(dWs.sum(0).flatten(), -ref.sum(0).flatten(), dim=0)), abs=1e-10)
        eff = float(dWs.sum(0).norm() / sum(d.norm() for d in dWs))
        assert got["efficiency"] == pytest.approx(eff, rel=1e-10)
    return trial


def test_loop_kept_gradient_equals_autograd_and_finite_differences_of_the_whole_rollout():
    from fbctrl.analysis.matched import evaluation_trials, trial_alignment
    net = _net(2)
    (tgt,), x0s = evaluation_trials(7, 1, net.cfg.n, TC.n_targets)
    trial = _check_trial_alignment_against_autograd(net, tgt, x0s[0])
    # the loop-kept gradient is the derivative of the closed-loop trial loss: central differences
    i, j, h = 3, 5, 1e-6
    L = lambda W: float(sum(_rollout_reference(net, W, tgt, x0s[0], True, True)[1]))  # noqa: E731
    Wp, Wm = net.W_rec.clone(), net.W_rec.clone()
    Wp[i, j] += h
    Wm[i, j] -= h
    loop_grad = trial_alignment(net, trial, x0s[0], controller_on=True, loop=True)["step_gradients"].sum(0)
    det_grad = trial_alignment(net, trial, x0s[0], controller_on=True, loop=False)["step_gradients"].sum(0)
    assert float(loop_grad[i, j]) == pytest.approx((L(Wp) - L(Wm)) / (2 * h), rel=1e-5)
    assert not torch.allclose(loop_grad, det_grad)       # the two conventions are different gradients


def test_loop_alignment_gives_both_settings_the_same_weights_targets_and_x0():
    from fbctrl.analysis.matched import evaluation_trials, loop_alignment
    net = _net(3)
    out = loop_alignment(net, seed=4, trials=3, go_step=TC.go_step, task_cfg=TC)
    ref = matched_alignment(net, net.W_rec[None], seed=4, trials=3, go_step=TC.go_step, task_cfg=TC)
    # the same targets as the matched-state evaluation, on and off
    np.testing.assert_array_equal(out["targets"], ref["targets"][0, 0])
    np.testing.assert_array_equal(out["targets"], ref["targets"][0, 1])
    # detached: the matched-state alignment of the same weights, both settings (same W, target, x0)
    np.testing.assert_allclose(out["local_detached"], ref["local"][0], atol=1e-6)
    np.testing.assert_allclose(out["global_detached"], ref["global"][0], atol=1e-6)
    # controller off: nothing is fed back, so both conventions coincide; on: they differ
    np.testing.assert_array_equal(out["local_loop"][1], out["local_detached"][1])
    assert not np.allclose(out["local_loop"][0], out["local_detached"][0])
    # the efficiency of each setting from the written-out rollout with the same target and x0
    targets, x0s = evaluation_trials(4, 3, net.cfg.n, TC.n_targets)
    for c, on in enumerate((True, False)):
        dWs, _ = _rollout_reference(net, net.W_rec.clone(), targets[1], x0s[1], on, False)
        assert out["efficiency"][c, 1] == pytest.approx(float(dWs.sum(0).norm() / sum(d.norm() for d in dWs)),
                                                        rel=1e-10)
    with pytest.raises(ValueError, match="loop_alignment takes one network"):
        loop_alignment(type(net).stack([net, net]), seed=0, trials=1, task_cfg=TC)


@pytest.mark.parametrize("delay", [1, 3])
def test_loop_kept_gradient_with_a_delay_and_a_sparse_mask_equals_autograd(delay):
    """A delayed, sparse network (the extension's matched-state measures): the step gradients,
    detached and loop kept, equal autograd of the rollout written out here, which feeds back
    (M * W_fb) e_{k-d} (zero while k < d); RFLO's updates keep the current error E[k+1]."""
    from fbctrl.analysis.matched import evaluation_trials
    net = init_network(NetworkConfig(n=12, delay=delay, feedback_density=0.5), torch.Generator().manual_seed(5),
                       dtype=torch.float64)
    assert 0 < int(net.mask.sum()) < net.mask.numel()
    (tgt,), x0s = evaluation_trials(3, 1, net.cfg.n, TC.n_targets)
    _check_trial_alignment_against_autograd(net, tgt, x0s[0])
