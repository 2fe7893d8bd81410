"""The chapter modules (fbctrl.book.chapters) and the thin notebooks that call them: on tiny
networks each module glues every key its chapter's markdown cites (with the result files there,
and without them), its tables and figure inputs build; and each notebook's code cells stay short,
glue only in hidden cells, and show the calls that make its figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from tests.helpers import ROOT
from fbctrl import book
from fbctrl.book import glue as glue_mod
from fbctrl.book.chapters import activity_space, adaptation, lr_sweep
from fbctrl.core.checkpoint import save_checkpoint
from fbctrl.core.model import NetworkConfig, init_network
from fbctrl.book import data
from fbctrl.experiments import paper, shipped
from fbctrl.viz import figures

torch.set_num_threads(1)
N, TRIALS = 10, 3
SIZES = shipped.ShippedSizes(trials={30.0: TRIALS}, exact_bptt_trials=TRIALS, exact_bptt_seeds=(0,), sweep_trials=TRIALS)
CONF = {"n": N, "batches": 3, "batch_size": 4, "train_push": True, "feedback_density": 1.0, "delay": 0}
THIN = ("adaptation", "lr_sweep", "activity_space", "decoupling", "second_order", "online_correction", "model_and_task",
        "performance")
HIDDEN = {"remove-input", "hide-input", "remove-cell", "hide-cell"}


def _net(seed: int, density: float = 1.0):
    net = init_network(NetworkConfig(n=N, feedback_density=density), torch.Generator().manual_seed(seed))
    return net.replace(W_fb=net.W_fb * 0.05)  # a small feedback gain keeps the untrained loop stable


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    ck, res = tmp_path_factory.mktemp("ck"), tmp_path_factory.mktemp("res")
    for s in (0, 1):
        save_checkpoint(_net(s), ck / f"fb_n{N}_seed{s}.pt", {"seed": s, "config": CONF})
    save_checkpoint(_net(5, density=0.0), ck / f"nofb_n{N}_seed5.pt", {"seed": 5, "config": {**CONF, "feedback_density": 0.0}})
    mp = pytest.MonkeyPatch()
    mp.setattr(data, "SIZES", SIZES)
    cfg = data.store_config(book.validate_params(profile="default", checkpoint_dir=str(ck), results_dir=str(res)))
    # the shipped family's units at 30 degrees and its sweep, through the store's runner
    paper.run_plan(cfg, progress=False, log=lambda *a: None, planner=lambda c: shipped.plan(c, SIZES))
    yield ck, res
    mp.undo()


@pytest.fixture
def glued(monkeypatch):
    keys: dict[str, str] = {}
    monkeypatch.setattr(glue_mod, "glue", lambda name, text, display=False: keys.__setitem__(name, text))
    return keys


def _cells(name: str) -> list[dict]:
    return json.loads((ROOT / "book" / f"{name}.ipynb").read_text())["cells"]


def _cited_by_module(name: str) -> set[str]:
    """Keys the markdown cites, less those the notebook glues itself (its set-up cell) and those
    of another notebook (``other.ipynb::key``)."""
    cells = _cells(name)
    cited = {k for c in cells if c["cell_type"] == "markdown" for k in re.findall(r"\{glue:text\}`([^`]+)`",
                                                                                   "".join(c["source"])) if "::" not in k}
    own = {k for c in cells if c["cell_type"] == "code"
           for k in re.findall(r"glue_\w+\(\"(\w+)\"", "".join(c["source"]))}
    return cited - own


DEFAULTS = {  # the parameters cells of the notebooks
    "adaptation": dict(seeds=None, rotation_deg=30.0, rotations_deg=None, trials=None, rules=["rflo", "bptt"],
                       explore_trials=20),
    "lr_sweep": dict(seeds=None, rotation_deg=30.0, trials=None, rules=["rflo", "bptt"]),
    "activity_space": dict(seeds=None, rotation_deg=30.0),
}


def _P(dirs, chapter, results_dir=None, **kw):
    ck, res = dirs
    extra = {} if chapter == "activity_space" else {"results_dir": str(results_dir or res)}
    return book.validate_params(profile="default", device="cpu", checkpoint_dir=str(ck), **extra,
                                **{**DEFAULTS[chapter], **kw})


def test_adaptation_glues_every_cited_key(dirs, glued):
    ch = adaptation.load(_P(dirs, "adaptation", explore_trials=2))
    adaptation.glue_results(ch)
    adaptation.glue_nofb(ch)
    assert adaptation.glue_convention(ch) is not None  # the store holds exact-BPTT runs (seed 0)
    assert _cited_by_module("adaptation") <= set(glued)
    assert glued["n_seeds"] == "2" and glued["n_trials"] == str(TRIALS) and glued["conv_text"].startswith("after 3 trials at 30° (seeds 0)")
    assert "condition" in adaptation.rotations_table(ch).data
    state, example = adaptation.explorer_state(ch)
    assert example == 0 and state.trials == 2
    figures.plot_adaptation_curves(ch.ad, ch.init)
    figures.plot_rotations(ch.cmp_sets, ch.inits, live=ch.live)
    figures.plot_nofb(ch.ad_nofb, ch.ad, ch.init_nofb, ch.init)


def test_adaptation_computes_a_rotation_without_files(dirs, glued, tmp_path):
    ch = adaptation.load(_P(dirs, "adaptation", results_dir=tmp_path, rotation_deg=45.0, seeds=[0], trials=2, rules=["rflo"]))
    adaptation.glue_results(ch)
    assert ch.ad.source == "live" and ch.live == {45.0}
    assert glued["bptt_ratio"] == "n/a" and glued["verdict_rflo"] == "inconclusive (1 seed)"
    # the per-condition keys of conditions not run (here BPTT) are not glued, as before the chapter module
    assert {k for k in _cited_by_module("adaptation") if "bptt" not in k} - {
        "nofb_text", "conv_text", "conv_rot", "conv_trials", "conv_seeds"} <= set(glued)


def test_lr_sweep_glues_every_cited_key(dirs, glued):
    ch = lr_sweep.load(_P(dirs, "lr_sweep"))
    lr_sweep.glue_results(ch)
    assert _cited_by_module("lr_sweep") <= set(glued)
    assert glued["paper_lr_rflo_c"] and " < " in glued["ranking"]
    assert "best rate" in lr_sweep.rates_table(ch).data
    figures.plot_sweep(ch.sw, ch.best)
    figures.plot_best_vs_paper(ch.sw, ch.best, 30.0)


def test_activity_space_glues_every_cited_key(dirs, glued):
    ch = activity_space.load(_P(dirs, "activity_space"))
    activity_space.glue_results(ch)
    assert _cited_by_module("activity_space") <= set(glued)
    assert glued["n_units"] == str(N) and glued["cos_w_init"] == "n/a"  # no pre-training curves here
    assert "network seed" in activity_space.networks_table(ch).data
    figures.plot_activity_cosines(activity_space.times(ch), ch.on, ch.off, ch.curves, go_s=activity_space.go_s(ch),
                                  rotation_deg=30.0)


@pytest.mark.parametrize("name", THIN)
def test_notebook_cells_are_thin(name):
    code = [c for c in _cells(name) if c["cell_type"] == "code"
            and not {"colab-setup", "parameters", "injected-parameters"} & set(c["metadata"].get("tags", []))]
    for c in code:
        src, tags = "".join(c["source"]), set(c["metadata"].get("tags", []))
        assert len(src.splitlines()) <= 15, f"{name}: a code cell of {len(src.splitlines())} lines"
        if "figure" in c["metadata"].get("mystnb", {}) or re.search(r"\bplot_\w+\(", src):
            assert not tags & HIDDEN, f"{name}: the call that makes a figure is hidden"
        else:
            assert tags & HIDDEN, f"{name}: a cell without a figure is shown: {src[:60]!r}"
        if "glue" in src:
            assert tags & HIDDEN, f"{name}: glue in a visible cell"
