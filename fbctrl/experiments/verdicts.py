"""The verdict table: each claim of the paper as a paired effect over network seeds, in two
columns, computed from the paper protocol's unit files (``fbctrl.experiments.paper``).

* **as published** -- the published protocol's effective rates (``protocol.Protocol.PUBLISHED``)
  and the paper's own definition of the measure;
* **fair** -- each condition at its best swept rate (``Protocol.BEST``), alignment at matched
  states (``fbctrl.analysis.matched``), efficiency at equal path length (``fbctrl.experiments.metrics``).

Every effect is paired per network seed (both conditions ran on the same network with the same
target sequence) and summarised by ``stats.paired_effect``; the verdict follows ``stats.verdict``
with the claim's band of negligible effects (:data:`BANDS`): negligible, agrees, disagrees or
inconclusive. Ratios are effects on the log scale. Seeds for which either side's file is missing
(or whose run diverged) are left out, and n says how many remain.

The robustness table (:data:`ROBUSTNESS`) repeats each claim under every reasonable convention
of its measure (open- and closed-loop Jacobian, the fed-back error detached or kept in the exact
gradient, the efficiency's definitions and its rate factor, trial windows and matched points for
the stage of learning, every W_rec damping, the band halved and doubled); :func:`mark_results`
marks a verdict cell that rests on one convention, some dampings, one stage, its band, or a
learning-rate artefact (:data:`MARKS`, :func:`footnotes`).

The fair cells that run at the swept rates are also computed on the networks the sweep did not
use (``FAIR_HELD_OUT``), and :func:`multiplicity` adjusts each column's p-values over its claims
(Benjamini-Hochberg, ``scipy.stats.false_discovery_control``) and says which verdicts survive.

Claims that need only the networks (Figures 2c, 4a, 5b and the published code's W_rec Newton
comparison; ``fbctrl.experiments.network_units``) pair two quantities of the *same* network (the control
input against the null model, controller on against off, Newton against first order). Their
"pushes in pre-training" column measures the same on the book's shipped networks (pre-trained
with pushes) and reports those networks' own interval and verdict: a shipped and a published
network of the same seed index are different networks, so nothing is paired across them, and
the robustness table only says whether the verdict differs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .. import fmt
from . import metrics, network_units
from .network_units import PAPER_DAMPING
from .paper import AdaptUnit, PaperConfig, Variant, is_done, load_network_units, load_runs
from .protocol import CONDITIONS, Condition, Protocol
from .stats import Band, PairedEffect, Verdict, equivalence_test, paired_effect, verdict

__all__ = ["Claim", "ClaimResult", "CLAIMS", "NETWORK_CLAIMS", "RATE_CLAIMS", "Column", "AS_PUBLISHED", "FAIR",
           "FAIR_HELD_OUT", "ROBUSTNESS", "COLUMNS", "verdict_table", "robustness_table", "format_effect", "Adjusted",
           "adjust", "multiplicity", "format_cell", "table_rows", "markdown_table", "applies", "Mark", "MARKS",
           "mark_results", "footnotes", "BANDS", "claim_band"]

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
    band: tuple = ()                  # the negligible band's edges on the reported scale (ratio or difference)
    band_reason: str = ""
    equivalence_p: float = float("nan")   # the equivalence test's p (TOST; < 0.025: negligible)
    marks: tuple = ()                 # Marks: what the verdict rests on (mark_results)


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
    network: str | None = None        # the fbctrl.experiments.network_units measure of a claim that needs only the networks
    short: str = ""                   # a label for figures ("RFLO+c < RFLO, 30°")
    rotation: float | None = None     # the rotation of the runs it reads (None: it needs only the networks)
    band: Band | None = None          # the smallest effect of interest (None: the three-word rule)


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
    # network-level claims (fbctrl.experiments.network_units)
    networks: str = "published"        # "shipped": the networks pre-trained with pushes (checkpoints/)
    pairing: str = "next"              # u_k against the gradient w.r.t. r_{k+1} ("same": r_k)
    lag: int = 1                       # Jacobian lag (1: Figure 4a)
    damping: float | str = PAPER_DAMPING   # W_rec Newton damping; "smallest converged": the grid's smallest
                                       # damping at which every solve of every network converged
    solves: str = "converged"          # "all": also the solves that did not converge
    wrec_direction: str = "newton"     # "gradient": RFLO's update against the first-order direction
    held_out: bool = False             # only the networks the learning-rate sweep did not use (runs at best rates)
    band_scale: float = 1.0            # the claim's negligible band times this (robustness: halved, doubled)
    jacobian: str = "open"             # "closed": through the closed loop; "... largest": at the lag of the largest
                                       # effect; "rate...": the rate Jacobian dr_(k+L)/dr_k (same variants)
    trial_window: tuple | None = None  # (first, stop): per-trial alignment or efficiency over these trials only
    matched_point: int | None = None   # alignment at one matched point (index of PaperConfig.matched_points)
    gradient: str = "detached"         # "loop": the fed-back error kept in the exact gradient (pre-trained weights)
    group: str = ""                    # what kind of change a robustness row is (MARKS; "" for the two columns)

    def network_change(self) -> bool:
        """Does this column change a network-level measure (and nothing of the runs)?"""
        return (self.networks != "published" or self.pairing != "next" or self.lag != 1
                or self.damping != PAPER_DAMPING or self.solves != "converged" or self.wrec_direction != "newton"
                or self.jacobian != "open")


AS_PUBLISHED = Column("as published")
FAIR = Column("fair", protocol=Protocol.BEST, efficiency="equal_path", matched=True, damping="smallest converged")
# the fair cells that run at the swept rates, on the networks that did not choose them
FAIR_HELD_OUT = Column("fair, held-out networks", protocol=Protocol.BEST, efficiency="equal_path", matched=True,
                       damping="smallest converged", held_out=True)
_WREC_GRID = network_units.NetMeasureConfig().wrec_dampings
# the lags of the robustness rows (the chapter's figure shows every stored lag, 1 to 10)
_JAC_LAGS = tuple(L for L in (1, 5, 10) if L in network_units.NetMeasureConfig().jacobian_lags)
# the trial windows of the stage-of-learning rows (first trial, stop)
TRIAL_WINDOWS = ((0, 10), (10, 50), (50, 200), (200, 1000))
_MATCHED_POINTS = PaperConfig().matched_points
ROBUSTNESS = (
    Column("paper-text rates (no ÷10, no |W_fb|/|W_out|)", protocol=Protocol.PAPER_TEXT, group="protocol"),
    Column("integrated error from e_0 (published quirk)", variant=Variant.ERROR_START_E0, group="protocol"),
    Column("online BPTT with the current weights", variant=Variant.BPTT_CURRENT, group="protocol"),
    Column("final window 50 trials", window=50, group="stage"),
    Column("after 500 trials", at_trial=500, group="stage"),
    Column("learning-curve area", curve_area=True, group="stage"),
    Column("efficiency per trial, scale-free", efficiency="per_trial", group="convention"),
    Column("efficiency whole run", efficiency="whole_run", group="convention"),
    Column("the published efficiency's rate factor alone: lr(RFLO+c) / lr(RFLO)", efficiency="rate_factor",
           group="artefact"),
) + tuple(Column(f"efficiency per trial, scale-free, trials {a}-{b - 1}", efficiency="per_trial", trial_window=(a, b),
                 group="stage") for a, b in TRIAL_WINDOWS) + (
    Column("efficiency at matched states, pre-trained weights (scale-free, per trial)", efficiency="matched",
           group="stage"),
) + tuple(Column(f"alignment along the runs, trials {a}-{b - 1}", trial_window=(a, b), group="stage")
          for a, b in TRIAL_WINDOWS) + tuple(
    Column(f"alignment at matched states, trial {t} weights", matched=True, matched_point=i, group="stage")
    for i, t in enumerate(_MATCHED_POINTS)) + (
    Column("alignment at the pre-trained weights, fed-back error detached", gradient="detached-pretrained",
           group="convention"),
    Column("alignment at the pre-trained weights, loop kept in the gradient", gradient="loop", group="convention"),
    Column("networks pre-trained with pushes (the shipped networks, not paired)", networks="shipped", group="protocol"),
    Column("u_k paired with r_k instead of r_{k+1}", pairing="same", group="convention"),
) + tuple(Column(f"Jacobian lag {L}", lag=int(L), group="convention") for L in _JAC_LAGS if L != 1) + tuple(
    Column(f"closed-loop Jacobian lag {L}", lag=int(L), jacobian="closed", group="convention") for L in _JAC_LAGS) + (
    Column("closed-loop Jacobian at the lag of the largest effect", jacobian="closed, largest", group="convention"),
    Column("rate Jacobian dr_(k+1)/dr_k", jacobian="rate", group="convention"),
    Column("rate Jacobian through the closed loop at the lag of the largest effect",
           jacobian="rate closed, largest", group="convention"),
) + tuple(Column(f"W_rec Newton at damping {d:g}", damping=float(d), group="damping") for d in _WREC_GRID
          if d != PAPER_DAMPING) + (
    Column(f"W_rec Newton at damping {PAPER_DAMPING:g}, every solve (converged or not)", solves="all",
           group="damping"),
    Column("W_rec: the gradient (first order) instead of the Newton step", wrec_direction="gradient",
           group="check"),
    Column("smallest effect of interest halved", band_scale=0.5, group="band"),
    Column("smallest effect of interest doubled", band_scale=2.0, group="band"),
)
COLUMNS = {c.name: c for c in (AS_PUBLISHED, FAIR, FAIR_HELD_OUT) + ROBUSTNESS}
ROBUSTNESS_ROTATION = 30.0   # the rotation of the runs with another protocol or a variant (paper-text, e_0, current weights)


def _column(col) -> Column:
    if isinstance(col, Column):
        return col
    try:
        return COLUMNS[col]
    except KeyError:
        raise ValueError(f"column must be one of {', '.join(COLUMNS)}, got {col!r}") from None


def _paired(cfg: PaperConfig, a: Condition, b: Condition, protocol: Protocol, rotation: float, kind: str | None = None,
            variant: Variant = Variant.NONE, held_out: bool = False):
    """Records of conditions a and b on the seeds where both files exist (``held_out``: only the
    networks the learning-rate sweep did not use). ``kind`` (None: the config's network family,
    'fb' for the paper protocol, a variant's for ``beyond.BeyondConfig``, whose ``adapt_unit``
    names the run files: its limit-cycle runs are perturbed by a frequency shift, not a rotation)."""
    kind = kind or getattr(cfg, "family", "fb")
    make = getattr(cfg, "adapt_unit", AdaptUnit)
    unit = lambda s, c: make(kind, s, rotation, c, protocol, cfg.trials, variant=variant)  # noqa: E731
    pool = [s for s in cfg.seeds(kind) if not (held_out and s in cfg.sweep_seeds)]
    # files that are whole and current (a damaged or stale one counts as missing; the CLI names it)
    seeds = [s for s in pool if all(is_done(cfg, unit(s, c)) for c in (a, b))]
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


def _paired_runs(cfg: PaperConfig, a: Condition, b: Condition, col: Column, rotation: float):
    """``_paired`` for a column; a fair cell at a rotation of the Figure 8 sweep reads the runs at
    that rotation's own best rates where they exist (``Variant.OWN_BEST``), else those at the
    sweep rotation's. -> (ra, rb, seeds, metas, own: whether the own rates were read)."""
    if col.protocol is Protocol.BEST and col.variant is Variant.NONE and rotation in cfg.sweep_rotations_beyond:
        ra, rb, seeds, metas = _paired(cfg, a, b, col.protocol, rotation, variant=Variant.OWN_BEST,
                                       held_out=col.held_out)
        if ra is not None:
            return ra, rb, seeds, metas, True
    return (*_paired(cfg, a, b, col.protocol, rotation, variant=col.variant, held_out=col.held_out), False)


