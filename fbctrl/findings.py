"""The logic behind the book's Findings chapters (activity space, adaptation, decoupling, second
order, learning-rate sweep): finding and loading the result files of the heavy runs, computing
what is missing at a size the chapter can afford, the per-seed summaries the chapters report,
and the analyses that are cheap enough to run inside a notebook.

Result files (``results_dir``, written by ``python -m fbctrl reproduce`` / ``sweep``)::

    adapt_{kind}_rot{deg}_s{seeds}.npz       four paired conditions (two without feedback)
    lr_sweep_{kind}_rot{deg}_s{seeds}.npz    the learning-rate sweep
    paper_adapt_{kind}_rot{deg}_s{seeds}.npz the same at the ``paper`` profile's size, written by
                                             the adaptation chapter when run with that profile

Files of one rotation computed for different seed sets are concatenated along the seed axis
(:func:`fbctrl.experiments.load_results`). A rotation without a file is computed *live*: in the
``default`` profile at a reduced size (``LIVE_TRIALS`` trials, the chosen seeds) and not saved,
in the ``paper`` profile at the profile's size and saved. Every summary is per network seed;
chapters show mean ± SEM over seeds.

Conventions (shared with :mod:`fbctrl.adapt` and :mod:`fbctrl.analysis`): the *test loss* is the
loss on the 8 rotated centre-out targets with the controller off (what the weights have
learned); *final* values are the mean over the last ``FINAL_WINDOW`` trials; alignment and
activity-space cosines are averaged over the movement (steps ``k >= GO_STEP``).
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import book
from .adapt import RunSpec, adapt, feedback_matrix, paper_lr
from .analysis import activity_gradients, activity_newton, cosine, gradient_horizon, step_jacobians, \
    wrec_second_order
from .bptt import forward
from .experiments import CONDITIONS, SWEEP_RATES, condition_name, load_results, lr_sweep, run_conditions, \
    save_results
from .model import Network, draw_x0
from .task import TaskConfig, Trials, centre_out_reaches

__all__ = [
    "GO_STEP", "FINAL_WINDOW", "bptt_convention", "LIVE_TRIALS", "LIVE_SWEEP_TRIALS", "COND_ORDER", "AdaptSet", "stack",
    "initial_for", "truncated", "subset", "comparable", "n_diverged", "adapt_files", "file_rotations", "load_adaptation", "initial_test_losses", "final", "efficiency",
    "cumulative_efficiency", "loss_drop_per_path", "alignment_summary", "activity_cosines",
    "movement_mean", "closed_loop_jacobians", "jacobian_profile", "horizon_profile", "activity_newton_cosines", "rflo_direction",
    "wrec_newton_table", "SweepSet", "load_sweep_set", "best_rates", "ExploreState", "explore_run",
    "AdaptationExplorer", "adaptation_explorer", "verdict", "fmt_seeds", "fmt_rate",
]

GO_STEP = 20          # first step of the movement: averages over the trial start here
FINAL_WINDOW = 10     # "final" = mean over the last this many trials
LIVE_TRIALS = 20      # trials of a live adaptation run in the default profile
LIVE_SWEEP_TRIALS = 10
COND_ORDER = ("RFLO+c", "RFLO", "BPTT+c", "BPTT")
TEST_X0_SEED = 999    # initial states of the adaptation test sets (as in fbctrl.adapt)
ACTIVITY_X0_SEED = 7  # initial states of the activity-space analyses (as in experiments.activity_alignment)
NULL_SEED = 2024      # random feedback weights of the activity-space null model


# ---------------------------------------------------------------------------------------------
# Notebook parameters specific to these chapters
# ---------------------------------------------------------------------------------------------

def _int_list(v):
    """'[1, 2]' (as papermill -p passes a list) -> [1, 2]; anything else unchanged."""
    if isinstance(v, str):
        items = [s for s in re.split(r"[\s,\[\]()]+", v) if s]
        try:
            return [int(s) for s in items]
        except ValueError:
            return v
    return v


def _check_step_list(name, v):
    v = _int_list(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 1 <= s < TaskConfig().T for s in v):
        raise ValueError(f"{name} must be a list of time steps (integers 1..{TaskConfig().T - 1}), got {v!r}")
    return tuple(int(s) for s in v)


def _check_lags(name, v):
    v = _int_list(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 1 <= s <= 50 for s in v):
        raise ValueError(f"{name} must be a list of lags in steps (integers 1..50), got {v!r}")
    return tuple(int(s) for s in v)


def _check_norm(name, v):
    if v not in ("spectral", "frobenius"):
        raise ValueError(f"{name} must be 'spectral' or 'frobenius', got {v!r}")
    return v


def _check_targets(name, v):
    v = _int_list(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 0 <= s < 8 for s in v) \
            or len(set(v)) != len(v):
        raise ValueError(f"{name} must be a list of distinct centre-out target indices 0..7, got {v!r}")
    return tuple(int(s) for s in v)


def _check_stride(name, v):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 1 <= v <= 50:
        raise ValueError(f"{name} must be an integer 1..50 (steps), got {v!r}")
    return int(v)


def _check_iters(name, v):
    v = _int_list(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and 1 <= s <= 5000 for s in v):
        raise ValueError(f"{name} must be a list of iteration counts (integers 1..5000), got {v!r}")
    return tuple(sorted(int(s) for s in v))


def _check_eigs(name, v):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= v <= 20:
        raise ValueError(f"{name} must be an integer 0..20 (0: no eigenvalues), got {v!r}")
    return int(v)


for _name, _check in {"newton_steps": _check_step_list, "lags": _check_lags, "jacobian_norm": _check_norm,
                      "targets": _check_targets, "step_stride": _check_stride, "minres_iters": _check_iters,
                      "n_eigs": _check_eigs, "horizons": _check_lags}.items():
    book.register_param(_name, _check)


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def stack(nets: dict[int, Network]) -> Network:
    """``{seed: Network}`` -> one stacked Network (seed order kept)."""
    if not nets:
        raise ValueError("no networks to stack")
    return Network.stack(list(nets.values()))


def fmt_seeds(seeds) -> str:
    """File-name tag of a seed set: ``s0-2`` for 0, 1, 2; ``s0_3`` otherwise."""
    seeds = sorted(int(s) for s in seeds)
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"s{seeds[0]}-{seeds[-1]}"
    return "s" + "_".join(str(s) for s in seeds)


def fmt_rate(lr: float) -> str:
    """A learning rate as short prose: 5 × 10⁻⁵."""
    return book.fmt_num(lr, 2)


def _rot_tag(rotation_deg: float) -> str:
    return f"{float(rotation_deg):g}"


def _lrs_from_meta(meta: dict) -> dict[str, float]:
    runs = meta.get("runs", {})
    return {name: float(r[0]["lr"]) for name, r in runs.items() if r}


# ---------------------------------------------------------------------------------------------
# Adaptation results: files, or computed
# ---------------------------------------------------------------------------------------------

_ADAPT_RE = re.compile(r"^(?P<paper>paper_)?adapt_(?P<kind>fb|nofb)_rot(?P<rot>-?[0-9.]+)(?:_(?P<tag>[a-z][a-z_]*))?_s(?P<seeds>[0-9_-]+)\.npz$")


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
    files = _consistent(adapt_files(P.results_dir, kind, rotation_deg, paper=paper))
    want = list(seeds) if seeds is not None else None
    if files:
        res, meta = load_results(files)
        fseeds = [int(s) for s in meta.get("seeds", [])]
        ftrials = int(next(iter(res.values()))["test_loss"].shape[1])
        use = want if want is not None else fseeds
        if use and all(s in fseeds for s in use) and (trials is None or trials <= ftrials):
            res = {c: r for c, r in _select(res, fseeds, use).items() if c.split("+")[0].lower() in rules}
            if trials is not None:
                res = _truncate(res, trials)
            cmds = [m.get("command", "") for m in meta.get("files", [meta])]
            return AdaptSet(rotation_deg=float(rotation_deg), kind=kind, results=res, seeds=list(use),
                            trials=trials or ftrials, source="files", files=[p.name for p in files], commands=cmds,
                            lrs=_lrs_from_meta(meta))
    if not compute:
        return None
    paths = book.checkpoints(P, kind)
    if want is not None:
        paths = {s: p for s, p in paths.items() if s in want}
    if not paths:
        return None
    from .checkpoint import load_checkpoint

    nets_d = {s: load_checkpoint(p, device=P.device) for s, p in paths.items()}
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
        save_results(path, out, {"command": "notebook (paper profile): fbctrl.findings.load_adaptation",
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


@torch.no_grad()
def initial_test_losses(nets: Network, rotation_deg: float, *, task_cfg: TaskConfig = TaskConfig()) -> dict:
    """Before any adaptation: the test loss (8 rotated targets) and the after-effect loss (8
    un-rotated targets), controller off, with the test set of :func:`fbctrl.adapt.adapt` (same
    initial states), per network -> {"test": [S], "aftereffect": [S]}."""
    if not nets.stacked:
        nets = Network.stack([nets])
    S = nets.n_networks
    base = centre_out_reaches(task_cfg, dtype=torch.float32).to(device=nets.device)
    x0 = draw_x0(nets.cfg.n, (task_cfg.n_targets,), torch.Generator().manual_seed(TEST_X0_SEED), torch.float32,
                 nets.device).unsqueeze(0).expand(S, -1, -1)
    n32 = nets.to(dtype=torch.float32)
    out = {}
    for name, tr in (("test", base.rotated(rotation_deg)), ("aftereffect", base)):
        out[name] = forward(n32, Trials.stack([tr] * S), x0, controller_on=False).task_loss().cpu().numpy() \
            .astype(np.float64)
    return out


def initial_for(nets: dict[int, Network], ad: AdaptSet, *, task_cfg: TaskConfig = TaskConfig()) -> dict | None:
    """:func:`initial_test_losses` for the seeds of ``ad`` (None if a network is missing)."""
    if not all(s in nets for s in ad.seeds):
        return None
    return initial_test_losses(stack({s: nets[s] for s in ad.seeds}), ad.rotation_deg, task_cfg=task_cfg)


def truncated(ad: AdaptSet, trials: int) -> AdaptSet:
    """The first ``trials`` trials of ``ad`` (adaptation is causal: the same as a shorter run)."""
    from dataclasses import replace

    if trials >= ad.trials:
        return ad
    return replace(ad, results=_truncate(ad.results, trials), trials=trials)


def subset(ad: AdaptSet, seeds) -> AdaptSet:
    """``ad`` restricted to ``seeds`` (in that order; each must be in ``ad.seeds``)."""
    from dataclasses import replace

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


def final(x: np.ndarray, window: int = FINAL_WINDOW) -> np.ndarray:
    """Per seed: mean of the last ``window`` trials of a [S, trials] record (NaNs ignored)."""
    import warnings

    x = np.asarray(x, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x[:, -window:], axis=1)


def efficiency(rec: dict) -> np.ndarray:
    """Per seed: |W_end - W_start| / sum over all steps of |dW_t| (the paper's efficiency ratio;
    1 = every update points the same way, near 0 = the updates cancel)."""
    path = np.nansum(rec["dW_path"], axis=1)
    return rec["dW_total"][:, -1] / np.maximum(path, 1e-30)


def cumulative_efficiency(rec: dict) -> np.ndarray:
    """[S, trials]: the efficiency ratio of the first t trials."""
    path = np.nancumsum(rec["dW_path"], axis=1)
    return rec["dW_total"] / np.maximum(path, 1e-30)


def loss_drop_per_path(rec: dict, initial_test: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Test-loss reduction per unit of weight change, per seed: (L_start - L_final) divided by
    the path length sum |dW_t| and by the displacement |W_end - W_start|. ``L_start`` is the
    pre-adaptation test loss if given, else the test after the first trial."""
    start = initial_test if initial_test is not None else rec["test_loss"][:, 0]
    drop = np.asarray(start) - final(rec["test_loss"])
    path = np.nansum(rec["dW_path"], axis=1)
    disp = rec["dW_total"][:, -1]
    return {"drop": drop, "per_path": drop / np.maximum(path, 1e-30), "per_displacement": drop / np.maximum(disp, 1e-30),
            "path": path, "displacement": disp}


