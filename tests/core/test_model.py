"""The feedback-controlled RNN (Methods, "Network"): one step by hand, the controller switch, feedback
density, delay, pushes, initialisation and stacking."""

import math

import numpy as np
import pytest
import torch

from tests.helpers import gen
from fbctrl.core.model import Network, NetworkConfig, draw_x0, init_network, rollout, trial_loss
from fbctrl.core.task import TaskConfig, Trials, random_reaches

torch.set_num_threads(1)

SHORT = TaskConfig(T=30, go_step=5, move_steps=20)
F64 = torch.float64


def t64(a):
    return torch.tensor(a, dtype=F64)


# ---- a hand-made 3-unit network ---------------------------------------------------------------
# alpha = dt / tau = 0.01 / 0.05 = 0.2

X0 = [0.5, -0.5, 1.0]
W_IN = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]]
W_REC = [[0.0, 1.0, 0.0], [1.0, 0.0, -1.0], [0.5, 0.0, 0.0]]
W_FB = [[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]]
B = [0.0, 0.5, -1.0]
W_OUT = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
B_OUT = [0.1, -0.1]
S = [[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]      # inputs at steps 0, 1
VREF = [[0.0, 0.0], [2.0, 1.0]]             # reference at steps 0, 1
PUSH = [[0.0, 0.0], [1.0, 0.0]]             # push at steps 0, 1


def hand_net(mask=None):
    cfg = NetworkConfig(n=3, dt=0.01, tau=0.05)
    mask = t64(mask) if mask is not None else torch.ones(3, 2, dtype=F64)
    return Network(cfg, W_in=t64(W_IN), W_rec=t64(W_REC), W_fb=t64(W_FB) * mask, mask=mask, b=t64(B),
                   W_out=t64(W_OUT), b_out=t64(B_OUT))


def hand_trials(T):
    z = torch.zeros(1, 2, dtype=F64)
    return Trials(inputs=t64(S)[:T, None], vstar=t64(VREF)[:T, None], vref=t64(VREF)[:T, None],
                  push=t64(PUSH)[:T, None], start=z, end=z, target=torch.tensor([-1]))


def test_one_step_by_hand():
    # step 0, worked out by hand (the fed-back error E[0] is 0):
    #   W_in s0 = [1, 0, 1], r0 = [0.5, 0, 1], W_rec r0 = [0, -0.5, 0.25], b = [0, 0.5, -1]
    #   x1 = 0.8 [0.5, -0.5, 1] + 0.2 [1, 0, 0.25] = [0.6, -0.4, 0.85],  r1 = [0.6, 0, 0.85]
    #   v0 = W_out r1 + b_out + p0 = [0.6, 0.85] + [0.1, -0.1] = [0.7, 0.75]
    #   e1 = 0 + 0.01 ([0, 0] - v0) = [-0.007, -0.0075]
    ro = rollout(hand_net(), hand_trials(1), x0=t64([X0]))
    np.testing.assert_allclose(ro.x[:, 0].numpy(), [X0, [0.6, -0.4, 0.85]], atol=1e-14)
    np.testing.assert_allclose(ro.r[:, 0].numpy(), [[0.5, 0, 1.0], [0.6, 0, 0.85]], atol=1e-14)
    np.testing.assert_allclose(ro.v[:, 0].numpy(), [[0.7, 0.75]], atol=1e-14)
    np.testing.assert_allclose(ro.E[:, 0].numpy(), [[0, 0], [-0.007, -0.0075]], atol=1e-15)


def test_two_steps_by_hand_with_feedback_and_push():
    # step 1 (fed back: e1 = [-0.007, -0.0075]):
    #   W_in s1 = [0, 1, 0], W_rec r1 = [0, -0.25, 0.3], W_fb e1 = [-0.007, -0.015, -0.0005]
    #   h = [-0.007, 1.235, -0.7005],  x2 = 0.8 x1 + 0.2 h = [0.4786, -0.073, 0.5399]
    #   v1 = W_out r2 + b_out + p1 = [0.4786, 0.5399] + [0.1, -0.1] + [1, 0] = [1.5786, 0.4399]
    #   e2 = e1 + 0.01 ([2, 1] - v1) = [-0.002786, -0.001899]
    ro = rollout(hand_net(), hand_trials(2), x0=t64([X0]))
    np.testing.assert_allclose(ro.x[2, 0].numpy(), [0.4786, -0.073, 0.5399], atol=1e-14)
    np.testing.assert_allclose(ro.r[2, 0].numpy(), [0.4786, 0.0, 0.5399], atol=1e-14)
    np.testing.assert_allclose(ro.v[1, 0].numpy(), [1.5786, 0.4399], atol=1e-14)
    np.testing.assert_allclose(ro.E[2, 0].numpy(), [-0.002786, -0.001899], atol=1e-15)
    np.testing.assert_allclose(ro.e_fb[:, 0].numpy(), [[0, 0], [-0.007, -0.0075]], atol=1e-15)
    np.testing.assert_allclose(ro.u[1, 0].numpy(), [-0.007, -0.015, -0.0005], atol=1e-15)
    # the trial loss: mean of E^2 over the T+1 = 3 entries and both dimensions (E[0] = 0 included)
    expect = (0.007 ** 2 + 0.0075 ** 2 + 0.002786 ** 2 + 0.001899 ** 2) / 6
    assert float(trial_loss(ro.E)) == pytest.approx(expect, rel=1e-10)


def test_two_steps_by_hand_controller_off_and_masked():
    # controller off: h = [0, 1.25, -0.7], x2 = [0.48, -0.07, 0.54]; the difference to the
    # controller-on step is alpha W_fb e1 = 0.2 [-0.007, -0.015, -0.0005]
    off = rollout(hand_net(), hand_trials(2), x0=t64([X0]), controller_on=False)
    np.testing.assert_allclose(off.x[2, 0].numpy(), [0.48, -0.07, 0.54], atol=1e-14)
    assert torch.equal(off.u, torch.zeros_like(off.u))
    on = rollout(hand_net(), hand_trials(2), x0=t64([X0]))
    np.testing.assert_allclose((on.x[2] - off.x[2])[0].numpy(), [-0.0014, -0.003, -0.0001], atol=1e-14)
    # error and loss are still computed with the controller off: v1 = [0.48, 0.54] + b_out + p1
    np.testing.assert_allclose(off.E[2, 0].numpy(), [-0.007 + 0.01 * (2 - 1.58), -0.0075 + 0.01 * (1 - 0.44)],
                               atol=1e-14)
    # mask M = [[1, 0], [0, 1], [0, 0]]: (M * W_fb) e1 = [-0.007, -0.015, 0]
    m = rollout(hand_net(mask=[[1, 0], [0, 1], [0, 0]]), hand_trials(2), x0=t64([X0]))
    np.testing.assert_allclose((m.x[2] - off.x[2])[0].numpy(), [-0.0014, -0.003, 0.0], atol=1e-14)


# ---- an independent numpy implementation of the model (Methods, "Network") ----------------------

def numpy_rollout(net, trials, x0, controller_on=True, delay=0):
    """Plain loop over trials and steps, following the equations of Methods, "Network", literally."""
    W_in, W_rec, W_fb, M, b, W_out, b_out = (getattr(net, k).numpy() for k in
                                             ("W_in", "W_rec", "W_fb", "mask", "b", "W_out", "b_out"))
    a = net.cfg.dt / net.cfg.tau
    dt = net.cfg.dt
    s, vref, p = trials.inputs.numpy(), trials.vref.numpy(), trials.push.numpy()
    T, nb = s.shape[0], s.shape[1]
    xs = np.zeros((T + 1, nb, net.cfg.n))
    Es = np.zeros((T + 1, nb, 2))
    vs = np.zeros((T, nb, 2))
    for j in range(nb):
        x = x0[j].numpy().copy()
        xs[0, j] = x
        for k in range(T):
            r = np.maximum(x, 0)
            e_fb = Es[k - delay, j] if k - delay >= 0 else np.zeros(2)
            fb = (M * W_fb) @ e_fb if controller_on else 0.0
            x = (1 - a) * x + a * (W_in @ s[k, j] + W_rec @ r + fb + b)
            r = np.maximum(x, 0)
            v = W_out @ r + b_out + p[k, j]
            Es[k + 1, j] = Es[k, j] + dt * (vref[k, j] - v)
            xs[k + 1, j] = x
            vs[k, j] = v
    return xs, vs, Es


@pytest.mark.parametrize("controller_on", [True, False])
@pytest.mark.parametrize("delay", [0, 3])
@pytest.mark.parametrize("density", [1.0, 0.5])
def test_rollout_matches_numpy_loop(controller_on, delay, density):
    g = gen(11)
    net = init_network(NetworkConfig(n=12, feedback_density=density, delay=delay), g, dtype=F64)
    tr = random_reaches(SHORT, 3, g, push=True, dtype=F64)
    x0 = draw_x0(12, (3,), g, dtype=F64)
    ro = rollout(net, tr, x0=x0, controller_on=controller_on)
    xs, vs, Es = numpy_rollout(net, tr, x0, controller_on, delay)
    np.testing.assert_allclose(ro.x.numpy(), xs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ro.r.numpy(), np.maximum(xs, 0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ro.v.numpy(), vs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ro.E.numpy(), Es, rtol=1e-12, atol=1e-13)
    assert np.abs(Es).max() > 1e-2  # the error is not trivially small


# ---- controller switch and feedback density ---------------------------------------------------

def _setup(seed=12, n=16, density=1.0, delay=0, batch=4, push=False):
    g = gen(seed)
    net = init_network(NetworkConfig(n=n, feedback_density=density, delay=delay), g, dtype=F64)
    tr = random_reaches(SHORT, batch, g, push=push, dtype=F64)
    x0 = draw_x0(n, (batch,), g, dtype=F64)
    return net, tr, x0


@pytest.mark.parametrize("delay", [0, 2])
def test_controller_off_removes_exactly_the_feedback_term(delay):
    net, tr, x0 = _setup(delay=delay)
    a = net.cfg.alpha
    on = rollout(net, tr, x0=x0, controller_on=True)
    off = rollout(net, tr, x0=x0, controller_on=False)
    W_f = (net.W_fb * net.mask)
    # trajectories agree until the first non-zero fed-back error enters (E[1] at step 1 + delay)
    first = 1 + delay
    torch.testing.assert_close(on.x[: first + 1], off.x[: first + 1], rtol=0, atol=1e-15)
    diff = on.x[first + 1] - off.x[first + 1]
    torch.testing.assert_close(diff, a * on.E[1] @ W_f.T, rtol=1e-12, atol=1e-15)
    assert diff.abs().max() > 1e-5
    # one step from identical states at every k: the controller-on update minus the same update
    # without feedback is exactly alpha (M * W_fb) e_fb[k], with e_fb[k] = E[k - d]
    W_in, W_rec, b = net.W_in, net.W_rec, net.b
    for k in range(tr.T):
        x, r = on.x[k], on.r[k]
        x_off = (1 - a) * x + a * (tr.inputs[k] @ W_in.T + r @ W_rec.T + b)
        e_fb = on.E[k - delay] if k >= delay else torch.zeros_like(on.E[0])
        torch.testing.assert_close(on.x[k + 1] - x_off, a * e_fb @ W_f.T, rtol=1e-9, atol=1e-14)
    # with the controller off, the error and its loss are still computed, and differ from "on"
    assert not torch.allclose(on.E, off.E)
    assert float(trial_loss(off.E)) > 0


def test_density_zero_has_no_feedback_pathway():
    g = gen(13)
    net0 = init_network(NetworkConfig(n=16, feedback_density=0.0), g, dtype=F64)
    assert torch.equal(net0.mask, torch.zeros_like(net0.mask))
    assert torch.equal(net0.W_fb, torch.zeros_like(net0.W_fb))
    tr = random_reaches(SHORT, 4, g, dtype=F64)
    x0 = draw_x0(16, (4,), g, dtype=F64)
    on = rollout(net0, tr, x0=x0, controller_on=True)
    off = rollout(net0, tr, x0=x0, controller_on=False)
    torch.testing.assert_close(on.x, off.x, rtol=0, atol=0)
    torch.testing.assert_close(on.E, off.E, rtol=0, atol=0)
    # a density-1 network with its mask zeroed behaves as the same network with the controller off,
    # even if W_fb holds non-zero values
    net, tr, x0 = _setup()
    zeroed = net.replace(mask=torch.zeros_like(net.mask))
    a = rollout(zeroed, tr, x0=x0, controller_on=True)
    b = rollout(net, tr, x0=x0, controller_on=False)
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-15)


def test_partial_density_mask_is_fixed_01_and_applied():
    g = gen(14)
    net = init_network(NetworkConfig(n=200, feedback_density=0.5), g, dtype=F64)
    m = net.mask
    assert set(m.unique().tolist()) == {0.0, 1.0}
    assert abs(float(m.mean()) - 0.5) < 0.1
    assert torch.equal(net.W_fb, net.W_fb * m)
    assert (net.W_fb[m == 1] != 0).all()
    # the dynamics use M * W_fb: values stored in masked-out entries have no effect
    small = init_network(NetworkConfig(n=16, feedback_density=0.5), gen(15), dtype=F64)
    assert 0 < float(small.mask.sum()) < 32
    tr = random_reaches(SHORT, 3, gen(16), dtype=F64)
    x0 = draw_x0(16, (3,), gen(17), dtype=F64)
    junk = small.replace(W_fb=small.W_fb + 7.0 * (1 - small.mask))
    torch.testing.assert_close(rollout(junk, tr, x0=x0).x, rollout(small, tr, x0=x0).x, rtol=0, atol=1e-15)


# ---- delay ------------------------------------------------------------------------------------

@pytest.mark.parametrize("delay", [0, 1, 4])
def test_delay_feeds_back_earlier_error(delay):
    net, tr, x0 = _setup(delay=delay)
    ro = rollout(net, tr, x0=x0)
    for k in range(tr.T):
        if k < delay:
            assert torch.equal(ro.e_fb[k], torch.zeros_like(ro.e_fb[k]))
        else:
            assert torch.equal(ro.e_fb[k], ro.E[k - delay])
    torch.testing.assert_close(ro.u, ro.e_fb @ (net.W_fb * net.mask).T, rtol=1e-12, atol=1e-15)
    # the delay argument overrides the configured delay
    base = init_network(NetworkConfig(n=16), gen(12), dtype=F64)
    torch.testing.assert_close(rollout(base, tr, x0=x0, delay=delay).x,
                               rollout(base.replace(cfg=NetworkConfig(n=16, delay=delay)), tr, x0=x0).x,
                               rtol=0, atol=0)


def test_delay_changes_the_dynamics():
    net, tr, x0 = _setup()
    a = rollout(net, tr, x0=x0, delay=0)
    b = rollout(net, tr, x0=x0, delay=3)
    assert not torch.allclose(a.x, b.x)


# ---- pushes -----------------------------------------------------------------------------------

def test_push_adds_to_velocity():
    net, tr, x0 = _setup(batch=2)
    push = torch.zeros_like(tr.push)
    k0 = 7
    push[k0:k0 + 10, 0, 0] = 10.0
    push[k0:k0 + 10, 1, 1] = -10.0
    from dataclasses import replace
    pushed = replace(tr, push=push)
    for controller_on in (True, False):
        a = rollout(net, pushed, x0=x0, controller_on=controller_on)
        b = rollout(net, tr, x0=x0, controller_on=controller_on)
        # identical before the push; the push enters the velocity at its first step
        torch.testing.assert_close(a.x[: k0 + 2], b.x[: k0 + 2], rtol=0, atol=0)
        torch.testing.assert_close(a.v[:k0], b.v[:k0], rtol=0, atol=0)
        torch.testing.assert_close(a.v[k0] - b.v[k0], push[k0], rtol=0, atol=1e-12)
        torch.testing.assert_close(a.E[k0 + 1] - b.E[k0 + 1], -net.cfg.dt * push[k0], rtol=0, atol=1e-12)
        # later, only the controller lets the push change the network state
        later = (a.x[k0 + 2] - b.x[k0 + 2]).abs().max()
        assert (later > 1e-6) if controller_on else (later == 0)


# ---- initialisation, initial state, stacking ---------------------------------------------------

def test_init_ranges_and_reproducibility():
    n = 100
    net = init_network(NetworkConfig(n=n), gen(18), dtype=F64)
    assert net.W_in.shape == (n, 3) and net.W_rec.shape == (n, n) and net.W_fb.shape == (n, 2)
    assert net.b.shape == (n,) and net.W_out.shape == (2, n) and net.b_out.shape == (2,)
    kn, k2 = 1 / math.sqrt(n), 1 / math.sqrt(2)
    for name, bound in (("W_in", kn), ("W_rec", kn), ("W_out", kn), ("b_out", kn), ("W_fb", k2), ("b", k2)):
        w = getattr(net, name)
        assert w.abs().max() <= bound
        if w.numel() >= 100:  # uniform: the largest entries come close to the bound
            assert w.abs().max() > 0.9 * bound
            assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.15)
    again = init_network(NetworkConfig(n=n), gen(18), dtype=F64)
    for k, v in net.tensors().items():
        assert torch.equal(v, getattr(again, k))
    other = init_network(NetworkConfig(n=n), gen(19), dtype=F64)
    assert not torch.equal(net.W_rec, other.W_rec)


