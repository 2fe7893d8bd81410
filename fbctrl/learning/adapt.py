"""Trial-by-trial adaptation of W_rec to a visuomotor rotation (Methods, "Adaptation"), many runs in lockstep.

R independent runs (network seeds x rotations x learning rates x controller on/off) share one
learning rule and advance together, one trial of batch 1 per run at a time, each with its own
W_rec (batched products). Every run draws its targets and initial states from its own
``torch.Generator(seed)``, so a run gives the same numbers alone or in a group.

Per trial and run the engine records:

- ``train_loss``: mean E^2 of the adaptation trial (controller as in the condition);
- ``test_loss``: mean E^2 over the 8 *rotated* centre-out targets with the controller OFF
  (what the network has learned), ``aftereffect_loss``: the same on the un-rotated targets;
- ``dW_trial``: |W_end - W_start| of the trial, ``dW_path``: sum_t |dW_t| over its steps,
  ``dW_total``: |W - W_initial| since adaptation began (Frobenius norms);
- with ``align=True`` (any rule; on every ``align_every``-th trial): ``align_local`` [trials, T] = cos(dW_rule(t), -dl_t/dW) with the
  exact online gradient at the same weights and state, and ``align_global`` [trials] =
  cos(sum_t dW_rule(t), -dL_trial/dW).
"""

from __future__ import annotations

import functools
import io
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..cli import output_file
from ..core.bptt import forward, forward_open_loop
from ..core.checkpoint import atomic_write_bytes, load_checkpoint, network_spec, read_sidecar
from ..core.model import Network, draw_x0
from ..core.task import TaskConfig, Trials, centre_out_reaches
from ..core.tasks import (FrequencyShift, Perturbation, Reach, Rotation, Task, make_task, task_config_from_dict,
                          task_for_config)
from . import ckernels
from .rates import PAPER_LR, paper_lr
from .rules import RULES, OnlineBPTT, TrialState, make_rule, rule_class

__all__ = ["RunSpec", "AdaptResult", "adapt", "DivergenceError", "feedback_matrix", "cli_adapt", "paper_lr", "TEST_X0_SEED",
           "initial_test_losses"]


ERROR_STARTS = ("zero", "published")


TEST_X0_SEED = 999    # initial states of the test sets (the same for every run and condition)


class DivergenceError(FloatingPointError):
    """A run's loss became NaN or grew past the bound."""


@dataclass(frozen=True)
class RunSpec:
    """One adaptation run: which network (index into the stacked networks), condition, rate, and
    the perturbation: ``perturbation`` if given (e.g. a ``FrequencyShift`` on the limit-cycle
    task), else the rotation by ``rotation_deg`` (the paper)."""

    net_index: int = 0
    controller_on: bool = True
    rotation_deg: float = 30.0
    lr: float = PAPER_LR[("rflo", True)]
    seed: int = 0
    perturbation: Perturbation | None = None

    @property
    def applied(self) -> Perturbation:
        """The perturbation this run adapts to."""
        return self.perturbation if self.perturbation is not None else Rotation(self.rotation_deg)

    def __post_init__(self):
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not math.isfinite(self.rotation_deg):
            raise ValueError(f"rotation_deg must be a finite number of degrees, got {self.rotation_deg}")


@dataclass
class AdaptResult:
    rule: str
    runs: list[RunSpec]
    records: dict[str, np.ndarray]  # name -> [R, trials] (or [R, trials, T])
    diverged: np.ndarray            # [R] trial index of divergence, -1 if none
    wall_time: float = 0.0
    meta: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.records[key]

    def efficiency(self) -> np.ndarray:
        """|W_end - W_start| / sum_t |dW_t| over the whole adaptation, per run [R]."""
        return self.records["dW_total"][:, -1] / np.maximum(self.records["dW_path"].sum(1), 1e-30)


def feedback_matrix(net: Network) -> torch.Tensor:
    """RFLO's learning-signal matrix B [*, n, 2]: M * W_fb with feedback, W_out^T without."""
    W_f = net.W_fb * net.mask
    has_fb = (net.mask.reshape(*net.mask.shape[:-2], -1).abs().sum(-1) > 0)
    if net.stacked:
        return torch.where(has_fb.reshape(-1, 1, 1), W_f, net.W_out.mT)
    return W_f if bool(has_fb) else net.W_out.mT


def _gather_runs(nets: Network, runs: list[RunSpec]) -> Network:
    idx = torch.tensor([r.net_index for r in runs])
    if not nets.stacked:
        if any(r.net_index != 0 for r in runs):
            raise ValueError("net_index must be 0 with a single network")
        nets = nets.replace(**{k: v.unsqueeze(0) for k, v in nets.tensors().items()})
    if idx.max() >= nets.n_networks or idx.min() < 0:
        raise ValueError(f"net_index must lie in 0..{nets.n_networks - 1}")
    return nets.replace(**{k: v[idx].clone() for k, v in nets.tensors().items()})


