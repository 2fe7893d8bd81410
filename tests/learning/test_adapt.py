"""Adaptation rules and engine against torch.autograd and the formulas of Methods, "Adaptation"."""

import math

import numpy as np
import pytest
import torch

from fbctrl.core.model import NetworkConfig, draw_x0, init_network
from fbctrl.core.task import TaskConfig, centre_out_reaches
from fbctrl.learning.adapt import DivergenceError, RunSpec, adapt, feedback_matrix
from tests.helpers import SHORT_TASK, kernels, small_net


def replay(net, run: RunSpec, rule: str, task_cfg=SHORT_TASK, delay=0, lr=None, error_start="zero"):
    """Reference: one adaptation trial written with autograd. Online BPTT's gradient at step k is
    the gradient of mean(E[k+1]^2) with respect to a common offset Delta added to the weights
    each past step actually used (feedback detached); RFLO follows the formula of Methods, "Adaptation",
    literally.
    Returns the weights after the trial and the per-step weight changes."""
    g = torch.Generator().manual_seed(run.seed)
    tgt = int(torch.randint(task_cfg.n_targets, (1,), generator=g))
    x0 = draw_x0(net.cfg.n, (), g, net.dtype)
    tr = centre_out_reaches(task_cfg, [tgt], dtype=net.dtype).rotated(run.rotation_deg)
    s, vref = tr.inputs[:, 0], tr.vref[:, 0]
    a, dt = net.cfg.alpha, net.cfg.dt
    W = net.W_rec.clone()
    W_f = net.W_fb * net.mask
    B = feedback_matrix(net)
    lr = run.lr if lr is None else lr
    hist, dWs = [], []
    P = torch.zeros_like(W)
    x = x0.clone()
    E = [torch.zeros(2, dtype=net.dtype) if error_start == "zero" else net.W_out @ torch.relu(x0) + net.b_out]
    xs = [x0]
    for k in range(task_cfg.T):
        hist.append(W.clone())
        # forward step with the current weights
        efb = E[k - delay] if k - delay >= 0 else torch.zeros(2, dtype=net.dtype)
        h = net.W_in @ s[k] + net.b + W @ torch.relu(x) + (W_f @ efb if run.controller_on else 0)
        x_new = (1 - a) * x + a * h
        v = net.W_out @ torch.relu(x_new) + net.b_out
        E.append(E[k] + dt * (vref[k] - v))
        if rule == "rflo":
            P = (1 - a) * P + a * torch.outer((x_new > 0).to(net.dtype), torch.relu(x))
            dW = lr * (B @ E[k + 1])[:, None] * P
        else:
            Delta = torch.zeros_like(W, requires_grad=True)
            xx = x0.clone()
            EE = E[0].detach().clone()
            Es = [EE]
            for j in range(k + 1):
                efb_j = (Es[j - delay] if j - delay >= 0 else torch.zeros(2, dtype=net.dtype)).detach()
                hh = net.W_in @ s[j] + net.b + (hist[j] + Delta) @ torch.relu(xx) + (W_f @ efb_j if run.controller_on else 0)
                xx = (1 - a) * xx + a * hh
                vv = net.W_out @ torch.relu(xx) + net.b_out
                EE = EE + dt * (vref[j] - vv)
                Es.append(EE)
            loss = EE.pow(2).mean()
            (grad,) = torch.autograd.grad(loss, Delta)
            dW = -lr * grad
        dWs.append(dW)
        W = W + dW
        x = x_new
        xs.append(x)
    return W, dWs, torch.stack(E)


def random_trial_state(g, R, n, T, with_history=False):
    """A random finished trial (float64) for the rules' unit tests."""
    from fbctrl.learning.rules import TrialState

    X = torch.randn(R, T + 1, n, generator=g, dtype=torch.float64)
    E = torch.randn(R, T + 1, 2, generator=g, dtype=torch.float64)
    Wh = torch.randn(R, T + 1, n, n, generator=g, dtype=torch.float64) if with_history else None
    W_out = torch.randn(R, 2, n, generator=g, dtype=torch.float64)
    return TrialState(X=X, Rh=torch.relu(X), aD=0.2 * (X > 0).to(torch.float64), E=E, Wh=Wh,
                      W_out=W_out, alpha=0.2, dt=0.01)


