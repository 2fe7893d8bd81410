"""Figures of "Finding 2: decoupling from the past" (its shipped-network sections).
Colours and line styles: :mod:`fbctrl.viz.style`; bands: ± SEM over network seeds. Each function returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..plots import band, label
from ..style import COLORS, COND_COLORS, COND_LS, FULL_WIDTH, LS, legend_below
from .common import _quiet, _int_ticks, _log_plain, _go_line, _per_seed

__all__ = ["plot_jacobians", "plot_alignment", "plot_horizon"]


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
