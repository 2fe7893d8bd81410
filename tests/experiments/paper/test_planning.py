"""The plan of the paper's protocol (fbctrl.experiments.paper.planning): the order of its groups,
each rule's best-rate runs waiting for that rule's sweep only, and runs waiting for a network that
is not pre-trained yet."""

import dataclasses

from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol
from tests.helpers import fake_sweep

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


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
        fake_sweep(cfg, c, [3.0, 1.0, 2.0])             # complete and bracketed: no extension
    state = {g.title: g.blocked for g in paper.plan(cfg)}
    assert state[titles[pos("30 deg, RFLO and RFLO+c at their best swept rate")]] != "waits for the sweep"
    assert state[titles[pos("30 deg, BPTT and BPTT+c at their best swept rate")]] == "waits for the sweep"
    assert state[titles[pos("40 deg, RFLO and RFLO+c at their best rate")]] != "waits for the sweep"
    assert state[titles[pos("40 deg, BPTT and BPTT+c at their best rate")]] == "waits for the sweep"


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