def alignment_summary(rec: dict, go_step: int = GO_STEP) -> dict[str, np.ndarray] | None:
    """Local and global alignment with the exact online gradient from a condition's records
    (``align_local`` [S, trials, T], NaN on trials without alignment; ``align_global`` [S, trials]).

    Returns per seed the mean local alignment over aligned trials and steps ``>= go_step``
    (``local`` [S]), the mean global alignment (``global`` [S]), the local alignment per step
    averaged over aligned trials (``local_step`` [S, T]), and both per aligned trial
    (``trials`` [A], ``local_trial`` / ``global_trial`` [S, A]). None if not recorded."""
    if "align_local" not in rec:
        return None
    al = np.asarray(rec["align_local"], dtype=np.float64)
    ag = np.asarray(rec["align_global"], dtype=np.float64)
    aligned = np.flatnonzero(np.isfinite(ag).any(axis=0))
    if aligned.size == 0:
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mov = al[:, aligned, go_step:]
        return {"local": np.nanmean(mov.reshape(mov.shape[0], -1), axis=1),
                "global": np.nanmean(ag[:, aligned], axis=1),
                "local_step": np.nanmean(al[:, aligned], axis=1),
                "trials": aligned,
                "local_trial": np.nanmean(mov, axis=2),
                "global_trial": ag[:, aligned]}


