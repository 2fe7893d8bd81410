"""Claims that need only the pre-trained networks, as units of the paper protocol: one file per
network and measure (``{results}/network/{source}/{measure}/fb_seed{s}.npz``), planned by
``python -m fbctrl paper`` (``fbctrl.experiments.paper``), computed and written by
:meth:`NetworkUnit.run_batch` and read by the verdict table (``fbctrl.experiments.verdicts``).

Measures, each on the first trial of a 30 degree rotation with frozen weights:

* ``activity`` (Figures 2c): cos(u_k, -dL/dr_j) over the trial for every target, with the
  control input u_k paired with the activity it acts on, j = k+1 (as published), and with j = k
  (robustness), controller on and off, and the book's null model (W_fb replaced by a random
  Gaussian matrix; ``network.activity_cosines``).
* ``activity_newton`` (Figure 5b): cos(u_k, -(H_j + 1e-3 I)^-1 g_j) and cos(u_k, -g_j), both
  pairings (``network.activity_newton_cosines``).
* ``jacobian`` (Figure 4a): spectral norms of dx_{k+L}/dx_k for the lags L (1 as the figure),
  controller on and off, open loop, and through the closed loop (``network.jacobian_profile``).
* ``wrec_newton`` (the published code's second-order comparison): RFLO's update direction at a
  step t against the gradient and the damped Newton step -(H + lambda I)^-1 g of the step loss
  with respect to W_rec, by exact Hessian-vector products and MINRES in float64
  (``analysis.wrec_second_order``), for every damping lambda of a small grid (the paper's 1e-3
  first), with the true relative residual |(H + lambda I) x - g| / |g| of every solve. A solve
  counts as *converged* when MINRES reports success and that true residual is at most
  ``wrec_converged``; the verdicts use converged solves only.
* ``matched_loop`` (Figures 4b, 4c, 5a at matched states): at the pre-trained weights, on the
  matched-state evaluation trials (``matched_trials``, the targets and initial states of
  ``analysis.matched.matched_alignment``), controller on and off: RFLO's local and global
  alignment with the exact gradient with the fed-back error detached and with the loop kept, and
  the scale-free per-trial efficiency of its updates (``analysis.matched.loop_alignment``).

* ``online`` (Figure 1a, the extension's networks only; Methods, "Beyond the paper"): the frozen
  network on the task's perturbed test conditions (each ``online_repeats`` times from initial
  states of ``online.EVAL_SEED``), controller on and off: the trial loss mean E^2 of each
  (``loss_on``, ``loss_off`` [trials]). Not a unit of the paper protocol, whose Figure 1a is drawn
  live (``fbctrl.book.scale.online_data``).

Every measure reads the test conditions of the network's task (``network.test_trial``): the
centre-out reaches rotated by ``rotation_deg`` for reaching, the limit cycle's test frequencies
shifted by ``shift_hz`` for the limit cycle (:func:`measure_perturbation`). A delayed or sparse
network is measured through its own delay and mask (the analyses read ``net.cfg.delay`` and
``M * W_fb``); the kind of a unit is any network family with feedback (``NetworkSpec``).

``source``: ``published`` (``checkpoints/published``, random reaches without pushes, Methods, "Decisions
where the paper and its code are silent") or
``shipped`` (``checkpoints/``, the book's older networks, pre-trained with pushes: a robustness
column, never paired with the published networks of the same seed index).

This module measures and summarises; only :meth:`NetworkUnit.run_batch` writes (a unit's file,
through :mod:`fbctrl.experiments.store`).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..analysis import network
from ..analysis.gradients import PAIRINGS, wrec_second_order
from ..analysis.matched import EVAL_SEED_OFFSET, loop_alignment
from ..core.checkpoint import load_checkpoint, read_sidecar
from ..core.model import Network
from ..analysis.online import EVAL_SEED
from ..core.model import draw_x0, rollout
from ..core.spec import NetworkSpec
from ..core.task import TaskConfig
from ..core.tasks import FrequencyShift, Rotation, task_for_config
from ..core.train import network_tag
from .store import file_sha256, rel_path, write_unit

__all__ = ["MEASURES", "BEYOND_MEASURES", "ALL_MEASURES", "measure_perturbation", "online_values", "SHIPPED_MEASURES", "SOURCES", "PAPER_DAMPING", "NetMeasureConfig", "NetworkUnit", "settings", "compute",
           "shipped_seeds", "file_sha256", "activity_values", "activity_newton_values", "jacobian_values",
           "damping_index", "wrec_converged", "wrec_values", "wrec_convergence", "smallest_converged_damping", "MEASURE_SECONDS"]

MEASURES = ("activity", "activity_newton", "jacobian", "wrec_newton", "matched_loop")
BEYOND_MEASURES = ("online",)   # measured on the extension's networks (and their published pairs) only
ALL_MEASURES = MEASURES + BEYOND_MEASURES
SHIPPED_MEASURES = ("activity", "activity_newton", "jacobian", "wrec_newton")   # the robustness networks' measures
SOURCES = ("published", "shipped")
# the paper's damping of both Newton directions (Methods, "How the findings are measured")
PAPER_DAMPING = 1e-3

# rough seconds per unit at n 400 on one core of a 2-core CPU (measured once, for the plan's estimate;
# the Jacobian's with lags 1-10 and the rate Jacobian: 200 s of wall time on a core shared by three processes)
MEASURE_SECONDS = {"activity": 1.0, "activity_newton": 10.0, "jacobian": 120.0, "wrec_newton": 300.0,
                   "matched_loop": 180.0, "online": 2.0}


def _positive_ints(name, v, *, zero=False):
    v = tuple(v)
    if not v or any(int(x) != x or x < (0 if zero else 1) for x in v):
        raise ValueError(f"{name} must be a non-empty list of {'non-negative' if zero else 'positive'} integers, "
                         f"got {v!r}")
    return tuple(int(x) for x in v)


@dataclass(frozen=True)
class NetMeasureConfig:
    """Settings of the network-level measures (defaults: the book's chapters, the paper's damping)."""

    rotation_deg: float = 30.0
    jacobian_targets: tuple = (0, 2, 4, 6)
    jacobian_lags: tuple = tuple(range(1, 11))   # lags 1 to 10 (the conventions of Figure 4a)
    jacobian_stride: int = 5
    newton_targets: tuple = (0, 2, 4, 6)
    newton_stride: int = 4
    wrec_targets: tuple = (1, 5)
    wrec_steps: tuple = (40, 80)
    wrec_dampings: tuple = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)   # decades from the paper's up
    wrec_maxiter: int = 1000
    wrec_rtol: float = 1e-8        # MINRES's own stopping tolerance (its recurrence estimate of the residual)
    wrec_converged: float = 1e-6   # converged: MINRES succeeded and the true relative residual <= this
    matched_trials: int = 32       # matched_loop: evaluation trials per controller setting (as the matched states)
    shift_hz: float = 0.5          # the limit cycle's measures: its test frequencies shifted by this (Methods)
    online_repeats: int = 8        # online: each perturbed test condition this many times

    def __post_init__(self):
        if not math.isfinite(self.rotation_deg):
            raise ValueError(f"rotation_deg must be a finite angle, got {self.rotation_deg!r}")
        for name in ("jacobian_targets", "newton_targets", "wrec_targets"):
            if any(t > 7 for t in _positive_ints(name, getattr(self, name), zero=True)):
                raise ValueError(f"{name} must be centre-out targets 0-7, got {getattr(self, name)!r}")
        _positive_ints("jacobian_lags", self.jacobian_lags)
        if 1 not in self.jacobian_lags:
            raise ValueError(f"jacobian_lags must hold lag 1 (Figure 4a), got {self.jacobian_lags!r}")
        _positive_ints("wrec_steps", self.wrec_steps)
        if not math.isfinite(self.shift_hz):
            raise ValueError(f"shift_hz must be a finite frequency shift in Hz, got {self.shift_hz!r}")
        for name in ("jacobian_stride", "newton_stride", "wrec_maxiter", "matched_trials", "online_repeats"):
            _positive_ints(name, (getattr(self, name),))
        d = tuple(self.wrec_dampings)
        if not d or any(not (x > 0 and math.isfinite(x)) for x in d) or list(d) != sorted(set(d)):
            raise ValueError(f"wrec_dampings must be increasing positive numbers, got {d!r}")
        if not any(math.isclose(x, PAPER_DAMPING) for x in d):
            raise ValueError(f"wrec_dampings must hold the paper's damping {PAPER_DAMPING:g}, got {d!r}")
        for name in ("wrec_rtol", "wrec_converged"):
            v = getattr(self, name)
            if not (0 < v < 1):
                raise ValueError(f"{name} must lie in (0, 1), got {v!r}")

    @classmethod
    def tiny(cls) -> "NetMeasureConfig":
        """For the dry run (trials of 30 steps): steps inside the trial, a short solve."""
        return cls(jacobian_targets=(0, 4), jacobian_lags=(1, 5, 10), jacobian_stride=3, newton_targets=(0, 4),
                   newton_stride=3, wrec_targets=(1,), wrec_steps=(10, 20), wrec_maxiter=200, matched_trials=2)


def measure_perturbation(s: NetMeasureConfig, task_cfg):
    """What the measures perturb: the rotation ``s.rotation_deg`` in degrees (a number, as the
    paper's networks were always measured) for reaching, ``FrequencyShift(s.shift_hz)`` for the
    limit cycle (any other task's configuration: its ``Perturbation``)."""
    if isinstance(task_cfg, TaskConfig):
        return float(s.rotation_deg)
    task_for_config(task_cfg)           # a known task's configuration, else one clear line
    return FrequencyShift(s.shift_hz)


def settings(s: NetMeasureConfig, measure: str, task_cfg: TaskConfig) -> dict:
    """What a measure's file depends on besides the network (its file is recomputed when this
    changes), as JSON-normal values."""
    if measure not in ALL_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(ALL_MEASURES)}, got {measure!r}")
    if isinstance(task_cfg, TaskConfig):
        common = {"rotation_deg": float(s.rotation_deg), "task": asdict(task_cfg), "x0_seed": network.ACTIVITY_X0_SEED,
                  "trial": "first trial of the rotation, every listed centre-out target, weights frozen"}
    else:
        common = {"perturbation": measure_perturbation(s, task_cfg).name, "task": asdict(task_cfg),
                  "task_name": task_for_config(task_cfg).name, "x0_seed": network.ACTIVITY_X0_SEED,
                  "trial": "first trial of the perturbation, every listed test condition, weights frozen"}
    own = {
        "activity": {"pairings": list(PAIRINGS), "controllers": [True, False], "null_seed": network.NULL_SEED,
                     "dtype": "float64"},
        "activity_newton": {"pairings": list(PAIRINGS), "targets": list(s.newton_targets), "stride": s.newton_stride,
                            "damping": PAPER_DAMPING, "dtype": "float64"},
        "jacobian": {"targets": list(s.jacobian_targets), "lags": list(s.jacobian_lags), "stride": s.jacobian_stride,
                     "norm": "spectral", "closed_loop": True,
                     "rate_jacobian": "D(x_(k+L)) dx_(k+L)/dx_k D(x_k)", "dtype": "float32"},
        "wrec_newton": {"targets": list(s.wrec_targets), "steps": list(s.wrec_steps),
                        "dampings": [float(x) for x in s.wrec_dampings], "maxiter": s.wrec_maxiter,
                        "rtol": s.wrec_rtol, "converged_residual": s.wrec_converged, "dtype": "float64",
                        "solver": "scipy.sparse.linalg.minres, exact Hessian-vector products"},
        "matched_loop": {"trials": s.matched_trials, "eval_seed_offset": EVAL_SEED_OFFSET,
                         "gradients": ["detached", "loop"], "controllers": [True, False], "dtype": "float64",
                         "weights": "pre-trained"},
        "online": {"repeats": s.online_repeats, "x0_seed": EVAL_SEED, "controllers": [True, False],
                   "loss": "mean E^2 over the T+1 steps and both dimensions, per trial", "dtype": "float64"},
    }[measure]
    return json.loads(json.dumps({**common, **own}))


@dataclass(frozen=True)
class NetworkUnit:
    """One network-level measure of one network with feedback."""

    measure: str
    kind: str
    seed: int
    source: str = "published"
    stage: str = "network"

    def __post_init__(self):
        if self.measure not in ALL_MEASURES:
            raise ValueError(f"measure must be one of {', '.join(ALL_MEASURES)}, got {self.measure!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if not NetworkSpec.parse(self.kind).has_feedback:
            raise ValueError(f"kind must be a network family with feedback (the measures need feedback weights: fb, "
                             f"fb_d5, fb0.3, lc_fb, ...), got {self.kind!r}")

    def path(self, cfg) -> Path:
        return Path(cfg.results_dir) / "network" / self.source / self.measure / f"{self.kind}_seed{self.seed}.npz"

    def checkpoint(self, cfg) -> Path:
        """The network measured: ``{tag}_seed{s}.pt`` (``train.network_tag``: ``fb`` at n 400) in the
        published or the shipped folder of ``cfg`` (a ``paper.PaperConfig``)."""
        folder = cfg.checkpoint_dir if self.source == "published" else cfg.shipped_dir
        return Path(folder) / f"{network_tag(cfg.pretrain_config(self.kind))}_seed{self.seed}.pt"

    def describe(self) -> str:
        return f"{self.measure} of {self.source} {self.kind} seed {self.seed}"

    def check_network(self, cfg, path: Path) -> dict:
        """The sidecar of the network to measure, checked to be what its source says: published
        ones pre-trained with the protocol of ``cfg``, shipped ones with pushes; else a one-line
        ValueError."""
        side = read_sidecar(path)
        got = side.get("config", {})
        if self.source == "published":
            want = asdict(cfg.pretrain_config(self.kind))
            bad = [k for k in ("n", "batches", "batch_size", "train_push", "feedback_density") if got.get(k) != want[k]]
            if bad:
                raise ValueError(f"checkpoint {path} was not pre-trained with this protocol ({', '.join(bad)} differ)")
        elif got.get("train_push") is not True or got.get("n") != cfg.n:
            raise ValueError(f"checkpoint {path} is not a network of size {cfg.n} pre-trained with pushes "
                             f"(train_push {got.get('train_push')!r}, n {got.get('n')!r})")
        return side

    @classmethod
    def run_batch(cls, cfg, units: list, *, device="cpu", progress: bool = True, command: str = "") -> None:
        """Measure ``units`` one at a time (:func:`compute`), one file each, recording the
        measure's settings (:func:`settings`) and the network's sha256. The unit recorded in the
        file is its fields (all JSON values: ``fbctrl.experiments.paper.unit_dict`` of it)."""
        for u in units:
            ck = u.checkpoint(cfg)
            side = u.check_network(cfg, ck)
            net = load_checkpoint(ck, n=cfg.n, device=device)
            rec, secs = compute(u.measure, net, u.seed, cfg.network_measures, cfg.task)
            meta = {"measure": u.measure, "settings": settings(cfg.network_measures, u.measure, cfg.task),
                    "source": u.source,
                    "network": {"checkpoint": rel_path(ck), "sha256": file_sha256(ck), "seed": u.seed,
                                "source": u.source, "train_push": side.get("config", {}).get("train_push"),
                                "commit": side.get("commit")},
                    "device": str(device), "wall_time_s": secs, "command": command}
            write_unit(u.path(cfg), asdict(u), rec, meta)


def shipped_seeds(cfg) -> list[int]:
    """Seeds of the networks with feedback of the configured size in ``cfg.shipped_dir`` (the
    book's shipped checkpoints, ``fb_seed{s}.pt`` at n 400)."""
    p = Path(cfg.shipped_dir)
    if not p.is_dir():
        return []
    pat = re.compile(rf"^{re.escape(network_tag(cfg.pretrain_config('fb')))}_seed(\d+)\.pt$")
    return sorted(int(m.group(1)) for f in p.iterdir() if (m := pat.match(f.name)))


# ---------------------------------------------------------------------------------------------
# Measures: network -> records (plain arrays)
# ---------------------------------------------------------------------------------------------

def _activity(net: Network, seed: int, s: NetMeasureConfig, task_cfg: TaskConfig) -> dict:
    out = {}
    for pairing in PAIRINGS:
        for on in (True, False):
            r = network.activity_cosines({seed: net}, measure_perturbation(s, task_cfg), controller_on=on, task_cfg=task_cfg,
                                          pairing=pairing)
            for k, v in r.items():
                out[f"{k}_{pairing}_{'on' if on else 'off'}"] = v[0]          # [targets, T-1], steps k = 1..T-1
    return out


def _activity_newton(net: Network, seed: int, s: NetMeasureConfig, task_cfg: TaskConfig) -> dict:
    out = {}
    for pairing in PAIRINGS:
        r = network.activity_newton_cosines({seed: net}, measure_perturbation(s, task_cfg), targets=s.newton_targets,
                                             stride=s.newton_stride, damping=PAPER_DAMPING, task_cfg=task_cfg,
                                             pairing=pairing)
        out["steps"] = r["steps"]
        out[f"cos_newton_{pairing}"] = r["cos_newton"][0]                   # [targets, K]
        out[f"cos_first_order_{pairing}"] = r["cos_first_order"][0]
    return out


def _jacobian(net: Network, seed: int, s: NetMeasureConfig, task_cfg: TaskConfig) -> dict:
    r = network.jacobian_profile({seed: net}, measure_perturbation(s, task_cfg), targets=s.jacobian_targets,
                                  lags=s.jacobian_lags,
                                  stride=s.jacobian_stride, norm="spectral", closed_loop=True, rates=True,
                                  task_cfg=task_cfg)
    out = {"steps": r["steps"], "lags": np.asarray(s.jacobian_lags)}
    for L in s.jacobian_lags:
        out[f"norm_on_L{L}"] = r[(True, L)][0]                                # [targets, K]
        out[f"norm_off_L{L}"] = r[(False, L)][0]
        out[f"norm_loop_L{L}"] = r[("loop", L)][0]      # any delay: the error history joins the state
        for key, name in ((True, "on"), (False, "off"), ("loop", "loop")):   # dr_{k+L}/dr_k
            out[f"norm_rate_{name}_L{L}"] = r[("rate", key, L)][0]
    return out


def _wrec_newton(net: Network, seed: int, s: NetMeasureConfig, task_cfg: TaskConfig) -> dict:
    net64 = net.to(dtype=torch.float64)
    if max(s.wrec_steps) >= task_cfg.T:
        raise ValueError(f"wrec_steps must lie below the trial length {task_cfg.T}, got {s.wrec_steps!r}")
    x0s = network.activity_x0s(net64.cfg.n, task_cfg)
    cells = (len(s.wrec_targets), 2, len(s.wrec_steps))
    per_damping = cells + (len(s.wrec_dampings),)
    out = {k: np.full(cells, np.nan) for k in ("cos_rflo_grad", "cos_rflo_gn", "cos_grad_gn")}
    out.update({k: np.full(per_damping, np.nan) for k in ("cos_rflo_newton", "cos_grad_newton", "residual",
                                                          "seconds")})
    out["minres_info"] = np.full(per_damping, -99, dtype=np.int64)
    out["iters"] = np.zeros(per_damping, dtype=np.int64)
    for i, tgt in enumerate(s.wrec_targets):
        tr = network.test_trial(task_cfg, tgt, measure_perturbation(s, task_cfg))
        x0 = x0s[tgt:tgt + 1]
        for c, on in enumerate((True, False)):
            for j, t in enumerate(s.wrec_steps):
                d_rflo = network.rflo_direction(net64, tr, x0, int(t), controller_on=on)
                for m, lam in enumerate(s.wrec_dampings):
                    w = wrec_second_order(net64, tr, x0, int(t), controller_on=on, damping=float(lam),
                                          maxiter=s.wrec_maxiter, rtol=s.wrec_rtol)
                    if m == 0:
                        out["cos_rflo_grad"][i, c, j] = network.flat_cosine(d_rflo, -w.grad)
                        out["cos_rflo_gn"][i, c, j] = network.flat_cosine(d_rflo, w.gauss_newton)
                        out["cos_grad_gn"][i, c, j] = network.flat_cosine(-w.grad, w.gauss_newton)
                    out["cos_rflo_newton"][i, c, j, m] = network.flat_cosine(d_rflo, w.newton)
                    out["cos_grad_newton"][i, c, j, m] = network.flat_cosine(-w.grad, w.newton)
                    out["residual"][i, c, j, m] = w.residual
                    out["minres_info"][i, c, j, m] = w.minres_info
                    out["iters"][i, c, j, m] = w.minres_iters
                    out["seconds"][i, c, j, m] = w.seconds
    out.update(targets=np.asarray(s.wrec_targets), steps=np.asarray(s.wrec_steps),
               dampings=np.asarray(s.wrec_dampings, dtype=np.float64), controller_on=np.asarray([True, False]))
    return out


def _matched_loop(net: Network, seed: int, s: NetMeasureConfig, task_cfg: TaskConfig) -> dict:
    return loop_alignment(net, seed=seed, trials=s.matched_trials, go_step=task_cfg.go_step,
                          rotation_deg=measure_perturbation(s, task_cfg), task_cfg=task_cfg)


def _online(net: Network, seed: int, s: NetMeasureConfig, task_cfg) -> dict:
    """Figure 1a: the frozen network on the perturbed test conditions (each ``online_repeats``
    times, initial states from ``Generator(EVAL_SEED)``, the same for every network), controller
    on and off: per trial the loss mean E^2 (``loss_on``, ``loss_off``) and its condition."""
    net64 = net.to(dtype=torch.float64)
    task = task_for_config(task_cfg)
    base = task.test_conditions(torch.float64)
    pert = measure_perturbation(s, task_cfg)
    trials = task.perturb(base, Rotation(pert) if isinstance(pert, float) else pert)
    C = base.batch_shape[0]
    idx = torch.arange(C * s.online_repeats) % C
    trials = trials.select(idx)
    x0 = draw_x0(net64.cfg.n, trials.batch_shape, torch.Generator().manual_seed(EVAL_SEED), torch.float64)
    out = {"condition": idx.numpy()}
    with torch.no_grad():
        for on in (True, False):
            E = rollout(net64, trials, controller_on=on, x0=x0).E          # [T+1, B, 2]
            out[f"loss_{'on' if on else 'off'}"] = E.pow(2).mean(dim=(0, 2)).cpu().numpy()
    return out


_COMPUTE = {"activity": _activity, "activity_newton": _activity_newton, "jacobian": _jacobian,
            "wrec_newton": _wrec_newton, "matched_loop": _matched_loop, "online": _online}


def compute(measure: str, net: Network, seed: int, s: NetMeasureConfig, task_cfg: TaskConfig) -> tuple[dict, float]:
    """The records of one measure on one network, and the seconds it took."""
    if measure not in ALL_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(ALL_MEASURES)}, got {measure!r}")
    t0 = time.perf_counter()
    rec = _COMPUTE[measure](net, int(seed), s, task_cfg)
    return rec, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Per-network summaries (what the verdicts pair): records -> (a, b) of one network
# ---------------------------------------------------------------------------------------------

def _check_pairing(pairing: str) -> None:
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")


def online_values(rec: dict) -> tuple[float, float]:
    """Figure 1a: (mean loss with the controller off, mean loss with it on) over the trials."""
    return float(np.mean(rec["loss_off"])), float(np.mean(rec["loss_on"]))


def activity_values(rec: dict, pairing: str, go_step: int) -> tuple[float, float]:
    """Figure 2c: (mean cos(u_k, -dL/dr_j) over targets and movement steps k >= go_step, the same
    for the null model), controller on."""
    _check_pairing(pairing)
    sl = slice(go_step - 1, None)                    # arrays hold steps k = 1..T-1
    return (float(np.mean(rec[f"cos_trial_{pairing}_on"][:, sl])),
            float(np.mean(rec[f"cos_trial_null_{pairing}_on"][:, sl])))


def activity_newton_values(rec: dict, pairing: str, go_step: int) -> tuple[float, float]:
    """Figure 5b: (mean cos(u_k, Newton), mean cos(u_k, -g)) over targets and movement steps."""
    _check_pairing(pairing)
    mov = np.asarray(rec["steps"]) >= go_step
    return (float(np.mean(rec[f"cos_newton_{pairing}"][:, mov])),
            float(np.mean(rec[f"cos_first_order_{pairing}"][:, mov])))


def jacobian_values(rec: dict, lag: int, go_step: int, *, closed_loop: bool = False,
                    rates: bool = False) -> tuple[float, float]:
    """Figure 4a: (mean norm of dx_{k+L}/dx_k with the controller on, the same off) over targets
    and movement start steps k >= go_step (where k + L <= T); ``closed_loop``: the controller-on
    value through the loop; ``rates``: the rate Jacobian dr_{k+L}/dr_k instead."""
    pre = "norm_rate_" if rates else "norm_"
    key = f"{pre}{'loop' if closed_loop else 'on'}_L{lag}"
    if key not in rec:
        if rates and f"norm_on_L{lag}" in rec:
            raise ValueError(f"the rate Jacobian is not stored in this unit (computed before it was measured)")
        raise ValueError(f"lag must be one of {', '.join(str(int(L)) for L in rec['lags'])}, got {lag!r}")
    mov = np.asarray(rec["steps"]) >= go_step
    return float(np.nanmean(rec[key][:, mov])), float(np.nanmean(rec[f"{pre}off_L{lag}"][:, mov]))


def damping_index(rec: dict, damping: float) -> int:
    d = np.asarray(rec["dampings"], dtype=np.float64)
    hit = np.flatnonzero(np.isclose(d, damping, rtol=1e-9, atol=0.0))
    if not hit.size:
        raise ValueError(f"damping must be one of {', '.join(f'{x:g}' for x in d)}, got {damping!r}")
    return int(hit[0])


def wrec_converged(rec: dict, tol: float) -> np.ndarray:
    """Per solve [targets, controller (on, off), steps, dampings]: MINRES reported success and
    the true relative residual is at most ``tol``."""
    res = np.asarray(rec["residual"], dtype=np.float64)
    return (np.asarray(rec["minres_info"]) == 0) & np.isfinite(res) & (res <= tol)


def _step_index(rec: dict, step: int | None) -> slice | list[int]:
    if step is None:
        return slice(None)
    steps = [int(k) for k in np.asarray(rec["steps"])]
    if int(step) not in steps:
        raise ValueError(f"step must be one of {', '.join(map(str, steps))}, got {step!r}")
    return [steps.index(int(step))]


def wrec_values(rec: dict, damping: float, tol: float, *, direction: str = "newton",
                converged_only: bool = True, step: int | None = None) -> dict:
    """The W_rec comparison of one network: {"on", "off"} the mean cos(RFLO's update, direction)
    with the controller on and off over the (target, step) cells used, "cells" how many,
    "max_residual" the largest true residual among their solves. ``direction``: "newton" (the
    damped Newton step at ``damping``) or "gradient" (first order, no solve). With
    ``converged_only`` a cell is used only when both its solves (on and off) converged; with
    none, on and off are NaN (the network drops out of the verdict). ``step``: only the cells
    at that step of the trial (one of ``rec["steps"]``; None: all)."""
    k = _step_index(rec, step)
    if direction == "gradient":
        g = np.asarray(rec["cos_rflo_grad"])[:, :, k]
        return {"on": float(g[:, 0].mean()), "off": float(g[:, 1].mean()), "cells": int(g[:, 0].size),
                "max_residual": float("nan")}
    if direction != "newton":
        raise ValueError(f"direction must be 'newton' or 'gradient', got {direction!r}")
    m = damping_index(rec, damping)
    cos = np.asarray(rec["cos_rflo_newton"])[..., m][:, :, k]          # [targets, 2, steps]
    res = np.asarray(rec["residual"])[..., m][:, :, k]
    ok = wrec_converged(rec, tol)[..., m][:, :, k]
    use = (ok[:, 0] & ok[:, 1]) if converged_only else np.ones(ok[:, 0].shape, dtype=bool)
    if not use.any():
        return {"on": float("nan"), "off": float("nan"), "cells": 0, "max_residual": float("nan")}
    return {"on": float(cos[:, 0][use].mean()), "off": float(cos[:, 1][use].mean()), "cells": int(use.sum()),
            "max_residual": float(np.max(np.stack([res[:, 0][use], res[:, 1][use]])))}


def wrec_convergence(rec: dict, tol: float) -> list[dict]:
    """Per damping of the grid: {"damping", "converged", "solves", "max_residual",
    "median_residual", "max_iters"} over every solve of one network."""
    ok = wrec_converged(rec, tol)
    res = np.asarray(rec["residual"], dtype=np.float64)
    it = np.asarray(rec["iters"])
    return [{"damping": float(d), "converged": int(ok[..., m].sum()), "solves": int(ok[..., m].size),
             "max_residual": float(np.nanmax(res[..., m])), "median_residual": float(np.nanmedian(res[..., m])),
             "max_iters": int(it[..., m].max())} for m, d in enumerate(np.asarray(rec["dampings"]))]


def smallest_converged_damping(recs: list[dict], tol: float) -> float | None:
    """The smallest damping of the grid at which every solve of every network in ``recs``
    converged (None if there is none, or no network)."""
    if not recs:
        return None
    grids = [tuple(np.asarray(r["dampings"], dtype=np.float64)) for r in recs]
    if len(set(grids)) != 1:
        raise ValueError("the networks' W_rec files were computed on different damping grids")
    for m, d in enumerate(grids[0]):
        if all(wrec_converged(r, tol)[..., m].all() for r in recs):
            return float(d)
    return None
