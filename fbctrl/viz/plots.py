"""Matplotlib helpers for the book: one style, labelled axes with units, and seed spread drawn
as mean ± SEM bands.

Conventions used by every chapter (colours and line styles: :mod:`fbctrl.viz.style`):

* time axes in seconds (``dt`` = 0.01 s per step), losses on log axes;
* network with feedback control ("fb") in :data:`COLORS` ``["fb"]``, without ("nofb") in
  ``["nofb"]``; controller on = solid line, controller off = dashed line; legends below the panels;
* arrays of per-seed curves have the seed axis first (``[S, N]``); :func:`band` draws the mean
  over seeds and a shaded ± SEM band (no band for a single seed), and legends say how many seeds.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D

from ..core.task import centre_out_reaches, random_reaches, reach_profile
from ..fmt import mean_sem
from .style import COLORS, FULL_WIDTH, KIND_NAMES, LS, legend_below, use_style

__all__ = ["COLORS", "LS", "use_style", "band", "label", "n_seeds_note", "time_axis", "plot_task",
           "plot_training_curves", "plot_error_over_trial", "plot_hand_paths", "TARGET_COLORS",
           "EVAL_LABELS", "KIND_NAMES", "plot_online_errors", "plot_online_paths"]

TARGET_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

EVAL_LABELS = {
    "eval_centre_out": "centre-out",
    "eval_centre_out_rot30": "centre-out, rotated 30°",
    "eval_random": "random reaches",
    "eval_random_push": "random reaches, pushed",
    "eval_random_ctrl_off": "random reaches, controller off",
}


def n_seeds_note(n: int) -> str:
    return "1 seed" if n == 1 else f"mean ± SEM, {n} seeds"


def label(ax, xlabel: str | None = None, ylabel: str | None = None, title: str | None = None,
          legend: bool = False, **legend_kw):
    """Axis labels (with units in the text, e.g. ``"time (s)"``), title and legend in one call."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:                        # below the panels, never on data (``loc`` and sizes are ignored)
        for old in list(ax.figure.legends):
            old.remove()
        legend_below(ax.figure, ncol=legend_kw.get("ncol"))
    return ax


def band(ax, x, Y, *, label: str | None = None, color=None, ls: str = "-", lw: float | None = None,
         alpha: float = 0.22, seeds_in_label: bool = True, zorder=None):
    """Mean over the first axis of ``Y`` ([S, N]) as a line, with a ± SEM band if S > 1."""
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[None]
    m, sem = mean_sem(Y, axis=0)
    S = Y.shape[0]
    if label is not None and seeds_in_label:
        label = f"{label} (n={S})"
    (line,) = ax.plot(x, m, color=color, ls=ls, lw=lw, label=label, zorder=zorder)
    if S > 1:
        ax.fill_between(x, m - sem, m + sem, color=line.get_color(), alpha=alpha, lw=0, zorder=zorder)
    return line


def time_axis(T: int, dt: float = 0.01, *, with_initial: bool = True) -> np.ndarray:
    """Times in seconds of the T+1 recorded states (0 .. T dt), or of the T steps (dt .. T dt)."""
    k = np.arange(T + 1) if with_initial else np.arange(1, T + 1)
    return k * dt


# ---------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------

