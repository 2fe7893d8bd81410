"""Figures of "Learning rates" (its shipped-network sections).
Colours and line styles: :mod:`fbctrl.viz.style`; bands: ± SEM over network seeds. Each function returns the figure."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from ...fmt import mean_sem
from ..plots import band, label
from ..style import COND_COLORS, COND_LS, FULL_WIDTH
from .common import _quiet, _int_ticks, _rate_label, _log_plain

__all__ = ["plot_sweep", "plot_best_vs_paper"]


@_quiet
def plot_sweep(sw, best: dict):
    """Figure 8: final test loss (controller off, mean over seeds) for every condition (panels)
    x learning rate (rows) x rotation (columns), log colour scale shared by all panels; diverged
    cells (any seed) crossed out, the paper's rate boxed, the best rate starred."""

    conds = sw.conditions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means = {c: np.nanmean(sw.final[c], axis=2) for c in conds}
    vals = np.concatenate([m[np.isfinite(m)].ravel() for m in means.values()] + [np.array([])])
    norm = LogNorm(vmin=float(vals.min()), vmax=float(vals.max())) if vals.size else None
    nrot = len(sw.rotations)
    ncol = 2 if len(conds) > 2 else len(conds)
    fig, axes = plt.subplots(-(-len(conds) // ncol), ncol, figsize=(FULL_WIDTH, 2.6 * -(-len(conds) // ncol) + 0.4),
                             squeeze=False)
    for ax in axes.flat[len(conds):]:
        ax.set_visible(False)
    axes = axes.flat[:len(conds)]
    im = None
    for ax, cond in zip(axes, conds):
        m = means[cond]
        div = sw.diverged[cond].any(axis=2)
        im = ax.imshow(np.where(div, np.nan, m), norm=norm, cmap="viridis", aspect="auto", origin="lower")
        rates = sw.rule_rates(cond)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if div[i, j]:
                    ax.text(j, i, "×\ndiverged", ha="center", va="center", color="#b00000")
                elif np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2g}", ha="center", va="center",
                            color="white" if norm is not None and norm(m[i, j]) < 0.55 else "black")
        b = best[cond]
        for j, bi in enumerate(b["best"]):
            if bi >= 0:
                ax.plot(j + 0.36, bi + 0.3, "*", color="#f2c14e", ms=8, mec="k", mew=0.4)
        if b["paper"] is not None:
            for j in range(m.shape[1]):
                ax.add_patch(plt.Rectangle((j - 0.5, b["paper"] - 0.5), 1, 1, fill=False, ec="#d62728", lw=1.6))
        ax.set_yticks(range(len(rates)))
        ax.set_yticklabels([_rate_label(r) for r in rates])
        ax.set_xticks(range(nrot))
        ax.set_xticklabels([f"{r:g}°" for r in sw.rotations])
        label(ax, "rotation", "learning rate", cond)
    if im is not None and norm is not None:
        fig.colorbar(im, ax=list(axes), label="final test loss (mean $e^2$, a.u.$^2$)", shrink=0.9)
    return fig


@_quiet
def plot_best_vs_paper(sw, best: dict, rotation_deg: float):
    """Each condition at the paper's learning rate (open) and at its best rate in the sweep
    (filled): (a) final test loss, mean ± SEM over seeds (dots: seeds); (b) test-loss curves at the
    best rates."""
    j = next(i for i, r in enumerate(sw.rotations) if abs(r - rotation_deg) < 1e-9)
    conds = sw.conditions
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.8))
    ax = axes[0]
    for i, cond in enumerate(conds):
        b = best[cond]
        col = COND_COLORS[cond]
        for dx, idx, filled, name in ((-0.17, b["paper"], False, "paper's rate"), (0.17, b["best"][j], True, "best rate")):
            if idx is None or idx < 0:
                continue
            v = sw.final[cond][idx, j]
            m, s = mean_sem(v)
            ax.errorbar([i + dx], [m], yerr=[s], color=col, marker="o", mfc=col if filled else "white", ms=6,
                        capsize=2.5, ls="none", label=name if i == 0 else None)
            ax.plot(np.full(v.shape, i + dx), v, ".", color=col, ms=3, alpha=0.6)
    ax.set_xticks(range(len(conds)))
    ax.set_xticklabels(conds, rotation=45)
    _log_plain(ax)
    label(ax, None, "final test loss (mean $e^2$, a.u.$^2$)", f"paper's vs best rate, {rotation_deg:g}°")
    ax = axes[1]
    for cond in conds:
        bi = best[cond]["best"][j]
        if bi < 0:
            continue
        c = sw.curves[cond][bi, j]
        band(ax, np.arange(1, c.shape[1] + 1), c, color=COND_COLORS[cond], ls=COND_LS[cond],
             label=f"{cond} ({_rate_label(sw.rule_rates(cond)[bi])})")
    _log_plain(ax)
    label(ax, "trial", "test loss (mean $e^2$, a.u.$^2$)", "curves at the best rates", legend=True, ncol=2)
    _int_ticks(ax)
    return fig
