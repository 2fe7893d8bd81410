"""The perturbations (fbctrl.core.tasks.perturbations): a frequency shift changes the target
frequency only, and each task accepts its own perturbation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fbctrl.core.task import TaskConfig, centre_out_reaches
from fbctrl.core.tasks import (FrequencyShift, LimitCycle, LimitCycleConfig, Reach, Rotation, cycle_trials,
                               parse_perturbation, spectral_peak_hz)


F64 = torch.float64
LC = LimitCycleConfig()
TC = TaskConfig(T=30, go_step=5, move_steps=20)


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
