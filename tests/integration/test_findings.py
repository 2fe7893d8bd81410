"""The Findings chapters' logic (fbctrl.book.data) and figures (fbctrl.viz.figures) on tiny networks:
the shipped family's runs read from the store (computed there by the store's runner), live
computation of what the store lacks, summaries, the activity-space and decoupling analyses
against independent computations, the sweep and its best rates, and a smoke test of every figure."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from fbctrl.book import data
from fbctrl.analysis import network
from fbctrl.experiments import metrics
from fbctrl.experiments import stats
from fbctrl.viz import widgets
from fbctrl import fmt
from fbctrl.experiments import paper, shipped
from fbctrl.learning.rates import PAPER_LR
from fbctrl.learning import adapt as adapt_mod
from fbctrl import book  # noqa: E402
from fbctrl.analysis import gradients as analysis  # noqa: E402
from fbctrl.viz import figures  # noqa: E402
from fbctrl.learning.adapt import RunSpec, adapt  # noqa: E402
from fbctrl.core.bptt import forward  # noqa: E402
from fbctrl.core.checkpoint import save_checkpoint  # noqa: E402
from fbctrl.experiments.runs import shipped_networks  # noqa: E402
from fbctrl.core.model import NetworkConfig, init_network, rollout  # noqa: E402
from fbctrl.core.task import TaskConfig, centre_out_reaches  # noqa: E402

torch.set_num_threads(1)
N = 10
TRIALS = 3
# the shipped family at a tiny size: 30 and 40 degrees, exact BPTT on seed 1, a 3-trial sweep
SIZES = shipped.ShippedSizes(trials={30.0: TRIALS, 40.0: TRIALS + 2}, exact_bptt_trials=TRIALS - 1, exact_bptt_seeds=(1,),
                             sweep_trials=3)
CONF = {"n": N, "batches": 3, "batch_size": 4, "train_push": True, "feedback_density": 1.0, "delay": 0}


def _net(seed: int, density: float = 1.0):
    net = init_network(NetworkConfig(n=N, feedback_density=density), torch.Generator().manual_seed(seed))
    # a small feedback gain keeps the untrained loop stable
    return net.replace(W_fb=net.W_fb * 0.05)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck")
    res = tmp_path_factory.mktemp("res")
    for s in (0, 1):
        save_checkpoint(_net(s), ck / f"fb_n{N}_seed{s}.pt", {"seed": s, "config": CONF})
    save_checkpoint(_net(5, density=0.0), ck / f"nofb_n{N}_seed5.pt",
                    {"seed": 5, "config": {**CONF, "feedback_density": 0.0}})
    mp = pytest.MonkeyPatch()
    mp.setattr(data, "SIZES", SIZES)
    # the family's units, computed by the store's runner as `paper --networks shipped` does
    cfg = data.store_config(book.validate_params(profile="default", checkpoint_dir=str(ck), results_dir=str(res)))
    paper.run_plan(cfg, progress=False, log=lambda *a: None, planner=lambda c: shipped.plan(c, SIZES))
    yield ck, res
    mp.undo()


def _P(dirs, **kw):
    ck, res = dirs
    return book.validate_params(profile="default", device="cpu", checkpoint_dir=str(ck), results_dir=str(res), **kw)


# ---- parameters and helpers ------------------------------------------------------------------

@pytest.mark.parametrize("kw, name", [
    (dict(newton_steps=[0]), "newton_steps"), (dict(newton_steps="a"), "newton_steps"),
    (dict(targets="[1, x]"), "targets"),
    (dict(lags=[0]), "lags"), (dict(jacobian_norm="nuclear"), "jacobian_norm"),
    (dict(targets=[8]), "targets"), (dict(targets=[1, 1]), "targets"), (dict(step_stride=0), "step_stride"),
    (dict(minres_iters=[0]), "minres_iters"), (dict(n_eigs=-1), "n_eigs"), (dict(horizons=[]), "horizons"),
])
def test_chapter_parameters_are_checked_in_one_line(kw, name):
    with pytest.raises(ValueError) as exc:
        book.validate_params(profile="default", **kw)
    assert str(exc.value).startswith(name) and "\n" not in str(exc.value)


def test_chapter_parameters_normalise():
    P = book.validate_params(profile="default", newton_steps="[30, 60]", lags=5, targets="[3, 1]",
                             jacobian_norm="frobenius", horizons="[1, 10]")
    assert P.newton_steps == (30, 60) and P.lags == (5,) and P.targets == (3, 1) and P.horizons == (1, 10)


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


def test_efficiency_and_loss_drop_on_synthetic_records():
    rec = {"dW_path": np.array([[1.0, 1.0, 2.0], [0.5, 0.5, np.nan]]),
           "dW_total": np.array([[1.0, 1.5, 2.0], [0.5, 0.25, 0.25]]),
           "test_loss": np.array([[4.0, 3.0, 2.0], [4.0, 2.0, 1.0]])}
    np.testing.assert_allclose(metrics.efficiency(rec, "whole_run"), [0.5, 0.25])
    ce = metrics.cumulative_efficiency(rec)
    np.testing.assert_allclose(ce[:, -1], metrics.efficiency(rec, "whole_run"))
    np.testing.assert_allclose(ce[0], [1.0, 0.75, 0.5])
    d = metrics.loss_drop_per_path(rec, np.array([5.0, 5.0]))
    np.testing.assert_allclose(metrics.final(rec["test_loss"], 2), [2.5, 1.5])
    fin = [3.0, 7.0 / 3.0]  # the final window (10 trials) covers the whole record here
    np.testing.assert_allclose(d["per_path"], [(5 - fin[0]) / 4.0, (5 - fin[1]) / 1.0])
    np.testing.assert_allclose(d["per_displacement"], [(5 - fin[0]) / 2.0, (5 - fin[1]) / 0.25])


def test_alignment_summary_uses_aligned_trials_and_movement_steps():
    T = 30
    al = np.full((2, 4, T), np.nan)
    ag = np.full((2, 4), np.nan)
    al[:, 0] = 0.2
    al[:, 2] = 0.6
    al[:, :, :20] = np.where(np.isfinite(al[:, :, :20]), -1.0, np.nan)  # before the go step: ignored
    ag[:, 0], ag[:, 2] = 0.1, 0.3
    s = metrics.alignment_summary({"align_local": al, "align_global": ag})
    np.testing.assert_array_equal(s["trials"], [0, 2])
    np.testing.assert_allclose(s["local"], [0.4, 0.4])
    np.testing.assert_allclose(s["global"], [0.2, 0.2])
    np.testing.assert_allclose(s["local_trial"], [[0.2, 0.6], [0.2, 0.6]])
    assert s["local_step"].shape == (2, T)
    assert metrics.alignment_summary({"test_loss": np.zeros((1, 2))}) is None


def test_alignment_is_recorded_in_the_store(dirs):
    ad = data.load_adaptation(_P(dirs), 30.0)
    s = metrics.alignment_summary(ad["RFLO+c"])
    np.testing.assert_array_equal(s["trials"], [0])            # every align_every (50) trials: the first of 3
    assert np.all(np.abs(s["local"]) <= 1) and np.all(np.abs(s["global"]) <= 1)


# ---- analyses --------------------------------------------------------------------------------

def test_activity_cosines_instantaneous_is_feedback_vs_readout():
    net = _net(3)
    tc = TaskConfig()
    out = network.activity_cosines({3: net}, 30.0, task_cfg=tc)
    assert out["cos_trial"].shape == (1, 8, tc.T - 1)
    n64 = net.to(dtype=torch.float64)
    tgt = 5
    x0 = network.activity_x0s(N, tc)[tgt:tgt + 1]
    ro = rollout(n64, centre_out_reaches(tc, [tgt], dtype=torch.float64).rotated(30.0), x0=x0)
    E = ro.E[:, 0]
    k = np.arange(1, tc.T)
    u = E[k] @ n64.W_fb.mT                  # u_k = W_fb e_k (delay 0) acts on r_{k+1}
    g = E[k + 1] @ n64.W_out                # -dl_{k+1}/dr_{k+1} is dt W_out^T e_{k+1}
    ref = (u * g).sum(-1) / (u.norm(dim=-1) * g.norm(dim=-1))
    np.testing.assert_allclose(out["cos_inst"][0, tgt], ref.numpy(), rtol=1e-6, atol=1e-9)
    assert np.all(np.abs(out["cos_trial_null"]) <= 1 + 1e-12)
    assert network.movement_mean(out["cos_trial"]).shape == (1,)


def test_jacobian_profile_matches_analysis():
    net = _net(1)
    tc = TaskConfig()
    prof = network.jacobian_profile({1: net}, 30.0, targets=(2,), lags=(1, 3), stride=7, task_cfg=tc)
    x0 = network.activity_x0s(N, tc, net.dtype)[2:3]
    tr = centre_out_reaches(tc, [2], dtype=net.dtype).rotated(30.0)
    for on in (True, False):
        ref = analysis.jacobian_norms(net, tr, x0, controller_on=on, lags=(1, 3), ord=2)
        for L in (1, 3):
            got = prof[(on, L)][0, 0]
            ok = prof["steps"] + L <= tc.T
            np.testing.assert_allclose(got[ok], ref[L][prof["steps"][ok]], rtol=1e-4)
            assert np.isnan(got[~ok]).all()


def test_closed_loop_jacobian_products_match_autograd_through_the_loop():
    from torch.func import jacrev

    net = _net(7).to(dtype=torch.float64)
    net = net.replace(W_fb=net.W_fb * 20)  # a strong loop, so that it matters
    tc = TaskConfig()
    tr = centre_out_reaches(tc, [3], dtype=torch.float64).rotated(30.0)
    x0 = network.activity_x0s(N, tc)[3:4]
    fwd = forward(net, tr, x0, controller_on=True)
    X, E = fwd.X[:, 0, 0], fwd.E[:, 0, 0]
    a, dt = net.cfg.alpha, net.cfg.dt
    s, vref = tr.inputs[:, 0], tr.vref[:, 0]
    k, L = 30, 6

    def x_after(xk):  # the model written out from (x_k, e_{k-1}); the fed-back error is differentiated
        e = E[k - 1] + dt * (vref[k - 1] - net.W_out @ torch.relu(xk) - net.b_out)
        x = xk
        for j in range(k, k + L):
            x = (1 - a) * x + a * (net.W_in @ s[j] + net.b + net.W_rec @ torch.relu(x) + net.W_fb @ e)
            e = e + dt * (vref[j] - net.W_out @ torch.relu(x) - net.b_out)
        return x

    np.testing.assert_allclose(x_after(X[k]).numpy(), X[k + L].numpy(), rtol=1e-10)  # same dynamics
    ref = jacrev(x_after)(X[k])
    A = network.closed_loop_jacobians(net, fwd)
    prod = A[k]
    for m in range(1, L):
        prod = A[k + m] @ prod
    np.testing.assert_allclose(prod[:N, :N].numpy(), ref.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(A[k, :N, :N].numpy(), analysis.step_jacobians(net, fwd, closed_loop=True)[k].numpy(),
                               rtol=1e-12)
    po = analysis.step_jacobians(net, fwd)[k:k + L]
    prod_open = po[0]
    for m in range(1, L):
        prod_open = po[m] @ prod_open
    assert not np.allclose(prod_open.numpy(), ref.numpy())
    prof = network.jacobian_profile({7: net}, 30.0, targets=(3,), lags=(L,), stride=k, closed_loop=True,
                                     norm="frobenius", task_cfg=tc)
    np.testing.assert_allclose(prof[("loop", L)][0, 0, 1], np.linalg.norm(ref.numpy()), rtol=1e-6)


def test_horizon_profile_full_horizon_recovers_the_gradient():
    net = _net(2)
    hp = network.horizon_profile({2: net}, 30.0, targets=(0,), horizons=(1, 200), steps=[60, 90])
    np.testing.assert_allclose(hp[(True, "cos")][0, 0, 1], 1.0, rtol=1e-4)
    np.testing.assert_allclose(hp[(False, "norm_ratio")][0, 0, 1], 1.0, rtol=1e-4)
    assert np.all(hp[(True, "norm_ratio")][0, 0] <= 1 + 1e-4)


def test_rflo_direction_matches_the_closed_form_trace():
    net = _net(4).to(dtype=torch.float64)
    tc = TaskConfig()
    tr = centre_out_reaches(tc, [1], dtype=torch.float64).rotated(30.0)
    x0 = network.activity_x0s(N, tc)[1:2]
    t = 37
    for on in (True, False):
        ro = rollout(net, tr, x0=x0, controller_on=on)
        x, r, E = ro.x[:, 0], ro.r[:, 0], ro.E[:, 0]   # x, r: [T+1, n] including the initial state
        a = net.cfg.alpha
        P = sum((1 - a) ** (t - k) * a * torch.outer((x[k + 1] > 0).double(), r[k]) for k in range(t + 1))
        ref = (net.W_fb @ E[t + 1])[:, None] * P
        np.testing.assert_allclose(network.rflo_direction(net, tr, x0, t, controller_on=on), ref.numpy(),
                                   rtol=1e-8, atol=1e-12)


def test_activity_newton_and_wrec_table_run_on_a_tiny_network():
    net = _net(6)
    an = network.activity_newton_cosines({6: net}, 30.0, targets=(0,), stride=40)
    assert an["cos_newton"].shape == (1, 1, len(an["steps"]))
    rows = network.wrec_newton_table(net, 30.0, targets=(1,), steps=(20,), iters=(5, 30), n_eigs=2)
    assert [r["controller_on"] for r in rows] == [True, False]
    for r in rows:
        assert len(r["cos_rflo_newton"]) == 2 and r["iters_done"][0] <= 5
        for v in r["cos_rflo_newton"] + r["cos_grad_newton"] + [r["cos_rflo_grad"], r["cos_rflo_gn"]]:
            assert -1 - 1e-9 <= v <= 1 + 1e-9
    assert rows[0]["eigenvalues"] is not None and len(rows[0]["eigenvalues"]) == 2
    assert rows[1]["eigenvalues"] is not None  # each controller state, first step


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


def test_best_rate_skips_a_rate_where_a_seed_diverged():
    """Hand case: the lowest mean is at rate 0, but a seed diverged there; rate 2 is next best."""
    fin = np.array([[0.1, 0.1], [0.5, 0.7], [0.3, 0.2]])[:, None]          # [rates, 1 rotation, seeds]
    div = np.array([[False, True], [False, False], [False, False]])[:, None]
    sw = data.SweepSet(rates={"rflo": [1e-5, 5e-5, 1e-4]}, rotations=[30.0], seeds=[0, 1], trials=3,
                       final={"RFLO": np.where(div, np.nan, fin)}, diverged={"RFLO": div}, curves={}, source="live")
    b = data.best_rates(sw)["RFLO"]
    assert b["best"] == [2] and b["best_lr"] == [1e-4] and b["paper"] == 1 and b["paper_lr"] == 5e-5


def test_missing_sweep_rotation_is_computed_live(dirs, monkeypatch):
    monkeypatch.setattr(data, "SHIPPED_SWEEP_GRID", {"rflo": [1e-5], "bptt": [1e-6]})
    sw = data.load_sweep_set(_P(dirs), 50.0, seeds=[0], trials=2, rules=("rflo",))
    assert sw.source == "live" and sw.rotations == [50.0] and sw.conditions == ["RFLO+c", "RFLO"]
    assert sw.final["RFLO"].shape == (1, 1, 1)


# ---- explorer and figures --------------------------------------------------------------------

def test_explore_run_and_widget(dirs):
    net = _net(0)
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
    nets = {s: _net(s) for s in (0, 1)}
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


def test_format_ci_is_the_student_t_interval_and_back_transforms_ratios():
    """mean [95% CI]: d = [1, 2, 3, 4] gives 2.5 [0.446, 4.55] (t_{0.975, 3} sd / sqrt 4); ratios
    are summarised on the log scale: [2, 8] has geometric mean 4 and the back-transformed
    interval exp(log 4 +- 12.706 * log(4) / sqrt 2 / sqrt 2)."""
    from fbctrl import book
    from fbctrl.experiments.stats import format_ci

    assert format_ci([1, 2, 3, 4]) == "2.50 [0.446, 4.55]"
    lo, hi = np.exp(np.log(4) + np.array([-1, 1]) * 12.7062047 * np.log(4) / 2)
    assert format_ci([2, 8], log=True) == f"4.00 [{book.fmt_num(lo)}, {book.fmt_num(hi)}]"
    assert format_ci([0.5]) == "0.500" and format_ci([np.nan]) == "n/a"


@pytest.mark.parametrize("closed_loop", [False, True])
def test_rate_jacobian_is_autograd_of_the_later_rates_wrt_the_active_rates(closed_loop):
    """dr_(k+L)/dr_k: the rates r_k = relu(x_k) changed on the units active at k (the only change
    the rates can carry), rolled L steps through the model written out, differentiated by autograd."""
    from torch.func import jacrev

    net = _net(7).to(dtype=torch.float64)
    net = net.replace(W_fb=net.W_fb * 20)
    tc = TaskConfig()
    tr = centre_out_reaches(tc, [3], dtype=torch.float64).rotated(30.0)
    x0 = network.activity_x0s(N, tc)[3:4]
    fwd = forward(net, tr, x0, controller_on=True)
    X, E = fwd.X[:, 0, 0], fwd.E[:, 0, 0]
    a, dt = net.cfg.alpha, net.cfg.dt
    s, vref = tr.inputs[:, 0], tr.vref[:, 0]
    k, L = 30, 4
    active = X[k] > 0
    assert 0 < int(active.sum()) < N

    def r_after(rk):
        xk = torch.where(active, rk, X[k])
        e = E[k - 1] + dt * (vref[k - 1] - net.W_out @ torch.relu(xk) - net.b_out) if closed_loop else E[k]
        x = xk
        for j in range(k, k + L):
            x = (1 - a) * x + a * (net.W_in @ s[j] + net.b + net.W_rec @ torch.relu(x) + net.W_fb @ e)
            e = e + dt * (vref[j] - net.W_out @ torch.relu(x) - net.b_out) if closed_loop else E[j + 1]
        return torch.relu(x)

    np.testing.assert_allclose(r_after(torch.relu(X[k])).numpy(), torch.relu(X[k + L]).numpy(), rtol=1e-10)
    ref = jacrev(r_after)(torch.relu(X[k]))
    prof = network.jacobian_profile({7: net}, 30.0, targets=(3,), lags=(L,), stride=k, closed_loop=True,
                                     rates=True, norm="frobenius", task_cfg=tc)
    key = ("rate", "loop" if closed_loop else True, L)
    np.testing.assert_allclose(prof[key][0, 0, 1], np.linalg.norm(ref.numpy()), rtol=1e-6)
    x_key = ("loop" if closed_loop else True, L)
    assert prof[key][0, 0, 1] < prof[x_key][0, 0, 1]     # the masks remove the inactive units' paths
