"""The learning-rate sweep of the paper's protocol (fbctrl.experiments.paper.sweep): it is extended
only when its best rate lies at an edge of the grid, and its best rates."""

import dataclasses

import pytest

from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS
from tests.helpers import fake_sweep

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


def test_sweep_is_extended_only_when_its_best_rate_lies_at_an_edge(tmp_path):
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    cfg = dataclasses.replace(cfg, sweep_rates={"rflo": (1e-5, 1e-4, 1e-3), "bptt": (1e-5, 1e-4, 1e-3)})
    fake_sweep(cfg, RFLO_C, [3.0, 2.0, 1.0])          # best at the top edge
    assert paper.sweep_extension(cfg, RFLO_C) == [pytest.approx(1e-2)]
    fake_sweep(cfg, RFLO, [3.0, 1.0, 2.0])            # bracketed
    assert paper.sweep_extension(cfg, RFLO) == []
    fake_sweep(cfg, BPTT_C, [1.0, 2.0, float("nan")])  # best at the bottom edge; top diverged
    assert paper.sweep_extension(cfg, BPTT_C) == [pytest.approx(1e-6)]
    best = paper.best_swept_rates(cfg)
    assert best["RFLO"]["lr"] == 1e-4 and best["RFLO"]["bracketed"]
    assert best["RFLO+c"]["lr"] == 1e-3 and not best["RFLO+c"]["bracketed"]
    assert not best["BPTT"]["complete"] and best["BPTT"]["lr"] is None
    # the extension is planned as sweep units
    sweep = next(g for g in paper.plan(cfg) if g.title.startswith("learning-rate sweep"))
    ext = [u.lr for u in sweep.units if u.condition == RFLO_C]
    assert ext == [pytest.approx(1e-2)] * len(cfg.sweep_seeds)
