"""One lockstep group of adaptation runs (``learning.adapt.adapt`` with many runs), shared by
the sweep's units and the adaptation units: each run's rate comes from its unit
(``unit.learning_rate``), and each run's file is written when the group finishes, so an
interruption loses at most the group in flight."""

from __future__ import annotations

import time

import numpy as np
import torch

from ...analysis.matched import matched_alignment
from ...core.checkpoint import read_sidecar
from ...learning.adapt import RunSpec, adapt
from ..protocol import Protocol, Rule
from ..store import file_sha256, rel_path
from .config import PaperConfig, Variant
from .files import is_done, read_unit, sweep_digest, write_unit
from .pretrain import PretrainUnit, load_networks

__all__ = ["run_lockstep", "same_run_at_the_sweep_rotations_rate"]


def same_run_at_the_sweep_rotations_rate(cfg: PaperConfig, unit, lr: float):
    """For a run at its own rotation's best rate (``Variant.OWN_BEST``): the finished run of the
    same network, condition, rotation and length at the sweep rotation's best rate, if that rate
    is ``lr``; else None. Both are then one experiment (same network, rate, rotation, trials and
    random stream: ``RunSpec.seed`` is the network seed), so the unit takes its records instead of
    computing them again (Methods, "Figure 8 at every rotation")."""
    if getattr(unit, "variant", Variant.NONE) is not Variant.OWN_BEST or unit.protocol is not Protocol.BEST:
        return None
    src = type(unit)(unit.kind, unit.seed, unit.rotation_deg, unit.condition, Protocol.BEST, unit.trials)
    if not is_done(cfg, src):
        return None
    rec, meta = read_unit(src.path(cfg))
    return (src, rec, meta) if float(meta["lr"]) == float(lr) else None


def _reuse(cfg: PaperConfig, unit, src, rec: dict, meta: dict, command: str) -> None:
    """Write ``unit`` from the records of ``src`` (:func:`same_run_at_the_sweep_rotations_rate`),
    its provenance kept and the file it came from named."""
    meta = {k: v for k, v in meta.items() if k not in ("kind", "unit")}
    meta.update(variant=unit.variant.value, command=command,
                sweep_sha256=sweep_digest(cfg.rates_config(), unit.condition, unit.rate_rotation),
                reused_from={"path": rel_path(src.path(cfg)), "sha256": file_sha256(src.path(cfg)),
                             "why": "the same run: its own rotation's best rate equals the sweep rotation's"})
    write_unit(cfg, unit, rec, meta)


def run_lockstep(cfg: PaperConfig, units: list, *, device="cpu", progress: bool = True, command: str = "") -> None:
    """Run ``units`` (one stage, kind, rule, length and variant: adaptation or sweep units) in
    lockstep, exact ("history") online BPTT unless the variant says otherwise, the integrated
    error from zero; RFLO runs of the adapt stage record their alignment with the gradient, and
    those of the published protocol the matched-state alignment at ``cfg.matched_points``
    (``analysis.matched.matched_alignment``). One file per run. A run at its own rotation's best
    rate that equals the sweep rotation's best rate is the run at that rate, already computed: its
    file is written from that run's records (:func:`same_run_at_the_sweep_rotations_rate`)."""
    kind, rule = units[0].kind, units[0].condition.rule
    variant = getattr(units[0], "variant", Variant.NONE)
    seeds = sorted({u.seed for u in units})
    nets = load_networks(cfg, kind, seeds, device)
    rates = [u.learning_rate(cfg, nets.W_fb[seeds.index(u.seed)], nets.W_out[seeds.index(u.seed)]) for u in units]
    left = []
    for u, r in zip(units, rates):       # a run that exists already under another name is not run again
        same = same_run_at_the_sweep_rotations_rate(cfg, u, r.lr)
        if same is not None:
            _reuse(cfg, u, *same, command)
        else:
            left.append((u, r))
    if not left:
        return
    units, rates = [u for u, _ in left], [r for _, r in left]
    runs = [RunSpec(net_index=seeds.index(u.seed), controller_on=u.condition.controller_on,
                    rotation_deg=u.rotation_deg, lr=r.lr, seed=u.seed, perturbation=getattr(u, "perturbation", None))
            for u, r in zip(units, rates)]
    align = rule is Rule.RFLO and units[0].stage == "adapt"
    # matched states feed the fair alignment cells, which read the published protocol's runs only
    matched = align and variant is Variant.NONE and units[0].protocol is Protocol.PUBLISHED
    points = tuple(t for t in cfg.matched_points if t <= units[0].trials) if matched else ()
    res = adapt(nets, rule.value, runs, trials=units[0].trials, align=align, align_every=cfg.align_every,
                bptt_weights=variant.bptt_weights, error_start=variant.error_start, on_divergence="mark",
                device=device, progress=progress, task_cfg=cfg.task,
                keep_weights=points)
    for i, (u, r) in enumerate(zip(units, rates)):
        records = {k: v[i] for k, v in res.records.items()}
        t_matched = time.perf_counter()
        if points and u.rotation_deg in cfg.matched_rotations and res.diverged[i] < 0:
            m = matched_alignment(nets.select(runs[i].net_index), torch.stack([res.weights[t][i] for t in points]),
                                  seed=u.seed, trials=cfg.matched_trials, go_step=cfg.task.go_step,
                                  rotation_deg=u.rotation_deg, task_cfg=cfg.task, device=device)
            records.update(matched_points=np.asarray(points), matched_local=m["local"], matched_global=m["global"])
        ck = PretrainUnit(kind, u.seed).path(cfg)
        meta = {"protocol": r.protocol, "effective_rate": r.as_dict(), "lr": r.lr, "condition": u.condition.name,
                "rotation_deg": u.rotation_deg, "trials": u.trials, "bptt_weights": variant.bptt_weights,
                "error_start": variant.error_start, "variant": variant.value, "test_every": 1, "align_every": cfg.align_every if align else None,
                "diverged_trial": int(res.diverged[i]),
                "network": {"checkpoint": rel_path(ck), "sha256": file_sha256(ck), "seed": u.seed,
                            "commit": read_sidecar(ck).get("commit")},
                "device": str(device), "group_size": len(runs), "compute_path": res.meta["compute_path"],
                "wall_time_s": res.wall_time / len(runs),
                "matched_wall_time_s": time.perf_counter() - t_matched,   # the matched-state evaluation, after it
                "command": command}
        if getattr(u, "protocol", None) is Protocol.BEST:
            meta["sweep_sha256"] = sweep_digest(cfg.rates_config(), u.condition, u.rate_rotation)
        write_unit(cfg, u, records, meta)