def _final_loss(a: Condition, b: Condition, rotation: float):
    def measure(cfg, col):
        col = _column(col)
        ra, rb, seeds, _, own = _paired_runs(cfg, a, b, col, rotation)
        if ra is None:
            return [], [], (), "no runs yet"
        la, what = _loss(ra, cfg, col)
        lb, _ = _loss(rb, cfg, col)
        return la, lb, seeds, f"{what}, {_best_rates_text(cfg, col, rotation, own)}" + (
            f", {col.variant.value}" if col.variant is not Variant.NONE else "")
    return measure


def _alignment(which: str):
    """Local (steps >= go) or global alignment of RFLO+c vs RFLO: along each run (as published;
    ``trial_window``: its aligned trials in that window), or from the same weights (the RFLO+c
    run's at each matched point, or at one) with both settings (fair); ``gradient`` "loop" /
    "detached-pretrained": at the pre-trained weights from the network unit ``matched_loop``."""
    def measure(cfg, col):
        col = _column(col)
        if col.gradient != "detached":
            return _alignment_pretrained(cfg, col, which)
        prot = Protocol.PUBLISHED if col.protocol is Protocol.BEST else col.protocol
        ra, rb, seeds, _ = _paired(cfg, RFLO_C, RFLO, prot, 30.0, variant=col.variant)
        if ra is None:
            return [], [], (), "no runs yet"
        if not col.matched:
            go = cfg.task.go_step
            win = col.trial_window
            where = f"trials {win[0]}-{win[1] - 1}" if win else "each run"
            a, b = _along_run(ra, which, go, win), _along_run(rb, which, go, win)
            if not np.isfinite(a).any():
                return [], [], (), f"no aligned trial in {where} (alignment every {cfg.align_every}th trial)"
            return (a, b, seeds, f"{which} alignment along {where}, every {cfg.align_every}th trial, {prot.value} rates")
        key = f"matched_{which}"
        if key not in ra:
            return [], [], (), "no matched-state records"
        m = ra[key]                                   # [seeds, points, 2 (on, off), trials]
        pts = ra["matched_points"][0]
        if col.matched_point is not None:
            if col.matched_point >= m.shape[1]:
                return [], [], (), f"no matched point {col.matched_point} (the files hold {m.shape[1]})"
            m = m[:, col.matched_point:col.matched_point + 1]
            pts = pts[col.matched_point:col.matched_point + 1]
        return (m[:, :, 0].mean(axis=(1, 2)), m[:, :, 1].mean(axis=(1, 2)), seeds,
                f"{which} alignment at matched states: the RFLO+c run's weights at trial"
                f"{'s' if len(pts) > 1 else ''} {', '.join(map(str, pts))}, {cfg.matched_trials} trials per setting, "
                f"fed-back error detached")
    return measure


