"""What a chapter reads: the networks of its parameters (:func:`checkpoints`, :func:`networks`,
their pre-training curves), and the adaptation runs and learning-rate sweeps of a rotation —
from the result files of the heavy runs, or computed at a size the chapter can afford.

Result files (``results_dir``, written by ``python -m fbctrl reproduce`` / ``sweep``)::

    adapt_{kind}_rot{deg}_s{seeds}.npz       four paired conditions (two without feedback)
    lr_sweep_{kind}_rot{deg}_s{seeds}.npz    the learning-rate sweep
    paper_adapt_{kind}_rot{deg}_s{seeds}.npz the same at the ``paper`` profile's size, written by
                                             the adaptation chapter when run with that profile

Files of one rotation computed for different seed sets are concatenated along the seed axis
(:func:`fbctrl.experiments.runs.load_results`). A rotation without a file is computed *live*: in
the ``default`` profile at a reduced size (``LIVE_TRIALS`` trials, the chosen seeds) and not
saved, in the ``paper`` profile at the profile's size and saved. Every summary is per network
seed; chapters show mean ± SEM over seeds.

Conventions (shared with :mod:`fbctrl.learning.adapt`): the *test loss* is the loss on the 8
rotated centre-out targets with the controller off (what the weights have learned); *final*
values are the mean over the last ``FINAL_WINDOW`` trials (:mod:`fbctrl.experiments.runs.metrics`).
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.checkpoint import find_checkpoints, load_checkpoint
from ..core.model import Network
from ..core.task import TaskConfig
from ..experiments.metrics import FINAL_WINDOW, final
from ..experiments.runs import (COND_ORDER, CONDITIONS, SWEEP_RATES, load_results, lr_sweep, run_conditions,
                                save_results, save_sweep)
from ..fmt import fmt_seeds
from ..learning.adapt import initial_test_losses, paper_lr
from .params import Params

__all__ = ["LIVE_TRIALS", "LIVE_SWEEP_TRIALS", "stack", "checkpoints", "networks", "load_curves", "AdaptSet",
           "adapt_files", "file_rotations", "load_adaptation", "bptt_convention", "initial_test_losses",
           "initial_for", "truncated", "subset", "comparable", "n_diverged", "SweepSet", "load_sweep_set",
           "best_rates"]


LIVE_TRIALS = 20      # trials of a live adaptation run in the default profile


LIVE_SWEEP_TRIALS = 10




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


def _rot_tag(rotation_deg: float) -> str:
    return f"{float(rotation_deg):g}"


def _lrs_from_meta(meta: dict) -> dict[str, float]:
    runs = meta.get("runs", {})
    return {name: float(r[0]["lr"]) for name, r in runs.items() if r}


# a network family (``NetworkSpec.family``): fb, nofb, fb0.3, fb_d5, lc_fb, ...
_KIND = r"(?:lc_)?(?:nofb|fb(?:[0-9.]+)?)(?:_d\d+)?"
_ADAPT_RE = re.compile(r"^(?P<paper>paper_)?adapt_(?P<kind>" + _KIND + r")_rot(?P<rot>-?[0-9.]+)(?:_(?P<tag>[a-z][a-z_]*))?_s(?P<seeds>[0-9_-]+)\.npz$")


@dataclass
class AdaptSet:
    """The four (or two) conditions of one rotation: ``results[cond][record]`` arrays
    [S, trials(, T)] over ``seeds``. ``source``: 'files' (loaded), 'live' (computed now at a
    reduced size, not saved) or 'computed' (computed now at the profile's size and saved)."""

    rotation_deg: float
    kind: str
    results: dict[str, dict[str, np.ndarray]]
    seeds: list[int]
    trials: int
    source: str
    files: list[str] = field(default_factory=list)
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
        if self.source == "files":
            return f"{self.kind} networks, {self.rotation_deg:g}°: {what}, loaded from {', '.join(self.files)}"
        return (f"{self.kind} networks, {self.rotation_deg:g}°: {what}, computed in this notebook "
                f"({'reduced size, not saved' if self.source == 'live' else 'saved to ' + ', '.join(self.files)})")


def adapt_files(results_dir, kind: str, rotation_deg: float, *, paper: bool = False) -> list[Path]:
    """The result files of one network kind and rotation (``paper``: the paper-profile files)."""
    folder = Path(results_dir)
    out = []
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        m = _ADAPT_RE.match(p.name)
        if m and m["kind"] == kind and bool(m["paper"]) == paper and math.isclose(float(m["rot"]), rotation_deg):
            out.append(p)
    return out


def file_rotations(results_dir, kind: str = "fb", *, paper: bool = False) -> list[float]:
    """Rotations (degrees) that have adaptation result files, sorted."""
    folder = Path(results_dir)
    rots = set()
    if folder.is_dir():
        for p in folder.iterdir():
            m = _ADAPT_RE.match(p.name)
            if m and m["kind"] == kind and bool(m["paper"]) == paper:
                rots.add(float(m["rot"]))
    return sorted(rots)


def _file_meta(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def _consistent(files: list[Path]) -> list[Path]:
    """Files of one rotation that can be concatenated over seeds: the group with the same run
    settings (trials, BPTT weights) holding the most seeds (then the most trials), without
    repeated seeds."""
    if len(files) <= 1:
        return files
    groups: dict[tuple, list] = {}
    for p in files:
        m = _file_meta(p)
        groups.setdefault((int(m.get("trials", 0)), str(m.get("bptt_weights"))), []).append((p, m.get("seeds", [])))
    best = max(groups.items(), key=lambda kv: (len({s for _, ss in kv[1] for s in ss}), kv[0][0]))[1]
    out, seen = [], set()
    for p, ss in best:
        if not seen.intersection(ss):
            out.append(p)
            seen.update(ss)
    return out


def _select(results: dict, file_seeds: list[int], seeds: list[int]) -> dict:
    idx = [file_seeds.index(s) for s in seeds]
    return {c: {k: v[idx] for k, v in rec.items()} for c, rec in results.items()}


def _truncate(results: dict, trials: int) -> dict:
    return {c: {k: (v[:, :trials] if v.ndim >= 2 else v) for k, v in rec.items()} for c, rec in results.items()}


def load_adaptation(P, rotation_deg: float, kind: str = "fb", *, seeds=None, trials: int | None = None,
                    rules=("rflo", "bptt"), align_every: int | None = None, compute: bool = True,
                    progress: bool = False) -> AdaptSet | None:
    """The adaptation runs of one rotation for a notebook with parameters ``P`` (needs
    ``P.results_dir``, ``P.checkpoint_dir``, ``P.device``, ``P.profile``).

    Files first (``paper_*`` files in the paper profile): used if they hold every requested seed
    and at least ``trials`` trials (then cut to ``trials``; adaptation is causal, so the first
    ``k`` trials of a longer run are a ``k``-trial run). Otherwise, with ``compute``, the runs are
    computed: in the default profile at ``trials or LIVE_TRIALS`` trials, not saved; in the paper
    profile at ``trials or P.profile.adapt_trials`` and saved to ``results_dir``. ``seeds``: the
    network seeds (default: those of the files, else every network found). ``rules`` restricts a
    computed run to those rules. Returns None if nothing is found and ``compute`` is False or no
    network of ``kind`` exists.
    """
    paper = P.profile_name == "paper"
    want = list(seeds) if seeds is not None else None
    files = _consistent(adapt_files(P.results_dir, kind, rotation_deg, paper=paper))
    ad = _adaptation_from_files(files, rotation_deg, kind, want, trials, rules) if files else None
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


def _adaptation_from_files(files: list[Path], rotation_deg: float, kind: str, want: list[int] | None,
                           trials: int | None, rules) -> AdaptSet | None:
    """The runs of :func:`load_adaptation` from result files, if they hold every wanted seed and
    at least ``trials`` trials (cut to ``trials``); else None."""
    res, meta = load_results(files)
    fseeds = [int(s) for s in meta.get("seeds", [])]
    ftrials = int(next(iter(res.values()))["test_loss"].shape[1])
    use = want if want is not None else fseeds
    if not (use and all(s in fseeds for s in use) and (trials is None or trials <= ftrials)):
        return None
    res = {c: r for c, r in _select(res, fseeds, use).items() if c.split("+")[0].lower() in rules}
    if trials is not None:
        res = _truncate(res, trials)
    cmds = [m.get("command", "") for m in meta.get("files", [meta])]
    return AdaptSet(rotation_deg=float(rotation_deg), kind=kind, results=res, seeds=list(use),
                    trials=trials or ftrials, source="files", files=[p.name for p in files], commands=cmds,
                    lrs=_lrs_from_meta(meta))


def _compute_adaptation(P, nets_d: dict[int, Network], rotation_deg: float, kind: str, *, trials: int | None,
                        rules, align_every: int | None, progress: bool) -> AdaptSet:
    """The runs of :func:`load_adaptation` computed now (paper profile: saved to ``results_dir``)."""
    paper = P.profile_name == "paper"
    nets = stack(nets_d)
    use = list(nets_d)
    n_trials = trials or (P.profile.adapt_trials if paper else LIVE_TRIALS)
    has_fb = float(nets.mask.abs().sum()) > 0
    conds = tuple(c for c in CONDITIONS if c[0] in rules and (has_fb or not c[1]))
    if align_every is None:
        align_every = 50 if paper else max(1, n_trials // 2)
    t0 = time.perf_counter()
    out = run_conditions(nets, use, rotation_deg=rotation_deg, trials=n_trials, conditions=conds,
                         align_every=align_every, bptt_weights=P.profile.bptt_weights, progress=progress,
                         device=P.device,
                         on_divergence="mark")
    secs = time.perf_counter() - t0
    res = {name: {**r.records, "diverged": r.diverged} for name, r in out.items()}
    lrs = {name: float(r.runs[0].lr) for name, r in out.items()}
    saved = []
    if paper:
        path = Path(P.results_dir) / f"paper_adapt_{kind}_rot{_rot_tag(rotation_deg)}_{fmt_seeds(use)}.npz"
        save_results(path, out, {"command": "notebook (paper profile): fbctrl.book.data.load_adaptation",
                                 "kind": kind, "seeds": use, "rotation_deg": float(rotation_deg),
                                 "trials": n_trials, "bptt_weights": P.profile.bptt_weights})
        saved = [path.name]
    return AdaptSet(rotation_deg=float(rotation_deg), kind=kind, results=res, seeds=use, trials=n_trials,
                    source="computed" if paper else "live", files=saved, lrs=lrs, seconds=secs)


def bptt_convention(P, rotation_deg: float = 30.0, kind: str = "fb") -> dict | None:
    """Online BPTT under its two weight conventions (Methods), from the result files of one
    rotation: the exact sweep through the weights each step ran with (``bptt_weights="history"``)
    and the cheaper sweep with the current weights, on the seeds both hold, cut to the shorter
    length. Returns ``{"seeds", "trials", "conds": {cond: {"history": [S], "current": [S]}}}``
    (final test losses, controller off), or None if there is no history file."""
    files = adapt_files(P.results_dir, kind, rotation_deg, paper=P.profile_name == "paper")
    by_w: dict[str, list[Path]] = {}
    for f in files:
        by_w.setdefault(str(_file_meta(f).get("bptt_weights")), []).append(f)
    if "history" not in by_w or "current" not in by_w:
        return None
    hist, hmeta = load_results(_consistent(by_w["history"]))
    cur, cmeta = load_results(_consistent(by_w["current"]))
    hs, cs = [int(s) for s in hmeta.get("seeds", [])], [int(s) for s in cmeta.get("seeds", [])]
    seeds = [s for s in hs if s in cs]
    conds = [c for c in hist if c in cur and c.startswith("BPTT")]
    if not seeds or not conds:
        return None
    trials = min(next(iter(hist.values()))["test_loss"].shape[1], next(iter(cur.values()))["test_loss"].shape[1])
    hist = _truncate(_select(hist, hs, seeds), trials)
    cur = _truncate(_select(cur, cs, seeds), trials)
    return {"seeds": seeds, "trials": trials,
            "conds": {c: {"history": final(hist[c]["test_loss"]), "current": final(cur[c]["test_loss"])} for c in conds}}




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


_SWEEP_RE = re.compile(r"^(?P<paper>paper_)?lr_sweep_(?P<kind>" + _KIND + r")_rot(?P<rot>[0-9._-]+)_s(?P<seeds>[0-9_-]+)\.npz$")


@dataclass
class SweepSet:
    """A learning-rate sweep: ``final[cond]`` [rates, rotations, seeds] (NaN where diverged),
    ``diverged[cond]`` bool, ``curves[cond]`` [rates, rotations, seeds, trials]."""

    rates: dict[str, list[float]]
    rotations: list[float]
    seeds: list[int]
    trials: int
    final: dict[str, np.ndarray]
    diverged: dict[str, np.ndarray]
    curves: dict[str, np.ndarray]
    source: str
    files: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def conditions(self) -> list[str]:
        return [c for c in COND_ORDER if c in self.final]

    def rule_rates(self, cond: str) -> list[float]:
        return self.rates[cond.split("+")[0].lower()]


def _load_sweep_file(path) -> dict:
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    out = {"meta": meta, "final": {}, "diverged": {}, "curves": {}}
    for key in z.files:
        if "/" in key:
            part, name = key.split("/", 1)
            out[part][name] = z[key]
    return out


def load_sweep_set(P, rotation_deg: float, kind: str = "fb", *, seeds=None, trials: int | None = None,
                   rules=("rflo", "bptt"), compute: bool = True, progress: bool = False) -> SweepSet | None:
    """The learning-rate sweep holding ``rotation_deg`` for notebook parameters ``P``: sweep files
    of the same rates, rotations and length concatenated over seeds; else (``compute``) a sweep
    computed now at that rotation (default profile: ``trials or LIVE_SWEEP_TRIALS`` trials, the
    chosen seeds, not saved; paper profile: ``trials or 200`` trials, saved)."""
    paper = P.profile_name == "paper"
    want = list(seeds) if seeds is not None else None
    sw = _sweep_from_files(_sweep_groups(Path(P.results_dir), kind, rotation_deg, paper), want, trials)
    if sw is not None or not compute:
        return sw
    nets_d = _wanted_networks(P, kind, want)
    if not nets_d:
        return None
    return _compute_sweep(P, nets_d, rotation_deg, kind, trials=trials, rules=rules, progress=progress)


def _sweep_groups(folder: Path, kind: str, rotation_deg: float, paper: bool) -> dict[tuple, list]:
    """Sweep files holding ``rotation_deg``, grouped by (rates, rotations, trials) ->
    {key: [(path, contents)]}."""
    groups: dict[tuple, list] = {}
    if not folder.is_dir():
        return groups
    for p in sorted(folder.iterdir()):
        m = _SWEEP_RE.match(p.name)
        if not (m and m["kind"] == kind and bool(m["paper"]) == paper):
            continue
        d = _load_sweep_file(p)
        meta = d["meta"]
        if not any(math.isclose(float(r), rotation_deg) for r in meta["rotations"]):
            continue
        key = (json.dumps(meta["rates"], sort_keys=True), json.dumps(meta["rotations"]), meta["trials"])
        groups.setdefault(key, []).append((p, d))
    return groups


def _sweep_from_files(groups: dict[tuple, list], want: list[int] | None, trials: int | None) -> SweepSet | None:
    """The first group of sweep files holding every wanted seed and at least ``trials`` trials,
    concatenated over seeds (cut to ``trials``, the final losses recomputed); else None."""
    for key, parts in groups.items():
        fseeds = [int(s) for _, d in parts for s in d["meta"]["seeds"]]
        use = want if want is not None else sorted(fseeds)
        if not (use and all(s in fseeds for s in use)) or (trials is not None and trials > key[2]):
            continue
        order = [fseeds.index(s) for s in use]
        final_, div, curves = {}, {}, {}
        for cond in parts[0][1]["final"]:
            final_[cond] = np.concatenate([d["final"][cond] for _, d in parts], axis=2)[:, :, order]
            div[cond] = np.concatenate([d["diverged"][cond] for _, d in parts], axis=2)[:, :, order]
            curves[cond] = np.concatenate([d["curves"][cond] for _, d in parts], axis=2)[:, :, order]
        n_trials = key[2]
        if trials is not None and trials < key[2]:
            n_trials = trials
            curves = {c: v[..., :trials] for c, v in curves.items()}
            final_ = {c: np.where(div[c], np.nan, final(v.reshape(-1, trials)).reshape(v.shape[:-1]))
                      for c, v in curves.items()}
        meta0 = parts[0][1]["meta"]
        return SweepSet(rates={k: [float(x) for x in v] for k, v in meta0["rates"].items()},
                        rotations=[float(r) for r in meta0["rotations"]], seeds=list(use), trials=n_trials,
                        final=final_, diverged=div, curves=curves, source="files", files=[p.name for p, _ in parts],
                        commands=[d["meta"].get("command", "") for _, d in parts])
    return None


def _compute_sweep(P, nets_d: dict[int, Network], rotation_deg: float, kind: str, *, trials: int | None, rules,
                   progress: bool) -> SweepSet:
    """The sweep of :func:`load_sweep_set` computed now (paper profile: saved to ``results_dir``)."""
    paper = P.profile_name == "paper"
    n_trials = trials or (200 if paper else LIVE_SWEEP_TRIALS)
    t0 = time.perf_counter()
    sw = lr_sweep(stack(nets_d), list(nets_d), rates=SWEEP_RATES, rotations=(float(rotation_deg),), trials=n_trials,
                  rules=tuple(rules), final_window=min(FINAL_WINDOW, n_trials), progress=progress, device=P.device)
    secs = time.perf_counter() - t0
    saved = []
    if paper:
        path = Path(P.results_dir) / f"paper_lr_sweep_{kind}_rot{_rot_tag(rotation_deg)}_{fmt_seeds(list(nets_d))}.npz"
        save_sweep(path, sw, {"command": "notebook (paper profile): fbctrl.book.data.load_sweep_set", "kind": kind})
        saved = [path.name]
    return SweepSet(rates={k: [float(x) for x in v] for k, v in sw["rates"].items()},
                    rotations=[float(r) for r in sw["rotations"]], seeds=list(nets_d), trials=n_trials,
                    final=sw["final"], diverged=sw["diverged"], curves=sw["curves"],
                    source="computed" if paper else "live", files=saved, seconds=secs)


def best_rates(sw: SweepSet) -> dict[str, dict]:
    """Per condition and rotation: the rate with the lowest mean final test loss over seeds among
    the rates where no seed diverged, and the paper's rate. -> {cond: {"best": [rot] index,
    "paper": index or None, "best_lr": [rot], "paper_lr": float}}."""
    out = {}
    for cond in sw.conditions:
        rule = cond.split("+")[0].lower()
        rates = sw.rule_rates(cond)
        fin, div = sw.final[cond], sw.diverged[cond]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.where(div.any(axis=2), np.inf, np.nanmean(fin, axis=2))  # [rates, rotations]
        best = [int(np.argmin(m[:, j])) if np.isfinite(m[:, j]).any() else -1 for j in range(m.shape[1])]
        plr = paper_lr(rule, cond.endswith("+c"))
        pidx = next((i for i, r in enumerate(rates) if math.isclose(r, plr, rel_tol=1e-6)), None)
        out[cond] = {"best": best, "best_lr": [rates[i] if i >= 0 else float("nan") for i in best],
                     "paper": pidx, "paper_lr": plr}
    return out
