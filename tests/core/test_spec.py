"""NetworkSpec (fbctrl.core.spec): file stems old and new round-trip, bad names are refused in one
line."""

from __future__ import annotations

import pytest

from fbctrl.core.spec import NetworkSpec
from fbctrl.core.train import PretrainConfig, network_tag


@pytest.mark.parametrize("density,delay,n,task,stem", [
    (1.0, 0, 400, "reach", "fb"), (0.0, 0, 400, "reach", "nofb"), (0.3, 0, 400, "reach", "fb0.3"),
    (0.1, 0, 400, "reach", "fb0.1"), (1.0, 5, 400, "reach", "fb_d5"), (1.0, 10, 400, "reach", "fb_d10"),
    (1.0, 0, 50, "reach", "fb_n50"), (0.5, 2, 20, "reach", "fb0.5_d2_n20"), (1.0, 0, 400, "limit-cycle", "lc_fb"),
    (0.0, 0, 100, "limit-cycle", "lc_nofb_n100")])
def test_file_stems_old_and_new_round_trip(density, delay, n, task, stem):
    cfg = PretrainConfig(n=n, feedback_density=density, delay=delay, task=task, train_push=task == "reach")
    assert network_tag(cfg) == stem                          # old names unchanged (fb, nofb, fb0.3, fb_d5, fb_n50)
    spec = NetworkSpec.parse(stem)
    assert (spec.feedback_density, spec.delay, spec.n, spec.task) == (density, delay, n, task)
    assert spec.has_feedback == (density > 0)


def test_network_spec_rejects_bad_names_in_one_line():
    for bad in ("fbx", "fb_d-1", "fb1.5", "lc_", "nofb0.3", "fb_seed0"):
        with pytest.raises(ValueError) as e:
            NetworkSpec.parse(bad)
        assert "\n" not in str(e.value) and ("network kind" in str(e.value) or "feedback_density" in str(e.value))
