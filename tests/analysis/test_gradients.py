"""Analyses (Methods, "How the findings are measured") against torch.autograd / torch.func on small
networks, in float64."""

import numpy as np
import pytest
import torch
from torch.func import hessian

from fbctrl.analysis import gradients
from fbctrl.analysis.gradients import (activity_gradients, activity_newton, gradient_horizon, jacobian_norms,
                             one_thread, solve_each, wrec_second_order)
from fbctrl.core.model import NetworkConfig, draw_x0, init_network
from fbctrl.core.task import TaskConfig, centre_out_reaches

torch.set_num_threads(1)
TC = TaskConfig(T=20, go_step=3, move_steps=14)
D64 = torch.float64


def setup(n=9, seed=0, target=1, rotation=30.0):
    g = torch.Generator().manual_seed(seed)
    net = init_network(NetworkConfig(n=n), g, dtype=D64)
    tr = centre_out_reaches(TC, [target], dtype=D64).rotated(rotation)
    x0 = draw_x0(n, (1,), g, D64)
    return net, tr, x0


def replay(net, tr, x0, controller_on, delta=None, W=None, e_fb=None):
    """Reference rollout in plain torch; delta [T+1, n] is added to r_k where r_k is used;
    e_fb (if given) are the fed-back errors, treated as fixed inputs."""
    a, dt = net.cfg.alpha, net.cfg.dt
    W = net.W_rec if W is None else W
    T = tr.T
    x = x0[0]
    E = [torch.zeros(2, dtype=D64)]
    for k in range(T):
        r = torch.relu(x) + (delta[k] if delta is not None else 0)
        fb = (E[k] if e_fb is None else e_fb[k]).detach()
        h = net.W_in @ tr.inputs[k, 0] + net.b + W @ r + ((net.W_fb * net.mask) @ fb if controller_on else 0)
        x = (1 - a) * x + a * h
        r_new = torch.relu(x) + (delta[k + 1] if delta is not None else 0)
        v = net.W_out @ r_new + net.b_out + tr.push[k, 0]
        E.append(E[k] + dt * (tr.vref[k, 0] - v))
    return torch.stack(E)


@pytest.mark.parametrize("pairing", ["next", "same"])
@pytest.mark.parametrize("controller_on", [True, False])
def test_activity_gradients_match_autograd(controller_on, pairing):
    """u_k (k = 1..T-1) is paired with the gradient w.r.t. r_{k+1} (the activity it acts on, as the
    published code pairs them) or, with pairing "same", w.r.t. r_k."""
    net, tr, x0 = setup()
    res = activity_gradients(net, tr, x0, controller_on=controller_on, pairing=pairing)
    T = TC.T
    shift = 1 if pairing == "next" else 0
    delta = torch.zeros(T + 1, net.cfg.n, dtype=D64, requires_grad=True)
    E = replay(net, tr, x0, controller_on, delta=delta)
    (g,) = torch.autograd.grad(E.pow(2).mean(), delta)
    torch.testing.assert_close(res.neg_grad_trial[:, 0], -g[1 + shift:T + shift], rtol=1e-9, atol=1e-14)
    # instantaneous: l_j = mean(E[j]^2) depends on r_j only through v_{j-1}: -dt W_out^T E[j]
    for k in (2, 7, T - 1):
        j = k + shift
        gk = -net.cfg.dt * net.W_out.mT @ E[j].detach()
        torch.testing.assert_close(res.neg_grad_inst[k - 1, 0], -gk)
    assert res.cos_trial.shape == (T - 1, 1)
    with pytest.raises(ValueError, match="pairing must be one of next, same"):
        activity_gradients(net, tr, x0, pairing="k")


