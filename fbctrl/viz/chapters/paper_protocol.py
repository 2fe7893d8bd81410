"""Figures of the chapter "The paper's protocol": the paper's Figure 3b at its own scale, and the
verdict table as a forest plot. Colours and line styles of :mod:`fbctrl.viz.style` (RFLO teal, BPTT
purple; controller on during adaptation solid and filled, off dashed and open), but every band and
error bar here is the 95% Student-t interval of the mean over network seeds, the interval the
verdicts use (``fbctrl.experiments.stats``), not ± SEM.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
import numpy as np

from ...experiments.stats import mean_ci
from ..plots import label
from ..style import (COLORS, COND_COLORS, COND_LS, COND_MARKERS, FONT_PT, FULL_WIDTH, legend_below, legend_right,
                     marker_face)
from .common import _log_plain, _quiet

__all__ = ["plot_paper_adaptation", "plot_verdict_forest", "plot_paper_sweep", "plot_sweep_heatmaps"]

CONDITION_ORDER = ("RFLO+c", "RFLO", "BPTT+c", "BPTT")


@_quiet
def plot_paper_adaptation(curves: dict, finals: dict, *, rotation_deg: float = 30.0, initial: dict | None = None):
    """The paper's Figure 3b at its scale. (a) Test loss (controller off, 8 rotated targets) over the
    trials of adaptation to a ``rotation_deg`` rotation, per condition: geometric mean over network
    seeds with its 95% interval. (b) Final test loss against the rotation, per condition: geometric
    mean and 95% interval, single seeds as dots.

    ``curves``: {condition: [seeds, trials]}; ``finals``: {condition: {rotation: per-seed values}};
    ``initial``: {rotation: per-seed loss before adaptation} (grey)."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.8))
    ax = axes[0]
    for cond in [c for c in CONDITION_ORDER if c in curves]:
        Y = np.asarray(curves[cond], dtype=np.float64)
        x = np.arange(1, Y.shape[1] + 1)
        m, lo, hi = mean_ci(Y, log=True)
        col = COND_COLORS[cond]
        ax.plot(x, m, color=col, ls=COND_LS[cond], lw=1.2, label=f"{cond} (n={Y.shape[0]})")
        ax.fill_between(x, lo, hi, color=col, alpha=0.18, lw=0)
    _log_plain(ax)
    label(ax, "trial", "test loss (mean $e^2$, a.u.$^2$)", f"{rotation_deg:g}° rotation, as published")

    ax = axes[1]
    rots = sorted({r for d in finals.values() for r in d})
    conds = [c for c in CONDITION_ORDER if c in finals]
    width = 1.3
    if initial:
        for i, r in enumerate(rots):
            if r in initial and len(initial[r]):
                m, lo, hi = mean_ci(np.asarray(initial[r])[:, None], log=True)
                ax.errorbar([r], m, yerr=[m - lo, hi - m], color=COLORS["grey"], marker="_", ms=14, mew=2,
                            ls="none", label="before adaptation" if i == 0 else None)
    for j, cond in enumerate(conds):
        xs = [r for r in rots if r in finals[cond]]
        off = (j - (len(conds) - 1) / 2) * width
        col = COND_COLORS[cond]
        ms, los, his = [], [], []
        for r in xs:
            v = np.asarray(finals[cond][r], dtype=np.float64)
            m, lo, hi = mean_ci(v[:, None], log=True)
            ms.append(float(m[0]))
            los.append(float(m[0] - lo[0]) if np.isfinite(lo[0]) else 0.0)
            his.append(float(hi[0] - m[0]) if np.isfinite(hi[0]) else 0.0)
            ax.plot(np.full(v.shape, r + off), v, ".", color=col, ms=2.5, alpha=0.6)
        n = max((len(finals[cond][r]) for r in xs), default=0)
        ax.errorbar(np.asarray(xs) + off, ms, yerr=[los, his], color=col, ls=COND_LS[cond],
                    marker=COND_MARKERS[cond], mfc=marker_face(cond), ms=5, capsize=2.5, lw=1.1,
                    label=f"{cond} (n={n})" if n == min(len(finals[cond][r]) for r in xs) else f"{cond} (n≤{n})")
    _log_plain(ax)
    ax.set_xticks(rots)
    ax.set_xticklabels([f"{r:g}°" for r in rots])
    label(ax, "rotation", "final test loss (a.u.$^2$)", "final loss (last 10 trials)")
    legend_below(fig)
    return fig


