"""One-off: convert the root ``results/*.npz`` files of the older ``reproduce`` and ``sweep``
commands (the networks pre-trained with pushes, ``checkpoints/{fb,nofb}_seed*.pt``) into units of
the store (``fbctrl.experiments.shipped``), without recomputing them.

    python scripts/migrate_root_results.py            # writes results/paper/shipped/..., then git rm the old files

Each old run becomes the unit it is: protocol ``paper-text`` (its rates are the paper's as stated:
checked against the unit's effective rate), ``Variant.BPTT_CURRENT`` for BPTT runs of a file made
with ``bptt_weights="current"``, its rotation, seed and length. Before a file is converted, the
first trial of its first run is recomputed from today's checkpoint with today's engine and must
agree to 1e-4 (relative) in training loss, test loss and weight change: the checkpoint is the one
the file was computed from, the integrated error started from zero and the test set is the same.
A sweep file kept the test loss only; its units hold that, and the trial a run diverged at is the
first NaN of its test loss (the engine fills a diverged run's records with NaN from that trial on).
Every unit's provenance is the old file's (commit, machine, time) with ``migrated``: the file, its
sha256, the check, and when and by which commit it was converted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fbctrl.book.scale import store_config  # noqa: E402
from fbctrl.core.checkpoint import load_checkpoint, read_sidecar  # noqa: E402
from fbctrl.experiments import paper, shipped, store  # noqa: E402
from fbctrl.experiments.protocol import Condition, effective_rate  # noqa: E402
from fbctrl.learning.adapt import RunSpec, adapt  # noqa: E402
from fbctrl.learning.rates import paper_lr  # noqa: E402
from fbctrl.paths import git_commit  # noqa: E402

PROVENANCE = ("commit", "torch", "machine", "processor", "python", "time")


def _read(path: Path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}, json.loads(str(z["meta"]))


def _check_first_trial(cfg, kind, run: dict, rule: str, bptt_weights: str, old: dict) -> float:
    """Max relative difference of trial 0 recomputed against the file (train, test loss, |dW|)."""
    net = load_checkpoint(Path(cfg.checkpoint_dir) / f"{kind}_seed{run['seed']}.pt")
    res = adapt(net, rule, [RunSpec(controller_on=run["controller_on"], rotation_deg=run["rotation_deg"],
                                    lr=run["lr"], seed=run["seed"])], trials=1, progress=False,
                bptt_weights=bptt_weights)
    gap = max(float(abs(res.records[k][0, 0] - old[k]) / abs(old[k])) for k in old)
    if not gap < 1e-4:
        raise SystemExit(f"first trial of {kind} seed {run['seed']} {rule} differs by {gap:.2g}: not migrated")
    return gap


def _meta(cfg, unit, old_meta: dict, path: Path, check: dict, diverged: int, extra: dict) -> dict:
    ck = paper.PretrainUnit(unit.kind, unit.seed).path(cfg)
    cond = unit.condition
    r = effective_rate(getattr(unit, "protocol", "best"), cond, has_feedback=unit.kind != "nofb",
                       best_lr=getattr(unit, "lr", None))      # a sweep unit: its own rate, as the runner does
    v = getattr(unit, "variant", paper.Variant.NONE)
    return {**{k: old_meta[k] for k in PROVENANCE if k in old_meta},
            "protocol": r.protocol, "effective_rate": r.as_dict(), "lr": r.lr, "condition": cond.name,
            "rotation_deg": unit.rotation_deg, "trials": unit.trials, "bptt_weights": v.bptt_weights,
            "error_start": v.error_start, "variant": v.value, "test_every": 1, "diverged_trial": int(diverged),
            "network": {"checkpoint": store.rel_path(ck), "sha256": store.file_sha256(ck), "seed": unit.seed,
                        "commit": read_sidecar(ck).get("commit")},
            "device": "cpu", "command": old_meta.get("command", ""), **extra,
            "migrated": {"from": f"results/{path.name}", "sha256": store.file_sha256(path), "check": check,
                         "by_commit": git_commit(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "script": "scripts/migrate_root_results.py"}}


def migrate_adapt(cfg, path: Path) -> int:
    rec, meta = _read(path)
    kind, rot, exact = meta["kind"], float(meta["rotation_deg"]), meta["bptt_weights"] == "history"
    n = 0
    for name, runs in meta["runs"].items():
        cond = Condition.parse(name)
        i0 = 0
        old0 = {k: rec[f"{name}/{k}"][i0, 0] for k in ("train_loss", "test_loss", "dW_total")}
        check = {"trial0_max_rel_diff": _check_first_trial(cfg, kind, runs[i0], cond.rule.value,
                                                          meta["bptt_weights"], old0),
                 "run": f"{name} seed {runs[i0]['seed']}"}
        for i, run in enumerate(runs):
            u = shipped.adapt_unit(cfg, kind, run["seed"], rot, cond, exact_bptt=exact,
                                   sizes=shipped.ShippedSizes(trials={**shipped.SIZES.trials, rot: meta["trials"]}))
            records = {k.split("/", 1)[1]: v[i] for k, v in rec.items() if k.startswith(name + "/") and
                       not k.endswith("/diverged")}
            extra = {"align_every": 50 if rot == 30.0 else 100} if "align_local" in records else {}
            m = _meta(cfg, u, meta, path, check, rec[f"{name}/diverged"][i], extra)
            assert u.trials == int(meta["trials"]) and m["lr"] == run["lr"], (path.name, name, run)
            store.write_unit(u.path(cfg), paper.unit_dict(u), records, m)
            n += 1
    return n


def migrate_sweep(cfg, path: Path) -> int:
    rec, meta = _read(path)
    n = 0
    for name in ("RFLO+c", "RFLO", "BPTT+c", "BPTT"):
        cond = Condition.parse(name)
        rates = meta["rates"][cond.rule.value]
        assert list(rates) == list(cfg.sweep_rates[cond.rule.value]) and meta["rotations"] == [30.0]
        curves, div = rec[f"curves/{name}"][:, 0], rec[f"diverged/{name}"][:, 0]       # [rates, seeds, trials]
        k = rates.index(paper_lr(cond.rule.value, cond.controller_on))                  # the paper's rate
        check = {"trial0_max_rel_diff": _check_first_trial(
            cfg, "fb", {"seed": meta["seeds"][0], "controller_on": cond.controller_on, "rotation_deg": 30.0,
                        "lr": rates[k]}, cond.rule.value, "current", {"test_loss": curves[k, 0, 0]}),
            "run": f"{name} lr {rates[k]:g} seed {meta['seeds'][0]}"}
        for a, lr in enumerate(rates):
            for b, seed in enumerate(meta["seeds"]):
                u = next(x for x in paper.sweep_units(cfg, cond, [lr]) if x.seed == seed)
                tl = curves[a, b]
                first_nan = int(np.argmax(np.isnan(tl))) if np.isnan(tl).any() else -1
                assert bool(div[a, b]) == (first_nan >= 0) and u.trials == meta["trials"]
                store.write_unit(u.path(cfg), paper.unit_dict(u), {"test_loss": tl},
                                 _meta(cfg, u, meta, path, check, first_nan, {"records": "test_loss only"}))
                n += 1
    return n


def main() -> int:
    torch.set_num_threads(1)
    cfg = shipped.config(store_config(ROOT))
    old = sorted((ROOT / "results").glob("*.npz"))
    n = 0
    for p in old:
        n += migrate_sweep(cfg, p) if p.name.startswith("lr_sweep_") else migrate_adapt(cfg, p)
        print(f"{p.name}: migrated", flush=True)
    left = [u for g in shipped.plan(cfg) for u in g.units]
    print(f"{n} units written from {len(old)} files; {len(left)} unit(s) of the shipped family still to do")
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
