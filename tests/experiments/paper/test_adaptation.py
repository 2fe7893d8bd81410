"""Adaptation units (fbctrl.experiments.paper.adaptation): their learning rates by network kind,
the published and paper-text protocols' rates in the dry run's files, and the best protocol's runs
at the best swept rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fbctrl.core.checkpoint import load_checkpoint
from fbctrl.core.spec import NetworkSpec
from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol, feedback_output_ratio
from tests.helpers import unit_meta


@pytest.mark.parametrize("kind", ["fb_d5", "fb_d10", "fb0.3", "fb0.1"])
def test_delayed_and_sparse_networks_get_the_with_feedback_rates(kind):
    cfg = paper.PaperConfig()
    W_fb, W_out = torch.full((400, 2), 0.05), torch.full((2, 400), 0.05)
    for cond in CONDITIONS:
        unit = paper.AdaptUnit(kind, 0, 30.0, cond, Protocol.PUBLISHED, 10)
        ref = paper.AdaptUnit("fb", 0, 30.0, cond, Protocol.PUBLISHED, 10).learning_rate(cfg, W_fb, W_out)
        assert unit.learning_rate(cfg, W_fb, W_out) == ref
    off = paper.AdaptUnit("nofb", 0, 30.0, CONDITIONS[1], Protocol.PUBLISHED, 10).learning_rate(cfg, W_fb, W_out)
    on = paper.AdaptUnit(kind, 0, 30.0, CONDITIONS[1], Protocol.PUBLISHED, 10).learning_rate(cfg, W_fb, W_out)
    assert "rflo_controller_off_or_no_feedback" in off.factors and on.factors == off.factors
    bptt = paper.AdaptUnit(kind, 0, 30.0, CONDITIONS[3], Protocol.PUBLISHED, 10).learning_rate(cfg, W_fb, W_out)
    assert "W_fb_over_W_out" in bptt.factors and "bptt_no_feedback" not in bptt.factors
    spec = NetworkSpec.parse(kind)
    pc = cfg.pretrain_config(kind)
    assert (pc.feedback_density, pc.delay, pc.train_push) == (spec.feedback_density, spec.delay, False)
    assert cfg.seeds(kind) == cfg.fb_seeds


RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


def test_published_rates_in_the_files_follow_the_published_code(dry_run):
    cfg = dry_run
    for s in cfg.fb_seeds:
        net = load_checkpoint(paper.PretrainUnit("fb", s).path(cfg))
        ratio = feedback_output_ratio(net.W_fb, net.W_out)
        lr = {c.name: unit_meta(paper.AdaptUnit("fb", s, 30.0, c, Protocol.PUBLISHED, cfg.trials).path(cfg))["lr"]
              for c in CONDITIONS}
        assert lr["RFLO+c"] == pytest.approx(5e-5) and lr["RFLO"] == pytest.approx(5e-6)
        assert lr["BPTT+c"] == pytest.approx(1e-4 * ratio, rel=1e-9) and lr["BPTT"] == pytest.approx(5e-6 * ratio, rel=1e-9)
        txt = {c.name: unit_meta(paper.AdaptUnit("fb", s, 30.0, c, Protocol.PAPER_TEXT, cfg.trials).path(cfg))["lr"]
               for c in CONDITIONS}
        assert txt == {"RFLO+c": 5e-5, "RFLO": 5e-5, "BPTT+c": 1e-4, "BPTT": 5e-6}
    for s in cfg.nofb_seeds:
        m = unit_meta(paper.AdaptUnit("nofb", s, 30.0, BPTT, Protocol.PUBLISHED, cfg.trials).path(cfg))
        assert m["lr"] == pytest.approx(5e-7) and m["effective_rate"]["factors"] == {"bptt_no_feedback": 0.1}


def test_best_protocol_runs_use_the_best_swept_rate(dry_run):
    cfg = dry_run
    best = paper.best_swept_rates(cfg)
    for c in CONDITIONS:
        assert best[c.name]["complete"] and best[c.name]["lr"] in best[c.name]["rates"]
        m = unit_meta(paper.AdaptUnit("fb", 0, 30.0, c, Protocol.BEST, cfg.trials).path(cfg))
        assert m["lr"] == best[c.name]["lr"]
    # matched states are measured where the fair alignment cells read them: the published protocol's runs
    with np.load(paper.AdaptUnit("fb", 0, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials).path(cfg)) as z:
        assert "matched_local" in z.files
    assert unit_meta(paper.AdaptUnit("fb", 0, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials).path(cfg))["matched_wall_time_s"] > 0
    for p in (Protocol.BEST, Protocol.PAPER_TEXT):
        with np.load(paper.AdaptUnit("fb", 0, 30.0, RFLO_C, p, cfg.trials).path(cfg)) as z:
            assert "matched_local" not in z.files and "align_local" in z.files
    # the larger rotations' fair cells: RFLO and RFLO+c at their best rate of the 30 deg sweep
    for c in (RFLO_C, RFLO):
        m = unit_meta(paper.AdaptUnit("fb", 1, 40.0, c, Protocol.BEST, cfg.trials).path(cfg))
        assert m["lr"] == best[c.name]["lr"] and m["protocol"] == "best"
    for c in (BPTT_C, BPTT):
        m = unit_meta(paper.AdaptUnit("fb", 1, 40.0, c, Protocol.BEST, cfg.trials).path(cfg))
        assert m["lr"] == best[c.name]["lr"] and m["bptt_weights"] == "history"
