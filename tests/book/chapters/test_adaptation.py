"""The adaptation chapter (fbctrl.book.chapters.adaptation) on tiny networks: it glues every key its
markdown cites, with the result files there and without them (a rotation computed live), and its
tables and figure inputs build."""

from __future__ import annotations

from fbctrl.book.chapters import adaptation
from fbctrl.viz import figures
from tests.helpers import cited_by_module


def test_adaptation_glues_every_cited_key(store, glued):
    ch = adaptation.load(store.params("adaptation", explore_trials=2))
    adaptation.glue_results(ch)
    adaptation.glue_nofb(ch)
    assert adaptation.glue_convention(ch) is not None  # the store holds exact-BPTT runs (seed 0)
    assert cited_by_module("adaptation") <= set(glued)
    assert glued["n_seeds"] == "2" and glued["n_trials"] == str(store.trials) and glued["conv_text"].startswith("after 3 trials at 30° (seeds 0)")
    assert "condition" in adaptation.rotations_table(ch).data
    state, example = adaptation.explorer_state(ch)
    assert example == 0 and state.trials == 2
    figures.plot_adaptation_curves(ch.ad, ch.init)
    figures.plot_rotations(ch.cmp_sets, ch.inits, live=ch.live)
    figures.plot_nofb(ch.ad_nofb, ch.ad, ch.init_nofb, ch.init)


def test_adaptation_computes_a_rotation_without_files(store, glued, tmp_path):
    ch = adaptation.load(store.params("adaptation", results_dir=tmp_path, rotation_deg=45.0, seeds=[0], trials=2, rules=["rflo"]))
    adaptation.glue_results(ch)
    assert ch.ad.source == "live" and ch.live == {45.0}
    assert glued["bptt_ratio"] == "n/a" and glued["verdict_rflo"] == "inconclusive (1 seed)"
    # the per-condition keys of conditions not run (here BPTT) are not glued, as before the chapter module
    assert {k for k in cited_by_module("adaptation") if "bptt" not in k} - {
        "nofb_text", "conv_text", "conv_rot", "conv_trials", "conv_seeds"} <= set(glued)
