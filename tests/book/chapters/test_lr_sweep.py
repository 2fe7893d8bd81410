"""The learning-rate sweep chapter (fbctrl.book.chapters.lr_sweep) on tiny networks: it glues every
key its markdown cites, and its table and figure inputs build."""

from __future__ import annotations

from fbctrl.book.chapters import lr_sweep
from fbctrl.viz import figures
from tests.helpers import cited_by_module


def test_lr_sweep_glues_every_cited_key(store, glued):
    ch = lr_sweep.load(store.params("lr_sweep"))
    lr_sweep.glue_results(ch)
    assert cited_by_module("lr_sweep") <= set(glued)
    assert glued["paper_lr_rflo_c"] and " < " in glued["ranking"]
    assert "best rate" in lr_sweep.rates_table(ch).data
    figures.plot_sweep(ch.sw, ch.best)
    figures.plot_best_vs_paper(ch.sw, ch.best, 30.0)
