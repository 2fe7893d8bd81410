"""Experiment helpers: paired conditions, result files round-trip, summaries."""

import numpy as np
import pytest
import torch

from fbctrl.experiments.runs import load_results, run_conditions, save_results, shipped_networks, summarise
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


def test_conditions_are_paired_and_results_round_trip(folder, tmp_path):
    nets, seeds = shipped_networks(folder, "fb")
    res = run_conditions(nets, seeds, trials=3, progress=False, lrs={k: 1e-6 for k in
                         [("rflo", True), ("rflo", False), ("bptt", True), ("bptt", False)]})
    assert set(res) == {"RFLO+c", "RFLO", "BPTT+c", "BPTT"}
    # same target sequence for every condition of a seed
    for name in res:
        np.testing.assert_array_equal(res[name]["target"], res["RFLO+c"]["target"])
    path = tmp_path / "r.npz"
    save_results(path, res, {"rotation_deg": 30.0})
    back, meta = load_results(path)
    assert meta["rotation_deg"] == 30.0 and "commit" in meta
    for name in res:
        np.testing.assert_array_equal(back[name]["test_loss"], res[name]["test_loss"])
    summ = summarise(back, final_window=2)
    f = summ["BPTT"]["final_test_loss"]
    np.testing.assert_allclose(f["mean"], np.mean(np.mean(res["BPTT"]["test_loss"][:, -2:], 1)))
    assert f["n"] == 2


def test_results_for_different_seeds_concatenate(folder, tmp_path):
    from fbctrl.experiments.runs import load_results

    lrs = {k: 1e-6 for k in [("rflo", True), ("rflo", False), ("bptt", True), ("bptt", False)]}
    parts = []
    for seed in (3, 0):
        nets, seeds = shipped_networks(folder, "fb", seeds=[seed])
        res = run_conditions(nets, seeds, trials=2, progress=False, lrs=lrs, conditions=(("rflo", True),))
        p = tmp_path / f"r{seed}.npz"
        save_results(p, res, {"seeds": seeds, "rotation_deg": 30.0, "trials": 2})
        parts.append((p, res))
    both, meta = load_results([parts[0][0], parts[1][0]])
    assert meta["seeds"] == [0, 3]
    np.testing.assert_array_equal(both["RFLO+c"]["test_loss"][0], parts[1][1]["RFLO+c"]["test_loss"][0])
    np.testing.assert_array_equal(both["RFLO+c"]["test_loss"][1], parts[0][1]["RFLO+c"]["test_loss"][0])


def test_lr_sweep_marks_divergence_and_keeps_shapes(folder, tmp_path):
    from fbctrl.experiments.runs import load_sweep, lr_sweep, save_sweep

    nets, seeds = shipped_networks(folder, "fb")
    sw = lr_sweep(nets, seeds, rates={"rflo": [1e-7, 1e3]}, rotations=(30.0, 60.0), trials=3, rules=("rflo",),
                  final_window=2, progress=False)
    fin = sw["final"]["RFLO+c"]
    assert fin.shape == (2, 2, 2)
    assert np.isfinite(fin[0]).all() and sw["diverged"]["RFLO+c"][1].all() and np.isnan(fin[1]).all()
    save_sweep(tmp_path / "s.npz", sw, {"command": "test"})
    back = load_sweep(tmp_path / "s.npz")
    np.testing.assert_array_equal(back["final"]["RFLO"], sw["final"]["RFLO"])


def test_sweeps_for_different_seeds_concatenate(folder, tmp_path):
    from fbctrl.experiments.runs import load_sweep, lr_sweep, save_sweep

    for seed in (3, 0):
        nets, seeds = shipped_networks(folder, "fb", seeds=[seed])
        sw = lr_sweep(nets, seeds, rates={"rflo": [1e-7, 1e-6]}, trials=2, rules=("rflo",), final_window=1,
                      progress=False)
        save_sweep(tmp_path / f"s_{seed}.npz", sw, {})
    both = load_sweep(str(tmp_path / "s_*.npz"))
    assert both["seeds"] == [0, 3] and both["final"]["RFLO+c"].shape == (2, 1, 2)
    one = load_sweep(tmp_path / "s_0.npz")
    np.testing.assert_array_equal(both["curves"]["RFLO"][:, :, 0], one["curves"]["RFLO"][:, :, 0])