def _alignment_pretrained(cfg: PaperConfig, col: Column, which: str):
    """At the pre-trained weights (network unit ``matched_loop``): the exact gradient with the
    fed-back error detached, or with the loop kept (``col.gradient``)."""
    seeds, recs, _ = load_network_units(cfg, "matched_loop", "published")
    if not seeds:
        return [], [], (), "not computed yet (python -m fbctrl paper --only network)"
    grad = "loop" if col.gradient == "loop" else "detached"
    a = np.array([float(np.mean(r[f"{which}_{grad}"][0])) for r in recs])
    b = np.array([float(np.mean(r[f"{which}_{grad}"][1])) for r in recs])
    what = "kept in the gradient" if grad == "loop" else "detached from the gradient"
    return (a, b, tuple(seeds), f"{which} alignment at the pre-trained weights, {recs[0][f'{which}_{grad}'].shape[1]} "
            f"trials per setting (the matched states' targets and initial states), fed-back error {what}")


def _along_run(rec: dict, which: str, go_step: int, window: tuple | None = None) -> np.ndarray:
    """Per run: the mean over the aligned trials (those with a global alignment; within
    ``window`` = (first, stop) if given) of the trial's mean local alignment over steps >= go_step,
    or of its global alignment."""
    out = []
    for loc, glo in zip(rec["align_local"], rec["align_global"]):
        aligned = np.isfinite(glo)
        if window is not None:
            idx = np.arange(aligned.size)
            aligned &= (idx >= window[0]) & (idx < window[1])
        vals = loc[aligned, go_step:].mean(axis=1) if which == "local" else glo[aligned]
        out.append(vals.mean() if vals.size else np.nan)
    return np.asarray(out)


EFFICIENCY_TEXT = {
    "published": "per trial as the published code computes it (|W_end - W_start| / sum |g_k|, g_k before the rate)",
    "per_trial": "per trial, scale-free (|W_end - W_start| / sum |dW_k|)",
    "whole_run": "whole run (|W_final - W_initial| / sum of every |dW_k|)",
    "equal_path": "whole run at equal path length (scale-free)",
    "rate_factor": ("the ratio of the two runs' learning rates, the factor by which the published definition "
                    "differs from the scale-free one (published = rate ratio x scale-free ratio)"),
    "matched": ("per trial at matched states, scale-free (|sum_k dW_k| / sum_k |dW_k| of RFLO's updates with the "
                "weights frozen), at the pre-trained weights, same targets and initial states on and off"),
}