# ---------------------------------------------------------------------------------------------
# Finding 1: the control signal and the gradient in activity space
# ---------------------------------------------------------------------------------------------

def _trial(task_cfg: TaskConfig, target: int, rotation_deg: float, dtype=torch.float64) -> Trials:
    tr = centre_out_reaches(task_cfg, [target], dtype=dtype)
    return tr.rotated(rotation_deg) if rotation_deg else tr


def _x0s(n: int, task_cfg: TaskConfig, dtype=torch.float64) -> torch.Tensor:
    return draw_x0(n, (task_cfg.n_targets,), torch.Generator().manual_seed(ACTIVITY_X0_SEED), dtype)


@torch.no_grad()
def activity_cosines(nets: dict[int, Network], rotation_deg: float = 30.0, *, controller_on: bool = True,
                     task_cfg: TaskConfig = TaskConfig(), pairing: str = "next") -> dict[str, np.ndarray]:
    """Figure 2c on the first trial of a rotation, every target, every network (float64):
    cos(u_k, -dL/dr_{k+1}) with the whole-trial loss (``cos_trial``) and with the loss of the step
    the rate first affects (``cos_inst``), for steps k = 1..T-1 -> arrays [S, 8, T-1]. u_k enters
    the update of x_{k+1}, so it is compared with the activity it acts on, r_{k+1}, as the published
    code pairs them; ``pairing="same"`` compares it with r_k instead (``analysis.PAIRINGS``).

    ``controller_on`` sets the dynamics; u_k = W_fb e_k is the control signal either way (with
    the controller off it is what the controller *would* inject). The null model replaces W_fb by
    a random Gaussian matrix (``cos_*_null``): the cosine a control signal with no relation to
    the readout would reach on the same trials (about ±1/sqrt(n))."""
    S = len(nets)
    T = task_cfg.T
    out = {k: np.zeros((S, task_cfg.n_targets, T - 1)) for k in ("cos_trial", "cos_inst", "cos_trial_null",
                                                                  "cos_inst_null")}
    for s, (seed, net) in enumerate(nets.items()):
        net64 = net.to(dtype=torch.float64)
        d = net64.cfg.delay
        g = torch.Generator().manual_seed(NULL_SEED + int(seed))
        W_null = torch.randn(net64.W_fb.shape, generator=g, dtype=torch.float64).to(net64.device)
        x0s = _x0s(net64.cfg.n, task_cfg)
        for tgt in range(task_cfg.n_targets):
            ag = activity_gradients(net64, _trial(task_cfg, tgt, rotation_deg), x0s[tgt:tgt + 1],
                                    controller_on=controller_on, pairing=pairing)
            out["cos_trial"][s, tgt] = ag.cos_trial[:, 0].cpu().numpy()
            out["cos_inst"][s, tgt] = ag.cos_inst[:, 0].cpu().numpy()
            E = ag.E  # [T+1, 1, 2]
            Efb = torch.zeros_like(E[:T])
            if d < T:
                Efb[d:] = E[:T - d]
            u_null = (Efb @ W_null.mT)[1:T]
            out["cos_trial_null"][s, tgt] = cosine(u_null, ag.neg_grad_trial)[:, 0].cpu().numpy()
            out["cos_inst_null"][s, tgt] = cosine(u_null, ag.neg_grad_inst)[:, 0].cpu().numpy()
    return out


