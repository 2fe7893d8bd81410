"""The networks pre-trained with pushes as a family of the store (fbctrl.experiments.shipped):
the migrated units give exactly the numbers the older result files gave (their summary kept in
tests/data/shipped_reference.json), a tiny family is planned, run, read and re-planned when its
network changes, and every adaptation learning rate is declared in one module."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import DATA, ROOT
from fbctrl import book
from fbctrl.book import data
from fbctrl.core.checkpoint import save_checkpoint
from fbctrl.core.model import NetworkConfig, init_network
from fbctrl.experiments import metrics, paper, shipped
from fbctrl.experiments.protocol import CONDITIONS, PAPER_TEXT_LR, Protocol
from fbctrl.learning import rates

REF = json.loads((DATA / "shipped_reference.json").read_text())
torch.set_num_threads(1)


# ---- the migrated units against the older files' numbers --------------------------------------

@pytest.fixture(scope="module")
def P():
    return book.validate_params(profile="default", device="cpu", checkpoint_dir=None, results_dir=None)


@pytest.mark.parametrize("key", sorted(REF["adapt"]))
def test_migrated_adaptation_units_give_the_old_numbers(P, key):
    kind, rot = key.split("/")
    ad = data.load_adaptation(P, float(rot), kind, compute=False)
    ref = REF["adapt"][key]
    assert ad.source == "store" and ad.seeds == ref["seeds"] and ad.trials == ref["trials"]
    assert ad.lrs == ref["lrs"] and sorted(ad.results) == sorted(ref["conds"])
    for c, r in ref["conds"].items():
        rec = ad[c]
        np.testing.assert_array_equal(metrics.final(rec["test_loss"]), r["final_test"])
        np.testing.assert_array_equal(metrics.final(rec["train_loss"]), r["final_train"])
        np.testing.assert_array_equal(metrics.final(rec["aftereffect_loss"]), r["final_after"])
        np.testing.assert_array_equal(rec["dW_total"][:, -1] / np.nansum(rec["dW_path"], 1), r["efficiency"])
        np.testing.assert_array_equal(rec["diverged"], r["diverged"])
        if r["align_global_mean"] is not None:
            np.testing.assert_array_equal(np.nanmean(rec["align_global"], 1), r["align_global_mean"])


def test_migrated_exact_bptt_comparison_gives_the_old_numbers(P):
    conv, ref = data.bptt_convention(P, 30.0), REF["bptt_convention"]
    assert conv["seeds"] == ref["seeds"] and conv["trials"] == ref["trials"]
    for c, d in ref["conds"].items():
        for k in ("history", "current"):
            np.testing.assert_array_equal(conv["conds"][c][k], d[k])


def test_migrated_sweep_gives_the_old_numbers_and_best_rates(P):
    sw, ref = data.load_sweep_set(P, 30.0, compute=False), REF["sweep"]
    assert sw.source == "store" and sw.seeds == ref["seeds"] and sw.trials == ref["trials"] and sw.rates == ref["rates"]
    for c, rows in ref["final"].items():
        old = np.array([[np.nan if x is None else x for x in row] for row in rows])
        np.testing.assert_array_equal(sw.final[c][:, 0], old)
        np.testing.assert_array_equal(sw.diverged[c][:, 0], np.array(ref["diverged"][c], dtype=bool))
    best = data.best_rates(sw)
    assert {c: b["best_lr"][0] for c, b in best.items()} == ref["best_lr"]
    # the same rule as the store's own (paper.best_swept_rates) on the family's configuration
    store_best = paper.best_swept_rates(data.store_config(P))
    assert {c: v["lr"] for c, v in store_best.items()} == ref["best_lr"]


def test_migrated_units_record_where_they_came_from(P):
    cfg = data.store_config(P)
    u = shipped.adapt_unit(cfg, "fb", 2, 30.0, CONDITIONS[0])
    _, meta = paper.read_unit(u.path(cfg))
    assert meta["migrated"]["from"] == "results/adapt_fb_rot30_s2.npz" and len(meta["migrated"]["sha256"]) == 64
    assert meta["migrated"]["check"]["trial0_max_rel_diff"] < 1e-4
    assert meta["network"]["checkpoint"] == "checkpoints/fb_seed2.pt" and paper.is_done(cfg, u)
    assert not [u for g in shipped.plan(cfg) for u in g.units]            # the family is complete


# ---- a tiny family: planned, run through the store, read, re-planned when its network changes -----

N = 10


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    ck, res = tmp_path / "ck", tmp_path / "res"
    ck.mkdir()
    res.mkdir()
    conf = {"n": N, "batches": 3, "batch_size": 4, "train_push": True, "feedback_density": 1.0, "delay": 0}
    for kind, density, seeds in (("fb", 1.0, (0, 1)), ("nofb", 0.0, (0,))):
        for s in seeds:
            net = init_network(NetworkConfig(n=N, feedback_density=density), torch.Generator().manual_seed(s))
            save_checkpoint(net.replace(W_fb=net.W_fb * 0.05), ck / f"{kind}_n{N}_seed{s}.pt",
                            {"seed": s, "config": {**conf, "feedback_density": density}})
    monkeypatch.setattr(data, "SIZES", shipped.ShippedSizes.tiny())
    return book.validate_params(profile="default", device="cpu", checkpoint_dir=str(ck), results_dir=str(res))


def test_tiny_family_runs_through_the_store_and_is_read_back(tiny):
    cfg = data.store_config(tiny)
    sizes = data.SIZES
    assert cfg.fb_seeds == (0, 1) and cfg.nofb_seeds == (0,) and cfg.train_push
    todo = [u for g in shipped.plan(cfg, sizes) for u in g.units]
    # fb: 4 conditions x 2 rotations x 2 seeds; exact BPTT 2 x 1 seed; nofb 2; sweep 4 x 5 rates x 2 seeds
    assert len(todo) == 16 + 2 + 2 + 40
    assert all(u.path(cfg).is_relative_to(Path(tiny.results_dir) / "paper" / "shipped") for u in todo)
    res = paper.run_plan(cfg, progress=False, log=lambda *a: None, planner=lambda c: shipped.plan(c, sizes))
    assert res["units_done"] == len(todo) and res["units_left"] == 0
    ad = data.load_adaptation(tiny, 30.0, "fb", compute=False)
    assert ad.source == "store" and ad.seeds == [0, 1] and ad.trials == 3
    assert ad.conditions == [c.name for c in CONDITIONS]
    assert ad.lrs == {c.name: PAPER_TEXT_LR[c] for c in CONDITIONS}         # protocol paper-text
    _, meta = paper.read_unit(shipped.adapt_unit(cfg, "fb", 0, 30.0, CONDITIONS[2], sizes=sizes).path(cfg))
    assert meta["bptt_weights"] == "current" and meta["protocol"] == Protocol.PAPER_TEXT.value
    assert data.bptt_convention(tiny, 30.0)["trials"] == 2
    sw = data.load_sweep_set(tiny, 30.0, compute=False)
    assert sw.source == "store" and sw.final["RFLO+c"].shape == (5, 1, 2)
    # a network that changes makes its units stale: planned again
    net = init_network(NetworkConfig(n=N), torch.Generator().manual_seed(9))
    save_checkpoint(net, Path(tiny.checkpoint_dir) / f"fb_n{N}_seed1.pt",
                    {"seed": 1, "config": {"n": N, "batches": 3, "batch_size": 4, "train_push": True,
                                           "feedback_density": 1.0, "delay": 0}})
    again = [u for g in shipped.plan(cfg, sizes) for u in g.units]
    assert again and all(u.seed == 1 and u.kind == "fb" for u in again)
    assert data.load_adaptation(tiny, 30.0, "fb", compute=False) is None      # not every seed is current


def test_live_runs_when_the_store_lacks_them_are_not_saved(tiny):
    ad = data.load_adaptation(tiny, 45.0, "fb", seeds=[0], trials=2, rules=("rflo",))
    assert ad.source == "live" and ad.trials == 2 and "not saved" in ad.describe()
    assert not list(Path(tiny.results_dir).rglob("*.npz"))


# ---- every rate once ---------------------------------------------------------------------------

RATE_NAME = ("lr", "lrs", "rate", "rates", "grid")
# other quantities called a rate: pre-training's Adam step and its firing-rate regulariser (two names of one fact in
# core, not adaptation rates)
NOT_ADAPTATION_RATES = {("fbctrl/core/train.py", "lr"), ("fbctrl/core/train.py", "rate_reg"), ("fbctrl/core/bptt.py", "rate")}


def _declared_rates(path: Path) -> list[tuple[str, float]]:
    """(name, value) of every number in a module- or class-level declaration whose name says it is
    a learning rate (``*lr*``, ``*rate(s)*``, ``*grid*``), dataclass defaults included."""
    out = []
    tree = ast.parse(path.read_text())
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for scope in scopes:
        for node in scope.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            for t in targets:
                name = getattr(t, "id", "").lower()
                if node.value is None or not any(w in name.split("_") for w in RATE_NAME):
                    continue
                out += [(name, float(c.value)) for c in ast.walk(node.value)
                        if isinstance(c, ast.Constant) and isinstance(c.value, float)]
    return out


def test_every_adaptation_rate_is_declared_in_one_module():
    home = ROOT / "fbctrl" / "learning" / "rates.py"
    by_module = {}
    for p in sorted((ROOT / "fbctrl").rglob("*.py")):
        rel = str(p.relative_to(ROOT))
        found = [(n, v) for n, v in _declared_rates(p) if (rel, n) not in NOT_ADAPTATION_RATES]
        if found:
            by_module[rel] = found
    assert list(by_module) == [str(home.relative_to(ROOT))], by_module
    # the grids are increasing and span the paper's rates; the shipped grid holds every one of them
    paper_rates = set(rates.PAPER_LR.values())
    for grid in (rates.SWEEP_GRID, rates.SHIPPED_SWEEP_GRID):
        for rule, g in grid.items():
            assert list(g) == sorted(set(g))
            assert all(g[0] <= v <= g[-1] for (r, _), v in rates.PAPER_LR.items() if r == rule)
    assert all(v in rates.SHIPPED_SWEEP_GRID[r] for (r, _), v in rates.PAPER_LR.items())
    assert set(PAPER_TEXT_LR.values()) == paper_rates


def test_the_rate_check_sees_a_second_declaration(tmp_path):
    p = tmp_path / "m.py"
    p.write_text("SWEEP_RATES = {'rflo': [5e-6, 1.5e-5]}\nclass C:\n    lr: float = 5e-5\nRegularisation_rate = 2e-3\n")
    assert sorted(v for _, v in _declared_rates(p)) == [5e-6, 1.5e-5, 5e-5, 2e-3]