def plot_task(task_cfg, *, seed: int = 0, n_random: int = 6):
    """The reach task: inputs, target velocity and positions of centre-out reaches (top) and of
    random reaches with a push (bottom). Returns the figure."""

    g = torch.Generator().manual_seed(seed)
    co = centre_out_reaches(task_cfg, dtype=torch.float64)
    rnd = random_reaches(task_cfg, n_random, g, dtype=torch.float64)
    # one pushed reach: a pulse on the x velocity in the middle of the movement
    push = torch.zeros_like(rnd.push[:, :1])
    c = task_cfg.go_step + task_cfg.move_steps // 2
    first = c - task_cfg.push_duration // 2
    push[first:first + task_cfg.push_duration, 0, 0] = task_cfg.push_amplitude
    t = time_axis(task_cfg.T, task_cfg.dt, with_initial=False) - task_cfg.dt  # step k at k dt
    go = task_cfg.go_step * task_cfg.dt

    fig, axes = plt.subplots(2, 3, figsize=(FULL_WIDTH, 5.4))
    for row, (tr, name) in enumerate([(co, "centre-out"), (rnd, "random")]):
        i = 3 if row == 0 else 0  # centre-out: the 135 degree target
        ax = axes[row, 0]
        for d, (lab, col) in enumerate([("input 1: Δx", "#1f77b4"), ("input 2: Δy", "#ff7f0e"),
                                         ("input 3: hold", "#555555")]):
            ax.plot(t, tr.inputs[:, i, d].numpy(), color=col, label=lab)
        ax.axvline(go, color=COLORS["grey"], lw=0.8, ls=":")
        label(ax, "time (s)", "input (a.u.)", f"{name}: inputs")
        ax = axes[row, 1]
        ax.plot(t, tr.vstar[:, i, 0].numpy(), color="#1f77b4", label="target $v^*_x$")
        ax.plot(t, tr.vstar[:, i, 1].numpy(), color="#ff7f0e", label="target $v^*_y$")
        if row == 1:
            ax.plot(t, push[:, 0, 0].numpy(), color=COLORS["push"], ls="--", label="push $p_x$ (example)")
        ax.axvline(go, color=COLORS["grey"], lw=0.8, ls=":")
        label(ax, "time (s)", "velocity (a.u./s)", f"{name}: target velocity")
        ax = axes[row, 2]
        start, end = tr.start.numpy(), tr.end.numpy()
        prof = (reach_profile(task_cfg)[:, None, None] * (tr.end - tr.start)).numpy()  # displacement
        for b in range(tr.start.shape[0]):
            col = TARGET_COLORS[b % len(TARGET_COLORS)]
            ax.plot(start[b, 0] + prof[:, b, 0], start[b, 1] + prof[:, b, 1], color=col, lw=1.2)
            ax.plot(*end[b], "o", color=col, ms=4)
            ax.plot(*start[b], "s", color=col, ms=3, mfc="white")
        if row == 0:   # the markers' meaning, in the legend below (a title naming them overflows the figure)
            ax.plot([], [], "s", color="#555555", ms=4, mfc="white", ls="none", label="reach start")
            ax.plot([], [], "o", color="#555555", ms=4, ls="none", label="reach end")
        if row == 1:
            b = 0
            pushed = prof[:, b] + (push[:, 0].cumsum(0) * task_cfg.dt).numpy()
            ax.plot(start[b, 0] + pushed[:, 0], start[b, 1] + pushed[:, 1], color=COLORS["push"], ls="--",
                    lw=1.2, label="reach 1 if pushed and not corrected")
        ax.set_aspect("equal")
        hw = task_cfg.random_halfwidth if row == 1 else task_cfg.centre_out_radius
        ax.set_xlim(-hw * 1.25, hw * 1.25)
        ax.set_ylim(-hw * 1.25, hw * 1.25)
        label(ax, "x (a.u.)", "y (a.u.)", f"{name}: paths")
    legend_below(fig, ncol=3)
    return fig


# ---------------------------------------------------------------------------------------------
# Pre-training
# ---------------------------------------------------------------------------------------------

