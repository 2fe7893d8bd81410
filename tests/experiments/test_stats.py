"""Protocols (published conventions), paired statistics against scipy and by hand, the verdict
rule, and the efficiency definitions on a hand-made two-trial run."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from fbctrl.experiments import metrics, verdicts
from fbctrl.experiments.protocol import CONDITIONS, Condition, Protocol, Rule, effective_rate, feedback_output_ratio
from fbctrl.experiments.stats import Band, Verdict, equivalence_test, paired_effect, verdict

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


# ---- protocols ------------------------------------------------------------------------------

def test_condition_names_round_trip():
    assert [c.name for c in CONDITIONS] == ["RFLO+c", "RFLO", "BPTT+c", "BPTT"]
    for c in CONDITIONS:
        assert Condition.parse(c.name) == c and Condition.parse(c.slug) == c
    assert Condition.parse("rflo+C") == RFLO_C
    with pytest.raises(ValueError, match="condition must be one of RFLO\\+c, RFLO, BPTT\\+c, BPTT"):
        Condition.parse("sgd")


def test_published_protocol_divides_rflo_by_ten_without_controller_and_rescales_bptt():
    r = 0.87
    eff = {c.name: effective_rate("published", c, has_feedback=True, fb_out_ratio=r).lr for c in CONDITIONS}
    assert eff["RFLO+c"] == pytest.approx(5e-5, rel=1e-12)
    assert eff["RFLO"] == pytest.approx(5e-6, rel=1e-12)
    assert eff["BPTT+c"] == pytest.approx(1e-4 * r, rel=1e-12)
    assert eff["BPTT"] == pytest.approx(5e-6 * r, rel=1e-12)
    e = effective_rate(Protocol.PUBLISHED, BPTT_C, has_feedback=True, fb_out_ratio=r)
    assert e.base_lr == 1e-4 and e.factors == {"W_fb_over_W_out": r} and e.protocol == "published"


def test_published_protocol_on_networks_without_feedback():
    rflo = effective_rate("published", RFLO, has_feedback=False)
    bptt = effective_rate("published", BPTT, has_feedback=False, fb_out_ratio=0.0)
    assert rflo.lr == pytest.approx(5e-6, rel=1e-12) and "W_fb_over_W_out" not in rflo.factors
    assert bptt.lr == pytest.approx(5e-7, rel=1e-12) and bptt.factors == {"bptt_no_feedback": 0.1}
    with pytest.raises(ValueError, match="needs a network with feedback"):
        effective_rate("published", RFLO_C, has_feedback=False)


def test_paper_text_and_best_protocols():
    assert [effective_rate("paper-text", c, has_feedback=True).lr for c in CONDITIONS] == [5e-5, 5e-5, 1e-4, 5e-6]
    assert effective_rate("best", RFLO, has_feedback=True, best_lr=1.5e-4).lr == 1.5e-4
    with pytest.raises(ValueError, match="protocol 'best' needs the best swept rate"):
        effective_rate("best", RFLO, has_feedback=True)
    with pytest.raises(ValueError, match="protocol must be one of published, paper-text, best"):
        effective_rate("paper", RFLO, has_feedback=True)
    with pytest.raises(ValueError, match="fb_out_ratio needed"):
        effective_rate("published", BPTT_C, has_feedback=True)


def test_feedback_output_ratio_is_the_ratio_of_frobenius_norms():
    W_fb = torch.tensor([[3.0, 0.0], [0.0, 4.0]])      # |W_fb| = 5
    W_out = torch.tensor([[1.0, 2.0], [2.0, 4.0]])     # |W_out| = 5
    assert feedback_output_ratio(W_fb, W_out) == pytest.approx(1.0)
    assert feedback_output_ratio(2 * W_fb, W_out) == pytest.approx(2.0)
    assert Rule("rflo") is Rule.RFLO


# ---- statistics -----------------------------------------------------------------------------

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

def _two_trials():
    # run a: trial 1 moves W by 1 along a path of 2, trial 2 by 2 along 2; |W - W0| = 1 then 2.5
    a = {"dW_trial": np.array([[1.0, 2.0]]), "dW_path": np.array([[2.0, 2.0]]), "dW_total": np.array([[1.0, 2.5]])}
    b = {"dW_trial": np.array([[1.0, 0.5]]), "dW_path": np.array([[1.0, 1.0]]), "dW_total": np.array([[1.0, 1.5]])}
    return a, b


def test_efficiency_definitions_on_a_hand_made_two_trial_run():
    a, b = _two_trials()
    assert metrics.efficiency(a, "published", lr=0.1)[0] == pytest.approx((0.1 * 1 / 2 + 0.1 * 2 / 2) / 2)
    assert metrics.efficiency(a, "per_trial")[0] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics.efficiency(a, "whole_run")[0] == pytest.approx(2.5 / 4)
    ea, eb, L = metrics.efficiency_equal_path(a, b)
    # shorter total path: b's, 2. a reaches 2 after its first trial (1 / 2), b after its second (1.5 / 2)
    assert L[0] == pytest.approx(2.0) and ea[0] == pytest.approx(0.5) and eb[0] == pytest.approx(0.75)
    # the published ratio scales with the rate; the scale-free one does not
    assert metrics.efficiency(a, "published", lr=0.2)[0] == pytest.approx(2 * metrics.efficiency(a, "published", lr=0.1)[0])
    with pytest.raises(ValueError, match="needs each run's learning rate"):
        metrics.efficiency(a, "published")
    with pytest.raises(ValueError, match="efficiency definition must be one of"):
        metrics.efficiency(a, "cumulative")


def test_final_loss_and_curve_area():
    tl = np.array([[4.0, 3.0, 2.0, 1.0]])
    assert metrics.final_loss(tl, 2)[0] == pytest.approx(1.5)
    assert metrics.curve_area(tl)[0] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="window must lie in 1..4"):
        metrics.final_loss(tl, 5)


def test_figure_intervals_are_the_verdicts_intervals():
    """The paper chapter's bands and error bars (``fbctrl.viz.chapters.paper_protocol`` draws
    ``stats.mean_ci``) are the interval the verdicts use: on the log scale the same as
    ``paired_effect(a, log=True)``, and on a hand case mean +- t_{0.975, 2} * sd / sqrt(3)."""
    from fbctrl.experiments.stats import mean_ci

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


def test_sweep_figure_range_covers_every_network_and_keeps_its_tick_labels():
    """An interval over two surviving networks spans many decades; the panel's range is set by the
    single networks (all inside it, diverged ones left out) and its log axis keeps labelled ticks."""
    import matplotlib.pyplot as plt
    from fbctrl.viz.chapters import paper_protocol as figures

    rates = np.array([1e-5, 1e-4, 1e-3])
    final = np.array([[0.01, 0.012, 0.011], [0.002, 0.003, 0.0025], [5.0, 3.0e4, np.nan]])
    div = np.isnan(final)
    tables = {"BPTT+c": {"rates": rates, "final": final, "diverged": div, "complete": True}}
    fig = figures.plot_paper_sweep(tables, {"BPTT+c": {"lr": 1e-4, "bracketed": True}})
    ax = fig.axes[0]
    fig.canvas.draw()
    lo, hi = ax.get_ylim()
    ok = final[np.isfinite(final)]
    assert lo < ok.min() and ok.max() < hi < 1e6
    labels = [t.get_text() for t in ax.get_yticklabels() if lo <= t.get_position()[1] <= hi]
    assert len([x for x in labels if x]) >= 3 and ax.get_legend() is not None
    plt.close(fig)


@pytest.mark.parametrize("lim, ticks", [((1e-3, 1.0), [1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
                                         ((5e-4, 1.2e5), [10.0 ** k for k in range(-3, 6)])])
def test_log_axes_label_ticks_on_narrow_and_wide_ranges(lim, ticks):
    """1, 2, 5 x 10^k on a narrow axis; 10^k on one wider than six decades (where matplotlib's
    locator with three subs per decade left the axis without a single label)."""
    import matplotlib.pyplot as plt
    from fbctrl.viz.figures import _log_plain

    fig, ax = plt.subplots()
    ax.plot([1, 2], [lim[0] * 2, lim[1] / 2])
    _log_plain(ax)
    ax.set_ylim(*lim)
    fig.canvas.draw()
    shown = [t.get_position()[1] for t in ax.get_yticklabels() if lim[0] <= t.get_position()[1] <= lim[1] and t.get_text()]
    np.testing.assert_allclose(shown, ticks, rtol=1e-9)
    plt.close(fig)


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


def test_published_efficiency_is_the_rate_ratio_times_the_scale_free_ratio_on_a_hand_run():
    # two runs of three trials: |W_end - W_start| of each trial (rate included) and its path
    a = {"dW_trial": np.array([[0.3, 0.2, 0.1]]), "dW_path": np.array([[0.5, 0.4, 0.4]]),
         "dW_total": np.array([[0.3, 0.4, 0.45]])}
    b = {"dW_trial": np.array([[0.02, 0.03, 0.01]]), "dW_path": np.array([[0.025, 0.05, 0.04]]),
         "dW_total": np.array([[0.02, 0.04, 0.05]])}
    lr_a, lr_b = 5e-5, 5e-6
    # by hand: published = mean_t lr * trial_t / path_t; scale-free = mean_t trial_t / path_t
    pub_a = lr_a * np.mean([0.3 / 0.5, 0.2 / 0.4, 0.1 / 0.4])
    pub_b = lr_b * np.mean([0.02 / 0.025, 0.03 / 0.05, 0.01 / 0.04])
    assert metrics.efficiency(a, "published", lr=lr_a)[0] == pytest.approx(pub_a, rel=1e-12)
    assert metrics.efficiency(b, "published", lr=lr_b)[0] == pytest.approx(pub_b, rel=1e-12)
    ratio_pub = metrics.efficiency(a, "published", lr=lr_a)[0] / metrics.efficiency(b, "published", lr=lr_b)[0]
    ratio_free = metrics.efficiency(a, "per_trial")[0] / metrics.efficiency(b, "per_trial")[0]
    assert ratio_pub == pytest.approx((lr_a / lr_b) * ratio_free, rel=1e-12)
    assert ratio_free == pytest.approx(np.mean([0.6, 0.5, 0.25]) / np.mean([0.8, 0.6, 0.25]), rel=1e-12)
    # a trial window: trials 1-2 only
    assert metrics.efficiency(a, "per_trial", trials=(1, 3))[0] == pytest.approx(np.mean([0.5, 0.25]), rel=1e-12)
    assert metrics.efficiency(a, "published", lr=lr_a, trials=(0, 1))[0] == pytest.approx(lr_a * 0.6, rel=1e-12)
    with pytest.raises(ValueError, match="trials needs a per-trial definition"):
        metrics.efficiency(a, "whole_run", trials=(0, 1))
    with pytest.raises(ValueError, match="trials must be \\(first, stop\\)"):
        metrics.efficiency(a, "per_trial", trials=(3, 5))
