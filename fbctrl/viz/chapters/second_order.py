"""Figures of "Finding 3: efficient, second-order updates" (its shipped-network sections).
Colours and line styles: :mod:`fbctrl.viz.style`; bands: ± SEM over network seeds. Each function returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...experiments.metrics import cumulative_efficiency, efficiency
from ...fmt import mean_sem
from ..plots import band, label
from ..style import COLORS, COND_COLORS, COND_LS, FULL_WIDTH, LS, legend_below, marker_face
from .common import _quiet, _go_line, _per_seed, _points, matplotlib_null, matplotlib_rgb

__all__ = ["plot_efficiency", "plot_activity_newton", "plot_wrec_newton"]


@_quiet
def plot_efficiency(sets: dict, rotation_deg: float, drops: dict | None = None, run=None):
    """Figure 5a, extended. (a) efficiency ratio |W_end - W_start| / sum_t |dW_t| per condition
    vs rotation (mean ± SEM, seeds as dots); (b) the ratio of the first t trials at
    ``rotation_deg`` (``run``: the AdaptSet to draw there, default ``sets[rotation_deg]``); (c)
    test-loss reduction per unit weight-path length at ``rotation_deg`` (``drops``: {cond:
    loss_drop_per_path(...)})."""

    rots = sorted(sets)
    ncol = 3 if drops else 2
    fig, axes = plt.subplots(1, ncol, figsize=(FULL_WIDTH, 3.6))
    conds = [c for c in ("RFLO+c", "RFLO", "BPTT+c", "BPTT") if any(c in s.results for s in sets.values())]
    width = 1.2 if len(rots) > 1 else 0.06
    for j, cond in enumerate(conds):
        xs = [r for r in rots if cond in sets[r].results]
        _points(axes[0], xs, [efficiency(sets[r][cond], "whole_run") for r in xs], cond,
                offset=(j - (len(conds) - 1) / 2) * width, label_text=cond)
    axes[0].set_xticks(rots)
    axes[0].set_xticklabels([f"{r:g}°" for r in rots])
    axes[0].set_ylim(0, None)
    label(axes[0], "rotation", r"$\|W_{end} - W_{start}\| \,/\, \sum_t \|\Delta W_t\|$", "efficiency ratio")
    legend_below(fig)
    ad = run if run is not None else sets[rotation_deg]
    for cond in ad.conditions:
        ce = cumulative_efficiency(ad[cond])
        band(axes[1], np.arange(1, ce.shape[1] + 1), ce, color=COND_COLORS[cond], ls=COND_LS[cond], label=cond)
    axes[1].set_xscale("log")
    axes[1].set_ylim(0, 1.02)
    label(axes[1], "trials so far", "efficiency ratio", f"over the run, {rotation_deg:g}°")
    if drops:
        ax = axes[2]
        for i, cond in enumerate([c for c in conds if c in drops]):
            v = drops[cond]["per_path"]
            m, s = mean_sem(v)
            ax.bar(i, m, yerr=s, color=marker_face(cond), edgecolor=COND_COLORS[cond], lw=1.2, capsize=3,
                   hatch=None if cond.endswith("+c") else "///")
            ax.plot(np.full(len(v), i), v, ".", color="k", ms=3)
        ax.set_xticks(range(len([c for c in conds if c in drops])))
        ax.set_xticklabels([c for c in conds if c in drops], rotation=45)
        ax.axhline(0, color="k", lw=0.5)
        label(ax, None, r"$\Delta$ test loss / $\sum_t \|\Delta W_t\|$", f"loss drop per path, {rotation_deg:g}°")
    return fig


@_quiet
def plot_activity_newton(res: dict, dt: float = 0.01, *, go_s: float | None = None, rotation_deg: float = 30.0):
    """Figure 5b: cos(u_k, Newton direction in activity space) over the trial (blue) with the
    first-order cos(u_k, -dL/dr_k) in grey; ``res`` from
    :func:`fbctrl.network.activity_newton_cosines`."""
    fig, ax = plt.subplots(figsize=(0.7 * FULL_WIDTH, 3.6))
    t = res["steps"] * dt
    band(ax, t, _per_seed(res["cos_newton"]), color=COLORS["fb"], label=r"Newton: $-(H + \lambda I)^{-1} g$")
    band(ax, t, _per_seed(res["cos_first_order"]), color=COLORS["grey"], label="first order: $-g$")
    ax.axhline(0, color="k", lw=0.5)
    _go_line(ax, go_s)
    ax.set_ylim(-1.05, 1.05)
    label(ax, "time in trial (s)", r"cos($u_k$, direction)", f"control vs activity-space steps, {rotation_deg:g}°",
          legend=True, ncol=2)
    return fig


@_quiet
def plot_wrec_newton(rows: list[dict]):
    """RFLO and the W_rec Newton step (:func:`fbctrl.network.wrec_newton_table`): cosine of
    RFLO's update with the damped Newton step after k MINRES iterations (left) and of the
    gradient with it (right), one line per time step analysed (mean over targets), controller on
    (solid) and off (dashed); grey: cos(RFLO, -g) (dotted) and cos(RFLO, Gauss-Newton)
    (dash-dotted) for reference, mean over rows."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 4.2))
    steps = sorted({r["step"] for r in rows})
    shades = np.linspace(1.0, 0.45, max(len(steps), 1))
    for on in (True, False):
        sel = [r for r in rows if r["controller_on"] == on]
        if not sel:
            continue
        for st, sh in zip(steps, shades):
            rs = [r for r in sel if r["step"] == st]
            if not rs:
                continue
            its = rs[0]["iters"]
            col = tuple(np.asarray(matplotlib_rgb(COLORS["fb"])) * sh + (1 - sh))
            for ax, key in ((axes[0], "cos_rflo_newton"), (axes[1], "cos_grad_newton")):
                ax.plot(its, np.mean([r[key] for r in rs], axis=0), color=col, ls=LS["on" if on else "off"],
                        marker="o", ms=3, label=f"t = {st} ({'on' if on else 'off'})")
        axes[0].axhline(np.mean([r["cos_rflo_grad"] for r in sel]), color=COLORS["grey"], ls=":", lw=1,
                        label="cos(RFLO, $-g$)" if on else None)
        axes[0].axhline(np.mean([r["cos_rflo_gn"] for r in sel]), color=COLORS["grey"], ls="-.", lw=1,
                        label="cos(RFLO, Gauss-Newton)" if on else None)
    its = sorted({i for r in rows for i in r["iters"]})
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(its)
        ax.set_xticklabels([str(i) for i in its])
        ax.xaxis.set_minor_formatter(matplotlib_null())
        ax.axhline(0, color="k", lw=0.5)
    label(axes[0], "MINRES iterations", "cos(RFLO update, Newton step)", "RFLO vs Newton for $W_{rec}$")
    label(axes[1], "MINRES iterations", "cos($-g$, Newton step)", "gradient vs Newton for $W_{rec}$")
    legend_below(fig, ncol=3)
    return fig
