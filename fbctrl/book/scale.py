"""The findings chapters at the paper's scale: every paper figure redrawn from the store's unit
files of the ten published-protocol networks (``results/paper``, ``checkpoints/published``), its
caption and the command that redraws it, and the chapter's verdict from the same numbers as the
introduction (:func:`fbctrl.experiments.verdicts.verdict_table`).

The chapters and ``python -m fbctrl figure NAME`` call the same :func:`draw`. It reads only; a
unit file that is missing leaves its network out (n says how many remain), and
:func:`missing_units` lists what ``--compute`` would run. Figure 1a (the controller's online
correction) has no unit file: it is computed live from the published networks (frozen weights,
seconds), and its caption says so.

Selections (each checked, one line naming the option and what is allowed): ``seeds`` (network
seeds of the store, default all), ``rotations`` (3b, 5a), ``rotation`` (1a, 3a), ``conditions``
(3a, 3b), ``rule`` (sweep), ``source`` (published or shipped networks: 2c, 4a, 5b), ``lag``
(4a), ``pairing`` (2c, 5b).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import paths
from ..analysis import online
from ..core.checkpoint import find_checkpoints, load_checkpoint
from ..core.task import TaskConfig
from ..experiments import beyond, metrics, stats, verdicts
from ..experiments import network_units
from ..experiments.network_units import NetworkUnit, shipped_seeds
from ..experiments.paper import (AdaptUnit, PaperConfig, best_swept_rates, is_done, load_network_units, load_runs,
                                 sweep_table, unit_seconds, published_costs)
from ..experiments.protocol import CONDITIONS, Condition, Protocol
from ..viz import plots, scale as viz_scale
from ..viz.beyond import plot_beyond_summary
from ..viz.chapters.paper_protocol import plot_paper_adaptation, plot_paper_sweep, plot_sweep_heatmaps
from .chapters import paper_protocol
from .glue import glue_caption
from ..viz.style import use_style

__all__ = ["FIGURES", "FigureSpec", "store_config", "check_options", "draw", "caption", "command", "load_data",
           "missing_units", "estimate_seconds", "verdict_lines", "save_figure", "use_style", "chapter_verdicts", "chapter_figure", "online_verdict_lines", "activity_data", "learning_data", "finals_data",
           "jacobian_data", "alignment_data", "efficiency_data", "newton_data", "sweep_data", "online_data"]

CONDITION_NAMES = tuple(c.name for c in CONDITIONS)
SOURCES = ("published", "shipped")
PAIRINGS = ("next", "same")
RULES = ("rflo", "bptt")


def store_config(root=None) -> PaperConfig:
    """The paper protocol's configuration with its folders under ``root`` (default: the
    repository, :func:`fbctrl.paths.repo_root`), whatever the working folder."""
    root = Path(root) if root is not None else paths.repo_root()
    cfg = PaperConfig()
    return replace(cfg, checkpoint_dir=str(root / cfg.checkpoint_dir), results_dir=str(root / cfg.results_dir),
                   shipped_dir=str(root / cfg.shipped_dir))


# ---------------------------------------------------------------------------------------------
# Reading the store
# ---------------------------------------------------------------------------------------------

def _adapt_units(cfg: PaperConfig, rotation: float, cond: Condition, seeds) -> list[AdaptUnit]:
    return [AdaptUnit("fb", int(s), float(rotation), cond, Protocol.PUBLISHED, cfg.trials) for s in seeds]


def _runs(cfg: PaperConfig, rotation: float, cond: Condition, seeds) -> tuple[list[int], dict, list[dict]]:
    """The finished, non-diverged runs of ``cond`` at ``rotation`` (published protocol) among
    ``seeds``: (seeds, records stacked over seeds, metas)."""
    units = [u for u in _adapt_units(cfg, rotation, cond, seeds) if u.path(cfg).is_file()]
    if not units:
        return [], {}, []
    rec, metas = load_runs(cfg, units)
    keep = [i for i, m in enumerate(metas) if m.get("diverged_trial", -1) < 0]
    return [units[i].seed for i in keep], {k: v[keep] for k, v in rec.items()}, [metas[i] for i in keep]


def _network(cfg: PaperConfig, measure: str, seeds, source: str) -> tuple[list[int], list[dict]]:
    got, recs, _ = load_network_units(cfg, measure, source)
    pick = [i for i, s in enumerate(got) if s in seeds]
    return [got[i] for i in pick], [recs[i] for i in pick]


def _stack(recs: list[dict], key: str) -> np.ndarray:
    """[seeds, ...] of ``key``, each network's record averaged over its targets (first axis)."""
    return np.stack([np.asarray(r[key], dtype=np.float64).mean(axis=0) for r in recs]) if recs else np.zeros((0, 1))