def movement_mean(cos: np.ndarray, first_step: int = GO_STEP) -> np.ndarray:
    """Per seed: mean of a [S, targets, T-1] cosine array (steps k = 1..T-1) over targets and the
    movement steps k >= ``first_step``."""
    c = np.asarray(cos)[:, :, first_step - 1:]
    return c.reshape(c.shape[0], -1).mean(axis=1)


# ---------------------------------------------------------------------------------------------
# Finding 2: decoupling
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def closed_loop_jacobians(net: Network, fwd) -> torch.Tensor:
    """Step Jacobians with the feedback loop included (controller on, delay 0), one trial
    [T, n+2, n+2], for the state z_k = (x_k, e_{k-1}): the activity and the error accumulated
    before it is read out. Reading x_k out adds dt (v^ref - W_out r_k - b_out) to the error that
    the controller then feeds back, so

        dx_{k+1}/dx_k = (1-alpha) I + alpha (W_rec - dt W_fb W_out) D(x_k),  dx_{k+1}/de_{k-1} = alpha W_fb,
        de_k/dx_k = -dt W_out D(x_k),                                           de_k/de_{k-1} = I

    (at k = 0 the error e_0 = 0 does not depend on x_0). The x-block of their products,
    d x_{k+L} / d x_k, is the total sensitivity of the activity to its past, the path through the
    integrated error included: a perturbation of x_k changes the hand velocity, hence every later
    error the controller feeds back."""
    if net.cfg.delay != 0:
        raise ValueError("closed-loop Jacobians are defined here for feedback delay 0")
    X = fwd.X[:, 0, 0]
    T, n = X.shape[0] - 1, X.shape[1]
    a, dt = net.cfg.alpha, net.cfg.dt
    W_f = net.W_fb * net.mask
    D = (X[:T] > 0).to(X.dtype)                               # relu'(x_k), k = 0..T-1
    eye = torch.eye(n, dtype=X.dtype, device=X.device)
    de_dx = -dt * net.W_out.unsqueeze(0) * D[:, None, :]      # de_k/dx_k [T, 2, n]
    de_dx[0] = 0.0
    A = torch.zeros(T, n + 2, n + 2, dtype=X.dtype, device=X.device)
    A[:, :n, :n] = (1 - a) * eye + a * (net.W_rec.unsqueeze(0) * D[:, None, :] + W_f @ de_dx)
    A[:, :n, n:] = a * W_f
    A[:, n:, :n] = de_dx
    A[:, n:, n:] = torch.eye(2, dtype=X.dtype, device=X.device)
    return A


