"""The networks pre-trained with pushes (``checkpoints/fb_seed*.pt``, ``nofb_seed*.pt``: the book's
shipped networks, a robustness variant of the published protocol's) as one more network family of
the store: their adaptation and sweep runs are units of :mod:`fbctrl.experiments.paper` (the same
:class:`~fbctrl.experiments.paper.AdaptUnit` and :class:`~fbctrl.experiments.paper.SweepUnit`,
validated, claimed and checked for staleness by :mod:`fbctrl.experiments.store` with the sha256
of their network), written under ``{results}/shipped/`` by ``python -m fbctrl paper --networks
shipped`` and read by the findings chapters through :func:`load_runs` and :func:`load_sweep`.

The family's units (:func:`plan`), at the sizes of :data:`SIZES` (what the chapters show):

* networks with feedback, the four conditions at 30 degrees (500 trials; RFLO's alignment with
  the exact gradient every ``align_every`` trials) and at 40, 50 and 60 degrees (120 trials);
* the same networks at 30 degrees with exact online BPTT (BPTT+c and BPTT, 100 trials, seeds 0
  and 1): the comparison of the two weight conventions of online BPTT (Methods);
* networks without feedback at 30 degrees, RFLO and BPTT (500 trials);
* the learning-rate sweep at 30 degrees: every condition at every rate of
  ``rates.SHIPPED_SWEEP_GRID`` on every network with feedback (120 trials).

Every run uses the protocol ``paper-text`` (the rates as the paper states them, no division by
10 and no |W_fb|/|W_out|: Methods), the integrated error started from zero, and online BPTT
with the current weights (``Variant.BPTT_CURRENT``) except in the exact comparison. The units
converted from the files of the older ``reproduce``/``sweep`` commands say so in their
provenance (``migrated``, ``scripts/migrate_root_results.py``); their sweep units hold the test
loss only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.spec import NetworkSpec
from ..core.train import network_tag
from ..learning.rates import SHIPPED_SWEEP_GRID
from .paper import AdaptUnit, Group, PaperConfig, Variant, is_done, load_runs as load_unit_runs, sweep_units
from .protocol import CONDITIONS, Condition, Protocol, Rule

__all__ = ["ShippedSizes", "SIZES", "SOURCE", "config", "family_seeds", "adapt_unit", "plan", "load_runs",
           "load_sweep"]

SOURCE = "shipped"


@dataclass(frozen=True)
class ShippedSizes:
    """Trials and seeds of the shipped family's units (module docstring)."""

    trials: dict = field(default_factory=lambda: {30.0: 500, 40.0: 120, 50.0: 120, 60.0: 120})   # per rotation
    nofb_rotation: float = 30.0
    exact_bptt_trials: int = 100
    exact_bptt_seeds: tuple = (0, 1)
    sweep_trials: int = 120

    @classmethod
    def tiny(cls) -> "ShippedSizes":
        """A dry run in seconds (tests)."""
        return cls(trials={30.0: 3, 40.0: 2}, exact_bptt_trials=2, exact_bptt_seeds=(0,), sweep_trials=2)


SIZES = ShippedSizes()


def family_seeds(folder, tag: str) -> tuple:
    """Seeds of the checkpoints ``{tag}_seed{s}.pt`` in ``folder``, sorted."""
    p = Path(folder)
    pat = re.compile(rf"^{re.escape(tag)}_seed(\d+)\.pt$")
    return tuple(sorted(int(m.group(1)) for f in (p.iterdir() if p.is_dir() else ()) if (m := pat.match(f.name))))


def config(cfg: PaperConfig, sizes: ShippedSizes = SIZES) -> PaperConfig:
    """The store configuration of the shipped family: networks in ``cfg.shipped_dir`` (checked to
    be pre-trained with pushes, at ``cfg.n``), units under ``{cfg.results_dir}/shipped``."""
    base = replace(cfg, train_push=True)
    fb = family_seeds(cfg.shipped_dir, network_tag(base.pretrain_config("fb")))
    nofb = family_seeds(cfg.shipped_dir, network_tag(base.pretrain_config("nofb")))
    rot = min(sizes.trials)
    return replace(base, checkpoint_dir=cfg.shipped_dir, results_dir=str(Path(cfg.results_dir) / SOURCE),
                   fb_seeds=fb, nofb_seeds=nofb, sweep_seeds=fb,
                   rotations=tuple(sizes.trials), trials=sizes.trials[rot], nofb_rotation=sizes.nofb_rotation,
                   extra_protocols_30=(), sweep_rotation=rot, sweep_rotations_beyond=(),
                   sweep_rates={r: tuple(v) for r, v in SHIPPED_SWEEP_GRID.items()},
                   sweep_trials={"rflo": sizes.sweep_trials, "bptt": sizes.sweep_trials},
                   sweep_bptt_weights="current", max_sweep_extensions=0)


def adapt_unit(cfg: PaperConfig, kind: str, seed: int, rotation: float, cond: Condition, *,
               exact_bptt: bool = False, sizes: ShippedSizes = SIZES) -> AdaptUnit:
    """The family's run of ``cond`` at ``rotation`` on network ``{kind}_seed{seed}``: online BPTT
    with the current weights unless ``exact_bptt`` (the shorter exact comparison)."""
    current = cond.rule is Rule.BPTT and not exact_bptt
    trials = sizes.exact_bptt_trials if exact_bptt else sizes.trials[float(rotation)]
    return AdaptUnit(kind, int(seed), float(rotation), cond, Protocol.PAPER_TEXT, trials,
                     variant=Variant.BPTT_CURRENT if current else Variant.NONE)


