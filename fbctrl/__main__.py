"""Command line: ``python -m fbctrl {pretrain,evaluate,paper,verdicts,adapt,bench,figure} ...``.

Bad arguments end with one line ``fbctrl: error: ...`` naming the argument and what is allowed,
and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
from functools import partial
from pathlib import Path

import torch

from .book import scale
from .book.chapters.paper_protocol import config_at
from .cli import OneLineParser, device, existing_file, input_folder, number, output_file, writable_folder
from .core.checkpoint import CheckpointError, atomic_write_json, check_network_files, load_checkpoint
from .core.evaluate import evaluate, evaluate_cycles
from .core.task import TaskConfig
from .core.tasks import REACH_SETS, TASK_NAMES
from .core.train import PretrainConfig, network_tag, pretrain
from .experiments import beyond, paper, shipped, store, verdicts
from .experiments.runs import provenance
from .learning.adapt import DivergenceError, checkpoint_task, cli_adapt
from .paths import repo_root
from .perf import bench


class CLIError(Exception):
    """A bad argument: printed as one line, exit code 2."""


class _Parser(OneLineParser):
    error_class = CLIError


def _positive_int(name):
    return number(name, "a positive integer", integer=True, ok=lambda v: v > 0)


def _nonneg_int(name):
    return number(name, "a non-negative integer", integer=True, ok=lambda v: v >= 0)


def _positive_float(name):
    return number(name, "a positive number", ok=lambda v: v > 0)


def _stages(s):
    got = [x.strip() for x in str(s).split(",") if x.strip()]
    if not got or any(x not in paper.STAGES for x in got):
        raise argparse.ArgumentTypeError(f"only must be stages among {', '.join(paper.STAGES)} (comma-separated), "
                                         f"got {s!r}")
    return got


def _shard(s):
    try:
        i, n = (int(x) for x in str(s).split("/"))
        return paper.check_shard((i, n))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must be I/N with integers 0 <= I < N (e.g. 0/2 and 1/2), "
                                         f"got {s!r}") from None


_angle = number("rotation", "a finite number of degrees")
# a delay of a whole trial or more would feed back nothing at all
_delay = number("delay", f"an integer number of steps in [0, {TaskConfig.T - 1}] (a trial has {TaskConfig.T} steps)",
                integer=True, ok=lambda v: 0 <= v < TaskConfig.T)
_density = number("density", "a number in [0, 1]", ok=lambda v: 0.0 <= v <= 1.0)
_shift = number("shift", "a finite number of Hz")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m fbctrl", description="Feedback-controlled RNNs (Kaleb et al. 2024).")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    _add_pretrain(sub)
    _add_evaluate(sub)
    _add_paper(sub)
    _add_verdicts(sub)
    _add_adapt(sub)
    _add_bench(sub)
    _add_figure(sub)
    return p


FIGURE_FORMATS = (".png", ".pdf", ".svg")
NETWORKS = ("published", "shipped")          # the network families of the store (paper --networks)


def _figure_out(s):
    if Path(str(s)).suffix.lower() not in FIGURE_FORMATS:
        raise argparse.ArgumentTypeError(f"out must be a file ending in {', '.join(FIGURE_FORMATS)}, got {s!r}")
    return Path(s)


def _add_figure(sub) -> None:
    p = sub.add_parser("figure", help="redraw a figure of the book from the paper protocol's unit files")
    p.add_argument("name", choices=list(scale.FIGURES), help="the paper's figure (8: Figure 8, the sweep at every rotation; sweep: the 30 deg sweep against the published rates; beyond: the summary of Beyond the paper)")
    p.add_argument("--seeds", type=_nonneg_int("seeds"), nargs="+", default=None, help="network seeds (default all)")
    p.add_argument("--rotations", type=_angle, nargs="+", default=None, help="rotations in degrees (3b, 5a)")
    p.add_argument("--rotation", type=_angle, default=None, help="one rotation in degrees (1a, 3a)")
    p.add_argument("--conditions", nargs="+", default=None, help="among RFLO+c RFLO BPTT+c BPTT (3a, 3b)")
    p.add_argument("--rule", default=None, help="rflo or bptt (sweep)")
    p.add_argument("--source", default=None, help="published, or shipped: networks pre-trained with pushes (2c, 4a, 5b)")
    p.add_argument("--lag", type=_positive_int("lag"), default=None, help="Jacobian lag in steps (4a)")
    p.add_argument("--pairing", default=None, help="next (u_k with r_{k+1}, as published) or same (2c, 5b)")
    p.add_argument("--out", type=_figure_out, required=True, help="file.png, file.pdf or file.svg")
    p.add_argument("--compute", action="store_true", help="first run the unit files the figure lacks")
    p.add_argument("--root", default=None, help="a clone of the book's repository (default: this one)")
    p.add_argument("--device", type=device, default="cpu")


def _add_pretrain(sub) -> None:
    p = sub.add_parser("pretrain", help="BPTT pre-training of one or several seeds in lockstep")
    p.add_argument("--feedback", choices=["on", "off"], default="on",
                   help="on: feedback density 1 (learned W_fb); off: density 0")
    p.add_argument("--density", type=_density, default=None, help="feedback density (overrides --feedback)")
    p.add_argument("--delay", type=_delay, default=0, help="feedback delay in steps")
    p.add_argument("--seeds", type=_nonneg_int("seeds"), nargs="+", default=[0])
    p.add_argument("--n", type=_positive_int("n"), default=PretrainConfig.n)
    p.add_argument("--batches", type=_positive_int("batches"), default=PretrainConfig.batches)
    p.add_argument("--batch-size", type=_positive_int("batch-size"), default=PretrainConfig.batch_size)
    p.add_argument("--lr", type=_positive_float("lr"), default=PretrainConfig.lr)
    p.add_argument("--eval-every", type=_positive_int("eval-every"), default=PretrainConfig.eval_every)
    p.add_argument("--checkpoint-every", type=_positive_int("checkpoint-every"), default=PretrainConfig.checkpoint_every)
    p.add_argument("--no-push", action="store_true", help="train without pushes")
    p.add_argument("--task", choices=list(TASK_NAMES), default="reach",
                   help="reach (the paper) or limit-cycle (a commanded rhythm; file stems lc_...)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="train again networks whose files are already finished")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--no-progress", action="store_true")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="loss of a checkpoint on a test set")
    p.add_argument("checkpoint", type=existing_file)
    p.add_argument("--task", choices=list(TASK_NAMES) + list(REACH_SETS), default=None,
                   help="the checkpoint's task (default: from its sidecar); for reaching, the test set: "
                        "centre-out (also 'reach') or random")
    p.add_argument("--rotation", type=_angle, default=0.0, help="visuomotor rotation in degrees (reaching)")
    p.add_argument("--shift", type=_shift, default=0.0, help="frequency shift in Hz (limit cycle)")
    p.add_argument("--controller", choices=["on", "off"], default="on")
    p.add_argument("--push", action="store_true")
    p.add_argument("--trials", type=_positive_int("trials"), default=256)
    p.add_argument("--seed", type=_nonneg_int("seed"), default=0)
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--json", action="store_true")


def _add_paper(sub) -> None:
    p = sub.add_parser("paper", help="the paper's protocol as resumable units (pre-training, adaptation, sweep)")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--budget-minutes", type=_positive_float("budget-minutes"), default=None,
                   help="stop cleanly before a batch that would not fit (the most important results come first)")
    p.add_argument("--plan", action="store_true", help="print the plan and its estimated time, run nothing")
    p.add_argument("--tiny", action="store_true", help="a dry run of every stage at n 20 with 2 seeds (seconds on a CPU)")
    p.add_argument("--checkpoint-dir", default=None, help="networks (default: the repository's checkpoints/published)")
    p.add_argument("--results-dir", default=None, help="one file per unit (default: the repository's results/paper)")
    p.add_argument("--max-runs", type=_positive_int("max-runs"), default=None,
                   help="runs per lockstep group (default: on a CPU 1, or 10 for RFLO without a C compiler; a whole stage on a GPU)")
    p.add_argument("--no-calibrate", action="store_true", help="skip the timing of a few batches and trials")
    p.add_argument("--only", type=_stages, default=None, metavar="STAGE[,STAGE]",
                   help="run (and print) only the groups of these stages: pretrain, network, adapt, sweep "
                        "(e.g. --only network: the measures that need only the networks)")
    p.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                   help="run only the units of network seeds s with s %% N == I, so that N processes (e.g. one per "
                        "core: --shard 0/2 and --shard 1/2) share the plan without computing a unit twice; on a CPU each "
                        "takes cores / N threads unless OMP_NUM_THREADS is set")
    p.add_argument("--save", default=None, help="with --plan: also write the plan's cost per stage (measured, "
                   "and the published code's for the same work) to this .json file")
    p.add_argument("--networks", choices=list(NETWORKS), default="published",
                   help="published: the paper protocol's networks (checkpoints/published); shipped: the networks "
                        "pre-trained with pushes (checkpoints/), the runs the findings chapters read")
    p.add_argument("--no-progress", action="store_true")


def _add_verdicts(sub) -> None:
    p = sub.add_parser("verdicts", help="the verdict table from the paper protocol's unit files")
    p.add_argument("--checkpoint-dir", default=None)
    p.add_argument("--results-dir", default=None)
    p.add_argument("--tiny", action="store_true", help="read the files of a tiny dry run")
    p.add_argument("--json", action="store_true")


def _add_adapt(sub) -> None:
    p = sub.add_parser("adapt", help="trial-by-trial adaptation of W_rec to a rotation")
    p.add_argument("checkpoint", type=existing_file)
    p.add_argument("--rule", choices=["bptt", "rflo"], required=True)
    p.add_argument("--controller", choices=["on", "off"], default="on")
    p.add_argument("--task", choices=list(TASK_NAMES), default=None,
                   help="the checkpoint's task (default: from its sidecar; a different one is an error)")
    p.add_argument("--rotation", type=_angle, default=None, help="visuomotor rotation in degrees (reaching; default 30)")
    p.add_argument("--shift", type=_shift, default=None, help="frequency shift in Hz (limit cycle; default 0.5)")
    p.add_argument("--trials", type=_positive_int("trials"), default=500)
    p.add_argument("--lr", type=_positive_float("lr"), default=None,
                   help="learning rate (default: the paper's rate for the condition)")
    p.add_argument("--seed", type=_nonneg_int("seed"), default=0)
    p.add_argument("--delay", type=_delay, default=None)
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--no-progress", action="store_true")


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks (print ratios, never assert)")
    p.add_argument("what", choices=["pretrain", "adapt", "memory"])
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--batches", type=_positive_int("batches"), default=10)
    p.add_argument("--seeds", type=_positive_int("seeds"), default=1, help="networks in lockstep")
    p.add_argument("--json", action="store_true")
    p.add_argument("--save", default=None, help="also write the result, with its provenance, to this .json file")
    for size in ("n", "T", "repeats"):  # other sizes than the paper's, for tests (not in --help)
        p.add_argument(f"--{size}", type=_positive_int(size), default=None, help=argparse.SUPPRESS)


def cmd_pretrain(a) -> int:
    density = a.density if a.density is not None else (1.0 if a.feedback == "on" else 0.0)
    cfg = PretrainConfig(n=a.n, feedback_density=density, delay=a.delay, batches=a.batches,
                         batch_size=a.batch_size, lr=a.lr, eval_every=a.eval_every,
                         checkpoint_every=a.checkpoint_every, train_push=not a.no_push,
                         task=a.task)
    out = writable_folder("out", a.out)
    seeds = list(dict.fromkeys(a.seeds)) if a.force else _unfinished(cfg, a.seeds, out)
    if not seeds:
        print(f"fbctrl: pretrain: done: {network_tag(cfg)} seeds {' '.join(map(str, a.seeds))} in {a.out} are finished "
              "(kept; pass --force to train them again)", file=sys.stderr)
        print(json.dumps({"seeds": a.seeds, "out": a.out, "done": True}))
        return 0
    cmd = "python -m fbctrl " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    tr = pretrain(cfg, seeds, out, device=a.device, progress=not a.no_progress, command=cmd)
    last = {k: v[-1] for k, v in tr.evals.items() if k != "batch"}
    print(json.dumps({"seeds": seeds, "out": a.out, "final": last}))
    return 0


def _unfinished(cfg: PretrainConfig, seeds, out: Path) -> list[int]:
    """The seeds whose network in ``out`` is not finished (all three files whole); a damaged one
    is named and trained again, a finished one is kept (said on stderr)."""
    todo = []
    for s in dict.fromkeys(seeds):
        pt = out / f"{network_tag(cfg)}_seed{s}.pt"
        try:
            check_network_files(pt)
            print(f"fbctrl: pretrain: {pt} is finished, kept (pass --force to train it again)", file=sys.stderr)
        except FileNotFoundError:
            todo.append(s)
        except CheckpointError as exc:
            print(f"fbctrl: pretrain: {exc}; training seed {s} again", file=sys.stderr)
            todo.append(s)
    return todo


def cmd_evaluate(a) -> int:
    net = load_checkpoint(a.checkpoint, device=a.device)          # first: says what is wrong with a bad file
    task = checkpoint_task(a.checkpoint, "reach" if a.task in REACH_SETS else a.task)
    if task.name == "limit-cycle":
        if a.rotation or a.push:
            raise ValueError("rotation and push apply to the reaching task; the limit cycle takes --shift")
        res = evaluate_cycles(net, shift_hz=a.shift, controller_on=a.controller == "on", trials=a.trials,
                              seed=a.seed, task_cfg=task.config)
        res.update(checkpoint=a.checkpoint, task=task.name, shift_hz=a.shift, controller=a.controller,
                   trials=a.trials, seed=a.seed)
        if not a.json:
            print(f"{a.checkpoint}: limit cycle shift {a.shift:+g} Hz controller {a.controller}: "
                  f"loss {res['loss']:.4g}, frequency error {res['freq_error_hz']:.3g} Hz")
        else:
            print(json.dumps(res))
        return 0
    if a.shift:
        raise ValueError("shift applies to the limit-cycle task; the reaching task takes --rotation")
    which = "centre-out" if a.task in (None, "reach") else a.task
    res = evaluate(net, which, rotation_deg=a.rotation, controller_on=a.controller == "on", push=a.push,
                   trials=a.trials, seed=a.seed)
    res.update(checkpoint=a.checkpoint, task=which, rotation=a.rotation, controller=a.controller,
               push=a.push, trials=a.trials, seed=a.seed)
    if not a.json:
        print(f"{a.checkpoint}: {which} rotation {a.rotation:g} controller {a.controller}"
              f"{' pushed' if a.push else ''}: loss {res['loss']:.4g}, final error {res['final_error']:.3g}")
    if a.json:
        print(json.dumps(res))
    return 0


def cmd_adapt(a) -> int:
    return cli_adapt(a)


def _paper_config(a):
    if a.tiny and (a.checkpoint_dir is None or a.results_dir is None):
        raise ValueError("--tiny needs --checkpoint-dir and --results-dir (it must not write beside the real results)")
    if a.tiny:
        return paper.PaperConfig.tiny(a.checkpoint_dir, a.results_dir)
    # folders not given are the repository's (checkpoints/published, results/paper), from any
    # working folder; given ones are used as they are

    cfg = config_at(repo_root())
    return dataclasses.replace(cfg, **{k: v for k, v in (("checkpoint_dir", a.checkpoint_dir),
                                                         ("results_dir", a.results_dir)) if v is not None})


def _check_folders(a, cfg, mode: str) -> None:
    """Pre-flight of ``paper`` and ``verdicts``: no folder may be a file; the folders given to read
    must exist (``read``); the folders a run writes must be writable (``write``, a probe file)."""
    folders = (("checkpoint-dir", cfg.checkpoint_dir), ("results-dir", cfg.results_dir))
    for flag, folder in folders:
        if Path(folder).exists() and not Path(folder).is_dir():
            raise ValueError(f"{flag} {folder!r} is a file, not a folder")
        if mode == "read" and getattr(a, flag.replace("-", "_")) is not None:
            input_folder(flag, folder)
    for flag, folder in folders if mode == "write" else ():
        writable_folder(flag, folder)


def cmd_verdicts(a) -> int:
    cfg = _paper_config(a)
    _check_folders(a, cfg, "read")
    damaged = store.damaged_unit_files(cfg.results_dir)
    table = verdicts.verdict_table(cfg, marks=True)
    if a.json:
        print(json.dumps([{"key": r.key, "figure": r.figure, "column": r.column, "definition": r.definition,
                           "verdict": r.verdict.value, "effect": r.effect.as_dict(), "seeds": list(r.seeds),
                           "band": list(r.band), "band_reason": r.band_reason, "equivalence_p": r.equivalence_p,
                           "marks": [{"symbol": m.symbol, "kind": m.kind, "note": m.note} for m in r.marks]}
                          for r in table]))
    else:
        print(verdicts.markdown_table(table))
    for line in damaged:              # left out of the table like a missing file, and named
        print(f"fbctrl: warning: {line}", file=sys.stderr)
    return 0


def _family(a, cfg):
    """``(cfg, planner)`` of the network family ``--networks`` (the published protocol's, or the
    shipped networks': ``fbctrl.experiments.shipped``)."""
    if a.networks == "published":
        return cfg, beyond.full_plan
    sizes = shipped.ShippedSizes.tiny() if a.tiny else shipped.SIZES
    return shipped.config(cfg, sizes), partial(shipped.plan, sizes=sizes)


def cmd_paper(a) -> int:
    cfg, planner = _family(a, _paper_config(a))
    if a.save is not None and not a.plan:
        raise ValueError(f"save needs --plan, got --save {a.save!r} without it")
    if a.save is not None:
        output_file("save", a.save, ".json")
    _check_folders(a, cfg, "plan" if a.plan else "write")
    costs = {} if a.no_calibrate else paper.calibrate(cfg, a.device, gpu_model=a.plan and a.device == "cpu")
    groups = [paper.shard_units(g, a.shard) for g in planner(cfg) if a.only is None or (g.units and g.units[0].stage in a.only)]
    print(paper.format_plan(cfg, groups, costs), flush=True)
    if a.plan:
        if a.save is not None:
            _save_plan(a, cfg, groups, costs)
        return 0
    cmd = "python -m fbctrl " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    threads = paper.shard_threads(a.shard, os.cpu_count(), os.environ) if a.device == "cpu" else None
    if threads is not None:
        torch.set_num_threads(threads)
        print(f"shard {a.shard[0]}/{a.shard[1]}: {threads} CPU thread(s) of {os.cpu_count()}", flush=True)
    res = paper.run_plan(cfg, device=a.device, budget_minutes=a.budget_minutes, max_runs=a.max_runs,
                         costs=costs.get("measured"), progress=not a.no_progress, command=cmd, stages=a.only,
                         shard=a.shard, planner=planner)
    print(json.dumps(res))
    return 0


def _save_plan(a, cfg, groups, costs) -> None:
    models = {**costs, "published code": paper.published_costs()}
    cmd = "python -m fbctrl " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    res = {"device": str(a.device), "groups": paper.plan_costs(cfg, groups, models),
           "costs": {n: {"pretrain_batch": c.pretrain_batch, "run_trial": c.run_trial, "source": c.source}
                     for n, c in models.items()}}
    atomic_write_json(a.save, {"benchmark": "paper_plan", "result": res,
                               **provenance(bench.machine_provenance(cmd))})


def cmd_bench(a) -> int:
    if a.save is not None:
        output_file("save", a.save, ".json")       # a measurement: saved again over the last one
    res = bench.run(a.what, device=a.device, batches=a.batches, seeds=a.seeds, n=a.n, T=a.T, repeats=a.repeats)
    if a.save is not None:
        cmd = "python -m fbctrl " + " ".join(shlex.quote(x) for x in sys.argv[1:])
        atomic_write_json(a.save, {"benchmark": a.what, "result": res,
                                   **provenance(bench.machine_provenance(cmd))})
    if a.json:
        print(json.dumps(res))
    return 0


def _interrupt_on_signals() -> None:
    """SIGTERM, and SIGINT even where a background shell ignores it, interrupt like Ctrl-C, so
    that pre-training writes its resume file and the paper runner keeps every finished unit."""
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, signal.default_int_handler)


