"""The claims that need only the networks (Figures 2c, 4a, 5b, the W_rec Newton comparison) as
units of the paper protocol: one file per network with its provenance, skipped when done and
recomputed when stale, the per-network summaries on hand-made records, the converged-only
filter, the verdict's interval against scipy, and the shipped (pre-trained with pushes) column."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from fbctrl.analysis import network
from fbctrl.experiments import network_units as nu
from fbctrl.experiments import paper, verdicts
from fbctrl.__main__ import main
from fbctrl.core.checkpoint import load_checkpoint, save_checkpoint
from fbctrl.core.model import init_network
from fbctrl.experiments.stats import Verdict
from fbctrl.core.train import pretrain


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny protocol with its networks with feedback, two shipped networks pre-trained with
    pushes, and every network-level unit computed by the CLI."""
    root = tmp_path_factory.mktemp("netunits")
    ck, res, shipped = root / "ck", root / "res", root / "shipped"
    cfg = paper.PaperConfig.tiny(str(ck), str(res), str(shipped))
    pretrain(dataclasses.replace(cfg.pretrain_config("fb"), train_push=True), [0, 1], str(shipped),
             progress=False, task_cfg=cfg.task)
    assert main(["paper", "--tiny", "--checkpoint-dir", str(ck), "--results-dir", str(res), "--only",
                 "pretrain,network", "--no-calibrate", "--no-progress"]) == 0
    return cfg


def _meta(path):
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


