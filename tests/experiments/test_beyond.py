"""Beyond the paper as a stage of the paper protocol (``python -m fbctrl paper --only beyond``):
the families found through NetworkSpec and paired by seed with the published networks, a delayed
and sparse network's measures against autograd, the limit cycle's measures on its own test set,
a hand-made paired verdict against scipy, and the summary figure on synthetic records."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from fbctrl.__main__ import main
from fbctrl.analysis import network
from fbctrl.core.model import NetworkConfig, init_network, trial_loss
from fbctrl.core.spec import NetworkSpec
from fbctrl.core.task import TaskConfig
from fbctrl.core.tasks import FrequencyShift, LimitCycleConfig
from fbctrl.core.train import pretrain
from fbctrl.experiments import beyond, network_units, paper
from fbctrl.experiments.protocol import Rule
from fbctrl.experiments.stats import Verdict
from fbctrl.experiments.verdicts import AS_PUBLISHED, BANDS, Claim
from fbctrl.viz.beyond import plot_beyond_summary

F64 = torch.float64
TINY_LC = LimitCycleConfig(T=30, go_step=5, push_centre_low=5, push_centre_high=29)


def _pretrain(cfg, family, seeds, folder, task_cfg):
    pc = beyond.BeyondConfig(family=family).pretrain_config(family)
    pc = dataclasses.replace(pc, n=cfg.n, batches=cfg.pretrain_batches, batch_size=cfg.batch_size,
                             eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every)
    pretrain(pc, seeds, str(folder), progress=False, task_cfg=task_cfg)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny paper protocol's networks with feedback and their runs, a delayed network of seeds
    0 and 1, a sparse one of seed 0 only, limit-cycle ones with and without feedback of seeds 0
    and 1, and every unit of the extension that can run, by the command line."""
    root = tmp_path_factory.mktemp("beyond")
    cfg = paper.PaperConfig.tiny(str(root / "published"), str(root / "paper"))
    args = ["--tiny", "--checkpoint-dir", cfg.checkpoint_dir, "--results-dir", cfg.results_dir, "--no-calibrate",
            "--no-progress"]
    assert main(["paper", *args, "--only", "pretrain,network,sweep,adapt"]) == 0
    ck, _ = beyond.beyond_dirs(cfg)
    _pretrain(cfg, "fb_d5", [0, 1], ck, cfg.task)
    _pretrain(cfg, "fb0.3", [0], ck, cfg.task)
    _pretrain(cfg, "lc_fb", [0, 1], ck, TINY_LC)
    _pretrain(cfg, "lc_nofb", [0, 1], ck, TINY_LC)
    (ck / "notes.json").write_text(json.dumps({"not": "a network"}))       # not a sidecar: ignored
    assert main(["paper", *args, "--only", "beyond"]) == 0
    return cfg


def test_the_plan_finds_each_family_through_its_sidecar_and_pairs_by_seed(tiny):
    cfg = tiny
    fams = beyond.find_families(cfg)
    assert list(fams) == ["fb_d5", "fb0.3", "lc_fb", "lc_nofb"]          # delays, densities, tasks
    assert (fams["fb_d5"].delay, fams["fb0.3"].feedback_density, fams["lc_fb"].task) == (5, 0.3, "limit-cycle")
    # every family's units use the first five configured seeds (here the tiny protocol's 0 and 1)
    assert beyond.beyond_seeds(cfg) == (0, 1)
    for fam in fams:
        bcfg = beyond.family_config(cfg, fam)
        for u in beyond.adapt_units(cfg, fam, Rule.RFLO):
            net = paper.PretrainUnit(u.kind, u.seed).path(bcfg)
            tag = NetworkSpec.parse(fam).with_n(cfg.n).tag                  # the tiny networks' size is in the stem
            assert net.name == f"{tag}_seed{u.seed}.pt" and net.parent == beyond.beyond_dirs(cfg)[0]
    # the published networks of the same seeds: the paper protocol's folder and seeds
    ref = beyond.reference_config(cfg)
    assert ref.fb_seeds == (0, 1) and ref.checkpoint_dir == cfg.checkpoint_dir
    # everything that could run is done; the sparse network of seed 1 is not pre-trained: its
    # units wait for it, and nothing else is left
    left = [g for g in beyond.full_plan(cfg) if g.units and g.units[0].stage == "beyond"]
    assert left and all(g.blocked == "waits for pre-training" and "fb0.3" in g.title for g in left)
    assert {u.seed for g in left for u in g.units} == {1}
    # the limit cycle's runs are perturbed by the frequency shift, in a folder named for it
    lc = beyond.adapt_units(cfg, "lc_fb", Rule.BPTT)[0]
    assert isinstance(lc, beyond.CycleAdaptUnit) and lc.perturbation == FrequencyShift(0.5)
    assert lc.path(beyond.family_config(cfg, "lc_fb")).parent.name == "shift+0.5"
    assert paper.is_done(beyond.family_config(cfg, "lc_fb"), lc)


