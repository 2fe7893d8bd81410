"""What the chapter "Finding 1: learning in activity space" (``book/activity_space.ipynb``) shows.

* :func:`load` -- the cosines between the control signal and the activity gradients of the
  pre-trained networks (controller on, off, and the robustness pairing), and their pre-training curves.
* :func:`glue_results` -- every number and sentence of the chapter, glued under the keys the
  markdown cites, with the verdict against the null model.
* :func:`times` -- the time axis of the figure; :func:`networks_table` -- one row per network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...analysis import network
from ...core import task
from ...core.task import TaskConfig
from ...experiments import stats, verdicts
from ...fmt import fmt_num, md_table
from .. import data
from ..glue import glue_int, glue_num, glue_pm, glue_text

__all__ = ["Chapter", "load", "glue_results", "times", "go_s", "networks_table"]

_KEYS = ("cos_trial", "cos_inst", "cos_trial_null", "cos_inst_null")


@dataclass
class Chapter:
    """``on`` / ``off``: :func:`fbctrl.analysis.network.activity_cosines` with the controller on and
    off; ``same``: on, with ``u_k`` paired with ``r_k``; ``mm``: movement means per network,
    ``{key}_{on|off}``; ``curves``: pre-training curves (None without them)."""

    P: object
    task_cfg: TaskConfig
    fb: dict
    on: dict
    off: dict
    same: dict
    curves: dict | None
    mm: dict

    @property
    def n_units(self) -> int:
        return next(iter(self.fb.values())).cfg.n


def load(P, task_cfg: TaskConfig = TaskConfig()) -> Chapter:
    """The cosines of every network of validated parameters ``P`` on the first rotated trial."""
    fb = data.networks(P, "fb", required=True)
    on = network.activity_cosines(fb, P.rotation_deg, controller_on=True, task_cfg=task_cfg)
    off = network.activity_cosines(fb, P.rotation_deg, controller_on=False, task_cfg=task_cfg)
    curves = data.load_curves(data.checkpoints(P, "fb"))
    mm = {f"{key}_{c}": network.movement_mean(res[key]) for c, res in (("on", on), ("off", off)) for key in _KEYS}
    same = network.activity_cosines(fb, P.rotation_deg, controller_on=True, task_cfg=task_cfg, pairing="same")
    return Chapter(P=P, task_cfg=task_cfg, fb=fb, on=on, off=off, same=same, curves=curves, mm=mm)


def times(ch: Chapter) -> np.ndarray:
    """Time (s) of the steps the cosines are computed at."""
    return np.arange(1, ch.task_cfg.T) * ch.task_cfg.dt


def go_s(ch: Chapter) -> float:
    """Time (s) of the go cue."""
    return task.GO_STEP * ch.task_cfg.dt


def _early_late(ch: Chapter) -> tuple[np.ndarray, np.ndarray]:
    """Per network: the whole-trial cosine over the first 0.3 s of the movement and the last 0.25 s."""
    c, n = ch.on["cos_trial"], len(ch.fb)
    late = c[:, :, -25:].reshape(n, -1).mean(1)
    early = c[:, :, task.GO_STEP - 1:task.GO_STEP + 29].reshape(n, -1).mean(1)
    return early, late


def _glue_cosines(ch: Chapter) -> None:
    glue_text("rot", f"{ch.P.rotation_deg:g}")
    glue_int("n_seeds", len(ch.fb))
    glue_int("n_units", ch.n_units)
    glue_num("chance", 1 / np.sqrt(ch.n_units), 2)
    glue_num("go_s", go_s(ch), 2)
    for k, v in ch.mm.items():
        glue_pm(k, v)
    glue_num("frac_pos_trial", 100 * (ch.on["cos_trial"][:, :, task.GO_STEP - 1:] > 0).mean(), 3)
    early, late = _early_late(ch)
    glue_pm("cos_trial_late", late)
    glue_pm("cos_trial_early", early)


def _glue_verdicts(ch: Chapter) -> None:
    """The effect against the null model and its verdict, in the published pairing and the robustness one."""
    mm = ch.mm
    effect = mm["cos_trial_on"] - mm["cos_trial_null_on"]
    glue_pm("effect", effect)
    glue_text("verdict", stats.verdict_text(effect, band=verdicts.BANDS["cosine"]))
    effect_same = network.movement_mean(ch.same["cos_trial"]) - network.movement_mean(ch.same["cos_trial_null"])
    glue_pm("effect_same", effect_same)
    glue_text("verdict_same", stats.verdict_text(effect_same, band=verdicts.BANDS["cosine"]))


def _glue_sentences(ch: Chapter) -> None:
    """The words of the prose: controller off against on, the trend, the loss best aligned with."""
    mm = ch.mm
    off_higher = mm["cos_trial_off"].mean() >= mm["cos_trial_on"].mean()
    glue_text("off_vs_on", "higher than or equal to" if off_higher else "lower than")
    glue_text("loop_text", "the alignment does not need the closed loop: it is a property of the feedback weights "
              "acting on the error" if off_higher else "closing the loop adds to the alignment")
    early, late = _early_late(ch)
    glue_text("trend", "grows" if late.mean() > early.mean() else "does not grow")
    glue_text("best_loss", "best aligned with the instantaneous loss" if mm["cos_inst_on"].mean() > mm["cos_trial_on"].mean()
              else "better aligned with the whole-trial loss than with the instantaneous one")


def _glue_pretraining(ch: Chapter) -> None:
    """cos(W_fb, W_out^T) at initialisation and after pre-training."""
    if ch.curves is None:
        for k in ("cos_w_init", "cos_w_final", "batches"):
            glue_text(k, "n/a")
        return
    c = ch.curves["eval_cos_Wfb_WoutT"]
    glue_pm("cos_w_init", c[:, 0])
    glue_pm("cos_w_final", c[:, -1])
    glue_int("batches", ch.curves["eval_batch"][-1])


def glue_results(ch: Chapter) -> None:
    """Glue every number and sentence of the chapter."""
    for part in (_glue_cosines, _glue_verdicts, _glue_sentences, _glue_pretraining):
        part(ch)


def networks_table(ch: Chapter):
    """One row per network: its cosines and cos(W_fb, W_out^T) after pre-training."""
    mm, rows = ch.mm, []
    for i, s in enumerate(ch.fb):
        cw = fmt_num(ch.curves["eval_cos_Wfb_WoutT"][i, -1], 3) if ch.curves is not None else "n/a"
        rows.append([str(s), fmt_num(mm["cos_trial_on"][i], 3), fmt_num(mm["cos_inst_on"][i], 3),
                     fmt_num(mm["cos_trial_null_on"][i], 2), fmt_num(mm["cos_trial_off"][i], 3), cw])
    return md_table(["network seed", "cos, whole trial", "cos, instantaneous", "null (random W_fb)",
                     "whole trial, controller off", "cos(W_fb, W_out^T)"], rows)
