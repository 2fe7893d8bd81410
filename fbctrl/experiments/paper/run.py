"""Running the plan: :func:`run_batch` (each unit kind runs its own batch, its class's
``run_batch``) and :func:`run_plan` (the groups of :func:`~fbctrl.experiments.paper.planning.plan`
in order, one lockstep batch at a time, within a budget, each unit claimed before it runs so that
several processes share one store, ``store.claim``)."""

from __future__ import annotations

import time
from dataclasses import replace

from .. import store
from .config import STAGES, PaperConfig
from .costs import Costs, default_max_runs, hms, unit_seconds
from .files import unit_status
from .planning import Group, plan
from .shard import shard_units

__all__ = ["run_batch", "batches", "run_plan"]


def run_batch(cfg: PaperConfig, units: list, *, device="cpu", progress: bool = True, command: str = "") -> None:
    """Run ``units`` (one batch of :func:`batches`: one stage, kind, rule, length and variant)
    with their kind's own ``run_batch`` (``PretrainUnit``, ``NetworkUnit``, ``AdaptUnit``,
    ``SweepUnit``); each writes its units' files."""
    type(units[0]).run_batch(cfg, units, device=device, progress=progress, command=command)


def batches(units: list, max_runs: int) -> list[list]:
    """Consecutive units of one stage, kind, rule and length, at most ``max_runs`` together."""
    out, cur, key = [], [], None
    for u in units:
        k = (u.stage, u.kind, getattr(getattr(u, "condition", None), "rule", None), getattr(u, "trials", None),
             getattr(u, "variant", None))
        if cur and (k != key or len(cur) >= max_runs):
            out.append(cur)
            cur = []
        cur.append(u)
        key = k
    if cur:
        out.append(cur)
    return out


def run_plan(cfg: PaperConfig, *, device="cpu", budget_minutes: float | None = None, max_runs: int | None = None,
             costs: Costs | None = None, progress: bool = True, command: str = "", log=print,
             stages=None, shard: tuple[int, int] | None = None, planner=None) -> dict:
    """Run the groups of :func:`plan` in order, one lockstep batch at a time, re-planning after
    each (the sweep's extensions and best rates appear when their inputs exist). With a budget,
    stop before a batch whose estimate would not fit, with everything finished saved.
    ``stages``: only the groups of these stages (:data:`STAGES`), e.g. ``["network"]``.
    ``shard=(i, n)``: only the units of network seeds ``s`` with ``s % n == i`` (see
    :func:`shard_units`), so that n processes share the plan without computing a unit twice.
    Each unit is claimed before it runs (``store.claim``): a unit another live process holds is
    left to it (the run stops saying so when only such units are left), and a unit another
    process finished meanwhile is not computed again. Damaged and stale units are logged and
    recomputed. ``planner``: the function that plans ``cfg`` (default :func:`plan`; the shipped
    family's is ``fbctrl.experiments.shipped.plan``)."""
    planner = planner or plan
    if stages is not None:
        bad = [x for x in stages if x not in STAGES]
        if bad or not stages:
            raise ValueError(f"stages must be some of {', '.join(STAGES)}, got {list(stages)!r}")
    t0 = time.perf_counter()
    done, stopped, held = 0, None, {}
    while True:
        groups = _todo(cfg, stages, shard, held, planner)
        g = next((g for g in groups if g.units and not g.blocked), None)
        if g is None and _release_dead(held):
            continue
        if g is None:
            stopped = _why_stopped(groups, held)
            break
        first = g.units[0]
        limit = (_pretrain_group(device, g) if first.stage == "pretrain" else 1 if first.stage == "network"
                 else first.batch_limit(device, max_runs) if first.stage == "beyond"
                 else max_runs or default_max_runs(device, first.condition.rule.value))
        units = batches(g.units, limit)[0]
        est = sum(unit_seconds(cfg, costs, u) for u in units) if costs else 0.0
        used = time.perf_counter() - t0
        if budget_minutes is not None and used + est > budget_minutes * 60:
            stopped = f"budget: {g.title}, next batch of {len(units)} needs about {hms(est)}, {hms(budget_minutes * 60 - used)} left"
            break
        log(f"[{hms(used)}] {g.title}: {', '.join(u.describe() for u in units[:3])}"
            + (f" and {len(units) - 3} more" if len(units) > 3 else "") + (f" (about {hms(est)})" if costs else ""))
        done += _run_claimed(cfg, units, held, log, device=device, progress=progress, command=command)
    left = sum(len(shard_units(x, shard).units) for x in planner(cfg)
               if stages is None or (x.units and x.units[0].stage in stages))
    return {"units_done": done, "units_left": left, "wall_time_s": time.perf_counter() - t0, "stopped": stopped}


def _todo(cfg: PaperConfig, stages, shard, held: dict, planner) -> list[Group]:
    """The plan's groups of ``stages`` and ``shard``, without the units other processes hold."""
    groups = [shard_units(g, shard) for g in planner(cfg) if stages is None or (g.units and g.units[0].stage in stages)]
    return [replace(g, units=[u for u in g.units if u not in held]) if held else g for g in groups]


def _run_claimed(cfg: PaperConfig, units: list, held: dict, log, **kw) -> int:
    """Claim ``units``, run those still to do, release the claims; returns how many ran."""
    claims, mine = [], []
    try:
        for u in units:
            c = store.claim(u.path(cfg))
            if c is None:
                held[u] = u.path(cfg)
                log(f"  {u.describe()}: claimed by another process ({store.holder(u.path(cfg))}), left to it")
                continue
            claims.append(c)
            state, why = unit_status(cfg, u)
            if state == "done":
                continue                      # another process finished it meanwhile
            if state in ("damaged", "stale"):
                log(f"  recompute {u.describe()}: {why}")
            mine.append(u)
        if mine:
            run_batch(cfg, mine, **kw)
    finally:
        for c in claims:
            c.release()
    return len(mine)


def _release_dead(held: dict) -> bool:
    """Forget held units whose claim is gone or belongs to a dead process (they are planned
    again); True if any was forgotten."""
    gone = [u for u, p in held.items() if not store.claim_path(p).exists() or store.claim_is_stale(p)]
    for u in gone:
        del held[u]
    return bool(gone)


def _why_stopped(groups: list[Group], held: dict) -> str | None:
    left = [f"{x.title} ({x.blocked})" for x in groups if x.units]
    if held:
        hosts = sorted({store.holder(p) for p in held.values()})
        left.append(f"{len(held)} unit(s) claimed by other processes ({', '.join(hosts)}); they are computing them")
    return ("blocked: " + "; ".join(left)) if left else None


def _pretrain_group(device, g: Group) -> int:
    """Seeds of one kind in lockstep: all on a GPU, one at a time on a CPU (one network already
    fills the cores there; lockstep seeds are slower per network, Performance chapter)."""
    return len(g.units) if str(device).startswith("cuda") else 1
