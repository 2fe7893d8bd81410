"""Adaptation units (fbctrl.experiments.paper.adaptation): their learning rates by network kind."""

from __future__ import annotations

import pytest
import torch

from fbctrl.core.spec import NetworkSpec
from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol


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