# what a fair cell at a rotation of the Figure 8 sweep says while its own rates have no runs (the
# 30 deg sweep's stand in): the definition carries it and mark_results marks the cell ("rates")
OWN_RATES_MISSING = "sweep's own best rates have no runs yet"


def _best_rates_text(cfg: PaperConfig, col: Column, rotation: float, own: bool = False) -> str:
    if own:
        return f"each condition at its best rate of the {rotation:g} deg sweep"
    if col.protocol is Protocol.BEST and rotation != cfg.sweep_rotation:
        return (f"each condition at its best rate of the {cfg.sweep_rotation:g} deg sweep (the {rotation:g} deg "
                f"{OWN_RATES_MISSING})")
    return f"{col.protocol.value} rates"


def _efficiency(rotation: float):
    def measure(cfg, col):
        col = _column(col)
        if col.efficiency == "matched":
            return _matched_efficiency(cfg)
        ra, rb, seeds, metas, own = _paired_runs(cfg, RFLO_C, RFLO, col, rotation)
        if ra is None:
            return [], [], (), "no runs yet"
        what = f"{EFFICIENCY_TEXT[col.efficiency]}, {_best_rates_text(cfg, col, rotation, own)}"
        if col.efficiency == "equal_path":
            ea, eb, _ = metrics.efficiency_equal_path(ra, rb)
            return ea, eb, seeds, what
        lra = np.array([m["lr"] for m in metas[0]], dtype=np.float64)
        lrb = np.array([m["lr"] for m in metas[1]], dtype=np.float64)
        if col.efficiency == "rate_factor":
            return lra, lrb, seeds, what
        if col.trial_window is not None:
            a, b = col.trial_window
            if a >= ra["dW_trial"].shape[-1]:
                return [], [], (), f"no trials {a}-{b - 1} (the runs have {ra['dW_trial'].shape[-1]})"
            what += f", trials {a}-{min(b, ra['dW_trial'].shape[-1]) - 1} only"
            return (metrics.efficiency(ra, col.efficiency, lr=lra, trials=col.trial_window),
                    metrics.efficiency(rb, col.efficiency, lr=lrb, trials=col.trial_window), seeds, what)
        return (metrics.efficiency(ra, col.efficiency, lr=lra), metrics.efficiency(rb, col.efficiency, lr=lrb), seeds,
                what)
    return measure


def _matched_efficiency(cfg: PaperConfig):
    """Scale-free per-trial efficiency at the pre-trained weights, controller on and off from the
    same weights, targets and initial states (network unit ``matched_loop``)."""
    seeds, recs, _ = load_network_units(cfg, "matched_loop", "published")
    if not seeds:
        return [], [], (), "not computed yet (python -m fbctrl paper --only network)"
    a = np.array([float(np.mean(r["efficiency"][0])) for r in recs])
    b = np.array([float(np.mean(r["efficiency"][1])) for r in recs])
    return a, b, tuple(seeds), f"{EFFICIENCY_TEXT['matched']}, {recs[0]['efficiency'].shape[1]} trials per setting"


def _source_text(col: Column) -> str:
    if col.networks == "shipped":
        return ("the shipped networks (pre-trained with pushes): their own per-network effects, not paired with "
                "the published networks")
    return "the published networks"


def _wrec_text(cfg: PaperConfig, col: Column, damping: float, cells: list[int], used_res: list[float],
               recs: list[dict]) -> str:
    tol = cfg.network_measures.wrec_converged
    m = cfg.network_measures
    total = len(m.wrec_targets) * len(m.wrec_steps)
    if col.wrec_direction == "gradient":
        return (f"cos(RFLO's update, -dl_t/dW_rec) controller on minus off, {total} (target, step) cells per network "
                f"(first order: no solve)")
    head = f"cos(RFLO's update, -(H + {damping:g} I)^-1 g) for W_rec, controller on minus off"
    if col.solves == "all":
        res = [network_units.wrec_convergence(r, tol)[network_units.damping_index(r, damping)]["max_residual"]
               for r in recs]
        return (f"{head}, every solve whether converged or not (largest true relative residual per network "
                f"{', '.join(f'{x:.2g}' for x in res)}; MINRES, at most {m.wrec_maxiter} iterations)")
    if not any(cells):
        res = [network_units.wrec_convergence(r, tol)[network_units.damping_index(r, damping)] for r in recs]
        lo = min(x["median_residual"] for x in res) if res else float("nan")
        hi = max(x["max_residual"] for x in res) if res else float("nan")
        return (f"{head}: {NOT_CONVERGED} {damping:g} (true relative residual above {tol:g} after at "
                f"most {m.wrec_maxiter} MINRES iterations; median {lo:.2g}, largest {hi:.2g}), so not judged")
    return (f"{head}, only (target, step) cells whose solves converged (true relative residual <= {tol:g}; "
            f"largest used {max(used_res):.2g}): {sum(cells)} of {total * len(recs)} cells")