def test_only_the_stage_beyond_is_accepted_and_the_plan_names_its_groups(tiny, capsys):
    cfg = tiny
    assert main(["paper", "--tiny", "--checkpoint-dir", cfg.checkpoint_dir, "--results-dir", cfg.results_dir,
                 "--no-calibrate", "--plan", "--only", "beyond"]) == 0
    out = capsys.readouterr().out
    assert ("beyond: network measures (Figs 1a, 2c, 4a, 5b; 4b, 4c, 5a at the pre-trained weights) of fb0.3" in out
            and "waits for pre-training" in out)
    assert "learning-rate sweep" not in out
    assert main(["paper", "--tiny", "--checkpoint-dir", cfg.checkpoint_dir, "--results-dir", cfg.results_dir,
                 "--only", "beyondd"]) == 2
    assert "only must be stages among pretrain, network, adapt, sweep, beyond" in capsys.readouterr().err


def test_family_tables_state_every_claim_with_its_n(tiny):
    cfg = tiny
    rows = beyond.family_table(cfg, "fb_d5")
    assert [r.key for r in rows] == [r.key for r in beyond.ROWS]
    assert all(r.variant.effect.n == 2 and r.published.effect.n == 2 for r in rows)
    assert all(r.change is not None and r.change.effect.n == 2 for r in rows)
    sparse = beyond.family_table(cfg, "fb0.3")
    # one sparse network: every verdict of it is inconclusive (no interval from one network)
    assert all(r.variant.effect.n == 1 and r.variant.verdict is Verdict.INCONCLUSIVE for r in sparse)
    lc = beyond.family_table(cfg, "lc_fb")
    assert all(r.change is None and "another task" in r.change_note for r in lc)
    assert "(+0.5 Hz)" in next(r.claim for r in lc if r.key == "final_loss_rflo_30")
    md = beyond.markdown_table(rows)
    assert md.splitlines()[0] == "| figure | claim | fb\\_d5 | published, seeds 0, 1 | change (fb\\_d5 vs published) |"
    first = md.splitlines()[2].split(" | ")
    assert first[1] == "online correction, off / on" and first[2].startswith(f"{rows[0].variant.verdict.value}: ")


def test_a_family_without_feedback_is_compared_with_its_tasks_family_with_feedback_per_seed(tiny):
    """lc_nofb has no controller: its runs are RFLO and BPTT with the controller off only, it has
    no network measures, and its table compares its test loss per seed with lc_fb's controller-off
    runs (before adaptation, after each rule), beside nofb against fb on the published networks;
    each cell is scipy's paired t-test on the log ratio of the losses read back from the unit files."""
    from fbctrl.experiments.protocol import CONDITIONS, Protocol
    cfg = tiny
    assert beyond.feedback_sibling("lc_nofb") == "lc_fb" and beyond.feedback_sibling("nofb") == "fb"
    units = beyond.adapt_units(cfg, "lc_nofb", Rule.RFLO) + beyond.adapt_units(cfg, "lc_nofb", Rule.BPTT)
    assert {u.condition.name for u in units} == {"RFLO", "BPTT"} and len(units) == 4
    bno, bfb = beyond.family_config(cfg, "lc_nofb"), beyond.family_config(cfg, "lc_fb")
    assert all(paper.is_done(bno, u) for u in units)
    assert not any(u.kind == "lc_nofb" for g in beyond.groups(cfg, include_done=True) for u in g.units
                   if u.stage == "network")
    rows = beyond.family_table(cfg, "lc_nofb")
    assert [r.key for r in rows] == [k for k, *_ in beyond.NOFB_ROWS]
    assert all(r.change is None and "another task" in r.change_note for r in rows)
    rflo_off = next(c for c in CONDITIONS if c.rule is Rule.RFLO and not c.controller_on)

    def loss(bcfg, fam, s, first):
        tl = np.load(bcfg.adapt_unit(fam, s, 0.0, rflo_off, Protocol.PUBLISHED, cfg.trials).path(bcfg))["test_loss"]
        return tl[0] if first else tl[-min(10, len(tl)):].mean()
    for r, first in zip(rows[:2], (True, False)):
        d = np.log([loss(bno, "lc_nofb", s, first) / loss(bfb, "lc_fb", s, first) for s in (0, 1)])
        assert r.variant.effect.n == 2 and r.variant.seeds == (0, 1)
        assert math.isclose(r.variant.effect.mean, math.exp(d.mean()), rel_tol=1e-9)
        assert math.isclose(r.variant.effect.p_value, stats.ttest_1samp(d, 0.0).pvalue, rel_tol=1e-9)
        assert r.published.effect.n == 2 and "nofb over fb" in r.published.definition
    md = beyond.markdown_table(rows)
    assert "loss without / with feedback, after RFLO" in md and md.count("\n") == 4


