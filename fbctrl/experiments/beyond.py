"""Beyond the paper: the paper's claims, measured the same way, on delayed, sparse and
limit-cycle networks (Methods, "Beyond the paper: tasks, delays and sparse feedback").

The extension is a stage of the paper protocol (``python -m fbctrl paper --only beyond``): its
units are the paper protocol's own unit classes (:class:`~fbctrl.experiments.network_units.NetworkUnit`,
:class:`~fbctrl.experiments.paper.AdaptUnit`), run, claimed, hashed, sharded and budgeted by its
runner, each seen through a :class:`BeyondUnit` that says which network family's configuration
(:func:`family_config`) places its files:

* the families are those with a pre-trained network in ``checkpoints/beyond`` (beside the
  published networks' folder), each found from its checkpoint's sidecar through
  :class:`~fbctrl.core.spec.NetworkSpec` (:func:`find_families`); every family gets the first
  :data:`N_SEEDS` configured seeds, and a unit whose network is not pre-trained yet waits for it;
* network measures (:data:`NETWORK_MEASURES`, the weights frozen, the first trial of the
  perturbation): Figure 1a's online correction, 2c, 4a (open and closed loop), 5b, and the
  alignment (fed-back error detached and loop kept) and scale-free efficiency at the pre-trained
  weights, controller on and off from the same weights, targets and initial states (Figs 4b, 4c,
  5a at matched states), on the family's test conditions (centre-out reaches rotated by 30
  degrees; the limit cycle's test frequencies shifted by ``NetMeasureConfig.shift_hz``), through
  the network's own delay and mask; and Figure 1a on the published networks of the same seeds,
  whose other measures are the paper protocol's units. Not measured (:data:`LEFT_OUT`): the W_rec
  Newton comparison, and best-rate runs on the limit cycle;
* adaptation (:func:`adapt_units`): RFLO+c, RFLO, BPTT+c and BPTT (controller off only for a
  family without feedback) under the published protocol's rates and trial count, perturbed by
  ``Rotation(30)`` on reaching and ``FrequencyShift(shift_hz)`` on the limit cycle
  (:class:`CycleAdaptUnit`), each run paired by seed with the other condition of its network;
  and, on the reaching families, the same four conditions at the best rates of the published
  networks' learning-rate sweep at 30 degrees (:data:`BEST_RATES`; ``BeyondConfig.rates_config``).

Files: ``results/beyond/network/published/{measure}/{family}_seed{s}.npz`` and
``results/beyond/adapt/{published|best}/{rot30|shift+0.5}/{family}_{condition}_seed{s}.npz``.

The verdict tables (:func:`family_table`) state each claim per family in the main table's
format, three ways: within the variant (its own controller on / off or +c / no-c pairs), within
the published networks of the same seeds, and the change, the variant's per-seed effect against
the published network's of the same seed (a delayed or sparse network of seed s is pre-trained
from the same initial weights and batches as the published network of seed s). Every verdict is
``stats.verdict``'s four-word rule with the claim's band; with fewer than 2 networks it is
inconclusive.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import fmt
from ..core.spec import NetworkSpec
from ..core.tasks import FrequencyShift, LimitCycleConfig, task_config_from_dict
from . import metrics, network_units, paper
from .paper import AdaptUnit, Group, PaperConfig, PretrainUnit, Variant
from .protocol import CONDITIONS, Condition, Protocol, Rule
from .stats import equivalence_test, paired_effect, verdict
from .verdicts import (AS_PUBLISHED, BANDS, CLAIMS, COLUMNS, Adjusted, Claim, ClaimResult, adjust, claim_band,
                       format_cell, verdict_table)

__all__ = ["N_SEEDS", "NETWORK_MEASURES", "LEFT_OUT", "ROTATION", "BeyondConfig", "CycleAdaptUnit", "BeyondUnit",
           "beyond_dirs", "find_families", "family_config", "reference_config", "beyond_seeds", "groups",
           "adapt_units", "network_units_of", "ONLINE_CLAIM", "Row", "ROWS", "NOFB_ROWS", "feedback_sibling",
           "BeyondRow", "family_table", "multiplicity", "table_rows", "markdown_table", "AXES", "summary_records",
           "training_tail"]

N_SEEDS = 5                 # the first five configured seeds of every family (the paper protocol's seeds 0-4)
ROTATION = 30.0             # the reaching families' perturbation (the claims' rotation)
NETWORK_MEASURES = ("online", "activity", "jacobian", "activity_newton", "matched_loop")   # 1a, 2c, 4a, 5b; 4b, 4c, 5a
LEFT_OUT = {
    "wrec_newton": "the published code's W_rec Newton comparison is no claim of the paper's figures",
    "best rates on the limit cycle": "the reaching task's learning-rate sweep chooses no rates for another task, "
                                     "and a sweep per family is not run (70 runs a rotation and rule)",
}
# The best-rate runs of a reaching family take the best rates of the published networks' 30 deg
# sweep (the rates the main table's fair column uses), not a sweep of their own: the question is
# whether the controller's advantage at rates good for the published networks survives a delay
# or a sparse pathway. A rate a variant would prefer is not searched (Methods).
BEST_RATES = "the published networks' 30 deg sweep"
FOLDER = "beyond"           # beside checkpoints/published and results/paper


# ---------------------------------------------------------------------------------------------
# Families and their configurations
# ---------------------------------------------------------------------------------------------

def beyond_dirs(cfg: PaperConfig) -> tuple[Path, Path]:
    """(checkpoint folder, results folder) of the extension: ``beyond`` beside the paper
    protocol's ``checkpoint_dir`` and ``results_dir``."""
    return Path(cfg.checkpoint_dir).parent / FOLDER, Path(cfg.results_dir).parent / FOLDER


