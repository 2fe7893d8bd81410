"""Shards of the paper's protocol (fbctrl.experiments.paper.shard): the plan split by network seed
without overlap, and the threads each shard uses."""

import pytest

from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


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