def test_reaching_families_adapt_at_the_published_networks_best_rates_and_are_measured_at_matched_states(tiny):
    """The best-rate runs of a reaching family take the best rates of the published networks' 30
    deg sweep (not a sweep of their own, which the family's results folder does not hold), record
    that sweep's digest, and feed the rows 'best rates'; the limit cycle gets none (one clear line);
    the pre-trained-weights rows read the family's matched_loop units."""
    from fbctrl.experiments.protocol import CONDITIONS, Protocol
    from tests.helpers import unit_meta
    cfg = tiny
    bcfg = beyond.family_config(cfg, "fb_d5")
    assert bcfg.rates_config().results_dir == cfg.results_dir
    best = paper.best_swept_rates(cfg)
    for rule in (Rule.RFLO, Rule.BPTT):
        for u in beyond.adapt_units(cfg, "fb_d5", rule, Protocol.BEST):
            assert paper.is_done(bcfg, u) and "/adapt/best/rot30/" in u.path(bcfg).as_posix()
            m = unit_meta(u.path(bcfg))
            assert m["lr"] == best[u.condition.name]["lr"]
            assert m["sweep_sha256"] == paper.sweep_digest(cfg, u.condition)
    with pytest.raises(ValueError, match="best-rate runs are made on reaching families with feedback, not 'lc_fb'"):
        beyond.adapt_units(cfg, "lc_fb", Rule.RFLO, Protocol.BEST)
    rows = {r.key: r for r in beyond.family_table(cfg, "fb_d5")}
    for key in ("final_loss_rflo_30_best", "final_loss_bptt_30_best", "efficiency_best", "efficiency_matched",
                "align_local_pretrained_loop", "align_global_pretrained_detached"):
        assert rows[key].variant.effect.n == 2 and rows[key].change.effect.n == 2, key
    assert "best rate" in rows["final_loss_rflo_30_best"].variant.definition
    lc = {r.key: r for r in beyond.family_table(cfg, "lc_fb")}
    assert not any(k.endswith("_best") for k in lc)                     # no best rates on the cycle: no row
    recs = beyond.summary_records(cfg)
    assert {r["claim"] for r in recs if r["not_run"]} == {"final_loss_rflo_30_best", "final_loss_bptt_30_best"}
    assert all(r["family"] == "lc_fb" and r["n"] == 0 for r in recs if r["not_run"])
    assert lc["align_local_pretrained_loop"].variant.effect.n == 2       # matched states on the cycle's own test set
    # the summary figure draws the rows marked for it, in pairs (published, then its other convention)
    keys = list(dict.fromkeys(r["claim"] for r in beyond.summary_records(cfg)))
    assert keys == [r.key for r in beyond.ROWS if r.in_summary] and len(keys) % 2 == 0