@torch.no_grad()
def jacobian_profile(nets: dict[int, Network], rotation_deg: float = 30.0, *, targets=(0, 2, 4, 6),
                     lags=(1, 5, 10), stride: int = 5, norm: str = "spectral", controllers=(True, False),
                     closed_loop: bool = False, task_cfg: TaskConfig = TaskConfig()) -> dict:
    """Figure 4a: norms of dx_{k+L}/dx_k = J_{k+L-1} ... J_k (J_k = (1-alpha) I + alpha W_rec
    diag(relu'(x_k)); the fed-back error is an input, as in adaptation) along the first trial of
    a rotation, at every ``stride``-th start step k, for each lag L, controller on and off.
    Returns {"steps": [K], (controller_on, L): array [S, len(targets), K] (NaN where k + L > T)};
    with ``closed_loop`` also ("loop", L): the x-block of the products of the closed-loop
    Jacobians (:func:`closed_loop_jacobians`) along the controller-on trajectory."""
    ord_ = 2 if norm == "spectral" else "fro"
    T = task_cfg.T
    steps = np.arange(0, T, stride)
    out: dict = {"steps": steps}
    keys = list(controllers) + (["loop"] if closed_loop else [])
    for on in keys:
        for L in lags:
            out[(on, L)] = np.full((len(nets), len(targets), len(steps)), np.nan)
    for s, net in enumerate(nets.values()):
        x0s = _x0s(net.cfg.n, task_cfg, net.dtype)
        for i, tgt in enumerate(targets):
            tr = _trial(task_cfg, tgt, rotation_deg, net.dtype)
            for on in keys:
                fwd = forward(net, tr, x0s[tgt:tgt + 1].to(net.device), controller_on=on is not False)
                n = net.cfg.n
                J = closed_loop_jacobians(net, fwd) if on == "loop" else step_jacobians(net, fwd)
                for L in lags:
                    ks = [j for j, k in enumerate(steps) if k + L <= T]
                    if not ks:
                        continue
                    k0 = torch.as_tensor(steps[ks])
                    prod = J[k0].clone()
                    for m in range(1, L):
                        prod = J[k0 + m] @ prod
                    out[(on, L)][s, i, ks] = torch.linalg.matrix_norm(prod[:, :n, :n], ord=ord_).cpu().numpy()
    return out


@torch.no_grad()
def horizon_profile(nets: dict[int, Network], rotation_deg: float = 30.0, *, targets=(0, 2, 4, 6),
                    horizons=(1, 2, 5, 10, 20, 50), steps=None, controllers=(True, False),
                    task_cfg: TaskConfig = TaskConfig()) -> dict:
    """How much of the exact gradient of a step's loss comes from the last K steps
    (:func:`fbctrl.analysis.gradient_horizon`), controller on and off, on the first trial of a
    rotation. ``steps`` default: every 10th step from 60 on. Returns {"horizons": [H],
    (controller_on, "cos"|"norm_ratio"): [S, len(targets), H]}."""
    T = task_cfg.T
    if steps is None:
        steps = list(range(60, T, 10))
    out: dict = {"horizons": np.asarray(horizons), "steps": np.asarray(steps)}
    for on in controllers:
        for key in ("cos", "norm_ratio"):
            out[(on, key)] = np.zeros((len(nets), len(targets), len(horizons)))
    for s, net in enumerate(nets.values()):
        x0s = _x0s(net.cfg.n, task_cfg, net.dtype)
        for i, tgt in enumerate(targets):
            tr = _trial(task_cfg, tgt, rotation_deg, net.dtype)
            for on in controllers:
                r = gradient_horizon(net, tr, x0s[tgt:tgt + 1], controller_on=on, horizons=horizons, steps=steps)
                out[(on, "cos")][s, i] = r["cos"]
                out[(on, "norm_ratio")][s, i] = r["norm_ratio"]
    return out


