"""The store's unit files (results/paper, the published networks' and the shipped family's under
results/paper/shipped) are what the code computes: a random sample of them is recomputed from
their networks and compared.

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

from tests.helpers import ROOT
from fbctrl.learning.adapt import RunSpec, adapt

RNG = random.Random(int(datetime.date.today().strftime("%Y%m%d")))
N_TRIALS = 2


def _pick(seq, k):
    seq = list(seq)
    return RNG.sample(seq, min(k, len(seq)))


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
    # a sweep run is at its swept rate (protocol "best" at that rate); an adaptation run names its protocol
    sweep = unit.get("stage") == "sweep"
    assert meta["protocol"] == unit.get("protocol", "best" if sweep else "published") and meta["lr"] > 0
    assert not sweep or meta["lr"] == unit["lr"]
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


SHIPPED_UNITS = sorted((PAPER / "shipped").rglob("*.npz"))


@pytest.mark.skipif(not SHIPPED_UNITS, reason="no units of the shipped networks")
@pytest.mark.parametrize("path", _pick(SHIPPED_UNITS, 2), ids=lambda p: "/".join(p.parts[-4:]))
def test_shipped_unit_recomputes(path):
    """A sampled unit of the networks pre-trained with pushes (results/paper/shipped, many of them
    migrated from the older result files) is what the code computes from its network today: its
    first trials, at its recorded rate, BPTT convention and error start."""
    from fbctrl.core.checkpoint import load_checkpoint
    from fbctrl.experiments.protocol import Condition
    from fbctrl.experiments.store import read_unit

    torch.set_num_threads(2)
    rec, meta = read_unit(path)
    unit, cond = meta["unit"], Condition.parse(meta["unit"]["condition"])
    assert meta["effective_rate"]["lr"] == meta["lr"] and meta["trials"] == unit["trials"] == rec["test_loss"].shape[0]
    net = load_checkpoint(ROOT / meta["network"]["checkpoint"])
    run = RunSpec(controller_on=cond.controller_on, rotation_deg=unit["rotation_deg"], lr=meta["lr"], seed=unit["seed"])
    out = adapt(net, cond.rule.value, [run], trials=N_TRIALS, progress=False, on_divergence="mark",
                bptt_weights=meta["bptt_weights"], error_start=meta["error_start"])
    for key in sorted({"train_loss", "test_loss", "dW_path"} & set(rec)):
        np.testing.assert_allclose(out.records[key][0], rec[key][:N_TRIALS], rtol=2e-4, err_msg=key)
