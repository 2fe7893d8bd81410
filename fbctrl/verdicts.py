"""The verdict table: each claim of the paper as a paired effect over network seeds, in two
columns, computed from the paper protocol's unit files (``fbctrl.paper``).

* **as published** -- the published protocol's effective rates (``protocol.Protocol.PUBLISHED``)
  and the paper's own definition of the measure;
* **fair** -- each condition at its best swept rate (``Protocol.BEST``), alignment at matched
  states (``fbctrl.matched``), efficiency at equal path length (``fbctrl.metrics``).

Every effect is paired per network seed (both conditions ran on the same network with the same
target sequence) and summarised by ``stats.paired_effect``; the verdict follows ``stats.verdict``
(the 95% interval must exclude no effect). Ratios are effects on the log scale. Seeds for which
either side's file is missing (or whose run diverged) are left out, and n says how many remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import metrics
from .paper import AdaptUnit, PaperConfig, load_runs
from .protocol import CONDITIONS, Condition, Protocol
from .stats import PairedEffect, Verdict, paired_effect, verdict

__all__ = ["Claim", "ClaimResult", "CLAIMS", "verdict_table", "format_cell", "markdown_table"]

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


@dataclass(frozen=True)
class ClaimResult:
    key: str
    figure: str
    claim: str
    column: str
    definition: str
    effect: PairedEffect
    verdict: Verdict
    seeds: tuple


@dataclass(frozen=True)
class Claim:
    """One claim: ``measure(cfg, column)`` -> (per-seed a, per-seed b, seeds, definition); the
    effect is a vs b (``log``: log(a / b)); ``paper_sign`` +1 when the paper says a > b."""

    key: str
    figure: str
    claim: str
    measure: Callable
    paper_sign: int = 1
    log: bool = True


def _paired(cfg: PaperConfig, a: Condition, b: Condition, protocol: Protocol, rotation: float, kind: str = "fb"):
    """Records of conditions a and b on the seeds where both files exist."""
    seeds = [s for s in cfg.seeds(kind)
             if all(AdaptUnit(kind, s, rotation, c, protocol, cfg.trials).path(cfg).is_file() for c in (a, b))]
    if not seeds:
        return None, None, (), []
    ra, ma = load_runs(cfg, [AdaptUnit(kind, s, rotation, a, protocol, cfg.trials) for s in seeds])
    rb, mb = load_runs(cfg, [AdaptUnit(kind, s, rotation, b, protocol, cfg.trials) for s in seeds])
    return ra, rb, tuple(seeds), [ma, mb]


def _protocol(column: str) -> Protocol:
    return Protocol.PUBLISHED if column == "as published" else Protocol.BEST


def _final_loss(a: Condition, b: Condition, rotation: float):
    def measure(cfg, column):
        ra, rb, seeds, _ = _paired(cfg, a, b, _protocol(column), rotation)
        if ra is None:
            return [], [], (), "no runs yet"
        w = min(10, cfg.trials)
        return (metrics.final_loss(ra["test_loss"], w), metrics.final_loss(rb["test_loss"], w), seeds,
                f"test loss (controller off, 8 rotated targets), mean of the last {w} of {cfg.trials} trials, "
                f"{_protocol(column).value} rates")
    return measure


def _alignment(which: str):
    """Local (steps >= go) or global alignment of RFLO+c vs RFLO: along each run (as published),
    or from the same weights (the RFLO+c run's at each matched point) with both settings (fair)."""
    def measure(cfg, column):
        ra, rb, seeds, _ = _paired(cfg, RFLO_C, RFLO, Protocol.PUBLISHED, 30.0)
        if ra is None:
            return [], [], (), "no runs yet"
        if column == "as published":
            go = cfg.task.go_step
            return (_along_run(ra, which, go), _along_run(rb, which, go), seeds,
                    f"{which} alignment along each run, every {cfg.align_every}th trial")
        key = f"matched_{which}"
        if key not in ra:
            return [], [], (), "no matched-state records"
        m = ra[key]                                   # [seeds, points, 2 (on, off), trials]
        return (m[:, :, 0].mean(axis=(1, 2)), m[:, :, 1].mean(axis=(1, 2)), seeds,
                f"{which} alignment at matched states: the RFLO+c run's weights at trials "
                f"{', '.join(map(str, ra['matched_points'][0]))}, {cfg.matched_trials} trials per setting")
    return measure


def _along_run(rec: dict, which: str, go_step: int) -> np.ndarray:
    """Per run: the mean over the aligned trials (those with a global alignment) of the trial's
    mean local alignment over steps >= go_step, or of its global alignment."""
    out = []
    for loc, glo in zip(rec["align_local"], rec["align_global"]):
        aligned = np.isfinite(glo)
        vals = loc[aligned, go_step:].mean(axis=1) if which == "local" else glo[aligned]
        out.append(vals.mean() if vals.size else np.nan)
    return np.asarray(out)


def _efficiency(cfg, column):
    prot = _protocol(column)
    ra, rb, seeds, metas = _paired(cfg, RFLO_C, RFLO, prot, 30.0)
    if ra is None:
        return [], [], (), "no runs yet"
    if column == "as published":
        lra = [m["lr"] for m in metas[0]]
        lrb = [m["lr"] for m in metas[1]]
        return (metrics.efficiency(ra, "published", lr=lra), metrics.efficiency(rb, "published", lr=lrb), seeds,
                "per trial as the published code computes it (|W_end - W_start| / sum |g_k|, g_k before the rate)")
    ea, eb, _ = metrics.efficiency_equal_path(ra, rb)
    return ea, eb, seeds, "whole run at equal path length (scale-free), best rates"


CLAIMS = (
    Claim("final_loss_rflo_30", "Fig 3b", "RFLO+c ends with a lower test loss than RFLO (30 deg)",
          _final_loss(RFLO, RFLO_C, 30.0)),
    Claim("final_loss_bptt_30", "Fig 3b", "BPTT+c ends with a lower test loss than BPTT (30 deg)",
          _final_loss(BPTT, BPTT_C, 30.0)),
    Claim("align_local", "Fig 4b", "RFLO+c's updates align better with each step's exact gradient than RFLO's",
          _alignment("local"), log=False),
    Claim("align_global", "Fig 4c", "RFLO+c's trial update aligns better with the trial's exact gradient",
          _alignment("global"), log=False),
    Claim("efficiency", "Fig 5a", "RFLO+c's weight updates are more efficient than RFLO's", _efficiency),
) + tuple(Claim(f"final_loss_rflo_{r:g}", "Fig 3b", f"RFLO+c ends with a lower test loss than RFLO ({r:g} deg)",
                _final_loss(RFLO, RFLO_C, r)) for r in (40.0, 50.0, 60.0))


def verdict_table(cfg: PaperConfig, claims=CLAIMS, columns=("as published", "fair")) -> list[ClaimResult]:
    """Every claim in every column (a claim without runs yet is inconclusive with n = 0)."""
    out = []
    for c in claims:
        for col in columns:
            a, b, seeds, definition = c.measure(cfg, col)
            eff = paired_effect(a, b, log=c.log) if len(seeds) else paired_effect([], [])
            out.append(ClaimResult(c.key, c.figure, c.claim, col, definition, eff, verdict(eff, c.paper_sign),
                                   tuple(seeds)))
    return out


def format_cell(r: ClaimResult, digits: int = 3) -> str:
    """'1.74 [1.21, 2.50], n 10, p 0.003' (a ratio for log effects, a difference otherwise)."""
    e = r.effect
    if e.n == 0:
        return "no data"
    g = lambda x: f"{x:.{digits}g}"
    p = f", p {e.p_value:.2g}" if np.isfinite(e.p_value) else ""
    return f"{g(e.mean)} [{g(e.ci_low)}, {g(e.ci_high)}], n {e.n}{p}"


def markdown_table(results: list[ClaimResult]) -> str:
    """Paper figure | claim | as published | verdict | fair | verdict."""
    rows = {}
    for r in results:
        rows.setdefault((r.figure, r.claim), {})[r.column] = r
    lines = ["| figure | claim | as published | verdict | fair | verdict |", "|---|---|---|---|---|---|"]
    for (fig, claim), cols in rows.items():
        cells = []
        for col in ("as published", "fair"):
            r = cols.get(col)
            cells += [format_cell(r), r.verdict.value] if r else ["", ""]
        lines.append(f"| {fig} | {claim} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
