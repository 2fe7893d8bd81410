"""The verdict table's pieces (fbctrl.experiments.verdicts): the Benjamini-Hochberg adjustment of a
column and the printed cells, on hand cases."""

import math

import numpy as np
import pytest
from scipy import stats as st

from fbctrl.experiments import verdicts
from fbctrl.experiments.stats import Verdict, paired_effect, verdict


def test_multiplicity_adjusts_a_columns_p_values_by_benjamini_hochberg():
    """Hand case: p = 0.01, 0.04, 0.03, 0.5 (and one claim without a test) give BH-adjusted
    0.04, 0.0533, 0.0533, 0.5; only the first verdict survives at 0.05. And the premise: a
    verdict other than inconclusive is exactly a paired t-test with p < 0.05."""
    from dataclasses import replace

    from fbctrl.experiments.verdicts import ClaimResult, multiplicity

    base = paired_effect([1.0, 2.0, 3.0])
    ps = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    res = [ClaimResult(k, "Fig", k, "as published", "", replace(base, p_value=p),
                       Verdict.AGREES if p < 0.05 else Verdict.INCONCLUSIVE, (0, 1, 2)) for k, p in ps.items()]
    res.append(ClaimResult("e", "Fig", "e", "as published", "", paired_effect([]), Verdict.INCONCLUSIVE, ()))
    res.append(ClaimResult("a", "Fig", "a", "fair", "", replace(base, p_value=0.9), Verdict.INCONCLUSIVE, (0, 1, 2)))
    adj = {a.result.key: a for a in multiplicity(res)}
    assert set(adj) == set("abcde")
    for k, want in {"a": 0.04, "b": 0.16 / 3, "c": 0.16 / 3, "d": 0.5}.items():
        assert adj[k].p_adjusted == pytest.approx(want, rel=1e-12)
    assert math.isnan(adj["e"].p_adjusted) and adj["e"].verdict_adjusted is Verdict.INCONCLUSIVE
    assert [adj[k].verdict_adjusted for k in "abcd"] == [Verdict.AGREES] + [Verdict.INCONCLUSIVE] * 3
    rng = np.random.default_rng(3)
    for _ in range(200):
        e = paired_effect(rng.normal(0.4, 1.0, size=int(rng.integers(2, 12))))
        assert (verdict(e, 1) is not Verdict.INCONCLUSIVE) == (e.p_value < 0.05)


def test_verdict_cells_print_an_interval_only_where_there_is_one():
    from fbctrl.experiments.verdicts import ClaimResult, format_cell

    cell = lambda e: format_cell(ClaimResult("k", "Fig", "c", "as published", "", e, verdict(e, 1), ()))  # noqa: E731
    assert cell(paired_effect([])) == "no data"
    empty = ClaimResult("k", "Fig", "c", "as published", f"cos(...): {verdicts.NOT_CONVERGED} 0.001 (...), so not judged",
                        paired_effect([]), Verdict.INCONCLUSIVE, ())
    assert format_cell(empty) == "not judged (no solve converged)"
    assert cell(paired_effect([2.0], [1.0], log=True)) == "2, n 1 (no interval)"
    e = paired_effect([1.0, 2.0, 3.0])
    lo, hi = st.t.interval(0.95, 2, loc=2.0, scale=1.0 / math.sqrt(3))
    assert cell(e) == f"2 [{lo:.3g}, {hi:.3g}], n 3, p {e.p_value:.2g}"