def sidecars(folder: Path):
    """(spec, seed, sidecar) of every finished network in ``folder`` (a sidecar with its config
    and network entries and the checkpoint it describes)."""
    if not folder.is_dir():
        return
    for p in sorted(folder.glob("*.json")):
        try:
            side = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(side, dict) or "config" not in side or "network" not in side or "seed" not in side:
            continue
        spec = NetworkSpec.from_sidecar(side)
        if (folder / f"{spec.tag}_seed{int(side['seed'])}.pt").is_file():
            yield spec, int(side["seed"]), side


def _family_order(spec: NetworkSpec) -> tuple:
    return (spec.task != "reach", spec.feedback_density < 1.0, spec.delay, -spec.feedback_density,
            not spec.has_feedback)


def find_families(cfg: PaperConfig) -> dict[str, NetworkSpec]:
    """The network families pre-trained in the extension's folder, of the configured size, by
    family name (``NetworkSpec.family``: 'fb_d5', 'fb0.3', 'lc_fb', ...), in the order delays,
    densities, tasks. The paper's own families (fb, nofb on reaching) are not variants."""
    ck, _ = beyond_dirs(cfg)
    found = {}
    for spec, _seed, _side in sidecars(ck):
        if spec.n != cfg.n or (spec.task == "reach" and spec.delay == 0 and spec.feedback_density in (0.0, 1.0)):
            continue
        found.setdefault(spec.family, spec)
    return dict(sorted(found.items(), key=lambda kv: _family_order(kv[1])))


def training_tail(checkpoint: Path, fraction: float = 0.1) -> float | None:
    """Whether pre-training had converged at its batch count: the mean training loss (the task
    loss, the weight penalty left out) over the last ``fraction`` of the batches over its mean over
    the ``fraction`` before, from the curve beside ``checkpoint`` (None without one). Near 1 the
    loss had stopped falling; well below 1 more batches would have lowered it (Methods)."""
    f = Path(checkpoint).with_suffix(".curve.npz")
    if not f.is_file():
        return None
    with np.load(f) as z:
        loss = np.asarray(z["task_loss"], dtype=np.float64)
    k = int(len(loss) * fraction)
    if k < 1 or 2 * k > len(loss):
        return None
    return float(loss[-k:].mean() / loss[-2 * k:-k].mean())


def beyond_seeds(cfg: PaperConfig) -> tuple:
    """The seeds of every family: the first :data:`N_SEEDS` configured seeds with feedback."""
    return tuple(int(s) for s in cfg.fb_seeds[:N_SEEDS])


def _task_config(cfg: PaperConfig, spec: NetworkSpec):
    """The family's task configuration: the paper's for reaching; for the limit cycle the one its
    first network was pre-trained with (its sidecar), else the task's defaults."""
    if spec.task == "reach":
        return cfg.task
    ck, _ = beyond_dirs(cfg)
    for s, _seed, side in sidecars(ck):
        if s.family == spec.family and side.get("task"):
            return task_config_from_dict(spec.task, side["task"])
    return LimitCycleConfig()


@dataclass(frozen=True)
class CycleAdaptUnit(AdaptUnit):
    """An adaptation run of a limit-cycle network: perturbed by a frequency shift of
    ``shift_hz`` (``rotation_deg`` stays 0: no rotation), in ``.../{shift+0.5}/...``."""

    shift_hz: float = 0.5

    @property
    def perturbation(self) -> FrequencyShift:
        return FrequencyShift(self.shift_hz)

    def path(self, cfg) -> Path:
        return (Path(cfg.results_dir) / "adapt" / self.protocol.value / self.perturbation.name
                / f"{self.kind}_{self.condition.slug}_seed{self.seed}.npz")

    def describe(self) -> str:
        return f"{self.kind} {self.condition.name} {self.perturbation.label} seed {self.seed} ({self.protocol.value})"


