"""Beyond the paper: the task interface, the limit-cycle task, NetworkSpec, feedback delays and
sparse feedback (Methods, "Beyond the paper: tasks, delays and sparse feedback").

Each test checks a property against a hand computation, torch.autograd or scipy, or the outputs
of the code before the task interface existed (tests/data/reach_reference.npz)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from tests.helpers import DATA, gen
from fbctrl.analysis import gradients, network
from fbctrl.core.bptt import Regularisation, forward, loss_and_grads
from fbctrl.core.checkpoint import find_checkpoints, load_checkpoint, network_spec, save_checkpoint
from fbctrl.core.model import NetworkConfig, draw_x0, init_network, rollout, trial_loss
from fbctrl.core.spec import NetworkSpec
from fbctrl.core.task import TaskConfig, centre_out_reaches, random_reaches
from fbctrl.core.tasks import (FrequencyShift, LimitCycle, LimitCycleConfig, Reach, Rotation, cycle_trials,
                               make_task, parse_perturbation, spectral_peak_hz)
from fbctrl.core.train import PretrainConfig, Trainer, network_tag, pretrain
from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol
from fbctrl.learning.adapt import RunSpec, adapt, feedback_matrix

F64 = torch.float64
LC = LimitCycleConfig()
SMALL_LC = LimitCycleConfig(T=60, go_step=6, freq_low=2.0, freq_high=4.0, n_test_freqs=4)
TC = TaskConfig(T=30, go_step=5, move_steps=20)


# ---------------------------------------------------------------------------------------------
# The limit-cycle task
# ---------------------------------------------------------------------------------------------

def test_cycle_targets_by_hand_amplitude_phase_and_lag():
    cfg = LimitCycleConfig(T=40, go_step=5, amplitude=1.5, hold=2.0, input_scale=0.5)
    tr = cycle_trials(cfg, torch.tensor([2.0]), dtype=F64)
    v = tr.vstar[:, 0]
    # held at the cycle's starting point (0, A) during the warm-up, then A (sin, cos)(2 pi f (k - g) dt)
    torch.testing.assert_close(v[:6], torch.tensor([[0.0, 1.5]] * 6, dtype=F64))
    k = 5 + 7
    ph = 2 * math.pi * 2.0 * 7 * 0.01
    torch.testing.assert_close(v[k], torch.tensor([1.5 * math.sin(ph), 1.5 * math.cos(ph)], dtype=F64))
    torch.testing.assert_close(v.norm(dim=-1), torch.full((40,), 1.5, dtype=F64))            # amplitude on every step
    torch.testing.assert_close(tr.vref[1:], tr.vstar[:-1])                                     # the reaching lag
    torch.testing.assert_close(tr.vref[0], tr.vstar[0])
    # inputs: hold signal during the warm-up, the commanded frequency (times input_scale) after it
    assert torch.all(tr.inputs[:5, 0] == torch.tensor([0.0, 2.0], dtype=F64))
    assert torch.all(tr.inputs[5:, 0] == torch.tensor([1.0, 0.0], dtype=F64))
    assert float(tr.freq[0]) == 2.0


def test_spectral_peak_recovers_frequency_and_direction():
    f = torch.tensor([1.0, 1.37, 2.5, 2.99], dtype=F64)
    tr = cycle_trials(LC, f, dtype=F64)
    got = spectral_peak_hz(tr.vstar, LC.dt, LC.go_step)
    np.testing.assert_allclose(got.numpy(), f.numpy(), atol=2e-3)
    # a cycle turning the other way (cos, sin swapped) has the negative frequency
    np.testing.assert_allclose(spectral_peak_hz(tr.vstar.flip(-1), LC.dt, LC.go_step).numpy(), -f.numpy(), atol=2e-3)
    # noise and a smaller amplitude do not move the peak much
    noisy = 0.3 * tr.vstar + 0.05 * torch.randn(tr.vstar.shape, generator=gen(0), dtype=F64)
    np.testing.assert_allclose(spectral_peak_hz(noisy, LC.dt, LC.go_step).numpy(), f.numpy(), atol=0.03)


def test_default_cycle_task_holds_one_and_a_half_cycles_at_its_slowest():
    assert LC.cycles_at_lowest >= 1.5
    slow = cycle_trials(LC, torch.tensor([LC.freq_low]), dtype=F64).vstar[LC.go_step:, 0]
    turned = torch.atan2(slow[:, 0], slow[:, 1]).diff().remainder(2 * math.pi).sum() / (2 * math.pi)
    assert float(turned) >= 1.49


def test_training_frequencies_uniform_and_seeded():
    task = LimitCycle(LC)
    a = task.training_batch(2000, gen(3))
    b = task.training_batch(2000, gen(3))
    assert torch.equal(a.vstar, b.vstar) and torch.equal(a.inputs, b.inputs)
    f = a.freq.double().numpy()
    assert f.min() >= LC.freq_low and f.max() <= LC.freq_high
    assert scipy.stats.kstest(f, "uniform", args=(LC.freq_low, LC.freq_high - LC.freq_low)).pvalue > 1e-3
    # the commanded frequency is what the input carries
    np.testing.assert_allclose(a.inputs[LC.go_step, :, 0].double().numpy(), f, rtol=1e-6)
    # pushes, as in reaching: drawn after the frequencies (same cycles), pulses of the task's amplitude
    pushed = task.training_batch(2000, gen(3), push=True)
    assert torch.equal(pushed.vstar, a.vstar) and torch.equal(a.push, torch.zeros_like(a.push))
    assert set(pushed.push.unique().tolist()) == {0.0, LC.push_amplitude}
    on = (pushed.push != 0).any(0).double()                        # [B, 2]: pushed trials and outputs
    assert scipy.stats.binomtest(int(on.sum()), on.numel(), LC.push_prob).pvalue > 1e-3
    first = (pushed.push != 0).double().argmax(0)[on.bool()]
    assert int(first.min()) >= LC.push_centre_low - LC.push_duration // 2


def test_test_conditions_are_evenly_spaced_bin_centres():
    tr = LimitCycle(LC).test_conditions(dtype=F64)
    w = (LC.freq_high - LC.freq_low) / LC.n_test_freqs
    np.testing.assert_allclose(tr.freq.numpy(), LC.freq_low + w * (np.arange(LC.n_test_freqs) + 0.5))
    assert tr.target.tolist() == list(range(LC.n_test_freqs))


def test_frequency_shift_changes_the_target_frequency_only():
    task = LimitCycle(LC)
    base = task.test_conditions(dtype=F64)
    sh = task.perturb(base, FrequencyShift(0.5))
    # what it changes: the target cycle's frequency (read from the spectral peak), by exactly the shift
    np.testing.assert_allclose(spectral_peak_hz(sh.vstar, LC.dt, LC.go_step).numpy(), base.freq.numpy() + 0.5,
                               atol=2e-3)
    assert not torch.allclose(sh.vstar[LC.go_step + 5:], base.vstar[LC.go_step + 5:])
    # what it leaves alone: inputs (the command), amplitude, the warm-up and the phase at its end, pushes
    assert torch.equal(sh.inputs, base.inputs) and torch.equal(sh.push, base.push)
    torch.testing.assert_close(sh.vstar.norm(dim=-1), base.vstar.norm(dim=-1))
    torch.testing.assert_close(sh.vstar[: LC.go_step + 1], base.vstar[: LC.go_step + 1])
    torch.testing.assert_close(sh.vref[1:], sh.vstar[:-1])
    # shifts add up, and the shifted trials are those built at the shifted frequency
    twice = task.perturb(task.perturb(base, FrequencyShift(0.25)), FrequencyShift(0.25))
    torch.testing.assert_close(twice.vstar, sh.vstar)
    torch.testing.assert_close(sh.vstar, cycle_trials(LC, base.freq, shift_hz=0.5, dtype=F64).vstar)


def test_each_task_accepts_its_own_perturbation():
    with pytest.raises(ValueError, match="rotation"):
        Reach(TC).perturb(centre_out_reaches(TC), FrequencyShift(1.0))
    with pytest.raises(ValueError, match="frequency shift"):
        LimitCycle(LC).perturb(LimitCycle(LC).test_conditions(), Rotation(30))
    assert Rotation(30).name == "rot30" and Rotation(-12.5).name == "rot-12.5"
    assert FrequencyShift(0.5).name == "shift+0.5" and FrequencyShift(-1).label == "-1 Hz"
    for p in (Rotation(30), Rotation(-12.5), FrequencyShift(0.5), FrequencyShift(-1.25)):
        assert parse_perturbation(p.name) == p
    with pytest.raises(ValueError, match="perturbation must be"):
        parse_perturbation("tilt5")


def test_reach_task_interface_gives_the_old_trials():
    task = Reach(TC)
    a, b = gen(4), gen(4)
    for x, y in ((task.training_batch(16, a, push=True), random_reaches(TC, 16, b, push=True)),
                 (task.test_conditions(), centre_out_reaches(TC))):
        for f in ("inputs", "vstar", "vref", "push", "start", "end", "target"):
            assert torch.equal(getattr(x, f), getattr(y, f))
    assert torch.equal(task.perturb(centre_out_reaches(TC), Rotation(30)).vstar, centre_out_reaches(TC).rotated(30).vstar)


# ---------------------------------------------------------------------------------------------
# The reaching results, unchanged by the refactor
# ---------------------------------------------------------------------------------------------

def test_reaching_outputs_equal_those_of_the_code_before_the_task_interface():
    from tests.integration import reach_reference

    old = dict(np.load(DATA / "reach_reference.npz"))
    new = reach_reference.compute()
    assert set(new) == set(old)
    for k in sorted(old):   # bit-identical on the machine that made the file; float rounding elsewhere
        np.testing.assert_allclose(new[k], old[k], rtol=1e-6, atol=1e-9, err_msg=k)


# ---------------------------------------------------------------------------------------------
# NetworkSpec: names, rates, files
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("density,delay,n,task,stem", [
    (1.0, 0, 400, "reach", "fb"), (0.0, 0, 400, "reach", "nofb"), (0.3, 0, 400, "reach", "fb0.3"),
    (0.1, 0, 400, "reach", "fb0.1"), (1.0, 5, 400, "reach", "fb_d5"), (1.0, 10, 400, "reach", "fb_d10"),
    (1.0, 0, 50, "reach", "fb_n50"), (0.5, 2, 20, "reach", "fb0.5_d2_n20"), (1.0, 0, 400, "limit-cycle", "lc_fb"),
    (0.0, 0, 100, "limit-cycle", "lc_nofb_n100")])
def test_file_stems_old_and_new_round_trip(density, delay, n, task, stem):
    cfg = PretrainConfig(n=n, feedback_density=density, delay=delay, task=task, train_push=task == "reach")
    assert network_tag(cfg) == stem                          # old names unchanged (fb, nofb, fb0.3, fb_d5, fb_n50)
    spec = NetworkSpec.parse(stem)
    assert (spec.feedback_density, spec.delay, spec.n, spec.task) == (density, delay, n, task)
    assert spec.has_feedback == (density > 0)


def test_network_spec_rejects_bad_names_in_one_line():
    for bad in ("fbx", "fb_d-1", "fb1.5", "lc_", "nofb0.3", "fb_seed0"):
        with pytest.raises(ValueError) as e:
            NetworkSpec.parse(bad)
        assert "\n" not in str(e.value) and ("network kind" in str(e.value) or "feedback_density" in str(e.value))


@pytest.mark.parametrize("kind", ["fb_d5", "fb_d10", "fb0.3", "fb0.1"])
def test_delayed_and_sparse_networks_get_the_with_feedback_rates(kind):
    cfg = paper.PaperConfig()
    W_fb, W_out = torch.full((400, 2), 0.05), torch.full((2, 400), 0.05)
    for cond in CONDITIONS:
        unit = paper.AdaptUnit(kind, 0, 30.0, cond, Protocol.PUBLISHED, 10)
        ref = paper.AdaptUnit("fb", 0, 30.0, cond, Protocol.PUBLISHED, 10).learning_rate(cfg, W_fb, W_out)
        assert unit.learning_rate(cfg, W_fb, W_out) == ref
    off = paper.AdaptUnit("nofb", 0, 30.0, CONDITIONS[1], Protocol.PUBLISHED, 10).learning_rate(cfg, W_fb, W_out)
    on = paper.AdaptUnit(kind, 0, 30.0, CONDITIONS[1], Protocol.PUBLISHED, 10).learning_rate(cfg, W_fb, W_out)
    assert "rflo_controller_off_or_no_feedback" in off.factors and on.factors == off.factors
    bptt = paper.AdaptUnit(kind, 0, 30.0, CONDITIONS[3], Protocol.PUBLISHED, 10).learning_rate(cfg, W_fb, W_out)
    assert "W_fb_over_W_out" in bptt.factors and "bptt_no_feedback" not in bptt.factors
    spec = NetworkSpec.parse(kind)
    pc = cfg.pretrain_config(kind)
    assert (pc.feedback_density, pc.delay, pc.train_push) == (spec.feedback_density, spec.delay, False)
    assert cfg.seeds(kind) == cfg.fb_seeds


def test_checkpoints_of_each_family_are_found_apart_and_loaded(tmp_path):
    for stem, cfg in (("fb", NetworkConfig(n=8)), ("fb_d5", NetworkConfig(n=8, delay=5)),
                      ("fb0.3", NetworkConfig(n=8, feedback_density=0.3)), ("nofb", NetworkConfig(n=8, feedback_density=0)),
                      ("lc_fb", NetworkConfig(n=8, n_in=2))):
        for s in (0, 1):
            save_checkpoint(init_network(cfg, gen(s)), tmp_path / f"{stem}_n8_seed{s}.pt", {"seed": s})
    for kind in ("fb", "fb_d5", "fb0.3", "nofb", "lc_fb"):
        found = find_checkpoints(tmp_path, kind)
        assert sorted(found) == [0, 1] and all(p.name.startswith(f"{kind}_n8_") for p in found.values())
        net = load_checkpoint(found[0])
        spec = network_spec(found[0])
        assert (net.cfg.delay, net.cfg.feedback_density) == (spec.delay, spec.feedback_density)
    assert load_checkpoint(tmp_path / "lc_fb_n8_seed0.pt").cfg.n_in == 2
    with pytest.raises(ValueError, match="family without its size"):
        find_checkpoints(tmp_path, "fb_n8")


# ---------------------------------------------------------------------------------------------
# Feedback delay: E[k - d] through pre-training, adaptation and the analyses
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Sparse feedback: a fixed mask with the right fraction of ones, applied everywhere
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# The limit cycle through the pipeline: pre-training, adaptation to a frequency shift
# ---------------------------------------------------------------------------------------------

def test_limit_cycle_pretraining_and_adaptation_run_and_record_their_task(tmp_path):
    cfg = PretrainConfig(n=12, batches=2, batch_size=4, eval_every=1, checkpoint_every=10, train_push=False,
                         task="limit-cycle")
    pretrain(cfg, [0], tmp_path, progress=False, task_cfg=SMALL_LC)
    path = tmp_path / "lc_fb_n12_seed0.pt"
    spec = network_spec(path)
    assert (spec.task, spec.has_feedback, spec.pretrain_data) == ("limit-cycle", True, "random")
    net = load_checkpoint(path, dtype=F64)
    task = LimitCycle(SMALL_LC)
    runs = [RunSpec(0, True, lr=1e-3, seed=1, perturbation=FrequencyShift(0.5)),
            RunSpec(0, True, lr=1e-3, seed=1, perturbation=FrequencyShift(0.0))]
    res = adapt(net, "rflo", runs, trials=2, task=task, progress=False, dtype=F64, frozen=True)
    # (weights held: every test sees the same network) the test loss is that of the shifted test
    # frequencies, the after-effect loss that of the unshifted ones
    assert res["test_loss"][1, 0] == pytest.approx(res["aftereffect_loss"][1, 0], rel=1e-12)
    assert res["aftereffect_loss"][0, 0] == pytest.approx(res["aftereffect_loss"][1, 0], rel=1e-12)
    assert res["test_loss"][0, 0] != pytest.approx(res["test_loss"][1, 0], rel=1e-6)
    assert set(res["target"].ravel().astype(int).tolist()) <= set(range(SMALL_LC.n_test_freqs))
    moving = adapt(net, "rflo", runs[:1], trials=3, task=task, progress=False, dtype=F64)
    assert np.all(np.isfinite(moving["test_loss"])) and moving["dW_total"][0, -1] > 0


def test_command_line_takes_the_task_and_its_perturbation(tmp_path, capsys):
    import json

    from fbctrl.__main__ import main

    lc_cfg = PretrainConfig(n=10, batches=1, batch_size=2, eval_every=1, checkpoint_every=10, train_push=False,
                            task="limit-cycle")
    pretrain(lc_cfg, [0], tmp_path, progress=False, task_cfg=SMALL_LC)      # the CLI reads the task from the sidecar
    pretrain(PretrainConfig(n=10, batches=1, batch_size=2, eval_every=1, checkpoint_every=10, delay=2), [0], tmp_path,
             progress=False, task_cfg=TC)
    lc, reach = str(tmp_path / "lc_fb_n10_seed0.pt"), str(tmp_path / "fb_d2_n10_seed0.pt")
    capsys.readouterr()
    assert main(["evaluate", lc, "--shift", "0.5", "--controller", "off", "--trials", "8", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["task"] == "limit-cycle" and res["shift_hz"] == 0.5 and res["freq_error_hz"] >= 0
    assert len(res["freq_error_per_test_freq"]) == SMALL_LC.n_test_freqs
    assert main(["adapt", lc, "--rule", "rflo", "--trials", "2", "--shift", "-0.5", "--no-progress",
                 "--out", str(tmp_path / "a.npz")]) == 0
    meta = json.loads(str(np.load(tmp_path / "a.npz")["meta"]))
    assert (meta["task"], meta["perturbation"], meta["shift_hz"]) == ("limit-cycle", "shift-0.5", -0.5)
    for argv, word in ((["adapt", lc, "--rule", "rflo", "--rotation", "30", "--out", str(tmp_path / "b.npz")], "rotation"),
                       (["adapt", reach, "--rule", "rflo", "--shift", "1", "--out", str(tmp_path / "b.npz")], "shift"),
                       (["evaluate", reach, "--task", "limit-cycle"], "task"),
                       (["evaluate", lc, "--shift", "nan"], "shift")):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"fbctrl: error: {word}") or f"argument --{word}" in err or word in err.split(":")[2]
        assert "\n" not in err
