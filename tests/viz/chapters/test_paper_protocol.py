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


def test_figure8_heatmaps_fit_the_column_in_nine_point_text_and_mark_best_and_diverged():
    """Figure 8 at four rotations and four conditions: drawn at the content column's width (680 px)
    with every text at least 9 pt, one panel a condition, a star per rotation at its best rate and a
    cross per diverged cell, at the right (row, column)."""
    import matplotlib
    from fbctrl.viz import style
    style.use_style()
    rots = [30.0, 40.0, 50.0, 60.0]
    rates = [1.5e-6, 5e-6, 1.5e-5, 5e-5, 1.5e-4, 5e-4, 1.5e-3]
    rng = np.random.default_rng(0)
    conds = {}
    for c in figures.CONDITION_ORDER:
        F = np.exp(rng.normal(-4, 1, (4, 7)))
        D = np.zeros((4, 7), dtype=bool)
        D[:, 6] = True
        F[3, 0] = np.nan                                   # not run yet: grey
        conds[c] = {"rates": rates, "final": F, "diverged": D, "best": [rates[2], rates[3], None, rates[4]]}
    fig = figures.plot_sweep_heatmaps({"rotations": rots, "conditions": conds})
    fig.canvas.draw()
    assert fig.get_size_inches()[0] * fig.dpi <= style.FULL_WIDTH * style.DPI + 1e-9
    small = [t.get_text() for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() < style.FONT_PT]
    assert not small
    panels = [ax for ax in fig.axes if ax.get_title() in figures.CONDITION_ORDER]
    assert [ax.get_title() for ax in panels] == list(figures.CONDITION_ORDER)
    for ax in panels:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["30°", "40°", "50°", "60°"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1.5e-6", "5e-6", "1.5e-5", "5e-5", "1.5e-4",
                                                                "5e-4", "1.5e-3"]
        stars = [tuple(np.ravel(l.get_xydata())) for l in ax.lines if l.get_marker() == "*"]
        crosses = sorted(tuple(np.ravel(l.get_xydata())) for l in ax.lines if l.get_marker() == "x")
        assert stars == [(2.0, 0.0), (3.0, 1.0), (4.0, 3.0)]
        assert crosses == [(6.0, float(i)) for i in range(4)]
    plt.close(fig)