@pytest.mark.parametrize("controller_on", [True, False])
@pytest.mark.parametrize("rule", ["bptt", "rflo"])
def test_one_trial_matches_autograd_reference(rule, controller_on):
    net = small_net()
    run = RunSpec(controller_on=controller_on, rotation_deg=30.0, lr=0.5, seed=3)
    res = adapt(net, rule, [run], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    W_ref, dWs, E = replay(net, run, rule)
    rel = (res.W_final[0] - W_ref).norm() / (W_ref - net.W_rec).norm()
    assert rel < 1e-9, rel
    assert math.isclose(res["train_loss"][0, 0], float(E.pow(2).mean()), rel_tol=1e-9)
    path = sum(float(d.norm()) for d in dWs)
    assert math.isclose(res["dW_path"][0, 0], path, rel_tol=1e-9)


def test_online_bptt_gradient_equals_autograd_at_several_steps():
    """The adjoint gradient of step k's loss equals autograd's, with weights changing in-trial."""
    net = small_net(n=10, seed=1)
    run = RunSpec(controller_on=True, rotation_deg=45.0, lr=2.0, seed=5)
    res = adapt(net, "bptt", [run], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    _, dWs, _ = replay(net, run, "bptt")
    # the engine's per-step changes are checked through the final weights above; here each step
    # of the reference must be a genuine gradient: non-zero and different across steps
    norms = [float(d.norm()) for d in dWs]
    assert min(norms[SHORT_TASK.go_step + 2:]) > 0
    assert res.W_final.shape == (1, 10, 10)


def test_delay_is_honoured():
    net = small_net(seed=2)
    run = RunSpec(controller_on=True, lr=0.3, seed=1)
    res = adapt(net, "bptt", [run], trials=1, delay=3, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    W_ref, _, _ = replay(net, run, "bptt", delay=3)
    assert (res.W_final[0] - W_ref).norm() / W_ref.norm() < 1e-10


def test_lockstep_runs_equal_single_runs():
    nets = init_network(NetworkConfig(n=16), torch.Generator().manual_seed(0), dtype=torch.float64)
    runs = [RunSpec(controller_on=c, rotation_deg=r, lr=lr, seed=s)
            for c, r, lr, s in [(True, 30, 1e-3, 0), (False, 60, 5e-4, 1), (True, 45, 2e-3, 2)]]
    together = adapt(nets, "rflo", runs, trials=3, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    for i, run in enumerate(runs):
        alone = adapt(nets, "rflo", [run], trials=3, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
        for key in ("train_loss", "test_loss", "dW_path"):
            np.testing.assert_allclose(together[key][i], alone[key][0], rtol=1e-10)


def test_rflo_trace_is_exact_when_W_rec_is_zero_and_units_stay_active():
    """With W_rec = 0 and every unit active, P_k equals the exact sensitivity dx_{k+1,i}/dW_ij."""
    n = 8
    net = small_net(n=n, seed=4, scale=0.0)
    net = net.replace(b=torch.full((n,), 5.0, dtype=torch.float64))  # keeps every x > 0
    g = torch.Generator().manual_seed(0)
    tr = centre_out_reaches(SHORT_TASK, [2], dtype=torch.float64)
    x0 = draw_x0(n, (), g, torch.float64).abs() + 1.0
    a = net.cfg.alpha
    W = torch.zeros(n, n, dtype=torch.float64, requires_grad=True)
    x = x0
    P = torch.zeros(n, n, dtype=torch.float64)
    for k in range(6):
        r_prev = torch.relu(x)
        x = (1 - a) * x + a * (net.W_in @ tr.inputs[k, 0] + net.b + W @ r_prev)
        assert (x > 0).all()
        P = (1 - a) * P + a * torch.outer((x > 0).to(torch.float64), r_prev.detach())
    for i in range(n):
        (gi,) = torch.autograd.grad(x[i], W, retain_graph=True)
        torch.testing.assert_close(gi[i], P[i], rtol=1e-12, atol=1e-12)
        assert gi[torch.arange(n) != i].abs().max() == 0


def test_feedback_matrix_uses_W_out_T_without_feedback():
    nofb = small_net(density=0.0)
    torch.testing.assert_close(feedback_matrix(nofb), nofb.W_out.mT)
    fb = small_net(density=1.0)
    torch.testing.assert_close(feedback_matrix(fb), fb.W_fb)


def test_divergence_raises_a_clear_error_or_marks_the_run():
    net = small_net(seed=0)
    with pytest.raises(DivergenceError, match=r"trial \d+ \(rule bptt, lr 1e\+06"):
        adapt(net, "bptt", [RunSpec(lr=1e6)], trials=5, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    res = adapt(net, "bptt", [RunSpec(lr=1e6), RunSpec(lr=1e-3)], trials=5, task_cfg=SHORT_TASK, progress=False,
                on_divergence="mark", dtype=torch.float64)
    assert res.diverged[0] >= 0 and res.diverged[1] == -1
    assert np.isfinite(res["test_loss"][1]).all()


def test_alignment_records_cosines_in_range_and_exact_for_bptt():
    net = small_net(seed=0)
    res = adapt(net, "rflo", [RunSpec(lr=1e-3)], trials=2, task_cfg=SHORT_TASK, progress=False, align=True,
                dtype=torch.float64)
    al = res["align_local"][0]
    assert np.all(np.abs(al[:, SHORT_TASK.go_step + 1:]) <= 1 + 1e-9)
    res_b = adapt(net, "bptt", [RunSpec(lr=0.1)], trials=1, task_cfg=SHORT_TASK, progress=False, align=True,
                  dtype=torch.float64)
    np.testing.assert_allclose(res_b["align_local"][0, 0, SHORT_TASK.go_step + 1:], 1.0, atol=1e-6)
    np.testing.assert_allclose(res_b["align_global"][0], 1.0, atol=1e-6)


def test_bptt_current_weights_agree_with_history_when_weights_barely_move():
    net = small_net(seed=6)
    run = RunSpec(lr=1e-7, seed=2)
    h = adapt(net, "bptt", [run], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    c = adapt(net, "bptt", [run], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64,
              bptt_weights="current")
    dh = h.W_final[0] - net.W_rec
    dc = c.W_final[0] - net.W_rec
    assert (dh - dc).norm() / dh.norm() < 1e-5
    # and at a large rate they genuinely differ (the 'current' sweep is not the exact gradient)
    run = RunSpec(lr=0.2, seed=2)
    h = adapt(net, "bptt", [run], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    c = adapt(net, "bptt", [run], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64,
              bptt_weights="current")
    assert (h.W_final - c.W_final).norm() / (h.W_final[0] - net.W_rec).norm() > 1e-6


def test_align_every_only_fills_selected_trials():
    net = small_net(seed=0)
    res = adapt(net, "rflo", [RunSpec(lr=1e-3)], trials=4, align=True, align_every=2, task_cfg=SHORT_TASK,
                progress=False, dtype=torch.float64)
    g = res["align_global"][0]
    assert np.isfinite(g[[0, 2]]).all() and np.isnan(g[[1, 3]]).all()


def test_one_sweep_gives_every_step_gradient():
    """all_step_gradients (one matrix sweep) equals the per-step adjoint for every step."""
    from fbctrl.learning.rules import OnlineBPTT

    g = torch.Generator().manual_seed(0)
    R, n, T = 2, 7, 9
    st = random_trial_state(g, R, n, T, with_history=True)
    rule = OnlineBPTT(R, n, T, dtype=torch.float64)
    rule.begin_trial(st)
    G_all = rule.all_step_gradients(st, T)
    for k in range(T):
        torch.testing.assert_close(G_all[:, k], rule.gradient(st, k), rtol=1e-12, atol=1e-14)


def test_alignment_without_forming_gradients_equals_explicit_cosines():
    from fbctrl.learning.rules import OnlineBPTT

    g = torch.Generator().manual_seed(1)
    R, n, T = 2, 6, 8
    st = random_trial_state(g, R, n, T, with_history=True)
    rule = OnlineBPTT(R, n, T, dtype=torch.float64)
    rule.begin_trial(st)
    dW = torch.randn(R, T, n, n, generator=g, dtype=torch.float64)
    local, glob = rule.alignment(st, T, dW)
    G = rule.all_step_gradients(st, T)
    cos = lambda a, b: (a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-30)  # noqa: E731
    for r in range(R):
        for k in range(T):
            torch.testing.assert_close(local[r, k], cos(dW[r, k], -G[r, k]))
        torch.testing.assert_close(glob[r], cos(dW[r].sum(0), -G[r].sum(0)))


@pytest.mark.parametrize("chunk", [1, 4])
@pytest.mark.parametrize("bptt_weights", ["history", "current"])
def test_bptt_lockstep_in_chunks_equals_single_runs(bptt_weights, chunk, monkeypatch):
    """More runs than one chunk of the CPU sweep (rules.OnlineBPTT.CPU_CHUNK): the chunked sweep
    gives each run what it gets alone. With chunks of 4 the runs go through the batched PyTorch
    sweep (a GPU's), alone through the one-run NumPy sweep: the two agree to float64 rounding."""
    from fbctrl.learning.rules import OnlineBPTT

    monkeypatch.setattr(OnlineBPTT, "CPU_CHUNK", chunk)
    nets = init_network(NetworkConfig(n=12), torch.Generator().manual_seed(3), dtype=torch.float64)
    R = 6
    runs = [RunSpec(controller_on=i % 2 == 0, rotation_deg=30 + 5 * i, lr=0.05 * (1 + i), seed=i) for i in range(R)]
    together = adapt(nets, "bptt", runs, trials=2, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64,
                     bptt_weights=bptt_weights)
    for i in (0, R - 1):
        alone = adapt(nets, "bptt", [runs[i]], trials=2, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64,
                      bptt_weights=bptt_weights)
        torch.testing.assert_close(together.W_final[i], alone.W_final[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(together["train_loss"][i], alone["train_loss"][0], rtol=1e-10)


def test_online_bptt_history_needs_every_step_in_order():
    """The exact (history) sweep reads the weight snapshots that step() records; asking for a
    later step's gradient without them is a clear error, not a silently wrong gradient."""
    from fbctrl.learning.rules import OnlineBPTT

    g = torch.Generator().manual_seed(2)
    R, n, T = 1, 5, 6
    st = random_trial_state(g, R, n, T)
    rule = OnlineBPTT(R, n, T, dtype=torch.float64)
    rule.W_current = torch.randn(R, n, n, generator=g, dtype=torch.float64)
    rule.begin_trial(st)
    lr = torch.full((R,), 0.1, dtype=torch.float64)
    rule.step(st, 0, lr)
    with pytest.raises(RuntimeError, match="step"):
        rule.gradient(st, 3)


def test_bptt_weights_in_low_rank_form_equal_dense_updates():
    """Without alignment, exact online BPTT keeps W_rec as W_start + C^T R within a trial and
    forms it at the trial's end; with alignment every step's dense dW is added. Same numbers."""
    net = small_net(seed=4)
    runs = [RunSpec(controller_on=True, lr=0.3, seed=1), RunSpec(controller_on=False, lr=0.2, seed=2)]
    kw = dict(trials=3, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    low = adapt(net, "bptt", runs, **kw)
    dense = adapt(net, "bptt", runs, align=True, **kw)
    mixed = adapt(net, "bptt", runs, align=True, align_every=2, **kw)
    for other in (dense, mixed):
        torch.testing.assert_close(low.W_final, other.W_final, rtol=1e-10, atol=1e-12)
        for key in ("train_loss", "test_loss", "dW_path", "dW_trial"):
            np.testing.assert_allclose(low[key], other[key], rtol=1e-9)


def test_global_alignment_uses_autograd_gradient_of_the_whole_trial_loss():
    """align_global = cos(sum_k dW_k, -dL/dW_rec) with L the whole trial's loss, differentiated by
    autograd with respect to a common offset of the weights every step actually ran with
    (feedback detached); align_local[k] likewise against step k's own loss."""
    net = small_net(seed=7)
    run = RunSpec(controller_on=True, rotation_deg=30.0, lr=0.05, seed=4)
    res = adapt(net, "rflo", [run], trials=1, task_cfg=SHORT_TASK, progress=False, align=True, dtype=torch.float64)
    _, dWs, _ = replay(net, run, "rflo")
    hist = [net.W_rec.clone()]
    for dW in dWs:
        hist.append(hist[-1] + dW)
    g = torch.Generator().manual_seed(run.seed)
    tgt = int(torch.randint(SHORT_TASK.n_targets, (1,), generator=g))
    x0 = draw_x0(net.cfg.n, (), g, net.dtype)
    tr = centre_out_reaches(SHORT_TASK, [tgt], dtype=net.dtype).rotated(run.rotation_deg)
    s, vref = tr.inputs[:, 0], tr.vref[:, 0]
    a, dt, W_f = net.cfg.alpha, net.cfg.dt, net.W_fb * net.mask

    assert net.cfg.delay == 0   # the fed-back error of step k is then E[k]

    def step_losses(Delta):
        x, E, losses = x0.clone(), torch.zeros(2, dtype=net.dtype), []
        for k in range(SHORT_TASK.T):
            h = net.W_in @ s[k] + net.b + (hist[k] + Delta) @ torch.relu(x) + W_f @ E.detach()
            x = (1 - a) * x + a * h
            E = E + dt * (vref[k] - (net.W_out @ torch.relu(x) + net.b_out))
            losses.append(E.pow(2).mean())
        return losses

    Delta = torch.zeros_like(net.W_rec, requires_grad=True)
    losses = step_losses(Delta)
    (g_all,) = torch.autograd.grad(torch.stack(losses).sum(), Delta)
    total = torch.stack(dWs).sum(0)
    cos = lambda u, v: float((u * v).sum() / (u.norm() * v.norm()))  # noqa: E731
    np.testing.assert_allclose(res["align_global"][0, 0], cos(total, -g_all), rtol=1e-8)
    for k in (SHORT_TASK.go_step + 2, SHORT_TASK.T // 2, SHORT_TASK.T - 1):
        D = torch.zeros_like(net.W_rec, requires_grad=True)
        (g_k,) = torch.autograd.grad(step_losses(D)[k], D)
        np.testing.assert_allclose(res["align_local"][0, 0, k], cos(dWs[k], -g_k), rtol=1e-5)


def test_rflo_products_with_rates_equal_dense_updates_times_rates():
    """RFLO's M[k, :, j] = dW_k r_j from its trace's structure equals the dense product."""
    from fbctrl.learning.rules import RFLO

    g = torch.Generator().manual_seed(5)
    R, n, T = 2, 6, 9
    st = random_trial_state(g, R, n, T)
    B = torch.randn(R, n, 2, generator=g, dtype=torch.float64)
    lr = torch.tensor([0.3, 0.7], dtype=torch.float64)
    dense, fused = RFLO(R, n, T, B, dtype=torch.float64), RFLO(R, n, T, B, dtype=torch.float64)
    fused.record = torch.zeros(R, T, n, dtype=torch.float64)
    W = torch.zeros(R, n, n, dtype=torch.float64)
    for rule in (dense, fused):
        rule.begin_trial(st)
    dWs, norms = [], []
    for k in range(T):
        dWs.append(dense.step(st, k, lr).clone())
        norms.append(fused.add_step(st, k, lr, W))
    M = fused.products_with_rates(st, T)
    for k in range(T):
        torch.testing.assert_close(M[:, k], dWs[k] @ st.Rh[:, :T].mT)
        torch.testing.assert_close(norms[k], torch.linalg.matrix_norm(dWs[k]))
    torch.testing.assert_close(W, sum(dWs))


@pytest.mark.parametrize("rule", ["bptt", "rflo"])
def test_published_error_start_matches_the_reference(rule):
    """error_start="published": the integrated error starts at e_0 = W_out r_0 + b_out (the
    published code's quirk), fed back by the controller like any error, with no gradient through it."""
    net = small_net(seed=4)
    run = RunSpec(controller_on=True, rotation_deg=30.0, lr=0.5, seed=2)
    res = adapt(net, rule, [run], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64, error_start="published")
    W_ref, dWs, E = replay(net, run, rule, error_start="published")
    assert float(E[0].abs().sum()) > 0
    assert (res.W_final[0] - W_ref).norm() / (W_ref - net.W_rec).norm() < 1e-9
    assert math.isclose(res["train_loss"][0, 0], float(E.pow(2).mean()), rel_tol=1e-9)
    zero = adapt(net, rule, [run], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    assert not math.isclose(zero["train_loss"][0, 0], res["train_loss"][0, 0], rel_tol=1e-6)
    assert res.meta["error_start"] == "published"
    with pytest.raises(ValueError, match="error_start must be one of zero, published"):
        adapt(net, rule, [run], trials=1, task_cfg=SHORT_TASK, progress=False, error_start="e0")


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("rule,bptt_weights", [("rflo", "history"), ("bptt", "history"), ("bptt", "current")])
def test_one_run_numpy_paths_equal_the_pytorch_paths(rule, bptt_weights, dtype, rtol, monkeypatch):
    """One run on a CPU goes through NumPy (RFLO's whole step, online BPTT's backward sweep); the
    same run with those switched off goes through the PyTorch code that lockstep runs and GPUs
    use. Both give the same records and weights (float64 to rounding; float32 at the paper's
    T and a paper-like rate, to float32 rounding amplified over 3 trials)."""
    from fbctrl.learning.adapt import _Engine
    from fbctrl.learning.rules import RFLO, OnlineBPTT

    tc = TaskConfig() if dtype == torch.float32 else SHORT_TASK
    net = small_net(n=60 if dtype == torch.float32 else 12, dtype=dtype, scale=0.5)
    lr = {"rflo": 3e-5, "bptt": 1e-4}[rule] if dtype == torch.float32 else 0.01
    run = RunSpec(controller_on=True, rotation_deg=40.0, lr=lr, seed=4)
    kw = dict(trials=3, task_cfg=tc, progress=False, dtype=dtype, bptt_weights=bptt_weights)
    used = []
    real_init = _Engine.__init__

    def spy(self, *a, **k):
        real_init(self, *a, **k)
        used.append(self.one_run)
    monkeypatch.setattr(_Engine, "__init__", spy)
    kernels(monkeypatch, "numpy")                  # the NumPy loops (the compiled ones: test_ckernels.py)
    fast = adapt(net, rule, [run], **kw)
    assert used == [rule == "rflo"]
    assert fast.meta["compute_path"] == "numpy"
    monkeypatch.setattr(RFLO, "one_run_numpy", False)
    monkeypatch.setattr(OnlineBPTT, "numpy_sweep", False)
    ref = adapt(net, rule, [run], **kw)
    assert used[-1] is False
    assert ref.meta["compute_path"] == "pytorch"
    for key in ("train_loss", "test_loss", "dW_path", "dW_total"):
        np.testing.assert_allclose(fast[key], ref[key], rtol=rtol, err_msg=key)
    torch.testing.assert_close(fast.W_final, ref.W_final, rtol=rtol, atol=rtol * float(ref.W_final.abs().max()))
    assert float((ref.W_final - net.W_rec).norm()) > 1e-3 * float(net.W_rec.norm())   # the weights really moved


def test_rflo_one_run_falls_back_where_its_factors_would_overflow():
    """RFLO's NumPy step keeps (1 - alpha)^-i factors: at a trial length where they would near
    float overflow the engine runs the PyTorch step instead, with the same result."""
    from fbctrl.learning.rules import RFLO

    B = torch.zeros(1, 4, 2)
    assert RFLO(1, 4, 125, B).one_run_ok(0.2)
    assert not RFLO(1, 4, 1000, B).one_run_ok(0.2)
