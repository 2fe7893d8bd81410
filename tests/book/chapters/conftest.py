"""Fixtures of the chapter tests: a tiny store of the shipped family and the keys a chapter glues.

``store``: two untrained networks with feedback and one without (n 10), the shipped family's
units at 30 degrees (3 trials, exact BPTT on seed 0) and its sweep, run once for the chapter
tests through the store's runner; ``store.params(chapter, ...)`` validates a chapter's parameters
as its notebook's parameters cell would, with these folders.
``glued``: the keys and texts the chapter glues (``fbctrl.book.glue.glue`` recorded, not shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from fbctrl import book
from fbctrl.book import data, glue as glue_mod
from fbctrl.experiments import paper, shipped
from tests.helpers import shipped_store

torch.set_num_threads(1)

DEFAULTS = {  # the parameters cells of the notebooks
    "adaptation": dict(seeds=None, rotation_deg=30.0, rotations_deg=None, trials=None, rules=["rflo", "bptt"],
                       explore_trials=20),
    "lr_sweep": dict(seeds=None, rotation_deg=30.0, trials=None, rules=["rflo", "bptt"]),
    "activity_space": dict(seeds=None, rotation_deg=30.0),
}


@dataclass(frozen=True)
class ChapterStore:
    checkpoint_dir: Path
    results_dir: Path
    n: int = 10
    trials: int = 3

    def params(self, chapter: str, results_dir=None, **kw):
        extra = {} if chapter == "activity_space" else {"results_dir": str(results_dir or self.results_dir)}
        return book.validate_params(profile="default", device="cpu", checkpoint_dir=str(self.checkpoint_dir), **extra,
                                    **{**DEFAULTS[chapter], **kw})


@pytest.fixture(scope="package")
def store(tmp_path_factory) -> ChapterStore:
    st = ChapterStore(tmp_path_factory.mktemp("ck"), tmp_path_factory.mktemp("res"))
    n, ck = st.n, st.checkpoint_dir
    sizes = shipped.ShippedSizes(trials={30.0: st.trials}, exact_bptt_trials=st.trials, exact_bptt_seeds=(0,),
                                 sweep_trials=st.trials)
    mp = pytest.MonkeyPatch()
    mp.setattr(data, "SIZES", sizes)
    shipped_store(ck, st.results_dir, n, sizes)
    yield st
    mp.undo()


@pytest.fixture
def glued(monkeypatch) -> dict[str, str]:
    keys: dict[str, str] = {}
    monkeypatch.setattr(glue_mod, "glue", lambda name, text, display=False: keys.__setitem__(name, text))
    return keys
