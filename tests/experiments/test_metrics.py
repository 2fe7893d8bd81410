"""The efficiency, loss and alignment summaries (fbctrl.experiments.metrics) on hand-made runs."""

from __future__ import annotations

import numpy as np
import pytest

from fbctrl.experiments import metrics


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


def test_efficiency_and_loss_drop_on_synthetic_records():
    rec = {"dW_path": np.array([[1.0, 1.0, 2.0], [0.5, 0.5, np.nan]]),
           "dW_total": np.array([[1.0, 1.5, 2.0], [0.5, 0.25, 0.25]]),
           "test_loss": np.array([[4.0, 3.0, 2.0], [4.0, 2.0, 1.0]])}
    np.testing.assert_allclose(metrics.efficiency(rec, "whole_run"), [0.5, 0.25])
    ce = metrics.cumulative_efficiency(rec)
    np.testing.assert_allclose(ce[:, -1], metrics.efficiency(rec, "whole_run"))
    np.testing.assert_allclose(ce[0], [1.0, 0.75, 0.5])
    d = metrics.loss_drop_per_path(rec, np.array([5.0, 5.0]))
    np.testing.assert_allclose(metrics.final(rec["test_loss"], 2), [2.5, 1.5])
    fin = [3.0, 7.0 / 3.0]  # the final window (10 trials) covers the whole record here
    np.testing.assert_allclose(d["per_path"], [(5 - fin[0]) / 4.0, (5 - fin[1]) / 1.0])
    np.testing.assert_allclose(d["per_displacement"], [(5 - fin[0]) / 2.0, (5 - fin[1]) / 0.25])


def test_alignment_summary_uses_aligned_trials_and_movement_steps():
    T = 30
    al = np.full((2, 4, T), np.nan)
    ag = np.full((2, 4), np.nan)
    al[:, 0] = 0.2
    al[:, 2] = 0.6
    al[:, :, :20] = np.where(np.isfinite(al[:, :, :20]), -1.0, np.nan)  # before the go step: ignored
    ag[:, 0], ag[:, 2] = 0.1, 0.3
    s = metrics.alignment_summary({"align_local": al, "align_global": ag})
    np.testing.assert_array_equal(s["trials"], [0, 2])
    np.testing.assert_allclose(s["local"], [0.4, 0.4])
    np.testing.assert_allclose(s["global"], [0.2, 0.2])
    np.testing.assert_allclose(s["local_trial"], [[0.2, 0.6], [0.2, 0.6]])
    assert s["local_step"].shape == (2, T)
    assert metrics.alignment_summary({"test_loss": np.zeros((1, 2))}) is None
