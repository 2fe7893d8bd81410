"""The adaptation learning rates (fbctrl.learning.rates): the paper's rates per condition, and the
sweep grids' shape (increasing, half a decade apart, holding the paper's rates)."""

from __future__ import annotations

import math

import pytest

from fbctrl.learning.rates import PAPER_LR, SHIPPED_SWEEP_GRID, SWEEP_GRID, TINY_SWEEP_GRID, paper_lr


def test_the_paper_rates_per_condition():
    """Methods, "Adaptation": 1e-4 for BPTT+c, 5e-6 for BPTT, 5e-5 for RFLO with and without the
    controller."""
    assert PAPER_LR == {("bptt", True): 1e-4, ("bptt", False): 5e-6, ("rflo", True): 5e-5, ("rflo", False): 5e-5}
    assert paper_lr("bptt", 1) == 1e-4 and paper_lr("bptt", 0) == 5e-6    # any truthy controller setting
    assert paper_lr("rflo", True) == paper_lr("rflo", False) == 5e-5
    with pytest.raises(KeyError):
        paper_lr("sgd", True)


@pytest.mark.parametrize("rule", ["rflo", "bptt"])
def test_the_sweep_is_seven_rates_half_a_decade_apart_around_the_paper_rates(rule):
    grid = SWEEP_GRID[rule]
    assert len(grid) == 7 and list(grid) == sorted(grid)
    steps = [math.log10(b / a) for a, b in zip(grid, grid[1:])]
    assert all(0.45 < s < 0.55 for s in steps)                        # 10^0.5 = 3.16: x3 or x3.33
    assert all(math.isclose(c / a, 10.0) for a, c in zip(grid, grid[2:]))   # every other rate a decade up
    paper = {paper_lr(rule, on) for on in (True, False)}
    assert grid[0] < min(paper) and max(paper) < grid[-1]
    assert (5e-5 if rule == "rflo" else 1e-4) in grid
    if rule == "bptt":                                                # BPTT's 5e-6 lies between two rates
        assert 5e-6 not in grid and any(a < 5e-6 < b for a, b in zip(grid, grid[1:]))


@pytest.mark.parametrize("rule", ["rflo", "bptt"])
def test_the_shipped_and_tiny_grids(rule):
    shipped, tiny = SHIPPED_SWEEP_GRID[rule], TINY_SWEEP_GRID[rule]
    assert len(shipped) == 5 and list(shipped) == sorted(shipped)
    assert {paper_lr(rule, on) for on in (True, False)} <= set(shipped)   # it holds the paper's rates
    assert len(tiny) == 2 and tiny[0] < tiny[1]