@dataclass(frozen=True)
class BeyondConfig(PaperConfig):
    """The paper protocol's configuration for one network family of the extension (its folders,
    seeds and task; :func:`family_config`). The published protocol's rates, trials and measure
    settings are the paper's; no matched states (the extension reports the as-published column)."""

    family: str = "fb"
    rates_results_dir: str = ""      # the published networks' results (their sweep chooses the best rates)
    rates_checkpoint_dir: str = ""   # and their networks

    @property
    def spec(self) -> NetworkSpec:
        return NetworkSpec.parse(self.family)

    def rates_config(self) -> PaperConfig:
        """The published networks' configuration, whose 30 deg sweep chooses this family's best
        rates (:data:`BEST_RATES`)."""
        if not self.rates_results_dir:
            raise ValueError(f"family {self.family!r} has no published results folder to take its rates from "
                             "(build its configuration with family_config)")
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(PaperConfig)}
        base.update(results_dir=self.rates_results_dir, checkpoint_dir=self.rates_checkpoint_dir)
        return PaperConfig(**base)

    def pretrain_config(self, kind: str):
        """The published protocol for ``kind``; a limit-cycle network is pre-trained with pushes
        (Methods: without them its feedback pathway does not survive pre-training)."""
        pc = super().pretrain_config(kind)
        return replace(pc, train_push=True) if NetworkSpec.parse(kind).task == "limit-cycle" else pc

    def adapt_unit(self, kind: str, seed: int, rotation: float, condition: Condition, protocol: Protocol,
                   trials: int, variant: Variant = Variant.NONE) -> AdaptUnit:
        """The run of ``condition`` on network ``kind`` seed ``seed`` that a claim at ``rotation``
        reads: that rotation on reaching; the limit cycle's frequency shift in its place."""
        if NetworkSpec.parse(kind).task == "limit-cycle":
            return CycleAdaptUnit(kind, int(seed), 0.0, condition, Protocol.parse(protocol), trials, variant=variant,
                                  shift_hz=self.network_measures.shift_hz)
        return AdaptUnit(kind, int(seed), float(rotation), condition, Protocol.parse(protocol), trials, variant=variant)


def family_config(cfg: PaperConfig, family: str) -> BeyondConfig:
    """The configuration of ``family``'s units: the extension's folders (the published networks'
    folder for the reference family 'fb', whose Figure 1a units the extension computes), the
    family's seeds (:func:`beyond_seeds`) and task."""
    spec = NetworkSpec.parse(family)
    if isinstance(cfg, BeyondConfig):
        raise ValueError("cfg must be the paper protocol's configuration (a family's is derived from it)")
    ck, res = beyond_dirs(cfg)
    seeds = beyond_seeds(cfg)
    base = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(PaperConfig)}
    base.update(family=spec.family, checkpoint_dir=str(cfg.checkpoint_dir if spec.family == "fb" else ck),
                results_dir=str(res), fb_seeds=seeds, nofb_seeds=seeds, matched_points=(), matched_rotations=(),
                task=_task_config(cfg, spec), rates_results_dir=str(cfg.results_dir),
                rates_checkpoint_dir=str(cfg.checkpoint_dir))
    return BeyondConfig(**base)


def reference_config(cfg: PaperConfig, seeds=None) -> PaperConfig:
    """The paper protocol's configuration restricted to the extension's seeds (or ``seeds``): what
    the published networks of the same seeds say."""
    return replace(cfg, fb_seeds=tuple(seeds) if seeds is not None else beyond_seeds(cfg))


# ---------------------------------------------------------------------------------------------
# Units and the plan
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BeyondUnit:
    """One unit of the extension: a paper-protocol unit (``inner``) of ``family``, whose
    configuration (:func:`family_config`) places its files. The paper protocol's runner sees
    the stage ``beyond`` and asks the unit (``status``, ``seconds``, ``batch_limit``, ``run``)."""

    family: str
    inner: object
    stage: str = "beyond"

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def seed(self) -> int:
        return self.inner.seed

    @property
    def trials(self):
        return getattr(self.inner, "trials", None)

    @property
    def condition(self):
        return getattr(self.inner, "condition", None)

    @property
    def variant(self):
        return getattr(self.inner, "variant", None)

    def config(self, cfg: PaperConfig) -> BeyondConfig:
        return family_config(cfg, self.family)

    def path(self, cfg: PaperConfig) -> Path:
        return self.inner.path(self.config(cfg))

    def status(self, cfg: PaperConfig) -> tuple[str, str]:
        return paper.unit_status(self.config(cfg), self.inner)

    def seconds(self, cfg: PaperConfig, costs) -> float:
        return paper.unit_seconds(self.config(cfg), costs, self.inner)

    def batch_limit(self, device, max_runs: int | None) -> int:
        if self.inner.stage == "network":
            return 1
        return max_runs or paper.default_max_runs(device, self.inner.condition.rule.value)

    @classmethod
    def run_batch(cls, cfg: PaperConfig, units: list, **kw) -> None:
        """Run ``units`` (one family, one stage: consecutive units of one group) with the paper
        protocol's runner in their family's configuration."""
        paper.run_batch(units[0].config(cfg), [u.inner for u in units], **kw)

    def describe(self) -> str:
        return f"beyond: {self.inner.describe()}"


