"""Fixtures of the learning tests."""

import pytest

from fbctrl.learning import ckernels


@pytest.fixture(autouse=True)
def _fresh_kernels():
    """Every test starts and ends with the kernel choice of the environment."""
    ckernels.reset()
    yield
    ckernels.reset()
