"""The learning-rate sweep (the book's Methods page, "The learning-rate sweep"): its units
(:class:`SweepUnit`, one run of one condition at one rate and seed:
``{results}/sweep/rot{deg}/{condition}_lr{rate}_seed{s}.npz``), its grid with the extensions
found on disk, its tables of final losses, the extension beyond an edge of the grid where the
best rate lies at that edge, and each condition's best swept rate."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.spec import NetworkSpec
from ..protocol import CONDITIONS, Condition, EffectiveRate, Rule, effective_rate
from .config import PaperConfig, Variant, rotation_folder
from .files import is_done, read_meta, read_unit
from .lockstep import run_lockstep

__all__ = ["SweepUnit", "sweep_rotation", "sweep_grid", "sweep_units", "sweep_table", "sweep_extension",
           "best_swept_rates"]


@dataclass(frozen=True)
class SweepUnit:
    """One run of the sweep: ``condition`` at rate ``lr`` on the network with feedback of ``seed``."""

    seed: int
    rotation_deg: float
    condition: Condition
    lr: float
    trials: int
    kind: str = "fb"
    stage: str = "sweep"
    variant: Variant = Variant.NONE

    def path(self, cfg: PaperConfig) -> Path:
        folder = rotation_folder(self.rotation_deg) + (f"+{self.variant.value}" if self.variant is not Variant.NONE
                                                       else "")
        return Path(cfg.results_dir) / "sweep" / folder / f"{self.condition.slug}_lr{self.lr:.3g}_seed{self.seed}.npz"

    def describe(self) -> str:
        v = f" ({self.variant.value})" if self.variant is not Variant.NONE else ""
        return f"sweep {self.condition.name} lr {self.lr:.3g} seed {self.seed}{v}"

    def learning_rate(self, cfg: PaperConfig, W_fb, W_out) -> EffectiveRate:
        """The swept rate itself (``protocol.effective_rate`` of protocol "best" at ``lr``)."""
        has_fb = NetworkSpec.parse(self.kind).has_feedback
        return effective_rate("best", self.condition, has_feedback=has_fb, best_lr=self.lr)

    @classmethod
    def run_batch(cls, cfg: PaperConfig, units: list, *, device="cpu", progress: bool = True, command: str = "") -> None:
        """One lockstep group of sweep runs (:func:`~fbctrl.experiments.paper.lockstep.run_lockstep`)."""
        run_lockstep(cfg, units, device=device, progress=progress, command=command)


def sweep_rotation(cfg: PaperConfig, rotation: float | None) -> float:
    """``rotation`` checked to be a swept one (None: the sweep rotation), else a one-line ValueError."""
    rot = cfg.sweep_rotation if rotation is None else float(rotation)
    if rot != cfg.sweep_rotation and rot not in cfg.sweep_rotations_beyond:
        swept = ", ".join(f"{r:g}" for r in (cfg.sweep_rotation, *cfg.sweep_rotations_beyond))
        raise ValueError(f"rotation must be a swept rotation ({swept} deg), got {rotation!r}")
    return rot


def sweep_grid(cfg: PaperConfig, cond: Condition, rotation: float | None = None) -> list[float]:
    """The condition's swept rates at ``rotation`` (None: the sweep rotation): the configured
    grid plus extensions found on disk."""
    base = list(cfg.sweep_rates[cond.rule.value])
    folder = Path(cfg.results_dir) / "sweep" / rotation_folder(sweep_rotation(cfg, rotation))
    extra = set()
    for p in folder.glob(f"{cond.slug}_lr*_seed*.npz"):
        try:
            lr = float(read_meta(p)["unit"]["lr"])
        except (OSError, ValueError, KeyError):
            continue
        if not any(math.isclose(lr, b, rel_tol=1e-9) for b in base):
            extra.add(lr)
    return sorted(base + sorted(extra))


def sweep_units(cfg: PaperConfig, cond: Condition, rates, rotation: float | None = None) -> list[SweepUnit]:
    """The sweep's units of ``cond`` at ``rates`` and ``rotation`` (None: the sweep rotation),
    rate by rate, every sweep seed."""
    trials = int(cfg.sweep_trials[cond.rule.value])
    rot = sweep_rotation(cfg, rotation)
    current = cond.rule is Rule.BPTT and cfg.sweep_bptt_weights == "current"
    return [SweepUnit(int(s), rot, cond, float(lr), trials, variant=Variant.BPTT_CURRENT if current else Variant.NONE)
            for lr in rates for s in cfg.sweep_seeds]


def sweep_table(cfg: PaperConfig, cond: Condition, rotation: float | None = None) -> dict:
    """Final test loss (controller off, mean of the last ``sweep_final_window`` trials) of every
    swept rate and seed at ``rotation`` (None: the sweep rotation): {"rates", "final" [rates,
    seeds] (NaN: missing or diverged), "diverged" [rates, seeds], "complete"}."""
    rates = sweep_grid(cfg, cond, rotation)
    S = len(cfg.sweep_seeds)
    fin = np.full((len(rates), S), np.nan)
    div = np.zeros((len(rates), S), dtype=bool)
    complete = True
    for a, lr in enumerate(rates):
        for b, u in enumerate(sweep_units(cfg, cond, [lr], rotation)):
            if not is_done(cfg, u):
                complete = False
                continue
            rec, meta = read_unit(u.path(cfg))
            div[a, b] = meta["diverged_trial"] >= 0
            if not div[a, b]:
                fin[a, b] = float(np.nanmean(rec["test_loss"][-cfg.sweep_final_window:]))
    return {"rates": rates, "final": fin, "diverged": div, "complete": complete}


def best_index(tab: dict) -> int | None:
    """The rate with the lowest mean final loss over seeds among rates where no seed diverged."""
    ok = ~tab["diverged"].any(axis=1) & np.isfinite(tab["final"]).all(axis=1)
    if not ok.any():
        return None
    m = np.full(len(ok), np.inf)
    m[ok] = tab["final"][ok].mean(axis=1)
    return int(np.argmin(m))


def sweep_extension(cfg: PaperConfig, cond: Condition, rotation: float | None = None) -> list[float]:
    """[one more rate beyond the edge] when the finished grid's best rate lies at an edge, else []."""
    tab = sweep_table(cfg, cond, rotation)
    rates = tab["rates"]
    if not tab["complete"] or len(rates) < 2:
        return []
    i = best_index(tab)
    base = cfg.sweep_rates[cond.rule.value]
    if i == 0 and sum(r < min(base) for r in rates) < cfg.max_sweep_extensions:
        return [rates[0] ** 2 / rates[1]]
    if i == len(rates) - 1 and sum(r > max(base) for r in rates) < cfg.max_sweep_extensions:
        return [rates[-1] ** 2 / rates[-2]]
    return []


def best_swept_rates(cfg: PaperConfig, rotation: float | None = None) -> dict[str, dict]:
    """Per condition: {"lr": best rate or None, "bracketed": the best has a swept rate on both sides,
    "rates", "mean_final" over seeds, "complete"} of the sweep at ``rotation`` (None: the sweep
    rotation)."""
    out = {}
    for c in CONDITIONS:
        tab = sweep_table(cfg, c, rotation)
        i = best_index(tab) if tab["complete"] else None
        fin = np.where(tab["diverged"], np.nan, tab["final"])
        ok = np.isfinite(fin).any(axis=1)
        mean = np.full(len(tab["rates"]), np.nan)
        mean[ok] = [np.nanmean(row) for row in fin[ok]]
        out[c.name] = {"lr": tab["rates"][i] if i is not None else None, "complete": tab["complete"],
                       "bracketed": i is not None and 0 < i < len(tab["rates"]) - 1,
                       "rates": tab["rates"], "mean_final": [float(x) for x in mean]}
    return out