# ---------------------------------------------------------------------------------------------
# Finding 3: second order
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def activity_newton_cosines(nets: dict[int, Network], rotation_deg: float = 30.0, *, targets=(0, 2, 4, 6),
                            stride: int = 4, damping: float = 1e-3, task_cfg: TaskConfig = TaskConfig(),
                            pairing: str = "next") -> dict[str, np.ndarray]:
    """Figure 5b: cos(u_k, -(H_j + damping I)^-1 g_j) (Newton direction in activity space, H_j
    the exact n x n Hessian of the whole-trial loss w.r.t. r_j, the activity u_k acts on: j = k+1,
    or j = k with ``pairing="same"``) and cos(u_k, -g_j) (first order) at every ``stride``-th
    step, controller on, float64 -> {"steps": [K], "cos_newton", "cos_first_order": [S,
    len(targets), K]}."""
    T = task_cfg.T
    steps = list(range(1, T, stride))
    out = {"steps": np.asarray(steps),
           "cos_newton": np.zeros((len(nets), len(targets), len(steps))),
           "cos_first_order": np.zeros((len(nets), len(targets), len(steps)))}
    for s, net in enumerate(nets.values()):
        net64 = net.to(dtype=torch.float64)
        x0s = _x0s(net64.cfg.n, task_cfg)
        for i, tgt in enumerate(targets):
            r = activity_newton(net64, _trial(task_cfg, tgt, rotation_deg), x0s[tgt:tgt + 1], controller_on=True,
                                damping=damping, steps=steps, pairing=pairing)
            out["cos_newton"][s, i] = r["cos_newton"]
            out["cos_first_order"][s, i] = r["cos_first_order"]
    return out


@torch.no_grad()
def rflo_direction(net: Network, trials: Trials, x0: torch.Tensor, t: int, *, controller_on: bool = True) -> np.ndarray:
    """RFLO's update direction after step t of one trial (learning rate 1, weights fixed within
    the trial): (B E[t+1])_i P_ij with the eligibility trace P after step t (SPEC 4) and B the
    RFLO feedback matrix (W_fb with feedback, W_out^T without)."""
    fwd = forward(net, trials, x0.to(net.device, net.dtype), controller_on=controller_on)
    X, Rr, E = fwd.X[:, 0, 0], fwd.R[:, 0, 0], fwd.E[:, 0, 0]
    a = net.cfg.alpha
    n = X.shape[1]
    P = torch.zeros(n, n, dtype=X.dtype, device=X.device)
    for k in range(t + 1):
        P.mul_(1 - a).add_(torch.outer((X[k + 1] > 0).to(X.dtype), Rr[k]), alpha=a)
    B = feedback_matrix(net)
    return ((B @ E[t + 1])[:, None] * P).cpu().numpy()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))


def wrec_newton_table(net: Network, rotation_deg: float = 30.0, *, targets=(1,), steps=(40, 80),
                      controllers=(True, False), iters=(25, 100, 400), n_eigs: int = 0, damping: float = 1e-3,
                      task_cfg: TaskConfig = TaskConfig()) -> list[dict]:
    """The published code's second comparison, at paper scale: for a few steps t of one rotated
    trial (per target), RFLO's update direction against the gradient, the Gauss-Newton step
    (closed form) and the damped Newton step ``-(H + damping I)^-1 g`` for the step loss l_t with
    respect to W_rec, the latter by Hessian-vector products and MINRES
    (:func:`fbctrl.analysis.wrec_second_order`) stopped after each number of iterations in
    ``iters`` (a truncated Krylov solve; the system is ill-conditioned, so the answer depends on
    where it stops, and the table shows how).

    One row per (target, controller, step): ``cos_rflo_grad``, ``cos_rflo_gn``, and per entry of
    ``iters`` the lists ``cos_rflo_newton``, ``cos_grad_newton``, ``iters_done``, ``residual``;
    ``seconds`` for the whole row; ``eigenvalues`` (``n_eigs`` > 0: largest-magnitude Hessian
    eigenvalues by Lanczos, at the first target and step of each controller state, to save time)."""
    x0s = _x0s(net.cfg.n, task_cfg, net.dtype)
    rows = []
    for target in targets:
        tr = _trial(task_cfg, target, rotation_deg, net.dtype)
        x0 = x0s[target:target + 1]
        for on in controllers:
            for t in steps:
                t0 = time.perf_counter()
                d_rflo = rflo_direction(net, tr, x0, int(t), controller_on=on)
                row = {"controller_on": on, "step": int(t), "target": int(target), "iters": list(iters),
                       "cos_rflo_newton": [], "cos_grad_newton": [], "iters_done": [], "residual": [],
                       "eigenvalues": None}
                for j, it in enumerate(iters):
                    eig = n_eigs if (target == targets[0] and t == steps[0] and j == 0) else 0
                    w = wrec_second_order(net, tr, x0, int(t), controller_on=on, damping=damping, maxiter=int(it),
                                          n_eigs=eig)
                    if j == 0:
                        row["cos_rflo_grad"] = _cos(d_rflo, -w.grad)
                        row["cos_rflo_gn"] = _cos(d_rflo, w.gauss_newton)
                        row["cos_grad_gn"] = _cos(-w.grad, w.gauss_newton)
                    if eig:
                        row["eigenvalues"] = w.eigenvalues
                    row["cos_rflo_newton"].append(_cos(d_rflo, w.newton))
                    row["cos_grad_newton"].append(_cos(-w.grad, w.newton))
                    row["iters_done"].append(w.minres_iters)
                    row["residual"].append(w.residual)
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Learning-rate sweep
# ---------------------------------------------------------------------------------------------

