"""Figure 8 end to end on the tiny protocol: the sweep at every rotation (tiny: 30 and 40 deg) on
the sweep's networks, every network at that rotation's own best rate, the fair cells of the verdict
table reading those runs, and the chapter's heatmaps drawn from them."""

import numpy as np
import pytest

from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol
from tests.helpers import unit_meta

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


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
            m = unit_meta(u.path(cfg))
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


def test_a_run_at_a_rotations_own_best_rate_goes_stale_with_that_rotations_sweep(dry_run, tmp_path):
    """A run at the 40 deg sweep's best rate records the digest of the 40 deg sweep's files, not
    the 30 deg sweep's: a new file in the 40 deg sweep re-plans it (and leaves the runs at the 30 deg
    sweep's rate alone); a new file in the 30 deg sweep does the opposite."""
    import dataclasses
    import shutil

    res = tmp_path / "res"
    shutil.copytree(dry_run.results_dir, res)
    cfg = dataclasses.replace(dry_run, results_dir=str(res))
    own = paper.AdaptUnit("fb", cfg.fb_seeds[0], 40.0, RFLO_C, Protocol.BEST, cfg.trials,
                          variant=paper.Variant.OWN_BEST)
    at30 = paper.AdaptUnit("fb", cfg.fb_seeds[0], 30.0, RFLO_C, Protocol.BEST, cfg.trials)
    assert own.rate_rotation == 40.0 and at30.rate_rotation is None
    assert unit_meta(own.path(cfg))["sweep_sha256"] == paper.sweep_digest(cfg, RFLO_C, 40.0)
    assert unit_meta(at30.path(cfg))["sweep_sha256"] == paper.sweep_digest(cfg, RFLO_C)
    assert paper.unit_status(cfg, own)[0] == paper.unit_status(cfg, at30)[0] == "done"
    for rot, stale, fresh in ((40.0, own, at30), (30.0, at30, own)):
        folder = res / "sweep" / f"rot{rot:g}"
        src = sorted(folder.glob(f"{RFLO_C.slug}_lr*_seed*.npz"))[0]
        extra = folder / f"{RFLO_C.slug}_lr9.99e-09_seed0.npz"
        shutil.copy(src, extra)
        state, why = paper.unit_status(cfg, stale)
        assert state == "stale" and "sweep files that chose its rate changed" in why
        assert paper.unit_status(cfg, fresh)[0] == "done"
        extra.unlink()


def test_a_fair_cell_read_at_the_30_deg_rates_says_so_with_a_mark(dry_run, tmp_path):
    """While a rotation's own best-rate runs are missing, its fair cell reads the runs at the 30 deg
    sweep's rates (so the table is never empty) and carries the mark 'rates' whose footnote names
    them; once the own runs exist the mark is gone."""
    import dataclasses
    import shutil
    from fbctrl.experiments import verdicts as V

    res = tmp_path / "res"
    shutil.copytree(dry_run.results_dir, res)
    cfg = dataclasses.replace(dry_run, results_dir=str(res))
    claim = next(c for c in V.CLAIMS if c.key == "final_loss_rflo_40")
    (cell,) = V.verdict_table(cfg, (claim,), ("fair",), marks=True)
    assert "rates" not in [m.kind for m in cell.marks] and "best rate of the 40 deg sweep" in cell.definition
    shutil.rmtree(res / "adapt" / "best+own-rotation")
    (cell,) = V.verdict_table(cfg, (claim,), ("fair",), marks=True)
    assert cell.effect.n == len(cfg.fb_seeds) and V.OWN_RATES_MISSING in cell.definition
    mark = next(m for m in cell.marks if m.kind == "rates")
    assert mark.symbol == V.MARKS["rates"][0] and "30 deg sweep" in mark.note
    (pub,) = V.verdict_table(cfg, (claim,), ("as published",), marks=True)
    assert "rates" not in [m.kind for m in pub.marks]


def test_a_run_at_its_own_rotations_rate_equal_to_the_30_deg_rate_is_the_run_already_made(dry_run, tmp_path):
    """Where a rotation's own best rate equals the 30 deg sweep's, the own-rate unit is written from
    the run at the 30 deg rate (same network, rate, rotation, trials, random stream), naming it;
    recomputing it from scratch gives the same records; where the rates differ it is computed."""
    import dataclasses
    import shutil
    from fbctrl.experiments.paper.lockstep import run_lockstep

    res = tmp_path / "res"
    shutil.copytree(dry_run.results_dir, res)
    cfg = dataclasses.replace(dry_run, results_dir=str(res))
    reused, computed = [], []
    for c in CONDITIONS:
        for s in cfg.fb_seeds:
            own = paper.AdaptUnit("fb", s, 40.0, c, Protocol.BEST, cfg.trials, variant=paper.Variant.OWN_BEST)
            src = paper.AdaptUnit("fb", s, 40.0, c, Protocol.BEST, cfg.trials)
            m, ms = unit_meta(own.path(cfg)), unit_meta(src.path(cfg))
            assert (("reused_from" in m) == (m["lr"] == ms["lr"])), (c.name, s)
            (reused if "reused_from" in m else computed).append(own)
            if "reused_from" in m:
                assert m["reused_from"]["path"].endswith(src.path(cfg).name) and m["variant"] == "own-rotation"
                assert m["sweep_sha256"] == paper.sweep_digest(cfg, c, 40.0) and paper.is_done(cfg, own)
                rec, _ = paper.read_unit(own.path(cfg))
                rec_src, _ = paper.read_unit(src.path(cfg))
                assert set(rec) == set(rec_src)
                for k in rec:
                    np.testing.assert_array_equal(rec[k], rec_src[k])
    assert reused, "the tiny sweep's best rates at 40 deg should repeat some at 30 deg"
    # the plan's cost model counts a run that will be taken from another as free
    from fbctrl.experiments.paper.costs import Costs, unit_seconds
    costs = Costs(1.0, {"rflo": 1.0, "bptt": 1.0}, "test")
    assert all(unit_seconds(cfg, costs, u) == 0.0 for u in reused)
    assert all(unit_seconds(cfg, costs, u) == cfg.trials for u in computed)
    # the same experiment: computed from scratch (its source gone) it gives the same records
    u = reused[0]
    before, _ = paper.read_unit(u.path(cfg))
    src = paper.AdaptUnit(u.kind, u.seed, u.rotation_deg, u.condition, Protocol.BEST, u.trials)
    src.path(cfg).unlink()
    u.path(cfg).unlink()
    run_lockstep(cfg, [u], progress=False)
    after, meta = paper.read_unit(u.path(cfg))
    assert "reused_from" not in meta
    np.testing.assert_allclose(after["test_loss"], before["test_loss"], rtol=1e-6)