def test_a_delayed_sparse_networks_activity_measure_uses_E_k_minus_d_against_autograd():
    """Figure 2c's unit on a network with a delay of 3 steps and feedback density 0.5: u_k =
    (M * W_fb) E[k-3], and -dL/dr_(k+1) by autograd of the whole trial written out step by step
    with the fed-back error an input (detached)."""
    d, n = 3, 10
    tc = TaskConfig(T=30, go_step=5, move_steps=20)
    net = init_network(NetworkConfig(n=n, feedback_density=0.5, delay=d), torch.Generator().manual_seed(1), dtype=F64)
    net = net.replace(W_fb=net.W_fb * 4.0)
    s = dataclasses.replace(network_units.NetMeasureConfig.tiny())
    rec, _ = network_units.compute("activity", net, 0, s, tc)
    tgt = 3
    tr = network.test_trial(tc, tgt, 30.0)
    x0 = network.activity_x0s(n, tc)[tgt:tgt + 1]
    a, dt, W_f = net.cfg.alpha, net.cfg.dt, net.W_fb * net.mask
    probes = torch.zeros(tr.T + 1, 1, n, dtype=F64, requires_grad=True)
    x, Es = x0, [torch.zeros(1, 2, dtype=F64)]
    r = torch.relu(x) + probes[0]
    for k in range(tr.T):
        e_fb = (Es[k - d] if k - d >= 0 else torch.zeros_like(Es[0])).detach()
        x = (1 - a) * x + a * (tr.inputs[k] @ net.W_in.T + net.b + r @ net.W_rec.T + e_fb @ W_f.T)
        r = torch.relu(x) + probes[k + 1]
        Es.append(Es[k] + dt * (tr.vref[k] - (r @ net.W_out.T + net.b_out + tr.push[k])))
    E = torch.stack(Es)
    g = torch.autograd.grad(trial_loss(E), probes)[0][2:, 0]             # dL/dr_(k+1), k = 1 .. T-1
    Ed = E.detach()[:, 0]
    u = torch.stack([Ed[k - d] if k - d >= 0 else torch.zeros(2, dtype=F64) for k in range(1, tr.T)]) @ W_f.T
    want = torch.nn.functional.cosine_similarity(u, -g, dim=1, eps=1e-300)
    have = torch.as_tensor(rec["cos_trial_next_on"][tgt])
    ok = u.norm(dim=1) > 0                                               # u_k = 0 before the delay has passed
    torch.testing.assert_close(have[ok], want[ok], rtol=1e-9, atol=1e-12)
    assert torch.all(u[: d - 1].norm(dim=1) == 0)


def test_limit_cycle_measures_read_its_shifted_test_frequencies():
    lc = LimitCycleConfig(T=40, go_step=5, push_centre_low=5, push_centre_high=39)
    net = init_network(NetworkConfig(n=12, n_in=2, delay=2), torch.Generator().manual_seed(0), dtype=F64)
    s = network_units.NetMeasureConfig.tiny()
    tr = network.test_trial(lc, 5, network_units.measure_perturbation(s, lc))
    assert float(tr.freq[0]) == pytest.approx(float(lc.test_freqs()[5]) + s.shift_hz)
    rec, _ = network_units.compute("activity", net, 0, s, lc)
    assert rec["cos_trial_next_on"].shape == (lc.n_test_freqs, lc.T - 1)
    on = network_units.compute("online", net, 0, s, lc)[0]
    assert on["loss_on"].shape == (lc.n_test_freqs * s.online_repeats,)
    st = network_units.settings(s, "jacobian", lc)
    assert st["perturbation"] == "shift+0.5" and "rotation_deg" not in st
    # the paper's networks' settings are unchanged by the extension (their units stay current)
    assert "perturbation" not in network_units.settings(s, "jacobian", TaskConfig())


def _fake_claim(values: dict, log: bool):
    """A claim whose measure returns hand-made per-seed (a, b) for a config's seeds."""
    def measure(cfg, col):
        got = values[tuple(cfg.fb_seeds)] if isinstance(cfg, beyond.BeyondConfig) else values["published"]
        seeds = tuple(sorted(got))
        return (np.array([got[s][0] for s in seeds]), np.array([got[s][1] for s in seeds]), seeds, "hand-made")
    return Claim("hand", "Fig X", "hand-made", measure, log=log, band=BANDS["loss"] if log else BANDS["cosine"])


