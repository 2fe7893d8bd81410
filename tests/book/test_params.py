"""The notebooks' parameters (fbctrl.book.params): profiles, checked values with one-line errors,
registered parameters."""

from __future__ import annotations

import pytest

from fbctrl import book


# ---- validate_params -----------------------------------------------------------------------

def test_validate_params_defaults(tmp_path):
    P = book.validate_params(profile="default", device="cpu", checkpoint_dir=str(tmp_path), seeds=None,
                             rotation_deg=30, repeats=None)
    assert P.profile is book.PROFILES["default"]
    assert P.profile_name == "default"
    assert P.rotation_deg == 30.0 and isinstance(P.rotation_deg, float)
    assert P.seeds is None and P.repeats is None


@pytest.mark.parametrize("seeds, expected", [([0, 2], (0, 2)), (3, (3,)), ("0,1", (0, 1)), ("[4, 5]", (4, 5))])
def test_validate_params_seeds(seeds, expected):
    assert book.validate_params(profile="default", seeds=seeds).seeds == expected


@pytest.mark.parametrize("kw, name, allowed", [
    (dict(profile="fast"), "profile", "default, paper"),
    (dict(profile="default", device="tpu"), "device", "'cpu' or 'cuda"),
    (dict(profile="default", rotation_deg="abc"), "rotation_deg", "finite number of degrees"),
    (dict(profile="default", rotation_deg=float("nan")), "rotation_deg", "finite number of degrees"),
    (dict(profile="default", rotation_deg=True), "rotation_deg", "finite number of degrees"),
    (dict(profile="default", trials=-3), "trials", "positive integer"),
    (dict(profile="default", n_trials=0), "n_trials", "positive integer"),
    (dict(profile="default", adapt_trials=2.5), "adapt_trials", "positive integer"),
    (dict(profile="default", repeats=-1), "repeats", "positive integer"),
    (dict(profile="default", delay=-1), "delay", "non-negative integer"),
    (dict(profile="default", seeds=[0, -1]), "seeds", "non-negative integers"),
    (dict(profile="default", seeds="a,b"), "seeds", "non-negative integers"),
    (dict(profile="default", seeds=[1, 1]), "seeds", "repeat"),
    (dict(profile="default", lr=-1e-3), "lr", "positive number"),
    (dict(profile="default", controller_on="yes"), "controller_on", "True or False"),
    (dict(profile="default", target=8), "target", "0..7"),
    (dict(profile="default", checkpoint_dir="/no/such/folder"), "checkpoint_dir", "not a folder"),
    (dict(profile="default", bogus=1), "bogus", "unknown notebook parameter"),
    (dict(device="cpu"), "profile", "default, paper"),
])
def test_validate_params_errors(kw, name, allowed):
    with pytest.raises(ValueError) as exc:
        book.validate_params(**kw)
    msg = str(exc.value)
    assert "\n" not in msg
    assert name in msg and allowed in msg


def test_validate_params_cuda_unavailable():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="device 'cuda' asked for, but CUDA is not available"):
        book.validate_params(profile="default", device="cuda")


def test_register_param():
    def check(name, v):
        if v not in ("a", "b"):
            raise ValueError(f"{name} must be 'a' or 'b', got {v!r}")
        return v

    book.register_param("mode_for_test", check)
    assert book.validate_params(profile="default", mode_for_test="a").mode_for_test == "a"
    with pytest.raises(ValueError, match="mode_for_test must be 'a' or 'b'"):
        book.validate_params(profile="default", mode_for_test="c")


def test_validate_params_rules_and_rates():
    P = book.validate_params(profile="paper", rule="rflo", rules=["bptt", "rflo"], lrs=[1e-5, 5e-5],
                             rotations_deg=[30, 45], adapt_trials=None)
    assert P.rules == ("bptt", "rflo") and P.lrs == (1e-5, 5e-5) and P.rotations_deg == (30.0, 45.0)
    assert P.profile.name == "paper" and P.adapt_trials is None
    for kw, name in [(dict(rule="sgd"), "rule"), (dict(rules=["rflo", "adam"]), "rules"),
                     (dict(lrs=[1e-3, 0]), "lrs"), (dict(rotations_deg=[30, "x"]), "rotations_deg")]:
        with pytest.raises(ValueError, match=name):
            book.validate_params(profile="default", **kw)


@pytest.mark.parametrize("kw, name", [
    (dict(newton_steps=[0]), "newton_steps"), (dict(newton_steps="a"), "newton_steps"),
    (dict(targets="[1, x]"), "targets"),
    (dict(lags=[0]), "lags"), (dict(jacobian_norm="nuclear"), "jacobian_norm"),
    (dict(targets=[8]), "targets"), (dict(targets=[1, 1]), "targets"), (dict(step_stride=0), "step_stride"),
    (dict(minres_iters=[0]), "minres_iters"), (dict(n_eigs=-1), "n_eigs"), (dict(horizons=[]), "horizons"),
])
def test_chapter_parameters_are_checked_in_one_line(kw, name):
    with pytest.raises(ValueError) as exc:
        book.validate_params(profile="default", **kw)
    assert str(exc.value).startswith(name) and "\n" not in str(exc.value)


def test_chapter_parameters_normalise():
    P = book.validate_params(profile="default", newton_steps="[30, 60]", lags=5, targets="[3, 1]",
                             jacobian_norm="frobenius", horizons="[1, 10]")
    assert P.newton_steps == (30, 60) and P.lags == (5,) and P.targets == (3, 1) and P.horizons == (1, 10)
