"""Experiment helpers of the live computation: paired conditions, the sweep's divergence marks."""

import numpy as np
import pytest
import torch

from fbctrl.experiments.runs import lr_sweep, run_conditions, shipped_networks
from fbctrl.core.checkpoint import save_checkpoint
from fbctrl.core.model import NetworkConfig, init_network
from fbctrl.core.task import TaskConfig

torch.set_num_threads(1)
TC = TaskConfig(T=24, go_step=4, move_steps=16)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("nets")
    for s in (0, 3):
        net = init_network(NetworkConfig(n=12), torch.Generator().manual_seed(s))
        save_checkpoint(net, d / f"fb_seed{s}.pt", {"seed": s})
    return d


def test_shipped_networks_loads_available_seeds_and_rejects_missing(folder):
    nets, seeds = shipped_networks(folder, "fb")
    assert seeds == [0, 3] and nets.n_networks == 2
    with pytest.raises(ValueError, match="seeds \\[1\\]"):
        shipped_networks(folder, "fb", seeds=[1])


def test_conditions_are_paired(folder):
    nets, seeds = shipped_networks(folder, "fb")
    res = run_conditions(nets, seeds, trials=3, progress=False, lrs={k: 1e-6 for k in
                         [("rflo", True), ("rflo", False), ("bptt", True), ("bptt", False)]})
    assert set(res) == {"RFLO+c", "RFLO", "BPTT+c", "BPTT"}
    # same target sequence for every condition of a seed
    for name in res:
        np.testing.assert_array_equal(res[name]["target"], res["RFLO+c"]["target"])


def test_lr_sweep_marks_divergence_and_keeps_shapes(folder):
    nets, seeds = shipped_networks(folder, "fb")
    sw = lr_sweep(nets, seeds, rates={"rflo": [1e-7, 1e3]}, rotations=(30.0, 60.0), trials=3, rules=("rflo",),
                  final_window=2, progress=False)
    fin = sw["final"]["RFLO+c"]
    assert fin.shape == (2, 2, 2)
    assert np.isfinite(fin[0]).all() and sw["diverged"]["RFLO+c"][1].all() and np.isnan(fin[1]).all()
    # a diverged run's test loss is NaN from the trial it diverged at (what the migration reads)
    assert np.isnan(sw["curves"]["RFLO+c"][1]).all() and np.isfinite(sw["curves"]["RFLO+c"][0]).all()
