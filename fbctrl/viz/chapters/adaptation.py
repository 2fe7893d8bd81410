"""Figures of "Adapting to a visuomotor rotation" (its shipped-network sections).
Colours and line styles: :mod:`fbctrl.viz.style`; bands: ± SEM over network seeds. Each function returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...experiments.metrics import final
from ...fmt import fmt_rate, mean_sem
from ..plots import TARGET_COLORS, band, label
from ..style import COLORS, COND_COLORS, COND_LS, FULL_WIDTH, NOFB_LS, legend_below
from .common import _quiet, _int_ticks, _log_plain, _points, _trial_axis, _with_initial

__all__ = ["plot_adaptation_curves", "plot_rotations", "plot_nofb", "plot_explorer"]


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
