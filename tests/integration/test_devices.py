"""The GPU path, checked on every available device (the ``device`` fixture, tests/conftest.py).

Each test runs the computation in float32 on the device and compares it with the same
computation in float64 on the CPU (a float32 result must agree to float32 accuracy), and where
there is an independent reference, with torch.autograd on the device itself. Without CUDA only
the "cpu" cases run; there they check the float32 path against float64, so every case asserts a
property that a wrong implementation (or a tensor left on the wrong device) would fail.
"""

import io

import numpy as np
import pytest
import torch

from tests.helpers import gen
from fbctrl.learning.adapt import AdaptResult, RunSpec, adapt
from fbctrl.analysis.gradients import activity_gradients, jacobian_norms
from fbctrl.core.bptt import Regularisation, forward, loss_and_grads
from fbctrl.core.evaluate import evaluate
from fbctrl.core.model import PARAM_NAMES, Network, NetworkConfig, draw_x0, init_network, rollout, trial_loss
from fbctrl.analysis.online import trial_traces
from fbctrl.learning.rules import OnlineBPTT
from fbctrl.core.task import TaskConfig, Trials, centre_out_reaches, random_reaches
from fbctrl.core.train import PretrainConfig, Trainer

torch.set_num_threads(1)

F32, F64 = torch.float32, torch.float64
# short trials; pushes (probability 0.5 per dimension) that fall inside them
TC = TaskConfig(T=24, go_step=4, move_steps=16, push_prob=0.5, push_centre_low=6, push_centre_high=18)
# float32 agreement: |a - b| <= TOL (|b| + max |b|) elementwise (float32 eps is 1.2e-7; the
# recurrences and, in adaptation, the weight updates of every step amplify it to about 1e-6)
TOL = 1e-4


def close(got, ref, tol=TOL, what=""):
    """``got`` (any device, any dtype; tensor or array) agrees with the reference ``ref``
    elementwise, relative to the element and to the reference's largest entry. An all-zero
    reference must be matched exactly."""
    got = torch.as_tensor(got).detach().cpu().to(F64)
    ref = torch.as_tensor(ref).detach().cpu().to(F64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    assert torch.isfinite(ref).all(), what
    scale = float(ref.abs().max())
    if scale == 0.0:
        assert torch.equal(got, ref), what
        return
    err = float(((got - ref).abs() / (ref.abs() + scale)).max())
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"


def on_device(device, net, trials, x0):
    """The float32 copies of a problem on ``device``."""
    return net.to(device, F32), trials.to(device, F32), x0.to(device, F32)


def reaches(seed, S=None, n=24, batch=3, density=1.0, delay=0):
    """A random network (or S stacked ones), pushed random reaches and initial states: float64,
    CPU."""
    g = gen(seed)
    cfg = NetworkConfig(n=n, feedback_density=density, delay=delay)
    if S is None:
        net = init_network(cfg, g, dtype=F64)
        return net, random_reaches(TC, batch, g, push=True, dtype=F64), draw_x0(n, (batch,), g, F64)
    nets = Network.stack([init_network(cfg, g, dtype=F64) for _ in range(S)])
    trials = Trials.stack([random_reaches(TC, batch, g, push=True, dtype=F64) for _ in range(S)])
    return nets, trials, draw_x0(n, (S, batch), g, F64)


CASES = [  # (delay, controller_on, feedback density, stacked networks or None)
    (0, True, 1.0, None),
    (2, True, 0.5, 2),
    (1, False, 1.0, 2),
]


@pytest.mark.parametrize("delay,controller_on,density,S", CASES)
def test_rollout_and_forward_on_device_equal_cpu(device, delay, controller_on, density, S):
    net, tr, x0 = reaches(1, S, density=density, delay=delay)
    ref = rollout(net, tr, x0=x0, controller_on=controller_on)
    net_d, tr_d, x0_d = on_device(device, net, tr, x0)
    ro = rollout(net_d, tr, x0=x0, controller_on=controller_on)   # CPU float64 inputs: moved and cast
    fwd = forward(net_d, tr_d, x0_d, controller_on=controller_on)
    assert ro.x.device == fwd.X.device == net_d.device and ro.x.dtype == fwd.X.dtype == F32
    for name in ("x", "r", "v", "E", "u", "e_fb"):
        close(getattr(ro, name), getattr(ref, name), what=f"rollout {name}")
    lead = (lambda t: t) if S else (lambda t: t[:, 0])   # forward always has a network axis
    for name, ref_t in (("X", ref.x), ("R", ref.r), ("E", ref.E)):
        close(lead(getattr(fwd, name)), ref_t, what=f"forward {name}")
    close(fwd.task_loss(), trial_loss(ref.E, True) if S else ref.E.pow(2).mean().reshape(1), what="task loss")
    # initial states drawn inside from a (CPU) generator: the same draws as on the CPU
    ro_g = rollout(net_d, tr, generator=gen(7), controller_on=controller_on)
    close(ro_g.x, rollout(net, tr, generator=gen(7), controller_on=controller_on).x, what="drawn x0")


def autograd_grads(net, trials, x0, reg, controller_on):
    """The pre-training loss (Methods, "Pre-training") per network on top of ``model.rollout`` (stacked or
    not) and its gradient,
    by torch.autograd on the network's device."""
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.params().items()}
    ro = rollout(net.replace(**params), trials, x0=x0, controller_on=controller_on)

    def fro(W):
        return W.reshape(W.shape[0], -1).norm(dim=1) if net.stacked else W.norm()

    weights = sum(fro(params[k]) for k in ("W_in", "W_out", "b_out", "b")) + fro(params["W_fb"] * net.mask)
    total = (trial_loss(ro.E, net.stacked) + reg.rate * trial_loss(ro.r[1:], net.stacked)
             + reg.weights * weights + reg.recurrent * fro(params["W_rec"]))
    grads = torch.autograd.grad(total.sum(), [params[k] for k in PARAM_NAMES])
    return total.detach(), dict(zip(PARAM_NAMES, grads))


