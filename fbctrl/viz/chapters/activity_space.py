"""Figures of "Finding 1: learning in activity space" (its shipped-network sections).
Colours and line styles: :mod:`fbctrl.viz.style`; bands: ± SEM over network seeds. Each function returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..plots import band, label
from ..style import COLORS, FULL_WIDTH, LS, legend_below
from .common import _quiet, _go_line, _per_seed

__all__ = ["plot_activity_cosines"]


@_quiet
def plot_activity_cosines(t, on: dict, off: dict | None = None, curves: dict | None = None, *,
                          go_s: float | None = None, rotation_deg: float = 30.0, pairing: str = "next"):
    """Figure 2c, extended. (a) cos(u_k, -dL/dr_j), whole-trial loss, j = k+1 (``pairing``
    "next", as published) or k ("same"); (b) the same with the step loss l_j; controller on (solid), controller off (dashed; u = what the controller
    would inject), random feedback weights (grey, dotted). (c) cos(W_fb, W_out^T) over
    pre-training (``curves`` from :func:`fbctrl.book.load_curves`). ``on``/``off``: outputs of
    :func:`fbctrl.network.activity_cosines`; ``t`` the times of steps k = 1..T-1 (s)."""
    ncol = 3 if curves is not None else 2
    fig, axes = plt.subplots(1, ncol, figsize=(FULL_WIDTH, 3.4))
    j = "k+1" if pairing == "next" else "k"
    for ax, key, title, loss in [(axes[0], "cos_trial", "whole-trial loss", "\\mathcal{L}"),
                                 (axes[1], "cos_inst", "step loss", f"\\ell_{{{j}}}")]:
        band(ax, t, _per_seed(on[key]), color=COLORS["fb"], ls=LS["on"], label="controller on")
        if off is not None:
            band(ax, t, _per_seed(off[key]), color=COLORS["fb"], ls=LS["off"], label="controller off")
        band(ax, t, _per_seed(on[key + "_null"]), color=COLORS["grey"], ls=":", label="random $W_{fb}$ (null)")
        ax.axhline(0, color="k", lw=0.5)
        _go_line(ax, go_s)
        ax.set_ylim(-1.05, 1.05)
        label(ax, "time in trial (s)", f"cos($u_k$, $-\\partial {loss} / \\partial r_{{{j}}}$)",
              f"{title}, {rotation_deg:g}°")
    if curves is not None:
        ax = axes[2]
        band(ax, curves["eval_batch"], curves["eval_cos_Wfb_WoutT"], color=COLORS["fb"], label="with feedback")
        ax.axhline(0, color="k", lw=0.5)
        label(ax, "pre-training batch", r"cos($W_{fb}$, $W_{out}^\top$)", r"$W_{fb}$ vs $W_{out}^\top$")
    legend_below(fig)
    return fig
