"""The findings chapters' figures at the paper's scale, drawn from the store's unit files (the
data come from :mod:`fbctrl.book.scale`, which also gives each figure its caption and command).

Every band and error bar here is the 95% Student-t interval of the mean over network seeds
(:func:`fbctrl.experiments.stats.mean_ci`, the interval the verdicts use): of the geometric mean
for losses, Jacobian norms and efficiencies (log scale), of the mean for cosines. Colours and
line styles: :mod:`fbctrl.viz.style`. Each function returns the figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..experiments.stats import mean_ci
from .chapters.common import _log_plain, _quiet
from .plots import label
from .style import (COLORS, COND_COLORS, COND_LS, COND_MARKERS, CONDITIONS, CONTROLLER_LS, FULL_WIDTH, NULL_LS,
                    REFERENCE, legend_below, marker_face)

__all__ = ["ci_band", "plot_activity_scale", "plot_learning_scale", "plot_jacobian_scale", "plot_alignment_scale",
           "plot_efficiency_scale", "plot_newton_scale", "EFFICIENCY_TITLES"]


def ci_band(ax, x, Y, *, log: bool = False, label_text: str | None = None, color=None, ls: str = "-",
            alpha: float = 0.18, marker=None, mfc=None):
    """Mean over the first axis of ``Y`` [S, N] (geometric if ``log``) and its 95% t interval as a
    band; the label ends with n, the number of seeds."""
    Y = np.asarray(Y, dtype=np.float64)
    m, lo, hi = mean_ci(Y, log=log)
    lab = None if label_text is None else f"{label_text} (n={Y.shape[0]})"
    (line,) = ax.plot(x, m, color=color, ls=ls, label=lab, marker=marker, mfc=mfc, ms=4)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(np.asarray(x)[ok], lo[ok], hi[ok], color=line.get_color(), alpha=alpha, lw=0)
    return line


def _go(ax, go_s):
    if go_s is not None:
        ax.axvline(go_s, color=REFERENCE, lw=0.8, ls=":")


@_quiet
def plot_activity_scale(d: dict):
    """Figure 2c at scale: cos(u_k, -dL/dr_j) (left) and cos(u_k, -dl_j/dr_j) (right) over the
    first rotated trial, controller on (solid) and off (dashed), random W_fb (grey, dotted).
    ``d``: :func:`fbctrl.book.scale.activity_data`."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.5), sharey=True)
    j = "k+1" if d["pairing"] == "next" else "k"
    for ax, key, loss, title in ((axes[0], "trial", "\\mathcal{L}", "whole-trial loss"),
                                 (axes[1], "inst", f"\\ell_{{{j}}}", "step loss")):
        ci_band(ax, d["t"], d[f"{key}_on"], color=COLORS["fb"], ls=CONTROLLER_LS["on"], label_text="controller on")
        ci_band(ax, d["t"], d[f"{key}_off"], color=COLORS["fb"], ls=CONTROLLER_LS["off"],
                label_text="controller off")
        ci_band(ax, d["t"], d[f"{key}_null"], color=REFERENCE, ls=NULL_LS, label_text="random $W_{fb}$ (null)")
        ax.axhline(0, color="k", lw=0.5)
        _go(ax, d["go_s"])
        ax.set_ylim(-1.05, 1.05)
        label(ax, "time in trial (s)", f"cos($u_k$, $-\\partial {loss} / \\partial r_{{{j}}}$)" if ax is axes[0]
              else None, f"{title}, {d['rotation']:g}°")
        ax.yaxis.set_tick_params(labelleft=True)
    legend_below(fig, ncol=3)
    return fig


