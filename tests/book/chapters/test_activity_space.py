"""The activity-space chapter (fbctrl.book.chapters.activity_space) on tiny networks: it glues every
key its markdown cites, and its table and figure inputs build."""

from __future__ import annotations

from fbctrl.book.chapters import activity_space
from fbctrl.viz import figures
from tests.helpers import cited_by_module


def test_activity_space_glues_every_cited_key(store, glued):
    ch = activity_space.load(store.params("activity_space"))
    activity_space.glue_results(ch)
    assert cited_by_module("activity_space") <= set(glued)
    assert glued["n_units"] == str(store.n) and glued["cos_w_init"] == "n/a"  # no pre-training curves here
    assert "network seed" in activity_space.networks_table(ch).data
    figures.plot_activity_cosines(activity_space.times(ch), ch.on, ch.off, ch.curves, go_s=activity_space.go_s(ch),
                                  rotation_deg=30.0)
