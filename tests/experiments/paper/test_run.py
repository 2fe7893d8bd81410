"""The paper protocol's runner: a dry run of every stage at n 20 (the command a GPU machine runs,
so that it cannot fail on a typo), resumability, the budget, the sweep's extension rule, and the
published protocol's effective rates in the result files."""

import dataclasses
import html
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ROOT
from fbctrl.experiments import paper
from fbctrl.experiments.store import file_sha256
from fbctrl.experiments.verdicts import footnotes as verdicts_footnotes
from fbctrl.__main__ import main
from fbctrl.core.checkpoint import load_checkpoint, read_sidecar
from fbctrl.experiments.protocol import CONDITIONS, Condition, Protocol, feedback_output_ratio

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    ck, res = root / "ck", root / "res"
    rc = main(["paper", "--tiny", "--checkpoint-dir", str(ck), "--results-dir", str(res), "--no-progress"])
    assert rc == 0
    return paper.PaperConfig.tiny(str(ck), str(res))


def _meta(path):
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


def test_dry_run_completes_every_stage(dry_run):
    cfg = dry_run
    assert all(not g.units for g in paper.plan(cfg))
    for kind in ("fb", "nofb"):
        for s in cfg.seeds(kind):
            side = read_sidecar(paper.PretrainUnit(kind, s).path(cfg))
            assert side["config"]["train_push"] is False and side["config"]["batches"] == cfg.pretrain_batches
    files = list((Path(cfg.results_dir) / "adapt").rglob("*.npz"))
    # 8 fb runs x (30 published, 30 paper-text, 40 published, 30 best, 40 at the best 30 deg rates)
    # + 4 nofb runs, and the robustness runs at 30: 8 with the integrated error from e_0, 4 BPTT runs
    # with current weights; and Figure 8's 8 fb runs at 40 deg at that rotation's own best rates
    assert len(files) == 8 * 5 + 4 + 8 + 4 + 8
    variants = {}
    for p in files:
        m = _meta(p)
        assert m["kind"] == paper.UNIT_KIND and m["trials"] == cfg.trials and m["lr"] == m["effective_rate"]["lr"] > 0
        assert m["protocol"] == m["unit"]["protocol"]
        v = m["unit"].get("variant", "")
        variants[v] = variants.get(v, 0) + 1
        assert m["bptt_weights"] == ("current" if v == "bptt-current" else "history")
        assert m["error_start"] == ("published" if v == "e0" else "zero")
        assert ("+" in p.parent.parent.name) == bool(v)
    assert variants == {"": 44, "e0": 8, "bptt-current": 4, "own-rotation": 8}


def test_published_rates_in_the_files_follow_the_published_code(dry_run):
    cfg = dry_run
    for s in cfg.fb_seeds:
        net = load_checkpoint(paper.PretrainUnit("fb", s).path(cfg))
        ratio = feedback_output_ratio(net.W_fb, net.W_out)
        lr = {c.name: _meta(paper.AdaptUnit("fb", s, 30.0, c, Protocol.PUBLISHED, cfg.trials).path(cfg))["lr"]
              for c in CONDITIONS}
        assert lr["RFLO+c"] == pytest.approx(5e-5) and lr["RFLO"] == pytest.approx(5e-6)
        assert lr["BPTT+c"] == pytest.approx(1e-4 * ratio, rel=1e-9) and lr["BPTT"] == pytest.approx(5e-6 * ratio, rel=1e-9)
        txt = {c.name: _meta(paper.AdaptUnit("fb", s, 30.0, c, Protocol.PAPER_TEXT, cfg.trials).path(cfg))["lr"]
               for c in CONDITIONS}
        assert txt == {"RFLO+c": 5e-5, "RFLO": 5e-5, "BPTT+c": 1e-4, "BPTT": 5e-6}
    for s in cfg.nofb_seeds:
        m = _meta(paper.AdaptUnit("nofb", s, 30.0, BPTT, Protocol.PUBLISHED, cfg.trials).path(cfg))
        assert m["lr"] == pytest.approx(5e-7) and m["effective_rate"]["factors"] == {"bptt_no_feedback": 0.1}