_SWEEP_RE = re.compile(r"^(?P<paper>paper_)?lr_sweep_(?P<kind>fb|nofb)_rot(?P<rot>[0-9._-]+)_s(?P<seeds>[0-9_-]+)\.npz$")


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
    folder = Path(P.results_dir)
    groups: dict[tuple, list] = {}
    if folder.is_dir():
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
    want = list(seeds) if seeds is not None else None
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
    if not compute:
        return None
    paths = book.checkpoints(P, kind)
    if want is not None:
        paths = {s: p for s, p in paths.items() if s in want}
    if not paths:
        return None
    from .checkpoint import load_checkpoint
    from .experiments import save_sweep

    nets_d = {s: load_checkpoint(p, device=P.device) for s, p in paths.items()}
    n_trials = trials or (200 if paper else LIVE_SWEEP_TRIALS)
    t0 = time.perf_counter()
    sw = lr_sweep(stack(nets_d), list(nets_d), rates=SWEEP_RATES, rotations=(float(rotation_deg),), trials=n_trials,
                  rules=tuple(rules), final_window=min(FINAL_WINDOW, n_trials), progress=progress, device=P.device)
    secs = time.perf_counter() - t0
    saved = []
    if paper:
        path = folder / f"paper_lr_sweep_{kind}_rot{_rot_tag(rotation_deg)}_{fmt_seeds(list(nets_d))}.npz"
        save_sweep(path, sw, {"command": "notebook (paper profile): fbctrl.findings.load_sweep_set", "kind": kind})
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
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.where(div.any(axis=2), np.inf, np.nanmean(fin, axis=2))  # [rates, rotations]
        best = [int(np.argmin(m[:, j])) if np.isfinite(m[:, j]).any() else -1 for j in range(m.shape[1])]
        plr = paper_lr(rule, cond.endswith("+c"))
        pidx = next((i for i, r in enumerate(rates) if math.isclose(r, plr, rel_tol=1e-6)), None)
        out[cond] = {"best": best, "best_lr": [rates[i] if i >= 0 else float("nan") for i in best],
                     "paper": pidx, "paper_lr": plr}
    return out


# ---------------------------------------------------------------------------------------------
# Verdicts (stated criteria, never tuned)
# ---------------------------------------------------------------------------------------------

def verdict(per_seed_effect, *, direction: int = 1) -> str:
    """The verdict of a paired effect by the book's stated rule (``fbctrl.stats``): per-seed
    effects (differences, or log ratios), their 95% Student-t interval, and *agrees* when it
    excludes no effect on the paper's side (``direction`` +1: the paper claims a positive effect),
    *disagrees* when it excludes it on the other side, *inconclusive* otherwise (also with fewer
    than 2 seeds). The text adds the paired t-test's p-value and the number of seeds:
    ``"agrees (p = 0.012, 4 seeds)"``."""
    from .stats import paired_effect, verdict as _rule

    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    e = paired_effect(np.asarray(per_seed_effect, dtype=np.float64))
    if e.n == 0:
        return "cannot be judged (no data)"
    word = _rule(e, direction).value
    if e.n < 2:
        return f"{word} (1 seed)"
    return f"{word} (p = {book.fmt_num(e.p_value, 2)}, {e.n} seeds)"


# ---------------------------------------------------------------------------------------------
# Adaptation explorer (a short live run on one network)
# ---------------------------------------------------------------------------------------------

@dataclass
class ExploreState:
    network: str = ""
    rule: str = "rflo"
    controller_on: bool = True
    lr: float | None = None       # None: the paper's rate for the condition
    rotation_deg: float = 30.0
    trials: int = 20
    seed: int = 0                 # target sequence and initial states

    def rate(self) -> float:
        return float(self.lr) if self.lr is not None else paper_lr(self.rule, self.controller_on)


