"""The paper's experiments on the shipped networks, as functions the notebooks and the
``python -m fbctrl reproduce`` command share. Results are saved as small .npz files with their
provenance (command, commit, machine, settings) so that the book can load them."""

from __future__ import annotations

import io
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..analysis.gradients import activity_gradients, activity_newton
from ..core.checkpoint import atomic_write_bytes, load_checkpoint
from ..core.model import Network, draw_x0
from ..core.task import TaskConfig, centre_out_reaches
from ..learning.adapt import AdaptResult, RunSpec, adapt, paper_lr
from ..paths import git_commit

__all__ = ["CONDITIONS", "COND_ORDER", "condition_name", "shipped_networks", "run_conditions", "save_results", "load_results",
           "activity_alignment", "summarise", "lr_sweep", "save_sweep", "load_sweep", "SWEEP_RATES", "bptt_convention_gap"]

# learning-rate grids of the sweep (each contains the paper's rates of SPEC 4)
SWEEP_RATES = {"rflo": [5e-6, 1.5e-5, 5e-5, 1.5e-4, 5e-4], "bptt": [1e-6, 5e-6, 2e-5, 1e-4, 5e-4]}

CONDITIONS = (("rflo", True), ("rflo", False), ("bptt", True), ("bptt", False))


def condition_name(rule: str, controller_on: bool) -> str:
    """'RFLO+c', 'RFLO', 'BPTT+c', 'BPTT' as in the paper."""
    return rule.upper() + ("+c" if controller_on else "")


COND_ORDER = tuple(condition_name(r, c) for r, c in CONDITIONS)   # RFLO+c, RFLO, BPTT+c, BPTT


def shipped_networks(checkpoint_dir="checkpoints", kind: str = "fb", seeds=None, device="cpu",
                     dtype=torch.float32) -> tuple[Network, list[int]]:
    """Load ``{kind}_seed{s}.pt`` for the given (default: all available) seeds, stacked. ``kind``
    is the file-name tag of ``train.network_tag``: 'fb', 'nofb', 'fb_n40', ..."""
    d = Path(checkpoint_dir)
    if not d.is_dir():
        raise ValueError(f"checkpoint folder {d} does not exist")
    avail = sorted(int(p.stem.rsplit("seed", 1)[1]) for p in d.glob(f"{kind}_seed*.pt")
                   if p.stem.rsplit("seed", 1)[1].isdigit())
    if seeds is None:
        seeds = avail
    missing = [s for s in seeds if s not in avail]
    if missing or not seeds:
        raise ValueError(f"seeds {missing or seeds} not among the {kind} networks in {d} (available: {avail})")
    nets = [load_checkpoint(d / f"{kind}_seed{s}.pt", device=device, dtype=dtype) for s in seeds]
    return Network.stack(nets), list(seeds)


def run_conditions(nets: Network, seeds: list[int], *, rotation_deg: float = 30.0, trials: int = 500,
                   conditions=CONDITIONS, lrs: dict | None = None, align_every: int | None = None,
                   bptt_weights: str = "current", progress: bool = True, device="cpu",
                   test_every: int = 1, on_divergence: str = "raise") -> dict[str, AdaptResult]:
    """Each condition on every network seed; one lockstep batch per rule. Run i of every
    condition uses the target sequence of ``Generator(seed_i)``: conditions are paired."""
    lrs = lrs or {}
    out = {}
    for rule in ("rflo", "bptt"):
        conds = [c for c in conditions if c[0] == rule]
        if not conds:
            continue
        runs, names = [], []
        for _, ctrl in conds:
            lr = lrs.get((rule, ctrl), paper_lr(rule, ctrl))
            for i, s in enumerate(seeds):
                runs.append(RunSpec(net_index=i, controller_on=ctrl, rotation_deg=rotation_deg, lr=lr, seed=int(s)))
            names.append(condition_name(rule, ctrl))
        res = adapt(nets, rule, runs, trials=trials, align=align_every is not None, align_every=align_every or 1,
                    progress=progress, bptt_weights=bptt_weights, device=device, test_every=test_every,
                    on_divergence=on_divergence)
        S = len(seeds)
        for j, name in enumerate(names):
            sl = slice(j * S, (j + 1) * S)
            out[name] = AdaptResult(rule=rule, runs=runs[sl], records={k: v[sl] for k, v in res.records.items()},
                                    diverged=res.diverged[sl], wall_time=res.wall_time, meta=res.meta)
    return out