def activity_data(cfg: PaperConfig, seeds, source: str = "published", pairing: str = "next") -> dict:
    """Figure 2c: cosines of the control input with the whole-trial and step-loss gradients over
    the first rotated trial, controller on / off and the null model, per network (targets averaged)."""
    got, recs = _network(cfg, "activity", seeds, source)
    d = {"seeds": got, "pairing": pairing, "rotation": cfg.network_measures.rotation_deg,
         "go_s": cfg.task.go_step * cfg.task.dt}
    for key in ("trial", "inst"):
        for on in ("on", "off"):
            d[f"{key}_{on}"] = _stack(recs, f"cos_{key}_{pairing}_{on}")
        d[f"{key}_null"] = _stack(recs, f"cos_{key}_null_{pairing}_on")
    d["t"] = np.arange(1, d["trial_on"].shape[1] + 1) * cfg.task.dt
    return d


def learning_data(cfg: PaperConfig, seeds, rotation: float = 30.0, conditions=CONDITION_NAMES) -> dict:
    """Figure 3a: RFLO+c's training loss and every condition's test loss per trial."""
    test, train, first, got = {}, None, None, {}
    for c in CONDITIONS:
        if c.name not in conditions:
            continue
        s, rec, _ = _runs(cfg, rotation, c, seeds)
        if not s:
            continue
        test[c.name], got[c.name] = rec["test_loss"], s
        if first is None:
            first, train = c.name, rec["train_loss"]
    return {"test": test, "train": train, "first": first, "seeds": got, "rotation": rotation}


def finals_data(cfg: PaperConfig, seeds, rotations, conditions=CONDITION_NAMES, window: int = 10) -> dict:
    """Figure 3b: the test-loss curves at the first rotation and the final test loss (mean of the
    last ``window`` trials) per condition and rotation."""
    curves, finals = {}, {}
    for c in CONDITIONS:
        if c.name not in conditions:
            continue
        for r in rotations:
            s, rec, _ = _runs(cfg, r, c, seeds)
            if not s:
                continue
            if r == rotations[0]:
                curves[c.name] = rec["test_loss"]
            finals.setdefault(c.name, {})[float(r)] = metrics.final_loss(rec["test_loss"], window)
    return {"curves": curves, "finals": finals, "rotation": rotations[0]}


def jacobian_data(cfg: PaperConfig, seeds, source: str = "published", lag: int = 1) -> dict:
    """Figure 4a: spectral norms of dx_{k+lag}/dx_k over the trial, per network (targets averaged)."""
    got, recs = _network(cfg, "jacobian", seeds, source)
    d = {"seeds": got, "lag": lag, "rotation": cfg.network_measures.rotation_deg,
         "go_s": cfg.task.go_step * cfg.task.dt}
    for on in ("on", "off", "loop"):
        d[on] = _stack(recs, f"norm_{on}_L{lag}")
    d["t"] = (np.asarray(recs[0]["steps"]) if recs else np.zeros(1)) * cfg.task.dt
    d.update(jacobian_lag_ratios(cfg, recs))
    return d


JACOBIAN_KINDS = {   # what is compared on / off at each lag: (closed loop, rate Jacobian)
    "activity, open loop": (False, False),
    "activity, closed loop": (True, False),
    "rates, open loop": (False, True),
    "rates, closed loop": (True, True),
}


def jacobian_lag_ratios(cfg: PaperConfig, recs: list[dict]) -> dict:
    """Figure 4a against the lag: per network the ratio controller on / off of the mean norm over
    the movement (:func:`fbctrl.experiments.network_units.jacobian_values`) at every stored lag, for
    each of :data:`JACOBIAN_KINDS` the units hold, and the claim's negligible band."""
    claim = next(c for c in verdicts.NETWORK_CLAIMS if c.key == "jacobian_fig4a")
    lags = [int(L) for L in recs[0]["lags"]] if recs else []
    ratios = {}
    for kind, (closed, rates) in JACOBIAN_KINDS.items():
        if not recs or any(f"norm_{'rate_' if rates else ''}{'loop' if closed else 'on'}_L1" not in r for r in recs):
            continue
        ratios[kind] = np.array([[np.divide(*network_units.jacobian_values(r, L, cfg.task.go_step, closed_loop=closed,
                                                                            rates=rates)) for L in lags]
                                 for r in recs])
    return {"lags": np.asarray(lags), "ratios": ratios, "band": verdicts.claim_band(claim).edges(log=True)}


def _along(rec: dict, which: str, go_step: int) -> tuple[np.ndarray, np.ndarray]:
    """(aligned trials, [seeds, aligned trials]) of a condition's alignment records."""
    glo = np.asarray(rec["align_global"], dtype=np.float64)
    trials = np.flatnonzero(np.isfinite(glo).any(axis=0))
    if which == "local":
        return trials, np.nanmean(np.asarray(rec["align_local"], dtype=np.float64)[:, trials, go_step:], axis=2)
    return trials, glo[:, trials]


