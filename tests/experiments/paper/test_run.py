"""The paper protocol's runner (fbctrl.experiments.paper.run): a dry run of every stage at n 20
(the command a GPU machine runs, so that it cannot fail on a typo), finished units skipped and a
lost one recomputed identically, and a budget that stops before a batch that does not fit."""

from pathlib import Path

import numpy as np

from fbctrl.core.checkpoint import read_sidecar
from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol
from tests.helpers import unit_meta

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


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
        m = unit_meta(p)
        assert m["kind"] == paper.UNIT_KIND and m["trials"] == cfg.trials and m["lr"] == m["effective_rate"]["lr"] > 0
        assert m["protocol"] == m["unit"]["protocol"]
        v = m["unit"].get("variant", "")
        variants[v] = variants.get(v, 0) + 1
        assert m["bptt_weights"] == ("current" if v == "bptt-current" else "history")
        assert m["error_start"] == ("published" if v == "e0" else "zero")
        assert ("+" in p.parent.parent.name) == bool(v)
    assert variants == {"": 44, "e0": 8, "bptt-current": 4, "own-rotation": 8}


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


def test_budget_stops_cleanly_before_a_batch_that_does_not_fit(tmp_path):
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    costs = paper.Costs(pretrain_batch=60.0, run_trial={"rflo": 1.0, "bptt": 1.0}, source="test")
    out = paper.run_plan(cfg, budget_minutes=1.0, costs=costs, progress=False, log=lambda *_: None)
    assert out["units_done"] == 0 and out["stopped"].startswith("budget: pre-train the networks with feedback")
    assert not (tmp_path / "ck").exists() or not list((tmp_path / "ck").glob("*.pt"))