def test_draw_x0_uniform():
    x0 = draw_x0(50, (400,), gen(20), dtype=F64)
    assert x0.shape == (400, 50)
    assert x0.min() >= -0.1 and x0.max() <= 0.1
    assert float(x0.std()) == pytest.approx(0.2 / math.sqrt(12), rel=0.05)
    # the rollout draws x0 from the generator when none is given
    net, tr, _ = _setup()
    a = rollout(net, tr, generator=gen(21))
    assert torch.equal(a.x[0], draw_x0(16, (4,), gen(21), dtype=F64))
    with pytest.raises(ValueError):
        rollout(net, tr)


def test_stacked_networks_match_individual_rollouts():
    nets, trials, x0s = [], [], []
    for s in range(3):
        net, tr, x0 = _setup(seed=30 + s, delay=1, push=True)
        nets.append(net); trials.append(tr); x0s.append(x0)
    ro = rollout(Network.stack(nets), Trials.stack(trials), x0=torch.stack(x0s))
    assert ro.x.shape == (SHORT.T + 1, 3, 4, 16)
    for s in range(3):
        one = rollout(nets[s], trials[s], x0=x0s[s])
        torch.testing.assert_close(ro.x[:, s], one.x, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ro.E[:, s], one.E, rtol=1e-12, atol=1e-15)
    losses = trial_loss(ro.E, stacked=True)
    assert losses.shape == (3,)
    for s in range(3):
        assert float(losses[s]) == pytest.approx(float(ro.E[:, s].pow(2).mean()), rel=1e-12)


