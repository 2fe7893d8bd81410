"""What the chapter "Learning rates" (``book/lr_sweep.ipynb``) shows.

* :func:`load` -- the learning-rate sweep of the chapter's rotation (the store, or computed live) and
  each condition's best rate.
* :func:`glue_results` -- every number and sentence of the chapter, glued under the keys the
  markdown cites, with the verdict on RFLO+c < RFLO at the best rates.
* :func:`rates_table` -- the paper's rate against the best rate, per condition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...experiments import metrics, stats, verdicts
from ...learning.rates import SHIPPED_SWEEP_GRID
from ...fmt import fmt_pm, fmt_rate, md_table
from .. import data
from ..glue import glue_int, glue_pm, glue_text

__all__ = ["Chapter", "load", "glue_results", "rates_table"]


@dataclass
class Chapter:
    """The sweep ``sw``, its best rates ``best`` (:func:`fbctrl.book.data.best_rates`) and ``j``,
    the index of the chapter's rotation in ``sw.rotations``."""

    P: object
    sw: data.SweepSet
    best: dict
    j: int

    def _at(self, c: str, i) -> np.ndarray:
        return self.sw.final[c][i, self.j] if i is not None and i >= 0 else np.full(len(self.sw.seeds), np.nan)

    def fin_best(self, c: str) -> np.ndarray:
        """Per-seed final test loss of condition ``c`` at its best rate (NaN if every rate diverged)."""
        return self._at(c, self.best[c]["best"][self.j])

    def fin_paper(self, c: str) -> np.ndarray:
        """Per-seed final test loss of condition ``c`` at the paper's rate."""
        return self._at(c, self.best[c]["paper"])

    def n_diverged(self, c: str) -> int:
        return int(self.sw.diverged[c][:, self.j].sum())


def load(P) -> Chapter:
    """The sweep of ``P.rotation_deg`` for validated parameters ``P`` (the store, or computed live)."""
    sw = data.load_sweep_set(P, P.rotation_deg, "fb", seeds=P.seeds, trials=P.trials, rules=P.rules)
    if sw is None:
        raise ValueError(f"no sweep in the store for {P.rotation_deg:g} degrees under {P.results_dir!r} and no networks in "
                         f"{P.checkpoint_dir!r} to compute it")
    j = next(i for i, r in enumerate(sw.rotations) if abs(r - P.rotation_deg) < 1e-9)
    return Chapter(P=P, sw=sw, best=data.best_rates(sw), j=j)


def source_text(sw: data.SweepSet) -> str:
    """One line: the sweep's seeds, length, rotations and where it comes from."""
    where = (f"read from the store ({', '.join(sw.files)})" if sw.source == "store" else
             "computed in this notebook at a reduced size (not saved)")
    return (f"{len(sw.seeds)} seed(s) ({', '.join(map(str, sw.seeds))}), {sw.trials} trials, "
            f"rotations {', '.join(f'{r:g}°' for r in sw.rotations)}, {where}")


def _glue_sweep(ch: Chapter) -> None:
    sw = ch.sw
    glue_text("rates_rflo", ", ".join(fmt_rate(r) for r in sw.rates.get("rflo", SHIPPED_SWEEP_GRID["rflo"])))
    glue_text("rates_bptt", ", ".join(fmt_rate(r) for r in sw.rates.get("bptt", SHIPPED_SWEEP_GRID["bptt"])))
    glue_int("final_window", metrics.FINAL_WINDOW)
    glue_text("rot", f"{ch.P.rotation_deg:g}")
    glue_int("n_seeds", len(sw.seeds))
    glue_int("n_trials", sw.trials)
    glue_text("source", source_text(sw))


def _best_lr_text(ch: Chapter, c: str) -> str:
    b = ch.best[c]
    return fmt_rate(b["best_lr"][ch.j]) if b["best"][ch.j] >= 0 else "none (all diverged)"


def _glue_conditions(ch: Chapter) -> None:
    for c in ch.sw.conditions:
        key = c.replace("+c", "_c").lower()
        glue_int(f"div_{key}", ch.n_diverged(c))
        glue_text(f"best_lr_{key}", _best_lr_text(ch, c))
        glue_text(f"paper_lr_{key}", fmt_rate(ch.best[c]["paper_lr"]))
        glue_pm(f"best_{key}", ch.fin_best(c))
        glue_pm(f"paper_{key}", ch.fin_paper(c))


def _glue_verdict(ch: Chapter) -> None:
    """Per-seed ratios at the best rates, the verdict on RFLO+c < RFLO, and the ranking."""
    conds = ch.sw.conditions
    fin = {c: ch.fin_best(c) for c in conds}
    if "RFLO" in fin and "RFLO+c" in fin:
        r = fin["RFLO"] / fin["RFLO+c"]
        glue_pm("best_ratio_rflo", r)
        glue_text("verdict_best", stats.verdict_text(np.log(r), band=verdicts.BANDS["loss"]))
    else:
        glue_text("best_ratio_rflo", "n/a")
        glue_text("verdict_best", "cannot be judged (RFLO or RFLO+c not swept)")
    if "BPTT" in fin and "BPTT+c" in fin:
        glue_pm("best_ratio_bptt", fin["BPTT"] / fin["BPTT+c"])
    else:
        glue_text("best_ratio_bptt", "n/a")
    order = sorted([c for c in conds if np.isfinite(fin[c]).any()], key=lambda c: np.nanmean(fin[c]))
    glue_text("ranking", " < ".join(order))


def glue_results(ch: Chapter) -> None:
    """Glue every number and sentence of the chapter."""
    _glue_sweep(ch)
    _glue_conditions(ch)
    _glue_verdict(ch)


def rates_table(ch: Chapter):
    """Per condition: the paper's rate and its final test loss, the best rate and its, diverged runs."""
    rows = []
    for c in ch.sw.conditions:
        b = ch.best[c]
        rows.append([c, fmt_rate(b["paper_lr"]), fmt_pm(ch.fin_paper(c)),
                     fmt_rate(b["best_lr"][ch.j]) if b["best"][ch.j] >= 0 else "n/a", fmt_pm(ch.fin_best(c)),
                     f"{ch.n_diverged(c)} of {ch.sw.diverged[c][:, ch.j].size}"])
    return md_table(["condition", "paper's rate", "final test loss (paper's rate)", "best rate",
                     "final test loss (best rate)", "diverged runs"], rows)
