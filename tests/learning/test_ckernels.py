"""The compiled one-run kernels (fbctrl.learning.ckernels): the same records and weights as the
NumPy loops they replace, and the choice of kernels by FBCTRL_KERNELS with a clear message where it
cannot be honoured."""

import numpy as np
import pytest
import torch

from fbctrl.core.task import TaskConfig
from fbctrl.learning.adapt import RunSpec, adapt
from tests.helpers import SHORT_TASK, kernels, small_net


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("rule,bptt_weights,controller_on,delay", [
    ("rflo", "history", True, 0), ("rflo", "history", False, 0), ("rflo", "history", True, 2),
    ("bptt", "history", True, 0), ("bptt", "current", True, 0)])
def test_compiled_one_run_kernels_equal_the_numpy_paths(rule, bptt_weights, controller_on, delay, dtype, rtol,
                                                       monkeypatch):
    """The compiled one-run kernels (csrc/one_run.c: RFLO's whole trial, online BPTT's backward
    sweep in both weight conventions) give the records and weights of the NumPy loops they
    replace: float64 to rounding, float32 at the paper's T to float32 rounding over 3 trials;
    with the controller off and with a feedback delay too."""
    ck = kernels(monkeypatch, "auto")
    if ck.library() is None:
        pytest.skip("no working C compiler here: the NumPy paths run (tests/learning/test_adapt.py)")
    tc = TaskConfig() if dtype == torch.float32 else SHORT_TASK
    net = small_net(n=60 if dtype == torch.float32 else 12, dtype=dtype, scale=0.5)
    lr = {"rflo": 3e-5, "bptt": 1e-4}[rule] if dtype == torch.float32 else 0.01
    run = RunSpec(controller_on=controller_on, rotation_deg=40.0, lr=lr, seed=4)
    kw = dict(trials=3, task_cfg=tc, progress=False, dtype=dtype, bptt_weights=bptt_weights, delay=delay)
    fast = adapt(net, rule, [run], **kw)
    assert fast.meta["compute_path"] == "compiled"
    kernels(monkeypatch, "numpy")
    ref = adapt(net, rule, [run], **kw)
    assert ref.meta["compute_path"] == "numpy"
    for key in ("train_loss", "test_loss", "dW_path", "dW_total"):
        np.testing.assert_allclose(fast[key], ref[key], rtol=rtol, err_msg=key)
    torch.testing.assert_close(fast.W_final, ref.W_final, rtol=rtol, atol=rtol * float(ref.W_final.abs().max()))
    assert float((ref.W_final - net.W_rec).norm()) > 1e-3 * float(net.W_rec.norm())   # the weights really moved


def test_compiled_kernels_follow_the_environment(monkeypatch, tmp_path):
    """FBCTRL_KERNELS: a bad value names the variable and what is allowed; without a working
    compiler "auto" warns once and runs the NumPy loops, "c" stops with a clear error."""
    ck = kernels(monkeypatch, "fast")
    with pytest.raises(ValueError, match="FBCTRL_KERNELS must be one of auto, c, numpy, got 'fast'"):
        ck.library()
    monkeypatch.setenv("FBCTRL_CACHE_DIR", str(tmp_path))          # nothing built here yet
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    kernels(monkeypatch, "auto")
    with pytest.warns(RuntimeWarning, match="using the NumPy paths"):
        assert ck.library() is None
    assert not ck.available(torch.float32)
    net = small_net(n=12, scale=0.5)
    res = adapt(net, "rflo", [RunSpec(lr=0.01, seed=1)], trials=1, task_cfg=SHORT_TASK, progress=False, dtype=torch.float64)
    assert res.meta["compute_path"] == "numpy"
    kernels(monkeypatch, "c")
    with pytest.raises(RuntimeError, match="FBCTRL_KERNELS=c but the compiled kernels are unavailable"):
        ck.library()
