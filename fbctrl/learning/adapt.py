"""Trial-by-trial adaptation of W_rec to a visuomotor rotation (SPEC 4), many runs in lockstep.

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

import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.bptt import forward
from ..core.checkpoint import atomic_write_bytes, load_checkpoint, read_sidecar
from ..core.model import Network, draw_x0
from ..core.task import TaskConfig, Trials, centre_out_reaches
from .rules import PAPER_LR, RULES, OnlineBPTT, TrialState, make_rule

__all__ = ["RunSpec", "AdaptResult", "adapt", "DivergenceError", "feedback_matrix", "cli_adapt", "paper_lr", "TEST_X0_SEED",
           "initial_test_losses"]


ERROR_STARTS = ("zero", "published")


TEST_X0_SEED = 999    # initial states of the test sets (the same for every run and condition)


class DivergenceError(FloatingPointError):
    """A run's loss became NaN or grew past the bound."""


def paper_lr(rule: str, controller_on: bool) -> float:
    """The paper's fine-tuning rate for a condition (SPEC 4)."""
    return PAPER_LR[(rule, bool(controller_on))]


@dataclass(frozen=True)
class RunSpec:
    """One adaptation run: which network (index into the stacked networks), condition, rate."""

    net_index: int = 0
    controller_on: bool = True
    rotation_deg: float = 30.0
    lr: float = 5e-5
    seed: int = 0

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
          lr_rescale: bool = False, bptt_weights: str = "history", device=None,
          dtype=torch.float32, frozen: bool = False, keep_weights: tuple = (),
          error_start: str = "zero") -> AdaptResult:
    """Adapt W_rec of every run for ``trials`` trials, online (SPEC 4).

    ``nets``: one network or a stacked set (``RunSpec.net_index`` picks one per run).
    ``on_divergence``: "raise" (DivergenceError naming trial, rule and rate) or "mark" (the run
    is frozen and its records filled with NaN from that trial on; used by the learning-rate
    sweep). A run diverges when its training loss is NaN/inf or exceeds ``divergence_factor``
    times the larger of 1 and its first trial's loss.
    ``bptt_weights``: "history" (exact; default) or "current" (see ``rules.OnlineBPTT``).
    ``lr_rescale``: multiply BPTT rates by |W_fb| / |W_out| as the published code does (off by
    default; the book's figures use the plain rates).
    ``frozen``: compute every step's update (and the alignment) but never apply it, so every
    trial runs from the same W_rec (matched-state analyses; RFLO only).
    ``keep_weights``: trial indices t at which W_rec (before trial t; t = ``trials``: after the
    last) is kept in ``result.weights[t]`` [R, n, n].
    ``error_start``: the integrated error of each adaptation trial starts at "zero" (the book's
    choice, Methods) or, as the published code does, at the first velocity output
    e_0 = W_out r_0 + b_out ("published"; a robustness row). No weight gradient flows through
    e_0 (it depends on the random initial state only); the controller feeds it back like any
    later error. Test trials always start from zero.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if trials <= 0:
        raise ValueError(f"trials must be a positive integer, got {trials}")
    if on_divergence not in ("raise", "mark"):
        raise ValueError("on_divergence must be 'raise' or 'mark'")
    if not runs:
        raise ValueError("runs must list at least one run")
    if error_start not in ERROR_STARTS:
        raise ValueError(f"error_start must be one of {', '.join(ERROR_STARTS)}, got {error_start!r}")
    if frozen and rule != "rflo":
        raise ValueError("frozen adaptation is implemented for rule 'rflo' only")
    if any(not 0 <= int(t) <= trials for t in keep_weights):
        raise ValueError(f"keep_weights must be trial indices in 0..{trials}, got {tuple(keep_weights)}")
    device = device if device is not None else nets.device
    net = _gather_runs(nets, runs).to(device=device, dtype=dtype)
    cfg = net.cfg
    d = cfg.delay if delay is None else int(delay)
    if d < 0:
        raise ValueError(f"delay must be >= 0 steps, got {d}")
    R, n, T = len(runs), cfg.n, task_cfg.T
    alpha, dt = cfg.alpha, cfg.dt
    lr = torch.tensor([r.lr for r in runs], dtype=dtype, device=device)
    if lr_rescale and rule == "bptt":
        scale = (net.W_fb * net.mask).reshape(R, -1).norm(dim=1) / net.W_out.reshape(R, -1).norm(dim=1)
        lr = lr * scale
    ctrl = torch.tensor([float(r.controller_on) for r in runs], dtype=dtype, device=device).reshape(R, 1, 1)

    # trial templates: the 8 centre-out reaches, rotated per run
    base = centre_out_reaches(task_cfg, dtype=dtype).to(device=device)      # [T, 8, .]
    vref_rot = torch.stack([base.rotated(r.rotation_deg).vref for r in runs])  # [R, T, 8, 2]
    test_x0 = draw_x0(n, (task_cfg.n_targets,), torch.Generator().manual_seed(TEST_X0_SEED), dtype, device)
    test_trials = Trials.stack([base.rotated(r.rotation_deg) for r in runs])
    after_trials = Trials.stack([base] * R)
    test_x0_R = test_x0.unsqueeze(0).expand(R, -1, -1)
    gens = [torch.Generator().manual_seed(int(r.seed)) for r in runs]

    W_out, W_f = net.W_out, (net.W_fb * net.mask)
    W_outT, W_fT = W_out.mT.contiguous(), W_f.mT.contiguous()
    W = net.W_rec.clone()
    W_init = W.clone()
    b_out = net.b_out.unsqueeze(1)
    drive_all = torch.matmul(base.inputs.transpose(0, 1), net.W_in.mT.unsqueeze(1)) + net.b[:, None, None, :]
    # drive_all [R, 8, T, n]: W_in s_k + b for each run and target

    need_hist = align   # online BPTT keeps its own weight history in low-rank form (rules.OnlineBPTT)
    X = torch.empty(R, T + 1, n, device=device, dtype=dtype)
    Rh = torch.empty_like(X)
    aD = torch.empty_like(X)
    E = torch.zeros(R, T + 1, 2, device=device, dtype=dtype)
    Wh = torch.empty(R, T + 1, n, n, device=device, dtype=dtype) if need_hist else None
    state = TrialState(X=X, Rh=Rh, aD=aD, E=E, Wh=Wh, W_out=W_out, alpha=alpha, dt=dt)
    learner = make_rule(rule, R, n, T, B=feedback_matrix(net) if rule == "rflo" else None, device=device,
                        dtype=dtype, bptt_weights=bptt_weights)
    learner.W_current = W
    # W_rec kept in low-rank form within each trial and formed once at its end (rules.RFLO and
    # rules.OnlineBPTT with the history convention); on trials whose alignment is measured, RFLO
    # adds dW without forming it (rules.RFLO.add_step)
    fused_update = hasattr(learner, "add_step")
    deferred = getattr(learner, "defers_weights", False)
    exact_is_rule = rule == "bptt" and bptt_weights == "history"
    exact = OnlineBPTT(R, n, T, device=device, dtype=dtype) if (align and not exact_is_rule) else None
    # RFLO's alignment is computed from its trace's structure (rules.RFLO.products_with_rates):
    # only its per-step signals and |dW_k| are kept, not the n x n updates
    rflo_align = align and rule == "rflo"
    dW_hist = torch.empty(R, T, n, n, device=device, dtype=dtype) if (align and not rflo_align) else None
    if rflo_align:
        learner.record = torch.zeros(R, T, n, device=device, dtype=dtype)
        dW_norms = torch.zeros(R, T, device=device, dtype=dtype)

    keys = ["train_loss", "test_loss", "aftereffect_loss", "dW_trial", "dW_path", "dW_total", "target"]
    rec = {k: np.full((R, trials), np.nan, dtype=np.float64) for k in keys}
    if align:
        rec["align_local"] = np.full((R, trials, T), np.nan, dtype=np.float32)
        rec["align_global"] = np.full((R, trials), np.nan, dtype=np.float64)
    diverged = np.full(R, -1, dtype=np.int64)
    alive = torch.ones(R, dtype=dtype, device=device)
    first_loss = None
    h = torch.empty(R, 1, n, device=device, dtype=dtype)
    ar = torch.arange(R, device=device)
    # per-step views of the persistent buffers, made once (no slicing inside the step loop)
    drive = torch.empty(R, T, n, device=device, dtype=dtype)
    vref = torch.empty(R, T, 2, device=device, dtype=dtype)
    W_fT_ctrl = W_fT * ctrl                                   # zero for runs with the controller off
    Xv, Rv, aDv, Ev = (tuple(b.split(1, dim=1)) for b in (X, Rh, aD, E))
    err = torch.empty_like(vref)
    drive_v, err_v = drive.split(1, dim=1), err.split(1, dim=1)
    t_start = time.perf_counter()

    def test(Wcur):
        tnet = net.replace(W_rec=Wcur)
        lt = forward(tnet, test_trials, test_x0_R, controller_on=False).task_loss()
        la = forward(tnet, after_trials, test_x0_R, controller_on=False).task_loss()
        return lt, la

    kept = {}
    bar = tqdm(range(trials), disable=not progress, desc=f"adapt {rule} x{R}", unit="trial", dynamic_ncols=True)
    for t in bar:
        if t in keep_weights:
            kept[t] = W.detach().clone()
        tgt = torch.tensor([int(torch.randint(task_cfg.n_targets, (1,), generator=g)) for g in gens])
        x0 = torch.stack([draw_x0(n, (), g, dtype) for g in gens]).to(device)
        tgt_d = tgt.to(device)
        drive.copy_(drive_all[ar, tgt_d])                    # [R, T, n]
        vref.copy_(vref_rot[ar, :, tgt_d])                   # [R, T, 2]
        torch.sub(vref, b_out, out=err).mul_(dt)             # dt (vref_k - b_out)
        W_trial_start = W.clone()
        frozen_sum = torch.zeros_like(W) if frozen else None
        path = torch.zeros(R, device=device, dtype=dtype)
        X[:, 0] = x0
        torch.clamp_min(x0, 0.0, out=Rh[:, 0])
        torch.sign(Rh[:, 0], out=aD[:, 0]).mul_(alpha)
        E.zero_()
        if error_start == "published":                     # e_0 = W_out r_0 + b_out
            torch.baddbmm(b_out, Rv[0], W_outT, out=Ev[0])
        lr_alive = lr * alive                                # a diverged run stays frozen
        learner.begin_trial(state)
        if exact is not None:
            exact.begin_trial(state)
        do_align = align and t % align_every == 0
        lowrank = deferred and not do_align and not frozen
        for k in range(T):
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
            if fused_update and (not do_align or rflo_align):
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
        if lowrank:
            learner.materialize(state, W)
        if Wh is not None:
            Wh[:, T] = W
        train_loss = E.pow(2).mean(dim=(1, 2))
        tl = train_loss.cpu().numpy().astype(np.float64)
        if first_loss is None:
            first_loss = np.maximum(tl, 1.0)
        bad = ~np.isfinite(tl) | (tl > divergence_factor * first_loss)
        newly = bad & (diverged < 0)
        if newly.any():
            i = int(np.flatnonzero(newly)[0])
            if on_divergence == "raise":
                bar.close()
                raise DivergenceError(
                    f"adaptation diverged at trial {t} (rule {rule}, lr {runs[i].lr:g}, controller "
                    f"{'on' if runs[i].controller_on else 'off'}, rotation {runs[i].rotation_deg:g}): "
                    f"training loss {tl[i]:.3g}")
            diverged[newly] = t
            alive[torch.as_tensor(newly, device=device)] = 0.0
            W[torch.as_tensor(newly, device=device)] = W_trial_start[torch.as_tensor(newly, device=device)]
        rec["train_loss"][:, t] = tl
        rec["target"][:, t] = tgt.numpy()
        rec["dW_trial"][:, t] = (W - W_trial_start).reshape(R, -1).norm(dim=1).cpu().numpy()
        rec["dW_path"][:, t] = path.cpu().numpy()
        rec["dW_total"][:, t] = (W - W_init).reshape(R, -1).norm(dim=1).cpu().numpy()
        if do_align:
            # the exact online gradients of every step at the weights and states that really
            # occurred, all from one backward sweep over the finished trial
            if rflo_align:
                M = learner.products_with_rates(state, T)
                local, glob = exact.alignment_from_products(state, T, M, dW_norms,
                                                            frozen_sum if frozen else W - W_trial_start)
            else:
                local, glob = (exact or learner).alignment(state, T, dW_hist)
            rec["align_local"][:, t] = local.cpu().numpy()
            rec["align_global"][:, t] = glob.cpu().numpy()
        if t % test_every == 0 or t == trials - 1:
            lt, la = test(W)
            rec["test_loss"][:, t] = lt.cpu().numpy()
            rec["aftereffect_loss"][:, t] = la.cpu().numpy()
        dead = diverged >= 0
        for key in rec:
            if key != "target":
                rec[key][dead, t] = np.nan
        if progress and (t % 10 == 0 or t == trials - 1):
            bar.set_postfix(train=f"{np.nanmean(tl):.3g}", test=f"{np.nanmean(rec['test_loss'][:, t]):.3g}")
    bar.close()
    if trials in keep_weights:
        kept[trials] = W.detach().clone()
    wall = time.perf_counter() - t_start
    res = AdaptResult(rule=rule, runs=list(runs), records=rec, diverged=diverged, wall_time=wall,
                      meta={"delay": d, "trials": trials, "lr_rescale": lr_rescale, "lr_effective": lr.cpu().tolist(),
                            "error_start": error_start})
    res.W_final = W
    res.weights = kept
    return res


# ---- command line ---------------------------------------------------------------------------

def cli_adapt(a) -> int:
    """``python -m fbctrl adapt CHECKPOINT --rule ... --out FILE.npz``."""

    if Path(a.out).suffix != ".npz":
        raise ValueError(f"out must be a .npz file name, got {a.out!r}")
    net = load_checkpoint(a.checkpoint, device=a.device)
    ctrl = a.controller == "on"
    lr = a.lr if a.lr is not None else paper_lr(a.rule, ctrl)
    run = RunSpec(net_index=0, controller_on=ctrl, rotation_deg=a.rotation, lr=lr, seed=a.seed)
    res = adapt(net, a.rule, [run], trials=a.trials, delay=a.delay, progress=not a.no_progress, device=a.device)
    out = Path(a.out)
    payload = {k: v[0] for k, v in res.records.items()}
    payload["target"] = payload["target"].astype(np.int64)
    meta = {"checkpoint": a.checkpoint, "rule": a.rule, "controller": a.controller, "rotation_deg": a.rotation,
            "trials": a.trials, "lr": lr, "seed": a.seed, "delay": res.meta["delay"],
            "network_seed": read_sidecar(a.checkpoint).get("seed"), "wall_time_s": round(res.wall_time, 2),
            "efficiency": float(res.efficiency()[0])}
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
        out[name] = forward(n32, Trials.stack([tr] * S), x0, controller_on=False).task_loss().cpu().numpy() \
            .astype(np.float64)
    return out