def _batch_cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine per row of [N, ...] tensors (dot products by bmm: no full-size temporaries)."""
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    dot = torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).reshape(-1)
    return dot / (torch.linalg.vector_norm(a, dim=1) * torch.linalg.vector_norm(b, dim=1)).clamp_min(1e-30)


def adapt(nets: Network, rule: str, runs: list[RunSpec], *, trials: int = 500, delay: int | None = None,
          task_cfg: TaskConfig = TaskConfig(), align: bool = False, align_every: int = 1, test_every: int = 1,
          on_divergence: str = "raise", divergence_factor: float = 100.0, progress: bool = True,
          bptt_weights: str = "history", device=None,
          dtype=torch.float32, frozen: bool = False, keep_weights: tuple = (), error_start: str = "zero",
          task: Task | None = None) -> AdaptResult:
    """Adapt W_rec of every run for ``trials`` trials, online (Methods, "Adaptation").

    ``nets``: one network or a stacked set (``RunSpec.net_index`` picks one per run).
    ``on_divergence``: "raise" (DivergenceError naming trial, rule and rate) or "mark" (the run
    is frozen and its records filled with NaN from that trial on; used by the learning-rate
    sweep). A run diverges when its training loss is NaN/inf or exceeds ``divergence_factor``
    times the larger of 1 and its first trial's loss.
    ``bptt_weights``: "history" (exact; default) or "current" (see ``rules.OnlineBPTT``).
    ``frozen``: compute every step's update (and the alignment) but never apply it, so every
    trial runs from the same W_rec (matched-state analyses; RFLO only).
    ``keep_weights``: trial indices t at which W_rec (before trial t; t = ``trials``: after the
    last) is kept in ``result.weights[t]`` [R, n, n].
    ``error_start``: the integrated error of each adaptation trial starts at "zero" (the book's
    choice, Methods) or, as the published code does, at the first velocity output
    e_0 = W_out r_0 + b_out ("published"; a robustness row). No weight gradient flows through
    e_0 (it depends on the random initial state only); the controller feeds it back like any
    later error. Test trials always start from zero.
    ``task`` (default: the task of ``task_cfg``, reaching for a ``TaskConfig``): each trial is one of
    its test conditions at random.
    """
    _check_args(rule, runs, trials, on_divergence, error_start, frozen, keep_weights)
    device = device if device is not None else nets.device
    net = _gather_runs(nets, runs).to(device=device, dtype=dtype)
    d = net.cfg.delay if delay is None else int(delay)
    if d < 0:
        raise ValueError(f"delay must be >= 0 steps, got {d}")
    lr = torch.tensor([r.lr for r in runs], dtype=net.dtype, device=net.device)   # each run's rate [R]
    task = task if task is not None else task_for_config(task_cfg)    # reaching for a TaskConfig
    base = task.test_conditions(dtype=dtype).to(device=device)              # [T, conditions, .]
    perturbed = [task.perturb(base, r.applied) for r in runs]               # test loss: perturbed conditions
    tests = _TestSets(net, perturbed, base)
    eng = _Engine(net, rule, runs, base, perturbed, delay=d, align=align, frozen=frozen,
                  bptt_weights=bptt_weights, error_start=error_start)
    rec = _new_records(len(runs), trials, base.T, align)
    div = _Divergence(rule, runs, on_divergence, divergence_factor, device=device, dtype=dtype)
    kept = {}
    t_start = time.perf_counter()
    bar = tqdm(range(trials), disable=not progress, desc=f"adapt {rule} x{len(runs)}", unit="trial",
               dynamic_ncols=True)
    for t in bar:
        if t in keep_weights:
            kept[t] = eng.W.detach().clone()
        _trial(t, eng, tests, div, rec, lr, trials=trials, align_every=align_every, test_every=test_every,
               bar=bar, progress=progress)
    bar.close()
    if trials in keep_weights:
        kept[trials] = eng.W.detach().clone()
    res = AdaptResult(rule=rule, runs=list(runs), records=rec, diverged=div.diverged,
                      wall_time=time.perf_counter() - t_start,
                      meta={"delay": d, "trials": trials, "lr_effective": lr.cpu().tolist(),
                            "error_start": error_start, "compute_path": eng.compute_path()})
    res.W_final = eng.W
    res.weights = kept
    return res


def _check_args(rule, runs, trials, on_divergence, error_start, frozen, keep_weights) -> None:
    cls = rule_class(rule)                              # raises the clear error for an unknown rule
    if trials <= 0:
        raise ValueError(f"trials must be a positive integer, got {trials}")
    if on_divergence not in ("raise", "mark"):
        raise ValueError("on_divergence must be 'raise' or 'mark'")
    if not runs:
        raise ValueError("runs must list at least one run")
    if error_start not in ERROR_STARTS:
        raise ValueError(f"error_start must be one of {', '.join(ERROR_STARTS)}, got {error_start!r}")
    if frozen and not cls.supports_frozen:
        able = ", ".join(repr(r) for r in RULES if rule_class(r).supports_frozen)
        raise ValueError(f"frozen adaptation is implemented for rule {able} only")
    if any(not 0 <= int(t) <= trials for t in keep_weights):
        raise ValueError(f"keep_weights must be trial indices in 0..{trials}, got {tuple(keep_weights)}")


def _new_records(R: int, trials: int, T: int, align: bool) -> dict[str, np.ndarray]:
    keys = ["train_loss", "test_loss", "aftereffect_loss", "dW_trial", "dW_path", "dW_total", "target"]
    rec = {k: np.full((R, trials), np.nan, dtype=np.float64) for k in keys}
    if align:
        rec["align_local"] = np.full((R, trials, T), np.nan, dtype=np.float32)
        rec["align_global"] = np.full((R, trials), np.nan, dtype=np.float64)
    return rec


class _TestSets:
    """The test conditions of every run (the 8 centre-out reaches), perturbed (test loss: rotated)
    and not (after-effect loss), from the same initial states for every run (``TEST_X0_SEED``),
    controller off. ``perturbed``: each run's perturbed conditions."""

    def __init__(self, net: Network, perturbed: list[Trials], base: Trials):
        self.net = net
        x0 = draw_x0(net.cfg.n, (base.batch_shape[0],), torch.Generator().manual_seed(TEST_X0_SEED), net.dtype,
                     net.device)
        rotated = Trials.stack(perturbed)
        unrotated = Trials.stack([base] * len(perturbed))
        # both sets as one batch [T, R, 2 x 8, .] (rotated first): one forward pass per test
        self.both = replace(rotated, **{f: torch.cat([getattr(rotated, f), getattr(unrotated, f)], dim=2)
                                        for f in ("inputs", "vstar", "vref", "push")},
                            **{f: torch.cat([getattr(rotated, f), getattr(unrotated, f)], dim=1)
                               for f in ("start", "end", "target")}, rotation_deg=float("nan"), freq=None)
        self.n_rot = base.batch_shape[0]
        self.x0 = x0.unsqueeze(0).expand(len(perturbed), -1, -1).repeat(1, 2, 1)

    def losses(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(test loss [R], after-effect loss [R]) with W_rec = W: mean E^2 over each set's trials."""
        E = forward_open_loop(self.net.replace(W_rec=W), self.both, self.x0).E
        m = self.n_rot

        def mse(Es):
            return torch.linalg.vector_norm(Es, dim=(0, 2, 3)).square() / Es[:, 0].numel()
        return mse(E[:, :, :m]), mse(E[:, :, m:])


class _Engine:
    """What persists across the trials of R runs in lockstep: the weights, the trial buffers and
    their per-step views, the rule and (for the alignment) the exact online gradient. The rule is
    used through its interface only (``rules.LearningRule``: its flags and the methods they
    promise), never by its type."""

    def __init__(self, net: Network, rule: str, runs: list[RunSpec], base: Trials, perturbed: list[Trials], *,
                 delay: int, align: bool, frozen: bool, bptt_weights: str, error_start: str):
        cfg, device, dtype = net.cfg, net.device, net.dtype
        self.R, self.n, self.T = len(runs), cfg.n, base.T
        self.alpha, self.dt, self.d, self.n_targets = cfg.alpha, cfg.dt, delay, base.batch_shape[0]
        self.align, self.frozen, self.error_start = align, frozen, error_start
        self.device, self.dtype = device, dtype
        ctrl = torch.tensor([float(r.controller_on) for r in runs], dtype=dtype, device=device).reshape(self.R, 1, 1)
        self.vref_rot = torch.stack([p.vref for p in perturbed])          # [R, T, conditions, 2]
        self.gens = [torch.Generator().manual_seed(int(r.seed)) for r in runs]
        self.W_out, W_f = net.W_out, (net.W_fb * net.mask)
        self.W_outT, W_fT = self.W_out.mT.contiguous(), W_f.mT.contiguous()
        self.W = net.W_rec.clone()
        self.W_init = self.W.clone()
        self.b_out = net.b_out.unsqueeze(1)
        # drive_all [R, 8, T, n]: W_in s_k + b for each run and target
        self.drive_all = torch.matmul(base.inputs.transpose(0, 1), net.W_in.mT.unsqueeze(1)) + net.b[:, None, None, :]
        self.W_fT_ctrl = W_fT * ctrl                              # zero for runs with the controller off
        self._make_buffers()
        self._make_rules(net, rule, bptt_weights)

    def _make_buffers(self) -> None:
        R, n, T, device, dtype = self.R, self.n, self.T, self.device, self.dtype
        # the weight history is kept for the alignment only: online BPTT keeps its own in low-rank
        # form (rules.OnlineBPTT)
        X = torch.empty(R, T + 1, n, device=device, dtype=dtype)
        Rh, aD = torch.empty_like(X), torch.empty_like(X)
        E = torch.zeros(R, T + 1, 2, device=device, dtype=dtype)
        Wh = torch.empty(R, T + 1, n, n, device=device, dtype=dtype) if self.align else None
        self.state = TrialState(X=X, Rh=Rh, aD=aD, E=E, Wh=Wh, W_out=self.W_out, alpha=self.alpha, dt=self.dt)
        self.h = torch.empty(R, 1, n, device=device, dtype=dtype)
        self.ar = torch.arange(R, device=device)
        # per-step views of the persistent buffers, made once (no slicing inside the step loop)
        self.drive = torch.empty(R, T, n, device=device, dtype=dtype)
        self.vref = torch.empty(R, T, 2, device=device, dtype=dtype)
        self.err = torch.empty_like(self.vref)
        self.views = tuple(tuple(b.split(1, dim=1)) for b in (X, Rh, aD, E))
        self.drive_v, self.err_v = self.drive.split(1, dim=1), self.err.split(1, dim=1)

    def _make_rules(self, net: Network, rule: str, bptt_weights: str) -> None:
        R, n, T, device, dtype = self.R, self.n, self.T, self.device, self.dtype
        learner = make_rule(rule, R, n, T, B=feedback_matrix(net), device=device, dtype=dtype,
                            bptt_weights=bptt_weights)
        # W_rec kept in low-rank form within each trial and formed once at its end
        # (``learner.defers_weights``); on trials whose alignment is measured, a rule that
        # ``adds_in_place`` adds dW without forming it
        learner.W_current = self.W
        self.learner = learner
        self.exact = None
        if self.align and not learner.computes_exact_gradient:
            self.exact = OnlineBPTT(R, n, T, device=device, dtype=dtype)
        # a rule that ``aligns_by_products`` (rules.RFLO.products_with_rates) gives its alignment
        # from its trace's structure: only its per-step signals and |dW_k| are kept, not the n x n updates
        self.by_products = self.align and learner.aligns_by_products
        self.dW_hist = torch.empty(R, T, n, n, device=device, dtype=dtype) if (self.align and not self.by_products) \
            else None
        self.dW_norms = None
        # one run on a CPU with a rule that offers a NumPy step (rules.RFLO.one_run_numpy):
        # _steps_one_run, on NumPy views of these same buffers (made on first use)
        # (RFLO), or a compiled trial step (rules.OnlineBPTT.one_run_compiled)
        self.one_run = (R == 1 and torch.device(device).type == "cpu"
                        and (learner.one_run_numpy or learner.one_run_compiled) and learner.one_run_ok(self.alpha))
        self._np_views = None
        if self.by_products:
            learner.record = torch.zeros(R, T, n, device=device, dtype=dtype)
            self.dW_norms = torch.zeros(R, T, device=device, dtype=dtype)

    def begin_trial(self) -> torch.Tensor:
        """Draw every run's target and initial state (from its own generator, in that order) and
        set up the trial's inputs, references, first state and error; returns the targets [R]."""
        st, (_, Rv, _, Ev) = self.state, self.views
        tgt = torch.tensor([int(torch.randint(self.n_targets, (1,), generator=g)) for g in self.gens])
        x0 = torch.stack([draw_x0(self.n, (), g, self.dtype) for g in self.gens]).to(self.device)
        tgt_d = tgt.to(self.device)
        self.drive.copy_(self.drive_all[self.ar, tgt_d])                   # [R, T, n]
        self.vref.copy_(self.vref_rot[self.ar, :, tgt_d])                  # [R, T, 2]
        torch.sub(self.vref, self.b_out, out=self.err).mul_(self.dt)       # dt (vref_k - b_out)
        self.W_trial_start = self.W.clone()
        self.frozen_sum = torch.zeros_like(self.W) if self.frozen else None
        self.path = torch.zeros(self.R, device=self.device, dtype=self.dtype)
        st.X[:, 0] = x0
        torch.clamp_min(x0, 0.0, out=st.Rh[:, 0])
        torch.sign(st.Rh[:, 0], out=st.aD[:, 0]).mul_(self.alpha)
        st.E.zero_()
        if self.error_start == "published":                     # e_0 = W_out r_0 + b_out
            torch.baddbmm(self.b_out, Rv[0], self.W_outT, out=Ev[0])
        return tgt

    def run_trial(self, lr_alive: torch.Tensor, do_align: bool) -> None:
        """The trial's T steps with rates ``lr_alive`` [R] (0 for a diverged run), W_rec formed at its end."""
        learner = self.learner
        learner.begin_trial(self.state)
        if self.exact is not None:
            self.exact.begin_trial(self.state)
        lowrank = learner.defers_weights and not do_align and not self.frozen
        fused = learner.adds_in_place and (not do_align or self.by_products)
        if lowrank and self.one_run:
            with np.errstate(all="ignore"):          # a diverging run overflows silently, as in PyTorch
                _steps_one_run(self, float(lr_alive[0]))
        else:
            _steps(self, lr_alive, lowrank, fused, do_align)
        if lowrank:
            learner.materialize(self.state, self.W)
        if self.state.Wh is not None:
            self.state.Wh[:, self.T] = self.W

    def compute_path(self) -> str:
        """Which code ran the trials (provenance): "compiled" (one run on a CPU through
        ``ckernels``), "numpy" (one run, the NumPy loops) or "pytorch" (runs in lockstep, a GPU,
        or a rule without a one-run path). Trials whose alignment is measured always run the
        PyTorch step; all paths agree to float rounding (tests)."""
        one = self.state.X.device.type == "cpu" and self.R == 1 and (
            self.one_run or self.learner.numpy_sweep)
        if not one:
            return "pytorch"
        return "compiled" if ckernels.available(self.state.X.dtype) else "numpy"

    def _compiled_bptt_views(self, v: dict) -> None:
        """Arguments of the compiled online BPTT step (``ckernels``: bptt_trial_step) on these
        same buffers, the rule's included."""
        learner, st, p = self.learner, self.state, ckernels.ptr
        rv = learner.one_run_compiled_views(st)
        dt = v["X"].dtype
        args = _trial_ptrs(v) + [p(rv[k]) for k in ("Wcat", "C", "S", "HX", "aDd", "gram", "pows", "dpow", "g")]
        args += [p(v["h"]), p(rv["u"])]
        step = ckernels.function("bptt_trial_step", dt)
        v["bptt"] = dict(step=step, args=args, rv=rv,
                         norm=ckernels.function("bptt_norm", dt))

    def numpy_views(self) -> dict:
        """NumPy views (same memory) of run 0's trial buffers and weights, and the rule's
        (``learner.one_run_views``), made once: every buffer lives as long as the engine."""
        if self._np_views is None:
            st = self.state
            ctrl = bool(self.W_fT_ctrl.abs().sum() > 0)
            self._np_views = dict(
                X=st.X[0].numpy(), Rh=st.Rh[0].numpy(), aD=st.aD[0].numpy(), E=st.E[0].numpy(),
                drive=self.drive[0].numpy(), err=self.err[0].numpy(), W_out=self.W_out[0].contiguous().numpy(),
                # W_f contiguous (fixed during adaptation): the compiled kernels read it row by row
                W_f=np.ascontiguousarray(self.W_fT_ctrl[0].numpy()) if ctrl else None, h=self.h[0, 0].numpy(),
                t1=np.empty(self.n, dtype=self.h.numpy().dtype), t2=np.empty(2, dtype=self.h.numpy().dtype),
                rule=self.learner.one_run_views(st) if self.learner.one_run_numpy else {})
            v, rv = self._np_views, self._np_views["rule"]
            if self.learner.one_run_compiled:
                self._compiled_bptt_views(v)
            elif ckernels.available(v["X"].dtype):     # the compiled trial (ckernels), on the same buffers
                p = ckernels.ptr
                args = _trial_ptrs(v) + [p(rv[k]) for k in ("W_start", "CA", "rho", "BT", "up", "down", "g", "gCA")]
                args += [p(v["h"]), p(rv["s"]), p(rv["t1"])]
                v["c"] = (functools.partial(ckernels.function("rflo_trial", v["X"].dtype), self.n), args)
        return self._np_views

    def train_loss(self) -> np.ndarray:
        """Mean E^2 of the finished trial per run [R] (float64)."""
        return self.state.E.pow(2).mean(dim=(1, 2)).cpu().numpy().astype(np.float64)

    def alignment(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(align_local [R, T], align_global [R]) of the finished trial: the exact online gradients
        of every step at the weights and states that really occurred, all from one backward sweep."""
        st, T = self.state, self.T
        if self.by_products:
            M = self.learner.products_with_rates(st, T)
            dsum = self.frozen_sum if self.frozen else self.W - self.W_trial_start
            return self.exact.alignment_from_products(st, T, M, self.dW_norms, dsum)
        exact = self.exact if self.exact is not None else self.learner
        return exact.alignment(st, T, self.dW_hist)


def _steps(eng: _Engine, lr_alive: torch.Tensor, lowrank: bool, fused: bool, do_align: bool) -> None:
    """The T steps of one trial: forward step k of every run, then the rule's update (low-rank:
    recorded in the rule's factors; fused: added to W in place; else dW formed and added). The
    measured hot path (``python -m fbctrl bench``): everything it reads is a local, and per step
    it calls nothing but the tensor operations and the rule."""
    learner, state, W, h, path = eng.learner, eng.state, eng.W, eng.h, eng.path
    (Xv, Rv, aDv, Ev), drive_v, err_v = eng.views, eng.drive_v, eng.err_v
    W_fT_ctrl, W_outT, Wh, d, alpha, dt, R = eng.W_fT_ctrl, eng.W_outT, state.Wh, eng.d, eng.alpha, eng.dt, eng.R
    frozen, frozen_sum, W_trial_start = eng.frozen, eng.frozen_sum, eng.W_trial_start
    dW_hist, dW_norms = eng.dW_hist, eng.dW_norms
    for k in range(eng.T):
        if Wh is not None:
            Wh[:, k] = W
        # forward step k (batch 1 per run)
        if lowrank:
            learner.recurrent_input(state, k, drive_v[k], h)
        else:
            torch.baddbmm(drive_v[k], Rv[k], W.mT, out=h)
        if k - d >= 0:
            h.baddbmm_(Ev[k - d], W_fT_ctrl)
        xn = Xv[k + 1]
        torch.lerp(Xv[k], h, alpha, out=xn)
        torch.clamp_min(xn, 0.0, out=Rv[k + 1])
        torch.sign(Rv[k + 1], out=aDv[k + 1]).mul_(alpha)     # alpha relu'(x_{k+1})
        # E_{k+1} = E_k + dt (vref_k - b_out - W_out r_{k+1})
        En = Ev[k + 1]
        torch.add(Ev[k], err_v[k], out=En).baddbmm_(Rv[k + 1], W_outT, alpha=-dt)
        # learning
        if lowrank:
            path.add_(learner.apply_step(state, k, lr_alive))
            continue
        if fused:
            dn = learner.add_step(state, k, lr_alive, W)
            path.add_(dn)
            if do_align:
                dW_norms[:, k] = dn
            if frozen:
                frozen_sum.add_(W).sub_(W_trial_start)   # the updates are summed, never applied
                W.copy_(W_trial_start)
            continue
        dW = learner.step(state, k, lr_alive)
        if do_align:
            dW_hist[:, k] = dW
        path.add_(dW.reshape(R, -1).norm(dim=1))
        if frozen:
            frozen_sum.add_(dW)
        else:
            W.add_(dW)


def _steps_one_run(eng: _Engine, lr: float) -> None:
    """:func:`_steps` (low-rank branch) for ONE run on a CPU, in NumPy on the same buffers (views
    from :meth:`_Engine.numpy_views`), calling the rule's NumPy step (``recurrent_input_one``,
    ``apply_step_one``). At batch 1 every call is a few hundred numbers, so the per-call cost
    dominates, and NumPy's is about half of PyTorch's (``python -m fbctrl bench adapt``,
    rflo_c). Same arithmetic as :func:`_steps`; results agree to float rounding (tests)."""
    v = eng.numpy_views()
    learner, rv = eng.learner, v["rule"]
    if "bptt" in v:
        _bptt_steps_compiled(eng, v["bptt"], lr)
        return
    if "c" in v:                                        # compiled: the same loop (ckernels)
        fn, args = v["c"]
        path = fn(eng.T, eng.d, eng.alpha, eng.dt, lr, rv["decay"], *args)
        learner.finish_compiled_trial(eng.T)
        eng.path.add_(path)
        return
    X, Rh, aD, E, drive, err = v["X"], v["Rh"], v["aD"], v["E"], v["drive"], v["err"]
    W_f, W_out, h, t1, t2 = v["W_f"], v["W_out"], v["h"], v["t1"], v["t2"]
    d, alpha, dt = eng.d, eng.alpha, eng.dt
    path = 0.0
    for k in range(eng.T):
        learner.recurrent_input_one(rv, k, drive[k], h)               # h = W_in s_k + b + W(k) r_k
        if W_f is not None and k - d >= 0:
            np.dot(E[k - d], W_f, out=t1)                              # + W_f E[k-d] (controller on)
            h += t1
        h -= X[k]                                                      # x_{k+1} = x_k + alpha (h - x_k)
        h *= alpha
        np.add(X[k], h, out=X[k + 1])
        np.maximum(X[k + 1], 0.0, out=Rh[k + 1])
        np.sign(Rh[k + 1], out=aD[k + 1])
        aD[k + 1] *= alpha                                             # alpha relu'(x_{k+1})
        np.dot(W_out, Rh[k + 1], out=t2)                               # E_{k+1} = E_k + dt (vref_k - b_out - W_out r_{k+1})
        t2 *= dt
        np.add(E[k], err[k], out=E[k + 1])
        E[k + 1] -= t2
        path += learner.apply_step_one(rv, k, lr)
    eng.path.add_(path)


def _trial_ptrs(v: dict) -> list:
    """Addresses of the trial buffers that every compiled one-run kernel reads first (X, Rh, aD,
    E, drive, err, W_out, W_f or NULL), from :meth:`_Engine.numpy_views`."""
    p = ckernels.ptr
    return [p(v[k]) for k in ("X", "Rh", "aD", "E", "drive", "err", "W_out")] + [
        None if v["W_f"] is None else p(v["W_f"])]


def _bptt_steps_compiled(eng: _Engine, b: dict, lr: float) -> None:
    """The T steps of exact online BPTT for ONE run on a CPU: per step one compiled call (forward
    step, backward sweep, update recorded in the factors: ``csrc/one_run.c``), the Gram matrix of
    the adjoint rows by BLAS (NumPy), and |dW_k| from it (compiled). Same arithmetic as
    :func:`_steps` with ``rules.OnlineBPTT``; results agree to float rounding (tests)."""
    step, norm, args, rv = b["step"], b["norm"], b["args"], b["rv"]
    T, d, alpha, dt, decay = eng.T, eng.d, eng.alpha, eng.dt, 1.0 - eng.alpha
    n, rows, HH, gram, dpow = eng.n, rv["rows"], rv["HH"], rv["gram_p"], rv["dpow_p"]
    path = 0.0
    for k in range(T):
        step(k, n, T, d, alpha, dt, lr, decay, *args)
        r = rows[: k + 1]
        hh = HH[: (k + 1) * (k + 1)].reshape(k + 1, k + 1)
        np.dot(r, r.T, out=hh)
        path += norm(k, T, hh.ctypes.data, gram, dpow, lr)
    eng.learner.finish_compiled_trial(T)
    eng.path.add_(path)


class _Divergence:
    """Which runs diverged, at which trial (-1: none). A run diverges when its training loss is
    NaN/inf or exceeds ``factor`` times the larger of 1 and its first trial's loss; "raise" stops
    there, "mark" keeps the weights it had before that trial and sets its rate to zero."""

    def __init__(self, rule: str, runs: list[RunSpec], on_divergence: str, factor: float, *, device, dtype):
        self.rule, self.runs, self.on_divergence, self.factor = rule, runs, on_divergence, factor
        self.diverged = np.full(len(runs), -1, dtype=np.int64)
        self.alive = torch.ones(len(runs), dtype=dtype, device=device)     # [R]: 0 for a diverged run
        self.first_loss = None

    def check(self, t: int, tl: np.ndarray, W: torch.Tensor, W_trial_start: torch.Tensor, bar) -> None:
        if self.first_loss is None:
            self.first_loss = np.maximum(tl, 1.0)
        bad = ~np.isfinite(tl) | (tl > self.factor * self.first_loss)
        newly = bad & (self.diverged < 0)
        if not newly.any():
            return
        if self.on_divergence == "raise":
            bar.close()
            i = int(np.flatnonzero(newly)[0])
            r = self.runs[i]
            raise DivergenceError(
                f"adaptation diverged at trial {t} (rule {self.rule}, lr {r.lr:g}, controller "
                f"{'on' if r.controller_on else 'off'}, "
                f"{f'rotation {r.rotation_deg:g}' if r.perturbation is None else r.applied.label}): "
                f"training loss {tl[i]:.3g}")
        self.diverged[newly] = t
        m = torch.as_tensor(newly, device=W.device)
        self.alive[m] = 0.0
        W[m] = W_trial_start[m]


def _trial(t: int, eng: _Engine, tests: _TestSets, div: _Divergence, rec: dict, lr: torch.Tensor, *,
           trials: int, align_every: int, test_every: int, bar, progress: bool) -> None:
    """Trial t of every run: run it, check divergence, record it (alignment, tests)."""
    tgt = eng.begin_trial()
    do_align = eng.align and t % align_every == 0
    eng.run_trial(lr * div.alive, do_align)            # a diverged run stays frozen
    tl = eng.train_loss()
    div.check(t, tl, eng.W, eng.W_trial_start, bar)
    R, W = eng.R, eng.W
    rec["train_loss"][:, t] = tl
    rec["target"][:, t] = tgt.numpy()
    rec["dW_trial"][:, t] = (W - eng.W_trial_start).reshape(R, -1).norm(dim=1).cpu().numpy()
    rec["dW_path"][:, t] = eng.path.cpu().numpy()
    rec["dW_total"][:, t] = (W - eng.W_init).reshape(R, -1).norm(dim=1).cpu().numpy()
    if do_align:
        local, glob = eng.alignment()
        rec["align_local"][:, t] = local.cpu().numpy()
        rec["align_global"][:, t] = glob.cpu().numpy()
    if t % test_every == 0 or t == trials - 1:
        lt, la = tests.losses(W)
        rec["test_loss"][:, t] = lt.cpu().numpy()
        rec["aftereffect_loss"][:, t] = la.cpu().numpy()
    dead = div.diverged >= 0
    for key in rec:
        if key != "target":
            rec[key][dead, t] = np.nan
    if progress and (t % 10 == 0 or t == trials - 1):
        bar.set_postfix(train=f"{np.nanmean(tl):.3g}", test=f"{np.nanmean(rec['test_loss'][:, t]):.3g}")


# ---- command line ---------------------------------------------------------------------------

def checkpoint_task(path, name: str | None = None) -> Task:
    """The task a checkpoint was pre-trained on (its sidecar), with that task's recorded settings
    (the reaching task: the default ``TaskConfig``, as the paper's networks use); ``name``, if
    given, must agree."""
    spec = network_spec(path)
    if name is not None and name != spec.task:
        raise ValueError(f"task: checkpoint {path} was pre-trained on the {spec.task} task, got {name!r}")
    if spec.task == "reach":
        return Reach(TaskConfig())
    return make_task(spec.task, task_config_from_dict(spec.task, read_sidecar(path).get("task")))


def _cli_perturbation(task: Task, rotation: float | None, shift: float | None) -> Perturbation:
    """The perturbation the command line asks for: a rotation (reaching, default 30 degrees) or a
    frequency shift (limit cycle, default the task's); the other one is an error."""
    if task.name == "reach":
        if shift is not None:
            raise ValueError("shift: a frequency shift applies to the limit-cycle task; the reaching task takes --rotation")
        return Rotation(30.0 if rotation is None else rotation)
    if rotation is not None:
        raise ValueError("rotation: a rotation applies to the reaching task; the limit-cycle task takes --shift")
    return FrequencyShift(shift) if shift is not None else task.default_perturbation()


def cli_adapt(a) -> int:
    """``python -m fbctrl adapt CHECKPOINT --rule ... --out FILE.npz`` (reaching: ``--rotation``;
    limit cycle: ``--shift``)."""

    output_file("out", a.out, ".npz", force=getattr(a, "force", False))
    net = load_checkpoint(a.checkpoint, device=a.device)          # first: says what is wrong with a bad file
    task = checkpoint_task(a.checkpoint, getattr(a, "task", None))
    pert = _cli_perturbation(task, a.rotation, getattr(a, "shift", None))
    ctrl = a.controller == "on"
    lr = a.lr if a.lr is not None else paper_lr(a.rule, ctrl)
    run = RunSpec(net_index=0, controller_on=ctrl, rotation_deg=pert.deg if task.name == "reach" else 0.0, lr=lr,
                  seed=a.seed, perturbation=None if task.name == "reach" else pert)
    res = adapt(net, a.rule, [run], trials=a.trials, delay=a.delay, progress=not a.no_progress, device=a.device,
                task=task)
    out = Path(a.out)
    payload = {k: v[0] for k, v in res.records.items()}
    payload["target"] = payload["target"].astype(np.int64)
    meta = {"checkpoint": a.checkpoint, "rule": a.rule, "controller": a.controller, "task": task.name,
            "perturbation": pert.name, "trials": a.trials, "lr": lr, "seed": a.seed, "delay": res.meta["delay"],
            "network_seed": read_sidecar(a.checkpoint).get("seed"), "wall_time_s": round(res.wall_time, 2),
            "efficiency": float(res.efficiency()[0])}
    if task.name == "reach":
        meta["rotation_deg"] = pert.deg
    else:
        meta["shift_hz"] = pert.hz
    payload["meta"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez_compressed(buf, **payload)
    atomic_write_bytes(out, buf.getvalue())
    tl = payload["test_loss"]
    print(json.dumps({"out": str(out), "first_test_loss": float(tl[0]), "final_test_loss": float(tl[-1]),
                      "final_train_loss": float(payload["train_loss"][-1]), "efficiency": meta["efficiency"],
                      "seconds_per_trial": res.wall_time / a.trials}))
    return 0


@torch.no_grad()
def initial_test_losses(nets: Network, rotation_deg: float, *, task_cfg: TaskConfig = TaskConfig()) -> dict:
    """Before any adaptation: the test loss (8 rotated targets) and the after-effect loss (8
    un-rotated targets), controller off, with the test set of :func:`adapt` (same
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
        out[name] = forward(n32, Trials.stack([tr] * S), x0, controller_on=False, keep_x=False).task_loss().cpu().numpy() \
            .astype(np.float64)
    return out
