"""The cost of the paper's protocol (fbctrl.experiments.paper.costs): the plan saved with each
stage's seconds under the measured costs and the published code's reported rates."""

import json

import pytest

from fbctrl.__main__ import main
from fbctrl.experiments import paper
from fbctrl.viz import perf as perfplots


def test_paper_plan_saves_its_cost_per_stage_with_the_published_codes(tmp_path):
    """`paper --plan --save` writes each stage's seconds under the measured costs and the published
    code's reported rates (2.45 s per batch, 0.7 s per RFLO trial, 7.9 s per BPTT trial)."""
    out = tmp_path / "plan.json"
    assert main(["paper", "--tiny", "--plan", "--checkpoint-dir", str(tmp_path / "ck"), "--results-dir",
                 str(tmp_path / "res"), "--save", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["benchmark"] == "paper_plan" and "commit" in d
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    groups = d["result"]["groups"]
    pre = next(g for g in groups if g["title"].startswith("pre-train the networks with"))
    assert pre["seconds"]["published code"] == pytest.approx(len(cfg.fb_seeds) * cfg.pretrain_batches * 2.45 * 1.03)
    rflo = [g for g in groups if "30 deg, published" in g["title"] and g["title"].startswith("fb")][0]
    # 2 seeds x (RFLO+c, RFLO at 0.7 s, BPTT+c, BPTT at 7.9 s) x trials
    assert rflo["seconds"]["published code"] == pytest.approx(2 * cfg.trials * (2 * 0.7 + 2 * 7.9))
    md = perfplots.cost_table({"result": d["result"]}).data
    assert "**total**" in md and "published code" in md
    assert main(["paper", "--tiny", "--save", str(out)]) == 2     # --save needs --plan