# what an interrupted command keeps, said when it stops
INTERRUPTED = {
    "pretrain": "pre-training resumes from its last checkpoint when run again",
    "paper": "every finished unit is saved; run it again to go on, an interrupted network resumes from its last "
             "checkpoint and an interrupted run starts again",
}


FIGURE_OPTIONS = ("seeds", "rotations", "rotation", "conditions", "rule", "source", "lag", "pairing")


def _compute_missing(cfg, name: str, opts: dict, device) -> None:
    """Run the unit files figure ``name`` lacks (adaptation runs grouped by rule), with an estimate."""
    units = scale.missing_units(name, cfg, opts)
    if not units:
        return
    est = scale.estimate_seconds(cfg, units)
    print(f"computing {len(units)} missing unit(s): about {est / 60:.0f} min on one core of the reference CPU",
          file=sys.stderr)
    groups = {}
    for u in units:
        groups.setdefault((u.stage, getattr(getattr(u, "condition", None), "rule", None)), []).append(u)
    for g in groups.values():
        paper.run_batch(cfg, g, device=device, progress=True, command=shlex.join(sys.argv))


def cmd_figure(a) -> int:
    """Redraw one figure from the store; nothing is computed unless --compute."""
    cfg = scale.store_config(a.root)
    opts = {k: getattr(a, k) for k in FIGURE_OPTIONS}
    checked = scale.check_options(a.name, cfg, **opts)
    if a.compute:
        _compute_missing(cfg, a.name, checked, a.device)
    missing = scale.missing_units(a.name, cfg, checked)
    if missing:
        print(f"fbctrl: {len(missing)} unit file(s) of figure {a.name} are missing or out of date (drawn without "
              f"them; --compute runs them)", file=sys.stderr)
    scale.use_style()
    fig, d, checked = scale.draw(a.name, cfg, device=a.device, **opts)
    text = scale.caption(a.name, d, checked, cfg)
    scale.save_figure(fig, a.out, text)
    print(f"{a.out}: {text}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    if argv is None:
        _interrupt_on_signals()
    a = None
    try:
        a = parser.parse_args(argv)
        return {"pretrain": cmd_pretrain, "evaluate": cmd_evaluate, "adapt": cmd_adapt, "bench": cmd_bench,
                "paper": cmd_paper, "verdicts": cmd_verdicts, "figure": cmd_figure}[a.cmd](a)
    except CLIError as exc:
        print(f"fbctrl: error: {exc}", file=sys.stderr)
        return 2
    except (DivergenceError, FloatingPointError) as exc:  # a run blew up: say where, no traceback
        print(f"fbctrl: diverged: {str(exc).splitlines()[0]}" + (" (try a smaller --lr)" if a.cmd == "pretrain" else ""),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        kept = INTERRUPTED.get(getattr(a, "cmd", None))
        print("fbctrl: interrupted" + (f" ({kept})" if kept else ""), file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"fbctrl: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
