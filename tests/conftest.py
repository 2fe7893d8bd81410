"""Shared fixtures.

``device``: every test that takes it runs once per device: on "cpu" always, and on "cuda" when
``torch.cuda.is_available()`` (otherwise that case is reported as skipped, with the reason). A
test must not assume which device it got: it moves tensors with ``.to(device)`` / ``.cpu()`` and
compares with results computed on "cpu" (tests/integration/test_devices.py).

Figures are drawn with matplotlib's non-interactive Agg backend, set here once for every test.
"""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                   reason="CUDA is not available on this machine")),
]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param