def alignment_data(cfg: PaperConfig, seeds, which: str = "local", rotation: float = 30.0) -> dict:
    """Figures 4b (``which`` local) and 4c (global): along the runs of RFLO+c and RFLO, and at
    the matched states of the RFLO+c runs (same weights, controller on and off)."""
    along, matched, got = {}, None, {}
    for c in CONDITIONS[:2]:
        s, rec, _ = _runs(cfg, rotation, c, seeds)
        if not s or "align_global" not in rec:
            continue
        along[c.name], got[c.name] = _along(rec, which, cfg.task.go_step), s
        if c.controller_on and f"matched_{which}" in rec:
            m = np.asarray(rec[f"matched_{which}"], dtype=np.float64)     # [seeds, points, on/off, trials]
            matched = (np.asarray(rec["matched_points"][0]), m[:, :, 0].mean(axis=2), m[:, :, 1].mean(axis=2))
    return {"along": along, "matched": matched, "which": which, "seeds": got, "rotation": rotation}


def efficiency_data(cfg: PaperConfig, seeds, rotations) -> dict:
    """Figure 5a under each definition (``metrics.EFFICIENCY_DEFINITIONS``): per condition and
    rotation, one value per network; 'equal_path' pairs each rule's two conditions on a network."""
    eff = {d: {} for d in metrics.EFFICIENCY_DEFINITIONS}
    for r in rotations:
        recs = {}
        for c in CONDITIONS:
            s, rec, metas = _runs(cfg, r, c, seeds)
            if s:
                recs[c.name] = (s, rec)
                for d in ("published", "per_trial", "whole_run"):
                    eff[d].setdefault(c.name, {})[float(r)] = metrics.efficiency(rec, d, lr=[m["lr"] for m in metas])
        for on, off in (("RFLO+c", "RFLO"), ("BPTT+c", "BPTT")):
            if on in recs and off in recs:
                both = sorted(set(recs[on][0]) & set(recs[off][0]))
                pick = lambda name: {k: v[[recs[name][0].index(x) for x in both]]   # noqa: E731
                                     for k, v in recs[name][1].items()}
                ea, eb, _ = metrics.efficiency_equal_path(pick(on), pick(off))
                eff["equal_path"].setdefault(on, {})[float(r)] = ea
                eff["equal_path"].setdefault(off, {})[float(r)] = eb
    return {"eff": eff, "rotations": [float(r) for r in rotations]}


def newton_data(cfg: PaperConfig, seeds, source: str = "published", pairing: str = "next") -> dict:
    """Figure 5b: cos(u_k, Newton direction) and cos(u_k, -gradient) in activity space over the trial."""
    got, recs = _network(cfg, "activity_newton", seeds, source)
    return {"seeds": got, "pairing": pairing, "rotation": cfg.network_measures.rotation_deg,
            "go_s": cfg.task.go_step * cfg.task.dt, "newton": _stack(recs, f"cos_newton_{pairing}"),
            "first": _stack(recs, f"cos_first_order_{pairing}"),
            "t": (np.asarray(recs[0]["steps"]) if recs else np.zeros(1)) * cfg.task.dt}


def sweep_data(cfg: PaperConfig, rules=RULES) -> dict:
    """Figure 8: each swept condition's table, the best rates and the published protocol's rates."""
    conds = [c for c in CONDITIONS if c.rule.value in rules]
    published = {}
    for c in conds:
        s, _, metas = _runs(cfg, cfg.sweep_rotation, c, cfg.sweep_seeds)
        published[c.name] = [float(m["lr"]) for m in metas]
    best = best_swept_rates(cfg)
    return {"tables": {c.name: sweep_table(cfg, c) for c in conds}, "best": {c.name: best[c.name] for c in conds
                                                                               if c.name in best},
            "published_lr": published, "trials": {r.upper(): int(n) for r, n in cfg.sweep_trials.items() if r in rules},
            "rotation_deg": cfg.sweep_rotation}


def heatmap_data(cfg: PaperConfig, conditions=CONDITION_NAMES) -> dict:
    """Figure 8 as the paper draws it: the sweep at every swept rotation, per condition of
    ``conditions`` (``fbctrl.book.chapters.paper_protocol.sweep_heatmap_data``)."""
    d = paper_protocol.sweep_heatmap_data(cfg)
    d["conditions"] = {c: v for c, v in d["conditions"].items() if c in conditions}
    d["trials"] = {r.upper(): int(n) for r, n in cfg.sweep_trials.items()}
    d["seeds"] = [int(s) for s in cfg.sweep_seeds]
    return d


