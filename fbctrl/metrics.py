"""Per-run measures of an adaptation run, each as the paper (or its code) defines it and in its
fair version (SPEC 5 and 7). They read the records of ``adapt.adapt`` (arrays [runs, trials]):

``dW_trial``  |W_end - W_start| of each trial (learning rate included),
``dW_path``   sum_k |dW_k| over the steps of each trial (learning rate included),
``dW_total``  |W - W_initial| since adaptation began, after each trial,
``test_loss`` the rotated centre-out test with the controller off, before/after each trial.

Efficiency (finding 3, Fig 5a), four definitions:

* ``published`` -- per trial as the published code computes it: |W_end - W_start| of the trial
  divided by sum_k |g_k|, g_k the step's update *before* the learning rate, i.e.
  ``lr * dW_trial / dW_path``; averaged over trials. It scales with the rate, so it cannot
  compare conditions run at different rates.
* ``per_trial`` -- scale-free per trial: ``dW_trial / dW_path`` (rate in both), averaged over trials.
* ``whole_run`` -- ``|W_end - W_initial| / sum over all steps |dW_k|`` of the whole run.
* ``equal_path`` -- the whole-run ratio of two paired runs read at the same path length L (the
  shorter of the two total paths): for each run at the first trial whose cumulative path reaches
  L, ``dW_total / cumulative path`` there.

Learning curve area: the mean test loss over all trials (the area under the curve divided by the
number of trials), so a verdict on the final loss does not hinge on one window.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EFFICIENCY_DEFINITIONS", "efficiency", "efficiency_equal_path", "final_loss", "curve_area"]

EFFICIENCY_DEFINITIONS = ("published", "per_trial", "whole_run", "equal_path")


def _2d(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(1, -1) if x.ndim == 1 else x


def efficiency(rec: dict, definition: str, lr=None) -> np.ndarray:
    """Efficiency per run [runs] under ``definition`` ('published', 'per_trial', 'whole_run';
    'equal_path' needs two runs: :func:`efficiency_equal_path`). ``lr``: the effective rate of
    each run (scalar or [runs]), needed for 'published'."""
    trial, path, total = _2d(rec["dW_trial"]), _2d(rec["dW_path"]), _2d(rec["dW_total"])
    with np.errstate(divide="ignore", invalid="ignore"):
        if definition == "published":
            if lr is None:
                raise ValueError("efficiency 'published' needs each run's learning rate (lr)")
            lr = np.broadcast_to(np.asarray(lr, dtype=np.float64).reshape(-1, 1), trial.shape)
            return np.nanmean(lr * trial / path, axis=1)
        if definition == "per_trial":
            return np.nanmean(trial / path, axis=1)
        if definition == "whole_run":
            return total[:, -1] / np.nansum(path, axis=1)
    if definition == "equal_path":
        raise ValueError("efficiency 'equal_path' compares two runs: use efficiency_equal_path(rec_a, rec_b)")
    raise ValueError(f"efficiency definition must be one of {', '.join(EFFICIENCY_DEFINITIONS)}, got {definition!r}")


def _at_path(total: np.ndarray, cum: np.ndarray, L: float) -> float:
    idx = np.flatnonzero(cum >= L * (1 - 1e-12))
    if idx.size == 0 or not np.isfinite(L) or L <= 0:
        return float("nan")
    i = int(idx[0])
    return float(total[i] / cum[i])


def efficiency_equal_path(rec_a: dict, rec_b: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole-run efficiency of paired runs a and b (same run index = same seed) at equal path
    length. -> (eff_a [runs], eff_b [runs], L [runs])."""
    ta, pa = _2d(rec_a["dW_total"]), np.cumsum(_2d(rec_a["dW_path"]), axis=1)
    tb, pb = _2d(rec_b["dW_total"]), np.cumsum(_2d(rec_b["dW_path"]), axis=1)
    if ta.shape[0] != tb.shape[0]:
        raise ValueError(f"paired runs needed: {ta.shape[0]} and {tb.shape[0]} runs")
    L = np.minimum(pa[:, -1], pb[:, -1])
    ea = np.array([_at_path(ta[i], pa[i], L[i]) for i in range(ta.shape[0])])
    eb = np.array([_at_path(tb[i], pb[i], L[i]) for i in range(tb.shape[0])])
    return ea, eb, L


def final_loss(test_loss, window: int = 10) -> np.ndarray:
    """Mean test loss of the last ``window`` trials, per run [runs]."""
    x = _2d(test_loss)
    if not 1 <= window <= x.shape[1]:
        raise ValueError(f"window must lie in 1..{x.shape[1]} trials, got {window}")
    return np.nanmean(x[:, -window:], axis=1)


def curve_area(test_loss) -> np.ndarray:
    """Mean test loss over all trials (learning-curve area / trials), per run [runs]."""
    return np.nanmean(_2d(test_loss), axis=1)