def test_best_protocol_runs_use_the_best_swept_rate(dry_run):
    cfg = dry_run
    best = paper.best_swept_rates(cfg)
    for c in CONDITIONS:
        assert best[c.name]["complete"] and best[c.name]["lr"] in best[c.name]["rates"]
        m = _meta(paper.AdaptUnit("fb", 0, 30.0, c, Protocol.BEST, cfg.trials).path(cfg))
        assert m["lr"] == best[c.name]["lr"]
    # matched states are measured where the fair alignment cells read them: the published protocol's runs
    with np.load(paper.AdaptUnit("fb", 0, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials).path(cfg)) as z:
        assert "matched_local" in z.files
    assert _meta(paper.AdaptUnit("fb", 0, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials).path(cfg))["matched_wall_time_s"] > 0
    for p in (Protocol.BEST, Protocol.PAPER_TEXT):
        with np.load(paper.AdaptUnit("fb", 0, 30.0, RFLO_C, p, cfg.trials).path(cfg)) as z:
            assert "matched_local" not in z.files and "align_local" in z.files
    # the larger rotations' fair cells: RFLO and RFLO+c at their best rate of the 30 deg sweep
    for c in (RFLO_C, RFLO):
        m = _meta(paper.AdaptUnit("fb", 1, 40.0, c, Protocol.BEST, cfg.trials).path(cfg))
        assert m["lr"] == best[c.name]["lr"] and m["protocol"] == "best"
    for c in (BPTT_C, BPTT):
        m = _meta(paper.AdaptUnit("fb", 1, 40.0, c, Protocol.BEST, cfg.trials).path(cfg))
        assert m["lr"] == best[c.name]["lr"] and m["bptt_weights"] == "history"


def test_plan_puts_what_the_verdicts_read_before_what_they_do_not(tmp_path):
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    titles = [g.title for g in paper.plan(cfg, include_done=True)]
    pos = lambda text: next(i for i, t in enumerate(titles) if text in t)  # noqa: E731
    assert (pos("40 deg, published protocol, RFLO and RFLO+c") < pos("sweep at 30 deg, RFLO and RFLO+c")
            < pos("30 deg, RFLO and RFLO+c at their best swept rate") < pos("40 deg, RFLO and RFLO+c at their best rate")
            < pos("sweep at 30 deg, BPTT and BPTT+c") < pos("30 deg, BPTT and BPTT+c at their best swept rate")
            < pos("integrated error from e_0") < pos("40 deg, published protocol, BPTT and BPTT+c")
            < pos("40 deg, BPTT and BPTT+c at their best rate"))
    # each rule's best-rate runs wait for that rule's sweep only
    cfg = dataclasses.replace(cfg, sweep_rates={"rflo": (1e-5, 1e-4, 1e-3), "bptt": (1e-5, 1e-4, 1e-3)})
    for c in (RFLO_C, RFLO):
        _fake_sweep(cfg, c, [3.0, 1.0, 2.0])             # complete and bracketed: no extension
    state = {g.title: g.blocked for g in paper.plan(cfg)}
    assert state[titles[pos("30 deg, RFLO and RFLO+c at their best swept rate")]] != "waits for the sweep"
    assert state[titles[pos("30 deg, BPTT and BPTT+c at their best swept rate")]] == "waits for the sweep"
    assert state[titles[pos("40 deg, RFLO and RFLO+c at their best rate")]] != "waits for the sweep"
    assert state[titles[pos("40 deg, BPTT and BPTT+c at their best rate")]] == "waits for the sweep"


def test_finished_units_are_skipped_and_a_lost_file_is_recomputed_identically(dry_run):
    cfg = dry_run
    assert paper.run_plan(cfg, progress=False, log=lambda *_: None)["units_done"] == 0
    unit = paper.AdaptUnit("fb", 1, 30.0, BPTT_C, Protocol.PUBLISHED, cfg.trials)
    rec0, _ = paper.load_runs(cfg, [unit])
    unit.path(cfg).unlink()
    assert [g.units for g in paper.plan(cfg) if g.units] == [[unit]]
    # alone it runs in a group of 1 instead of 4: lockstep runs equal single runs
    assert paper.run_plan(cfg, progress=False, log=lambda *_: None)["units_done"] == 1
    rec1, _ = paper.load_runs(cfg, [unit])
    for k in rec0:
        np.testing.assert_allclose(rec1[k], rec0[k], rtol=1e-5, atol=1e-9, err_msg=k)