@_quiet
def plot_learning_scale(d: dict):
    """Figure 3a at scale: (a) RFLO+c's training loss (controller on) and its test loss (8 rotated
    targets, controller off, grey) per trial; (b) the test loss of every condition.
    ``d``: :func:`fbctrl.book.scale.learning_data`."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.8), sharey=True)
    first = d["first"]
    if first is not None:
        tr, te = d["train"], d["test"][first]
        x = np.arange(1, tr.shape[1] + 1)
        ci_band(axes[0], x, tr, log=True, color=COND_COLORS[first], label_text=f"{first}: training loss")
        ci_band(axes[0], x, te, log=True, color=REFERENCE, label_text=f"{first}: test, controller off")
    label(axes[0], "trial", "loss (mean $e^2$, a.u.$^2$)", f"{first or 'no run'}, {d['rotation']:g}°")
    for cond in [c for c in CONDITIONS if c in d["test"]]:
        Y = d["test"][cond]
        ci_band(axes[1], np.arange(1, Y.shape[1] + 1), Y, log=True, color=COND_COLORS[cond], ls=COND_LS[cond],
                label_text=cond)
    label(axes[1], "trial", None, "test loss, controller off")
    for ax in axes:
        if ax.lines:
            _log_plain(ax)
    legend_below(fig, ncol=2)
    return fig


@_quiet
def plot_jacobian_scale(d: dict):
    """Figure 4a at scale. (a) The spectral norm of dx_{k+L}/dx_k over the trial, open loop with the
    controller on (solid) and off (dashed), and through the closed loop (orange). (b) The ratio
    controller on / off of the norm over the movement against the lag L, for the activity and the
    rate Jacobian, open and closed loop, with the claim's negligible band (grey) and no effect (1).
    ``d``: :func:`fbctrl.book.scale.jacobian_data`."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.8), gridspec_kw={"width_ratios": (1.15, 1)})
    L = d["lag"]
    ci_band(ax, d["t"], d["on"], log=True, color=COLORS["fb"], ls=CONTROLLER_LS["on"],
            label_text="controller on, open loop")
    ci_band(ax, d["t"], d["off"], log=True, color=COLORS["fb"], ls=CONTROLLER_LS["off"],
            label_text="controller off")
    ci_band(ax, d["t"], d["loop"], log=True, color=COLORS["push"], label_text="controller on, closed loop")
    _go(ax, d["go_s"])
    if L > 1:
        _log_plain(ax)
    label(ax, "time in trial (s)", f"$\\|\\partial x_{{k+{L}}} / \\partial x_k\\|_2$",
          f"(a) lag {L} ({L * 10} ms), {d['rotation']:g}°, first trial")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    lags = np.asarray(d.get("lags", []))
    styles = {"activity, open loop": (COLORS["fb"], "-", "o"), "activity, closed loop": (COLORS["push"], "-", "s"),
              "rates, open loop": (COLORS["fb"], "--", "^"), "rates, closed loop": (COLORS["push"], "--", "v")}
    lo, hi = d.get("band", (0.95, 1.05))
    bx.axhspan(lo, hi, color=REFERENCE, alpha=0.18, lw=0, label="negligible band")
    bx.axhline(1.0, color="k", lw=0.5)
    for kind, R in d.get("ratios", {}).items():
        col, ls, mk = styles[kind]
        ci_band(bx, lags, R, log=True, color=col, ls=ls, marker=mk, mfc="white" if ls == "--" else None,
                label_text=kind)
    bx.set_xticks(lags if lags.size else [1])
    label(bx, "lag L (steps of 10 ms)", "norm ratio, controller on / off", "(b) over the movement")
    bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    return fig


