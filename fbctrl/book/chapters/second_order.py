"""What the chapter "Finding 3: efficient, second-order updates" (``book/second_order.ipynb``) shows.

* :func:`load` -- the adaptation runs (every rotation, made comparable), efficiency and loss drop per path.
* :func:`glue_efficiency` -- the numbers and verdicts of the section on the weight path.
* :func:`activity_newton` -- control signal against the Newton direction in activity space, numbers glued.
* :func:`wrec_newton` -- RFLO's updates against the Newton step for the recurrent weights, on one network.
* :func:`glue_wrec`, :func:`wrec_table` -- their numbers and sentences, and their table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...analysis import network
from ...core import task
from ...core.task import TaskConfig
from ...experiments import metrics, stats, verdicts
from ...fmt import fmt_num, md_table
from .. import data
from ..glue import glue_int, glue_num, glue_pm, glue_text

__all__ = ["Chapter", "load", "glue_efficiency", "activity_newton", "WrecNewton", "wrec_newton", "glue_wrec",
           "wrec_table"]


@dataclass
class Chapter:
    """``ad``: the runs at ``P.rotation_deg``; ``cmp_sets``: every rotation on common seeds and length;
    ``drops``, ``eff``: per condition, loss drop per path length and efficiency ratio (per seed)."""

    fb: dict
    ad: data.AdaptSet
    cmp_sets: dict
    cmp_seeds: list
    n_common: int
    init: dict | None
    drops: dict
    eff: dict


def load(P, task_cfg: TaskConfig = TaskConfig()) -> Chapter:
    """Read (or compute what is missing of) the runs of every rotation, for validated parameters ``P``."""
    fb = data.networks(P, "fb")
    ad = data.load_adaptation(P, P.rotation_deg, "fb", seeds=P.seeds)
    if ad is None:
        raise ValueError(f"no store units for {P.rotation_deg:g} degrees under {P.results_dir!r} and no networks in "
                         f"{P.checkpoint_dir!r} to compute them")
    sets = {P.rotation_deg: ad}
    rots = P.profile.rotations if P.profile_name == "paper" else sorted(data.SIZES.trials)
    for r in rots:
        if r not in sets:
            s = data.load_adaptation(P, r, "fb", seeds=P.seeds, compute=P.profile_name == "paper")
            if s is not None:
                sets[r] = s
    cmp_sets, cmp_seeds, n_common = data.comparable(sets)
    init = data.initial_for(fb, ad, task_cfg=task_cfg)
    drops = {c: metrics.loss_drop_per_path(ad[c], None if init is None else init["test"]) for c in ad.conditions}
    eff = {c: metrics.efficiency(ad[c], "whole_run") for c in ad.conditions}
    return Chapter(fb, ad, cmp_sets, cmp_seeds, n_common, init, drops, eff)


def _eff_wins(ch: Chapter) -> str:
    """'k of n': rotations at which RFLO+c's efficiency ratio is higher than RFLO's on average over seeds."""
    both = [s for s in ch.cmp_sets.values() if "RFLO" in s.results and "RFLO+c" in s.results]
    wins = sum(1 for s in both if metrics.efficiency(s["RFLO+c"], "whole_run").mean()
               > metrics.efficiency(s["RFLO"], "whole_run").mean())
    return f"{wins} of {len(both)}"


def glue_efficiency(P, ch: Chapter) -> None:
    """Where the runs come from; efficiency, path and drop per path per condition; ratios and verdicts."""
    ad, eff, drops = ch.ad, ch.eff, ch.drops
    glue_text("rot", f"{P.rotation_deg:g}")
    glue_text("source", ad.describe())
    glue_int("n_seeds", len(ad.seeds))
    glue_int("n_trials", ad.trials)
    glue_int("n_common", ch.n_common)
    glue_text("cmp_seeds", f"{len(ch.cmp_seeds)} network seed(s) ({', '.join(map(str, ch.cmp_seeds))})"
              if ch.cmp_seeds else "the seeds computed here")
    glue_text("rots", ", ".join(f"{r:g}°" for r in ch.cmp_sets))
    for c in ad.conditions:
        key = c.replace("+c", "_c").lower()
        glue_pm(f"eff_{key}", eff[c])
        glue_pm(f"drop_{key}", drops[c]["per_path"])
        glue_pm(f"path_{key}", drops[c]["path"])
    for rule in ("RFLO", "BPTT"):
        key = rule.lower()
        if rule in eff and rule + "+c" in eff:
            glue_pm(f"eff_ratio_{key}", eff[rule + "+c"] / eff[rule])
            glue_text(f"verdict_eff_{key}", stats.verdict_text(np.log(eff[rule + "+c"] / eff[rule]), band=verdicts.BANDS["efficiency"]))
            glue_text(f"verdict_drop_{key}", stats.verdict_text(drops[rule + "+c"]["per_path"]
                                                                - drops[rule]["per_path"]))
        else:
            for k in (f"eff_ratio_{key}", f"verdict_eff_{key}", f"verdict_drop_{key}"):
                glue_text(k, "n/a (condition not run)")
    glue_text("eff_wins", _eff_wins(ch))


def activity_newton(P, ch: Chapter, task_cfg: TaskConfig = TaskConfig()) -> dict:
    """:func:`network.activity_newton_cosines` on the networks of the runs; glues the cosines over the
    movement (Newton, first order, their difference) and the verdict."""
    fb_an = {s: n for s, n in ch.fb.items() if s in ch.ad.seeds} or data.networks(P, "fb", required=True)
    an = network.activity_newton_cosines(fb_an, P.rotation_deg, targets=P.targets, stride=P.step_stride,
                                         task_cfg=task_cfg)
    mov = an["steps"] >= task.GO_STEP
    cn = an["cos_newton"][:, :, mov].mean(axis=(1, 2))
    cf = an["cos_first_order"][:, :, mov].mean(axis=(1, 2))
    glue_pm("cos_newton", cn)
    glue_pm("cos_first", cf)
    glue_pm("cos_newton_minus_first", cn - cf)
    glue_int("n_an", len(fb_an))
    glue_int("n_an_targets", len(P.targets))
    glue_text("verdict_newton", stats.verdict_text(cn - cf, band=verdicts.BANDS["cosine"]))
    return an


@dataclass
class WrecNewton:
    """``rows``: :func:`network.wrec_newton_table` on network ``seed`` (``net``)."""

    seed: int
    net: object
    rows: list


def wrec_newton(P, ch: Chapter, task_cfg: TaskConfig = TaskConfig()) -> WrecNewton:
    """The W_rec Newton analysis on the first seed of the runs (or the first network there is)."""
    fb, ad = ch.fb, ch.ad
    seed0 = ad.seeds[0] if ad.seeds[0] in fb else next(iter(data.networks(P, "fb", required=True)))
    net0 = fb[seed0] if seed0 in fb else data.networks(P, "fb", required=True)[seed0]
    w_targets = [(1 + i) % task_cfg.n_targets for i in range(P.profile.hessian_trials)]
    rows = network.wrec_newton_table(net0, P.rotation_deg, targets=w_targets, steps=P.newton_steps,
                                     iters=P.minres_iters, n_eigs=P.n_eigs, task_cfg=task_cfg)
    return WrecNewton(seed0, net0, rows)


def _glue_wrec_run(P, wn: WrecNewton) -> None:
    """Time per step, network, MINRES iterations and residuals, eigenvalues."""
    rows = wn.rows
    glue_text("wrec_seconds", f"took {np.mean([r['seconds'] for r in rows]):.0f} s")
    glue_text("wrec_seed", str(wn.seed))
    glue_int("wrec_n", int(wn.net.cfg.n))
    glue_text("wrec_iters", ", ".join(str(i) for i in P.minres_iters))
    glue_int("wrec_iters_max", max(P.minres_iters))
    glue_int("wrec_iters_min", min(P.minres_iters))
    last = [r["residual"][-1] for r in rows]
    glue_text("wrec_residuals", f"{min(last):.2g}–{max(last):.2g}")
    eig_rows = [r for r in rows if r["eigenvalues"] is not None]
    glue_text("wrec_eigs", "; ".join(("controller on: " if r["controller_on"] else "controller off: ")
                                     + ", ".join(fmt_num(e, 3) for e in r["eigenvalues"]) for r in eig_rows)
              if eig_rows else "not computed (n_eigs = 0)")


def glue_wrec(P, wn: WrecNewton) -> None:
    """Every number and sentence of the section on the W_rec Newton step."""
    rows = wn.rows
    _glue_wrec_run(P, wn)
    for on, name in ((True, "on"), (False, "off")):
        sel = [r for r in rows if r["controller_on"] == on]
        glue_num(f"wrec_grad_{name}", np.mean([r["cos_rflo_grad"] for r in sel]), 3)
        glue_num(f"wrec_gn_{name}", np.mean([r["cos_rflo_gn"] for r in sel]), 3)
        glue_num(f"wrec_newton_first_{name}", np.mean([r["cos_rflo_newton"][0] for r in sel]), 3)
        glue_num(f"wrec_newton_last_{name}", np.mean([r["cos_rflo_newton"][-1] for r in sel]), 3)
        glue_num(f"wrec_gnewton_last_{name}", np.mean([r["cos_grad_newton"][-1] for r in sel]), 3)
        glue_num(f"wrec_gnewton_first_{name}", np.mean([r["cos_grad_newton"][0] for r in sel]), 3)
    pairs = [(a["cos_rflo_newton"][i], b["cos_rflo_newton"][i]) for a in rows if a["controller_on"] for b in rows
             if not b["controller_on"] and b["step"] == a["step"] and b["target"] == a["target"]
             for i in range(len(a["iters"]))]
    n_hi = sum(1 for x, y in pairs if x > y)
    glue_text("wrec_higher", f"{n_hi} of {len(pairs)}")
    glue_text("wrec_direction", "The difference goes the paper's way: with the controller on, RFLO's update is "
              "closer to the Newton step at every step and truncation analysed." if pairs and n_hi == len(pairs)
              else "The difference does not consistently go the paper's way.")


def wrec_table(P, wn: WrecNewton):
    """Per trial, step and controller: RFLO's cosines with -g, Gauss-Newton and Newton, and the residual."""
    table = []
    for r in wn.rows:
        table.append(["on" if r["controller_on"] else "off", str(r["target"]), str(r["step"]),
                      fmt_num(r["cos_rflo_grad"], 3), fmt_num(r["cos_rflo_gn"], 3)]
                     + [fmt_num(c, 2) for c in r["cos_rflo_newton"]]
                     + [fmt_num(r["residual"][-1], 2)])
    return md_table(["controller", "target", "step t", "cos(RFLO, -g)", "cos(RFLO, Gauss-Newton)"]
                    + [f"cos(RFLO, Newton), {i} it." for i in P.minres_iters] + ["residual, last"], table)
