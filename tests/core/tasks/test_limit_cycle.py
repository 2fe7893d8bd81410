"""The limit-cycle task (fbctrl.core.tasks.limit_cycle; Methods, "The limit-cycle task"): its
targets by hand, its spectral peak, its training and test frequencies, and a limit-cycle network
through pre-training and adaptation to a frequency shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from fbctrl.core.checkpoint import load_checkpoint, network_spec
from fbctrl.core.task import TaskConfig
from fbctrl.core.tasks import FrequencyShift, LimitCycle, LimitCycleConfig, cycle_trials, spectral_peak_hz
from fbctrl.core.train import PretrainConfig, pretrain
from fbctrl.learning.adapt import RunSpec, adapt
from tests.helpers import gen


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
