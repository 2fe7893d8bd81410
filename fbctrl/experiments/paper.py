"""The paper's protocol as resumable units of work: ``python -m fbctrl paper``.

Units (each writes its own file atomically, with its provenance, and is skipped when that file
exists, reads whole and is current: :func:`unit_status`; files are read, written, hashed and
claimed through :mod:`fbctrl.experiments.store`):

* :class:`PretrainUnit` -- one network, pre-trained as the published code does (SPEC 3 and 7:
  random reaches *without* pushes, 5000 batches of 256): ``{checkpoints}/{fb|nofb}_seed{s}.pt``.
  Seeds of one kind train in lockstep on a GPU, one at a time on a CPU; an interrupted one resumes
  from its resume file.
* :class:`AdaptUnit` -- one adaptation run (network kind x seed x rotation x condition x
  protocol), 1000 trials, exact ("history") online BPTT, integrated error from zero:
  ``{results}/adapt/{protocol}/rot{deg}/{kind}_{condition}_seed{s}.npz``.
* :class:`SweepUnit` -- one run of the learning-rate sweep at 30 degrees (seed x condition x rate):
  ``{results}/sweep/rot{deg}/{condition}_lr{rate}_seed{s}.npz``.
* :class:`fbctrl.experiments.network_units.NetworkUnit` -- one network-level measure (Figures 2c, 4a, 5b, the
  W_rec Newton comparison) of one network with feedback, published or shipped (pre-trained with
  pushes, a robustness column): ``{results}/network/{source}/{measure}/fb_seed{s}.npz``. A unit of a
  published network that is not pre-trained yet waits for it.

Runs of one rule are advanced in lockstep in groups (``adapt.adapt`` with many runs); each run's
file is written when its group finishes, so an interruption loses at most the group in flight.

Order (most important first, so a budget cuts the least important): the networks with feedback,
the network-level measures on them (minutes per network) and on the shipped networks, the four conditions at 30 degrees under the published protocol, the networks without feedback
and their runs at 30 degrees, the paper-text rates at 30 degrees, the other rotations, the
sweep, and last the runs at each condition's best swept rate. A sweep whose best rate lies at an
edge of its grid is extended by one rate beyond that edge (up to ``max_sweep_extensions``).
"""

from __future__ import annotations

import enum
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from ..analysis.matched import matched_alignment
from ..core.checkpoint import CheckpointError, check_network_files, load_checkpoint, read_sidecar
from ..core.model import Network, init_network
from ..core.spec import NetworkSpec
from ..core.task import TaskConfig
from ..core.train import PretrainConfig, Trainer, network_tag, pretrain
from ..learning import ckernels
from ..learning.adapt import RunSpec, adapt
from ..perf.bench import PUBLISHED_CPU, pretrain_flops
from . import network_units, store
from .network_units import MEASURES, NetMeasureConfig, NetworkUnit, shipped_seeds
from .protocol import CONDITIONS, Condition, Protocol, Rule, effective_rate, feedback_output_ratio
from .store import UNIT_KIND, DamagedFileError, file_sha256, files_digest, rel_path

__all__ = ["PaperConfig", "PretrainUnit", "AdaptUnit", "SweepUnit", "NetworkUnit", "plan", "run_plan", "load_runs",
           "load_network_units", "UNIT_KIND", "best_swept_rates", "STAGES", "unit_status", "is_done", "DamagedFileError"]

KINDS = ("fb", "nofb")
STAGES = ("pretrain", "network", "adapt", "sweep", "beyond")   # beyond: fbctrl.experiments.beyond