@pytest.mark.parametrize("delay,controller_on,density,S", CASES)
def test_bptt_gradients_on_device_equal_autograd_and_cpu(device, delay, controller_on, density, S):
    net, tr, x0 = reaches(2, S, density=density, delay=delay)
    reg = Regularisation(rate=0.05, weights=0.02, recurrent=0.01)   # every term of the loss counts
    ref_losses, ref_grads, _ = loss_and_grads(net, tr, x0, reg, controller_on=controller_on)
    net_d, tr_d, x0_d = on_device(device, net, tr, x0)
    losses, grads, _ = loss_and_grads(net_d, tr_d, x0_d, reg, controller_on=controller_on)
    ag_total, ag_grads = autograd_grads(net_d, tr_d, x0_d, reg, controller_on)
    for key, value in losses.items():
        close(value, ref_losses[key], what=f"loss {key}")
    close(losses["total"], ag_total, what="loss vs autograd")
    for k in PARAM_NAMES:
        assert grads[k].device == net_d.device and grads[k].shape == getattr(net_d, k).shape
        close(grads[k], ref_grads[k], what=f"gradient of {k} vs CPU")
        close(grads[k], ag_grads[k], what=f"gradient of {k} vs autograd on the device")


def test_trainer_steps_on_device_equal_cpu_and_resume_there(device):
    cfg = PretrainConfig(n=20, batches=4, batch_size=4, eval_every=1000, checkpoint_every=1000)
    ref = Trainer(cfg, [0, 1], task_cfg=TC, dtype=F64)
    dev = Trainer(cfg, [0, 1], task_cfg=TC, device=device)
    start = {k: v.clone() for k, v in ref.params.items()}
    for _ in range(2):
        got, want = dev.step(), ref.step()
        for key in ("loss", "task_loss", "grad_norm"):
            close(got[key], want[key], what=key)
    for k in PARAM_NAMES:
        assert dev.params[k].device == dev.net.device == torch.empty(0, device=device).device
        close(dev.params[k].grad, ref.params[k].grad, what=f"clipped gradient of {k}")
        # the Adam steps (about lr = 1e-3 per entry) agree, not only the parameters they move;
        # Adam divides by |g|, so an entry with a small gradient amplifies rounding: 10 x TOL
        close(dev.params[k].double().cpu() - start[k], ref.params[k] - start[k], 10 * TOL, what=f"update of {k}")
    ev, ev_ref = dev.evaluate(), ref.evaluate()
    assert ev.keys() == ev_ref.keys()
    for key in ev:
        close(ev[key], ev_ref[key], what=f"evaluation {key}")
    # resume on the device from a saved state (loaded onto the CPU, as train.pretrain does)
    buf = io.BytesIO()
    torch.save(dev.state(), buf)
    buf.seek(0)
    again = Trainer(cfg, [0, 1], task_cfg=TC, device=device)
    again.load_state(torch.load(buf, map_location="cpu", weights_only=False), "in-memory state")
    dev.step()
    again.step()
    for k in PARAM_NAMES:
        close(again.params[k], dev.params[k], tol=1e-6, what=f"resumed {k}")


LR = {"rflo": 1e-3, "bptt": 1e-2}   # weight changes of 5 to 25 % of |W_rec| in two trials
RULES = [("rflo", "history"), ("bptt", "history"), ("bptt", "current")]   # (rule, bptt_weights)
RECORDS = ("train_loss", "test_loss", "aftereffect_loss", "dW_trial", "dW_path", "dW_total")


def adapt_nets(S=None):
    g = gen(4)
    nets = [init_network(NetworkConfig(n=20), g, dtype=F64) for _ in range(S or 1)]
    return Network.stack(nets) if S else nets[0]


def assert_adaptation_close(res, ref, W_start, tol=TOL):
    """Records and the weight change of every run of two adaptation results."""
    np.testing.assert_array_equal(res["target"], ref["target"])
    np.testing.assert_array_equal(res.diverged, ref.diverged)
    for key in RECORDS:
        close(res[key], ref[key], tol, what=key)
    close(res.W_final.cpu().to(F64) - W_start, ref.W_final.cpu().to(F64) - W_start, tol, what="W_final - W_rec")


