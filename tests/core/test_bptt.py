"""The hand-written forward pass and BPTT gradients (fbctrl.core.bptt) against model.rollout and
autograd, with delays, masks, the controller off and stacked networks."""

import pytest
import torch

from fbctrl.core.bptt import Regularisation, forward, forward_open_loop, loss_and_grads
from fbctrl.core.model import PARAM_NAMES, Network, NetworkConfig, draw_x0, init_network, rollout
from fbctrl.core.task import TaskConfig, Trials, random_reaches
from tests.helpers import autograd_loss_and_grads, gen

torch.set_num_threads(1)

SHORT = TaskConfig(T=30, go_step=5, move_steps=20)
F64 = torch.float64


def setup(seed, n=12, batch=3, density=1.0, delay=0):
    g = gen(seed)
    net = init_network(NetworkConfig(n=n, feedback_density=density, delay=delay), g, dtype=F64)
    tr = random_reaches(SHORT, batch, g, push=True, dtype=F64)
    x0 = draw_x0(n, (batch,), g, dtype=F64)
    return net, tr, x0


CASES = [  # (delay, controller_on, density)
    (0, True, 1.0),
    (2, True, 1.0),
    (0, False, 1.0),
    (2, False, 1.0),
    (0, True, 0.5),
    (2, True, 0.5),
    (0, True, 0.0),
]


@pytest.mark.parametrize("delay,controller_on,density", CASES)
def test_forward_equals_rollout(delay, controller_on, density):
    net, tr, x0 = setup(40, density=density)
    fwd = forward(net, tr, x0, controller_on=controller_on, delay=delay)
    ro = rollout(net, tr, x0=x0, controller_on=controller_on, delay=delay)
    assert fwd.X.shape == (SHORT.T + 1, 1, 3, 12)
    torch.testing.assert_close(fwd.X[:, 0], ro.x, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fwd.R[:, 0], ro.r, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fwd.E[:, 0], ro.E, rtol=1e-12, atol=1e-15)
    assert float(fwd.task_loss()[0]) == pytest.approx(float(ro.E.pow(2).mean()), rel=1e-12)
    # without the pre-activations kept (x updated in place): the same rates and errors, bit for bit
    lean = forward(net, tr, x0, controller_on=controller_on, delay=delay, keep_x=False)
    assert lean.X is None
    assert torch.equal(lean.R, fwd.R) and torch.equal(lean.E, fwd.E)
    if not controller_on:   # the tests' open-loop pass: the same rates and errors to rounding
        ol = forward_open_loop(net, tr, x0)
        assert ol.X is None and ol.Z is None
        torch.testing.assert_close(ol.R, fwd.R, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ol.E, fwd.E, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("delay,controller_on,density", CASES)
def test_bptt_gradient_equals_autograd(delay, controller_on, density):
    net, tr, x0 = setup(41, density=density)
    loss, task, rate, ag, ro = autograd_loss_and_grads(net, tr, x0, controller_on, delay)
    losses, grads, _ = loss_and_grads(net, tr, x0, controller_on=controller_on, delay=delay)
    assert float(losses["total"]) == pytest.approx(float(loss), rel=1e-12)
    assert float(losses["task"]) == pytest.approx(float(task), rel=1e-12)
    assert float(losses["rate"]) == pytest.approx(float(rate), rel=1e-12)
    for k in PARAM_NAMES:
        assert grads[k].shape == getattr(net, k).shape
        torch.testing.assert_close(grads[k], ag[k], rtol=1e-9, atol=1e-13, msg=f"gradient of {k}")
    # masked-out feedback weights get no gradient
    assert torch.all(grads["W_fb"][net.mask == 0] == 0)


def test_bptt_gradient_with_strong_regularisers_and_feedback_loop():
    """Large regularisation coefficients, so that each term of the loss matters for the check,
    and a network where the gradient through the feedback loop is a sizeable part of the total."""
    net, tr, x0 = setup(42, n=10, batch=2, delay=1)
    reg = Regularisation(rate=0.3, weights=0.2, recurrent=0.1)
    loss, _, _, ag, _ = autograd_loss_and_grads(net, tr, x0, True, 1, rate=0.3, weights=0.2, recurrent=0.1)
    losses, grads, _ = loss_and_grads(net, tr, x0, reg, controller_on=True, delay=1)
    assert float(losses["total"]) == pytest.approx(float(loss), rel=1e-12)
    for k in PARAM_NAMES:
        torch.testing.assert_close(grads[k], ag[k], rtol=1e-9, atol=1e-13, msg=f"gradient of {k}")
    # the gradient with the fed-back error treated as an input differs: the loop is differentiated
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.params().items()}
    ro = rollout(net.replace(**params), tr, x0=x0, delay=1, feedback_grad=False)
    g_nofb = torch.autograd.grad(ro.E.pow(2).mean(), params["W_rec"])[0]
    _, _, _, ag_task, _ = autograd_loss_and_grads(net, tr, x0, True, 1, rate=0, weights=0, recurrent=0)
    assert (ag_task["W_rec"] - g_nofb).norm() > 1e-3 * g_nofb.norm()


def test_bptt_stacked_networks_match_single():
    nets, trs, x0s = zip(*[setup(50 + s, delay=2, density=0.5) for s in range(3)])
    losses, grads, fwd = loss_and_grads(Network.stack(list(nets)), Trials.stack(list(trs)), torch.stack(x0s))
    assert losses["total"].shape == (3,)
    for s in range(3):
        loss, _, _, ag, _ = autograd_loss_and_grads(nets[s], trs[s], x0s[s], True, 2)
        assert float(losses["total"][s]) == pytest.approx(float(loss), rel=1e-12)
        for k in PARAM_NAMES:
            torch.testing.assert_close(grads[k][s], ag[k], rtol=1e-9, atol=1e-13)
