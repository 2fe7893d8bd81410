"""What a chapter reads: the networks of its parameters (:func:`checkpoints`, :func:`networks`,
their pre-training curves), and the adaptation runs and learning-rate sweep of the networks
pre-trained with pushes (the shipped networks, ``checkpoints/``) -- from the store, through
:func:`fbctrl.experiments.shipped.load_runs` and :func:`~fbctrl.experiments.shipped.load_sweep`
(units under ``{results_dir}/paper/shipped``, written by ``python -m fbctrl paper --networks
shipped``), or, for what the store does not hold (other seeds, rotations or lengths), computed
*live*: a small illustration (``LIVE_TRIALS`` trials in the default profile) that is labelled as
such and never saved. Every summary is per network seed; chapters show mean ± SEM over seeds.

Conventions (shared with :mod:`fbctrl.learning.adapt`): the *test loss* is the loss on the 8
rotated centre-out targets with the controller off (what the weights have learned); *final*
values are the mean over the last ``FINAL_WINDOW`` trials (:mod:`fbctrl.experiments.metrics`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.checkpoint import find_checkpoints, load_checkpoint, read_sidecar
from ..core.model import Network
from ..core.task import TaskConfig
from ..experiments import shipped
from ..experiments.metrics import FINAL_WINDOW, final
from ..experiments.paper import PaperConfig, best_index
from ..experiments.protocol import Condition
from ..experiments.store import rel_path
from ..experiments.runs import COND_ORDER, CONDITIONS, lr_sweep, run_conditions
from ..learning.adapt import initial_test_losses
from ..learning.rates import SHIPPED_SWEEP_GRID, paper_lr
from .params import Params

__all__ = ["LIVE_TRIALS", "LIVE_SWEEP_TRIALS", "SIZES", "stack", "checkpoints", "networks", "load_curves",
           "store_config", "AdaptSet", "load_adaptation", "bptt_convention", "initial_test_losses", "initial_for",
           "truncated", "subset", "comparable", "n_diverged", "SweepSet", "load_sweep_set", "best_rates"]


LIVE_TRIALS = 20      # trials of a live adaptation run in the default profile
LIVE_SWEEP_TRIALS = 10
SIZES = shipped.SIZES  # the shipped family's trials and seeds (tests set smaller ones)


def stack(nets: dict[int, Network]) -> Network:
    """``{seed: Network}`` -> one stacked Network (seed order kept)."""
    if not nets:
        raise ValueError("no networks to stack")
    return Network.stack(list(nets.values()))


def checkpoints(P: Params, kind: str, *, required: bool = False) -> dict[int, Path]:
    """The checkpoints a notebook uses: those of ``kind`` in ``P.checkpoint_dir`` (network size
    chosen as in :func:`find_checkpoints`), restricted to ``P.seeds`` if given (seeds missing for
    this kind are skipped) and to the profile's ``max_seeds``. ``required``: raise a one-line
    ValueError, saying how to train them, if there are none."""
    found = find_checkpoints(P.checkpoint_dir, kind)
    if getattr(P, "seeds", None) is not None:
        found = {s: p for s, p in found.items() if s in P.seeds}
    if P.profile.max_seeds is not None:
        found = dict(list(found.items())[:P.profile.max_seeds])
    if required and not found:
        flag = "on" if kind == "fb" else "off"
        raise ValueError(f"no {kind} networks in {P.checkpoint_dir!r}"
                         f"{' for seeds ' + str(list(P.seeds)) if getattr(P, 'seeds', None) else ''}: "
                         f"train them with python -m fbctrl pretrain --feedback {flag} --seeds 0 --out DIR")
    return found


def networks(P: Params, kind: str, *, required: bool = False) -> dict:
    """``{seed: Network}`` on ``P.device`` for :func:`checkpoints` (may be empty unless required)."""
    return {s: load_checkpoint(p, device=P.device) for s, p in checkpoints(P, kind, required=required).items()}


def load_curves(paths: dict[int, Path]) -> dict[str, np.ndarray] | None:
    """Stack the pre-training curves (``X.curve.npz`` beside each ``X.pt``) over seeds.

    Returns ``{"seeds": [S], "batch": [N], "loss": [S, N], "task_loss": [S, N],
    "eval_batch": [M], "eval_<name>": [S, M], ...}`` truncated to the shortest run, or None if no
    checkpoint has a curve file.
    """
    curves = {}
    for s, p in paths.items():
        f = Path(p).with_suffix(".curve.npz")
        if f.is_file():
            with np.load(f) as z:
                curves[s] = {k: z[k] for k in z.files}
    if not curves:
        return None
    seeds = sorted(curves)
    first = curves[seeds[0]]
    out: dict[str, np.ndarray] = {"seeds": np.asarray(seeds)}
    nb = min(len(c["batch"]) for c in curves.values())
    ne = min(len(c["eval_batch"]) for c in curves.values())
    out["batch"] = first["batch"][:nb]
    out["eval_batch"] = first["eval_batch"][:ne]
    keys = set.intersection(*(set(c) for c in curves.values())) - {"batch", "eval_batch"}
    for k in sorted(keys):
        m = ne if k.startswith("eval_") else nb
        out[k] = np.stack([curves[s][k][:m] for s in seeds]).astype(np.float64)
    return out


def store_config(P) -> PaperConfig:
    """The store of the shipped family for notebook parameters ``P``: its networks in
    ``P.checkpoint_dir`` (size, batches and batch size as their sidecars record), its units under
    ``{P.results_dir}/paper/shipped`` (:func:`fbctrl.experiments.shipped.config`)."""
    cfg = replace(PaperConfig(), results_dir=str(Path(P.results_dir) / "paper"), shipped_dir=str(P.checkpoint_dir))
    found = find_checkpoints(P.checkpoint_dir, "fb")
    conf = read_sidecar(next(iter(found.values()))).get("config", {}) if found else {}
    cfg = replace(cfg, n=int(conf.get("n", cfg.n)), pretrain_batches=int(conf.get("batches", cfg.pretrain_batches)),
                  batch_size=int(conf.get("batch_size", cfg.batch_size)))
    return shipped.config(cfg, SIZES)


@dataclass
class AdaptSet:
    """The four (or two) conditions of one rotation: ``results[cond][record]`` arrays
    [S, trials(, T)] over ``seeds``. ``source``: 'store' (the shipped family's units) or 'live'
    (computed now, not saved)."""

    rotation_deg: float
    kind: str
    results: dict[str, dict[str, np.ndarray]]
    seeds: list[int]
    trials: int
    source: str
    files: list[str] = field(default_factory=list)      # the store's folders the units were read from
    commands: list[str] = field(default_factory=list)
    lrs: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def conditions(self) -> list[str]:
        return [c for c in COND_ORDER if c in self.results]

    def __getitem__(self, cond):
        return self.results[cond]

    def describe(self) -> str:
        """One line: where the numbers come from."""
        what = f"{len(self.seeds)} seed(s) ({', '.join(map(str, self.seeds))}), {self.trials} trials"
        if self.source == "store":
            return f"{self.kind} networks, {self.rotation_deg:g}°: {what}, read from the store ({', '.join(self.files)})"
        return f"{self.kind} networks, {self.rotation_deg:g}°: {what}, computed in this notebook (reduced size, not saved)"


def _select(results: dict, file_seeds: list[int], seeds: list[int]) -> dict:
    idx = [file_seeds.index(s) for s in seeds]
    return {c: {k: v[idx] for k, v in rec.items()} for c, rec in results.items()}


def _truncate(results: dict, trials: int) -> dict:
    return {c: {k: (v[:, :trials] if v.ndim >= 2 else v) for k, v in rec.items()} for c, rec in results.items()}


def _conds(rules) -> list[str]:
    return [n for (r, c), n in zip(CONDITIONS, COND_ORDER) if r in rules]


def _from_store(cfg: PaperConfig, rotation_deg: float, kind: str, want, trials, rules, *,
                exact_bptt: bool = False) -> AdaptSet | None:
    """The runs of one rotation read from the store (:func:`fbctrl.experiments.shipped.load_runs`),
    if it holds every wanted seed and at least ``trials`` trials (cut to ``trials``); else None."""
    seeds, recs, metas = shipped.load_runs(cfg, kind, rotation_deg, _conds(rules), want, exact_bptt=exact_bptt,
                                           sizes=SIZES)
    n = min((int(r["test_loss"].shape[1]) for r in recs.values()), default=0)
    if not recs or (trials is not None and trials > n):
        return None
    res = {c: {**r, "diverged": np.array([m["diverged_trial"] for m in metas[c]])} for c, r in recs.items()}
    folders = sorted({rel_path(shipped.adapt_unit(cfg, kind, seeds[0], rotation_deg, Condition.parse(c),
                                                  exact_bptt=exact_bptt, sizes=SIZES).path(cfg).parent) for c in recs})
    return AdaptSet(rotation_deg=float(rotation_deg), kind=kind, results=_truncate(res, trials or n), seeds=seeds,
                    trials=trials or n, source="store", files=folders,
                    commands=sorted({m.get("command", "") for ms in metas.values() for m in ms}),
                    lrs={c: float(ms[0]["lr"]) for c, ms in metas.items()})


def load_adaptation(P, rotation_deg: float, kind: str = "fb", *, seeds=None, trials: int | None = None,
                    rules=("rflo", "bptt"), align_every: int | None = None, compute: bool = True,
                    progress: bool = False) -> AdaptSet | None:
    """The adaptation runs of one rotation for a notebook with parameters ``P`` (needs
    ``P.results_dir``, ``P.checkpoint_dir``, ``P.device``, ``P.profile``).

    The store first (:func:`store_config`): used if it holds every requested seed (default: the
    family's networks of ``kind``) and at least ``trials`` trials (then cut to ``trials``;
    adaptation is causal, so the first ``k`` trials of a longer run are a ``k``-trial run).
    Otherwise, with ``compute``, the runs are computed live and not saved: ``trials or
    LIVE_TRIALS`` trials in the default profile, ``trials or P.profile.adapt_trials`` in the
    paper profile. ``rules`` restricts the conditions. Returns None if nothing is found and
    ``compute`` is False or no network of ``kind`` exists.
    """
    want = list(seeds) if seeds is not None else None
    ad = _from_store(store_config(P), rotation_deg, kind, want, trials, rules)
    if ad is not None or not compute:
        return ad
    nets_d = _wanted_networks(P, kind, want)
    if not nets_d:
        return None
    return _compute_adaptation(P, nets_d, rotation_deg, kind, trials=trials, rules=rules, align_every=align_every,
                               progress=progress)


def _wanted_networks(P, kind: str, want: list[int] | None) -> dict[int, Network]:
    """The networks of ``kind`` (of the seeds ``want``, if given), loaded -> {seed: Network}."""
    paths = checkpoints(P, kind)
    if want is not None:
        paths = {s: p for s, p in paths.items() if s in want}
    return {s: load_checkpoint(p, device=P.device) for s, p in paths.items()}


def _compute_adaptation(P, nets_d: dict[int, Network], rotation_deg: float, kind: str, *, trials: int | None,
                        rules, align_every: int | None, progress: bool) -> AdaptSet:
    """The runs of :func:`load_adaptation` computed now, live (never saved)."""
    nets = stack(nets_d)
    use = list(nets_d)
    n_trials = trials or (P.profile.adapt_trials if P.profile_name == "paper" else LIVE_TRIALS)
    has_fb = float(nets.mask.abs().sum()) > 0
    conds = tuple(c for c in CONDITIONS if c[0] in rules and (has_fb or not c[1]))
    t0 = time.perf_counter()
    out = run_conditions(nets, use, rotation_deg=rotation_deg, trials=n_trials, conditions=conds,
                         align_every=align_every or max(1, n_trials // 2), bptt_weights=P.profile.bptt_weights,
                         progress=progress, device=P.device, on_divergence="mark")
    res = {name: {**r.records, "diverged": r.diverged} for name, r in out.items()}
    return AdaptSet(rotation_deg=float(rotation_deg), kind=kind, results=res, seeds=use, trials=n_trials,
                    source="live", lrs={name: float(r.runs[0].lr) for name, r in out.items()},
                    seconds=time.perf_counter() - t0)


def bptt_convention(P, rotation_deg: float = 30.0, kind: str = "fb") -> dict | None:
    """Online BPTT under its two weight conventions (Methods), from the store: the exact sweep
    through the weights each step ran with (the family's exact-BPTT units) and the cheaper sweep
    with the current weights, on the seeds both hold, cut to the shorter length. Returns
    ``{"seeds", "trials", "conds": {cond: {"history": [S], "current": [S]}}}`` (final test losses,
    controller off), or None if the store lacks either."""
    cfg = store_config(P)
    seeds = [s for s in SIZES.exact_bptt_seeds if s in cfg.seeds(kind)]
    hist = _from_store(cfg, rotation_deg, kind, seeds, None, ("bptt",), exact_bptt=True) if seeds else None
    cur = _from_store(cfg, rotation_deg, kind, seeds, None, ("bptt",)) if hist is not None else None
    conds = [c for c in hist.conditions if c in cur.results] if cur is not None else []
    if not conds:
        return None
    n = min(hist.trials, cur.trials)
    return {"seeds": seeds, "trials": n,
            "conds": {c: {"history": final(hist[c]["test_loss"][:, :n]), "current": final(cur[c]["test_loss"][:, :n])}
                      for c in conds}}


def initial_for(nets: dict[int, Network], ad: AdaptSet, *, task_cfg: TaskConfig = TaskConfig()) -> dict | None:
    """:func:`initial_test_losses` for the seeds of ``ad`` (None if a network is missing)."""
    if not all(s in nets for s in ad.seeds):
        return None
    return initial_test_losses(stack({s: nets[s] for s in ad.seeds}), ad.rotation_deg, task_cfg=task_cfg)


def truncated(ad: AdaptSet, trials: int) -> AdaptSet:
    """The first ``trials`` trials of ``ad`` (adaptation is causal: the same as a shorter run)."""
    if trials >= ad.trials:
        return ad
    return replace(ad, results=_truncate(ad.results, trials), trials=trials)


def subset(ad: AdaptSet, seeds) -> AdaptSet:
    """``ad`` restricted to ``seeds`` (in that order; each must be in ``ad.seeds``)."""
    seeds = [int(s) for s in seeds]
    if seeds == ad.seeds:
        return ad
    return replace(ad, results=_select(ad.results, ad.seeds, seeds), seeds=seeds)


def comparable(sets: dict[float, AdaptSet]) -> tuple[dict[float, AdaptSet], list[int], int]:
    """Sets of several rotations made comparable: the stored ones (files or computed at full
    size) restricted to the seeds they all share and cut to their shortest length; live ones
    (reduced size) kept as they are. Returns (sets, common seeds, common length)."""
    stored = {r: s for r, s in sets.items() if s.source != "live"}
    if not stored:
        return dict(sorted(sets.items())), [], 0
    common = sorted(set.intersection(*(set(s.seeds) for s in stored.values())))
    n = min(s.trials for s in stored.values())
    out = {r: (s if s.source == "live" else truncated(subset(s, common), n)) for r, s in sets.items()}
    return dict(sorted(out.items())), common, n


def n_diverged(ad: AdaptSet, cond: str) -> int:
    """Runs of a condition that diverged within ``ad.trials`` trials."""
    d = np.asarray(ad[cond].get("diverged", np.full(len(ad.seeds), -1)))
    return int(((d >= 0) & (d < ad.trials)).sum())


@dataclass
class SweepSet:
    """A learning-rate sweep: ``final[cond]`` [rates, rotations, seeds] (NaN where diverged),
    ``diverged[cond]`` bool, ``curves[cond]`` [rates, rotations, seeds, trials]. ``source``:
    'store' or 'live' (computed now, not saved)."""

    rates: dict[str, list[float]]
    rotations: list[float]
    seeds: list[int]
    trials: int
    final: dict[str, np.ndarray]
    diverged: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]
    source: str
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def conditions(self) -> list[str]:
        return [c for c in COND_ORDER if c in self.final]

    def rule_rates(self, cond: str) -> list[float]:
        return self.rates[cond.split("+")[0].lower()]


def _finals(curves: np.ndarray, div: np.ndarray) -> np.ndarray:
    """Final test loss of every curve [..., trials] (NaN where diverged)."""
    n = curves.shape[-1]
    return np.where(div, np.nan, final(curves.reshape(-1, n), min(FINAL_WINDOW, n)).reshape(curves.shape[:-1]))


def _sweep_from_store(cfg: PaperConfig, rotation_deg: float, want, trials, rules) -> SweepSet | None:
    """The family's sweep (:func:`fbctrl.experiments.shipped.load_sweep`) if it is at
    ``rotation_deg``, holds every wanted seed and at least ``trials`` trials (cut to them)."""
    if abs(rotation_deg - cfg.sweep_rotation) > 1e-9 or (want is not None and not set(want) <= set(cfg.sweep_seeds)):
        return None
    d = shipped.load_sweep(cfg, _conds(rules), want)
    if d is None or (trials is not None and trials > d["trials"]):
        return None
    n = trials or d["trials"]
    curves = {c: v[:, None, :, :n] for c, v in d["curves"].items()}          # [rates, 1 rotation, seeds, trials]
    div = {c: v[:, None] for c, v in d["diverged"].items()}
    return SweepSet(rates=d["rates"], rotations=[float(rotation_deg)], seeds=d["seeds"], trials=n,
                    final={c: _finals(v, div[c]) for c, v in curves.items()}, diverged=div, curves=curves,
                    source="store", files=[rel_path(Path(cfg.results_dir) / "sweep")])


def load_sweep_set(P, rotation_deg: float, kind: str = "fb", *, seeds=None, trials: int | None = None,
                   rules=("rflo", "bptt"), compute: bool = True, progress: bool = False) -> SweepSet | None:
    """The learning-rate sweep of ``rotation_deg`` for notebook parameters ``P``: the shipped
    family's sweep from the store (networks with feedback), else (``compute``) a sweep computed
    live on the grid ``rates.SHIPPED_SWEEP_GRID`` (``trials or LIVE_SWEEP_TRIALS`` trials, the
    chosen seeds, not saved)."""
    want = list(seeds) if seeds is not None else None
    sw = _sweep_from_store(store_config(P), rotation_deg, want, trials, rules) if kind == "fb" else None
    if sw is not None or not compute:
        return sw
    nets_d = _wanted_networks(P, kind, want)
    if not nets_d:
        return None
    n_trials = trials or LIVE_SWEEP_TRIALS
    t0 = time.perf_counter()
    out = lr_sweep(stack(nets_d), list(nets_d), rates=SHIPPED_SWEEP_GRID, rotations=(float(rotation_deg),),
                   trials=n_trials, rules=tuple(rules), final_window=min(FINAL_WINDOW, n_trials), progress=progress,
                   device=P.device)
    return SweepSet(rates={k: [float(x) for x in v] for k, v in out["rates"].items()},
                    rotations=[float(rotation_deg)], seeds=list(nets_d), trials=n_trials, final=out["final"],
                    diverged=out["diverged"], curves=out["curves"], source="live", seconds=time.perf_counter() - t0)


def best_rates(sw: SweepSet) -> dict[str, dict]:
    """Per condition and rotation: the best rate by the store's rule (``paper.best_index``, as
    ``paper.best_swept_rates``: the lowest mean final test loss over seeds among the rates where
    no seed diverged), and the paper's rate. -> {cond: {"best": [rot] index (-1: none), "paper":
    index or None, "best_lr": [rot], "paper_lr": float}}."""
    out = {}
    for cond in sw.conditions:
        rates = sw.rule_rates(cond)
        best = []
        for j in range(len(sw.rotations)):
            i = best_index({"final": sw.final[cond][:, j], "diverged": sw.diverged[cond][:, j]})
            best.append(-1 if i is None else i)
        plr = paper_lr(cond.split("+")[0].lower(), cond.endswith("+c"))
        out[cond] = {"best": best, "best_lr": [rates[i] if i >= 0 else float("nan") for i in best],
                     "paper": next((i for i, r in enumerate(rates) if abs(r / plr - 1) < 1e-6), None), "paper_lr": plr}
    return out