@_quiet
def plot_verdict_forest(results, claims):
    """The verdict table as a forest plot: per claim and column, the mean paired effect and its 95%
    interval over network seeds (single seeds as ticks), oriented so that the paper's side is to
    the right: a ratio is drawn as ratio^s and a difference as s * difference, s the paper's sign.
    Ratios (losses, efficiencies, Jacobian norms) on a log axis (top), differences of cosines on a
    linear axis (bottom); each row's verdicts at the right. ``results``:
    :class:`fbctrl.experiments.verdicts.ClaimResult` of the columns; ``claims``: the
    :class:`~fbctrl.experiments.verdicts.Claim` objects (their sign, scale and label)."""
    from matplotlib.lines import Line2D

    by_key = {c.key: c for c in claims}
    columns = list(dict.fromkeys(r.column for r in results))
    keys = list(dict.fromkeys(r.key for r in results))
    groups = [[k for k in keys if by_key[k].log], [k for k in keys if not by_key[k].log]]
    groups = [(g, is_log) for g, is_log in zip(groups, (True, False)) if g]
    fig, axes = plt.subplots(len(groups), 1, figsize=(FULL_WIDTH, 0.3 * len(keys) + 1.3 * len(groups)), squeeze=False,
                             gridspec_kw={"height_ratios": [len(g) + 1 for g, _ in groups]})
    styles = [dict(marker="o", mfc="black", color="black"), dict(marker="D", mfc="white", color=COLORS["fb"])]
    style = {c: styles[min(j, 1)] for j, c in enumerate(columns)}
    for ax, (ks, is_log) in zip(axes[:, 0], groups):
        null = 1.0 if is_log else 0.0
        for i, k in enumerate(ks):
            _forest_row(ax, len(ks) - 1 - i, by_key[k], [r for r in results if r.key == k], columns, style, is_log)
        ax.axvline(null, color=COLORS["grey"], lw=0.9, ls=":")
        ax.set_yticks(range(len(ks)))
        ax.set_yticklabels([f"{by_key[k].figure}: {by_key[k].short or by_key[k].claim}" for k in reversed(ks)])
        ax.set_ylim(-0.6, len(ks) - 0.4)
        if is_log:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=10))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            label(ax, "ratio, paper's side → (no effect = 1)")
        else:
            label(ax, "difference of cosines, paper's side → (no effect = 0)")
    handles = [Line2D([], [], marker=style[c]["marker"], mfc=style[c]["mfc"], mec=style[c]["color"],
                      color=style[c]["color"], lw=1.5, label=c) for c in columns]
    handles.append(Line2D([], [], marker="|", color="grey", ls="none", label="single network seeds"))
    legend_below(fig, handles=handles, labels=[h.get_label() for h in handles], ncol=len(handles))
    return fig


VERDICT_COLORS = {"agrees": "#2a7f3f", "disagrees": "#b8322a", "inconclusive": "#7f7f7f"}