def online_data(cfg: PaperConfig, seeds, rotation: float = 30.0, repeats: int = 8, device="cpu") -> dict:
    """Figure 1a, computed live (no unit file holds it): the published networks with and without
    feedback, frozen, on plain, rotated and pushed centre-out reaches, controller on and off:
    losses per network and the position error over the trial."""
    task_cfg = TaskConfig()
    nets = {}
    for kind in ("fb", "nofb"):
        found = find_checkpoints(cfg.checkpoint_dir, kind)
        nets[kind] = {s: load_checkpoint(p, device=device) for s, p in found.items() if s in seeds}
    if not nets["fb"]:
        raise ValueError(f"seeds must name published networks with feedback in {cfg.checkpoint_dir}, got {list(seeds)}")
    n_units = next(iter(nets["fb"].values())).cfg.n
    conds = online.conditions(n_units, rotation_deg=rotation, repeats=repeats, task_cfg=task_cfg)
    errs, losses = {}, {}
    for kind, ns in nets.items():
        losses[kind] = online.loss_table(ns, conds) if ns else {}
        for c in conds:
            for on in ((True, False) if kind == "fb" else (True,)):
                if ns:
                    errs[(kind, c.name, on)] = online.seed_traces(ns, c, controller_on=on)["err"]
    return {"errs": errs, "losses": losses, "titles": {c.name: c.label for c in conds},
            "t": plots.time_axis(task_cfg.T, task_cfg.dt), "seeds": {k: sorted(v) for k, v in nets.items()},
            "rotation": rotation, "trials": len(conds[0].x0)}


def beyond_data(cfg: PaperConfig) -> dict:
    """The summary figure of "Beyond the paper": :func:`fbctrl.experiments.beyond.summary_records`
    (each claim's effect at each point of delay, density and task), read from the extension's units."""
    records = beyond.summary_records(cfg)
    return {"records": records, "n_by_point": {(r["axis"], r["point"]): r["n"] for r in records}}


# ---------------------------------------------------------------------------------------------
# The figures: options, data, drawing, caption, command
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FigureSpec:
    """One figure of the book at the paper's scale: the paper's figure it redraws, the options
    it takes (with defaults), the claims of the verdict table it illustrates, and its band."""

    name: str
    paper: str
    chapter: str
    options: tuple
    claims: tuple
    band: str


_GEO = "geometric mean over networks, band: its 95% t interval"
_MEAN = "mean over networks, band: its 95% t interval"
FIGURES = {f.name: f for f in (
    FigureSpec("1a", "Fig. 1a", "online_correction", ("seeds", "rotation"), (),
               "mean over networks, band: ± SEM"),
    FigureSpec("2c", "Fig. 2c", "activity_space", ("seeds", "source", "pairing"), ("activity_fig2c",), _MEAN),
    FigureSpec("3a", "Fig. 3a", "adaptation", ("seeds", "rotation", "conditions"),
               ("final_loss_rflo_30", "final_loss_bptt_30"), _GEO),
    FigureSpec("3b", "Fig. 3b", "adaptation", ("seeds", "rotations", "conditions"),
               tuple(f"final_loss_{r}_{d}" for r in RULES for d in (30, 40, 50, 60)), _GEO),
    FigureSpec("4a", "Fig. 4a", "decoupling", ("seeds", "source", "lag"), ("jacobian_fig4a",), _GEO),
    FigureSpec("4b", "Fig. 4b", "decoupling", ("seeds",), ("align_local",), _MEAN),
    FigureSpec("4c", "Fig. 4c", "decoupling", ("seeds",), ("align_global",), _MEAN),
    FigureSpec("5a", "Fig. 5a", "second_order", ("seeds", "rotations"),
               ("efficiency", "efficiency_40", "efficiency_50", "efficiency_60"), _GEO),
    FigureSpec("5b", "Fig. 5b", "second_order", ("seeds", "source", "pairing"), ("activity_newton_fig5b",), _MEAN),
    FigureSpec("sweep", "Fig. 8", "lr_sweep", ("rule",), ("final_loss_rflo_30", "final_loss_bptt_30"), "geometric mean over the swept networks, bars: "
               "its 95% t interval"),
    FigureSpec("8", "Fig. 8", "lr_sweep", ("conditions",),
               tuple(f"final_loss_{r}_{d}" for r in RULES for d in (40, 50, 60)),
               "Colour: geometric mean over the swept networks"),
    FigureSpec("beyond", "Beyond the paper", "beyond", (), (),
               "Points: geometric mean (ratios) or mean (differences) over networks, bars: its 95% t interval, grey: "
               "the claim's negligible band"),
)}


def _defaults(cfg: PaperConfig) -> dict:
    return {"seeds": None, "rotation": cfg.sweep_rotation, "rotations": tuple(cfg.rotations),
            "conditions": CONDITION_NAMES, "rule": None, "source": "published", "lag": 1, "pairing": "next"}


def _allowed_seeds(cfg: PaperConfig, source: str) -> list[int]:
    return [int(s) for s in (cfg.fb_seeds if source == "published" else shipped_seeds(cfg))]


