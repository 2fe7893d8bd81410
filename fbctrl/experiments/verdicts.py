"""The verdict table: each claim of the paper as a paired effect over network seeds, in two
columns, computed from the paper protocol's unit files (``fbctrl.experiments.paper``).

* **as published** -- the published protocol's effective rates (``protocol.Protocol.PUBLISHED``)
  and the paper's own definition of the measure;
* **fair** -- each condition at its best swept rate (``Protocol.BEST``), alignment at matched
  states (``fbctrl.analysis.matched``), efficiency at equal path length (``fbctrl.experiments.metrics``).

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
from .paper import AdaptUnit, PaperConfig, Variant, load_runs
from .protocol import CONDITIONS, Condition, Protocol
from .stats import PairedEffect, Verdict, paired_effect, verdict

__all__ = ["Claim", "ClaimResult", "CLAIMS", "Column", "AS_PUBLISHED", "FAIR", "ROBUSTNESS", "COLUMNS",
           "verdict_table", "robustness_table", "format_cell", "table_rows", "markdown_table"]

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


@dataclass(frozen=True)
class Column:
    """How a claim is measured: the protocol of the runs, one change to them (``variant``), and
    the measure's definition (final-loss window, the trial it is read at, efficiency definition,
    alignment along the run or at matched states). ``as published`` and ``fair`` are the verdict
    table's columns; the others each change one thing of ``as published`` (robustness table)."""

    name: str
    protocol: Protocol = Protocol.PUBLISHED
    variant: Variant = Variant.NONE
    window: int = 10                   # final loss: mean over the last `window` trials ...
    at_trial: int | None = None        # ... ending at this trial (None: the last)
    curve_area: bool = False           # final loss replaced by the mean over all trials
    efficiency: str = "published"      # metrics.EFFICIENCY_DEFINITIONS
    matched: bool = False              # alignment at matched states


AS_PUBLISHED = Column("as published")
FAIR = Column("fair", protocol=Protocol.BEST, efficiency="equal_path", matched=True)
ROBUSTNESS = (
    Column("paper-text rates (no ÷10, no |W_fb|/|W_out|)", protocol=Protocol.PAPER_TEXT),
    Column("integrated error from e_0 (published quirk)", variant=Variant.ERROR_START_E0),
    Column("online BPTT with the current weights", variant=Variant.BPTT_CURRENT),
    Column("final window 50 trials", window=50),
    Column("after 500 trials", at_trial=500),
    Column("learning-curve area", curve_area=True),
    Column("efficiency per trial, scale-free", efficiency="per_trial"),
    Column("efficiency whole run", efficiency="whole_run"),
)
COLUMNS = {c.name: c for c in (AS_PUBLISHED, FAIR) + ROBUSTNESS}


def _column(col) -> Column:
    if isinstance(col, Column):
        return col
    try:
        return COLUMNS[col]
    except KeyError:
        raise ValueError(f"column must be one of {', '.join(COLUMNS)}, got {col!r}") from None


def _paired(cfg: PaperConfig, a: Condition, b: Condition, protocol: Protocol, rotation: float, kind: str = "fb",
            variant: Variant = Variant.NONE):
    """Records of conditions a and b on the seeds where both files exist."""
    unit = lambda s, c: AdaptUnit(kind, s, rotation, c, protocol, cfg.trials, variant=variant)  # noqa: E731
    seeds = [s for s in cfg.seeds(kind) if all(unit(s, c).path(cfg).is_file() for c in (a, b))]
    if not seeds:
        return None, None, (), []
    ra, ma = load_runs(cfg, [unit(s, a) for s in seeds])
    rb, mb = load_runs(cfg, [unit(s, b) for s in seeds])
    return ra, rb, tuple(seeds), [ma, mb]


def _loss(rec: dict, cfg: PaperConfig, col: Column) -> tuple[np.ndarray, str]:
    tl = rec["test_loss"]
    if col.curve_area:
        return metrics.curve_area(tl), f"mean test loss over all {tl.shape[-1]} trials (learning-curve area)"
    end = min(col.at_trial or tl.shape[-1], tl.shape[-1])
    w = min(col.window, end)
    return (metrics.final_loss(tl[..., :end], w),
            f"test loss (controller off, 8 rotated targets), mean of the last {w} of {end} trials")


def _final_loss(a: Condition, b: Condition, rotation: float):
    def measure(cfg, col):
        col = _column(col)
        ra, rb, seeds, _ = _paired(cfg, a, b, col.protocol, rotation, variant=col.variant)
        if ra is None:
            return [], [], (), "no runs yet"
        la, what = _loss(ra, cfg, col)
        lb, _ = _loss(rb, cfg, col)
        return la, lb, seeds, f"{what}, {col.protocol.value} rates" + (
            f", {col.variant.value}" if col.variant is not Variant.NONE else "")
    return measure