def test_shards_split_the_plan_by_network_seed_without_overlap(dry_run):
    cfg = dry_run
    lost = [paper.AdaptUnit("fb", s, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials) for s in (0, 1)]
    for u in lost:
        u.path(cfg).unlink()
    full = [u for g in paper.plan(cfg) for u in g.units]
    parts = [[u for g in paper.plan(cfg) for u in paper.shard_units(g, (i, 2)).units] for i in range(2)]
    assert sorted(map(str, full)) == sorted(map(str, lost)) and parts == [[lost[0]], [lost[1]]]
    out = paper.run_plan(cfg, progress=False, log=lambda *_: None, shard=(1, 2))
    assert (out["units_done"], out["units_left"]) == (1, 0)
    assert lost[1].path(cfg).is_file() and not lost[0].path(cfg).is_file()
    assert paper.run_plan(cfg, progress=False, log=lambda *_: None, shard=(0, 2))["units_done"] == 1
    assert [g.units for g in paper.plan(cfg) if g.units] == []
    assert paper.shard_threads((0, 2), 2, {}) == 1 and paper.shard_threads((1, 2), 16, {}) == 8
    assert paper.shard_threads((0, 4), 2, {}) == 1                      # never fewer than one thread
    assert paper.shard_threads(None, 16, {}) is None and paper.shard_threads((0, 2), 16, {"OMP_NUM_THREADS": "3"}) is None
    with pytest.raises(ValueError, match="shard must be I/N"):
        paper.shard_units(paper.plan(cfg, include_done=True)[0], (2, 2))


def test_budget_stops_cleanly_before_a_batch_that_does_not_fit(tmp_path):
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    costs = paper.Costs(pretrain_batch=60.0, run_trial={"rflo": 1.0, "bptt": 1.0}, source="test")
    out = paper.run_plan(cfg, budget_minutes=1.0, costs=costs, progress=False, log=lambda *_: None)
    assert out["units_done"] == 0 and out["stopped"].startswith("budget: pre-train the networks with feedback")
    assert not (tmp_path / "ck").exists() or not list((tmp_path / "ck").glob("*.pt"))


def test_load_runs_validates_files(dry_run, tmp_path):
    cfg = dry_run
    with pytest.raises(FileNotFoundError, match="run `python -m fbctrl paper`"):
        paper.load_runs(cfg, [paper.AdaptUnit("fb", 7, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials)])
    good = paper.AdaptUnit("fb", 0, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials)
    wrong = paper.AdaptUnit("fb", 0, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials + 1)
    wrong.path(cfg).parent.mkdir(parents=True, exist_ok=True)
    # a file holding another unit's numbers under this unit's name is refused
    other = paper.PaperConfig.tiny(cfg.checkpoint_dir, str(tmp_path))
    target = good.path(other)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(paper.AdaptUnit("fb", 0, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials).path(cfg).read_bytes())
    with pytest.raises(ValueError, match="describes another run"):
        paper.load_runs(other, [good])
    assert not paper.is_done(other, good)   # and recomputed by the next run


def test_networks_pretrained_with_pushes_are_refused(tmp_path):
    from fbctrl.core.train import PretrainConfig, pretrain

    cfg = paper.PaperConfig.tiny(str(tmp_path), str(tmp_path / "res"))
    pushed = PretrainConfig(n=20, batches=2, batch_size=4, eval_every=1, checkpoint_every=1, train_push=True)
    pretrain(pushed, [0], tmp_path, progress=False, task_cfg=cfg.task)
    with pytest.raises(ValueError, match="not pre-trained with this protocol \\(batches, batch_size, train_push"):
        paper.load_networks(cfg, "fb", [0], "cpu")


def _fake_sweep(cfg, cond, finals):
    """Sweep files for ``cond`` whose final test loss per rate (same for every seed) is ``finals``."""
    for lr, f in zip(cfg.sweep_rates[cond.rule.value], finals):
        for u in paper.sweep_units(cfg, cond, [lr]):
            rec = {"test_loss": np.full(u.trials, f)}
            ck = paper.PretrainUnit("fb", u.seed).path(cfg)       # the network it was run on, where there is one
            net = {"sha256": file_sha256(ck)} if ck.is_file() else {}
            paper.write_unit(cfg, u, rec, {"diverged_trial": -1 if math.isfinite(f) else 0, "network": net})