def network_units_of(cfg: PaperConfig, family: str, measures=NETWORK_MEASURES) -> list:
    """The network units of ``family`` (seed by seed)."""
    return [network_units.NetworkUnit(m, family, s, "published") for s in beyond_seeds(cfg) for m in measures]


def adapt_units(cfg: PaperConfig, family: str, rule: Rule, protocol: Protocol = Protocol.PUBLISHED) -> list:
    """The runs of ``family`` with ``rule`` under ``protocol`` (published, or best: the published
    networks' best rates, reaching families with feedback only): both controller settings with
    feedback, controller off without."""
    bcfg = family_config(cfg, family)
    spec = NetworkSpec.parse(family)
    if protocol is Protocol.BEST and (spec.task != "reach" or not spec.has_feedback):
        raise ValueError(f"best-rate runs are made on reaching families with feedback, not {family!r} "
                         f"({LEFT_OUT['best rates on the limit cycle']})")
    conds = [c for c in CONDITIONS if c.rule is rule and (spec.has_feedback or not c.controller_on)]
    return [bcfg.adapt_unit(family, s, ROTATION, c, protocol, cfg.trials) for c in conds
            for s in beyond_seeds(cfg)]


def _wrap(family: str, units: list) -> list:
    return [BeyondUnit(family, u) for u in units]


def _group(cfg: PaperConfig, title: str, family: str, inner: list, include_done: bool) -> Group:
    """A group of one family's units; those whose network is not pre-trained yet are left out
    until it is, and the group waits when only those are left (as the paper protocol's); runs at
    the best rates wait for the published networks' sweep to be complete."""
    bcfg = family_config(cfg, family)
    ready_of = (lambda u: paper.network_ready(bcfg, u)) if inner and inner[0].stage == "network" else (
        lambda u: paper.is_done(bcfg, PretrainUnit(u.kind, u.seed)))
    if include_done:
        return Group(title, _wrap(family, inner))
    todo = [u for u in inner if not paper.is_done(bcfg, u)]
    if todo and getattr(todo[0], "protocol", None) is Protocol.BEST:
        best = paper.best_swept_rates(cfg)
        if any(best[u.condition.name]["lr"] is None for u in todo):
            return Group(title, _wrap(family, todo), blocked="waits for the sweep")
    ready = [u for u in todo if ready_of(u)]
    return Group(title, _wrap(family, ready or todo), blocked="waits for pre-training" if todo and not ready else None)


def groups(cfg: PaperConfig, include_done: bool = False) -> list[Group]:
    """The extension's groups in order (none while no variant network exists): Figure 1a of the
    published networks of the same seeds, the network measures of each family, then every
    family's RFLO runs, then every family's BPTT runs (the most expensive last)."""
    if isinstance(cfg, BeyondConfig):
        return []
    fams = find_families(cfg)
    if not fams:
        return []
    shift = FrequencyShift(cfg.network_measures.shift_hz)
    out = [_group(cfg, "beyond: online correction (Fig 1a) of the published networks of the same seeds", "fb",
                  network_units_of(cfg, "fb", ("online",)), include_done)]
    for fam, spec in fams.items():
        if spec.has_feedback:
            out.append(_group(cfg, f"beyond: network measures (Figs 1a, 2c, 4a, 5b; 4b, 4c, 5a at the pre-trained weights) of {fam}", fam,
                              network_units_of(cfg, fam), include_done))
    for protocol in (Protocol.PUBLISHED, Protocol.BEST):
        for rule in (Rule.RFLO, Rule.BPTT):
            name = rule.value.upper()
            for fam, spec in fams.items():
                if protocol is Protocol.BEST and (spec.task != "reach" or not spec.has_feedback):
                    continue
                pert = shift.label if spec.task == "limit-cycle" else f"{ROTATION:g} deg"
                conds = f"{name} and {name}+c" if spec.has_feedback else name
                how = "published protocol" if protocol is Protocol.PUBLISHED else f"best rates of {BEST_RATES}"
                out.append(_group(cfg, f"beyond: {fam}, {pert}, {how}, {conds}", fam,
                                  adapt_units(cfg, fam, rule, protocol), include_done))
    return out


