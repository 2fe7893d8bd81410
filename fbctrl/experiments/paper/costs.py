"""The cost model of the plan: seconds per pre-training batch and per run-trial, measured on
the device at the start (:func:`calibrate`: a few batches and trials), modelled for a GPU, or the
published code's (:func:`published_costs`); a unit's estimate (:func:`unit_seconds`), the plan's
estimates per group (:func:`plan_costs`, :func:`format_plan`) and the lockstep group sizes
(:func:`default_max_runs`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from torch.profiler import ProfilerActivity, profile

from ...core.model import init_network
from ...core.train import Trainer
from ...learning import ckernels
from ...learning.adapt import RunSpec, adapt
from ...perf.bench import PUBLISHED_CPU, pretrain_flops
from .. import network_units
from .config import PaperConfig, Variant
from .lockstep import same_run_at_the_sweep_rotations_rate
from .planning import Group
from .sweep import best_swept_rates

__all__ = ["GPU_LAUNCH_S", "GPU_FP32_FLOPS", "Costs", "calibrate", "unit_seconds", "default_max_runs",
           "published_costs", "plan_costs", "format_plan", "hms"]


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
    if _reused(cfg, unit):             # written from the run already made at the same rate (lockstep)
        return 0.0
    return unit.trials * costs.run_trial[unit.condition.rule.value]


def _reused(cfg: PaperConfig, unit) -> bool:
    """A run at its own rotation's best rate that will be taken from the run at the sweep
    rotation's rate (``lockstep.same_run_at_the_sweep_rotations_rate``): the rates are the same."""
    if getattr(unit, "variant", None) is not Variant.OWN_BEST or unit.stage != "adapt":
        return False
    lr = best_swept_rates(cfg.rates_config(), unit.rate_rotation)[unit.condition.name]["lr"]
    return lr is not None and same_run_at_the_sweep_rotations_rate(cfg, unit, lr) is not None


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
        lines.append(f"{i:>2}  {g.title:58s} {len(g.units):>5}  " + "  ".join(f"{hms(secs[n]):>14s}" for n in names)
                     + note)
    lines.append(f"{'':>2}  {'total':58s} {sum(len(g.units) for g in groups):>5}  "
                 + "  ".join(f"{hms(totals[n]):>14s}" for n in names))
    lines += [f"    {n}: {c.source}; pre-training {c.pretrain_batch:.3g} s per batch per network, per run-trial "
              + ", ".join(f"{r} {v:.3g} s" for r, v in c.run_trial.items()) for n, c in costs.items()]
    return "\n".join(lines)


def hms(s: float) -> str:
    """``s`` seconds as "42 s", "3.5 min" or "2.1 h"."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