def test_sweep_is_extended_only_when_its_best_rate_lies_at_an_edge(tmp_path):
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    cfg = dataclasses.replace(cfg, sweep_rates={"rflo": (1e-5, 1e-4, 1e-3), "bptt": (1e-5, 1e-4, 1e-3)})
    _fake_sweep(cfg, RFLO_C, [3.0, 2.0, 1.0])          # best at the top edge
    assert paper.sweep_extension(cfg, RFLO_C) == [pytest.approx(1e-2)]
    _fake_sweep(cfg, RFLO, [3.0, 1.0, 2.0])            # bracketed
    assert paper.sweep_extension(cfg, RFLO) == []
    _fake_sweep(cfg, BPTT_C, [1.0, 2.0, float("nan")])  # best at the bottom edge; top diverged
    assert paper.sweep_extension(cfg, BPTT_C) == [pytest.approx(1e-6)]
    best = paper.best_swept_rates(cfg)
    assert best["RFLO"]["lr"] == 1e-4 and best["RFLO"]["bracketed"]
    assert best["RFLO+c"]["lr"] == 1e-3 and not best["RFLO+c"]["bracketed"]
    assert not best["BPTT"]["complete"] and best["BPTT"]["lr"] is None
    # the extension is planned as sweep units
    sweep = next(g for g in paper.plan(cfg) if g.title.startswith("learning-rate sweep"))
    ext = [u.lr for u in sweep.units if u.condition == RFLO_C]
    assert ext == [pytest.approx(1e-2)] * len(cfg.sweep_seeds)


def test_cli_paper_bad_arguments_exit_2(capsys, tmp_path):
    assert main(["paper", "--tiny"]) == 2
    assert "--tiny needs --checkpoint-dir and --results-dir" in capsys.readouterr().err
    assert main(["paper", "--budget-minutes", "-3"]) == 2
    assert "budget-minutes must be a positive number" in capsys.readouterr().err
    for bad in ("2/2", "1", "a/b", "0/0"):
        assert main(["paper", "--shard", bad, "--plan", "--no-calibrate"]) == 2
        assert "shard must be I/N with integers 0 <= I < N" in capsys.readouterr().err


def test_verdict_table_from_the_dry_run(dry_run):
    from fbctrl.experiments import verdicts
    from fbctrl.experiments.stats import Verdict

    cfg = dry_run
    table = verdicts.verdict_table(cfg)
    assert {(r.key, r.column) for r in table} == {(c.key, col) for c in verdicts.CLAIMS
                                                  for col in ("as published", "fair")}
    by = {(r.key, r.column): r for r in table}
    r = by[("final_loss_rflo_30", "as published")]
    assert r.seeds == tuple(cfg.fb_seeds) and isinstance(r.verdict, Verdict)
    # the per-seed effect is the ratio of the two conditions' final losses, from the files
    for i, s in enumerate(cfg.fb_seeds):
        fin = {c: paper.load_runs(cfg, [paper.AdaptUnit("fb", s, 30.0, c, Protocol.PUBLISHED, cfg.trials)])[0]
               ["test_loss"][0, -4:].mean() for c in (RFLO, RFLO_C)}
        assert r.effect.values[i] == pytest.approx(fin[RFLO] / fin[RFLO_C], rel=1e-9)
    assert by[("align_local", "fair")].effect.n == len(cfg.fb_seeds)   # matched-state records exist
    assert by[("final_loss_rflo_50", "fair")].effect.n == 0 and by[("final_loss_rflo_50", "fair")].verdict is Verdict.INCONCLUSIVE
    md = verdicts.markdown_table(table)
    assert md.count("\n") == 1 + len(verdicts.CLAIMS) and "no data" in md


