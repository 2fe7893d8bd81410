"""Helpers shared by the tests (imported as ``tests.helpers``; pytest puts the repository root on
the path because ``tests/`` is a package).

``ROOT``: the repository root; ``DATA``: the tests' reference files (``tests/data``);
``gen(seed)``: a seeded ``torch.Generator`` (the tests never use the global RNG).
"""

from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