def adapt_on_device_and_cpu(device, rule, run, **kw):
    """Two trials of one run: float32 on ``device`` and float64 on the CPU -> (res, ref, net)."""
    net = adapt_nets()
    kw = dict(trials=2, task_cfg=TC, progress=False, **kw)
    res = adapt(net, rule, [run], device=device, dtype=F32, **kw)
    assert res.W_final.device == torch.empty(0, device=device).device and res.W_final.dtype == F32
    return res, adapt(net, rule, [run], dtype=F64, **kw), net


@pytest.mark.parametrize("controller_on", [True, False])
@pytest.mark.parametrize("rule,bptt_weights", RULES)
def test_adaptation_on_device_equals_cpu(device, rule, bptt_weights, controller_on):
    run = RunSpec(controller_on=controller_on, rotation_deg=40.0, lr=LR[rule], seed=3)
    res, ref, net = adapt_on_device_and_cpu(device, rule, run, bptt_weights=bptt_weights)
    assert_adaptation_close(res, ref, net.W_rec)


@pytest.mark.parametrize("rule", ["rflo", "bptt"])
def test_lockstep_runs_equal_single_runs_on_device(device, rule):
    """More runs than one chunk of online BPTT's CPU sweep, on two stacked networks."""
    nets = adapt_nets(S=2)
    R = OnlineBPTT.CPU_CHUNK + 1
    runs = [RunSpec(net_index=i % 2, controller_on=i % 3 != 1, rotation_deg=20.0 + 10 * i,
                    lr=LR[rule] * (i + 1) / R, seed=i) for i in range(R)]
    kw = dict(trials=2, task_cfg=TC, progress=False, device=device, dtype=F32)
    together = adapt(nets, rule, runs, **kw)
    for i in (0, 1, R - 1):
        alone = adapt(nets, rule, [runs[i]], **kw)
        one = AdaptResult(rule, [runs[i]], records={k: v[i: i + 1] for k, v in together.records.items()},
                          diverged=together.diverged[i: i + 1])
        one.W_final = together.W_final[i: i + 1]
        assert_adaptation_close(one, alone, nets.W_rec[runs[i].net_index])
    # the runs really differ from each other
    assert np.abs(together["dW_total"][0] - together["dW_total"][1]).min() > 1e-3 * together["dW_total"][0].max()


@pytest.mark.parametrize("rule,bptt_weights", RULES)
def test_alignment_sweep_on_device_equals_cpu(device, rule, bptt_weights):
    run = RunSpec(controller_on=True, rotation_deg=30.0, lr=LR[rule], seed=5)
    res, ref, net = adapt_on_device_and_cpu(device, rule, run, align=True, bptt_weights=bptt_weights)
    moving = slice(TC.go_step + 1, None)   # before the movement the step gradients are tiny
    close(res["align_local"][..., moving], ref["align_local"][..., moving], what="align_local")
    close(res["align_global"], ref["align_global"], what="align_global")
    assert_adaptation_close(res, ref, net.W_rec)


@pytest.mark.parametrize("controller_on", [True, False])
def test_analyses_on_device_equal_cpu(device, controller_on):
    g = gen(11)
    net = init_network(NetworkConfig(n=24), g, dtype=F64)
    tr = centre_out_reaches(TC, [3], dtype=F64).rotated(30.0)
    x0 = draw_x0(24, (1,), g, F64)
    net_d, tr_d, x0_d = on_device(device, net, tr, x0)
    ag, ag_ref = activity_gradients(net_d, tr_d, x0_d, controller_on=controller_on), \
        activity_gradients(net, tr, x0, controller_on=controller_on)
    for name in ("u", "neg_grad_trial", "neg_grad_inst", "cos_trial", "cos_inst", "E"):
        close(getattr(ag, name), getattr(ag_ref, name), what=f"activity_gradients {name}")
    kw = dict(controller_on=controller_on, lags=(1, 4), closed_loop=controller_on)
    jn, jn_ref = jacobian_norms(net_d, tr_d, x0_d, **kw), jacobian_norms(net, tr, x0, **kw)
    for lag in (1, 4):
        close(jn[lag], jn_ref[lag], what=f"jacobian_norms lag {lag}")
    tt, tt_ref = trial_traces(net_d, tr_d, x0_d, controller_on=controller_on), \
        trial_traces(net, tr, x0, controller_on=controller_on)
    for key in tt_ref:
        close(tt[key], tt_ref[key], what=f"trial_traces {key}")
    ev_kw = dict(rotation_deg=30.0, controller_on=controller_on, push=True, trials=16, task_cfg=TC)
    ev, ev_ref = evaluate(net_d, "centre-out", **ev_kw), evaluate(net, "centre-out", **ev_kw)
    for key in ("loss", "final_error", "final_error_per_target"):
        close(ev[key], ev_ref[key], what=f"evaluate {key}")