@pytest.mark.parametrize("log", [False, True])
def test_the_change_of_a_hand_made_paired_case_is_scipy_paired_t(tmp_path, log):
    cfg = paper.PaperConfig.tiny(str(tmp_path / "published"), str(tmp_path / "paper"))
    variant = {0: (0.9, 0.5), 1: (0.8, 0.45), 3: (0.7, 0.55)}          # seed 3: no published pair
    published = {0: (0.6, 0.5), 1: (0.5, 0.44), 2: (0.9, 0.1)}
    claim = _fake_claim({(0, 1): variant, "published": published}, log)
    r = beyond._change(claim, AS_PUBLISHED, beyond.family_config(cfg, "fb_d5"), beyond.reference_config(cfg), "fb_d5")
    assert r.seeds == (0, 1)
    f = (lambda a, b: math.log(a / b)) if log else (lambda a, b: a - b)
    d = np.array([f(*variant[s]) - f(*published[s]) for s in (0, 1)])
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    back = np.exp if log else (lambda x: x)
    assert r.effect.mean == pytest.approx(back(d.mean()))
    assert (r.effect.ci_low, r.effect.ci_high) == (pytest.approx(back(lo)), pytest.approx(back(hi)))
    assert r.effect.p_value == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    # the four-word rule by hand: the whole interval lies above no change and past the band's
    # upper edge (0.01 for a cosine, log 1.05 for a ratio), so the variant's effect is larger
    margin = claim.band.margin
    assert lo > margin and r.verdict is Verdict.AGREES
    # one pair only: no interval, inconclusive (no rule is invented for small n)
    one = beyond._change(_fake_claim({(0, 1): {0: variant[0]}, "published": published}, log), AS_PUBLISHED,
                         beyond.family_config(cfg, "fb_d5"), beyond.reference_config(cfg), "fb_d5")
    assert one.effect.n == 1 and one.verdict is Verdict.INCONCLUSIVE


def _records():
    out = []
    for claim, log in (("a", True), ("b", False)):
        for axis, (_, points) in beyond.AXES.items():
            for i, (point, fam, _) in enumerate(points):
                missing = fam == "fb0.1"
                m = (1.2 if log else 0.1) + 0.05 * i
                out.append({"claim": claim, "figure": "Fig X", "short": claim, "axis": axis, "point": point,
                            "family": fam or "published", "log": log, "mean": math.nan if missing else m,
                            "ci_low": math.nan if missing else m - 0.05, "ci_high": math.nan if missing else m + 0.05,
                            "n": 0 if missing else 5, "verdict": "agrees", "band": [0.95, 1.05] if log else [-0.01, 0.01]})
    return out


def test_the_summary_figure_draws_every_point_marks_the_missing_and_states_n():
    fig = plot_beyond_summary(_records())
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    for ax in axes:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert len(labels) == 8 and "0.1, n=0" in labels and "limit cycle, n=5" in labels
        assert [t.get_text() for t in ax.texts] == ["missing"]
    recs = _records()
    for r in recs:
        if r["point"] == "limit cycle" and r["claim"] == "a":
            r.update(mean=math.nan, ci_low=math.nan, ci_high=math.nan, n=0, not_run=True)
    ax = plot_beyond_summary(recs).axes[0]
    assert [t.get_text() for t in ax.texts] == ["missing", "not run"]
    assert ax.get_xticklabels()[-1].get_text() == "limit cycle"           # no n where nothing was planned
    # ratios on a log axis (x2 and x1/2 equally far from 1), differences on a linear one
    assert [ax.get_yscale() for ax in axes] == ["log", "linear"]
    assert axes[0].get_ylabel() == "ratio (log scale)" and axes[1].get_ylabel() == "difference"
    with pytest.raises(ValueError, match="records"):
        plot_beyond_summary([])


def test_training_tail_is_the_last_tenth_of_the_task_loss_over_the_tenth_before(tmp_path):
    """By hand: 100 batches, the task loss 2 over batches 80-89 and 1 over 90-99 gives 0.5; a
    flat curve gives 1; no curve file, None."""
    loss = np.full(100, 5.0)
    loss[80:90], loss[90:] = 2.0, 1.0
    ck = tmp_path / "net_seed0.pt"
    np.savez(ck.with_suffix(".curve.npz"), task_loss=loss, loss=loss + 7.0)
    assert beyond.training_tail(ck) == pytest.approx(0.5)
    np.savez(ck.with_suffix(".curve.npz"), task_loss=np.full(100, 3.0), loss=np.zeros(100))
    assert beyond.training_tail(ck) == pytest.approx(1.0)
    assert beyond.training_tail(tmp_path / "other_seed0.pt") is None


def test_the_published_column_names_its_seeds():
    assert beyond._seed_span([0, 1, 2, 3, 4]) == "0–4"
    assert beyond._seed_span([0, 1]) == "0, 1"
    assert beyond._seed_span([0, 2, 3]) == "0, 2, 3"