def explore_run(net: Network, state: ExploreState, *, task_cfg: TaskConfig = TaskConfig()) -> dict:
    """Adapt one network for ``state.trials`` trials and return what the explorer draws:
    training and test losses per trial, the pre-adaptation test loss, and the hand paths to the 8
    rotated targets with the controller off before and after (test initial states)."""
    from .online import trial_traces

    t0 = time.perf_counter()
    run = RunSpec(net_index=0, controller_on=state.controller_on, rotation_deg=state.rotation_deg, lr=state.rate(),
                  seed=state.seed)
    res = adapt(net, state.rule, [run], trials=state.trials, progress=False, on_divergence="mark",
                bptt_weights="current", task_cfg=task_cfg)
    base = centre_out_reaches(task_cfg, dtype=torch.float32).rotated(state.rotation_deg)
    x0 = draw_x0(net.cfg.n, (task_cfg.n_targets,), torch.Generator().manual_seed(TEST_X0_SEED), torch.float32)
    before = trial_traces(net, base, x0, controller_on=False)
    after = trial_traces(net.replace(W_rec=res.W_final[0].to(net.dtype)), base, x0, controller_on=False)
    init = initial_test_losses(net, state.rotation_deg, task_cfg=task_cfg)
    return {"state": state, "train_loss": res.records["train_loss"][0], "test_loss": res.records["test_loss"][0],
            "initial_test": float(init["test"][0]), "diverged": int(res.diverged[0]),
            "hand_before": before["hand"], "hand_after": after["hand"], "ref": before["ref"],
            "seconds": time.perf_counter() - t0}


class AdaptationExplorer:
    """ipywidgets front end of :func:`explore_run`: pick the network, rule, controller, learning
    rate, rotation and number of trials, press *run*. Needs a running kernel; the notebook also
    shows the default state as a static figure."""

    def __init__(self, nets: dict[str, Network], state: ExploreState | None = None, *, initial: dict | None = None,
                 task_cfg: TaskConfig = TaskConfig()):
        import ipywidgets as W

        if not nets:
            raise ValueError("the adaptation explorer needs at least one network")
        self.nets, self.task_cfg = nets, task_cfg
        self.state = state or ExploreState()
        if self.state.network not in nets:
            self.state.network = next(iter(nets))
        s = self.state
        style = {"description_width": "initial"}
        self.controls = {
            "network": W.Dropdown(options=list(nets), value=s.network, description="network", style=style),
            "rule": W.ToggleButtons(options=[("RFLO", "rflo"), ("online BPTT", "bptt")], value=s.rule,
                                    description="rule", style=style),
            "controller_on": W.Checkbox(value=s.controller_on, description="controller on", indent=False),
            "lr": W.FloatLogSlider(value=s.rate(), base=10, min=-7, max=-3, step=0.25, description="learning rate",
                                   style=style, readout_format=".1e", continuous_update=False),
            "rotation_deg": W.FloatSlider(value=s.rotation_deg, min=-90, max=90, step=5, description="rotation (°)",
                                          style=style, continuous_update=False),
            "trials": W.IntSlider(value=s.trials, min=5, max=200, step=5, description="trials", style=style,
                                  continuous_update=False),
        }
        self.button = W.Button(description="run", button_style="primary")
        self.status = W.Label(value="")
        self.image = W.Image(value=self._render(initial), format="png", layout=W.Layout(max_width="100%"))
        self.button.on_click(self._on_run)
        for k in ("rule", "controller_on"):  # a new condition starts from the paper's rate
            self.controls[k].observe(self._paper_rate, names="value")
        c = self.controls
        self.widget = W.VBox([W.HBox([c["network"], c["rule"], c["controller_on"]]),
                              W.HBox([c["lr"], c["rotation_deg"], c["trials"]]),
                              W.HBox([self.button, self.status]), self.image])

    def _render(self, run: dict | None = None) -> bytes:
        import matplotlib.pyplot as plt

        from .figures import plot_explorer

        run = run or explore_run(self.nets[self.state.network], self.state, task_cfg=self.task_cfg)
        fig = plot_explorer(run)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        return buf.getvalue()

    def _paper_rate(self, _=None):
        self.controls["lr"].value = paper_lr(self.controls["rule"].value, self.controls["controller_on"].value)

    def _on_run(self, _=None):
        for k, w in self.controls.items():
            setattr(self.state, k, w.value)
        self.status.value = "running ..."
        self.image.value = self._render()
        self.status.value = ""

    def _repr_mimebundle_(self, **kw):
        bundle = self.widget._repr_mimebundle_(**kw)
        bundle["text/plain"] = "Adaptation explorer (interactive: needs a running Jupyter kernel)"
        return bundle


def adaptation_explorer(nets: dict[str, Network], state: ExploreState | None = None, *, initial: dict | None = None,
                        task_cfg: TaskConfig = TaskConfig()) -> AdaptationExplorer:
    """An :class:`AdaptationExplorer` over ``nets`` (``{"seed 0": net, ...}``); ``initial``: the
    :func:`explore_run` result of ``state`` if already computed (drawn without running again)."""
    return AdaptationExplorer(nets, state, initial=initial, task_cfg=task_cfg)