def _records(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def test_every_network_unit_is_written_once_with_its_provenance(tiny):
    cfg = tiny
    assert nu.shipped_seeds(cfg) == [0, 1]
    groups = [g for g in paper.plan(cfg) if g.title.startswith(("network", "W_rec", "robustness: network"))]
    assert len(groups) == 3 and all(not g.units for g in groups)
    for source, seeds in (("published", cfg.fb_seeds), ("shipped", (0, 1))):
        for s in seeds:
            for m in (nu.MEASURES if source == "published" else nu.SHIPPED_MEASURES):
                u = nu.NetworkUnit(m, "fb", s, source)
                meta = _meta(u.path(cfg))
                assert meta["kind"] == paper.UNIT_KIND and meta["unit"] == paper.unit_dict(u)
                assert meta["settings"] == nu.settings(cfg.network_measures, m, cfg.task)
                net = meta["network"]
                assert net["sha256"] == nu.file_sha256(u.checkpoint(cfg)) and net["seed"] == s
                assert net["train_push"] is (source == "shipped")
                assert "commit" in meta and meta["wall_time_s"] >= 0 and meta["command"].startswith("python -m fbctrl")


def test_a_done_unit_is_skipped_a_lost_one_recomputed_identically_and_a_stale_one_redone(tiny, tmp_path):
    cfg = tiny
    u = nu.NetworkUnit("activity", "fb", 1, "published")
    p = u.path(cfg)
    before = _records(p)
    mtime = p.stat().st_mtime_ns
    assert main(["paper", "--tiny", "--checkpoint-dir", cfg.checkpoint_dir, "--results-dir", cfg.results_dir,
                 "--only", "network", "--no-calibrate", "--no-progress"]) == 0
    assert p.stat().st_mtime_ns == mtime                                  # done: skipped
    p.unlink()
    paper.run_plan(cfg, stages=["network"], progress=False, log=lambda *_: None)
    after = _records(p)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    # other settings: the file no longer counts as done
    other = dataclasses.replace(cfg, network_measures=dataclasses.replace(cfg.network_measures,
                                                                          wrec_dampings=(1e-3, 1.0)))
    assert paper.is_done(cfg, nu.NetworkUnit("wrec_newton", "fb", 0)) and not paper.is_done(
        other, nu.NetworkUnit("wrec_newton", "fb", 0))
    assert paper.is_done(other, nu.NetworkUnit("activity", "fb", 0))      # a setting of another measure
    # another network behind the same path: not done either
    ck2 = tmp_path / "ck"
    ck2.mkdir()
    src = u.checkpoint(cfg)
    net = load_checkpoint(src)
    net.W_rec.mul_(1.01)
    save_checkpoint(net, ck2 / src.name, json.loads(src.with_suffix(".json").read_text()))
    moved = dataclasses.replace(cfg, checkpoint_dir=str(ck2))
    assert not paper.is_done(moved, u)


def test_unit_records_equal_the_book_analyses_on_the_same_network(tiny):
    cfg = tiny
    s = cfg.fb_seeds[0]
    net = load_checkpoint(nu.NetworkUnit("activity", "fb", s).checkpoint(cfg))
    rec = _records(nu.NetworkUnit("activity", "fb", s).path(cfg))
    direct = network.activity_cosines({s: net}, 30.0, controller_on=True, task_cfg=cfg.task)
    np.testing.assert_array_equal(rec["cos_trial_next_on"], direct["cos_trial"][0])
    a, b = nu.activity_values(rec, "next", cfg.task.go_step)
    assert a == pytest.approx(network.movement_mean(direct["cos_trial"], cfg.task.go_step)[0], rel=1e-12)
    assert b == pytest.approx(network.movement_mean(direct["cos_trial_null"], cfg.task.go_step)[0], rel=1e-12)
    jac = _records(nu.NetworkUnit("jacobian", "fb", s).path(cfg))
    prof = network.jacobian_profile({s: net}, 30.0, targets=cfg.network_measures.jacobian_targets, lags=(1,),
                                     stride=cfg.network_measures.jacobian_stride, task_cfg=cfg.task)
    mov = prof["steps"] >= cfg.task.go_step
    on, off = nu.jacobian_values(jac, 1, cfg.task.go_step)
    assert on == pytest.approx(np.nanmean(prof[(True, 1)][0][:, mov]), rel=1e-6)
    assert off == pytest.approx(np.nanmean(prof[(False, 1)][0][:, mov]), rel=1e-6)


def test_pairing_same_compares_u_k_with_r_k_on_a_network_whose_feedback_is_the_readout():
    """Hand case: with W_fb = 2 W_out^T the instantaneous gradient w.r.t. r_k, dt W_out^T e_k, is
    parallel to u_k = W_fb e_k, so the "same" pairing gives cosine 1 at every step with an error;
    the "next" pairing compares u_k with W_out^T e_{k+1} and does not."""
    from fbctrl.core.model import NetworkConfig
    from fbctrl.core.task import TaskConfig

    task = TaskConfig(T=30, go_step=5, move_steps=20)
    net = init_network(NetworkConfig(n=12), torch.Generator().manual_seed(3))
    net.W_fb.copy_(2.0 * net.W_out.mT)
    net.mask.fill_(1.0)
    r = nu.compute("activity", net, 0, nu.NetMeasureConfig.tiny(), task)[0]
    same = r["cos_inst_same_on"]
    assert np.allclose(same[np.isfinite(same) & (np.abs(same) > 0)], 1.0, atol=1e-12)
    assert (np.abs(same) > 0.5).mean() > 0.9
    assert not np.allclose(r["cos_inst_next_on"], 1.0, atol=1e-6)


def _wrec_rec(residual, info=None):
    """Hand-made W_rec records: 1 target, controller (on, off), 2 steps, dampings (1e-3, 1)."""
    cos = np.zeros((1, 2, 2, 2))
    cos[0, 0, :, 0] = (0.5, 0.1)        # on, steps 0 and 1, damping 1e-3
    cos[0, 1, :, 0] = (0.2, 0.4)        # off
    cos[0, 0, :, 1] = (0.3, 0.3)
    cos[0, 1, :, 1] = (0.1, 0.1)
    return {"cos_rflo_newton": cos, "residual": np.asarray(residual, dtype=float),
            "minres_info": np.zeros((1, 2, 2, 2), dtype=int) if info is None else np.asarray(info),
            "iters": np.full((1, 2, 2, 2), 7), "dampings": np.asarray([1e-3, 1.0]), "steps": np.asarray([40, 80]),
            "cos_rflo_grad": np.asarray([[[0.6, 0.5], [0.55, 0.45]]])}


def test_converged_only_filter_excludes_a_solve_that_did_not_converge():
    res = np.full((1, 2, 2, 2), 1e-9)
    res[0, 1, 1, 0] = 3e-3              # off, step 1, damping 1e-3: not converged
    rec = _wrec_rec(res)
    w = nu.wrec_values(rec, 1e-3, 1e-6)
    assert w["cells"] == 1 and w["on"] == 0.5 and w["off"] == 0.2 and w["max_residual"] == 1e-9
    allw = nu.wrec_values(rec, 1e-3, 1e-6, converged_only=False)
    assert allw["cells"] == 2 and allw["on"] == pytest.approx(0.3) and allw["off"] == pytest.approx(0.3)
    assert nu.wrec_values(rec, 1.0, 1e-6)["on"] == pytest.approx(0.3)
    # MINRES's own failure excludes a solve even when the residual looks small
    info = np.zeros((1, 2, 2, 2), dtype=int)
    info[0, 0, 0, 0] = 1
    assert nu.wrec_values(_wrec_rec(res, info), 1e-3, 1e-6)["cells"] == 0
    none = nu.wrec_values(_wrec_rec(np.full((1, 2, 2, 2), 1e-2)), 1e-3, 1e-6)
    assert none["cells"] == 0 and math.isnan(none["on"]) and math.isnan(none["off"])
    assert nu.smallest_converged_damping([rec], 1e-6) == 1.0
    assert nu.smallest_converged_damping([_wrec_rec(np.full((1, 2, 2, 2), 1e-9))], 1e-6) == 1e-3
    assert nu.smallest_converged_damping([_wrec_rec(np.full((1, 2, 2, 2), 1e-2))], 1e-6) is None
    g = nu.wrec_values(rec, 1e-3, 1e-6, direction="gradient")
    assert g["on"] == pytest.approx(0.55) and g["off"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="damping must be one of 0.001, 1"):
        nu.wrec_values(rec, 0.5, 1e-6)
    # one step of the trial: its cells alone (step 80's off solve did not converge at 1e-3)
    s40 = nu.wrec_values(rec, 1e-3, 1e-6, step=40)
    assert (s40["cells"], s40["on"], s40["off"]) == (1, 0.5, 0.2)
    assert nu.wrec_values(rec, 1e-3, 1e-6, step=80)["cells"] == 0
    s80 = nu.wrec_values(rec, 1e-3, 1e-6, step=80, converged_only=False)
    assert (s80["on"], s80["off"]) == (0.1, 0.4)
    g80 = nu.wrec_values(rec, 1e-3, 1e-6, direction="gradient", step=80)
    assert (g80["on"], g80["off"]) == (0.5, 0.45)
    with pytest.raises(ValueError, match="step must be one of 40, 80"):
        nu.wrec_values(rec, 1e-3, 1e-6, step=60)
    with pytest.raises(ValueError, match="direction must be"):
        nu.wrec_values(rec, 1e-3, 1e-6, direction="newton2")


def test_summaries_average_the_movement_steps_only():
    go, T = 5, 12
    k = np.arange(1, T, dtype=float)                     # arrays hold steps k = 1..T-1
    rec = {"cos_trial_next_on": np.stack([k, k]), "cos_trial_null_next_on": np.zeros((2, T - 1))}
    assert nu.activity_values(rec, "next", go) == (pytest.approx(np.mean(np.arange(go, T))), 0.0)
    steps = np.arange(0, T, 3)                           # 0, 3, 6, 9
    on = np.stack([steps * 1.0, steps * 1.0])
    on[:, -1] = np.nan                                   # k + L > T
    jac = {"steps": steps, "lags": np.asarray([1]), "norm_on_L1": on, "norm_off_L1": np.ones_like(on)}
    assert nu.jacobian_values(jac, 1, go) == (6.0, 1.0)
    with pytest.raises(ValueError, match="lag must be one of 1"):
        nu.jacobian_values(jac, 5, go)
    with pytest.raises(ValueError, match="pairing must be one of"):
        nu.activity_values(rec, "previous", go)


def test_network_verdicts_are_paired_per_network_with_scipy_intervals(tiny):
    cfg = tiny
    by = {(r.key, r.column): r for r in verdicts.verdict_table(cfg, verdicts.NETWORK_CLAIMS)}
    r = by[("activity_fig2c", "as published")]
    d = []
    for s in cfg.fb_seeds:
        a, b = nu.activity_values(_records(nu.NetworkUnit("activity", "fb", s).path(cfg)), "next", cfg.task.go_step)
        d.append(a - b)
    d = np.asarray(d)
    lo, hi = stats.t.interval(0.95, df=len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert r.seeds == tuple(cfg.fb_seeds) and r.effect.n == len(d)
    assert (r.effect.mean, r.effect.ci_low, r.effect.ci_high) == pytest.approx((d.mean(), lo, hi), rel=1e-12)
    assert r.effect.p_value == pytest.approx(stats.ttest_rel(d + 1.0, np.ones_like(d)).pvalue, rel=1e-9)
    j = by[("jacobian_fig4a", "as published")]
    ratios = [np.divide(*nu.jacobian_values(_records(nu.NetworkUnit("jacobian", "fb", s).path(cfg)), 1,
                                            cfg.task.go_step)) for s in cfg.fb_seeds]
    assert j.effect.log and j.effect.values == pytest.approx(ratios, rel=1e-12)
    claim = next(c for c in verdicts.NETWORK_CLAIMS if c.key == "jacobian_fig4a")
    assert claim.paper_sign == -1                        # the paper: smaller with the controller on
    assert isinstance(j.verdict, Verdict)


def test_robustness_rows_of_the_network_claims(tiny):
    cfg = tiny
    table = {b.key: (b, rows) for b, rows in verdicts.robustness_table(cfg, verdicts.NETWORK_CLAIMS)}
    base, rows = table["activity_fig2c"]
    names = [r.column for r in rows]
    assert names == ["networks pre-trained with pushes (the shipped networks, not paired)",
                     "u_k paired with r_k instead of r_{k+1}", "smallest effect of interest halved",
                     "smallest effect of interest doubled"]
    # the band rows judge the as-published effect with the band halved and doubled
    for r in rows[2:]:
        assert r.effect == base.effect and r.band == pytest.approx(
            tuple(x * verdicts.COLUMNS[r.column].band_scale for x in base.band))
    shipped = rows[0]
    assert shipped.seeds == (0, 1) and "not paired" in shipped.definition
    vals = [np.subtract(*nu.activity_values(_records(nu.NetworkUnit("activity", "fb", s, "shipped").path(cfg)),
                                            "next", cfg.task.go_step)) for s in (0, 1)]
    assert shipped.effect.values == pytest.approx(vals, rel=1e-12)
    _, jrows = table["jacobian_fig4a"]
    assert [r.column for r in jrows if r.column.startswith("Jacobian lag")] == ["Jacobian lag 5", "Jacobian lag 10"]
    closed = {r.column: r for r in jrows if r.column.startswith("closed-loop")}
    assert set(closed) == {"closed-loop Jacobian lag 1", "closed-loop Jacobian lag 5", "closed-loop Jacobian lag 10",
                           "closed-loop Jacobian at the lag of the largest effect"}
    recs = [_records(nu.NetworkUnit("jacobian", "fb", s, "published").path(cfg)) for s in cfg.fb_seeds]
    for L in (1, 5, 10):
        want = [np.divide(*nu.jacobian_values(r, L, cfg.task.go_step, closed_loop=True)) for r in recs]
        assert closed[f"closed-loop Jacobian lag {L}"].effect.values == pytest.approx(want, rel=1e-12)
    # the largest effect: the lag with the smallest geometric-mean ratio, stated in the definition
    gm = {L: np.mean(np.log(closed[f"closed-loop Jacobian lag {L}"].effect.values)) for L in (1, 5, 10)}
    best = min(gm, key=gm.get)
    largest = closed["closed-loop Jacobian at the lag of the largest effect"]
    assert largest.definition.startswith(f"at lag {best},")
    assert largest.effect.values == closed[f"closed-loop Jacobian lag {best}"].effect.values
    _, wrows = table["wrec_newton"]
    wnames = [r.column for r in wrows]
    assert "u_k paired with r_k instead of r_{k+1}" not in wnames and "final window 50 trials" not in wnames
    assert any(n.startswith("W_rec Newton at damping 1000") for n in wnames)
    # no run-level change (rates, e_0, windows) is listed for a network claim, nor a network change for a run claim
    all_rows = verdicts.robustness_table(cfg)
    for b, rs in all_rows:
        net = any(c.key == b.key for c in verdicts.NETWORK_CLAIMS)
        for r in rs:
            col = verdicts.COLUMNS[r.column]
            assert col.network_change() == net or r.column.startswith("networks pre-trained") or col.band_scale != 1


def test_wrec_verdict_uses_converged_solves_and_says_so(tiny):
    cfg = tiny
    tol = cfg.network_measures.wrec_converged
    recs = paper.load_network_units(cfg, "wrec_newton")[1]
    r = verdicts.verdict_table(cfg, [c for c in verdicts.NETWORK_CLAIMS if c.key == "wrec_newton"],
                               ("as published",))[0]
    ok = [nu.wrec_values(x, 1e-3, tol)["cells"] > 0 for x in recs]
    assert r.effect.n == sum(ok)
    assert ("only (target, step) cells whose solves converged" in r.definition if any(ok)
            else "no solve converged at damping 0.001" in r.definition)
    fair = verdicts.verdict_table(cfg, [c for c in verdicts.NETWORK_CLAIMS if c.key == "wrec_newton"], ("fair",))[0]
    d = nu.smallest_converged_damping(recs, tol)
    assert (f"at damping {d:g}, the grid's smallest" in fair.definition) if d is not None else fair.effect.n == 0


def test_a_published_network_in_the_shipped_folder_is_refused(tiny, tmp_path):
    cfg = dataclasses.replace(tiny, shipped_dir=tiny.checkpoint_dir, results_dir=str(tmp_path / "res"))
    u = nu.NetworkUnit("activity", "fb", 0, "shipped")
    with pytest.raises(ValueError, match="is not a network of size 20 pre-trained with pushes"):
        paper.run_batch(cfg, [u], progress=False)


def test_bad_settings_and_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="wrec_dampings must hold the paper's damping"):
        nu.NetMeasureConfig(wrec_dampings=(0.1, 1.0))
    with pytest.raises(ValueError, match="wrec_dampings must be increasing"):
        nu.NetMeasureConfig(wrec_dampings=(1.0, 1e-3))
    with pytest.raises(ValueError, match="jacobian_lags must hold lag 1"):
        nu.NetMeasureConfig(jacobian_lags=(5, 10))
    with pytest.raises(ValueError, match="wrec_targets must be centre-out targets"):
        nu.NetMeasureConfig(wrec_targets=(9,))
    with pytest.raises(ValueError, match="source must be one of"):
        nu.NetworkUnit("activity", "fb", 0, "other")
    with pytest.raises(ValueError, match="measure must be one of"):
        nu.NetworkUnit("hessian", "fb", 0)
    with pytest.raises(ValueError, match="stages must be some of"):
        paper.run_plan(paper.PaperConfig.tiny("/nonexistent/ck", "/nonexistent/res"), stages=["train"])


def test_cli_only_rejects_an_unknown_stage(capsys):
    assert main(["paper", "--only", "network,train", "--plan", "--no-calibrate"]) == 2
    assert "only must be stages among pretrain, network, adapt, sweep" in capsys.readouterr().err
