"""The network-level analyses (fbctrl.analysis.network) on tiny untrained networks, against
independent computations: the instantaneous activity cosines by hand, Jacobian profiles against
fbctrl.analysis.gradients and against autograd through the closed loop (states and rates), the full
horizon recovering the gradient, RFLO's direction against its closed-form trace, and the Newton and
W_rec tables' ranges."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fbctrl.analysis import gradients as analysis, network
from fbctrl.core.model import rollout
from fbctrl.core.task import TaskConfig, centre_out_reaches
from tests.helpers import strong_loop_trial, untrained_net

N = 10  # units


def test_activity_cosines_instantaneous_is_feedback_vs_readout():
    net = untrained_net(N, 3)
    tc = TaskConfig()
    out = network.activity_cosines({3: net}, 30.0, task_cfg=tc)
    assert out["cos_trial"].shape == (1, 8, tc.T - 1)
    n64 = net.to(dtype=torch.float64)
    tgt = 5
    x0 = network.activity_x0s(N, tc)[tgt:tgt + 1]
    ro = rollout(n64, centre_out_reaches(tc, [tgt], dtype=torch.float64).rotated(30.0), x0=x0)
    E = ro.E[:, 0]
    k = np.arange(1, tc.T)
    u = E[k] @ n64.W_fb.mT                  # u_k = W_fb e_k (delay 0) acts on r_{k+1}
    g = E[k + 1] @ n64.W_out                # -dl_{k+1}/dr_{k+1} is dt W_out^T e_{k+1}
    ref = (u * g).sum(-1) / (u.norm(dim=-1) * g.norm(dim=-1))
    np.testing.assert_allclose(out["cos_inst"][0, tgt], ref.numpy(), rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(out["cos_trial_null"]) <= 1 + 1e-12)
    assert network.movement_mean(out["cos_trial"]).shape == (1,)


def test_jacobian_profile_matches_analysis():
    net = untrained_net(N, 1)
    tc = TaskConfig()
    prof = network.jacobian_profile({1: net}, 30.0, targets=(2,), lags=(1, 3), stride=7, task_cfg=tc)
    x0 = network.activity_x0s(N, tc, net.dtype)[2:3]
    tr = centre_out_reaches(tc, [2], dtype=net.dtype).rotated(30.0)
    for on in (True, False):
        ref = analysis.jacobian_norms(net, tr, x0, controller_on=on, lags=(1, 3), ord=2)
        for L in (1, 3):
            got = prof[(on, L)][0, 0]
            ok = prof["steps"] + L <= tc.T
            np.testing.assert_allclose(got[ok], ref[L][prof["steps"][ok]], rtol=1e-4)
            assert np.isnan(got[~ok]).all()


def test_closed_loop_jacobian_products_match_autograd_through_the_loop():
    from torch.func import jacrev

    net, tc, tr, fwd = strong_loop_trial(untrained_net(N, 7), N)    # a strong loop, so that it matters
    X, E = fwd.X[:, 0, 0], fwd.E[:, 0, 0]
    a, dt = net.cfg.alpha, net.cfg.dt
    s, vref = tr.inputs[:, 0], tr.vref[:, 0]
    k, L = 30, 6

    def x_after(xk):  # the model written out from (x_k, e_{k-1}); the fed-back error is differentiated
        e = E[k - 1] + dt * (vref[k - 1] - net.W_out @ torch.relu(xk) - net.b_out)
        x = xk
        for j in range(k, k + L):
            x = (1 - a) * x + a * (net.W_in @ s[j] + net.b + net.W_rec @ torch.relu(x) + net.W_fb @ e)
            e = e + dt * (vref[j] - net.W_out @ torch.relu(x) - net.b_out)
        return x

    np.testing.assert_allclose(x_after(X[k]).numpy(), X[k + L].numpy(), rtol=1e-10)  # same dynamics
    ref = jacrev(x_after)(X[k])
    A = network.closed_loop_jacobians(net, fwd)
    prod = A[k]
    for m in range(1, L):
        prod = A[k + m] @ prod
    np.testing.assert_allclose(prod[:N, :N].numpy(), ref.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(A[k, :N, :N].numpy(), analysis.step_jacobians(net, fwd, closed_loop=True)[k].numpy(),
                               rtol=1e-12)
    po = analysis.step_jacobians(net, fwd)[k:k + L]
    prod_open = po[0]
    for m in range(1, L):
        prod_open = po[m] @ prod_open
    assert not np.allclose(prod_open.numpy(), ref.numpy())
    prof = network.jacobian_profile({7: net}, 30.0, targets=(3,), lags=(L,), stride=k, closed_loop=True,
                                     norm="frobenius", task_cfg=tc)
    np.testing.assert_allclose(prof[("loop", L)][0, 0, 1], np.linalg.norm(ref.numpy()), rtol=1e-6)


def test_horizon_profile_full_horizon_recovers_the_gradient():
    net = untrained_net(N, 2)
    hp = network.horizon_profile({2: net}, 30.0, targets=(0,), horizons=(1, 200), steps=[60, 90])
    np.testing.assert_allclose(hp[(True, "cos")][0, 0, 1], 1.0, rtol=1e-4)
    np.testing.assert_allclose(hp[(False, "norm_ratio")][0, 0, 1], 1.0, rtol=1e-4)
    assert np.all(hp[(True, "norm_ratio")][0, 0] <= 1 + 1e-4)


def test_rflo_direction_matches_the_closed_form_trace():
    net = untrained_net(N, 4).to(dtype=torch.float64)
    tc = TaskConfig()
    tr = centre_out_reaches(tc, [1], dtype=torch.float64).rotated(30.0)
    x0 = network.activity_x0s(N, tc)[1:2]
    t = 37
    for on in (True, False):
        ro = rollout(net, tr, x0=x0, controller_on=on)
        x, r, E = ro.x[:, 0], ro.r[:, 0], ro.E[:, 0]   # x, r: [T+1, n] including the initial state
        a = net.cfg.alpha
        P = sum((1 - a) ** (t - k) * a * torch.outer((x[k + 1] > 0).double(), r[k]) for k in range(t + 1))
        ref = (net.W_fb @ E[t + 1])[:, None] * P
        np.testing.assert_allclose(network.rflo_direction(net, tr, x0, t, controller_on=on), ref.numpy(),
                                   rtol=1e-8, atol=1e-12)


def test_activity_newton_and_wrec_table_run_on_a_tiny_network():
    net = untrained_net(N, 6)
    an = network.activity_newton_cosines({6: net}, 30.0, targets=(0,), stride=40)
    assert an["cos_newton"].shape == (1, 1, len(an["steps"]))
    rows = network.wrec_newton_table(net, 30.0, targets=(1,), steps=(20,), iters=(5, 30), n_eigs=2)
    assert [r["controller_on"] for r in rows] == [True, False]
    for r in rows:
        assert len(r["cos_rflo_newton"]) == 2 and r["iters_done"][0] <= 5
        for v in r["cos_rflo_newton"] + r["cos_grad_newton"] + [r["cos_rflo_grad"], r["cos_rflo_gn"]]:
            assert -1 - 1e-9 <= v <= 1 + 1e-9
    assert rows[0]["eigenvalues"] is not None and len(rows[0]["eigenvalues"]) == 2
    assert rows[1]["eigenvalues"] is not None  # each controller state, first step


@pytest.mark.parametrize("closed_loop", [False, True])
def test_rate_jacobian_is_autograd_of_the_later_rates_wrt_the_active_rates(closed_loop):
    """dr_(k+L)/dr_k: the rates r_k = relu(x_k) changed on the units active at k (the only change
    the rates can carry), rolled L steps through the model written out, differentiated by autograd."""
    from torch.func import jacrev

    net, tc, tr, fwd = strong_loop_trial(untrained_net(N, 7), N)    # a strong loop, so that it matters
    X, E = fwd.X[:, 0, 0], fwd.E[:, 0, 0]
    a, dt = net.cfg.alpha, net.cfg.dt
    s, vref = tr.inputs[:, 0], tr.vref[:, 0]
    k, L = 30, 4
    active = X[k] > 0
    assert 0 < int(active.sum()) < N

    def r_after(rk):
        xk = torch.where(active, rk, X[k])
        e = E[k - 1] + dt * (vref[k - 1] - net.W_out @ torch.relu(xk) - net.b_out) if closed_loop else E[k]
        x = xk
        for j in range(k, k + L):
            x = (1 - a) * x + a * (net.W_in @ s[j] + net.b + net.W_rec @ torch.relu(x) + net.W_fb @ e)
            e = e + dt * (vref[j] - net.W_out @ torch.relu(x) - net.b_out) if closed_loop else E[j + 1]
        return torch.relu(x)

    np.testing.assert_allclose(r_after(torch.relu(X[k])).numpy(), torch.relu(X[k + L]).numpy(), rtol=1e-10)
    ref = jacrev(r_after)(torch.relu(X[k]))
    prof = network.jacobian_profile({7: net}, 30.0, targets=(3,), lags=(L,), stride=k, closed_loop=True,
                                     rates=True, norm="frobenius", task_cfg=tc)
    key = ("rate", "loop" if closed_loop else True, L)
    np.testing.assert_allclose(prof[key][0, 0, 1], np.linalg.norm(ref.numpy()), rtol=1e-6)
    x_key = ("loop" if closed_loop else True, L)
    assert prof[key][0, 0, 1] < prof[x_key][0, 0, 1]     # the masks remove the inactive units' paths