@pytest.mark.parametrize("pairing", ["next", "same"])
def test_activity_hessian_and_newton_match_torch_func(pairing):
    net, tr, x0 = setup(n=7, seed=2)
    steps = [2, 9, 15]
    res = activity_newton(net, tr, x0, controller_on=True, steps=steps, pairing=pairing)
    T = TC.T
    for i, k in enumerate(steps):
        k = k + (1 if pairing == "next" else 0)       # the activity u_k is compared with
        def L(dk):
            delta = torch.zeros(T + 1, net.cfg.n, dtype=D64)
            delta = delta.index_put((torch.tensor([k]),), dk[None])
            return replay(net, tr, x0, True, delta=delta).pow(2).mean()
        z = torch.zeros(net.cfg.n, dtype=D64)
        H = hessian(L)(z)
        g = torch.func.grad(L)(z)
        newton = -torch.linalg.solve(H + 1e-3 * torch.eye(net.cfg.n, dtype=D64), g)
        np.testing.assert_allclose(res["grad"][i], g.numpy(), rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(res["newton"][i], newton.numpy(), rtol=1e-7, atol=1e-12)


def test_solve_each_is_right_where_the_batched_solve_breaks_on_threads():
    """After torch.set_num_threads(2), the batched CPU LU of 400 x 400 matrices fails or errs
    (pytorch/pytorch issue 142815); solve_each solves each system to machine precision, on any
    thread count, and the activity Newton step uses it."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 400, 400, generator=g, dtype=D64)
    A = A @ A.mT + torch.eye(400, dtype=D64)
    b = torch.randn(3, 400, generator=g, dtype=D64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        x = solve_each(A, b)
    finally:
        torch.set_num_threads(before)
    ref = np.stack([np.linalg.solve(A[i].numpy(), b[i].numpy()) for i in range(3)])
    np.testing.assert_allclose(x.numpy(), ref, rtol=1e-9, atol=1e-12)
    assert solve_each(A[:0], b[:0]).shape == (0, 400)


def test_wrec_newton_runs_on_one_thread_and_restores_the_count(monkeypatch):
    seen = []
    hvp = gradients.WrecHessian.hvp
    monkeypatch.setattr(gradients.WrecHessian, "hvp", lambda self, V: (seen.append(torch.get_num_threads()), hvp(self, V))[1])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        net, tr, x0 = setup(n=6, seed=5)
        wrec_second_order(net, tr, x0, 5, maxiter=5)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("closed_loop", [False, True])
def test_jacobian_norms_match_autograd(closed_loop):
    net, tr, x0 = setup(n=8, seed=3)
    lags = (1, 3)
    res = jacobian_norms(net, tr, x0, controller_on=True, lags=lags, closed_loop=closed_loop)
    # reference: trajectory, then the one-step map x_k -> x_{k+1} differentiated by autograd
    a, dt = net.cfg.alpha, net.cfg.dt
    W_f = net.W_fb * net.mask
    x = x0[0]
    E = torch.zeros(2, dtype=D64)
    xs, Es = [x], [E]
    for k in range(TC.T):
        x = (1 - a) * x + a * (net.W_in @ tr.inputs[k, 0] + net.b + net.W_rec @ torch.relu(x) + W_f @ E)
        E = E + dt * (tr.vref[k, 0] - net.W_out @ torch.relu(x) - net.b_out)
        xs.append(x)
        Es.append(E)

    def step(k):
        def f(xk):
            if closed_loop:  # E[k] as a function of x_k through v_{k-1} = W_out relu(x_k) + b_out
                Ek = Es[k - 1] + dt * (tr.vref[k - 1, 0] - net.W_out @ torch.relu(xk) - net.b_out) if k > 0 else Es[0]
            else:
                Ek = Es[k]
            return (1 - a) * xk + a * (net.W_in @ tr.inputs[k, 0] + net.b + net.W_rec @ torch.relu(xk) + W_f @ Ek)
        return torch.autograd.functional.jacobian(f, xs[k])

    Js = [step(k) for k in range(TC.T)]
    for k in (1, 5, 12):
        np.testing.assert_allclose(res[1][k], torch.linalg.matrix_norm(Js[k], ord=2).item(), rtol=1e-10)
        P = Js[k + 2] @ Js[k + 1] @ Js[k]
        np.testing.assert_allclose(res[3][k], torch.linalg.matrix_norm(P, ord=2).item(), rtol=1e-10)


def test_gradient_horizon_full_window_is_the_whole_gradient():
    net, tr, x0 = setup(n=10, seed=4)
    res = gradient_horizon(net, tr, x0, horizons=(1, 5, 100), steps=[10, 15])
    np.testing.assert_allclose(res["cos"][-1], 1.0, atol=1e-12)
    np.testing.assert_allclose(res["norm_ratio"][-1], 1.0, atol=1e-12)
    assert res["cos"][0] < 1.0


def test_wrec_newton_by_minres_equals_dense_newton():
    n = 6
    net, tr, x0 = setup(n=n, seed=5)
    t = 12
    res = wrec_second_order(net, tr, x0, t, controller_on=True, rtol=1e-12, maxiter=2000, n_eigs=3)
    # dense reference: Hessian of l_t w.r.t. W_rec, fed-back errors fixed at their recorded values
    E_rec = replay(net, tr, x0, True).detach()

    def l(Wflat):
        E = replay(net, tr, x0, True, W=Wflat.reshape(n, n), e_fb=E_rec)
        return E[t + 1].pow(2).mean()

    w = net.W_rec.reshape(-1).clone()
    H = hessian(l)(w)
    g = torch.func.grad(l)(w)
    newton = -torch.linalg.solve(H + 1e-3 * torch.eye(n * n, dtype=D64), g)
    np.testing.assert_allclose(res.grad.reshape(-1), g.numpy(), rtol=1e-9, atol=1e-15)
    rel = np.linalg.norm(res.newton.reshape(-1) - newton.numpy()) / np.linalg.norm(newton.numpy())
    assert rel < 1e-4, rel
    top = np.sort(np.linalg.eigvalsh(H.numpy()))
    top = top[np.argsort(-np.abs(top))][:3]
    np.testing.assert_allclose(np.sort(res.eigenvalues), np.sort(top), rtol=1e-3)
    # Gauss-Newton direction: J^T J with J = dE[t+1]/dW
    J = torch.autograd.functional.jacobian(lambda W: replay(net, tr, x0, True, W=W.reshape(n, n), e_fb=E_rec)[t + 1], w)
    gn = -torch.linalg.solve(J.T @ J + 1e-3 * torch.eye(n * n, dtype=D64), g)
    np.testing.assert_allclose(res.gauss_newton.reshape(-1), gn.numpy(), rtol=1e-6, atol=1e-12)


def test_wrec_hvp_equals_autograd_double_backward():
    from fbctrl.analysis.gradients import WrecHessian, _step_loss_fn

    n = 8
    net, tr, x0 = setup(n=n, seed=6)
    E_rec = replay(net, tr, x0, True).detach()
    t = 14
    hess = WrecHessian(net, tr, x0[0], E_rec[:TC.T], t, True)
    f = _step_loss_fn(net, tr, x0[0], E_rec[:TC.T], t, True)
    W = net.W_rec.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(W)[0], W, create_graph=True)
    V = torch.randn(n, n, generator=torch.Generator().manual_seed(0), dtype=D64)
    (Hv,) = torch.autograd.grad(g, W, grad_outputs=V)
    torch.testing.assert_close(hess.grad, g.detach(), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(hess.hvp(V), Hv, rtol=1e-9, atol=1e-13)