def _group(cfg, title, kind, seeds, rotations, conds, sizes, exact_bptt=False) -> Group:
    units = [adapt_unit(cfg, kind, s, r, c, exact_bptt=exact_bptt, sizes=sizes)
             for r in rotations for c in conds for s in seeds]
    return Group(f"shipped {kind}, {title}", [u for u in units if not is_done(cfg, u)])


def plan(cfg: PaperConfig, sizes: ShippedSizes = SIZES) -> list[Group]:
    """The family's groups in order, with the units still to do (``cfg``: :func:`config`)."""
    rflo = [c for c in CONDITIONS if c.rule is Rule.RFLO]
    bptt = [c for c in CONDITIONS if c.rule is Rule.BPTT]
    off = [c for c in CONDITIONS if not c.controller_on]
    first, rest = cfg.rotations[0], list(cfg.rotations[1:])
    exact = [s for s in sizes.exact_bptt_seeds if s in cfg.fb_seeds]
    groups = [_group(cfg, f"{first:g} deg, RFLO and RFLO+c", "fb", cfg.fb_seeds, [first], rflo, sizes),
              _group(cfg, f"{first:g} deg, BPTT and BPTT+c (current weights)", "fb", cfg.fb_seeds, [first], bptt, sizes),
              _group(cfg, f"{', '.join(f'{r:g}' for r in rest)} deg, RFLO and RFLO+c", "fb", cfg.fb_seeds, rest, rflo,
                     sizes),
              _group(cfg, f"{', '.join(f'{r:g}' for r in rest)} deg, BPTT and BPTT+c (current weights)", "fb",
                     cfg.fb_seeds, rest, bptt, sizes),
              _group(cfg, f"{first:g} deg, exact online BPTT", "fb", exact, [first], bptt, sizes, exact_bptt=True),
              _group(cfg, f"{cfg.nofb_rotation:g} deg, RFLO", "nofb", cfg.nofb_seeds, [cfg.nofb_rotation],
                     [c for c in off if c.rule is Rule.RFLO], sizes),
              _group(cfg, f"{cfg.nofb_rotation:g} deg, BPTT (current weights)", "nofb", cfg.nofb_seeds,
                     [cfg.nofb_rotation], [c for c in off if c.rule is Rule.BPTT], sizes)]
    for rule in (Rule.RFLO, Rule.BPTT):
        units = [u for c in CONDITIONS if c.rule is rule for u in sweep_units(cfg, c, cfg.sweep_rates[rule.value])]
        groups.append(Group(f"shipped fb, learning-rate sweep at {cfg.sweep_rotation:g} deg, {rule.value.upper()} and "
                            f"{rule.value.upper()}+c", [u for u in units if not is_done(cfg, u)]))
    return [g for g in groups if g.units]


def load_runs(cfg: PaperConfig, kind: str, rotation: float, conds, seeds=None, *, exact_bptt: bool = False,
              sizes: ShippedSizes = SIZES) -> tuple[list[int], dict[str, dict], dict[str, list[dict]]]:
    """The family's finished runs at ``rotation``: ``(seeds, {condition: records stacked over
    seeds}, {condition: metas})`` for the conditions among ``conds`` (names) whose units are done
    for every one of ``seeds`` (default: the family's seeds of ``kind``; none done: no seeds)."""
    if float(rotation) not in sizes.trials and not exact_bptt:
        return [], {}, {}
    seeds = [int(s) for s in (cfg.seeds(kind) if seeds is None else seeds)]
    has_fb = NetworkSpec.parse(kind).has_feedback
    recs, metas = {}, {}
    for c in CONDITIONS:
        if c.name not in conds or (c.controller_on and not has_fb) or (exact_bptt and c.rule is not Rule.BPTT):
            continue
        units = [adapt_unit(cfg, kind, s, rotation, c, exact_bptt=exact_bptt, sizes=sizes) for s in seeds]
        if units and all(is_done(cfg, u) for u in units):
            recs[c.name], metas[c.name] = load_unit_runs(cfg, units)
    return (seeds if recs else []), recs, metas


def load_sweep(cfg: PaperConfig, conds, seeds=None) -> dict | None:
    """The family's sweep at ``cfg.sweep_rotation`` for the conditions among ``conds`` (names)
    whose units are all done on ``seeds`` (default: the sweep seeds): ``{"seeds", "rates": {rule:
    [...]}, "trials", "curves": {condition: test loss [rates, seeds, trials]}, "diverged":
    {condition: [rates, seeds] bool}}``, or None when no condition is complete."""
    seeds = [int(s) for s in (cfg.sweep_seeds if seeds is None else seeds)]
    out = {"seeds": seeds, "rates": {}, "trials": None, "curves": {}, "diverged": {}}
    for c in CONDITIONS:
        rates = list(cfg.sweep_rates[c.rule.value])
        units = [[u for u in sweep_units(cfg, c, [lr]) if u.seed in seeds] for lr in rates]
        if c.name not in conds or not seeds or not all(is_done(cfg, u) for row in units for u in row):
            continue
        runs = [load_unit_runs(cfg, sorted(row, key=lambda u: seeds.index(u.seed))) for row in units]
        out["curves"][c.name] = np.stack([rec["test_loss"] for rec, _ in runs])
        out["diverged"][c.name] = np.array([[m["diverged_trial"] >= 0 for m in metas] for _, metas in runs])
        out["rates"][c.rule.value] = rates
        out["trials"] = int(cfg.sweep_trials[c.rule.value])
    return out if out["curves"] else None