# ---------------------------------------------------------------------------------------------
# Verdicts per family
# ---------------------------------------------------------------------------------------------

def _online_measure(cfg, col):
    """Figure 1a: per network (mean loss with the controller off, with it on) on the first trial
    of the perturbation, weights frozen (network unit ``online``); the published networks'
    units live in the extension's results."""
    store_cfg = cfg if isinstance(cfg, BeyondConfig) else family_config(cfg, "fb")
    seeds, recs, _ = paper.load_network_units(store_cfg, "online", "published")
    if not seeds:
        return [], [], (), "not computed yet (python -m fbctrl paper --only beyond)"
    vals = [network_units.online_values(r) for r in recs]
    return (np.array([v[0] for v in vals]), np.array([v[1] for v in vals]), tuple(seeds),
            f"trial loss with the controller off over with it on, weights frozen, each test condition under the "
            f"perturbation {len(recs[0]['loss_on'])} trials (first trial of the perturbation)")


ONLINE_CLAIM = Claim("online_fig1a", "Fig 1a", "The controller corrects the perturbed output online (loss off / on "
                     "above 1)", _online_measure, short="online correction, off / on", band=BANDS["loss"])


@dataclass(frozen=True)
class Row:
    """One row of a family's table: a claim of the verdict table (or Figure 1a's) measured in a
    column of it (the as-published column; the fair column's best rates; the closed-loop
    Jacobian's, the pre-trained weights' rows). ``in_summary``: drawn in the summary figure."""

    key: str
    claim: Claim
    column: object
    figure: str
    short: str
    in_summary: bool = True


def _row(claim: Claim, col=AS_PUBLISHED, figure: str | None = None, suffix: str = "", short: str = "",
         in_summary: bool = True) -> Row:
    return Row(claim.key + (f"_{suffix}" if suffix else ""), claim, col, figure or claim.figure,
               short or claim.short, in_summary)


_BY_KEY = {c.key: c for c in CLAIMS}
_DETACHED = COLUMNS["alignment at the pre-trained weights, fed-back error detached"]
_LOOP = COLUMNS["alignment at the pre-trained weights, loop kept in the gradient"]
_MATCHED_EFF = COLUMNS["efficiency at matched states, pre-trained weights (scale-free, per trial)"]
# the main table's claims in its as-published column, then the conventions that the verdict table
# showed a verdict rests on: the best rates (Fig 3b, 5a at equal path), the closed loop (Fig 4a),
# the pre-trained weights with both gradient conventions (Figs 4b, 4c) and matched states (Fig 5a)
ROWS = (_row(ONLINE_CLAIM), _row(_BY_KEY["activity_fig2c"]),
        _row(_BY_KEY["final_loss_rflo_30"]),
        _row(_BY_KEY["final_loss_rflo_30"], COLUMNS["fair"], "Fig 3b best rates", "best",
             "loss RFLO+c < RFLO, 30°"),
        _row(_BY_KEY["final_loss_bptt_30"]),
        _row(_BY_KEY["final_loss_bptt_30"], COLUMNS["fair"], "Fig 3b best rates", "best",
             "loss BPTT+c < BPTT, 30°"),
        _row(_BY_KEY["jacobian_fig4a"], figure="Fig 4a open loop"),
        _row(_BY_KEY["jacobian_fig4a"], COLUMNS["closed-loop Jacobian lag 1"], "Fig 4a closed loop", "closed_loop"),
        _row(_BY_KEY["align_local"]),
        _row(_BY_KEY["align_local"], _DETACHED, "Fig 4b pre-trained", "pretrained_detached",
             "local alignment, error detached", in_summary=False),
        _row(_BY_KEY["align_local"], _LOOP, "Fig 4b pre-trained", "pretrained_loop",
             "local alignment, loop kept"),
        _row(_BY_KEY["align_global"]),
        _row(_BY_KEY["align_global"], _DETACHED, "Fig 4c pre-trained", "pretrained_detached",
             "global alignment, error detached", in_summary=False),
        _row(_BY_KEY["align_global"], _LOOP, "Fig 4c pre-trained", "pretrained_loop",
             "global alignment, loop kept"),
        _row(_BY_KEY["efficiency"], in_summary=False),
        _row(_BY_KEY["efficiency"], COLUMNS["fair"], "Fig 5a best rates", "best",
             "efficiency RFLO+c > RFLO, equal path", in_summary=False),
        _row(_BY_KEY["efficiency"], _MATCHED_EFF, "Fig 5a matched", "matched",
             "efficiency RFLO+c > RFLO"),
        _row(_BY_KEY["activity_newton_fig5b"]))