def _forest_row(ax, y0: float, claim, results, columns, style, is_log: bool, dy: float = 0.17):
    """One claim of the forest plot: per column its oriented effect, interval, seeds and verdict."""
    sign = claim.paper_sign
    f = (lambda v: np.asarray(v, dtype=np.float64) ** sign) if is_log else (
        lambda v: sign * np.asarray(v, dtype=np.float64))
    for j, col in enumerate(columns):
        y = y0 + dy * ((len(columns) - 1) / 2 - j) * 2 / max(len(columns) - 1, 1)
        r = next((x for x in results if x.column == col), None)
        measured = r is not None and r.effect.n > 0
        ax.annotate(f"{r.verdict.value} ({r.effect.n})" if measured else "n 0", (1.0, y),
                    xycoords=("axes fraction", "data"), xytext=(5, 0), textcoords="offset points", va="center",
                    fontsize=FONT_PT, color=VERDICT_COLORS.get(r.verdict.value, "black") if measured else "#aaaaaa")
        if not measured:
            continue
        e, st = r.effect, style[col]
        vals = f(e.values)
        ax.plot(vals, np.full(vals.shape, y), "|", color=st["color"], ms=4, alpha=0.4)
        lo, hi = sorted([float(f(e.ci_low)), float(f(e.ci_high))])
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [y, y], color=st["color"], lw=1.5)
        ax.plot([float(f(e.mean))], [y], marker=st["marker"], mfc=st["mfc"], mec=st["color"], ms=5.5, ls="none")


@_quiet
def plot_paper_sweep(tables: dict, best: dict, published_lr: dict | None = None, *, trials: dict | None = None,
                     rotation_deg: float = 30.0):
    """The learning-rate sweep of the paper protocol: final test loss (controller off, mean of the
    last trials) against the rate, one panel per rule, the two controller settings in each;
    geometric mean over the swept networks with its 95% interval, single networks as dots, a cross
    where any network diverged, a star at each condition's best rate, and the published code's
    effective rate(s) as triangles at the bottom (BPTT's differ per network: × |W_fb|/|W_out|).

    ``tables``: {condition: ``paper.sweep_table``}; ``best``: ``paper.best_swept_rates``;
    ``published_lr``: {condition: per-network rates}; ``trials``: {"RFLO": n, "BPTT": n}."""
    rules = [r for r in ("RFLO", "BPTT") if any(c.startswith(r) for c in tables)]
    fig, axes = plt.subplots(1, max(len(rules), 1), figsize=(FULL_WIDTH, 5.0), squeeze=False)
    for ax, rule in zip(axes[0], rules):
        for cond in [c for c in CONDITION_ORDER if c.startswith(rule) and c in tables]:
            tab, col = tables[cond], COND_COLORS[cond]
            rates = np.asarray(tab["rates"], dtype=np.float64)
            fin = np.where(tab["diverged"], np.nan, tab["final"])
            m, lo, hi = mean_ci(fin.T, log=True)
            ok = np.isfinite(m)
            ax.errorbar(rates[ok], m[ok], yerr=[np.nan_to_num(m[ok] - lo[ok]), np.nan_to_num(hi[ok] - m[ok])],
                        color=col, ls=COND_LS[cond], marker=COND_MARKERS[cond], mfc=marker_face(cond), ms=5,
                        capsize=2.5, lw=1.1, label=cond)
            for r, row in zip(rates, fin):
                ax.plot(np.full(row.shape, r), row, ".", color=col, ms=2.5, alpha=0.5)
            for r, d in zip(rates, tab["diverged"].any(axis=1)):
                if d:
                    ax.plot([r], [np.nanmax(fin) if np.isfinite(fin).any() else 1.0], "x", color="#b00000", ms=6)
            b = best.get(cond, {}).get("lr")
            if b is not None:
                i = int(np.argmin(np.abs(np.log(rates / b))))
                ax.plot([b], [m[i]], "*", color="#f2c14e", mec="k", mew=0.5, ms=12, zorder=5,
                        label=f"best {cond}: {b:.2g}" + ("" if best[cond].get("bracketed") else " (edge)"))
            pub = (published_lr or {}).get(cond, [])
            if len(pub):
                ax.plot(pub, np.full(len(pub), 0.03), "^", color=col, mfc=marker_face(cond), ms=6, ls="none",
                        transform=ax.get_xaxis_transform(), label=f"{cond} as published")
        ax.set_xscale("log")
        dots = np.concatenate([np.ravel(np.where(tables[c]["diverged"], np.nan, tables[c]["final"]))
                               for c in tables if c.startswith(rule)])
        dots = dots[np.isfinite(dots) & (dots > 0)]
        if dots.size:
            _log_plain(ax)
            # the single networks set the range: an interval over few surviving networks can span
            # decades beyond them (it is clipped at the edge rather than squeezing every curve)
            ax.set_ylim(dots.min() / 1.6, dots.max() * 1.6)
        else:
            ax.text(0.5, 0.5, "no finished runs yet", transform=ax.transAxes, ha="center", va="center",
                    color=COLORS["grey"])
            ax.set_yticks([])
        n = (trials or {}).get(rule)
        label(ax, "learning rate", "final test loss (a.u.$^2$)" if ax is axes[0, 0] else None,
              f"{rule}, {rotation_deg:g}°" + (f", {n} trials" if n else ""))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    return fig


