"""Shared fixtures.

``device``: every test that takes it runs once per device: on "cpu" always, and on "cuda" when
``torch.cuda.is_available()`` (otherwise that case is reported as skipped, with the reason). A
test must not assume which device it got: it moves tensors with ``.to(device)`` / ``.cpu()`` and
compares with results computed on "cpu" (tests/integration/test_devices.py).

``dry_run``: the paper's protocol at its tiny size (``python -m fbctrl paper --tiny``), run once
per test session into a temporary folder; its ``PaperConfig`` (tests that change its files work
on a copy, or recompute what they removed).

Figures are drawn with matplotlib's non-interactive Agg backend, set here once for every test.
"""

import matplotlib
import pytest
import torch

from fbctrl.__main__ import main
from fbctrl.experiments import paper

matplotlib.use("Agg")

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                   reason="CUDA is not available on this machine")),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def dry_run(tmp_path_factory) -> paper.PaperConfig:
    root = tmp_path_factory.mktemp("paper")
    ck, res = root / "ck", root / "res"
    rc = main(["paper", "--tiny", "--checkpoint-dir", str(ck), "--results-dir", str(res), "--no-progress"])
    assert rc == 0
    return paper.PaperConfig.tiny(str(ck), str(res))