def _check_one(cfg: PaperConfig, key: str, v, source: str):
    """One option, normalised, or a one-line ValueError naming it and what is allowed."""
    choices = {"conditions": CONDITION_NAMES, "rule": RULES, "source": SOURCES, "pairing": PAIRINGS,
               "lag": tuple(cfg.network_measures.jacobian_lags), "rotations": tuple(cfg.rotations),
               "seeds": tuple(_allowed_seeds(cfg, source))}
    if key == "rotation":
        if v not in tuple(cfg.rotations):
            raise ValueError(f"rotation must be one of {', '.join(f'{r:g}' for r in cfg.rotations)}, got {v!r}")
        return float(v)
    if key in ("conditions", "rotations", "seeds"):
        items = tuple(float(x) if key == "rotations" else x for x in (v if isinstance(v, (list, tuple)) else [v]))
        if not items or any(x not in choices[key] for x in items) or len(set(items)) != len(items):
            shown = ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in choices[key])
            raise ValueError(f"{key} must be distinct values among {shown}, got {list(items)!r}")
        return tuple(sorted(items)) if key != "conditions" else tuple(c for c in CONDITION_NAMES if c in items)
    if v not in choices[key]:
        raise ValueError(f"{key} must be one of {', '.join(map(str, choices[key]))}, got {v!r}")
    return v


def check_options(name: str, cfg: PaperConfig, **opts) -> dict:
    """The options of figure ``name`` with defaults filled in; a figure or option that does not
    exist, or a value the store cannot have, raises a one-line ValueError."""
    if name not in FIGURES:
        raise ValueError(f"figure must be one of {', '.join(FIGURES)}, got {name!r}")
    spec = FIGURES[name]
    given = {k: v for k, v in opts.items() if v is not None}
    extra = sorted(set(given) - set(spec.options))
    if extra:
        takes = ", ".join("--" + o for o in spec.options) or "no option besides --out"
        raise ValueError(f"figure {name} takes {takes}; not --{extra[0]}")
    out = {k: v for k, v in _defaults(cfg).items() if k in spec.options}
    source = given.get("source", out.get("source", "published"))
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    for k, v in given.items():
        out[k] = _check_one(cfg, k, v, source)
    if "seeds" in out and out["seeds"] is None:
        out["seeds"] = tuple(_allowed_seeds(cfg, source))
    if name == "sweep":
        out["rule"] = (out["rule"],) if out.get("rule") else RULES
    return out


def load_data(name: str, cfg: PaperConfig, opts: dict, device="cpu") -> dict:
    """The data figure ``name`` draws, read from the store (1a: computed live)."""
    o = opts
    loaders = {
        "1a": lambda: online_data(cfg, o["seeds"], o["rotation"], device=device),
        "2c": lambda: activity_data(cfg, o["seeds"], o["source"], o["pairing"]),
        "3a": lambda: learning_data(cfg, o["seeds"], o["rotation"], o["conditions"]),
        "3b": lambda: finals_data(cfg, o["seeds"], o["rotations"], o["conditions"]),
        "4a": lambda: jacobian_data(cfg, o["seeds"], o["source"], o["lag"]),
        "4b": lambda: alignment_data(cfg, o["seeds"], "local"),
        "4c": lambda: alignment_data(cfg, o["seeds"], "global"),
        "5a": lambda: efficiency_data(cfg, o["seeds"], o["rotations"]),
        "5b": lambda: newton_data(cfg, o["seeds"], o["source"], o["pairing"]),
        "sweep": lambda: sweep_data(cfg, o["rule"]),
        "8": lambda: heatmap_data(cfg, o["conditions"]),
        "beyond": lambda: beyond_data(cfg),
    }
    return loaders[name]()


def _draw_data(name: str, d: dict):
    if name == "1a":
        return plots.plot_online_errors(d["t"], d["errs"], d["titles"])
    if name == "3b":
        return plot_paper_adaptation(d["curves"], d["finals"], rotation_deg=d["rotation"])
    if name == "sweep":
        return plot_paper_sweep(d["tables"], d["best"], d["published_lr"], trials=d["trials"],
                                              rotation_deg=d["rotation_deg"])
    if name == "8":
        return plot_sweep_heatmaps(d)
    if name == "beyond":
        return plot_beyond_summary(d["records"])
    return {"2c": viz_scale.plot_activity_scale, "3a": viz_scale.plot_learning_scale,
            "4a": viz_scale.plot_jacobian_scale, "4b": viz_scale.plot_alignment_scale,
            "4c": viz_scale.plot_alignment_scale, "5a": viz_scale.plot_efficiency_scale,
            "5b": viz_scale.plot_newton_scale}[name](d)


def draw(name: str, cfg: PaperConfig | None = None, *, device="cpu", **opts):
    """Figure ``name`` from the store with ``opts`` (:func:`check_options`): (figure, data, options)."""
    cfg = cfg or store_config()
    opts = check_options(name, cfg, **opts)
    d = load_data(name, cfg, opts, device=device)
    if "seeds" in d and not len(d["seeds"]):
        raise ValueError(f"figure {name} has no whole, current unit file in the store for seeds "
                         f"{', '.join(map(str, opts.get('seeds', ())))} (compute them: "
                         f"{command(name, opts, cfg)} --compute)")
    return _draw_data(name, d), d, opts


