"""The paper-protocol chapter's figures (fbctrl.viz.chapters.paper_protocol)."""

import matplotlib.pyplot as plt
import numpy as np

from fbctrl.viz.chapters import paper_protocol as figures


def test_sweep_figure_range_covers_every_network_and_keeps_its_tick_labels():
    """An interval over two surviving networks spans many decades; the panel's range is set by the
    single networks (all inside it, diverged ones left out) and its log axis keeps labelled ticks."""
    rates = np.array([1e-5, 1e-4, 1e-3])
    final = np.array([[0.01, 0.012, 0.011], [0.002, 0.003, 0.0025], [5.0, 3.0e4, np.nan]])
    div = np.isnan(final)
    tables = {"BPTT+c": {"rates": rates, "final": final, "diverged": div, "complete": True}}
    fig = figures.plot_paper_sweep(tables, {"BPTT+c": {"lr": 1e-4, "bracketed": True}})
    ax = fig.axes[0]
    fig.canvas.draw()
    lo, hi = ax.get_ylim()
    ok = final[np.isfinite(final)]
    assert lo < ok.min() and ok.max() < hi < 1e6
    labels = [t.get_text() for t in ax.get_yticklabels() if lo <= t.get_position()[1] <= hi]
    assert len([x for x in labels if x]) >= 3 and ax.get_legend() is not None
    plt.close(fig)