@dataclass(frozen=True)
class BeyondRow:
    """One claim of one family: its effect in the variant, in the published networks of the
    same seeds, and the change (the variant's per-seed effect against the published one's;
    None where the comparison is not made, ``change_note`` says why)."""

    family: str
    key: str
    figure: str
    claim: str
    variant: object          # verdicts.ClaimResult
    published: object        # verdicts.ClaimResult
    change: object | None
    change_note: str = ""
    short: str = ""          # the claim in a few words (the table's claim column)


def _claim_text(claim, spec: NetworkSpec, shift: FrequencyShift) -> str:
    return claim.claim.replace(f"({ROTATION:g} deg)", f"({shift.label})") if spec.task == "limit-cycle" \
        else claim.claim


def _per_seed(claim, cfg, col) -> dict[int, float]:
    """Per seed: the claim's effect on its analysis scale (log(a / b) or a - b), finite ones."""
    a, b, seeds, _ = claim.measure(cfg, col)
    if not len(seeds):
        return {}
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(a / b) if claim.log else a - b
    return {int(s): float(x) for s, x in zip(seeds, d) if np.isfinite(x)}


def _change(claim, col, bcfg, ref, family: str):
    """The change of the effect, variant against published, paired per seed: the difference of
    the per-seed effects (of the log ratios for a ratio, reported as the ratio of the ratios),
    judged with the claim's band and direction (agrees: the variant's effect is larger in the
    paper's direction; disagrees: smaller; negligible: the same within the band)."""
    dv, dp = _per_seed(claim, bcfg, col), _per_seed(claim, ref, col)
    seeds = sorted(set(dv) & set(dp))
    x = np.array([dv[s] for s in seeds])
    y = np.array([dp[s] for s in seeds])
    eff = paired_effect(np.exp(x), np.exp(y), log=True) if claim.log else paired_effect(x, y)
    band = claim_band(claim, col)
    return ClaimResult(claim.key, claim.figure, claim.claim, "change", f"{family} against the published networks of "
                       f"the same seeds, per seed: {'ratio of the ratios' if claim.log else 'difference of the differences'}",
                       eff, verdict(eff, claim.paper_sign, band), tuple(seeds),
                       band=band.edges(claim.log) if band else (), band_reason=band.reason if band else "",
                       equivalence_p=equivalence_test(eff, band) if band and eff.n >= 2 else float("nan"))


# A family without feedback has no controller to switch: none of :data:`ROWS` can be measured on
# it. It is the control of its task's family with feedback, as the paper's networks without
# feedback are of the published ones: the same seeds pre-trained without the pathway, adapted with
# the controller-off conditions. Its rows compare the two per seed (the test loss under the
# perturbation before adaptation, and at the end of each rule's run), beside the same comparison
# on the published reaching networks of those seeds. The paper states no claim on this
# comparison; the direction read is "pre-training with feedback leaves the network better off
# with the controller off", so agrees / disagrees say which way it went (Methods).
NOFB_ROWS = (("nofb_start", "before adaptation", Rule.RFLO, True),
             ("nofb_rflo", "after RFLO", Rule.RFLO, False),
             ("nofb_bptt", "after BPTT", Rule.BPTT, False))


def feedback_sibling(family: str) -> str:
    """The family with dense feedback of ``family``'s task, delay and size ('lc_nofb' -> 'lc_fb')."""
    return replace(NetworkSpec.parse(family), feedback_density=1.0).family


def _controller_off_losses(cfg: PaperConfig, family: str, rule: Rule, at_start: bool, seeds) -> dict[int, float]:
    """Per seed among ``seeds`` whose run is done: the test loss (controller off) of ``family``'s
    run with ``rule`` and the controller off under the published protocol, before its first trial
    (``at_start``) or over its last 10 trials (the main table's final-loss window)."""
    cond = next(c for c in CONDITIONS if c.rule is rule and not c.controller_on)
    make = getattr(cfg, "adapt_unit", AdaptUnit)
    units = {int(s): make(family, int(s), ROTATION, cond, Protocol.PUBLISHED, cfg.trials) for s in seeds}
    done = [s for s, u in units.items() if paper.is_done(cfg, u)]
    if not done:
        return {}
    rec, _ = paper.load_runs(cfg, [units[s] for s in done])
    tl = rec["test_loss"]
    vals = tl[:, 0] if at_start else metrics.final_loss(tl, min(AS_PUBLISHED.window, tl.shape[1]))
    return {s: float(v) for s, v in zip(done, vals)}


