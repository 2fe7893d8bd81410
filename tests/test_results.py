"""The shipped result files (results/*.npz) are what the code computes: a random sample of their
entries is recomputed from the shipped networks and compared.

Runs are deterministic and independent of the batch they ran in (lockstep == alone), so the
first trials of any (condition, seed) can be recomputed alone. Which entries are checked is
drawn from a generator seeded by the day, so repeated CI runs cover different entries."""

import datetime
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from fbctrl.learning.adapt import RunSpec, adapt
from fbctrl.experiments.runs import load_results, load_sweep, shipped_networks

ROOT = Path(__file__).resolve().parent.parent
RESULTS = sorted((ROOT / "results").glob("adapt_*.npz"))
SWEEPS = sorted((ROOT / "results").glob("lr_sweep_*.npz"))
RNG = random.Random(int(datetime.date.today().strftime("%Y%m%d")))
N_TRIALS = 2


def _pick(seq, k):
    seq = list(seq)
    return RNG.sample(seq, min(k, len(seq)))


@pytest.mark.skipif(not RESULTS, reason="no result files shipped")
@pytest.mark.parametrize("path", _pick(RESULTS, 2), ids=lambda p: p.name)
def test_adaptation_results_recompute(path):
    torch.set_num_threads(2)
    res, meta = load_results(path)
    cond = RNG.choice(sorted(res))
    runs = meta["runs"][cond]
    i = RNG.randrange(len(runs))
    run = RunSpec(**runs[i])
    seed = meta["seeds"][i]
    nets, _ = shipped_networks(ROOT / "checkpoints", meta["kind"], [seed])
    rule = cond.split("+")[0].lower()
    out = adapt(nets, rule, [RunSpec(**{**runs[i], "net_index": 0})], trials=N_TRIALS, progress=False,
                bptt_weights=meta.get("bptt_weights", "history"))
    for key in ("train_loss", "test_loss", "dW_path", "target"):
        np.testing.assert_allclose(out.records[key][0], res[cond][key][i, :N_TRIALS], rtol=2e-4,
                                   err_msg=f"{path.name} {cond} seed {seed} {key}")


@pytest.mark.skipif(not SWEEPS, reason="no sweep files shipped")
def test_sweep_entry_recomputes():
    torch.set_num_threads(2)
    path = RNG.choice(SWEEPS)
    sw = load_sweep(path)
    cond = RNG.choice(sorted(sw["curves"]))
    rule = cond.split("+")[0].lower()
    a = RNG.randrange(len(sw["rates"][rule]))
    b = RNG.randrange(len(sw["rotations"]))
    c = RNG.randrange(len(sw["seeds"]))
    seed = sw["seeds"][c]
    nets, _ = shipped_networks(ROOT / "checkpoints", sw["meta"].get("kind", "fb"), [seed])
    run = RunSpec(net_index=0, controller_on=cond.endswith("+c"), rotation_deg=sw["rotations"][b],
                  lr=sw["rates"][rule][a], seed=seed)
    out = adapt(nets, rule, [run], trials=N_TRIALS, progress=False, on_divergence="mark", bptt_weights="current")
    np.testing.assert_allclose(out.records["test_loss"][0], sw["curves"][cond][a, b, c, :N_TRIALS], rtol=2e-4)


PAPER = ROOT / "results" / "paper"
PAPER_UNITS = sorted((PAPER / "adapt").glob("*/rot*/*.npz")) + sorted((PAPER / "sweep").glob("rot*/*.npz"))


@pytest.mark.skipif(not PAPER_UNITS, reason="no paper-protocol units computed yet")
@pytest.mark.parametrize("path", _pick(PAPER_UNITS, 2), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_paper_unit_recomputes(path):
    """A sampled unit of the paper protocol (results/paper) says what it is (protocol, effective
    rate, exact BPTT weights unless it is that robustness row, its trial count) and its first
    trials are what the code computes from its published network, whichever path (lockstep,
    NumPy, compiled) computed the file (they agree to float rounding)."""
    from fbctrl.core.checkpoint import load_checkpoint
    from fbctrl.experiments.paper import PaperConfig, PretrainUnit, read_unit
    from fbctrl.experiments.protocol import Condition

    torch.set_num_threads(2)
    rec, meta = read_unit(path)
    unit = meta["unit"]
    cond = Condition.parse(unit["condition"])
    assert meta["protocol"] == unit.get("protocol", "published") and meta["lr"] > 0
    assert meta["effective_rate"]["lr"] == meta["lr"]
    assert meta["bptt_weights"] == ("current" if "current" in unit.get("variant", "") else "history")
    assert meta["trials"] == unit["trials"] == rec["test_loss"].shape[0]
    net = load_checkpoint(PretrainUnit(unit.get("kind", "fb"), unit["seed"]).path(PaperConfig()))
    run = RunSpec(controller_on=cond.controller_on, rotation_deg=unit["rotation_deg"], lr=meta["lr"], seed=unit["seed"])
    out = adapt(net, cond.rule.value, [run], trials=N_TRIALS, progress=False, on_divergence="mark",
                bptt_weights=meta["bptt_weights"], error_start=meta["error_start"])
    for key in ("train_loss", "test_loss", "dW_path"):
        np.testing.assert_allclose(out.records[key][0], rec[key][:N_TRIALS], rtol=2e-4, err_msg=key)
    assert (out.records["target"][0] == rec["target"][:N_TRIALS]).all()