def provenance(extra: dict) -> dict:

    return {"commit": git_commit(), "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor(), "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S"), **extra}


def save_results(path, results: dict[str, AdaptResult], meta: dict) -> None:
    """``{condition}/{record}`` arrays [seeds, trials(, T)], plus runs and provenance as JSON."""
    payload = {}
    runs = {}
    for name, res in results.items():
        for k, v in res.records.items():
            payload[f"{name}/{k}"] = v
        payload[f"{name}/diverged"] = res.diverged
        runs[name] = [asdict(r) for r in res.runs]
    payload["meta"] = np.array(json.dumps(provenance({**meta, "runs": runs})))
    buf = io.BytesIO()
    np.savez_compressed(buf, **payload)
    atomic_write_bytes(path, buf.getvalue())


def _load_one(path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in z.files:
        if "/" in key:
            cond, rec = key.split("/", 1)
            out.setdefault(cond, {})[rec] = z[key]
    return out, meta


def load_results(paths) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """-> ({condition: {record: array [seeds, ...]}}, meta). ``paths``: one file, a list, or a
    glob pattern; files computed for different network seeds (same settings) are concatenated
    along the seed axis, sorted by seed; ``meta["seeds"]`` lists them, ``meta["files"]`` the
    provenance of each file."""
    if isinstance(paths, (str, Path)) and any(ch in str(paths) for ch in "*?["):
        p = Path(str(paths))
        paths = sorted(p.parent.glob(p.name))
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise ValueError("no result files found")
    loaded = [_load_one(p) for p in paths]
    if len(loaded) == 1:
        return loaded[0]
    keys = ("rotation_deg", "trials", "kind", "bptt_weights")
    ref = {k: loaded[0][1].get(k) for k in keys}
    for (_, m), p in zip(loaded, paths):
        if {k: m.get(k) for k in keys} != ref:
            raise ValueError(f"result file {p} was computed with other settings than {paths[0]}")
    seeds = [s for _, m in loaded for s in m["seeds"]]
    order = np.argsort(seeds, kind="stable")
    out = {}
    for cond in loaded[0][0]:
        out[cond] = {rec: np.concatenate([d[cond][rec] for d, _ in loaded])[order] for rec in loaded[0][0][cond]}
    meta = dict(loaded[0][1])
    meta["seeds"] = [seeds[i] for i in order]
    meta["files"] = [m for _, m in loaded]
    return out, meta


def lr_sweep(nets: Network, seeds: list[int], *, rates: dict, rotations=(30.0,), trials: int = 200,
             rules=("rflo", "bptt"), controllers=(True, False), final_window: int = 10,
             bptt_weights: str = "current", progress: bool = True, device="cpu") -> dict:
    """Figure 8: final test loss (controller off, mean of the last ``final_window`` trials) for
    every rule x controller x rate x rotation x seed, all runs of a rule in one lockstep batch.
    Diverged runs (loss NaN or 100x its start) are marked NaN and counted in ``diverged``.
    Returns {"rates": {rule: [...]}, "final": {cond: array [rates, rotations, seeds]},
    "diverged": {...}, "curves": {cond: test_loss [rates, rotations, seeds, trials]}}."""
    out = {"rates": {}, "final": {}, "diverged": {}, "curves": {}, "rotations": list(rotations), "seeds": list(seeds),
           "trials": trials}
    for rule in rules:
        rr = list(rates[rule])
        out["rates"][rule] = rr
        runs, index = [], []
        for ctrl in controllers:
            for a, lr in enumerate(rr):
                for b, rot in enumerate(rotations):
                    for c, s in enumerate(seeds):
                        runs.append(RunSpec(net_index=c, controller_on=ctrl, rotation_deg=rot, lr=lr, seed=int(s)))
                        index.append((ctrl, a, b, c))
        res = adapt(nets, rule, runs, trials=trials, progress=progress, on_divergence="mark",
                    bptt_weights=bptt_weights, device=device)
        for ctrl in controllers:
            name = condition_name(rule, ctrl)
            shape = (len(rr), len(rotations), len(seeds))
            fin = np.full(shape, np.nan)
            div = np.zeros(shape, dtype=bool)
            curves = np.full(shape + (trials,), np.nan)
            for i, (c_, a, b, c) in enumerate(index):
                if c_ != ctrl:
                    continue
                tl = res.records["test_loss"][i]
                curves[a, b, c] = tl
                div[a, b, c] = res.diverged[i] >= 0
                fin[a, b, c] = np.nan if div[a, b, c] else np.nanmean(tl[-final_window:])
            out["final"][name], out["diverged"][name], out["curves"][name] = fin, div, curves
    return out


@torch.no_grad()
def activity_alignment(nets: Network, *, rotation_deg: float = 30.0, newton: bool = True,
                       task_cfg: TaskConfig = TaskConfig(), x0_seed: int = 7,
                       pairing: str = "next") -> dict[str, np.ndarray]:
    """Finding 1 on the first rotated trial of each of the 8 targets, controller on, per network:
    cos(u_k, -dL/dr_{k+1}) (whole trial), cos(u_k, -dl_{k+1}/dr_{k+1}) (instantaneous) and, with
    ``newton``, cos(u_k, Newton direction at r_{k+1}) over steps k (arrays [S, 8, T-1]); u_k acts
    on r_{k+1} (``pairing="same"``: r_k, ``analysis.PAIRINGS``). Computed in float64."""
    S = nets.n_networks if nets.stacked else 1
    T = task_cfg.T
    out = {"cos_trial": np.zeros((S, task_cfg.n_targets, T - 1)), "cos_inst": np.zeros((S, task_cfg.n_targets, T - 1))}
    if newton:
        out["cos_newton"] = np.zeros((S, task_cfg.n_targets, T - 1))
        out["cos_first_order"] = np.zeros((S, task_cfg.n_targets, T - 1))
    g = torch.Generator().manual_seed(x0_seed)
    x0s = draw_x0(nets.cfg.n, (task_cfg.n_targets,), g, torch.float64)
    for s in range(S):
        net = (nets.select(s) if nets.stacked else nets).to(dtype=torch.float64)
        for tgt in range(task_cfg.n_targets):
            tr = centre_out_reaches(task_cfg, [tgt], dtype=torch.float64).rotated(rotation_deg)
            x0 = x0s[tgt: tgt + 1]
            ag = activity_gradients(net, tr, x0, controller_on=True, pairing=pairing)
            out["cos_trial"][s, tgt] = ag.cos_trial[:, 0].cpu().numpy()
            out["cos_inst"][s, tgt] = ag.cos_inst[:, 0].cpu().numpy()
            if newton:
                nw = activity_newton(net, tr, x0, controller_on=True, pairing=pairing)
                out["cos_newton"][s, tgt] = nw["cos_newton"]
                out["cos_first_order"][s, tgt] = nw["cos_first_order"]
    return out


def _mean_sem(x) -> dict:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": float("nan"), "sem": float("nan"), "n": 0}
    sem = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")
    return {"mean": float(x.mean()), "sem": sem, "n": int(x.size), "values": [float(v) for v in x]}


def summarise(results: dict[str, dict[str, np.ndarray]], *, go_step: int = 20, final_window: int = 10) -> dict:
    """Per condition, over network seeds: final test loss (controller off; mean of the last
    ``final_window`` trials), first test loss, final after-effect, efficiency ratio, and (where
    recorded) mean local (steps >= go_step) and global alignment with the exact gradient."""
    summ = {}
    for name, rec in results.items():
        tl = rec["test_loss"]
        eff = rec["dW_total"][:, -1] / np.maximum(np.nansum(rec["dW_path"], 1), 1e-30)
        d = {"final_test_loss": _mean_sem(np.nanmean(tl[:, -final_window:], 1)),
             "first_test_loss": _mean_sem(tl[:, 0]),
             "final_train_loss": _mean_sem(np.nanmean(rec["train_loss"][:, -final_window:], 1)),
             "final_aftereffect_loss": _mean_sem(np.nanmean(rec["aftereffect_loss"][:, -final_window:], 1)),
             "efficiency": _mean_sem(eff)}
        if "align_local" in rec:
            al = rec["align_local"][:, :, go_step:]
            d["align_local"] = _mean_sem(np.nanmean(al.reshape(al.shape[0], -1), 1))
            d["align_global"] = _mean_sem(np.nanmean(rec["align_global"], 1))
        summ[name] = d
    return summ


def save_sweep(path, sweep: dict, meta: dict) -> None:
    payload = {"meta": np.array(json.dumps(provenance({**meta, "rates": sweep["rates"], "rotations": sweep["rotations"],
                                                         "seeds": sweep["seeds"], "trials": sweep["trials"]})))}
    for part in ("final", "diverged", "curves"):
        for name, arr in sweep[part].items():
            payload[f"{part}/{name}"] = arr
    buf = io.BytesIO()
    np.savez_compressed(buf, **payload)
    atomic_write_bytes(path, buf.getvalue())


def load_sweep(paths) -> dict:
    """A sweep file, or several computed for different seeds with the same rates and rotations
    (a list or a glob pattern): concatenated along the seed axis, sorted by seed."""
    if isinstance(paths, (str, Path)) and any(ch in str(paths) for ch in "*?["):
        p = Path(str(paths))
        paths = sorted(p.parent.glob(p.name))
    if isinstance(paths, (str, Path)):
        return _load_sweep_one(paths)
    if not paths:
        raise ValueError("no sweep files found")
    parts = [_load_sweep_one(p) for p in paths]
    ref = parts[0]
    for p, part in zip(paths, parts):
        if part["rates"] != ref["rates"] or part["rotations"] != ref["rotations"] or part["trials"] != ref["trials"]:
            raise ValueError(f"sweep file {p} has other rates, rotations or trials than {paths[0]}")
    seeds = [s for part in parts for s in part["seeds"]]
    order = np.argsort(seeds, kind="stable")
    out = {**ref, "seeds": [seeds[i] for i in order], "meta": {**ref["meta"], "files": [q["meta"] for q in parts]}}
    out["final"] = {k: np.concatenate([q["final"][k] for q in parts], axis=2)[:, :, order] for k in ref["final"]}
    out["diverged"] = {k: np.concatenate([q["diverged"][k] for q in parts], axis=2)[:, :, order] for k in ref["diverged"]}
    out["curves"] = {k: np.concatenate([q["curves"][k] for q in parts], axis=2)[:, :, order] for k in ref["curves"]}
    return out


def _load_sweep_one(path) -> dict:
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    out = {"meta": meta, "rates": meta["rates"], "rotations": meta["rotations"], "seeds": meta["seeds"],
           "trials": meta["trials"], "final": {}, "diverged": {}, "curves": {}}
    for key in z.files:
        if "/" in key:
            part, name = key.split("/", 1)
            out[part][name] = z[key]
    return out


def bptt_convention_gap(nets: Network, seeds: list[int], *, rotation_deg: float = 30.0, trials: int = 20,
                        controller_on: bool = True, lr: float | None = None, progress: bool = False) -> dict:
    """How much the cheap 'current'-weights online BPTT differs from the exact 'history' one
    (rules.OnlineBPTT) over ``trials`` trials: relative difference of the total weight change and
    of the test losses, per seed."""
    lr = lr if lr is not None else paper_lr("bptt", controller_on)
    runs = [RunSpec(net_index=i, controller_on=controller_on, rotation_deg=rotation_deg, lr=lr, seed=int(s))
            for i, s in enumerate(seeds)]
    out = {}
    res = {w: adapt(nets, "bptt", runs, trials=trials, bptt_weights=w, progress=progress) for w in ("history", "current")}
    W0 = (nets.W_rec if nets.stacked else nets.W_rec.unsqueeze(0))
    dh = (res["history"].W_final - W0).reshape(len(seeds), -1)
    dc = (res["current"].W_final - W0).reshape(len(seeds), -1)
    out["rel_weight_change_gap"] = ((dh - dc).norm(dim=1) / dh.norm(dim=1)).tolist()
    out["cos_weight_change"] = ((dh * dc).sum(1) / (dh.norm(dim=1) * dc.norm(dim=1))).tolist()
    th, tc = res["history"].records["test_loss"], res["current"].records["test_loss"]
    out["max_rel_test_loss_gap"] = np.max(np.abs(th - tc) / np.abs(th), axis=1).tolist()
    out["seconds_per_trial"] = {w: r.wall_time / trials / len(seeds) for w, r in res.items()}
    out["trials"] = trials
    return out