@_quiet
def plot_alignment_scale(d: dict):
    """Figures 4b (local) or 4c (global) at scale: (a) alignment of RFLO+c's and RFLO's updates
    with the exact gradient along each run (every aligned trial); (b) at matched states: from the
    RFLO+c run's weights at a few trials, the same trials with the controller on and off.
    ``d``: :func:`fbctrl.book.scale.alignment_data`."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.7), sharey=True)
    for cond, (trials, Y) in d["along"].items():
        ci_band(axes[0], trials + 1, Y, color=COND_COLORS[cond], ls=COND_LS[cond], label_text=cond,
                marker=COND_MARKERS[cond], mfc=marker_face(cond))
    label(axes[0], "trial", "cos with exact gradient", "along each run")
    if d["matched"] is not None:
        pts, on, off = d["matched"]
        for Y, ls, name, mfc in ((on, CONTROLLER_LS["on"], "same weights, controller on", COLORS["fb"]),
                                 (off, CONTROLLER_LS["off"], "same weights, controller off", "white")):
            ci_band(axes[1], pts, Y, color=COLORS["fb"], ls=ls, label_text=name, marker="o", mfc=mfc)
    label(axes[1], "weights of trial", None, "at matched states")
    for ax in axes:
        ax.axhline(0, color="k", lw=0.5)
        ax.yaxis.set_tick_params(labelleft=True)
    fig.suptitle(f"{d['which']} alignment, {d['rotation']:g}° rotation")
    legend_below(fig, ncol=2)
    return fig


EFFICIENCY_TITLES = {"published": "published (rate × ratio)", "per_trial": "per trial, scale-free",
                     "whole_run": "whole run", "equal_path": "whole run, equal path"}


@_quiet
def plot_efficiency_scale(d: dict):
    """Figure 5a at scale, one panel per definition of efficiency: per condition against the
    rotation, geometric mean and 95% interval over networks, single networks as dots.
    ``d``: :func:`fbctrl.book.scale.efficiency_data`."""
    defs = list(d["eff"])
    fig, axes = plt.subplots(2, 2, figsize=(FULL_WIDTH, 5.6), squeeze=False)
    rots = d["rotations"]
    width = 1.1
    for ax, definition in zip(axes.flat, defs):
        conds = [c for c in CONDITIONS if c in d["eff"][definition]]
        for j, cond in enumerate(conds):
            vals = d["eff"][definition][cond]
            xs = [r for r in rots if r in vals]
            off = (j - (len(conds) - 1) / 2) * width
            _ci_points(ax, np.asarray(xs) + off, [vals[r] for r in xs], cond)
        _log_plain(ax)
        ax.set_xticks(rots)
        ax.set_xticklabels([f"{r:g}°" for r in rots])
        label(ax, "rotation", "efficiency" if ax in axes[:, 0] else None, EFFICIENCY_TITLES.get(definition, definition))
    for ax in axes.flat[len(defs):]:
        ax.set_visible(False)
    legend_below(fig)
    return fig


def _ci_points(ax, xs, per_x_values, cond):
    """Geometric mean and 95% interval at each x, single networks as dots, in the condition's style."""
    col = COND_COLORS[cond]
    ms, lo, hi = [], [], []
    n = 0
    for x, v in zip(xs, per_x_values):
        v = np.asarray(v, dtype=np.float64)
        m, a, b = mean_ci(v[:, None], log=True)
        ms.append(m[0])
        lo.append(m[0] - a[0] if np.isfinite(a[0]) else 0.0)
        hi.append(b[0] - m[0] if np.isfinite(b[0]) else 0.0)
        n = max(n, int(np.isfinite(v).sum()))
        ax.plot(np.full(v.shape, x), v, ".", color=col, ms=2.5, alpha=0.5)
    ax.errorbar(xs, ms, yerr=[lo, hi], color=col, ls=COND_LS[cond], marker=COND_MARKERS[cond], mfc=marker_face(cond),
                ms=5, capsize=2.5, lw=1.1, label=f"{cond} (n={n})")


@_quiet
def plot_newton_scale(d: dict):
    """Figure 5b at scale: cos(u_k, Newton direction in activity space) over the trial (blue)
    and cos(u_k, -gradient) (grey). ``d``: :func:`fbctrl.book.scale.newton_data`."""
    fig, ax = plt.subplots(figsize=(0.75 * FULL_WIDTH, 3.8))
    ci_band(ax, d["t"], d["newton"], color=COLORS["fb"], label_text=r"Newton: $-(H + \lambda I)^{-1} g$")
    ci_band(ax, d["t"], d["first"], color=REFERENCE, ls=NULL_LS, label_text="first order: $-g$")
    ax.axhline(0, color="k", lw=0.5)
    _go(ax, d["go_s"])
    ax.set_ylim(-1.05, 1.05)
    j = "k+1" if d["pairing"] == "next" else "k"
    label(ax, "time in trial (s)", f"cos($u_k$, direction at $r_{{{j}}}$)", f"{d['rotation']:g}°, first trial")
    legend_below(fig, ncol=1)
    return fig