def _jacobian_claim(recs: list[dict], col: Column, go: int, trial: str):
    """Figure 4a's (on, off) per network: the open-loop Jacobian at ``col.lag``, the closed-loop one
    (the error state included) at that lag, or the closed-loop one at the stored lag where the
    geometric-mean ratio on / off over the networks is smallest (the lag is stated)."""
    lags = [int(L) for L in recs[0]["lags"]]
    closed = "closed" in col.jacobian
    rates = col.jacobian.startswith("rate")
    largest = col.jacobian.endswith("largest")
    if closed and any("norm_loop_L1" not in r for r in recs):
        return None, "closed-loop Jacobian not stored (a network with a feedback delay)"
    if rates and any("norm_rate_on_L1" not in r for r in recs):
        return None, "rate Jacobian not stored (units computed before it was measured)"
    lag = col.lag
    if largest:
        eff = {L: np.mean([np.log(np.divide(*network_units.jacobian_values(r, L, go, closed_loop=closed,
                                                                             rates=rates)))
                           for r in recs]) for L in lags}
        lag = min(eff, key=eff.get)
    if any(lag not in [int(L) for L in r["lags"]] for r in recs):
        return None, f"lag {lag} not measured (the files hold lags {', '.join(map(str, lags))})"
    vals = [network_units.jacobian_values(r, lag, go, closed_loop=closed, rates=rates) for r in recs]
    kind = "closed loop: the product of the augmented one-step Jacobians of (x, e)" if closed else "open loop"
    of = f"dr_(k+{lag})/dr_k = D_(k+{lag}) dx_(k+{lag})/dx_k D_k" if rates else f"dx_(k+{lag})/dx_k"
    what = (f"spectral norm of {of} ({kind}), controller on / off, mean over the movement of the {trial}")
    if largest:
        what = f"at lag {lag}, the largest effect among the stored lags {lags[0]}-{lags[-1]}: " + what
    return vals, what


def _network_claim(measure: str):
    """A claim that needs only the networks: per network (a, b) from its unit file."""
    def run(cfg, col):
        col = _column(col)
        seeds, recs, _ = load_network_units(cfg, measure, col.networks)
        if not seeds:
            return [], [], (), f"no {col.networks} network measured yet"
        go, rot = cfg.task.go_step, cfg.network_measures.rotation_deg
        trial = f"first trial of a {rot:g} deg rotation"
        j = "r_{k+1}" if col.pairing == "next" else "r_k"
        if measure == "activity":
            vals = [network_units.activity_values(r, col.pairing, go) for r in recs]
            what = (f"cos(u_k, -dL/d{j}) minus that of a random feedback matrix (the null model), controller on, mean "
                    f"over 8 targets and the movement (k >= {go}) of the {trial}")
        elif measure == "activity_newton":
            vals = [network_units.activity_newton_values(r, col.pairing, go) for r in recs]
            what = (f"cos(u_k, Newton direction -(H + {PAPER_DAMPING:g} I)^-1 g w.r.t. {j}) minus cos(u_k, -g), "
                    f"controller on, movement of the {trial}")
        elif measure == "jacobian":
            vals, what = _jacobian_claim(recs, col, go, trial)
            if vals is None:
                return [], [], (), what
        else:
            tol = cfg.network_measures.wrec_converged
            damping = col.damping
            if damping == "smallest converged":
                damping = network_units.smallest_converged_damping(recs, tol)
                if damping is None:
                    return [], [], (), "no damping of the grid at which every W_rec solve converged"
            w = [network_units.wrec_values(r, damping, tol, direction=col.wrec_direction,
                                           converged_only=col.solves == "converged") for r in recs]
            vals = [(x["on"], x["off"]) for x in w]
            what = _wrec_text(cfg, col, damping, [x["cells"] for x in w],
                              [x["max_residual"] for x in w if x["cells"]], recs)
            if col.damping == "smallest converged":
                what = f"at damping {damping:g}, the grid's smallest at which every solve converged: " + what
        if col.name == FAIR.name and measure != "wrec_newton":
            what += " (fair: the same measure; it has no rate or state to choose)"
        keep = [i for i, (a, b) in enumerate(vals) if np.isfinite(a) and np.isfinite(b)]
        return (np.array([vals[i][0] for i in keep]), np.array([vals[i][1] for i in keep]),
                tuple(seeds[i] for i in keep), f"{what}; {_source_text(col)}")
    return run


# The smallest effect of interest of each kind of claim (set after the effects were seen; the
# robustness table shows each verdict with the band halved and doubled). Methods gives the reasons.
BANDS = {
    "loss": Band.ratio(1.05, "a final test loss within 5% of the other condition's is not the several-fold "
                             "difference the paper's Figure 3b shows, and no reader would call it better adaptation"),
    "cosine": Band(0.01, "at the cosines measured (up to about 0.7) a difference of 0.01 turns the angle between "
                         "two directions by less than one degree"),
    "norm": Band.ratio(1.05, "a Jacobian norm within 5% at the lag it is read at; the rows at longer lags and "
                             "through the closed loop show whether a small one-step effect compounds"),
    "efficiency": Band.ratio(1.05, "an efficiency within 5%: the weight change would need at most 5% more path "
                                   "for the same displacement"),
}


def claim_band(claim: Claim, col: Column | None = None) -> Band | None:
    """The claim's band, scaled by the column's ``band_scale``."""
    if claim.band is None:
        return None
    return claim.band.scaled(col.band_scale) if col is not None and col.band_scale != 1.0 else claim.band


NETWORK_CLAIMS = (
    Claim("activity_fig2c", "Fig 2c", "The control input points down the activity gradient, more than a random "
          "feedback matrix's", _network_claim("activity"), log=False, network="activity",
          short="cos(u, -grad) above null", band=BANDS["cosine"]),
    Claim("jacobian_fig4a", "Fig 4a", "With the controller on, the activity depends less on its previous step "
          "(smaller Jacobian norm)", _network_claim("jacobian"), paper_sign=-1, network="jacobian",
          short="Jacobian norm, on < off", band=BANDS["norm"]),
    Claim("activity_newton_fig5b", "Fig 5b", "The control input is closer to the activity-space Newton direction "
          "than to the gradient", _network_claim("activity_newton"), log=False,
          network="activity_newton", short="u closer to Newton than to grad", band=BANDS["cosine"]),
    Claim("wrec_newton", "W_rec Newton (code)", "With the controller on, RFLO's update is closer to the Newton step "
          "for W_rec", _network_claim("wrec_newton"), log=False, network="wrec_newton",
          short="RFLO vs W_rec Newton, on > off", band=BANDS["cosine"]),
)