def _feedback_claim(key: str, when: str, rule: Rule, at_start: bool, pairs, label: str) -> Claim:
    """The comparison of one row of :data:`NOFB_ROWS` as a claim: loss without feedback over loss
    with feedback (controller off), per seed; ``pairs``: ((cfg, family without), (cfg, family with))."""
    (cfg_no, fam_no), (cfg_fb, fam_fb) = pairs

    def measure(_cfg, _col):
        seeds = cfg_no.fb_seeds             # the extension's seeds (a family's, or the reference's)
        no = _controller_off_losses(cfg_no, fam_no, rule, at_start, seeds)
        fb = _controller_off_losses(cfg_fb, fam_fb, rule, at_start, seeds)
        both = sorted(set(no) & set(fb))
        if not both:
            return [], [], (), "no runs yet"
        what = "before the first trial" if at_start else f"mean of the last {AS_PUBLISHED.window} trials (all if fewer)"
        return ([no[s] for s in both], [fb[s] for s in both], tuple(both),
                f"test loss (controller off) of {fam_no} over {fam_fb}, {what} of the {rule.name} run with the "
                f"controller off, published protocol")
    return Claim(key, "no feedback", f"Pre-trained with feedback, the network (controller off) has a lower test loss "
                 f"{when} than pre-trained without ({label})", measure, band=BANDS["loss"],
                 short=f"loss without / with feedback, {when}")


def _no_feedback_table(cfg: PaperConfig, family: str) -> list[BeyondRow]:
    """The rows of a family without feedback (:data:`NOFB_ROWS`): against its task's family with
    feedback, and the same comparison on the published networks (nofb against fb) of the seeds."""
    spec = NetworkSpec.parse(family)
    sib = feedback_sibling(family)
    bcfg, scfg = family_config(cfg, family), family_config(cfg, sib)
    ref = reference_config(cfg)
    label = FrequencyShift(cfg.network_measures.shift_hz).label if spec.task == "limit-cycle" else f"{ROTATION:g}°"
    out = []
    for key, when, rule, at_start in NOFB_ROWS:
        var = _feedback_claim(key, when, rule, at_start, ((bcfg, family), (scfg, sib)), label)
        pub = _feedback_claim(key, when, rule, at_start, ((ref, "nofb"), (ref, "fb")), f"{ROTATION:g}°")
        v = verdict_table(bcfg, (var,), (AS_PUBLISHED,))[0]
        p = verdict_table(ref, (pub,), (AS_PUBLISHED,))[0]
        note = "not compared: another task (other networks, losses on another scale)" if spec.task != "reach" \
            else "not compared: the published networks without feedback are this comparison's reference"
        out.append(BeyondRow(family, key, f"no feedback ({rule.name})" if not at_start else "no feedback",
                             var.claim, v, p, None, note, var.short))
    return out


def family_table(cfg: PaperConfig, family: str) -> list[BeyondRow]:
    """Every row of :data:`ROWS` for ``family`` (module docstring): the variant's effect, the
    published networks' effect on the same seeds, and the change (reaching families only: a
    limit-cycle network and a reaching network of one seed share no weights and no loss scale).
    A family of another task has no best-rate rows (:data:`LEFT_OUT`).
    A family without feedback gets the rows of :data:`NOFB_ROWS` instead (its task's family with
    feedback against it)."""
    spec = NetworkSpec.parse(family)
    if not spec.has_feedback:
        return _no_feedback_table(cfg, family)
    bcfg = family_config(cfg, family)
    ref = reference_config(cfg)
    shift = FrequencyShift(cfg.network_measures.shift_hz)
    out = []
    for row in ROWS:
        claim, col = row.claim, row.column
        if spec.task != "reach" and col is COLUMNS["fair"]:
            continue        # no best rates on another task (LEFT_OUT): a row of "no data" would read as missing
        v = verdict_table(bcfg, (claim,), (col,))[0]
        p = verdict_table(ref, (claim,), (col,))[0]
        if spec.task == "reach":
            ch, note = _change(claim, col, bcfg, ref, family), ""
        else:
            ch, note = None, "not compared: another task (other networks, losses on another scale)"
        short = row.short.replace(f"{ROTATION:g}°", shift.label) if spec.task == "limit-cycle" else row.short
        out.append(BeyondRow(family, row.key, row.figure, _claim_text(claim, spec, shift), v, p, ch, note, short))
    return out


def multiplicity(rows: list[BeyondRow], alpha: float = 0.05) -> dict[str, list[Adjusted]]:
    """One family's table corrected for testing many claims at once, as the main table's columns
    are (:func:`~fbctrl.experiments.verdicts.adjust`: Benjamini-Hochberg over each column's tests):
    ``{"variant": [...], "change": [...]}``, each in the rows' order (rows not compared are left
    out of the change column)."""
    return {"variant": adjust([r.variant for r in rows], alpha),
            "change": adjust([r.change for r in rows if r.change is not None], alpha)}


