"""Figures of the Findings chapters (activity space, adaptation, decoupling, second order,
learning-rate sweep). Same conventions as :mod:`fbctrl.viz.plots`: labelled axes with units, mean ±
SEM bands over network seeds (:func:`fbctrl.viz.plots.band`), controller on = solid, off = dashed.
Each function returns the figure.

Colours and line styles: :mod:`fbctrl.viz.style` (RFLO teal, online BPTT purple; "+c", the
controller on during adaptation, solid, without dashed; grey: references, such as the
controller-off test of Figure 3a, first-order directions, null models, pre-adaptation losses).
Every figure is drawn at the content column's width, with its legend below the panels.
"""

from __future__ import annotations

import functools
import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm, to_rgb
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ..experiments.metrics import cumulative_efficiency, efficiency, final
from ..fmt import fmt_rate, mean_sem
from .plots import TARGET_COLORS, band, label
from .style import (COLORS, COND_COLORS, COND_LS, COND_MARKERS, FULL_WIDTH, LS, NOFB_LS, legend_below,
                    marker_face)

__all__ = ["COND_COLORS", "COND_LS", "plot_activity_cosines", "plot_adaptation_curves", "plot_rotations",
           "plot_nofb", "plot_explorer", "plot_jacobians", "plot_alignment", "plot_horizon", "plot_efficiency",
           "plot_activity_newton", "plot_wrec_newton", "plot_sweep", "plot_best_vs_paper"]

def _quiet(fn):
    """Run a figure function without RuntimeWarnings (mean ± SEM of columns with one finite value,
    e.g. after a run diverged): notebooks must not write to stderr."""

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args, **kw)

    return wrapper


def _int_ticks(ax):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _rate_label(r: float) -> str:
    """A learning rate for tick labels: 1.5e-5, 5e-6."""
    return f"{r:.2g}".replace("e-0", "e-").replace("e+0", "e")


class _PlainLogLocator(LogLocator):
    """Ticks at 1, 2, 5 x 10^k over up to ``wide`` decades, at 10^k beyond (matplotlib's LogLocator
    with three subs per decade drops every tick once the axis spans more decades than ``numticks``)."""

    def __init__(self, wide: float = 6.0):
        super().__init__(base=10, subs=(1.0, 2.0, 5.0), numticks=12)
        self.wide = wide

    def tick_values(self, vmin, vmax):
        lo, hi = sorted((vmin, vmax))
        span = np.log10(hi / lo) if lo > 0 and np.isfinite(hi / lo) else 0.0
        self.set_params(subs=(1.0, 2.0, 5.0) if span <= self.wide else (1.0,))
        return super().tick_values(vmin, vmax)


def _log_plain(ax):
    """Log y axis with plain tick labels at 1, 2, 5 x 10^k (0.2, 5, 1e+07 rather than 2 × 10⁻¹),
    at 10^k alone on an axis wider than six decades."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(_PlainLogLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _go_line(ax, go_s: float | None):
    if go_s is not None:
        ax.axvline(go_s, color=COLORS["grey"], lw=0.8, ls=":")


def _per_seed(x):
    """[S, targets, K] -> [S, K] (mean over targets)."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 3 else x


def _points(ax, xs, per_seed_values, cond, *, offset=0.0, label_text=None, connect=True, show_seeds=True):
    """Mean ± SEM over seeds at each x, seeds as small dots."""
    xs = np.asarray(xs, dtype=np.float64) + offset
    ms, ss = [], []
    for v in per_seed_values:
        m, s = mean_sem(np.asarray(v, dtype=np.float64))
        ms.append(float(m))
        ss.append(float(s))
    col = COND_COLORS.get(cond, COLORS["fb"])
    ax.errorbar(xs, ms, yerr=ss, color=col, ls=COND_LS.get(cond, "-") if connect else "none",
                marker=COND_MARKERS.get(cond, "o"), mfc=marker_face(cond) if cond in COND_COLORS else col,
                ms=5, capsize=2.5, lw=1.1, label=label_text)
    if show_seeds:
        for x, v in zip(xs, per_seed_values):
            v = np.asarray(v, dtype=np.float64)
            ax.plot(np.full(v.shape, x), v, ".", color=col, ms=2.5, alpha=0.6)
    return ms, ss