CLAIMS = (
    Claim("final_loss_rflo_30", "Fig 3b", "RFLO+c ends with a lower test loss than RFLO (30 deg)",
          _final_loss(RFLO, RFLO_C, 30.0), short="loss RFLO+c < RFLO, 30°", rotation=30.0, band=BANDS["loss"]),
    Claim("final_loss_bptt_30", "Fig 3b", "BPTT+c ends with a lower test loss than BPTT (30 deg)",
          _final_loss(BPTT, BPTT_C, 30.0), short="loss BPTT+c < BPTT, 30°", rotation=30.0, band=BANDS["loss"]),
    Claim("align_local", "Fig 4b", "RFLO+c's updates align better with each step's exact gradient than RFLO's",
          _alignment("local"), log=False, short="local alignment, +c > off", rotation=30.0, band=BANDS["cosine"]),
    Claim("align_global", "Fig 4c", "RFLO+c's trial update aligns better with the trial's exact gradient",
          _alignment("global"), log=False, short="global alignment, +c > off", rotation=30.0, band=BANDS["cosine"]),
    Claim("efficiency", "Fig 5a", "RFLO+c's weight updates are more efficient than RFLO's", _efficiency(30.0),
          short="efficiency RFLO+c > RFLO", rotation=30.0, band=BANDS["efficiency"]),
) + tuple(Claim(f"final_loss_rflo_{r:g}", "Fig 3b", f"RFLO+c ends with a lower test loss than RFLO ({r:g} deg)",
                _final_loss(RFLO, RFLO_C, r), short=f"loss RFLO+c < RFLO, {r:g}°", rotation=r, band=BANDS["loss"])
          for r in (40.0, 50.0, 60.0)) + tuple(
    Claim(f"final_loss_bptt_{r:g}", "Fig 3b", f"BPTT+c ends with a lower test loss than BPTT ({r:g} deg)",
          _final_loss(BPTT, BPTT_C, r), short=f"loss BPTT+c < BPTT, {r:g}°", rotation=r, band=BANDS["loss"])
    for r in (40.0, 50.0, 60.0)) + tuple(
    Claim(f"efficiency_{r:g}", "Fig 5a", f"RFLO+c's weight updates are more efficient than RFLO's ({r:g} deg)",
          _efficiency(r), short=f"efficiency RFLO+c > RFLO, {r:g}°", rotation=r, band=BANDS["efficiency"])
    for r in (40.0, 50.0, 60.0)) + NETWORK_CLAIMS


# the claims whose fair cells run at the swept rates (the others have no rate to choose)
RATE_CLAIMS = tuple(c for c in CLAIMS if c.key.startswith(("final_loss", "efficiency")))


def verdict_table(cfg: PaperConfig, claims=CLAIMS, columns=("as published", "fair"), *,
                  marks: bool = False) -> list[ClaimResult]:
    """Every claim in every column (a claim without runs yet is inconclusive with n = 0), judged by
    the four-word rule with the claim's band (``stats.verdict``). ``marks``: also say what each
    verdict rests on (:func:`mark_results`; reads the robustness rows too)."""
    out = []
    for c in claims:
        for col in columns:
            col = _column(col)
            a, b, seeds, definition = c.measure(cfg, col)
            eff = paired_effect(a, b, log=c.log) if len(seeds) else paired_effect([], [])
            band = claim_band(c, col)
            out.append(ClaimResult(c.key, c.figure, c.claim, col.name, definition, eff,
                                   verdict(eff, c.paper_sign, band), tuple(seeds),
                                   band=band.edges(c.log) if band else (), band_reason=band.reason if band else "",
                                   equivalence_p=equivalence_test(eff, band) if band and eff.n >= 2 else float("nan")))
    return mark_results(cfg, out, claims) if marks else out


# Which robustness columns change a claim's measurement at all (the others would repeat the
# as-published cell): the current-weights sweep only touches BPTT, the efficiency definitions only
# the efficiency, the loss windows only the final losses; the network-level changes only the
# network-level claims (the pairing Figs 2c and 5b, the lag Fig 4a, damping, solves and direction
# the W_rec comparison, the shipped networks all of them), and no change to the runs touches those.
def applies(claim: Claim, col: Column) -> bool:
    if col.band_scale != 1.0:                  # the band applies to every claim that has one
        return claim.band is not None
    if col.gradient != "detached" or col.matched_point is not None:
        return claim.key in ("align_local", "align_global")
    if col.trial_window is not None and col.efficiency == "published":
        return claim.key in ("align_local", "align_global")
    if col.efficiency in ("matched", "rate_factor") or col.trial_window is not None:
        return claim.key == "efficiency" or (col.efficiency == "rate_factor" and claim.key.startswith("efficiency"))
    if claim.network is not None:              # network-level claims: only the network-level changes
        if col.networks != "published":
            return True
        if not col.network_change():
            return False
        if col.pairing != "next":
            return claim.network in ("activity", "activity_newton")
        if col.lag != 1 or col.jacobian != "open":
            return claim.network == "jacobian"
        return claim.network == "wrec_newton"
    if col.network_change():
        return False
    if (col.protocol is not Protocol.PUBLISHED or col.variant is not Variant.NONE) and claim.rotation != ROBUSTNESS_ROTATION:
        return False                           # those runs exist at one rotation only (fbctrl.experiments.paper.plan)
    if col.variant is Variant.BPTT_CURRENT:
        return claim.key.startswith("final_loss_bptt")
    if col.efficiency != "published":
        return claim.key.startswith("efficiency")
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
        rows = verdict_table(cfg, (c,), tuple(col for col in ROBUSTNESS if applies(c, col)))
        out.append((base, rows))
    return out


