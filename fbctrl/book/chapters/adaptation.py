"""What the chapter "Adapting to a visuomotor rotation" (``book/adaptation.ipynb``) shows.

* :func:`load` -- the runs the chapter reads or computes: the rotation of the learning curves, every
  rotation of the final-loss figure (made comparable), the networks without feedback.
* :func:`glue_results` -- every number and sentence of the sections on the learning curves, the
  larger rotations and the verdict, glued under the keys the markdown cites.
* :func:`rotations_table` -- the table of final test losses per rotation.
* :func:`glue_nofb` -- the sentence on the networks pre-trained without feedback.
* :func:`glue_convention` -- the two online-BPTT weight conventions: numbers, sentence, table.
* :func:`explorer_state` -- the default state of the explorer at the end of the chapter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.task import TaskConfig
from ...experiments import metrics, stats, verdicts
from ...fmt import fmt_pm, fmt_rate, md_table
from ...viz import widgets
from .. import data
from ..glue import glue_int, glue_pm, glue_text

__all__ = ["Chapter", "load", "glue_results", "rotations_table", "glue_nofb", "glue_convention",
           "explorer_state", "RATIOS"]

F = metrics.final

# glue key -> (numerator, denominator) of the per-seed ratio of final test losses
RATIOS = {"rflo_ratio": ("RFLO", "RFLO+c"), "bptt_ratio": ("BPTT", "BPTT+c"),
          "rflo_c_vs_bptt_c": ("RFLO+c", "BPTT+c"), "rflo_c_vs_bptt": ("RFLO+c", "BPTT")}


@dataclass
class Chapter:
    """The chapter's runs. ``ad``: the rotation of the learning curves; ``sets``: every rotation
    (``cmp_sets``: stored ones on their common seeds and length); ``live``: rotations computed here."""

    P: object
    task_cfg: TaskConfig
    fb: dict
    ad: data.AdaptSet
    init: dict | None
    sets: dict
    live: set
    cmp_sets: dict
    cmp_seeds: list
    n_common: int
    inits: dict
    ad_nofb: data.AdaptSet | None
    init_nofb: dict | None

    @property
    def conds(self) -> list[str]:
        return self.ad.conditions

    @property
    def fin(self) -> dict:
        """Final test loss per condition (per seed) at the rotation of the learning curves."""
        return {c: F(self.ad[c]["test_loss"]) for c in self.conds}


def _rotations(P) -> tuple[list[float], bool]:
    """Rotations of the final-loss figure, and whether those the store lacks are computed live."""
    if P.rotations_deg is not None:
        return sorted(set(P.rotations_deg) | {P.rotation_deg}), True
    if P.profile_name == "paper":
        return sorted(set(P.profile.rotations) | {P.rotation_deg}), True
    return sorted(set(data.SIZES.trials) | {P.rotation_deg}), False


def _load_sets(P, ad) -> dict:
    rots, compute_missing = _rotations(P)
    sets = {P.rotation_deg: ad}
    for r in rots:
        if r not in sets:
            s = data.load_adaptation(P, r, "fb", seeds=P.seeds, trials=P.trials, rules=P.rules,
                                     compute=compute_missing)
            if s is not None:
                sets[r] = s
    return dict(sorted(sets.items()))


def load(P, task_cfg: TaskConfig = TaskConfig()) -> Chapter:
    """Read (or compute what is missing of) every run the chapter shows, for validated parameters ``P``."""
    fb = data.networks(P, "fb")
    ad = data.load_adaptation(P, P.rotation_deg, "fb", seeds=P.seeds, trials=P.trials, rules=P.rules)
    if ad is None:
        raise ValueError(f"no store units for {P.rotation_deg:g} degrees under {P.results_dir!r} and no networks in "
                         f"{P.checkpoint_dir!r} to compute them")
    init = data.initial_for(fb, ad, task_cfg=task_cfg)
    sets = _load_sets(P, ad)
    cmp_sets, cmp_seeds, n_common = data.comparable(sets)
    inits = {r: data.initial_for(fb, s, task_cfg=task_cfg) for r, s in cmp_sets.items()}
    nofb_nets = data.networks(P, "nofb")
    ad_nofb = data.load_adaptation(P, P.rotation_deg, "nofb", seeds=None, trials=P.trials or ad.trials,
                                   rules=P.rules, compute=bool(nofb_nets))
    init_nofb = data.initial_for(nofb_nets, ad_nofb, task_cfg=task_cfg) if ad_nofb is not None else None
    return Chapter(P=P, task_cfg=task_cfg, fb=fb, ad=ad, init=init, sets=sets,
                   live={r for r, s in sets.items() if s.source == "live"}, cmp_sets=cmp_sets,
                   cmp_seeds=cmp_seeds, n_common=n_common, inits={r: v for r, v in inits.items() if v is not None},
                   ad_nofb=ad_nofb, init_nofb=init_nofb)


# ---- the numbers and sentences of the prose ---------------------------------------------------------

def _glue_runs(ch: Chapter) -> None:
    """Where the runs come from and which rotations are compared."""
    P, ad, sets = ch.P, ch.ad, ch.sets
    glue_int("final_window", metrics.FINAL_WINDOW)
    glue_text("rot", f"{P.rotation_deg:g}")
    glue_int("n_seeds", len(ad.seeds))
    glue_int("n_trials", ad.trials)
    glue_text("source", ad.describe())
    glue_text("rots", ", ".join(f"{r:g}°" for r in sets))
    glue_int("n_common", ch.n_common)
    glue_text("cmp_seeds", f"{len(ch.cmp_seeds)} network seed(s) ({', '.join(map(str, ch.cmp_seeds))})"
              if ch.cmp_seeds else "the seeds computed here")
    stored = [s for s in sets.values() if s.source != "live"]
    glue_text("trials_note", "; the runs here hold " + ", ".join(f"{s.trials} trials at {r:g}°" for r, s in sets.items()
              if s.source != "live") + ", and all rotations are compared at the shortest length" if stored else
              "; here every rotation was computed in this notebook")
    glue_text("live_note", "" if not ch.live else
              " Rotations computed in this notebook at a reduced size (" + ", ".join(f"{r:g}°" for r in sorted(ch.live))
              + f", {min(sets[r].trials for r in ch.live)} trials) are shaded: their final losses come from far fewer trials.")


def _glue_conditions(ch: Chapter) -> None:
    """Per condition: final test, training and after-effect losses, rate, divergences, final / initial."""
    ad, init, fin = ch.ad, ch.init, ch.fin
    for c in ch.conds:
        key = c.replace("+c", "_c").lower()
        glue_pm(f"final_{key}", fin[c])
        glue_pm(f"train_{key}", F(ad[c]["train_loss"]))
        glue_pm(f"after_{key}", F(ad[c]["aftereffect_loss"]))
        glue_text(f"lr_{key}", fmt_rate(ad.lrs.get(c, float("nan"))))
        glue_int(f"div_{key}", data.n_diverged(ad, c))
        glue_pm(f"gain_{key}", fin[c] / init["test"]) if init is not None else glue_text(f"gain_{key}", "n/a")
    glue_pm("init_test", init["test"]) if init is not None else glue_text("init_test", "n/a")
    glue_pm("init_after", init["aftereffect"]) if init is not None else glue_text("init_after", "n/a")


def _ratio(fin: dict, a: str, b: str):
    """Per-seed ratio final(a) / final(b), or None if a condition was not run."""
    return fin[a] / fin[b] if a in fin and b in fin else None


def _rflo_wins(ch: Chapter) -> str:
    """'k of n': rotations at which RFLO+c ends lower than RFLO on average over seeds."""
    both = [s for s in ch.cmp_sets.values() if "RFLO" in s.results and "RFLO+c" in s.results]
    wins = [s for s in both if F(s["RFLO+c"]["test_loss"]).mean() < F(s["RFLO"]["test_loss"]).mean()]
    return f"{len(wins)} of {len(both)}"


def _glue_early(ch: Chapter, r) -> None:
    """The verdict at the common length of the rotation figure, when that is shorter than the run."""
    s30 = ch.cmp_sets.get(ch.P.rotation_deg)
    if s30 is None or "RFLO" not in s30.results or "RFLO+c" not in s30.results or s30.trials >= ch.ad.trials:
        glue_text("early_text", "")
        glue_text("faded_text", "")
        return
    re_ = F(s30["RFLO"]["test_loss"]) / F(s30["RFLO+c"]["test_loss"])
    v_early = stats.verdict_text(np.log(re_), band=verdicts.BANDS["loss"])
    glue_text("early_text", f" After {s30.trials} trials, the length at which the rotations are compared, "
              f"the ratio is {fmt_pm(re_)} on seeds {', '.join(map(str, s30.seeds))} (the claim "
              f"{v_early} at that point).")
    faded = v_early.startswith("agrees") and (r is not None and np.mean(np.log(r)) <= 0)
    glue_text("faded_text", " With the controller, RFLO learns faster early on, but by the end of the long "
              "run RFLO without it has caught up." if faded else "")


def _glue_verdict(ch: Chapter) -> None:
    """Paired ratios of the conditions, and the verdict on the claim RFLO+c < RFLO."""
    fin = ch.fin
    for name, (a, b) in RATIOS.items():
        r = _ratio(fin, a, b)
        glue_pm(name, r) if r is not None else glue_text(name, "n/a")
    r = _ratio(fin, "RFLO", "RFLO+c")
    glue_text("verdict_rflo", stats.verdict_text(np.log(r), band=verdicts.BANDS["loss"]) if r is not None else "cannot be judged (RFLO not run)")
    glue_int("rflo_c_better", int((r > 1).sum()) if r is not None else 0)
    glue_text("rflo_wins", _rflo_wins(ch))
    _glue_early(ch, r)


def _glue_trends(ch: Chapter) -> None:
    """RFLO+c: training loss over the first and last trials, and where the test loss goes."""
    if "RFLO+c" not in ch.conds:
        for k in ("rflo_c_train_first", "rflo_c_train_last", "train_trend", "test_trend"):
            glue_text(k, "n/a")
        return
    tl = ch.ad["RFLO+c"]["train_loss"]
    first10, last10 = tl[:, :metrics.FINAL_WINDOW].mean(1), F(tl)
    glue_pm("rflo_c_train_first", first10)
    glue_pm("rflo_c_train_last", last10)
    glue_text("train_trend", "drops" if last10.mean() < first10.mean() else "does not drop")
    glue_text("test_trend", "falls to" if ch.init is not None and ch.fin["RFLO+c"].mean() < ch.init["test"].mean()
              else "ends at")


def glue_results(ch: Chapter) -> None:
    """Glue every number and sentence of the learning curves, the larger rotations and the verdict."""
    _glue_runs(ch)
    _glue_conditions(ch)
    _glue_verdict(ch)
    _glue_trends(ch)


# ---- tables and the other sections ------------------------------------------------------------------

def rotations_table(ch: Chapter):
    """Final test loss (mean ± SEM over seeds) per condition and rotation, and before adaptation."""
    rows = [[c] + [fmt_pm(F(s[c]["test_loss"])) if c in s.results else "n/a" for s in ch.cmp_sets.values()]
            for c in ch.conds]
    if ch.inits:
        rows.append(["before adaptation"] + [fmt_pm(ch.inits[r]["test"]) if r in ch.inits else "n/a"
                                             for r in ch.cmp_sets])
    return md_table(["condition"] + [f"{r:g}° ({s.trials} trials)" for r, s in ch.cmp_sets.items()], rows)


def glue_nofb(ch: Chapter) -> str:
    """Glue (and return) the sentence on the networks pre-trained without feedback."""
    ad, ad_nofb = ch.ad, ch.ad_nofb
    if ad_nofb is None:
        return glue_text("nofb_text", "No network pre-trained without feedback was found, so the figure shows only "
                         "the networks with feedback.")
    parts = [f"{c} ends at {fmt_pm(F(ad_nofb[c]['test_loss']))}"
             + (f" (with feedback, controller off: {fmt_pm(F(ad[c]['test_loss']))})" if c in ad.results else "")
             for c in ad_nofb.conditions]
    return glue_text("nofb_text", f"At {ch.P.rotation_deg:g}°, after {ad_nofb.trials} trials, on {len(ad_nofb.seeds)} "
                     f"network(s) without feedback: " + "; ".join(parts) + f". Source: {ad_nofb.describe()}.")


def glue_convention(ch: Chapter):
    """Glue the comparison of the two online-BPTT weight conventions; return its table (None without
    exact-sweep runs in the store)."""
    P = ch.P
    conv = data.bptt_convention(P, P.rotation_deg, "fb")
    if conv is None:
        glue_text("conv_text", f"the store holds no exact-sweep runs at {P.rotation_deg:g}° in this results folder")
        for k in ("conv_rot", "conv_trials", "conv_seeds", "conv_gap_bptt_c", "conv_gap_bptt"):
            glue_text(k, "n/a")
        return None
    glue_text("conv_rot", f"{P.rotation_deg:g}")
    glue_int("conv_trials", conv["trials"])
    glue_text("conv_seeds", ", ".join(str(s) for s in conv["seeds"]))
    parts, rows = [], []
    for c, d in conv["conds"].items():
        ratio = d["current"] / d["history"]
        glue_pm("conv_gap_" + c.lower().replace("+", "_"), ratio)
        parts.append(f"{c} ends at {fmt_pm(d['history'])} (exact) and {fmt_pm(d['current'])} (current "
                     f"weights), a ratio of {fmt_pm(ratio)}")
        rows.append([c, fmt_pm(d["history"]), fmt_pm(d["current"]), fmt_pm(ratio)])
    glue_text("conv_text", f"after {conv['trials']} trials at {P.rotation_deg:g}° (seeds "
              f"{', '.join(str(s) for s in conv['seeds'])}), " + "; ".join(parts))
    return md_table(["condition", "final test loss, exact", "final test loss, current weights", "current / exact"],
                    rows)


def explorer_state(ch: Chapter):
    """The explorer's default state: the first network, RFLO with the controller on, at the page's
    rotation, for ``explore_trials`` trials; and that network's seed (None without networks)."""
    example = next(iter(ch.fb)) if ch.fb else None
    state = widgets.ExploreState(network=f"seed {example}", rule="rflo", controller_on=True,
                                 rotation_deg=ch.P.rotation_deg, trials=ch.P.explore_trials)
    return state, example
