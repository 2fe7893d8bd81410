"""What the chapter "Finding 2: decoupling from the past" (``book/decoupling.ipynb``) shows.

* :func:`alignment` -- the adaptation runs and RFLO's alignment with the exact gradient, per condition.
* :func:`glue_alignment` -- the numbers and verdicts of the section on the alignment.
* :func:`jacobians` -- the norms of the step Jacobians' products, controller on / off / through the loop.
* :func:`glue_jacobians`, :func:`jacobian_table` -- their numbers and verdicts, and their table.
* :func:`horizons` -- how far back the exact gradient reaches, with its numbers glued.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...analysis import network
from ...core import task
from ...core.task import TaskConfig
from ...experiments import metrics, stats, verdicts
from ...fmt import fmt_pm, md_table
from .. import data
from ..glue import glue_int, glue_pm, glue_text

__all__ = ["Alignment", "alignment", "glue_alignment", "Jacobians", "jacobians", "glue_jacobians",
           "jacobian_table", "horizons"]


@dataclass
class Alignment:
    """``ad``: the adaptation runs; ``summ``: per condition, :func:`metrics.alignment_summary`."""

    ad: data.AdaptSet
    summ: dict


def alignment(P) -> Alignment:
    """RFLO's runs with and without the controller at ``P.rotation_deg`` and their alignment records."""
    ad = data.load_adaptation(P, P.rotation_deg, "fb", seeds=P.seeds, rules=("rflo",))
    if ad is None:
        raise ValueError(f"no store units for {P.rotation_deg:g} degrees under {P.results_dir!r} and no networks in "
                         f"{P.checkpoint_dir!r} to compute them")
    summ = {c: metrics.alignment_summary(ad[c]) for c in ("RFLO+c", "RFLO") if c in ad.results}
    if any(s is None for s in summ.values()):
        raise ValueError(f"the runs for {P.rotation_deg:g} degrees hold no alignment records "
                         "(the store's RFLO runs record it: python -m fbctrl paper --networks shipped)")
    return Alignment(ad, summ)


def glue_alignment(P, al: Alignment) -> None:
    """Where the runs come from, local and global alignment per condition, their differences and verdicts."""
    summ = al.summ
    glue_text("rot", f"{P.rotation_deg:g}")
    glue_text("source", al.ad.describe())
    glue_int("n_seeds", len(al.ad.seeds))
    glue_int("n_aligned", len(summ["RFLO+c"]["trials"]))
    glue_int("go_step", task.GO_STEP)
    for c, s in summ.items():
        key = c.replace("+c", "_c").lower()
        glue_pm(f"local_{key}", s["local"])
        glue_pm(f"global_{key}", s["global"])
    d_local = summ["RFLO+c"]["local"] - summ["RFLO"]["local"]
    d_global = summ["RFLO+c"]["global"] - summ["RFLO"]["global"]
    glue_pm("d_local", d_local)
    glue_pm("d_global", d_global)
    glue_text("verdict_local", stats.verdict_text(d_local, band=verdicts.BANDS["cosine"]))
    glue_text("verdict_global", stats.verdict_text(d_global, band=verdicts.BANDS["cosine"]))


@dataclass
class Jacobians:
    """``prof``: :func:`network.jacobian_profile`; ``per[L][on]``: mean norm over the movement, per
    seed, with ``on`` True (error as input), False (controller off) or "loop" (through the loop)."""

    fb: dict
    prof: dict
    loop: bool
    lags: list
    per: dict

    def ratio(self, L, on=True):
        """Per seed: the norm at lag ``L`` with the controller ``on`` (or "loop") over that with it off."""
        return self.per[L][on] / self.per[L][False]


def jacobians(P, ad: data.AdaptSet, task_cfg: TaskConfig = TaskConfig()) -> Jacobians:
    """Jacobian norms of the networks with feedback that the runs used (all of them if none matches)."""
    fb = data.networks(P, "fb", required=True)
    fb = {s: n for s, n in fb.items() if s in ad.seeds} or fb
    loop = all(n.cfg.delay == 0 for n in fb.values())
    prof = network.jacobian_profile(fb, P.rotation_deg, targets=P.targets, lags=P.lags, stride=P.step_stride,
                                    norm=P.jacobian_norm, closed_loop=loop, task_cfg=task_cfg)
    mov = prof["steps"] >= task.GO_STEP
    modes = (True, False, "loop") if loop else (True, False)
    per = {L: {on: np.nanmean(prof[(on, L)][:, :, mov], axis=(1, 2)) for on in modes} for L in P.lags}
    return Jacobians(fb, prof, loop, list(P.lags), per)


def glue_jacobians(P, jac: Jacobians) -> None:
    """The norm, the counts, the ratios on / off at the shortest and longest lags, and their verdicts."""
    glue_text("norm", P.jacobian_norm)
    glue_int("n_fb", len(jac.fb))
    glue_int("n_targets", len(P.targets))
    Lmax, Lmin = max(jac.lags), min(jac.lags)
    glue_int("lag_min", Lmin)
    glue_text("jac_lag_min_ratio", fmt_pm(jac.ratio(Lmin)))
    glue_text("verdict_jac_min", stats.verdict_text(-np.log(jac.ratio(Lmin)), band=verdicts.BANDS["norm"]))
    glue_int("lag_max", Lmax)
    glue_text("jac_lag_max_ratio", fmt_pm(jac.ratio(Lmax)))
    glue_text("verdict_jac", stats.verdict_text(-np.log(jac.ratio(Lmax)), band=verdicts.BANDS["norm"]))
    glue_text("loop_lag_max_ratio", fmt_pm(jac.ratio(Lmax, "loop")) if jac.loop else "n/a (feedback delay)")
    glue_text("verdict_loop", stats.verdict_text(-np.log(jac.ratio(Lmax, "loop")), band=verdicts.BANDS["norm"]) if jac.loop
              else "cannot be judged")


def jacobian_table(jac: Jacobians):
    """Per lag: the norms on / off and their ratio (and through the loop, without feedback delay)."""
    rows = []
    for L in jac.lags:
        per = jac.per[L]
        row = [f"{L}", fmt_pm(per[True]), fmt_pm(per[False]), fmt_pm(jac.ratio(L))]
        if jac.loop:
            row += [fmt_pm(per["loop"]), fmt_pm(jac.ratio(L, "loop"))]
        rows.append(row)
    head = ["lag L (steps)", "on, error as input", "controller off", "on / off", "on, through the loop",
            "through the loop / off"]
    return md_table(head[:len(rows[0])], rows)


def horizons(P, fb: dict, task_cfg: TaskConfig = TaskConfig()) -> dict:
    """The truncated exact gradient (:func:`network.horizon_profile`); glues its numbers at one horizon."""
    hp = network.horizon_profile(fb, P.rotation_deg, targets=P.targets, horizons=P.horizons, task_cfg=task_cfg)
    K = list(P.horizons)
    k_show = 10 if 10 in K else K[len(K) // 2]
    j = K.index(k_show)
    glue_int("k_show", k_show)
    for on, tag in ((True, "on"), (False, "off")):
        glue_pm(f"hor_ratio_{tag}", hp[(on, "norm_ratio")][:, :, j].mean(1))
    for on, tag in ((True, "on"), (False, "off")):
        glue_pm(f"hor_cos_{tag}", hp[(on, "cos")][:, :, j].mean(1))
    glue_text("hor_steps", f"{hp['steps'][0]}–{hp['steps'][-1]}")
    return hp
