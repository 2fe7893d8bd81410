"""The Findings chapters' logic (fbctrl.book.data) and figures (fbctrl.viz.figures) on tiny networks:
the shipped family's runs read from the store (computed there by the store's runner), live
computation of what the store lacks, summaries, the sweep and its best rates, and a smoke test of
every figure. The analyses themselves are tested in tests/analysis/test_network.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fbctrl import book, fmt
from fbctrl.analysis import network
from fbctrl.book import data
from fbctrl.core.task import TaskConfig
from fbctrl.experiments import metrics, paper, shipped, stats
from fbctrl.experiments.runs import shipped_networks
from fbctrl.learning import adapt as adapt_mod
from fbctrl.learning.adapt import RunSpec, adapt
from fbctrl.learning.rates import PAPER_LR
from fbctrl.viz import figures, widgets
from tests.helpers import shipped_store, untrained_net

torch.set_num_threads(1)
N = 10
TRIALS = 3
# the shipped family at a tiny size: 30 and 40 degrees, exact BPTT on seed 1, a 3-trial sweep
SIZES = shipped.ShippedSizes(trials={30.0: TRIALS, 40.0: TRIALS + 2}, exact_bptt_trials=TRIALS - 1, exact_bptt_seeds=(1,),
                             sweep_trials=3)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    res = tmp_path_factory.mktemp("res")
    mp = pytest.MonkeyPatch()
    mp.setattr(data, "SIZES", SIZES)
    shipped_store(ck, res, N, SIZES)     # the family's units, as `paper --networks shipped` computes them
    yield ck, res
    mp.undo()


def _P(dirs, **kw):
    ck, res = dirs
    return book.validate_params(profile="default", device="cpu", checkpoint_dir=str(ck), results_dir=str(res), **kw)


# ---- helpers ---------------------------------------------------------------------------------


def test_fmt_seeds_and_verdict():
    assert fmt.fmt_seeds([2, 0, 1]) == "s0-2"
    assert fmt.fmt_seeds([0, 3]) == "s0_3"
    assert fmt.fmt_seeds([4]) == "s4"
    # the interval rule (fbctrl.experiments.stats), not a sign count: hand case n = 4, d = [1, 2, 3, 4]:
    # mean 2.5, sd 1.291, t_{0.975,3} = 3.182 -> [0.446, 4.554], p = 0.0305 (scipy.stats.ttest_1samp)
    assert stats.verdict_text([1, 2, 3, 4]) == "agrees (p = 0.030, 4 seeds)"
    assert stats.verdict_text([1, 2, 3, 4], direction=-1) == "disagrees (p = 0.030, 4 seeds)"
    # every seed positive but the interval covers zero: inconclusive, not "agrees"
    assert stats.verdict_text([0.1, 0.2]).startswith("inconclusive")
    assert stats.verdict_text([0.3, -0.1]).startswith("inconclusive")
    assert stats.verdict_text([0.2]) == "inconclusive (1 seed)"
    assert stats.verdict_text([np.nan]).startswith("cannot")


# ---- adaptation results ----------------------------------------------------------------------

def test_the_family_is_in_the_store(dirs):
    ck, res = dirs
    cfg = data.store_config(_P(dirs))
    assert cfg.fb_seeds == (0, 1) and cfg.nofb_seeds == (5,) and cfg.results_dir == str(res / "paper" / "shipped")
    assert not shipped.plan(cfg, SIZES) and list((res / "paper" / "shipped").rglob("*.npz"))


def test_load_adaptation_concatenates_seeds_and_selects(dirs):
    P = _P(dirs)
    ad = data.load_adaptation(P, 30.0)
    assert ad.source == "store" and ad.seeds == [0, 1] and ad.trials == TRIALS
    assert ad.conditions == ["RFLO+c", "RFLO", "BPTT+c", "BPTT"]
    assert ad["RFLO"]["test_loss"].shape == (2, TRIALS)
    assert ad.lrs["BPTT"] == PAPER_LR[("bptt", False)] and ad.lrs["RFLO"] == PAPER_LR[("rflo", False)]   # paper-text
    one = data.load_adaptation(P, 30.0, seeds=[1], trials=2, rules=("rflo",))
    assert one.source == "store" and one.seeds == [1] and one.trials == 2
    assert one.conditions == ["RFLO+c", "RFLO"]
    np.testing.assert_array_equal(one["RFLO+c"]["test_loss"][0], ad["RFLO+c"]["test_loss"][1, :2])
    assert data.truncated(ad, 2)["RFLO"]["train_loss"].shape == (2, 2)


def test_comparable_sets_share_seeds_and_length(dirs):
    P = _P(dirs)
    sets = {30.0: data.load_adaptation(P, 30.0), 40.0: data.load_adaptation(P, 40.0, seeds=[0]),
            45.0: data.load_adaptation(P, 45.0, seeds=[1], trials=2, rules=("rflo",))}
    cmp, common, n = data.comparable(sets)
    assert common == [0] and n == TRIALS and list(cmp) == [30.0, 40.0, 45.0]
    assert cmp[30.0].seeds == [0] and cmp[40.0].trials == TRIALS and cmp[45.0] is sets[45.0]
    np.testing.assert_array_equal(cmp[40.0]["RFLO"]["test_loss"][0], sets[40.0]["RFLO"]["test_loss"][0, :TRIALS])
    np.testing.assert_array_equal(cmp[30.0]["BPTT"]["dW_path"][0], sets[30.0]["BPTT"]["dW_path"][0])


def test_missing_rotation_is_computed_live_and_not_saved(dirs):
    P = _P(dirs)
    before = sorted(Path(P.results_dir).rglob("*"))
    ad = data.load_adaptation(P, 45.0, seeds=[0], trials=2, rules=("rflo",))
    assert ad.source == "live" and ad.trials == 2 and ad.seeds == [0]
    assert ad.conditions == ["RFLO+c", "RFLO"] and np.isfinite(ad["RFLO"]["test_loss"]).all()
    assert "45" in ad.describe() and "computed" in ad.describe()
    after = sorted(Path(P.results_dir).rglob("*"))
    assert before == after
    # a length the store lacks forces a live run too; no network at all gives None
    assert data.load_adaptation(P, 30.0, seeds=[0], trials=TRIALS + 5, rules=("rflo",)).source == "live"
    assert data.load_adaptation(P, 45.0, "nofb", compute=False) is None
    nofb = data.load_adaptation(P, 30.0, "nofb", trials=2)
    assert nofb.source == "store" and nofb.conditions == ["RFLO", "BPTT"] and nofb.seeds == [5]
    assert data.load_adaptation(P, 30.0, "nofb", trials=TRIALS + 1).source == "live"


def test_initial_test_losses_match_the_adaptation_test(dirs):
    ck, _ = dirs
    nets, seeds = shipped_networks(ck, f"fb_n{N}", [0, 1])
    init = adapt_mod.initial_test_losses(nets, 30.0)
    # a run with a vanishing rate tests the unchanged network after its first trial
    res = adapt(nets, "rflo", [RunSpec(net_index=i, controller_on=True, rotation_deg=30.0, lr=1e-30, seed=i)
                               for i in range(2)], trials=1, progress=False)
    np.testing.assert_allclose(init["test"], res.records["test_loss"][:, 0], rtol=1e-5)
    np.testing.assert_allclose(init["aftereffect"], res.records["aftereffect_loss"][:, 0], rtol=1e-5)


def test_alignment_is_recorded_in_the_store(dirs):
    ad = data.load_adaptation(_P(dirs), 30.0)
    s = metrics.alignment_summary(ad["RFLO+c"])
    np.testing.assert_array_equal(s["trials"], [0])            # every align_every (50) trials: the first of 3
    assert np.all(np.abs(s["local"]) <= 1) and np.all(np.abs(s["global"]) <= 1)


# ---- sweep -----------------------------------------------------------------------------------

def test_sweep_is_read_from_the_store(dirs):
    P = _P(dirs)
    sw = data.load_sweep_set(P, 30.0)
    assert sw.source == "store" and sw.seeds == [0, 1] and sw.rotations == [30.0] and sw.trials == 3
    assert sw.final["RFLO+c"].shape == (5, 1, 2) and sw.rates == {k: list(v) for k, v in data.SHIPPED_SWEEP_GRID.items()}
    best = data.best_rates(sw)
    assert best["RFLO+c"]["paper"] == 2 and best["BPTT"]["paper"] == 1      # 5e-5 and 5e-6 in the grid
    np.testing.assert_array_equal(sw.final["RFLO"][:, 0], np.where(sw.diverged["RFLO"][:, 0], np.nan,
                                                                   sw.curves["RFLO"][:, 0, :, -3:].mean(-1)))
    one = data.load_sweep_set(P, 30.0, seeds=[1], trials=2)
    np.testing.assert_array_equal(one.curves["BPTT"][..., 0, :], sw.curves["BPTT"][..., 1, :2])
    assert one.trials == 2 and one.source == "store"
    assert data.load_sweep_set(P, 45.0, compute=False) is None


def test_missing_sweep_rotation_is_computed_live(dirs, monkeypatch):
    monkeypatch.setattr(data, "SHIPPED_SWEEP_GRID", {"rflo": [1e-5], "bptt": [1e-6]})
    sw = data.load_sweep_set(_P(dirs), 50.0, seeds=[0], trials=2, rules=("rflo",))
    assert sw.source == "live" and sw.rotations == [50.0] and sw.conditions == ["RFLO+c", "RFLO"]
    assert sw.final["RFLO"].shape == (1, 1, 1)


# ---- explorer and figures --------------------------------------------------------------------

def test_explore_run_and_widget(dirs):
    net = untrained_net(N, 0)
    st = widgets.ExploreState(network="a", rule="rflo", controller_on=False, trials=2)
    run = widgets.explore_run(net, st)
    assert run["train_loss"].shape == (2,) and run["hand_after"].shape == run["hand_before"].shape
    assert math.isclose(st.rate(), 5e-5)
    ex = widgets.adaptation_explorer({"a": net}, st, initial=run)
    assert ex._repr_mimebundle_()["text/plain"].startswith("Adaptation explorer")
    ex.controls["rule"].value = "bptt"
    assert math.isclose(ex.controls["lr"].value, 5e-6, rel_tol=1e-6)


def test_every_figure_draws(dirs):
    import matplotlib.pyplot as plt

    P = _P(dirs)
    ad = data.load_adaptation(P, 30.0)
    nets = {s: untrained_net(N, s) for s in (0, 1)}
    init = adapt_mod.initial_test_losses(data.stack(nets), 30.0)
    sets = {30.0: ad, 40.0: data.load_adaptation(P, 40.0, seeds=[0])}
    tc = TaskConfig()
    t = np.arange(1, tc.T) * tc.dt
    cos = network.activity_cosines({0: nets[0]}, 30.0)
    curves = {"eval_batch": np.arange(3), "eval_cos_Wfb_WoutT": np.array([[0.0, 0.3, 0.5]])}
    figs = [
        figures.plot_activity_cosines(t, cos, cos, curves, go_s=0.2),
        figures.plot_adaptation_curves(ad, init),
        figures.plot_rotations(sets, {30.0: init}, live={40.0}),
        figures.plot_nofb(data.load_adaptation(P, 30.0, "nofb", trials=2), ad),
        figures.plot_jacobians(network.jacobian_profile({0: nets[0]}, 30.0, targets=(0,), lags=(1, 2), stride=20)),
        figures.plot_alignment({c: metrics.alignment_summary(ad[c]) for c in ("RFLO+c", "RFLO")}),
        figures.plot_horizon(network.horizon_profile({0: nets[0]}, 30.0, targets=(0,), horizons=(1, 5))),
        figures.plot_efficiency(sets, 30.0, {c: metrics.loss_drop_per_path(ad[c], init["test"]) for c in ad.conditions}),
        figures.plot_activity_newton(network.activity_newton_cosines({0: nets[0]}, 30.0, targets=(0,), stride=40)),
    ]
    sw = data.load_sweep_set(P, 30.0)
    best = data.best_rates(sw)
    figs += [figures.plot_sweep(sw, best), figures.plot_best_vs_paper(sw, best, 30.0)]
    for f in figs:
        assert f.axes and all(ax.get_xlabel() or ax.get_ylabel() or not ax.has_data() or ax.images
                              for ax in f.axes if ax.get_label() != "<colorbar>")
        plt.close(f)


def test_bptt_convention_pairs_exact_and_current_units(dirs):
    """The exact (weight-history) units are paired with the current-weights ones on the seeds both
    hold, cut to the shorter run, and each value is the final test loss of its units."""
    P = _P(dirs)
    cfg = data.store_config(P)
    conv = data.bptt_convention(P, 30.0)
    assert conv["seeds"] == [1] and conv["trials"] == TRIALS - 1
    assert set(conv["conds"]) == {"BPTT+c", "BPTT"}
    _, exact, _ = shipped.load_runs(cfg, "fb", 30.0, ["BPTT+c", "BPTT"], [1], exact_bptt=True, sizes=SIZES)
    cur = data.load_adaptation(P, 30.0, "fb", seeds=[1], trials=TRIALS - 1, compute=False)
    for c, d in conv["conds"].items():
        np.testing.assert_array_equal(d["history"], metrics.final(exact[c]["test_loss"]))
        np.testing.assert_array_equal(d["current"], metrics.final(cur[c]["test_loss"]))
    # the exact runs do not displace the current-weights runs the chapters load
    assert data.load_adaptation(P, 30.0, "fb", compute=False).seeds == [0, 1]