def test_cli_verdicts_prints_the_table(dry_run, capsys):
    assert main(["verdicts", "--tiny", "--checkpoint-dir", dry_run.checkpoint_dir,
                 "--results-dir", dry_run.results_dir, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["verdict"] for r in rows} <= {"agrees", "disagrees", "inconclusive", "negligible"}
    assert all(r["effect"]["method"].startswith("paired t") for r in rows)


def test_paper_report_reads_the_units_and_glues_every_cell_of_the_introduction(dry_run):
    """The chapter 'The paper's protocol' from the unit files alone: every stage complete, every
    network listed, and a glued cell for every claim and column that the Introduction's table
    references (and no reference to a key that is never glued)."""
    import re
    from pathlib import Path

    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments.verdicts import CLAIMS

    cfg = dry_run
    rows = paper_protocol.progress(cfg)
    assert rows and all(r.done == r.total for r in rows)
    # every finished unit says how long it took: the compute column sums what the files record
    assert all(np.isfinite(r.hours) and r.hours >= 0 for r in rows)
    adapt_rows = [r for r, g in zip(rows, paper.plan(cfg, include_done=True)) if g.units and g.units[0].stage in ("adapt", "sweep")]
    assert adapt_rows and all(r.hours > 0 for r in adapt_rows)
    assert paper_protocol.progress_markdown(rows).splitlines()[-1].startswith("| **total** |")
    # the held-out cells: the fair cells on the networks the sweep did not use, value for value
    from dataclasses import replace as _replace

    from fbctrl.experiments import verdicts as V
    cfg1 = _replace(cfg, sweep_seeds=(0,))
    both = V.verdict_table(cfg1, V.RATE_CLAIMS[:1], ("fair", "fair, held-out networks"))
    fair, held = both
    assert fair.seeds == (0, 1) and held.seeds == (1,)
    assert held.effect.values == pytest.approx(fair.effect.values[1:], rel=1e-12)
    assert len(paper_protocol.held_out_rows(cfg)) == len(V.RATE_CLAIMS)
    sw = paper_protocol.sweep_figure_data(cfg)
    assert sw["best"] == paper.best_swept_rates(cfg)
    assert all(len(v) == len(cfg.sweep_seeds) for v in sw["published_lr"].values())
    best_rows = paper_protocol.best_rate_rows(sw)
    assert [r[0] for r in best_rows] == [c.name for c in CONDITIONS] and all(r[2] != "—" for r in best_rows)
    # Figure 5a's published definition is the scale-free one times the rate: per network exactly
    eff = {r.column: r for r in V.verdict_table(cfg, [c for c in V.CLAIMS if c.key == "efficiency"],
                                                ("as published", "efficiency per trial, scale-free"))}
    lr = [_meta(paper.AdaptUnit("fb", s, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials).path(cfg))["lr"]
          / _meta(paper.AdaptUnit("fb", s, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials).path(cfg))["lr"]
          for s in eff["as published"].seeds]
    assert eff["as published"].effect.values == pytest.approx(
        [a * b for a, b in zip(lr, eff["efficiency per trial, scale-free"].effect.values)], rel=1e-6)
    assert "times RFLO's rate" in paper_protocol.efficiency_sentence(cfg)
    nofb = paper_protocol.nofb_rows(cfg)
    assert [r[0] for r in nofb] == ["RFLO", "BPTT"] and all(r[1].endswith(f"n {len(cfg.nofb_seeds)}") for r in nofb)
    # the matched-state detail pools to the fair alignment cells of the verdict table
    m = paper_protocol.matched_alignment_summary(cfg)
    assert m["points"] == list(cfg.matched_points) and m["trials"] == cfg.matched_trials
    for which in ("local", "global"):
        fair = next(r for r in paper_protocol.verdicts(cfg) if r.key == f"align_{which}" and r.column == "fair")
        assert m[which]["effect"] == pytest.approx(fair.effect.mean, rel=1e-5)      # float32 records
        assert len(m[which]["per_point"]) == len(cfg.matched_points)
    assert len(paper_protocol.matched_rows(m)) == len(cfg.matched_points) and "trials per setting" in paper_protocol.matched_sentence(m)
    nets = paper_protocol.networks(cfg)
    assert {(d["kind"], d["seed"]) for d in nets} == {(k, s) for k in ("fb", "nofb") for s in cfg.seeds(k)}
    assert all(d["train_push"] is False for d in nets)
    results = paper_protocol.verdicts(cfg)
    table = paper_protocol.verdict_rows(results)
    assert len(table) == len(CLAIMS) and all(len(r) == 6 for r in table)
    assert "units are computed" in paper_protocol.summary_sentence(rows, nets, results)
    # the introduction shows the forest plot, the whole verdict table and the marks' footnotes, glued from the chapter
    intro = (ROOT / "book" / "intro.md").read_text()
    assert re.findall(r"```\{glue:any\} (\w+)\n:doc: paper_protocol\.ipynb", intro) == [
        "verdict_forest", "verdict_summary", "verdict_footnotes"]
    assert len(paper_protocol.verdict_summary_rows(results)) == len(CLAIMS)
    notes = paper_protocol.footnotes_html(results)
    assert all(html.escape(n) in notes for n in verdicts_footnotes(results))


def test_robustness_table_changes_one_thing_per_row(dry_run):
    """Each robustness row of a claim is measured with exactly one change to the as-published
    runs; the rows that do not touch a claim's measure are left out, and a row flips when its
    verdict differs from the as-published one."""
    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments import verdicts

    cfg = dry_run
    table = verdicts.robustness_table(cfg)
    assert [b.key for b, _ in table] == [c.key for c in verdicts.CLAIMS]
    by = {b.key: (b, rows) for b, rows in table}
    base, rows = by["final_loss_rflo_30"]
    names = {r.column for r in rows}
    assert "online BPTT with the current weights" not in names and "efficiency whole run" not in names
    assert {"integrated error from e_0 (published quirk)", "after 500 trials", "learning-curve area"} <= names
    e0 = next(r for r in rows if r.column.startswith("integrated error"))
    assert e0.effect.n == base.effect.n == len(cfg.fb_seeds) and e0.effect.values != base.effect.values
    assert "mean test loss over all" in next(r for r in rows if r.column == "learning-curve area").definition
    _, brows = by["final_loss_bptt_30"]
    cur = next(r for r in brows if r.column == "online BPTT with the current weights")
    assert cur.effect.n == len(cfg.fb_seeds)
    _, erows = by["efficiency"]
    assert {r.column for r in erows} >= {"efficiency per trial, scale-free", "efficiency whole run"}
    # at 40 deg only the published protocol's runs exist: no rows for changes that ran at 30 deg only
    _, r40 = by["final_loss_rflo_40"]
    assert {r.column for r in r40} == {"final window 50 trials", "after 500 trials", "learning-curve area",
                                       "smallest effect of interest halved", "smallest effect of interest doubled"}
    assert all(r.effect.n == len(cfg.fb_seeds) for r in r40)
    assert all(len(r) == 5 for r in paper_protocol.robustness_rows(cfg))


def test_runs_wait_for_their_network_while_the_others_go_ahead(dry_run, tmp_path):
    """An adaptation run whose network is not pre-trained yet (pre-training still going on in
    another process) is left out, the runs of finished networks go ahead, and a group with only
    waiting runs says so instead of failing on the missing checkpoint."""
    import shutil

    ck, res = tmp_path / "ck", tmp_path / "res"
    shutil.copytree(dry_run.checkpoint_dir, ck)
    shutil.copytree(dry_run.results_dir, res)
    cfg = paper.PaperConfig.tiny(str(ck), str(res))
    ready = paper.AdaptUnit("fb", 0, 30.0, BPTT_C, Protocol.PUBLISHED, cfg.trials)
    waiting = paper.AdaptUnit("fb", 1, 30.0, BPTT_C, Protocol.PUBLISHED, cfg.trials)
    for u in (ready, waiting):
        u.path(cfg).unlink()
    paper.PretrainUnit("fb", 1).path(cfg).unlink()            # network fb 1 "still pre-training"
    adapt_groups = [g for g in paper.plan(cfg) if g.units and g.units[0].stage == "adapt"]
    assert [g.units for g in adapt_groups if not g.blocked] == [[ready]]
    out = paper.run_plan(cfg, progress=False, log=lambda *_: None, stages=["adapt"])
    assert out["units_done"] == 1 and ready.path(cfg).is_file() and not waiting.path(cfg).exists()
    assert "waits for pre-training" in out["stopped"]


def test_wrec_damping_table_pools_to_the_fair_cell(dry_run):
    """The W_rec claim by damping and step: at the fair cell's damping (every solve converged) the
    all-steps effect is the fair cell, seed for seed, and the mean of the per-step effects; the
    sentence gives a verdict for every damping of the grid."""
    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments import verdicts as V

    cfg = dry_run
    eff = paper_protocol.wrec_damping_effects(cfg)
    grid = cfg.network_measures.wrec_dampings
    steps = cfg.network_measures.wrec_steps
    assert len(eff) == (len(grid) + 1) * (len(steps) + 1)
    d = paper_protocol.fair_wrec_damping(cfg)
    assert d is not None, "the tiny protocol's solves should converge somewhere on the grid"
    fair = V.verdict_table(cfg, [c for c in V.CLAIMS if c.key == "wrec_newton"], ("fair",))[0]
    at = [e for e in eff if e["direction"] == "newton" and e["damping"] == d]
    pooled = next(e["effect"] for e in at if e["step"] is None)
    assert pooled.values == pytest.approx(fair.effect.values, rel=1e-12)
    per_step = np.array([e["effect"].values for e in at if e["step"] is not None])
    assert pooled.values == pytest.approx(per_step.mean(axis=0), rel=1e-9, abs=1e-12)
    header, rows = paper_protocol.wrec_damping_rows(eff)
    assert header == ["direction", "all steps"] + [f"step {s}" for s in steps] and len(rows) == len(grid) + 1
    nvg = paper_protocol.wrec_newton_vs_gradient(cfg, d)
    assert set(nvg) == set(steps) and all(-1 <= x <= 1 for pair in nvg.values() for x in pair)
    text = paper_protocol.wrec_damping_sentence(eff, d, nvg)
    assert all(f"{x:g}: " in text for x in grid) and f"At damping {d:g}" in text


def test_a_flip_is_judged_only_on_two_seeds_or_more():
    """A robustness row whose change has run on one network is inconclusive by rule: it is not
    called a flip; a row on fewer networks than the as-published cell says so."""
    from fbctrl.book.chapters.paper_protocol import _flips
    from fbctrl.experiments import verdicts as V
    from fbctrl.experiments.stats import paired_effect, verdict

    def result(values):
        e = paired_effect(values, log=True)
        return V.ClaimResult("k", "Fig", "claim", "col", "", e, verdict(e, +1), tuple(range(len(values))))

    base = result([2.0, 3.0, 2.5, 4.0])
    assert base.verdict.value == "agrees"
    assert _flips(base, result([0.5])) == "—"
    assert _flips(base, result([0.5, 0.6, 0.55])) == "**flips** (on 3 of 4 networks)"
    assert _flips(base, result([2.1, 2.9, 2.4, 3.5])) == "no"


def test_variant_rows_are_the_paired_ratio_of_the_final_losses(dry_run):
    """The effect of each published-code variant on the final loss: per network, the final loss
    with the change over the one without, read from the unit files."""
    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments.stats import paired_effect
    from fbctrl.experiments.verdicts import format_effect

    cfg = dry_run
    rows = paper_protocol.variant_rows(cfg)
    assert [(r[0], r[1]) for r in rows] == (
        [("integrated error from e_0", c.name) for c in CONDITIONS]
        + [("online BPTT with the current weights", c.name) for c in (BPTT_C, BPTT)])
    f = {}
    for v in (paper.Variant.NONE, paper.Variant.ERROR_START_E0):
        units = [paper.AdaptUnit("fb", s, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials, variant=v) for s in cfg.fb_seeds]
        rec, _ = paper.load_runs(cfg, units)
        f[v] = rec["test_loss"][:, -min(10, cfg.trials):].mean(axis=1)
    expect = paired_effect(f[paper.Variant.ERROR_START_E0], f[paper.Variant.NONE], log=True)
    assert rows[0][4] == format_effect(expect)


def test_figure8_sweeps_every_rotation_and_the_fair_cells_use_each_rotations_own_best_rate(dry_run):
    """The sweep at the other rotations (tiny: 40 deg) on the sweep's networks, then every network
    at that rotation's own best rate; the fair cells there read those runs and say so; the
    held-out column judges them on the networks that did not choose the rate."""
    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments import metrics, verdicts as V
    from fbctrl.viz.chapters.paper_protocol import plot_sweep_heatmaps

    cfg = dry_run
    titles = [g.title for g in paper.plan(cfg, include_done=True)]
    fig8 = [i for i, t in enumerate(titles) if t.startswith("Figure 8") or "at the best rate of the 40 deg sweep" in t]
    assert fig8 and fig8 == list(range(len(titles) - len(fig8), len(titles)))       # last in the plan
    best40 = paper.best_swept_rates(cfg, 40.0)
    for c in CONDITIONS:
        tab = paper.sweep_table(cfg, c, 40.0)
        assert tab["complete"] and tab["final"].shape[1] == len(cfg.sweep_seeds)
        for s in cfg.fb_seeds:
            u = paper.AdaptUnit("fb", s, 40.0, c, Protocol.BEST, cfg.trials, variant=paper.Variant.OWN_BEST)
            m = _meta(u.path(cfg))
            assert m["lr"] == best40[c.name]["lr"] and "own-rotation" in str(u.path(cfg))
    with pytest.raises(ValueError, match="rotation must be a swept rotation \\(30, 40 deg\\), got 50"):
        paper.sweep_table(cfg, RFLO_C, 50.0)
    claim = next(c for c in V.CLAIMS if c.key == "final_loss_rflo_40")
    fair = V.verdict_table(cfg, (claim,), ("fair",))[0]
    assert "best rate of the 40 deg sweep" in fair.definition and fair.effect.n == len(cfg.fb_seeds)
    own = [paper.AdaptUnit("fb", s, 40.0, c, Protocol.BEST, cfg.trials, variant=paper.Variant.OWN_BEST)
           for c in (RFLO, RFLO_C) for s in cfg.fb_seeds]
    recs, _ = paper.load_runs(cfg, own)
    n = len(cfg.fb_seeds)
    w = min(10, cfg.trials)
    want = np.log(metrics.final_loss(recs["test_loss"][:n], w) / metrics.final_loss(recs["test_loss"][n:], w))
    assert np.log(fair.effect.values) == pytest.approx(want, rel=1e-9)
    data = paper_protocol.sweep_heatmap_data(cfg)
    assert data["rotations"] == [30.0, 40.0] and data["done"] == data["planned"]
    for c in CONDITIONS:
        d = data["conditions"][c.name]
        assert d["final"].shape == (2, len(d["rates"])) and d["best"][1] == best40[c.name]["lr"]
    plot_sweep_heatmaps(data)


def test_marks_say_what_each_verdict_rests_on(dry_run):
    """The band mark appears exactly where halving or doubling the band changes the verdict, the
    artefact mark on Figure 5a's published cell exactly where the two runs' rates differ, every
    convention/stage mark names rows of its group whose verdict differs, and the table prints
    each cell's symbols after its verdict with one footnote per mark."""
    from fbctrl.experiments import verdicts as V
    from fbctrl.experiments.stats import verdict

    cfg = dry_run
    res = V.verdict_table(cfg, marks=True)
    claims = {c.key: c for c in V.CLAIMS}
    for r in res:
        c = claims[r.key]
        kinds = [m.kind for m in r.marks]
        assert set(kinds) <= set(V.MARKS) and len(kinds) == len(set(kinds))
        moved = r.effect.n >= 2 and c.band is not None and any(
            verdict(r.effect, c.paper_sign, c.band.scaled(f)) != r.verdict for f in (0.5, 2.0))
        assert ("band" in kinds) == moved
        if r.key == "efficiency" and r.column == "as published":
            rate = V.verdict_table(cfg, (c,), ("the published efficiency's rate factor alone: lr(RFLO+c) / lr(RFLO)",))[0]
            assert rate.effect.mean == pytest.approx(10.0) and "artefact" in kinds
        if r.key == "efficiency" and r.column == "fair":
            assert "artefact" not in kinds
        for m in r.marks:
            assert m.symbol == V.MARKS[m.kind][0] and m.note
    rows = V.table_rows(res)
    by = {(r.figure, r.claim): {} for r in res}
    for r in res:
        by[(r.figure, r.claim)][r.column] = r
    for row in rows:
        pub = by[(row[0], row[1])]["as published"]
        assert row[3] == pub.verdict.value + "".join(f" {m.symbol}" for m in pub.marks)
    assert len(V.footnotes(res)) == sum(len(r.marks) for r in res)
    # without marks the table is what it was (the API stays backward compatible)
    plain = V.verdict_table(cfg)
    assert all(not r.marks for r in plain) and [r.verdict for r in plain] == [r.verdict for r in res]