@dataclass(frozen=True)
class Mark:
    """What a verdict cell rests on: ``symbol`` (printed after the verdict), ``kind`` (a key of
    :data:`MARKS`) and ``note``, the cell's footnote."""

    symbol: str
    kind: str
    note: str


# kind -> (symbol, what the mark means); the robustness rows of the same group are compared
MARKS = {
    "convention": ("†", "rests on one convention: another reasonable definition of the measure gives another verdict"),
    "damping": ("‡", "rests on some dampings: the verdict is not the same at every damping where the solves converged"),
    "artefact": ("§", "an artefact: the published metric carries the learning-rate ratio of the two runs"),
    "stage": ("‖", "rests on the stage of learning: other trial windows or matched points give another verdict"),
    "band": ("¶", "rests on the band: halving or doubling the smallest effect of interest changes the verdict"),
    "rates": ("◊", "rests on another rotation's rates: the runs at this rotation's own best rates (Figure 8) are "
                   "not computed yet, and those at the 30° sweep's best rates stand in"),
}


def _differing(cell: ClaimResult, rows: list[ClaimResult], group: str) -> list[ClaimResult]:
    return [r for r in rows if COLUMNS[r.column].group == group and r.effect.n >= 2 and r.verdict != cell.verdict]


def _rows_of_cell(claim: Claim, cell: ClaimResult, rows: list[ClaimResult]) -> list[ClaimResult]:
    """The robustness rows that vary the cell's own measure: every row for the as-published cell
    (and for the fair cell of a network-level claim other than W_rec, the same measure); for a
    fair cell only the rows of a fair measure (matched states, the loop-kept gradient, the
    matched-state efficiency, the W_rec dampings and direction)."""
    if cell.column == AS_PUBLISHED.name or (claim.network is not None and claim.network != "wrec_newton"):
        return rows

    def fair_like(col: Column) -> bool:
        return (col.matched or col.gradient != "detached" or col.efficiency == "matched"
                or (claim.network == "wrec_newton" and col.group == "damping"))
    return [r for r in rows if fair_like(COLUMNS[r.column])]


def _band_mark(claim: Claim, cell: ClaimResult) -> Mark | None:
    """The cell's own effect judged with the band halved and doubled."""
    if claim.band is None or cell.effect.n < 2:
        return None
    other = [(f, verdict(cell.effect, claim.paper_sign, claim.band.scaled(f))) for f in (0.5, 2.0)]
    diff = [f"band {'halved' if f < 1 else 'doubled'} ({claim.band.scaled(f).text(claim.log)}): {v.value}"
            for f, v in other if v != cell.verdict]
    if not diff:
        return None
    return Mark(MARKS["band"][0], "band", f"{cell.verdict.value} with the band {claim.band.text(claim.log)}; "
                + "; ".join(diff))


def _list(rows: list[ClaimResult], most: int = 4) -> str:
    parts = [f"{r.column}: {r.verdict.value}" for r in rows[:most]]
    return "; ".join(parts) + (f"; and {len(rows) - most} more" if len(rows) > most else "")


def _damping_mark(cell: ClaimResult, base: ClaimResult, rows: list[ClaimResult]) -> Mark | None:
    judged = [r for r in [base] + rows if (r.column == base.column or COLUMNS[r.column].group == "damping")
              and COLUMNS[r.column].solves == "converged" and r.effect.n >= 2]
    same = [r for r in judged if r.verdict == cell.verdict]
    if not judged or len(same) == len(judged):
        return None
    at = ", ".join(r.column.replace("W_rec Newton at damping ", "") if r.column != base.column else f"{PAPER_DAMPING:g}"
                   for r in same) or "none"
    return Mark(MARKS["damping"][0], "damping", f"{cell.verdict.value} at {len(same)} of the {len(judged)} dampings "
                f"where every used solve converged (at {at}); the others: {_list([r for r in judged if r not in same])}")


def _artefact_mark(cell: ClaimResult, rows: list[ClaimResult]) -> Mark | None:
    rate = next((r for r in rows if COLUMNS[r.column].efficiency == "rate_factor" and r.effect.n), None)
    free = next((r for r in rows if r.column == "efficiency per trial, scale-free" and r.effect.n), None)
    if cell.column != AS_PUBLISHED.name or rate is None or abs(np.log(rate.effect.mean)) < 1e-9:
        return None
    tail = f" x the scale-free ratio {free.effect.mean:.3g} ({free.verdict.value})" if free else ""
    return Mark(MARKS["artefact"][0], "artefact", f"the published metric is the rate ratio {rate.effect.mean:.3g}"
                f"{tail}: with the rates this different it compares the learning rates, not the updates")


def _rates_mark(cell: ClaimResult) -> Mark | None:
    """A fair cell at a rotation of the Figure 8 sweep whose own best-rate runs are missing."""
    if OWN_RATES_MISSING not in cell.definition or not cell.effect.n:
        return None
    return Mark(MARKS["rates"][0], "rates", cell.definition)