def test_config_validation():
    for bad in (dict(n=0), dict(feedback_density=1.5), dict(feedback_density=-0.1), dict(delay=-1)):
        with pytest.raises(ValueError):
            NetworkConfig(**bad)
    assert NetworkConfig().alpha == pytest.approx(0.2)
    assert NetworkConfig().n == 400


def test_sparse_masks_are_nested_fixed_and_leave_the_dense_weights_and_batches_alone():
    """A density-p network of seed s: the mask has about p of its entries set, comes from its own
    stream (the same seed gives the same mask), the masks of one seed are nested across densities,
    and every weight and every later draw of the seed's generator equals the dense network's, so
    sparse and dense networks of one seed are paired (same start, same training batches)."""
    n = 2000
    dense_g, g1, g3 = (torch.Generator().manual_seed(7) for _ in range(3))
    dense = init_network(NetworkConfig(n=n, feedback_density=1.0), dense_g)
    p1 = init_network(NetworkConfig(n=n, feedback_density=0.1), g1)
    p3 = init_network(NetworkConfig(n=n, feedback_density=0.3), g3)
    for net, p in ((p1, 0.1), (p3, 0.3)):
        frac = float(net.mask.mean())
        assert abs(frac - p) < 4 * (p * (1 - p) / (2 * n)) ** 0.5, (p, frac)
        assert set(net.mask.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(net.W_fb, dense.W_fb * net.mask)
        for k in ("W_in", "W_rec", "b", "W_out", "b_out"):
            assert torch.equal(getattr(net, k), getattr(dense, k)), k
    assert bool((p1.mask <= p3.mask).all())                      # nested
    nxt = [torch.rand(5, generator=g) for g in (dense_g, g1, g3)]  # the batches that follow agree
    assert torch.equal(nxt[0], nxt[1]) and torch.equal(nxt[0], nxt[2])
    again = init_network(NetworkConfig(n=n, feedback_density=0.1), torch.Generator().manual_seed(7))
    assert torch.equal(again.mask, p1.mask)
    other = init_network(NetworkConfig(n=n, feedback_density=0.1), torch.Generator().manual_seed(8))
    assert not torch.equal(other.mask, p1.mask)
