"""The four adaptation conditions and the learning-rate sweep on a set of networks in lockstep, as
the findings chapters compute them live (a small illustration at the default profile, never
saved: :mod:`fbctrl.book.data`), and the provenance every written result records
(:func:`provenance`, used by :mod:`fbctrl.experiments.store`). The results of the book live in
the store (``results/paper``, :mod:`fbctrl.experiments.paper` and
:mod:`fbctrl.experiments.shipped`)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoint import load_checkpoint
from ..core.model import Network
from ..learning.adapt import AdaptResult, RunSpec, adapt, paper_lr
from ..paths import git_commit

__all__ = ["CONDITIONS", "COND_ORDER", "condition_name", "shipped_networks", "run_conditions", "provenance",
           "lr_sweep"]

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
    """``extra`` with the commit, torch and Python versions, machine and time (keys of ``extra``
    win: a migrated result keeps its original provenance)."""
    return {"commit": git_commit(), "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor(), "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%d %H:%M:%S"), **extra}


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
