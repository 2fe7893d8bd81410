"""The summary figure of "Beyond the paper": each claim's effect with its 95% interval against the
feedback delay (0, 50, 100 ms), the feedback density (1, 0.3, 0.1) and the task (reach, limit
cycle), from :func:`fbctrl.experiments.beyond.summary_records` (the first point of every axis:
the published networks of the same seeds). A point without networks yet is drawn as the word
"missing", one the design leaves out (``not_run``: best rates on the limit cycle) as "not run"; n
is written in every point's label. Colours: :mod:`fbctrl.viz.style` (networks with feedback blue,
references grey)."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np

from .chapters.common import _quiet
from .style import COLORS, FULL_WIDTH, NULL_LS, REFERENCE, legend_below

__all__ = ["plot_beyond_summary", "AXIS_ORDER"]

AXIS_ORDER = ("delay", "density", "task")


def _claims(records: list[dict]) -> list[tuple[str, dict]]:
    seen = {}
    for r in records:
        seen.setdefault(r["claim"], r)
    return list(seen.items())


def _positions(rows: list[dict]) -> tuple[list[tuple[float, dict]], list[tuple[float, str]]]:
    """x of every point, axis after axis (delays, densities, tasks) with a gap between axes."""
    xs, ticks, x = [], [], 0.0
    for axis in AXIS_ORDER:
        pts = [r for r in rows if r["axis"] == axis]
        if not pts:
            continue
        for r in pts:
            xs.append((x, r))
            ticks.append((x, f"{r['point']}" + ("" if r.get("not_run") else f", n={r['n']}")))
            x += 1.0
        x += 0.6                                       # a gap between the axes
    return xs, ticks


def _log_ticks(ax, lo_lim: float, hi_lim: float) -> None:
    """Plain tick labels on a log axis: 1, 10, 100 over many decades; 1, 2, 5 over one or two;
    three plain ticks over a narrow range (a band of +-5 %)."""
    decades = np.log10(hi_lim / lo_lim)
    if decades > 0.6:
        ax.yaxis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0,) if decades > 2.5 else (1.0, 2.0, 5.0)))
    else:
        yticks = [t for t in mticker.MaxNLocator(3).tick_values(lo_lim, hi_lim) if lo_lim <= t <= hi_lim]
        ax.yaxis.set_major_locator(mticker.FixedLocator(yticks))
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(mticker.NullFormatter())


def _y_range(xs: list[tuple[float, dict]], first: dict) -> tuple[float, float, float, bool]:
    """(ymin, ymax, pad, log) that hold every finite point, its interval and the line of no effect;
    ratios on a log axis (x2 and x1/2 the same distance) when every value is positive."""
    null = 1.0 if first["log"] else 0.0
    ys = [v for _, r in xs if np.isfinite(r["mean"])
          for v in (r["mean"], r["ci_low"], r["ci_high"]) if np.isfinite(v)] or [null]
    ymin, ymax = min(ys + [null]), max(ys + [null])
    log = bool(first["log"]) and ymin > 0
    if log:
        ymin, ymax = min(ymin, 1 / 1.1), max(ymax, 1.1)
        return ymin, ymax, (ymax / ymin) ** 0.08, True
    return ymin, ymax, 0.15 * (ymax - ymin or abs(null) or 1.0), False


def _panel(ax, rows: list[dict], first: dict) -> None:
    """One claim: its points with their intervals, the line of no effect and the negligible band."""
    xs, ticks = _positions(rows)
    ax.axhline(1.0 if first["log"] else 0.0, color="k", lw=0.5)
    if first.get("band"):
        lo, hi = first["band"]
        ax.axhspan(lo, hi, color=REFERENCE, alpha=0.15, lw=0, label="negligible band")
    ymin, ymax, pad, log = _y_range(xs, first)
    for xi, r in xs:
        pub = r["family"] == "published"
        color = REFERENCE if pub else COLORS["fb"]
        if np.isfinite(r["mean"]):
            if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
                ax.plot([xi, xi], [r["ci_low"], r["ci_high"]], color=color, lw=1.4)
            ax.plot(xi, r["mean"], "o", color=color, ms=5, mfc=color if not pub else "white",
                    label="published networks, same seeds" if pub else "variant networks")
        else:
            ax.text(xi, np.sqrt(ymin * ymax) if log else (ymin + ymax) / 2,
                    "not run" if r.get("not_run") else "missing", rotation=90, ha="center", va="center",
                    color=REFERENCE)
    if log:
        ax.set_yscale("log")
        ax.set_ylim(ymin / pad, ymax * pad)
        _log_ticks(ax, ymin / pad, ymax * pad)
    else:
        ax.set_ylim(ymin - pad, ymax + pad)
        ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xticks([t for t, _ in ticks], [lab for _, lab in ticks], rotation=45, ha="right")
    ax.set_title(textwrap.fill(f"{first['figure']}: {first['short']}", 40))   # two lines rather than into the next panel
    ax.set_ylabel("ratio (log scale)" if log else "ratio" if first["log"] else "difference")


@_quiet
def plot_beyond_summary(records: list[dict], *, ncols: int = 2):
    """One panel per claim (its figure and short label): the three axes side by side, each point
    the effect (ratio: geometric mean; difference: mean) with its 95% t interval, the line of no
    effect and the claim's negligible band in grey, n in each point's label (left to right: the
    delays, the densities, the tasks), "missing" where a point
    has no network yet, "not run" where the design leaves it out (a record's ``not_run``). ``records``: dicts with claim, figure, short, axis, point, mean, ci_low,
    ci_high, n, log, band (:func:`fbctrl.experiments.beyond.summary_records`)."""
    if not records:
        raise ValueError("records must hold at least one point (fbctrl.experiments.beyond.summary_records)")
    claims = _claims(records)
    nrows = int(np.ceil(len(claims) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(FULL_WIDTH, 2.0 * nrows + 0.6), squeeze=False)
    for ax in axes.ravel()[len(claims):]:
        ax.set_visible(False)
    for ax, (key, first) in zip(axes.ravel(), claims):
        _panel(ax, [r for r in records if r["claim"] == key], first)
    legend_below(fig, axes.ravel()[: len(claims)])
    return fig
