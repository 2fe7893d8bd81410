"""Per-run measures of an adaptation run, each as the paper (or its code) defines it and in its
fair version (Methods, "How the findings are measured" and "Adaptation"). They read the records of
``adapt.adapt`` (arrays [runs, trials]):

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

import warnings

import numpy as np

from ..core.task import GO_STEP

__all__ = ["FINAL_WINDOW", "EFFICIENCY_DEFINITIONS", "efficiency", "efficiency_equal_path", "final",
           "final_loss", "curve_area", "cumulative_efficiency", "loss_drop_per_path", "alignment_summary"]

FINAL_WINDOW = 10     # "final" = mean over the last this many trials

EFFICIENCY_DEFINITIONS = ("published", "per_trial", "whole_run", "equal_path")


def _2d(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(1, -1) if x.ndim == 1 else x


def efficiency(rec: dict, definition: str, lr=None, trials: tuple | None = None) -> np.ndarray:
    """Efficiency per run [runs] under ``definition`` ('published', 'per_trial', 'whole_run';
    'equal_path' needs two runs: :func:`efficiency_equal_path`). ``lr``: the effective rate of
    each run (scalar or [runs]), needed for 'published'. ``trials`` = (first, stop): the per-trial
    definitions averaged over those trials only (the stage of learning).

    Per run, published = lr x per_trial exactly (the mean over trials of lr dW_trial / dW_path),
    so the published ratio of two runs is their rate ratio times their scale-free ratio."""
    path, total = _2d(rec["dW_path"]), _2d(rec["dW_total"])
    trial = _2d(rec["dW_trial"]) if definition in ("published", "per_trial") else None
    if trials is not None:
        if definition not in ("published", "per_trial"):
            raise ValueError(f"trials needs a per-trial definition (published, per_trial), got {definition!r}")
        first, stop = (int(x) for x in trials)
        if not 0 <= first < min(stop, path.shape[1]):
            raise ValueError(f"trials must be (first, stop) with 0 <= first < stop and first below "
                             f"{path.shape[1]}, got {trials!r}")
        path, trial = path[:, first:stop], trial[:, first:stop]
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
    return final(x, window)


def curve_area(test_loss) -> np.ndarray:
    """Mean test loss over all trials (learning-curve area / trials), per run [runs]."""
    return np.nanmean(_2d(test_loss), axis=1)


def final(x: np.ndarray, window: int = FINAL_WINDOW) -> np.ndarray:
    """Per seed: mean of the last ``window`` trials of a [S, trials] record (NaNs ignored)."""
    x = np.asarray(x, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x[:, -window:], axis=1)


def cumulative_efficiency(rec: dict) -> np.ndarray:
    """[S, trials]: the efficiency ratio of the first t trials."""
    path = np.nancumsum(rec["dW_path"], axis=1)
    return rec["dW_total"] / np.maximum(path, 1e-30)


def loss_drop_per_path(rec: dict, initial_test: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Test-loss reduction per unit of weight change, per seed: (L_start - L_final) divided by
    the path length sum |dW_t| and by the displacement |W_end - W_start|. ``L_start`` is the
    pre-adaptation test loss if given, else the test after the first trial."""
    start = initial_test if initial_test is not None else rec["test_loss"][:, 0]
    drop = np.asarray(start) - final(rec["test_loss"])
    path = np.nansum(rec["dW_path"], axis=1)
    disp = rec["dW_total"][:, -1]
    return {"drop": drop, "per_path": drop / np.maximum(path, 1e-30), "per_displacement": drop / np.maximum(disp, 1e-30),
            "path": path, "displacement": disp}


def alignment_summary(rec: dict, go_step: int = GO_STEP) -> dict[str, np.ndarray] | None:
    """Local and global alignment with the exact online gradient from a condition's records
    (``align_local`` [S, trials, T], NaN on trials without alignment; ``align_global`` [S, trials]).

    Returns per seed the mean local alignment over aligned trials and steps ``>= go_step``
    (``local`` [S]), the mean global alignment (``global`` [S]), the local alignment per step
    averaged over aligned trials (``local_step`` [S, T]), and both per aligned trial
    (``trials`` [A], ``local_trial`` / ``global_trial`` [S, A]). None if not recorded."""
    if "align_local" not in rec:
        return None
    al = np.asarray(rec["align_local"], dtype=np.float64)
    ag = np.asarray(rec["align_global"], dtype=np.float64)
    aligned = np.flatnonzero(np.isfinite(ag).any(axis=0))
    if aligned.size == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mov = al[:, aligned, go_step:]
        return {"local": np.nanmean(mov.reshape(mov.shape[0], -1), axis=1),
                "global": np.nanmean(ag[:, aligned], axis=1),
                "local_step": np.nanmean(al[:, aligned], axis=1),
                "trials": aligned,
                "local_trial": np.nanmean(mov, axis=2),
                "global_trial": ag[:, aligned]}