def mark_results(cfg: PaperConfig, results: list[ClaimResult], claims=CLAIMS) -> list[ClaimResult]:
    """The results with their :class:`Mark` s: for each cell, the robustness rows that vary its own
    measure (:data:`ROBUSTNESS`, :func:`_rows_of_cell`) grouped by kind; a group in which some row
    (on at least 2 networks) gives another verdict marks the cell (convention, stage); the cell's
    effect judged with its band halved and doubled (band); the W_rec claim where its verdict is
    not the same at every converged damping; Figure 5a's published cell where the two runs'
    rates differ (artefact); a fair cell at 40-60 deg read at the 30 deg sweep's rates while its
    own rotation's best-rate runs are missing (rates)."""
    by_key = {c.key: c for c in claims}
    cache = {}
    out = []
    for r in results:
        c = by_key.get(r.key)
        if c is None:
            out.append(r)
            continue
        if r.key not in cache:
            cache[r.key] = (verdict_table(cfg, (c,), (AS_PUBLISHED,))[0],
                            verdict_table(cfg, (c,), tuple(col for col in ROBUSTNESS if applies(c, col))))
        base, rows = cache[r.key]
        own = _rows_of_cell(c, r, rows)
        marks = []
        for kind in ("convention", "stage"):
            diff = _differing(r, own, kind)
            if diff:
                marks.append(Mark(MARKS[kind][0], kind, _list(diff)))
        for m in ((_damping_mark(r, base, own) if c.network == "wrec_newton" else None),
                  (_artefact_mark(r, rows) if r.key.startswith("efficiency") else None), _band_mark(c, r),
                  _rates_mark(r)):
            if m is not None:
                marks.append(m)
        out.append(replace(r, marks=tuple(marks)))
    return out


def footnotes(results: list[ClaimResult]) -> list[str]:
    """One line per mark: '† Fig 4a (Jacobian norm, on < off), as published: <note>' (the claim in
    its short form, the one the tables' rows use)."""
    short = {c.key: c.short for c in CLAIMS if c.short}
    return [f"{m.symbol} {r.figure} ({short.get(r.key, r.claim)}), {r.column}: {m.note}"
            for r in results for m in r.marks]


@dataclass(frozen=True)
class Adjusted:
    """One claim's test within a column's family of tests: its p-value, the Benjamini-Hochberg
    adjusted p-value over the family, and its verdict once the adjusted p must be below 0.05."""

    result: ClaimResult
    p: float
    p_adjusted: float
    verdict_adjusted: Verdict


def adjust(results: list[ClaimResult], alpha: float = 0.05) -> list[Adjusted]:
    """``results`` tested together as one family of tests: Benjamini-Hochberg adjusted p-values
    (``scipy.stats.false_discovery_control``, false discovery rate ``alpha``) over every result
    with a test (n >= 2 and a finite p), in the order given. A verdict holds under the correction
    when its adjusted p is below ``alpha`` (the paired t-test's p < 0.05 is the same event as the
    95% interval excluding no effect, so the uncorrected verdicts are those of ``p < alpha``); it
    becomes inconclusive otherwise. Results without a test keep their verdict (inconclusive), and
    a negligible verdict (the equivalence test's, not this test's) keeps its word."""
    from scipy.stats import false_discovery_control

    tested = [i for i, r in enumerate(results) if r.effect.n >= 2 and np.isfinite(r.effect.p_value)]
    adj = dict(zip(tested, false_discovery_control([results[i].effect.p_value for i in tested])
                   if tested else []))
    out = []
    for i, r in enumerate(results):
        pa = float(adj.get(i, float("nan")))
        # negligible rests on the equivalence test, not on this test of an effect: it keeps its word
        keep = r.verdict is Verdict.NEGLIGIBLE or (r.verdict is not Verdict.INCONCLUSIVE and pa < alpha)
        out.append(Adjusted(r, float(r.effect.p_value), pa, r.verdict if keep else Verdict.INCONCLUSIVE))
    return out


def multiplicity(results: list[ClaimResult], column: str = "as published", alpha: float = 0.05) -> list[Adjusted]:
    """The claims of one column tested together (:func:`adjust` over that column's results)."""
    return adjust([r for r in results if r.column == column], alpha)


# what a W_rec definition says where no MINRES solve converged (the cell then says why it is empty)
NOT_CONVERGED = "no solve converged at damping"


def format_cell(r: ClaimResult, digits: int = 3) -> str:
    """'1.74 [1.21, 2.50], n 10, p 0.003' (a ratio for log effects, a difference otherwise);
    'not judged (no solve converged)' where the measure exists but no solve it needs converged."""
    if r.effect.n == 0 and NOT_CONVERGED in r.definition:
        return "not judged (no solve converged)"
    if r.effect.n == 0 and r.definition.startswith("not computed yet"):
        return "not computed yet"
    return format_effect(r.effect, digits)


def format_effect(e, digits: int = 3) -> str:
    """A :class:`~fbctrl.experiments.stats.PairedEffect` as :func:`format_cell` prints it."""
    if e.n == 0:
        return "no data"
    g = lambda x: f"{x:.{digits}g}"
    if not (np.isfinite(e.ci_low) and np.isfinite(e.ci_high)):
        return f"{g(e.mean)}, n {e.n} (no interval)"
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
            cells += [format_cell(r), r.verdict.value + "".join(f" {m.symbol}" for m in r.marks)] if r else ["no data", "—"]
        out.append(cells)
    return out


def markdown_table(results: list[ClaimResult]) -> str:
    """Paper figure | claim | as published | verdict | fair | verdict."""
    table = fmt.markdown_table(["figure", "claim", "as published", "verdict", "fair", "verdict"],
                               table_rows(results), align="llllll")
    notes = footnotes(results)
    return "\n".join([table] + ([""] + notes if notes else []))