def plot_training_curves(curves: dict[str, dict | None], *, rotation_key: str = "eval_centre_out_rot30"):
    """Test losses (five panels) and cos(W_fb, W_out^T) over pre-training batches, mean ± SEM over
    seeds, for each network kind in ``curves`` (``{"fb": load_curves(...), "nofb": ...}``)."""

    keys = ["eval_centre_out", rotation_key, "eval_random", "eval_random_push", "eval_random_ctrl_off"]
    fig, axes = plt.subplots(2, 3, figsize=(FULL_WIDTH, 5.4), sharex=True)
    names = {"fb": "with feedback control", "nofb": "without feedback control"}
    for ax, key in zip(axes.flat, keys):
        for kind, c in curves.items():
            if c is None or key not in c:
                continue
            band(ax, c["eval_batch"], c[key], color=COLORS[kind], label=names.get(kind, kind))
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
        label(ax, "training batch", "test loss (mean $e^2$, a.u.$^2$)", EVAL_LABELS.get(key, key))
    ax = axes.flat[5]
    for kind, c in curves.items():
        if c is None or "eval_cos_Wfb_WoutT" not in c:
            continue
        if kind == "nofb":  # no feedback pathway: W_fb = 0 and the cosine is undefined
            continue
        band(ax, c["eval_batch"], c["eval_cos_Wfb_WoutT"], color=COLORS[kind], label=names.get(kind, kind))
    ax.axhline(0, color=COLORS["grey"], lw=0.8, ls=":")
    label(ax, "training batch", r"cos($W_{fb}$, $W_{out}^\top$)", "feedback vs readout")
    handles, labels = [], []
    for a in axes.flat:
        for h, l in zip(*a.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    legend_below(fig, handles=handles, labels=labels)
    return fig


# ---------------------------------------------------------------------------------------------
# Trials
# ---------------------------------------------------------------------------------------------

def plot_error_over_trial(ax, t, err_on, err_off=None, *, color=None, name: str = "",
                          seeds_in_label: bool = True):
    """Position error |e| over a trial, controller on (solid) and off (dashed); ``err_*`` are
    [S, T+1] (mean over trials per seed)."""
    band(ax, t, err_on, color=color, ls=LS["on"], label=f"{name}controller on".strip(),
         seeds_in_label=seeds_in_label)
    if err_off is not None:
        band(ax, t, err_off, color=color, ls=LS["off"], label=f"{name}controller off".strip(),
             seeds_in_label=seeds_in_label)
    return label(ax, "time (s)", "position error |e| (a.u.)")


def plot_hand_paths(ax, hand, targets, *, ls: str = "-", lw: float = 1.2, alpha: float = 1.0,
                    mark_targets: bool = True, label_text: str | None = None, color=None):
    """Hand paths ``hand`` [T+1, B, 2] coloured by centre-out target, targets [B, 2] as circles."""
    hand = np.asarray(hand)
    targets = np.asarray(targets)
    for b in range(hand.shape[1]):
        col = color or TARGET_COLORS[b % len(TARGET_COLORS)]
        ax.plot(hand[:, b, 0], hand[:, b, 1], color=col, ls=ls, lw=lw, alpha=alpha,
                label=label_text if b == 0 else None)
        if mark_targets:
            ax.plot(*targets[b], "o", color=col, ms=5, mfc="none")
    ax.set_aspect("equal")
    r = max(float(np.abs(targets).max()) * 1.35, 1.0)
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    return label(ax, "x position (a.u.)", "y position (a.u.)")



# ---------------------------------------------------------------------------------------------
# Online correction (Figure 1a)
# ---------------------------------------------------------------------------------------------

def plot_online_errors(t, errs: dict, titles: dict[str, str]):
    """Position error over the trial, one panel per condition. ``errs[(kind, cond, on)]`` is
    [S, T+1] (mean over trials per seed); kind "fb" is drawn with the controller on (solid) and
    off (dashed), kind "nofb" (no controller to switch) once."""
    fig, axes = plt.subplots(1, len(titles), figsize=(FULL_WIDTH, 3.3), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (cond, title) in zip(axes, titles.items()):
        if ("fb", cond, True) in errs:
            plot_error_over_trial(ax, t, errs[("fb", cond, True)], errs.get(("fb", cond, False)),
                                  color=COLORS["fb"], name="with feedback, ")
        if ("nofb", cond, True) in errs:
            band(ax, t, errs[("nofb", cond, True)], color=COLORS["nofb"], ls=":", label="without feedback")
        label(ax, "time (s)", "position error |e| (a.u.)" if ax is axes[0] else None, title)
    legend_below(fig)
    return fig


def plot_online_paths(hands: dict, refs: dict, targets: dict, titles: dict[str, str]):
    """Hand paths of one network, one panel per condition: controller on (solid) and off
    (dashed), reference paths dotted. ``hands[(cond, on)]`` [T+1, B, 2], ``refs[cond]``
    [T+1, B, 2], ``targets[cond]`` [B, 2]."""

    fig, axes = plt.subplots(1, len(titles), figsize=(FULL_WIDTH, 3.2))
    axes = np.atleast_1d(axes)
    for ax, (cond, title) in zip(axes, titles.items()):
        ref = np.asarray(refs[cond])
        for b in range(ref.shape[1]):
            ax.plot(ref[:, b, 0], ref[:, b, 1], color=COLORS["target"], lw=0.7, ls=":")
        plot_hand_paths(ax, hands[(cond, False)], targets[cond], ls=LS["off"], lw=1.0, alpha=0.8)
        plot_hand_paths(ax, hands[(cond, True)], targets[cond], ls=LS["on"], mark_targets=False)
        label(ax, "x position (a.u.)", "y position (a.u.)" if ax is axes[0] else None, title)
    handles = [Line2D([], [], color="k", ls=LS["on"], label="controller on"),
               Line2D([], [], color="k", ls=LS["off"], label="controller off"),
               Line2D([], [], color=COLORS["target"], ls=":", lw=0.7, label="reference path"),
               Line2D([], [], color="k", marker="o", mfc="none", ls="", label="target")]
    legend_below(fig, handles=handles, labels=[h.get_label() for h in handles], ncol=4)
    return fig