@dataclass(frozen=True)
class PaperConfig:
    """Sizes of the paper protocol (defaults: the paper's scale, SPEC 3-5 and issue 'verdicts')."""

    n: int = PretrainConfig.n
    pretrain_batches: int = PretrainConfig.batches
    batch_size: int = PretrainConfig.batch_size
    eval_every: int = PretrainConfig.eval_every
    checkpoint_every: int = PretrainConfig.checkpoint_every
    fb_seeds: tuple = tuple(range(10))
    nofb_seeds: tuple = tuple(range(10))
    rotations: tuple = (30.0, 40.0, 50.0, 60.0)
    nofb_rotation: float = 30.0
    trials: int = 1000
    extra_protocols_30: tuple = ("paper-text",)
    align_every: int = 50
    matched_points: tuple = (0, 250, 500, 1000)   # trials whose weights feed the matched-state alignment
    matched_trials: int = 32                       # evaluation trials per point and controller setting
    matched_rotations: tuple = (30.0,)
    sweep_rotation: float = 30.0
    # Figure 8: the sweep also at these rotations (same grid, seeds and trials), and the fair runs
    # there at each rotation's own best rate (Variant.OWN_BEST), after everything else
    sweep_rotations_beyond: tuple = (40.0, 50.0, 60.0)
    sweep_seeds: tuple = tuple(range(5))
    sweep_rates: dict = field(default_factory=lambda: {
        "rflo": (1.5e-6, 5e-6, 1.5e-5, 5e-5, 1.5e-4, 5e-4, 1.5e-3),
        "bptt": (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3)})
    sweep_trials: dict = field(default_factory=lambda: {"rflo": 1000, "bptt": 200})
    sweep_final_window: int = 10
    max_sweep_extensions: int = 2
    checkpoint_dir: str = "checkpoints/published"
    results_dir: str = "results/paper"
    shipped_dir: str = "checkpoints"              # the book's networks pre-trained with pushes (robustness)
    network_measures: NetMeasureConfig = field(default_factory=NetMeasureConfig)
    task: TaskConfig = field(default_factory=TaskConfig)

    def __post_init__(self):
        for name in ("n", "pretrain_batches", "batch_size", "trials", "align_every", "eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if int(v) != v or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("fb_seeds", "nofb_seeds", "sweep_seeds"):
            if any(int(s) != s or s < 0 for s in getattr(self, name)):
                raise ValueError(f"{name} must be non-negative integers, got {getattr(self, name)!r}")
        for p in self.extra_protocols_30:
            Protocol.parse(p)
        if any(not math.isfinite(r) or r == self.sweep_rotation for r in self.sweep_rotations_beyond):
            raise ValueError(f"sweep_rotations_beyond must be finite rotations other than the sweep rotation "
                             f"{self.sweep_rotation:g}, got {self.sweep_rotations_beyond!r}")

    @classmethod
    def tiny(cls, checkpoint_dir: str, results_dir: str, shipped_dir: str | None = None) -> "PaperConfig":
        """A dry run of every stage in seconds on a CPU (n 20, 2 seeds, a few batches and trials);
        shipped networks (if any) in ``shipped_dir``, default the folder ``shipped`` beside
        ``checkpoint_dir``."""
        return cls(n=20, pretrain_batches=4, batch_size=8, eval_every=2, checkpoint_every=2, fb_seeds=(0, 1),
                   nofb_seeds=(0, 1), rotations=(30.0, 40.0), trials=4, align_every=2, sweep_seeds=(0, 1),
                   sweep_rotations_beyond=(40.0,),
                   matched_points=(0, 4), matched_trials=2,
                   sweep_rates={"rflo": (5e-5, 5e-4), "bptt": (1e-5, 1e-4)}, sweep_trials={"rflo": 3, "bptt": 2},
                   sweep_final_window=2, max_sweep_extensions=1, checkpoint_dir=checkpoint_dir,
                   results_dir=results_dir, task=TaskConfig(T=30, go_step=5, move_steps=20),
                   shipped_dir=shipped_dir or str(Path(checkpoint_dir).parent / "shipped"),
                   network_measures=NetMeasureConfig.tiny())

    def pretrain_config(self, kind: str) -> PretrainConfig:
        """The published protocol for the network family ``kind`` (a ``NetworkSpec`` family:
        'fb', 'nofb', 'fb_d5', 'fb0.3', 'lc_fb', ...)."""
        spec = NetworkSpec.parse(kind)
        return PretrainConfig(n=self.n, feedback_density=spec.feedback_density, delay=spec.delay,
                              batches=self.pretrain_batches, batch_size=self.batch_size, eval_every=self.eval_every,
                              checkpoint_every=self.checkpoint_every, train_push=False, task=spec.task)

    def seeds(self, kind: str) -> tuple:
        return self.fb_seeds if NetworkSpec.parse(kind).has_feedback else self.nofb_seeds


def _rot(deg: float) -> str:
    return f"rot{deg:g}"


@dataclass(frozen=True)
class PretrainUnit:
    kind: str
    seed: int
    stage: str = "pretrain"

    def path(self, cfg: PaperConfig) -> Path:
        return Path(cfg.checkpoint_dir) / f"{network_tag(cfg.pretrain_config(self.kind))}_seed{self.seed}.pt"

    def describe(self) -> str:
        return f"pre-train {self.kind} seed {self.seed}"


class Variant(str, enum.Enum):
    """One change to a run of the published protocol, for the robustness table (the verdict
    that a single change flips). ``NONE``: the protocol as it is."""

    NONE = ""
    ERROR_START_E0 = "e0"              # the integrated error starts at W_out r_0 + b_out (published quirk)
    BPTT_CURRENT = "bptt-current"      # online BPTT sweeps back with the current weights
    OWN_BEST = "own-rotation"          # protocol "best" at the best rate of the run's own rotation's sweep (Figure 8)

    @property
    def error_start(self) -> str:
        return "published" if self is Variant.ERROR_START_E0 else "zero"

    @property
    def bptt_weights(self) -> str:
        return "current" if self is Variant.BPTT_CURRENT else "history"


@dataclass(frozen=True)
class AdaptUnit:
    kind: str
    seed: int
    rotation_deg: float
    condition: Condition
    protocol: Protocol
    trials: int
    stage: str = "adapt"
    variant: Variant = Variant.NONE

    def path(self, cfg: PaperConfig) -> Path:
        folder = self.protocol.value + (f"+{self.variant.value}" if self.variant is not Variant.NONE else "")
        return (Path(cfg.results_dir) / "adapt" / folder / _rot(self.rotation_deg)
                / f"{self.kind}_{self.condition.slug}_seed{self.seed}.npz")

    def describe(self) -> str:
        v = f", {self.variant.value}" if self.variant is not Variant.NONE else ""
        return f"{self.kind} {self.condition.name} {self.rotation_deg:g} deg seed {self.seed} ({self.protocol.value}{v})"


@dataclass(frozen=True)
class SweepUnit:
    seed: int
    rotation_deg: float
    condition: Condition
    lr: float
    trials: int
    kind: str = "fb"
    stage: str = "sweep"

    def path(self, cfg: PaperConfig) -> Path:
        return (Path(cfg.results_dir) / "sweep" / _rot(self.rotation_deg)
                / f"{self.condition.slug}_lr{self.lr:.3g}_seed{self.seed}.npz")

    def describe(self) -> str:
        return f"sweep {self.condition.name} lr {self.lr:.3g} seed {self.seed}"


# ---------------------------------------------------------------------------------------------
# The plan: ordered groups of units that are not done yet
# ---------------------------------------------------------------------------------------------

@dataclass
class Group:
    """Units that belong together (one stage of the order), in the order they run."""

    title: str
    units: list
    blocked: str | None = None      # why the group cannot run yet (e.g. the sweep is not finished)


def unit_status(cfg: PaperConfig, unit) -> tuple[str, str]:
    """``(state, why)``: ``"done"``; ``"missing"``; ``"damaged"`` (a file that fails validation,
    ``store.read_unit`` or ``core.checkpoint.check_network_files``, named in ``why``); or
    ``"stale"``: its inputs changed since it was computed (its network's sha256, the settings of
    a network measure, the sweep files that chose a best rate). Damaged and stale units are
    planned again like missing ones."""
    if unit.stage == "beyond":
        return unit.status(cfg)
    p = unit.path(cfg)
    if unit.stage == "pretrain":
        try:
            check_network_files(p)
        except FileNotFoundError as exc:
            return ("damaged", str(exc)) if p.is_file() else ("missing", "")
        except CheckpointError as exc:
            return "damaged", str(exc)
        return "done", ""
    try:
        meta = store.read_meta(p, _unit_dict(unit))
    except FileNotFoundError:
        return "missing", ""
    except DamagedFileError as exc:
        return "damaged", str(exc)
    return _freshness(cfg, unit, meta)


def _freshness(cfg: PaperConfig, unit, meta: dict) -> tuple[str, str]:
    p = unit.path(cfg)
    if unit.stage == "network" and meta.get("settings") != _network_settings(cfg, unit):
        return "stale", f"{p} was computed with other settings of its measure"
    ck = unit.checkpoint(cfg) if unit.stage == "network" else PretrainUnit(unit.kind, unit.seed).path(cfg)
    if not ck.is_file():            # a run's network that is gone is compared when it is pre-trained again
        return ("stale", f"{p}: its network {ck} is not there") if unit.stage == "network" else ("done", "")
    if meta.get("network", {}).get("sha256") != file_sha256(ck):
        return "stale", f"{p} was computed from another network than {ck} (sha256 differs)"
    if getattr(unit, "protocol", None) is Protocol.BEST and meta.get("sweep_sha256") != sweep_digest(cfg, unit.condition):
        return "stale", f"{p}: the sweep files that chose its rate changed"
    return "done", ""


def is_done(cfg: PaperConfig, unit) -> bool:
    """The unit's file is whole, describes it, and its inputs are unchanged (:func:`unit_status`)."""
    return unit_status(cfg, unit)[0] == "done"


_done = is_done      # the name the book's reports import


def _network_settings(cfg: PaperConfig, unit) -> dict:
    return network_units.settings(cfg.network_measures, unit.measure, cfg.task)


def _network_ready(cfg: PaperConfig, unit) -> bool:
    """The unit's network exists (a published one: its pre-training is finished)."""
    if unit.source == "published":
        return _done(cfg, PretrainUnit(unit.kind, unit.seed))
    return unit.checkpoint(cfg).is_file()


def _network_group(cfg: PaperConfig, title: str, source: str, measures, include_done: bool) -> Group:
    """Network-level units of ``source`` (every configured seed for the published networks, the
    seeds on disk for the shipped ones), seed by seed; those whose network is not there yet are
    left out until it is, and the group waits when nothing else is left."""
    seeds = cfg.fb_seeds if source == "published" else shipped_seeds(cfg)
    units = [NetworkUnit(m, "fb", int(s), source) for s in seeds for m in measures]
    ready = [u for u in units if _network_ready(cfg, u)]
    todo = [u for u in ready if not _done(cfg, u)]
    pending = [u for u in units if not _network_ready(cfg, u)]
    waiting = bool(pending) and not todo
    # with nothing to run now, the group lists (and its plan counts) the units that wait
    return Group(title, units if include_done else (todo or pending),
                 blocked="waits for pre-training" if waiting else None)


def _wait_for_networks(cfg: PaperConfig, g: Group) -> None:
    """Runs whose network is not pre-trained yet are left out until it is (the others run first);
    when only those are left the group waits for pre-training."""
    ready = [u for u in g.units if _done(cfg, PretrainUnit(u.kind, u.seed))]
    if ready:
        g.units = ready
    elif g.blocked is None:
        g.blocked = "waits for pre-training"


def _adapt_units(kind, seeds, rotations, conditions, protocol, trials, variant: Variant = Variant.NONE):
    return [AdaptUnit(kind, int(s), float(r), c, Protocol.parse(protocol), trials, variant=variant)
            for r in rotations for c in conditions for s in seeds]


def _sweep_rotation(cfg: PaperConfig, rotation: float | None) -> float:
    rot = cfg.sweep_rotation if rotation is None else float(rotation)
    if rot != cfg.sweep_rotation and rot not in cfg.sweep_rotations_beyond:
        swept = ", ".join(f"{r:g}" for r in (cfg.sweep_rotation, *cfg.sweep_rotations_beyond))
        raise ValueError(f"rotation must be a swept rotation ({swept} deg), got {rotation!r}")
    return rot


def _sweep_grid(cfg: PaperConfig, cond: Condition, rotation: float | None = None) -> list[float]:
    """The condition's swept rates at ``rotation`` (None: the sweep rotation): the configured
    grid plus extensions found on disk."""
    base = list(cfg.sweep_rates[cond.rule.value])
    folder = Path(cfg.results_dir) / "sweep" / _rot(_sweep_rotation(cfg, rotation))
    extra = set()
    for p in folder.glob(f"{cond.slug}_lr*_seed*.npz"):
        try:
            lr = float(_read_meta(p)["unit"]["lr"])
        except (OSError, ValueError, KeyError):
            continue
        if not any(math.isclose(lr, b, rel_tol=1e-9) for b in base):
            extra.add(lr)
    return sorted(base + sorted(extra))


def _sweep_units(cfg: PaperConfig, cond: Condition, rates, rotation: float | None = None) -> list[SweepUnit]:
    trials = int(cfg.sweep_trials[cond.rule.value])
    rot = _sweep_rotation(cfg, rotation)
    return [SweepUnit(int(s), rot, cond, float(lr), trials) for lr in rates for s in cfg.sweep_seeds]


def sweep_digest(cfg: PaperConfig, cond: Condition) -> str:
    """sha256 over every sweep file of ``cond`` in the results folder (``store.files_digest``, in
    name order): what a run at the sweep's best rate records, and is re-planned when it changes."""
    folder = Path(cfg.results_dir) / "sweep" / _rot(cfg.sweep_rotation)
    return files_digest(sorted(folder.glob(f"{cond.slug}_lr*_seed*.npz")))


def _sweep_and_best_groups(cfg: PaperConfig, r30: float, rest: list) -> tuple[list[Group], list, list[Group]]:
    """Per rule: its sweep, then its runs at the best rates (RFLO first: its runs are cheap and fill
    most fair cells). Returns the groups, (best-rate group, that rule's sweep units) pairs, and the
    groups that go last in the plan (BPTT at the other rotations at its 30 deg best rates: the
    most expensive fair cells)."""
    groups, waiting, last = [], [], []
    for rule in (Rule.RFLO, Rule.BPTT):
        conds = [c for c in CONDITIONS if c.rule is rule]
        sweep = [u for c in conds for u in _sweep_units(cfg, c, _sweep_grid(cfg, c) + sweep_extension(cfg, c))]
        name = rule.value.upper()
        groups.append(Group(f"learning-rate sweep at {cfg.sweep_rotation:g} deg, {name} and {name}+c", sweep))
        best = Group(f"fb, {r30:g} deg, {name} and {name}+c at their best swept rate",
                     _adapt_units("fb", cfg.fb_seeds, [r30], conds, "best", cfg.trials))
        groups.append(best)
        waiting.append((best, sweep))
        if rest:
            other = Group(f"fb, {', '.join(f'{r:g}' for r in rest)} deg, {name} and {name}+c at their best rate of "
                          f"the {cfg.sweep_rotation:g} deg sweep", _adapt_units("fb", cfg.fb_seeds, rest, conds, "best",
                                                                               cfg.trials))
            (groups if rule is Rule.RFLO else last).append(other)
            waiting.append((other, sweep))
    return groups, waiting, last


def _figure8_groups(cfg: PaperConfig) -> tuple[list[Group], list]:
    """Figure 8 at every rotation: per rotation of ``sweep_rotations_beyond`` and rule (RFLO first),
    its sweep (the 30 deg grid and seeds, extended at an edge like it), then the fair runs at that
    rotation's own best rate (``Variant.OWN_BEST``) on every network, so the held-out check
    (rates chosen on the sweep seeds, judged on the others) holds at every rotation."""
    groups, waiting = [], []
    for rule in (Rule.RFLO, Rule.BPTT):
        conds = [c for c in CONDITIONS if c.rule is rule]
        name = rule.value.upper()
        for rot in cfg.sweep_rotations_beyond:
            sweep = [u for c in conds
                     for u in _sweep_units(cfg, c, _sweep_grid(cfg, c, rot) + sweep_extension(cfg, c, rot), rot)]
            groups.append(Group(f"Figure 8: learning-rate sweep at {rot:g} deg, {name} and {name}+c", sweep))
            own = Group(f"fb, {rot:g} deg, {name} and {name}+c at the best rate of the {rot:g} deg sweep",
                        _adapt_units("fb", cfg.fb_seeds, [rot], conds, "best", cfg.trials, Variant.OWN_BEST))
            groups.append(own)
            waiting.append((own, sweep))
    return groups, waiting


def plan(cfg: PaperConfig, *, include_done: bool = False) -> list[Group]:
    """Every group of the protocol in its order, with the units still to do (done ones dropped;
    ``include_done``: every unit of the protocol, done or not)."""
    fb_c = list(CONDITIONS)
    nofb_c = [c for c in CONDITIONS if not c.controller_on]
    r30 = [r for r in cfg.rotations if r == 30.0] or list(cfg.rotations[:1])
    rest = [r for r in cfg.rotations if r not in r30]
    groups = [
        Group("pre-train the networks with feedback", [PretrainUnit("fb", int(s)) for s in cfg.fb_seeds]),
        _network_group(cfg, "network measures (Figs 2c, 4a, 5b) of the published networks", "published",
                       [m for m in MEASURES if m not in ("wrec_newton", "matched_loop")], include_done),
        _network_group(cfg, "W_rec Newton and its damping scan, published networks", "published", ["wrec_newton"],
                       include_done),
        _network_group(cfg, "pre-trained weights, both controller settings: alignment with the loop kept in the "
                            "gradient and matched-state efficiency (Figs 4b, 4c, 5a)", "published", ["matched_loop"],
                       include_done),
        _network_group(cfg, "robustness: network measures of the networks pre-trained with pushes", "shipped",
                       network_units.SHIPPED_MEASURES, include_done),
        Group(f"fb, {r30[0]:g} deg, published protocol", _adapt_units("fb", cfg.fb_seeds, r30, fb_c, "published", cfg.trials)),
        Group("pre-train the networks without feedback", [PretrainUnit("nofb", int(s)) for s in cfg.nofb_seeds]),
        Group(f"nofb, {cfg.nofb_rotation:g} deg, published protocol",
              _adapt_units("nofb", cfg.nofb_seeds, [cfg.nofb_rotation], nofb_c, "published", cfg.trials)),
    ]
    for p in cfg.extra_protocols_30:
        groups.append(Group(f"fb, {r30[0]:g} deg, {p} rates", _adapt_units("fb", cfg.fb_seeds, r30, fb_c, p, cfg.trials)))
    # The order is the verdict table's: first what its "as published" cells need, then the sweep and
    # the "fair" cells, then the robustness rows, and last BPTT at 40-60 deg (as published, then at
    # the 30 deg sweep's best rates), the most expensive runs and the last rows of Figure 3b.
    rflo_c = [c for c in fb_c if c.rule is Rule.RFLO]
    bptt_c = [c for c in fb_c if c.rule is Rule.BPTT]
    rest_txt = ", ".join(f"{r:g}" for r in rest)
    if rest:
        groups.append(Group(f"fb, {rest_txt} deg, published protocol, RFLO and RFLO+c",
                            _adapt_units("fb", cfg.fb_seeds, rest, rflo_c, "published", cfg.trials)))
    sweep_groups, waiting, last = _sweep_and_best_groups(cfg, r30[0], rest)
    groups += sweep_groups
    groups.append(Group(f"robustness at {r30[0]:g} deg: integrated error from e_0 (published quirk)",
                        _adapt_units("fb", cfg.fb_seeds, r30, fb_c, "published", cfg.trials, Variant.ERROR_START_E0)))
    groups.append(Group(f"robustness at {r30[0]:g} deg: online BPTT with the current weights",
                        _adapt_units("fb", cfg.fb_seeds, r30, bptt_c, "published", cfg.trials, Variant.BPTT_CURRENT)))
    if rest:
        groups.append(Group(f"fb, {rest_txt} deg, published protocol, BPTT and BPTT+c",
                            _adapt_units("fb", cfg.fb_seeds, rest, bptt_c, "published", cfg.trials)))
    groups += last
    beyond, waiting_beyond = _figure8_groups(cfg)
    groups += beyond
    waiting += waiting_beyond
    for g in groups:
        if not include_done and not (g.units and g.units[0].stage == "network"):   # network groups come filtered
            g.units = [u for u in g.units if not _done(cfg, u)]
        if not include_done and g.units and g.units[0].stage in ("adapt", "sweep"):
            _wait_for_networks(cfg, g)
    for g, sweep in waiting:
        if g.units and any(not _done(cfg, u) for u in sweep):
            g.blocked = "waits for the sweep"
    from . import beyond            # the extension's groups, last (it imports this module)
    return groups + beyond.groups(cfg, include_done=include_done)


# ---------------------------------------------------------------------------------------------
# The sweep: best rates, and an extension when the best lies at an edge of the grid
# ---------------------------------------------------------------------------------------------

def sweep_table(cfg: PaperConfig, cond: Condition, rotation: float | None = None) -> dict:
    """Final test loss (controller off, mean of the last ``sweep_final_window`` trials) of every
    swept rate and seed at ``rotation`` (None: the sweep rotation): {"rates", "final" [rates,
    seeds] (NaN: missing or diverged), "diverged" [rates, seeds], "complete"}."""
    rates = _sweep_grid(cfg, cond, rotation)
    S = len(cfg.sweep_seeds)
    fin = np.full((len(rates), S), np.nan)
    div = np.zeros((len(rates), S), dtype=bool)
    complete = True
    for a, lr in enumerate(rates):
        for b, u in enumerate(_sweep_units(cfg, cond, [lr], rotation)):
            if not _done(cfg, u):
                complete = False
                continue
            rec, meta = _read_unit(u.path(cfg))
            div[a, b] = meta["diverged_trial"] >= 0
            if not div[a, b]:
                fin[a, b] = float(np.nanmean(rec["test_loss"][-cfg.sweep_final_window:]))
    return {"rates": rates, "final": fin, "diverged": div, "complete": complete}


def _best_index(tab: dict) -> int | None:
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
    i = _best_index(tab)
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
        i = _best_index(tab) if tab["complete"] else None
        fin = np.where(tab["diverged"], np.nan, tab["final"])
        ok = np.isfinite(fin).any(axis=1)
        mean = np.full(len(tab["rates"]), np.nan)
        mean[ok] = [np.nanmean(row) for row in fin[ok]]
        out[c.name] = {"lr": tab["rates"][i] if i is not None else None, "complete": tab["complete"],
                       "bracketed": i is not None and 0 < i < len(tab["rates"]) - 1,
                       "rates": tab["rates"], "mean_final": [float(x) for x in mean]}
    return out


# ---------------------------------------------------------------------------------------------
# Files: one per unit, written atomically, validated on load
# ---------------------------------------------------------------------------------------------

def _unit_dict(unit) -> dict:
    d = asdict(unit)
    if "condition" in d:
        d["condition"] = unit.condition.name
    if "protocol" in d:
        d["protocol"] = unit.protocol.value
    if "variant" in d:
        if unit.variant is Variant.NONE:
            del d["variant"]                 # files of the protocol as it is say nothing about variants
        else:
            d["variant"] = unit.variant.value
    return json.loads(json.dumps(d))


def _read_meta(path) -> dict:
    """A unit file's meta, the file validated whole (``store.read_meta``)."""
    return store.read_meta(path)


def _read_unit(path) -> tuple[dict, dict]:
    return store.read_unit(path)


def _write_unit(cfg: PaperConfig, unit, records: dict, meta: dict) -> Path:
    return store.write_unit(unit.path(cfg), _unit_dict(unit), records, meta)


def load_runs(cfg: PaperConfig, units: list) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The records of ``units`` (one per seed, same condition and length), stacked along a leading
    seed axis, and their metas. Every file must exist and describe exactly its unit."""
    recs, metas = [], []
    for u in units:
        rec, meta = store.read_unit(u.path(cfg), _unit_dict(u))
        recs.append(rec)
        metas.append(meta)
    keys = set.intersection(*(set(r) for r in recs)) if recs else set()   # a diverged run has no matched records
    return {k: np.stack([r[k] for r in recs]) for k in sorted(keys)}, metas


def load_network_units(cfg: PaperConfig, measure: str, source: str = "published") -> tuple[list[int], list[dict], list[dict]]:
    """The network-level files of ``measure`` that are done (same unit, same settings, the
    network unchanged), in seed order: (seeds, records, metas). Published seeds are the
    configured ones, shipped seeds those on disk."""
    seeds = cfg.fb_seeds if source == "published" else shipped_seeds(cfg)
    out = ([], [], [])
    for s in seeds:
        u = NetworkUnit(measure, getattr(cfg, "family", "fb"), int(s), source)   # beyond.BeyondConfig: its family
        if _done(cfg, u):
            rec, meta = _read_unit(u.path(cfg))
            out[0].append(int(s))
            out[1].append(rec)
            out[2].append(meta)
    return out


def _check_network(cfg: PaperConfig, unit, path: Path) -> dict:
    """The sidecar of a network to measure, checked to be what its source says: published ones
    trained with this protocol, shipped ones with pushes."""
    side = read_sidecar(path)
    got = side.get("config", {})
    if unit.source == "published":
        want = asdict(cfg.pretrain_config(unit.kind))
        bad = [k for k in ("n", "batches", "batch_size", "train_push", "feedback_density") if got.get(k) != want[k]]
        if bad:
            raise ValueError(f"checkpoint {path} was not pre-trained with this protocol ({', '.join(bad)} differ)")
    elif got.get("train_push") is not True or got.get("n") != cfg.n:
        raise ValueError(f"checkpoint {path} is not a network of size {cfg.n} pre-trained with pushes "
                         f"(train_push {got.get('train_push')!r}, n {got.get('n')!r})")
    return side


def _run_network(cfg: PaperConfig, units: list, device, command: str) -> None:
    """Network-level units, one file each."""
    for u in units:
        ck = u.checkpoint(cfg)
        side = _check_network(cfg, u, ck)
        net = load_checkpoint(ck, n=cfg.n, device=device)
        rec, secs = network_units.compute(u.measure, net, u.seed, cfg.network_measures, cfg.task)
        meta = {"measure": u.measure, "settings": _network_settings(cfg, u), "source": u.source,
                "network": {"checkpoint": rel_path(ck), "sha256": file_sha256(ck), "seed": u.seed, "source": u.source,
                            "train_push": side.get("config", {}).get("train_push"), "commit": side.get("commit")},
                "device": str(device), "wall_time_s": secs, "command": command}
        _write_unit(cfg, u, rec, meta)


def _load_networks(cfg: PaperConfig, kind: str, seeds: list[int], device) -> Network:
    """The pre-trained networks of ``kind``, checked to be the published protocol's."""
    want = asdict(cfg.pretrain_config(kind))
    nets = []
    for s in seeds:
        p = PretrainUnit(kind, s).path(cfg)
        side = read_sidecar(p)
        got = side.get("config", {})
        bad = [k for k in ("n", "batches", "batch_size", "train_push", "feedback_density", "delay")
               if got.get(k, 0 if k == "delay" else None) != want[k]]
        if bad:
            raise ValueError(f"checkpoint {p} was not pre-trained with this protocol ({', '.join(bad)} differ)")
        nets.append(load_checkpoint(p, n=cfg.n, device=device))
    return Network.stack(nets)


# ---------------------------------------------------------------------------------------------
# Running units
# ---------------------------------------------------------------------------------------------

def _effective(cfg: PaperConfig, unit, W_fb, W_out):
    has_fb = NetworkSpec.parse(unit.kind).has_feedback    # a delayed or sparse network has feedback too
    if unit.stage == "sweep":
        return effective_rate("best", unit.condition, has_feedback=has_fb, best_lr=unit.lr)
    own = unit.rotation_deg if getattr(unit, "variant", Variant.NONE) is Variant.OWN_BEST else None
    best = best_swept_rates(cfg, own)[unit.condition.name]["lr"] if unit.protocol is Protocol.BEST else None
    return effective_rate(unit.protocol, unit.condition, has_feedback=has_fb,
                          fb_out_ratio=feedback_output_ratio(W_fb, W_out) if has_fb else None, best_lr=best)


def _batches(units: list, max_runs: int) -> list[list]:
    """Consecutive units of one stage, kind, rule and length, at most ``max_runs`` together."""
    out, cur, key = [], [], None
    for u in units:
        k = (u.stage, u.kind, getattr(getattr(u, "condition", None), "rule", None), getattr(u, "trials", None),
             getattr(u, "variant", None))
        if cur and (k != key or len(cur) >= max_runs):
            out.append(cur)
            cur = []
        cur.append(u)
        key = k
    if cur:
        out.append(cur)
    return out


def _run_pretrain(cfg: PaperConfig, units: list, device, progress: bool, command: str) -> None:
    pretrain(cfg.pretrain_config(units[0].kind), [u.seed for u in units], cfg.checkpoint_dir, device=device,
             progress=progress, command=command, task_cfg=cfg.task)


def _run_adapt(cfg: PaperConfig, units: list, device, progress: bool, command: str) -> None:
    """One lockstep group of adaptation or sweep runs; one file per run when it finishes."""
    kind, rule = units[0].kind, units[0].condition.rule
    variant = getattr(units[0], "variant", Variant.NONE)
    seeds = sorted({u.seed for u in units})
    nets = _load_networks(cfg, kind, seeds, device)
    rates = [_effective(cfg, u, nets.W_fb[seeds.index(u.seed)], nets.W_out[seeds.index(u.seed)]) for u in units]
    runs = [RunSpec(net_index=seeds.index(u.seed), controller_on=u.condition.controller_on,
                    rotation_deg=u.rotation_deg, lr=r.lr, seed=u.seed, perturbation=getattr(u, "perturbation", None))
            for u, r in zip(units, rates)]
    align = rule is Rule.RFLO and units[0].stage == "adapt"
    # matched states feed the fair alignment cells, which read the published protocol's runs only
    matched = align and variant is Variant.NONE and units[0].protocol is Protocol.PUBLISHED
    points = tuple(t for t in cfg.matched_points if t <= units[0].trials) if matched else ()
    res = adapt(nets, rule.value, runs, trials=units[0].trials, align=align, align_every=cfg.align_every,
                bptt_weights=variant.bptt_weights, error_start=variant.error_start, on_divergence="mark",
                device=device, progress=progress, task_cfg=cfg.task,
                keep_weights=points)
    for i, (u, r) in enumerate(zip(units, rates)):
        records = {k: v[i] for k, v in res.records.items()}
        t_matched = time.perf_counter()
        if points and u.rotation_deg in cfg.matched_rotations and res.diverged[i] < 0:
            m = matched_alignment(nets.select(runs[i].net_index), torch.stack([res.weights[t][i] for t in points]),
                                  seed=u.seed, trials=cfg.matched_trials, go_step=cfg.task.go_step,
                                  rotation_deg=u.rotation_deg, task_cfg=cfg.task, device=device)
            records.update(matched_points=np.asarray(points), matched_local=m["local"], matched_global=m["global"])
        ck = PretrainUnit(kind, u.seed).path(cfg)
        meta = {"protocol": r.protocol, "effective_rate": r.as_dict(), "lr": r.lr, "condition": u.condition.name,
                "rotation_deg": u.rotation_deg, "trials": u.trials, "bptt_weights": variant.bptt_weights,
                "error_start": variant.error_start, "variant": variant.value, "test_every": 1, "align_every": cfg.align_every if align else None,
                "diverged_trial": int(res.diverged[i]),
                "network": {"checkpoint": rel_path(ck), "sha256": file_sha256(ck), "seed": u.seed,
                            "commit": read_sidecar(ck).get("commit")},
                "device": str(device), "group_size": len(runs), "compute_path": res.meta["compute_path"],
                "wall_time_s": res.wall_time / len(runs),
                "matched_wall_time_s": time.perf_counter() - t_matched,   # the matched-state evaluation, after it
                "command": command}
        if getattr(u, "protocol", None) is Protocol.BEST:
            meta["sweep_sha256"] = sweep_digest(cfg, u.condition)
        _write_unit(cfg, u, records, meta)


def run_batch(cfg: PaperConfig, units: list, *, device="cpu", progress: bool = True, command: str = "") -> None:
    if units[0].stage == "beyond":
        units[0].run(cfg, units, device=device, progress=progress, command=command)
    elif units[0].stage == "pretrain":
        _run_pretrain(cfg, units, device, progress, command)
    elif units[0].stage == "network":
        _run_network(cfg, units, device, command)
    else:
        _run_adapt(cfg, units, device, progress, command)


# ---------------------------------------------------------------------------------------------
# Cost: measured on the device at the start (a few batches and trials), then extrapolated
# ---------------------------------------------------------------------------------------------

GPU_LAUNCH_S = 10e-6      # assumed cost of one kernel launch on a GPU (a plan estimate, not a measurement)
GPU_FP32_FLOPS = 20e12    # assumed sustained float32 rate of a current data-centre GPU without tensor cores


@dataclass
class Costs:
    """Seconds per pre-training batch (per network) and per run-trial of each rule, and how known."""

    pretrain_batch: float
    run_trial: dict
    source: str


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def _leaf_ops(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if not e.cpu_children)


def calibrate(cfg: PaperConfig, device="cpu", *, runs: int = 4, gpu_model: bool = False) -> dict[str, Costs]:
    """Time 2 pre-training batches and a few adaptation trials of ``runs`` runs per rule on an
    untrained network of the configured size; with ``gpu_model`` also a GPU estimate from the
    number of kernel launches (counted with torch.profiler) and the FLOPs (GPU_* constants)."""

    tr = Trainer(replace(cfg.pretrain_config("fb"), eval_every=10**9), [0], device=device, task_cfg=cfg.task)
    tr.step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(2):
        tr.step()
    _sync(device)
    out = {"measured": Costs((time.perf_counter() - t) / 2, {}, f"measured on {device}")}
    net = init_network(cfg.pretrain_config("fb").network, torch.Generator().manual_seed(0), device=device)
    specs = [RunSpec(controller_on=True, lr=1e-5, seed=s) for s in range(runs)]
    ops = {}
    kw = dict(progress=False, on_divergence="mark", device=device, task_cfg=cfg.task)
    for rule, n_trials in (("rflo", 3), ("bptt", 2)):
        group = specs[:min(runs, default_max_runs(device, rule))]   # as the runner groups them
        adapt(net, rule, group, trials=1, **kw)
        t = time.perf_counter()
        adapt(net, rule, group, trials=n_trials, **kw)
        out["measured"].run_trial[rule] = (time.perf_counter() - t) / n_trials / len(group)
        if gpu_model:
            ops[rule] = _leaf_ops(lambda: adapt(net, rule, specs[:1], trials=1, **kw))
    if gpu_model:
        pre_ops = _leaf_ops(tr.step)
        flops = pretrain_flops(n=cfg.n, batch=cfg.batch_size) / GPU_FP32_FLOPS
        out["gpu_model"] = Costs(pre_ops * GPU_LAUNCH_S / max(len(cfg.fb_seeds), 1) + flops,
                                 {r: o * GPU_LAUNCH_S / _gpu_group(cfg, r) for r, o in ops.items()},
                                 f"modelled: {GPU_LAUNCH_S * 1e6:g} us per kernel launch, "
                                 f"{GPU_FP32_FLOPS / 1e12:g} TFLOP/s, all runs of a rule and stage in lockstep")
    return out


def _gpu_group(cfg: PaperConfig, rule: str) -> int:
    """Runs of one rule in the smallest lockstep group of the plan on a GPU (both controller
    settings of one rotation: 2 x seeds); larger groups only make a run-trial cheaper."""
    return max(1, 2 * len(cfg.fb_seeds))


def unit_seconds(cfg: PaperConfig, costs: Costs, unit) -> float:
    if unit.stage == "beyond":
        return unit.seconds(cfg, costs)
    if unit.stage == "pretrain":
        return cfg.pretrain_batches * costs.pretrain_batch * 1.03   # + the test sets every eval_every batches
    if unit.stage == "network":       # not calibrated: a rough figure at n 400 on one CPU core
        return network_units.MEASURE_SECONDS[unit.measure] * (cfg.n / 400) ** 2
    return unit.trials * costs.run_trial[unit.condition.rule.value]


# ---------------------------------------------------------------------------------------------
# The whole protocol, in order, within a budget
# ---------------------------------------------------------------------------------------------

def default_max_runs(device, rule: str | None = None) -> int:
    """Runs per lockstep group: a whole stage on a GPU. On a CPU one run at a time where the
    compiled one-run kernels work (``learning.ckernels``: one RFLO run takes about half the time
    per run-trial of ten in lockstep, ``bench adapt`` keys rflo_c and rflo_c_batch10; online BPTT
    about 0.1 against 0.22 s for 32 in lockstep, key bptt_c_batch32); without them RFLO in groups
    of 10 (bound by per-call overhead, which lockstep runs share) and online BPTT one at a time
    (each run's buffers stay in cache). An interruption loses at most one group."""
    if str(device).startswith("cuda"):
        return 400
    if rule == "bptt":
        return 1
    return 1 if ckernels.available(torch.float32) else 10


# The published code's cost for the same work on a 2-core CPU (fbctrl.perf.bench.PUBLISHED_CPU):
# seconds per pre-training batch and per adaptation trial of each rule.
def published_costs() -> Costs:
    return Costs(PUBLISHED_CPU["pretrain"], {"rflo": PUBLISHED_CPU["rflo"], "bptt": PUBLISHED_CPU["bptt"]},
                 "the published code on a 2-core CPU (reported figures, not re-measured)")


def plan_costs(cfg: PaperConfig, groups: list[Group], costs: dict[str, Costs]) -> list[dict]:
    """Per group of the plan: its title, units, trials and estimated seconds under each cost
    model (``{"title", "units", "blocked", "seconds": {model: s}}``); what :func:`format_plan`
    prints and ``paper --plan --save`` writes."""
    return [{"title": g.title, "units": len(g.units), "blocked": g.blocked,
             "seconds": {n: float(sum(unit_seconds(cfg, c, u) for u in g.units)) for n, c in costs.items()}}
            for g in groups]


def format_plan(cfg: PaperConfig, groups: list[Group], costs: dict[str, Costs]) -> str:
    """The printed plan: each group in order with its units and estimated time per cost model."""
    names = list(costs)
    lines = [f"{'#':>2}  {'group':58s} {'units':>5}  " + "  ".join(f"{n:>14s}" for n in names)]
    totals = dict.fromkeys(names, 0.0)
    for i, (g, row) in enumerate(zip(groups, plan_costs(cfg, groups, costs)), 1):
        secs = row["seconds"]
        for n in names:
            totals[n] += secs[n]
        note = f"  ({g.blocked})" if g.blocked and g.units else ""
        lines.append(f"{i:>2}  {g.title:58s} {len(g.units):>5}  " + "  ".join(f"{_hms(secs[n]):>14s}" for n in names)
                     + note)
    lines.append(f"{'':>2}  {'total':58s} {sum(len(g.units) for g in groups):>5}  "
                 + "  ".join(f"{_hms(totals[n]):>14s}" for n in names))
    lines += [f"    {n}: {c.source}; pre-training {c.pretrain_batch:.3g} s per batch per network, per run-trial "
              + ", ".join(f"{r} {v:.3g} s" for r, v in c.run_trial.items()) for n, c in costs.items()]
    return "\n".join(lines)


def _hms(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def run_plan(cfg: PaperConfig, *, device="cpu", budget_minutes: float | None = None, max_runs: int | None = None,
             costs: Costs | None = None, progress: bool = True, command: str = "", log=print,
             stages=None, shard: tuple[int, int] | None = None) -> dict:
    """Run the groups of :func:`plan` in order, one lockstep batch at a time, re-planning after
    each (the sweep's extensions and best rates appear when their inputs exist). With a budget,
    stop before a batch whose estimate would not fit, with everything finished saved.
    ``stages``: only the groups of these stages (:data:`STAGES`), e.g. ``["network"]``.
    ``shard=(i, n)``: only the units of network seeds ``s`` with ``s % n == i`` (see
    :func:`shard_units`), so that n processes share the plan without computing a unit twice.
    Each unit is claimed before it runs (``store.claim``): a unit another live process holds is
    left to it (the run stops saying so when only such units are left), and a unit another
    process finished meanwhile is not computed again. Damaged and stale units are logged and
    recomputed."""
    if stages is not None:
        bad = [x for x in stages if x not in STAGES]
        if bad or not stages:
            raise ValueError(f"stages must be some of {', '.join(STAGES)}, got {list(stages)!r}")
    t0 = time.perf_counter()
    done, stopped, held = 0, None, {}
    while True:
        groups = _todo(cfg, stages, shard, held)
        g = next((g for g in groups if g.units and not g.blocked), None)
        if g is None and _release_dead(held):
            continue
        if g is None:
            stopped = _why_stopped(groups, held)
            break
        first = g.units[0]
        limit = (_pretrain_group(device, g) if first.stage == "pretrain" else 1 if first.stage == "network"
                 else first.batch_limit(device, max_runs) if first.stage == "beyond"
                 else max_runs or default_max_runs(device, first.condition.rule.value))
        units = _batches(g.units, limit)[0]
        est = sum(unit_seconds(cfg, costs, u) for u in units) if costs else 0.0
        used = time.perf_counter() - t0
        if budget_minutes is not None and used + est > budget_minutes * 60:
            stopped = f"budget: {g.title}, next batch of {len(units)} needs about {_hms(est)}, {_hms(budget_minutes * 60 - used)} left"
            break
        log(f"[{_hms(used)}] {g.title}: {', '.join(u.describe() for u in units[:3])}"
            + (f" and {len(units) - 3} more" if len(units) > 3 else "") + (f" (about {_hms(est)})" if costs else ""))
        done += _run_claimed(cfg, units, held, log, device=device, progress=progress, command=command)
    left = sum(len(shard_units(x, shard).units) for x in plan(cfg)
               if stages is None or (x.units and x.units[0].stage in stages))
    return {"units_done": done, "units_left": left, "wall_time_s": time.perf_counter() - t0, "stopped": stopped}


def _todo(cfg: PaperConfig, stages, shard, held: dict) -> list[Group]:
    """The plan's groups of ``stages`` and ``shard``, without the units other processes hold."""
    groups = [shard_units(g, shard) for g in plan(cfg) if stages is None or (g.units and g.units[0].stage in stages)]
    return [replace(g, units=[u for u in g.units if u not in held]) if held else g for g in groups]


def _run_claimed(cfg: PaperConfig, units: list, held: dict, log, **kw) -> int:
    """Claim ``units``, run those still to do, release the claims; returns how many ran."""
    claims, mine = [], []
    try:
        for u in units:
            c = store.claim(u.path(cfg))
            if c is None:
                held[u] = u.path(cfg)
                log(f"  {u.describe()}: claimed by another process ({store.holder(u.path(cfg))}), left to it")
                continue
            claims.append(c)
            state, why = unit_status(cfg, u)
            if state == "done":
                continue                      # another process finished it meanwhile
            if state in ("damaged", "stale"):
                log(f"  recompute {u.describe()}: {why}")
            mine.append(u)
        if mine:
            run_batch(cfg, mine, **kw)
    finally:
        for c in claims:
            c.release()
    return len(mine)


def _release_dead(held: dict) -> bool:
    """Forget held units whose claim is gone or belongs to a dead process (they are planned
    again); True if any was forgotten."""
    gone = [u for u, p in held.items() if not store.claim_path(p).exists() or store.claim_is_stale(p)]
    for u in gone:
        del held[u]
    return bool(gone)


def _why_stopped(groups: list[Group], held: dict) -> str | None:
    left = [f"{x.title} ({x.blocked})" for x in groups if x.units]
    if held:
        hosts = sorted({store.holder(p) for p in held.values()})
        left.append(f"{len(held)} unit(s) claimed by other processes ({', '.join(hosts)}); they are computing them")
    return ("blocked: " + "; ".join(left)) if left else None


def shard_threads(shard: tuple[int, int] | None, cores: int | None, env: dict) -> int | None:
    """CPU threads for one of N shard processes: the cores split evenly (at least one), so that N
    processes do not oversubscribe them; None (leave torch's default) without a shard or where the
    user chose with OMP_NUM_THREADS."""
    if shard is None or "OMP_NUM_THREADS" in env:
        return None
    return max(1, (cores or 1) // shard[1])


def shard_units(g: Group, shard: tuple[int, int] | None) -> Group:
    """The group's units whose network seed ``s`` has ``s % n == i`` for ``shard=(i, n)`` (all of
    them for ``None``). Seeds split the plan into disjoint parts of nearly equal cost: every stage
    runs the same work per seed. A group blocked for all stays blocked for each shard."""
    if shard is None:
        return g
    i, n = check_shard(shard)
    return replace(g, units=[u for u in g.units if u.seed % n == i])


def check_shard(shard) -> tuple[int, int]:
    """``(i, n)`` with integers 0 <= i < n, else a one-line ValueError."""
    i, n = shard
    if not (isinstance(n, int) and isinstance(i, int) and n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be I/N with integers 0 <= I < N (e.g. 0/2 and 1/2), got {i}/{n}")
    return i, n


def _pretrain_group(device, g: Group) -> int:
    """Seeds of one kind in lockstep: all on a GPU, one at a time on a CPU (one network already
    fills the cores there; lockstep seeds are slower per network, Performance chapter)."""
    return len(g.units) if str(device).startswith("cuda") else 1