def _cell(r) -> str:
    """A cell as the introduction's table writes it: the verdict, then effect [95% CI], n, p."""
    return f"{r.verdict.value}: {format_cell(r)}"


def table_rows(rows: list[BeyondRow]) -> list[list[str]]:
    """figure | claim (short) | variant | published, same seeds | change (each: verdict: effect)."""
    return [[r.figure, r.short or r.claim, _cell(r.variant), _cell(r.published),
             _cell(r.change) if r.change is not None else r.change_note] for r in rows]


def markdown_table(rows: list[BeyondRow]) -> str:
    """One family's verdict table: per claim the variant's cell, the published networks' of the
    extension's seeds (the header names them) and the change (paired on the variant's seeds),
    each as the main table writes it (verdict: effect [95% CI], n, p)."""
    fam = rows[0].family if rows else "the family"
    seeds = sorted({s for r in rows for s in r.published.seeds})
    pub = f"published, seeds {_seed_span(seeds)}" if seeds else "published, same seeds"
    return fmt.markdown_table(["figure", "claim", fam, pub, f"change ({fam} vs published)"],
                              table_rows(rows), align="lllll")


def _seed_span(seeds: list[int]) -> str:
    """'0–4' for consecutive seeds, else '0, 2, 3'."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


# ---------------------------------------------------------------------------------------------
# The summary figure's records: each claim's effect against delay, density and task
# ---------------------------------------------------------------------------------------------

# axis -> (name, [(point label, family or None for the published networks, value on the axis)])
AXES = {
    "delay": ("feedback delay", [("0 ms", None, 0), ("50 ms", "fb_d5", 5), ("100 ms", "fb_d10", 10)]),
    "density": ("feedback density", [("1", None, 1.0), ("0.3", "fb0.3", 0.3), ("0.1", "fb0.1", 0.1)]),
    "task": ("task", [("reach", None, "reach"), ("limit cycle", "lc_fb", "limit-cycle")]),
}


def _record(axis: str, point: str, family: str, r, row: Row, not_run: bool = False) -> dict:
    e = r.effect if r is not None else None
    return {"claim": row.key, "figure": row.figure, "short": row.short, "axis": axis, "point": point,
            "family": family, "log": bool(row.claim.log),
            "mean": float(e.mean) if e is not None and e.n else float("nan"),
            "ci_low": float(e.ci_low) if e is not None and e.n else float("nan"),
            "ci_high": float(e.ci_high) if e is not None and e.n else float("nan"),
            "n": int(e.n) if e is not None else 0,
            "verdict": r.verdict.value if r is not None else "inconclusive",
            "band": list(r.band) if r is not None and r.band else [], "not_run": not_run}


def summary_records(cfg: PaperConfig) -> list[dict]:
    """One record per claim row and point of :data:`AXES`: the effect (mean, 95% CI on the
    reported scale: ratio or difference), n and verdict; the first point of every axis is the
    published networks of the extension's seeds; a family not pre-trained or without data has
    n 0 and NaN (drawn as missing), and a point the design leaves out (best rates on another task,
    :data:`LEFT_OUT`) has ``not_run`` set. Only the rows drawn in the summary (``Row.in_summary``)."""
    ref = reference_config(cfg)
    fams = find_families(cfg)
    out, cache = [], {}
    for row in (r for r in ROWS if r.in_summary):
        claim, col = row.claim, row.column
        pub = verdict_table(ref, (claim,), (col,))[0]
        for axis, (_, points) in AXES.items():
            for point, fam, _ in points:
                if fam is None:
                    r = pub
                elif fam in fams and fams[fam].task != "reach" and col is COLUMNS["fair"]:
                    out.append(_record(axis, point, fam, None, row, not_run=True))   # LEFT_OUT: no best rates
                    continue
                elif fam in fams:
                    key = (fam, row.key)
                    if key not in cache:
                        cache[key] = verdict_table(family_config(cfg, fam), (claim,), (col,))[0]
                    r = cache[key]
                else:
                    r = None
                out.append(_record(axis, point, fam or "published", r, row))
    return out


def full_plan(cfg: PaperConfig, *, include_done: bool = False) -> list[Group]:
    """The paper protocol's plan (:func:`fbctrl.experiments.paper.plan`) followed by the
    extension's groups (:func:`groups`, stage ``beyond``): what ``python -m fbctrl paper`` runs."""
    return paper.plan(cfg, include_done=include_done) + groups(cfg, include_done=include_done)
