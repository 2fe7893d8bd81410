"""Helpers shared by the chapters' figures: quiet warnings, integer and log ticks, bands over
seeds, points with error bars."""

from __future__ import annotations

import functools
import warnings

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ...fmt import mean_sem
from ..style import COLORS, COND_COLORS, COND_LS, COND_MARKERS, marker_face

__all__ = ["_quiet", "_int_ticks", "_rate_label", "_PlainLogLocator", "_log_plain", "_go_line", "_per_seed", "_points", "_trial_axis", "_with_initial", "matplotlib_null", "matplotlib_rgb"]


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


def _trial_axis(n: int, with_initial: bool):
    return np.arange(0 if with_initial else 1, n + 1)


def _with_initial(y, init):
    y = np.asarray(y, dtype=np.float64)
    if init is None:
        return y
    return np.concatenate([np.asarray(init, dtype=np.float64)[:, None], y], axis=1)


def matplotlib_null():
    return NullFormatter()


def matplotlib_rgb(c):
    return to_rgb(c)