# ---------------------------------------------------------------------------------------------
# Finding 1
# ---------------------------------------------------------------------------------------------

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
        label(ax, "pre-training batch", r"cos($W_{fb}$, $W_{out}^\top$)", "$W_{fb}$ vs $W_{out}^\top$")
    legend_below(fig)
    return fig


# ---------------------------------------------------------------------------------------------
# Adaptation
# ---------------------------------------------------------------------------------------------

def _trial_axis(n: int, with_initial: bool):
    return np.arange(0 if with_initial else 1, n + 1)


def _with_initial(y, init):
    y = np.asarray(y, dtype=np.float64)
    if init is None:
        return y
    return np.concatenate([np.asarray(init, dtype=np.float64)[:, None], y], axis=1)


@_quiet
def plot_adaptation_curves(ad, init: dict | None = None):
    """Figures 1b and 3a. (a) RFLO+c: training loss (controller on, the loss the network
    experiences) and test loss (8 rotated targets, controller off) per trial; (b) test loss of
    every condition. ``ad``: :class:`fbctrl.data.AdaptSet`; ``init``: pre-adaptation losses
    (:func:`fbctrl.adapt_mod.initial_test_losses`) drawn at trial 0."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.6), sharey=True)
    ini = init["test"] if init is not None else None
    ax = axes[0]
    first = "RFLO+c" if "RFLO+c" in ad.results else ad.conditions[0]
    rec = ad[first]
    n = rec["train_loss"].shape[1]
    band(ax, _trial_axis(n, False), rec["train_loss"], color=COND_COLORS[first], label=f"{first}: training loss")
    band(ax, _trial_axis(n, ini is not None), _with_initial(rec["test_loss"], ini), color=COLORS["grey"],
         label=f"{first}: test, controller off")
    _log_plain(ax)
    label(ax, "trial", "loss (mean $e^2$, a.u.$^2$)", f"{first}, {ad.rotation_deg:g}° rotation")
    ax = axes[1]
    for cond in ad.conditions:
        r = ad[cond]
        band(ax, _trial_axis(n, ini is not None), _with_initial(r["test_loss"], ini), color=COND_COLORS[cond],
             ls=COND_LS[cond], label=cond)
    _log_plain(ax)
    label(ax, "trial", None, f"test loss, controller off, {ad.rotation_deg:g}°", legend=True)
    for a in axes:
        _int_ticks(a)
    return fig


@_quiet
def plot_rotations(sets: dict, inits: dict | None = None, *, live: set | None = None):
    """Figure 3b and after-effects. (a) final test loss (rotated targets, controller off) per
    condition vs rotation, mean ± SEM (seeds as dots), pre-adaptation loss in grey; (b) final
    after-effect loss (un-rotated targets, controller off) vs rotation, pre-adaptation in grey.
    ``sets``: {rotation: AdaptSet}; ``inits``: {rotation: initial_test_losses}; ``live``:
    rotations computed live at a reduced size (drawn with open grey circles around them)."""

    rots = sorted(sets)
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.6))
    conds = [c for c in ("RFLO+c", "RFLO", "BPTT+c", "BPTT") if any(c in s.results for s in sets.values())]
    width = 1.2 if len(rots) > 1 else 0.06
    for ax, key, init_key, title in [(axes[0], "test_loss", "test", "rotated targets (test)"),
                                     (axes[1], "aftereffect_loss", "aftereffect", "un-rotated targets (after-effect)")]:
        if inits:
            for r in rots:
                if r in inits:
                    m, s = mean_sem(inits[r][init_key])
                    ax.errorbar([r], [m], yerr=[s], color=COLORS["grey"], marker="_", ms=14, mew=2, capsize=0,
                                ls="none", label="before adaptation" if r == rots[0] else None)
        for j, cond in enumerate(conds):
            xs = [r for r in rots if cond in sets[r].results]
            vals = [final(sets[r][cond][key]) for r in xs]
            _points(ax, xs, vals, cond, offset=(j - (len(conds) - 1) / 2) * width, label_text=cond)
        for r in (live or ()):
            ax.axvspan(r - 2.6 * width, r + 2.6 * width, color=COLORS["grey"], alpha=0.12, lw=0)
            ax.text(r, 0.98, "live", transform=ax.get_xaxis_transform(), ha="center", va="top", color=COLORS["grey"])
        _log_plain(ax)
        ax.set_xticks(rots)
        ax.set_xticklabels([f"{r:g}°" for r in rots])
        label(ax, "rotation", "final loss (mean $e^2$, a.u.$^2$)" if key == "test_loss" else None, title)
    legend_below(fig)
    return fig


@_quiet
def plot_nofb(ad_nofb, ad_fb=None, init_nofb=None, init_fb=None):
    """Adaptation of networks pre-trained without feedback (RFLO with B = W_out^T, BPTT; no
    controller) next to the networks with feedback adapting with the controller off: test loss
    (controller off) per trial."""
    fig, ax = plt.subplots(figsize=(0.7 * FULL_WIDTH, 3.8))
    for kind, ad, ini in (("nofb", ad_nofb, init_nofb), ("fb", ad_fb, init_fb)):
        if ad is None:
            continue
        for cond in ("RFLO", "BPTT"):
            if cond not in ad.results:
                continue
            r = ad[cond]["test_loss"]
            name = "without feedback" if kind == "nofb" else "with feedback, controller off"
            band(ax, _trial_axis(r.shape[1], ini is not None), _with_initial(r, None if ini is None else ini["test"]),
                 color=COND_COLORS[cond], ls=NOFB_LS if kind == "nofb" else COND_LS[cond], label=f"{cond}, {name}")
    _log_plain(ax)
    rot = (ad_nofb or ad_fb).rotation_deg
    if ad_nofb is None:
        ax.text(0.5, 0.95, "no network pre-trained without feedback found", transform=ax.transAxes, ha="center",
                va="top", color=COLORS["nofb"])
    label(ax, "trial", "test loss (mean $e^2$, a.u.$^2$)", f"{rot:g}° rotation, test with controller off",
          legend=True, ncol=2)
    _int_ticks(ax)
    return fig


@_quiet
def plot_explorer(run: dict):
    """The adaptation explorer: losses per trial (left) and hand paths to the 8 rotated targets
    with the controller off before (grey, dashed) and after (colour) adaptation (right)."""
    st = run["state"]
    cond = st.rule.upper() + ("+c" if st.controller_on else "")
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.8), gridspec_kw={"width_ratios": [1.35, 1]})
    n = len(run["train_loss"])
    a0.plot(np.arange(1, n + 1), run["train_loss"], color=COND_COLORS[cond], ls=COND_LS[cond],
            label=f"training loss ({'controller on' if st.controller_on else 'controller off'})")
    a0.plot(np.arange(0, n + 1), np.concatenate([[run["initial_test"]], run["test_loss"]]), color=COLORS["grey"],
            label="test loss, controller off")
    _log_plain(a0)
    div = " (diverged)" if run["diverged"] >= 0 else ""
    label(a0, "trial", "loss (mean $e^2$, a.u.$^2$)",
          f"{cond}, rate {fmt_rate(st.rate())}, {st.rotation_deg:g}°{div}")
    ref, hb, ha = run["ref"], run["hand_before"], run["hand_after"]
    for b in range(ref.shape[1]):
        col = TARGET_COLORS[b % len(TARGET_COLORS)]
        a1.plot(ref[:, b, 0], ref[:, b, 1], color=COLORS["target"], lw=0.6, ls=":")
        a1.plot(hb[:, b, 0], hb[:, b, 1], color=COLORS["grey"], lw=0.9, ls="--",
                label="before" if b == 0 else None)
        a1.plot(ha[:, b, 0], ha[:, b, 1], color=col, lw=1.2, label=f"after {n} trials" if b == 0 else None)
        a1.plot(*ref[-1, b], "o", color=col, mfc="none", ms=5)
    a1.set_aspect("equal")
    r = float(np.abs(ref).max()) * 1.35
    a1.set_xlim(-r, r)
    a1.set_ylim(-r, r)
    _int_ticks(a0)
    label(a1, "x (a.u.)", "y (a.u.)", "hand paths, controller off", legend=True, ncol=2)
    return fig


# ---------------------------------------------------------------------------------------------
# Finding 2
# ---------------------------------------------------------------------------------------------

@_quiet
def plot_jacobians(prof: dict, dt: float = 0.01, *, go_s: float | None = None, norm: str = "spectral",
                   rotation_deg: float = 30.0):
    """Figure 4a: |dx_{k+L}/dx_k| along the trial for each lag L (one panel each), controller on
    (solid) and off (dashed); ``prof`` from :func:`fbctrl.network.jacobian_profile`."""
    lags = sorted({k[1] for k in prof if isinstance(k, tuple)})
    fig, axes = plt.subplots(1, len(lags), figsize=(FULL_WIDTH, 3.5))
    axes = np.atleast_1d(axes)
    t = prof["steps"] * dt
    sym = r"\|\cdot\|_2" if norm == "spectral" else r"\|\cdot\|_F"
    for ax, L in zip(axes, lags):
        for on in (True, False, "loop"):
            if (on, L) not in prof:
                continue
            y = _per_seed(prof[(on, L)])
            ok = np.isfinite(y).all(axis=0)
            if on == "loop":
                band(ax, t[ok], y[:, ok], color=COLORS["push"], ls="-", label="controller on, through the loop")
            else:
                band(ax, t[ok], y[:, ok], color=COLORS["fb"], ls=LS["on" if on else "off"],
                     label="controller on" if on else "controller off")
        _go_line(ax, go_s)
        if L > 1:
            _log_plain(ax)
        label(ax, "time in trial (s)", f"${sym}$ of $\\partial x_{{k+{L}}} / \\partial x_k$" if L > 1 else
              f"${sym}$ of $\\partial x_{{k+1}} / \\partial x_k$", f"lag {L} step{'s' if L > 1 else ''}"
              f" ({L * dt * 1000:g} ms)")
    legend_below(fig)
    fig.suptitle(f"{norm} norm of the Jacobian, {rotation_deg:g}° rotation, first trial")
    return fig


@_quiet
def plot_alignment(summ: dict, *, dt: float = 0.01, go_step: int = 20):
    """Figures 4b-c: (a) local alignment cos(dW_rule(t), -dl_t/dW) over the steps of a trial
    (mean over aligned trials); (b) local alignment (mean over movement steps) per aligned trial;
    (c) global alignment cos(sum_t dW_rule(t), -dL/dW) per aligned trial. ``summ``: {cond:
    :func:`fbctrl.experiments.metrics.alignment_summary`}."""
    fig, axes = plt.subplots(1, 3, figsize=(FULL_WIDTH, 3.3))
    for cond, s in summ.items():
        if s is None:
            continue
        kw = dict(color=COND_COLORS[cond], ls=COND_LS[cond], label=cond)
        T = s["local_step"].shape[1]
        band(axes[0], np.arange(T) * dt, s["local_step"], **kw)
        band(axes[1], s["trials"] + 1, s["local_trial"], **kw)
        band(axes[2], s["trials"] + 1, s["global_trial"], **kw)
        for ax in axes[1:]:
            ax.plot(s["trials"] + 1, np.nanmean(s["local_trial"] if ax is axes[1] else s["global_trial"], 0), ".",
                    color=COND_COLORS[cond], ms=4)
    _go_line(axes[0], go_step * dt)
    for ax in axes:
        ax.axhline(0, color="k", lw=0.5)
    label(axes[0], "time in trial (s)", "cos with exact gradient", "local, each step")
    label(axes[1], "trial", None, "local, movement mean")
    label(axes[2], "trial", None, "global, whole trial")
    legend_below(fig)
    _int_ticks(axes[1])
    _int_ticks(axes[2])
    return fig


@_quiet
def plot_horizon(hp: dict):
    """How much of the exact gradient of a step's loss comes from the last K steps: norm ratio
    |G^K| / |G| and cos(G^K, G) vs K, controller on (solid) and off (dashed)."""
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.2))
    K = hp["horizons"]
    for ax, key, yl in [(axes[0], "norm_ratio", r"$\|G^K\| / \|G\|$"), (axes[1], "cos", r"cos($G^K$, $G$)")]:
        for on in (True, False):
            if (on, key) in hp:
                band(ax, K, _per_seed(hp[(on, key)]), color=COLORS["fb"], ls=LS["on" if on else "off"],
                     label="controller on" if on else "controller off")
        ax.axhline(1, color=COLORS["grey"], lw=0.6, ls=":")
        ax.set_xscale("log")
        label(ax, "last K steps kept", yl)
    legend_below(fig)
    fig.suptitle("exact gradient of a step's loss, truncated to its last K steps")
    return fig


# ---------------------------------------------------------------------------------------------
# Finding 3
# ---------------------------------------------------------------------------------------------

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


def matplotlib_null():
    return NullFormatter()


def matplotlib_rgb(c):
    return to_rgb(c)


# ---------------------------------------------------------------------------------------------
# Learning-rate sweep
# ---------------------------------------------------------------------------------------------

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
