"""Paired statistics (fbctrl.experiments.stats) against scipy and by hand: the paired effect and
its interval, the verdict rule with and without a band of negligible effects, the equivalence
test, and the figures' intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from fbctrl import book
from fbctrl.experiments.stats import Band, Verdict, equivalence_test, format_ci, mean_ci, paired_effect, verdict

def test_paired_effect_equals_scipy_and_a_hand_computation():
    a = np.array([3.0, 5.0, 4.0, 8.0])
    b = np.array([2.0, 3.0, 1.0, 4.0])         # d = 1, 2, 3, 4
    e = paired_effect(a, b)
    # by hand: mean 2.5, sd sqrt(5/3), t_{0.975, 3} = 3.182446305284263
    sd = math.sqrt(5 / 3)
    half = 3.182446305284263 * sd / 2
    assert e.n == 4 and e.mean == pytest.approx(2.5)
    assert (e.ci_low, e.ci_high) == pytest.approx((2.5 - half, 2.5 + half), rel=1e-9)
    assert e.sd == pytest.approx(sd) and e.effect_size == pytest.approx(2.5 / sd)
    assert e.p_value == pytest.approx(st.ttest_rel(a, b).pvalue, rel=1e-12)
    lo, hi = st.t.interval(0.95, 3, loc=2.5, scale=st.sem(a - b))
    assert (e.ci_low, e.ci_high) == pytest.approx((lo, hi), rel=1e-12)


def test_paired_effect_of_a_ratio_is_taken_on_the_log_scale():
    a = np.array([2.0, 4.0, 3.0, 6.0, 2.5])
    b = np.array([1.0, 1.0, 2.0, 2.0, 1.0])
    e = paired_effect(a, b, log=True)
    d = np.log(a / b)
    lo, hi = st.t.interval(0.95, 4, loc=d.mean(), scale=st.sem(d))
    assert e.mean == pytest.approx(math.exp(d.mean())) and e.null == 1.0
    assert (e.ci_low, e.ci_high) == pytest.approx((math.exp(lo), math.exp(hi)), rel=1e-12)
    assert e.p_value == pytest.approx(st.ttest_1samp(d, 0.0).pvalue, rel=1e-12)


def test_paired_effect_drops_non_finite_seeds_and_handles_small_samples():
    e = paired_effect([1.0, np.nan, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0])
    assert e.n == 3 and e.mean == pytest.approx(2.0)
    one = paired_effect([1.0], [0.0])
    assert one.n == 1 and math.isnan(one.ci_low) and verdict(one, 1) is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError, match="one per seed on both sides"):
        paired_effect([1.0, 2.0], [1.0])


def test_verdict_rule():
    up = paired_effect([1.0, 1.2, 0.9, 1.1])          # interval above 0
    down = paired_effect([-1.0, -1.2, -0.9, -1.1])    # below 0
    mixed = paired_effect([1.21, 0.69, -0.71, 1.01])  # covers 0
    assert verdict(up, +1) is Verdict.AGREES and verdict(up, -1) is Verdict.DISAGREES
    assert verdict(down, -1) is Verdict.AGREES and verdict(down, +1) is Verdict.DISAGREES
    assert verdict(mixed, +1) is Verdict.INCONCLUSIVE and verdict(mixed, -1) is Verdict.INCONCLUSIVE
    # a sign count would say "agrees" for 4 of 4 positive seeds; the interval rule may not
    wide = paired_effect([0.01, 5.0, 0.02, 0.03])
    assert all(v > 0 for v in wide.values) and verdict(wide, +1) is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError, match="paper_sign must be"):
        verdict(up, 0)


def test_four_word_rule_on_hand_cases():
    band = Band(0.1)                                       # differences within +-0.1 are negligible
    tiny = paired_effect([0.01, 0.02, 0.015, 0.012])       # excludes 0, but the interval lies inside the band
    big = paired_effect([1.0, 1.2, 0.9, 1.1])              # excludes 0 and lies past the band
    straddle = paired_effect([0.05, 0.2, 0.08, 0.15])      # excludes 0 and reaches past +0.1: material possible
    flat = paired_effect([0.02, -0.03, 0.01, -0.01])       # covers 0, inside the band
    wide = paired_effect([1.21, 0.69, -0.71, 1.01])        # covers 0, leaves the band
    assert verdict(tiny, +1, band) is Verdict.NEGLIGIBLE and verdict(tiny, -1, band) is Verdict.NEGLIGIBLE
    assert verdict(tiny, +1) is Verdict.AGREES             # the three-word rule would call it agrees
    assert verdict(big, +1, band) is Verdict.AGREES and verdict(big, -1, band) is Verdict.DISAGREES
    assert straddle.ci_low > 0 and straddle.ci_high > 0.1 and verdict(straddle, +1, band) is Verdict.AGREES
    assert verdict(flat, +1, band) is Verdict.NEGLIGIBLE
    assert verdict(wide, +1, band) is Verdict.INCONCLUSIVE
    # a ratio band is symmetric on the log scale: [1/1.05, 1.05]
    r = Band.ratio(1.05)
    assert r.edges(True) == pytest.approx((1 / 1.05, 1.05))
    near = paired_effect([0.996, 0.995, 0.997, 0.994], log=True)
    far = paired_effect([0.92, 0.91, 0.93, 0.915], log=True)
    assert verdict(near, -1, r) is Verdict.NEGLIGIBLE and verdict(far, -1, r) is Verdict.AGREES
    # halving the band turns the negligible straddle case into inconclusive-or-material cases
    assert verdict(tiny, +1, Band(0.01)) is Verdict.AGREES
    with pytest.raises(ValueError, match="margin must be a positive finite number"):
        Band(0.0)
    with pytest.raises(ValueError, match="within must be a ratio above 1"):
        Band.ratio(0.9)


def test_equivalence_test_is_two_one_sided_t_tests_and_matches_the_interval():
    d = np.array([0.03, -0.01, 0.02, 0.05, 0.0, 0.01])
    m, se, df = d.mean(), d.std(ddof=1) / math.sqrt(d.size), d.size - 1
    for margin in (0.02, 0.04, 0.06, 0.1):
        # by hand: t statistics against both edges and the t distribution's tails
        p_low = st.t.sf((m + margin) / se, df)
        p_high = st.t.cdf((m - margin) / se, df)
        e = paired_effect(d)
        p = equivalence_test(e, Band(margin))
        assert p == pytest.approx(max(p_low, p_high), rel=1e-10)
        # TOST at 2.5% per side <=> the 95% interval inside the band <=> "negligible"
        assert (p < 0.025) == (-margin < e.ci_low and e.ci_high < margin)
        assert (p < 0.025) == (verdict(e, 1, Band(margin)) is Verdict.NEGLIGIBLE)
    # ratios: the test runs on log ratios
    ratios = np.exp(d)
    e = paired_effect(ratios, log=True)
    assert equivalence_test(e, Band(0.06)) == pytest.approx(equivalence_test(paired_effect(d), Band(0.06)), rel=1e-9)
    assert math.isnan(equivalence_test(paired_effect([0.1]), Band(0.1)))


# ---- efficiency on a hand-made two-trial run ------------------------------------------------


def test_figure_intervals_are_the_verdicts_intervals():
    """The paper chapter's bands and error bars (``fbctrl.viz.chapters.paper_protocol`` draws
    ``stats.mean_ci``) are the interval the verdicts use: on the log scale the same as
    ``paired_effect(a, log=True)``, and on a hand case mean +- t_{0.975, 2} * sd / sqrt(3)."""
    x = np.array([1.0, 2.0, 4.0])
    m, lo, hi = mean_ci(x[:, None])
    half = st.t.ppf(0.975, 2) * np.std(x, ddof=1) / math.sqrt(3)
    assert m[0] == pytest.approx(7 / 3) and lo[0] == pytest.approx(7 / 3 - half) and hi[0] == pytest.approx(7 / 3 + half)
    y = np.array([0.02, 0.05, 0.011, 0.3, 0.07])
    e = paired_effect(y, log=True)
    m, lo, hi = mean_ci(y[:, None], log=True)
    assert (m[0], lo[0], hi[0]) == pytest.approx((e.mean, e.ci_low, e.ci_high), rel=1e-12)
    # a column with one finite seed has a mean and no interval; NaN seeds are dropped
    m, lo, hi = mean_ci(np.array([[1.0, 3.0], [np.nan, 5.0], [np.nan, 7.0]]))
    assert m[0] == 1.0 and np.isnan(lo[0]) and np.isnan(hi[0]) and m[1] == pytest.approx(5.0)


def test_format_ci_is_the_student_t_interval_and_back_transforms_ratios():
    """mean [95% CI]: d = [1, 2, 3, 4] gives 2.5 [0.446, 4.55] (t_{0.975, 3} sd / sqrt 4); ratios
    are summarised on the log scale: [2, 8] has geometric mean 4 and the back-transformed
    interval exp(log 4 +- 12.706 * log(4) / sqrt 2 / sqrt 2)."""
    assert format_ci([1, 2, 3, 4]) == "2.50 [0.446, 4.55]"
    lo, hi = np.exp(np.log(4) + np.array([-1, 1]) * 12.7062047 * np.log(4) / 2)
    assert format_ci([2, 8], log=True) == f"4.00 [{book.fmt_num(lo)}, {book.fmt_num(hi)}]"
    assert format_ci([0.5]) == "0.500" and format_ci([np.nan]) == "n/a"


def test_verdict_text_with_a_band_says_negligible_inside_it():
    from fbctrl.experiments.stats import Band, verdict_text

    tiny = [0.001, -0.001, 0.002, 0.0]                 # mean 0.0005, 95% interval [-0.0015, 0.0025]
    assert verdict_text(tiny).startswith("inconclusive")
    assert verdict_text(tiny, band=Band(0.01)).startswith("negligible (p = ")
    assert verdict_text([1, 2, 3, 4], band=Band(0.5)).startswith("agrees")      # [0.446, 4.554] leaves ±0.5
    assert verdict_text([1, 2, 3, 4], band=Band(5.0)).startswith("negligible")    # inside ±5 altogether
