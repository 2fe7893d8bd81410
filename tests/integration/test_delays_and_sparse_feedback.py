"""Feedback delays and sparse feedback (Methods, "Feedback delays and sparse feedback") through the
model, pre-training, adaptation and the analyses: with a delay d the fed-back error is E[k - d]
(zero before), checked against the model written out step by step and autograd; the sparse mask
has the right fraction of ones, is nested, fixed and applied everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from fbctrl.analysis import gradients, network
from fbctrl.core.bptt import Regularisation, forward, loss_and_grads
from fbctrl.core.model import NetworkConfig, draw_x0, init_network, rollout, trial_loss
from fbctrl.core.task import TaskConfig, centre_out_reaches, random_reaches
from fbctrl.core.tasks import LimitCycleConfig, make_task
from fbctrl.core.train import PretrainConfig, Trainer, pretrain
from fbctrl.learning.adapt import RunSpec, adapt, feedback_matrix
from tests.helpers import gen


F64 = torch.float64
SMALL_LC = LimitCycleConfig(T=60, go_step=6, freq_low=2.0, freq_high=4.0, n_test_freqs=4)
TC = TaskConfig(T=30, go_step=5, move_steps=20)


def _delayed_net(delay, density=1.0, n=10, seed=1, gain=4.0, n_in=3):
    net = init_network(NetworkConfig(n=n, n_in=n_in, feedback_density=density, delay=delay), gen(seed), dtype=F64)
    return net.replace(W_fb=net.W_fb * gain)                 # a loop strong enough to matter


def _written_out(net, tr, x0, d, probes=None, detach=False):
    """The model written out step by step: e_fb = E[k - d] (zero before), optional probes added to r_j."""
    a, dt = net.cfg.alpha, net.cfg.dt
    W_f = net.W_fb * net.mask
    T = tr.T
    x = x0
    r = torch.relu(x) + (probes[0] if probes is not None else 0)
    Es = [torch.zeros(x0.shape[:-1] + (2,), dtype=x0.dtype)]
    for k in range(T):
        e_fb = Es[k - d] if k - d >= 0 else torch.zeros_like(Es[0])
        e_fb = e_fb.detach() if detach else e_fb
        x = (1 - a) * x + a * (tr.inputs[k] @ net.W_in.T + net.b + r @ net.W_rec.T + e_fb @ W_f.T)
        r = torch.relu(x) + (probes[k + 1] if probes is not None else 0)
        Es.append(Es[k] + dt * (tr.vref[k] - (r @ net.W_out.T + net.b_out + tr.push[k])))
    return torch.stack(Es)


@pytest.mark.parametrize("task", ["reach", "limit-cycle"])
def test_delay_d_feeds_back_E_k_minus_d_and_pretraining_gradients_match_autograd(task):
    d = 3
    t = make_task(task, TC if task == "reach" else SMALL_LC)
    net = _delayed_net(d, density=0.5, n_in=t.n_in)
    tr = t.training_batch(3, gen(2), dtype=F64)
    x0 = draw_x0(net.cfg.n, (3,), gen(3), F64)
    ro = rollout(net, tr, x0=x0)
    torch.testing.assert_close(ro.e_fb[d:], ro.E[: tr.T - d])
    assert torch.all(ro.e_fb[:d] == 0)
    torch.testing.assert_close(ro.E, _written_out(net, tr, x0, d))
    params = {k: v.clone().requires_grad_(True) for k, v in net.params().items()}
    reg = Regularisation()
    E = _written_out(net.replace(**params), tr, x0, d)
    loss = trial_loss(E)
    ro2 = rollout(net.replace(**params), tr, x0=x0)
    loss = loss + reg.rate * ro2.r[1:].pow(2).mean() + reg.weights * sum(
        params[k].norm() for k in ("W_in", "W_out", "b_out", "b")) + reg.weights * (params["W_fb"] * net.mask).norm() \
        + reg.recurrent * params["W_rec"].norm()
    auto = torch.autograd.grad(loss, list(params.values()))
    _, grads, _ = loss_and_grads(net, tr, x0, reg)
    for (k, g_auto) in zip(params, auto):
        want = g_auto * net.mask if k == "W_fb" else g_auto
        torch.testing.assert_close(grads[k], want, rtol=1e-9, atol=1e-12, msg=k)
    # the trainer builds its networks with the delay it trains with
    trainer = Trainer(PretrainConfig(n=6, delay=d, batches=1, batch_size=2, task=task, train_push=False), [0])
    assert trainer.net.cfg.delay == d and trainer.current_net().cfg.delay == d


def test_adaptation_uses_the_networks_delay():
    net = _delayed_net(3, n=12)
    run = [RunSpec(0, True, 30.0, 1e-3, 0)]
    kw = dict(trials=2, task_cfg=TC, progress=False, dtype=F64)
    own = adapt(net, "bptt", run, **kw)
    assert own.meta["delay"] == 3
    np.testing.assert_allclose(own["test_loss"], adapt(net, "bptt", run, delay=3, **kw)["test_loss"], rtol=0, atol=0)
    assert not np.allclose(own["train_loss"], adapt(net, "bptt", run, delay=0, **kw)["train_loss"])


def test_activity_gradients_with_a_delay_match_autograd():
    d = 4
    net = _delayed_net(d, n=10)
    tr = centre_out_reaches(TC, [2], dtype=F64).rotated(30)
    x0 = draw_x0(10, (1,), gen(5), F64)
    ag = gradients.activity_gradients(net, tr, x0)
    probes = torch.zeros(tr.T + 1, 1, 10, dtype=F64, requires_grad=True)
    E = _written_out(net, tr, x0, d, probes=probes, detach=True)       # the fed-back error is an input
    g = torch.autograd.grad(trial_loss(E), probes)[0]
    torch.testing.assert_close(ag.neg_grad_trial, -g[2:], rtol=1e-9, atol=1e-13)    # pairing "next": r_2 .. r_T
    W_f = net.W_fb * net.mask
    E_fb = torch.cat([torch.zeros(d - 1, 2, dtype=F64), E.detach()[: tr.T - d, 0]])
    torch.testing.assert_close(ag.u[:, 0], E_fb @ W_f.T)                  # u_k = W_f E[k - d], k = 1 .. T-1


@pytest.mark.parametrize("d", [0, 1, 3])
def test_closed_loop_jacobians_with_a_delay_match_autograd_of_the_rollout(d):
    from torch.func import jacrev

    net = _delayed_net(d, n=10, gain=20.0)
    tr = centre_out_reaches(TC, [3], dtype=F64).rotated(30)
    x0 = network.activity_x0s(10, TC)[3:4]                   # the initial state jacobian_profile uses
    fwd = forward(net, tr, x0, controller_on=True)
    X, E = fwd.X[:, 0, 0], fwd.E[:, 0, 0]
    a, dt, W_f = net.cfg.alpha, net.cfg.dt, net.W_fb * net.mask
    k, L = 12, 9

    def x_after(xk):   # from x_k, with E[0..k-1] as they were; every later error is differentiated
        Es = list(E[:k])
        Es.append(E[k - 1] + dt * (tr.vref[k - 1, 0] - net.W_out @ torch.relu(xk) - net.b_out))
        x = xk
        for j in range(k, k + L):
            e_fb = Es[j - d] if j - d >= 0 else torch.zeros(2, dtype=F64)
            x = (1 - a) * x + a * (net.W_in @ tr.inputs[j, 0] + net.b + net.W_rec @ torch.relu(x) + W_f @ e_fb)
            Es.append(Es[j] + dt * (tr.vref[j, 0] - net.W_out @ torch.relu(x) - net.b_out))
        return x

    torch.testing.assert_close(x_after(X[k]), X[k + L], rtol=1e-10, atol=1e-12)      # the same dynamics
    ref = jacrev(x_after)(X[k])
    A = network.closed_loop_jacobians(net, fwd)
    assert A.shape[-1] == 10 + 2 * max(d, 1)
    prod = A[k]
    for m in range(1, L):
        prod = A[k + m] @ prod
    torch.testing.assert_close(prod[:10, :10], ref, rtol=1e-8, atol=1e-10)
    open_loop = gradients.step_jacobians(net, fwd)[k:k + L]
    po = open_loop[0]
    for m in range(1, L):
        po = open_loop[m] @ po
    assert not torch.allclose(po, ref, rtol=1e-3)                           # the loop matters here
    prof = network.jacobian_profile({0: net}, 30.0, targets=(3,), lags=(L,), stride=k, closed_loop=True,
                                     norm="frobenius", task_cfg=TC)
    np.testing.assert_allclose(prof[("loop", L)][0, 0, 1], float(ref.norm()), rtol=1e-6)


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_density_mask_fraction_nested_and_same_weights_as_dense(p):
    for seed in range(3):
        sparse = init_network(NetworkConfig(n=400, feedback_density=p), gen(seed))
        dense = init_network(NetworkConfig(n=400), gen(seed))
        m = sparse.mask
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        ones = int(m.sum())
        assert scipy.stats.binomtest(ones, m.numel(), p).pvalue > 1e-3
        assert torch.equal(sparse.W_rec, dense.W_rec) and torch.equal(sparse.W_in, dense.W_in)
        assert torch.equal(sparse.W_fb, dense.W_fb * m)
        wider = init_network(NetworkConfig(n=400, feedback_density=0.5), gen(seed)).mask
        assert torch.all(wider[m.bool()] == 1)                                # nested across densities


def test_mask_stays_fixed_and_applied_through_pretraining():
    cfg = PretrainConfig(n=30, feedback_density=0.3, batches=4, batch_size=4, eval_every=2, checkpoint_every=10,
                         train_push=False)
    tr = pretrain(cfg, [0, 1], None, progress=False, task_cfg=TC)
    start = Trainer(cfg, [0, 1], task_cfg=TC)
    assert torch.equal(tr.net.mask, start.net.mask)
    W_fb = tr.params["W_fb"]
    assert torch.all(W_fb[tr.net.mask == 0] == 0)
    assert torch.all((W_fb != start.params["W_fb"])[tr.net.mask == 1])        # the unmasked entries learn
    # masked-out entries are ignored by the dynamics and the gradients (junk stored there changes nothing)
    net = start.current_net().select(0).to(dtype=F64)
    junk = net.replace(W_fb=net.W_fb + 5.0 * (1 - net.mask))
    trials = random_reaches(TC, 3, gen(1), dtype=F64)
    x0 = draw_x0(30, (3,), gen(2), F64)
    l1, g1, _ = loss_and_grads(net, trials, x0)
    l2, g2, _ = loss_and_grads(junk, trials, x0)
    for k in g1:
        torch.testing.assert_close(g1[k], g2[k], rtol=0, atol=0, msg=k)
    assert torch.equal(l1["total"], l2["total"])


@pytest.mark.parametrize("rule", ["rflo", "bptt"])
def test_mask_applied_through_adaptation(rule):
    net = _delayed_net(0, density=0.3, n=14, seed=4, gain=0.5)
    junk = net.replace(W_fb=net.W_fb + 0.2 * (1 - net.mask))
    dense = net.replace(mask=torch.ones_like(net.mask), W_fb=junk.W_fb)
    run = [RunSpec(0, True, 30.0, 1e-3, 0)]
    kw = dict(trials=3, task_cfg=TC, progress=False, dtype=F64)
    a, b = adapt(net, rule, run, **kw), adapt(junk, rule, run, **kw)
    np.testing.assert_array_equal(a["train_loss"], b["train_loss"])
    torch.testing.assert_close(a.W_final, b.W_final, rtol=0, atol=0)
    assert not np.allclose(a["train_loss"], adapt(dense, rule, run, **kw)["train_loss"])
    assert torch.all(feedback_matrix(junk)[net.mask == 0] == 0)               # RFLO's learning signal is masked too