def _alignment(which: str):
    """Local (steps >= go) or global alignment of RFLO+c vs RFLO: along each run (as published),
    or from the same weights (the RFLO+c run's at each matched point) with both settings (fair)."""
    def measure(cfg, col):
        col = _column(col)
        prot = Protocol.PUBLISHED if col.protocol is Protocol.BEST else col.protocol
        ra, rb, seeds, _ = _paired(cfg, RFLO_C, RFLO, prot, 30.0, variant=col.variant)
        if ra is None:
            return [], [], (), "no runs yet"
        if not col.matched:
            go = cfg.task.go_step
            return (_along_run(ra, which, go), _along_run(rb, which, go), seeds,
                    f"{which} alignment along each run, every {cfg.align_every}th trial, {prot.value} rates")
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


EFFICIENCY_TEXT = {
    "published": "per trial as the published code computes it (|W_end - W_start| / sum |g_k|, g_k before the rate)",
    "per_trial": "per trial, scale-free (|W_end - W_start| / sum |dW_k|)",
    "whole_run": "whole run (|W_final - W_initial| / sum of every |dW_k|)",
    "equal_path": "whole run at equal path length (scale-free)",
}


def _efficiency(cfg, col):
    col = _column(col)
    ra, rb, seeds, metas = _paired(cfg, RFLO_C, RFLO, col.protocol, 30.0, variant=col.variant)
    if ra is None:
        return [], [], (), "no runs yet"
    what = f"{EFFICIENCY_TEXT[col.efficiency]}, {col.protocol.value} rates"
    if col.efficiency == "equal_path":
        ea, eb, _ = metrics.efficiency_equal_path(ra, rb)
        return ea, eb, seeds, what
    lra = [m["lr"] for m in metas[0]]
    lrb = [m["lr"] for m in metas[1]]
    return (metrics.efficiency(ra, col.efficiency, lr=lra), metrics.efficiency(rb, col.efficiency, lr=lrb), seeds,
            what)


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
            col = _column(col)
            a, b, seeds, definition = c.measure(cfg, col)
            eff = paired_effect(a, b, log=c.log) if len(seeds) else paired_effect([], [])
            out.append(ClaimResult(c.key, c.figure, c.claim, col.name, definition, eff, verdict(eff, c.paper_sign),
                                   tuple(seeds)))
    return out


# Which robustness columns change a claim's measurement at all (the others would repeat the
# as-published cell): the current-weights sweep only touches BPTT, the efficiency definitions only
# the efficiency, the loss windows only the final losses.
def _applies(claim: Claim, col: Column) -> bool:
    if col.variant is Variant.BPTT_CURRENT:
        return claim.key.startswith("final_loss_bptt")
    if col.efficiency != "published":
        return claim.key == "efficiency"
    if col.curve_area or col.window != 10 or col.at_trial is not None:
        return claim.key.startswith("final_loss")
    return True


def robustness_table(cfg: PaperConfig, claims=CLAIMS) -> list[tuple[ClaimResult, list[ClaimResult]]]:
    """For every claim: its as-published result and, for each single change of
    :data:`ROBUSTNESS` that applies to it, the result with that change; a change *flips* the
    verdict when its verdict differs from the as-published one."""
    out = []
    for c in claims:
        base = verdict_table(cfg, (c,), (AS_PUBLISHED,))[0]
        rows = verdict_table(cfg, (c,), tuple(col for col in ROBUSTNESS if _applies(c, col)))
        out.append((base, rows))
    return out


def format_cell(r: ClaimResult, digits: int = 3) -> str:
    """'1.74 [1.21, 2.50], n 10, p 0.003' (a ratio for log effects, a difference otherwise)."""
    e = r.effect
    if e.n == 0:
        return "no data"
    g = lambda x: f"{x:.{digits}g}"
    p = f", p {e.p_value:.2g}" if np.isfinite(e.p_value) else ""
    return f"{g(e.mean)} [{g(e.ci_low)}, {g(e.ci_high)}], n {e.n}{p}"


def table_rows(results: list[ClaimResult]) -> list[list[str]]:
    """Rows figure | claim | as published | verdict | fair | verdict, one per claim, cells
    from :func:`format_cell`."""
    rows = {}
    for r in results:
        rows.setdefault((r.figure, r.claim), {})[r.column] = r
    out = []
    for (fig, claim), cols in rows.items():
        cells = [fig, claim]
        for col in ("as published", "fair"):
            r = cols.get(col)
            cells += [format_cell(r), r.verdict.value] if r else ["", ""]
        out.append(cells)
    return out


def markdown_table(results: list[ClaimResult]) -> str:
    """Paper figure | claim | as published | verdict | fair | verdict."""
    lines = ["| figure | claim | as published | verdict | fair | verdict |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines)