def _sci_label(r: float) -> str:
    """A learning rate in one format along a log grid: 1.5e-4, 5e-6, 1e-3."""
    m, e = f"{r:.1e}".split("e")
    return f"{m.rstrip('0').rstrip('.')}e{int(e)}"


@_quiet
def plot_sweep_heatmaps(data: dict):
    """The paper's Figure 8: per condition a heatmap of the final test loss (controller off,
    geometric mean over the swept networks; one log colour scale for all panels) over learning
    rate (columns) and rotation (rows); grey where no run finished, a red cross where a network
    diverged, a star at each rotation's best rate. Drawn 2 x 2 (RFLO+c, RFLO above; BPTT+c, BPTT
    below) at the content column's width with 9 pt text.

    ``data``: {"rotations": [deg], "conditions": {condition: {"rates": [every rate swept at any
    rotation], "final": [rotations, rates] geometric means (NaN: not run), "diverged": [rotations,
    rates] bool, "best": [rotations] best rate or None}}} (``fbctrl.book.chapters.paper_protocol.sweep_heatmap_data``)."""
    conds = [c for c in CONDITION_ORDER if c in data["conditions"]]
    rots = list(data["rotations"])
    ncol = min(2, max(len(conds), 1))
    nrow = -(-max(len(conds), 1) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(FULL_WIDTH, 2.45 * nrow + 0.5), squeeze=False)
    vals = np.concatenate([np.ravel(data["conditions"][c]["final"]) for c in conds]) if conds else np.array([])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    norm = plt.matplotlib.colors.LogNorm(vmin=vals.min(), vmax=vals.max()) if vals.size else None
    im = None
    for k, cond in enumerate(conds):
        ax = axes.flat[k]
        d = data["conditions"][cond]
        rates = np.asarray(d["rates"], dtype=np.float64)
        F = np.ma.masked_invalid(np.asarray(d["final"], dtype=np.float64))
        ax.set_facecolor("#d9d9d9")
        im = ax.imshow(F, norm=norm, cmap="viridis", aspect="auto", origin="lower")
        for i, j in zip(*np.nonzero(np.asarray(d["diverged"], dtype=bool))):
            ax.plot(j, i, "x", color="#b00000", ms=7, mew=1.5)
        for i, b in enumerate(d["best"]):
            if b is not None:
                ax.plot(int(np.argmin(np.abs(np.log(rates / b)))), i, "*", color="#f2c14e", mec="k", mew=0.5, ms=11)
        ax.set_xticks(range(len(rates)), [_sci_label(r) for r in rates], rotation=45, ha="right",
                      rotation_mode="anchor")
        ax.set_yticks(range(len(rots)), [f"{r:g}°" for r in rots])
        label(ax, "learning rate" if k // ncol == nrow - 1 else None, "rotation" if k % ncol == 0 else None, cond)
    for ax in axes.flat[len(conds):]:
        ax.set_visible(False)
    if im is not None and vals.size:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, aspect=30, label="final test loss (a.u.$^2$)")
    elif not conds:
        axes[0, 0].set_visible(True)
        axes[0, 0].text(0.5, 0.5, "no sweep yet", transform=axes[0, 0].transAxes, ha="center", va="center")
    return fig