def command(name: str, opts: dict, cfg: PaperConfig | None = None) -> str:
    """The command line that redraws figure ``name`` with ``opts`` (defaults left out)."""
    cfg = cfg or store_config()
    base = check_options(name, cfg)
    parts = ["python -m fbctrl figure", name]
    for k in FIGURES[name].options:
        v = opts.get(k, base.get(k))
        if v == base.get(k) or v is None:
            continue
        vals = v if isinstance(v, (list, tuple)) else [v]
        parts.append(f"--{k} " + " ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in vals))
    return " ".join(parts)


def _n_text(d: dict) -> str:
    """How many networks the figure rests on."""
    if "n_by_point" in d:
        return "n in each point's label"
    seeds = d.get("seeds")
    if isinstance(seeds, dict):
        ns = sorted({len(v) for v in seeds.values()})
        return "n = " + ("–".join(map(str, (ns[0], ns[-1]))) if len(ns) > 1 else str(ns[0]) if ns else "0") + \
               " networks per curve (in the legend)"
    if seeds is not None:
        return f"n = {len(seeds)} networks (seeds {', '.join(map(str, seeds))})"
    return "n per point in the legend"


_WHAT = {
    "1a": "Position error over the first trial of a {rotation:g}° rotation (rotated), of a pushed and of a plain "
          "centre-out reach, published-protocol networks with frozen weights: with feedback, controller on (solid) "
          "and off (dashed); without feedback (dotted). Computed live from the networks (no unit file holds it)",
    "2c": "Cosine of the control input u_k with the negative activity gradient over the first trial of a "
          "{rotation:g}° rotation, all 8 targets averaged per network; controller on (solid), off (dashed), random "
          "feedback weights (grey, the null model); u_k paired with r_{j}",
    "3a": "Adaptation to a {rotation:g}° rotation over 1000 trials, published protocol. Left: RFLO+c's training "
          "loss (controller on) and its test loss on the 8 rotated targets with the controller off (grey); right: "
          "the test loss (controller off) of every condition",
    "3b": "Left: test loss (controller off) over the trials at {rotation:g}°; right: final test loss (mean of the "
          "last 10 of 1000 trials) of every condition against the rotation, single networks as dots, published "
          "protocol",
    "4a": "(a) Spectral norm of the lag-{lag} Jacobian dx_(k+{lag})/dx_k over the first trial of a {rotation:g}° "
          "rotation (targets 0, 2, 4, 6 averaged per network): open loop with the controller on (solid) and off "
          "(dashed), closed loop, the error state included (orange). (b) The ratio controller on / off of the norm "
          "averaged over the movement, per network, against the lag, for the activity Jacobian and the rate "
          "Jacobian dr_(k+L)/dr_k (dashed, open markers), open loop (blue) and closed loop (orange); grey: the "
          "claim's negligible band",
    "4b": "Local alignment (each step's RFLO update against that step's exact gradient, movement steps averaged). "
          "Left: along the RFLO+c and RFLO runs at {rotation:g}° (every 50th trial); right: at matched states, the "
          "RFLO+c run's weights at the trials shown, 32 trials each with the controller on and off",
    "4c": "Global alignment (a trial's summed RFLO update against the trial's exact gradient). Left: along the "
          "RFLO+c and RFLO runs at {rotation:g}° (every 50th trial); right: at matched states, the RFLO+c run's "
          "weights at the trials shown, 32 trials each with the controller on and off",
    "5a": "Efficiency of the weight path, one panel per definition (Methods): the published per-trial ratio (it "
          "includes the learning rate), the scale-free per-trial ratio, the whole-run ratio and the whole-run ratio "
          "at equal path length (each rule's two conditions paired); single networks as dots",
    "5b": "Cosine of the control input with the activity-space Newton direction (damping 1e-3) and with the "
          "negative gradient over the first trial of a {rotation:g}° rotation (targets 0, 2, 4, 6 averaged per "
          "network); u_k paired with r_{j}",
    "8": "Final test loss (controller off, mean of the last 10 trials) over the learning rate (columns) and the "
         "rotation (rows), one panel per condition, one log colour scale: grey where no run has finished, a red cross "
         "where a network diverged, a star at each rotation's best rate (the rate its fair cells run at). RFLO and "
         "RFLO+c ran {rflo} trials, online BPTT {bptt}",
    "beyond": "Each claim's effect against the feedback delay (0, 50, 100 ms), the feedback density (1, 0.3, 0.1) "
              "and the task (reach, limit cycle), the first point of each group the published networks of the same "
              "seeds, beside the claim in another convention",
    "sweep": "Final test loss (controller off, mean of the last 10 trials) against the learning rate at "
             "{rotation:g}°, each condition at every swept rate: single networks as dots, a cross where a network "
             "diverged, a star at the best rate, triangles: the published protocol's rate(s)",
}


def caption(name: str, d: dict, opts: dict, cfg: PaperConfig | None = None) -> str:
    """The figure's caption: what it shows, its band, n, and the command that redraws it."""
    spec = FIGURES[name]
    rot = d.get("rotation", d.get("rotation_deg", 30.0))
    what = _WHAT[name].format(rotation=rot, lag=opts.get("lag", 1),
                              j="{k+1}" if opts.get("pairing", "next") == "next" else "k",
                              **({"rflo": d["trials"].get("RFLO", "?"), "bptt": d["trials"].get("BPTT", "?")}
                                 if isinstance(d.get("trials"), dict) else {}))
    src = " Networks pre-trained with pushes (robustness)." if opts.get("source") == "shipped" else ""
    lead = "" if spec.band[0].isupper() else "Lines: "
    head = f"{spec.paper}, summary." if name == "beyond" else f"{spec.paper} at the paper's scale."
    return (f"{head} {what}.{src} {lead}{spec.band}; {_n_text(d)}. "
            f"Redraw: `{command(name, opts, cfg)}`.")


def verdict_lines(cfg: PaperConfig, keys) -> list[str]:
    """Each claim of ``keys`` as the verdict table states it (``verdicts.verdict_table``): figure,
    claim, and per column the effect [95% CI], n, p and the verdict; a fair cell read at the 30°
    sweep's rates while its own rotation's runs are missing says so (the mark ◊ of the table)."""
    claims = [c for c in verdicts.CLAIMS if c.key in keys]
    results = verdicts.verdict_table(cfg, claims, ("as published", "fair"), marks=True)
    out = []

    def rates_note(r) -> str:
        m = next((m for m in r.marks if m.kind == "rates"), None)
        return (f" {m.symbol} (at the {cfg.sweep_rotation:g}° sweep's best rates: this rotation's own best-rate runs "
                f"are not computed yet)") if m else ""
    for c in claims:
        cells = [f"{r.column}: {verdicts.format_cell(r)}, **{r.verdict.value}**{rates_note(r)}"
                 for r in results if r.key == c.key]
        out.append(f"{c.figure}, {c.claim}: " + "; ".join(cells))
    return out


def missing_units(name: str, cfg: PaperConfig, opts: dict) -> list:
    """The units figure ``name`` reads that the store does not hold whole and current (missing,
    damaged, or computed from other inputs or settings: what ``--compute`` runs)."""
    o = opts
    if name in ("3a", "3b", "4b", "4c", "5a"):
        rots = o.get("rotations") or (o.get("rotation", cfg.sweep_rotation),)
        conds = [c for c in CONDITIONS if c.name in o.get("conditions", CONDITION_NAMES)]
        if name in ("4b", "4c"):
            conds = list(CONDITIONS[:2])
        units = [u for r in rots for c in conds for u in _adapt_units(cfg, r, c, o["seeds"])]
    elif name in ("2c", "4a", "5b"):
        measure = {"2c": "activity", "4a": "jacobian", "5b": "activity_newton"}[name]
        units = [NetworkUnit(measure, "fb", int(s), o["source"]) for s in o["seeds"]]
    else:
        return []          # 1a is computed live; the sweep is planned by `python -m fbctrl paper`
    return [u for u in units if not is_done(cfg, u)]


def estimate_seconds(cfg: PaperConfig, units: list) -> float:
    """The protocol's cost model for ``units`` on one core of the reference CPU."""
    costs = published_costs()
    return float(sum(unit_seconds(cfg, costs, u) for u in units))


def save_figure(fig, path, text: str) -> Path:
    """Write ``fig`` to ``path`` (.png, .pdf or .svg) atomically, with its caption and the
    commit it was drawn at in the file's metadata."""
    path = Path(path)
    suffix = path.suffix.lower()
    meta = {".png": {"Description": text, "Software": f"fbctrl {paths.git_commit() or 'unknown commit'}"},
            ".pdf": {"Subject": text, "Creator": f"fbctrl {paths.git_commit() or 'unknown commit'}"},
            ".svg": {"Description": text}}
    if suffix not in meta:
        raise ValueError(f"out must be a file ending in .png, .pdf or .svg, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")
    fig.savefig(tmp, metadata=meta[suffix])
    os.replace(tmp, path)
    return path


def online_verdict_lines(d: dict) -> list[str]:
    """Figure 1a's claim, per kind of reach: the loss with the controller off over the loss with
    it on, paired per network (``stats.paired_effect`` on the log scale; > 1 favours the paper),
    judged by the four-word rule with the loss band (``verdicts.BANDS["loss"]``)."""
    out = []
    for name, title in d["titles"].items():
        on, off = d["losses"]["fb"][(name, True)], d["losses"]["fb"][(name, False)]
        eff = stats.paired_effect(off, on, log=True)
        out.append(f"{title}: loss off / on {verdicts.format_effect(eff)}, **{stats.verdict(eff, 1, verdicts.BANDS['loss']).value}**")
    return out


# the robustness rows a chapter states under its figure (by column label), beside its two columns
CHAPTER_CONVENTIONS = {
    "4a": ("closed-loop Jacobian lag 1", "closed-loop Jacobian lag 10",
           "closed-loop Jacobian at the lag of the largest effect", "rate Jacobian dr_(k+1)/dr_k",
           "rate Jacobian through the closed loop at the lag of the largest effect"),
}
# the claims whose chapter states the stage of learning (per trial window, at matched states)
CHAPTER_STAGES = {"4b": "align_local", "4c": "align_global", "5a": "efficiency"}


def convention_lines(cfg: PaperConfig, name: str) -> list[str]:
    """Figure ``name``'s claims under the conventions of :data:`CHAPTER_CONVENTIONS`, one line
    each: the robustness row, effect [95% CI], n, p and verdict."""
    labels = CHAPTER_CONVENTIONS.get(name, ())
    if not labels:
        return []
    claims = [c for c in verdicts.CLAIMS if c.key in FIGURES[name].claims]
    out = []
    for r in verdicts.verdict_table(cfg, claims, labels):
        lag = f" ({r.definition.split(':')[0]})" if "largest" in r.column and r.effect.n else ""
        out.append(f"{r.column}{lag}: {verdicts.format_cell(r)}, **{r.verdict.value}**")
    return out


def stage_lines(cfg: PaperConfig, name: str) -> list[str]:
    """For Figures 4b, 4c and 5a: the sentence on the stage of learning (per trial window along
    the runs and at matched states; :func:`fbctrl.book.chapters.paper_protocol.stage_sentence`), and for the
    alignments the sentence on the two conventions of the exact gradient."""
    key = CHAPTER_STAGES.get(name)
    if key is None:
        return []
    c = next(x for x in verdicts.CLAIMS if x.key == key)
    cols = [col for col in verdicts.ROBUSTNESS if verdicts.applies(c, col) and (
        col.group == "stage" or col.gradient != "detached" or col.efficiency in ("matched", "per_trial"))]
    res = verdicts.verdict_table(cfg, (c,), ("as published",) + tuple(col.name for col in cols))
    stage = {key: (res[0], res[1:])}
    out = ["Stage of learning: " + paper_protocol.stage_sentence(key, stage)]
    if key != "efficiency":
        rs = {verdicts.COLUMNS[r.column].gradient: r for r in res[1:]}
        det, loop = rs.get("detached-pretrained"), rs.get("loop")
        if det is not None and loop is not None and loop.effect.n >= 2:
            same = "the same verdict" if loop.verdict == det.verdict else \
                f"{det.verdict.value} becomes {loop.verdict.value}"
            out.append(f"Which gradient: at the pre-trained weights the controller's effect is "
                       f"{verdicts.format_cell(det)} with the fed-back error detached (the published code) and "
                       f"{verdicts.format_cell(loop)} with the loop kept in the exact gradient ({same}).")
        else:
            out.append("Which gradient: the alignment at the pre-trained weights with the loop kept in the exact "
                       "gradient is not computed yet (`python -m fbctrl paper --only network`).")
    return out


def chapter_verdicts(name: str, cfg: PaperConfig, d: dict | None = None) -> str:
    """The verdicts a chapter states under figure ``name``, as a Markdown list: the verdict
    table's cells of the figure's claims (the introduction's numbers), the same claims under the
    conventions a referee would try (:data:`CHAPTER_CONVENTIONS`), the stage of learning
    (:data:`CHAPTER_STAGES`); for Figure 1a the controller's effect on the loss of the figure's
    networks."""
    lines = online_verdict_lines(d) if name == "1a" else (
        verdict_lines(cfg, FIGURES[name].claims) + convention_lines(cfg, name) + stage_lines(cfg, name))
    return "\n".join(f"- {line}" for line in lines) or "- no claim of the verdict table rests on this figure"


def chapter_figure(name: str, paper_seeds=None, **opts):
    """What a chapter's paper-scale cell draws: (figure, data, options, caption) of figure
    ``name`` on the store of this repository, the networks ``paper_seeds`` (None: all)."""
    cfg = store_config()
    if "seeds" in FIGURES[name].options:
        opts["seeds"] = paper_seeds
    for param, key in (("paper_seeds", "seeds"), ("paper_rotations", "rotations")):
        try:
            _check_one(cfg, key, opts[key], "published") if opts.get(key) is not None else None
        except ValueError as exc:
            raise ValueError(f"{param} must be None or {str(exc).split(' must be ', 1)[1]}") from None
    fig, d, o = draw(name, cfg, **opts)
    text = caption(name, d, o, cfg)
    glue_caption(f"fig-scale-{name}", text)   # the runner copies it into the figure's caption
    return fig, d, o, text
