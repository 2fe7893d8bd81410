"""The learning rules' contract (fbctrl.learning.rules.base.LearningRule): every rule is a
LearningRule, implements every abstract method, has each documented flag as a bool and overrides
every method its flags promise; the adaptation engine asks the rule nothing outside that interface."""

import ast
from pathlib import Path

import pytest
import torch

from fbctrl.learning import rules
from fbctrl.learning.rules import FLAGS, PROMISES, RULES, LearningRule, OnlineBPTT, RFLO, TrialState, make_rule

ADAPT = Path(rules.__file__).resolve().parent.parent / "adapt.py"
R, N, T = 2, 5, 6


def _rules():
    """One instance of every rule and convention."""
    B = torch.randn(R, N, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return {"bptt history": OnlineBPTT(R, N, T, dtype=torch.float64),
            "bptt current": OnlineBPTT(R, N, T, dtype=torch.float64, weights="current"),
            "rflo": RFLO(R, N, T, B, dtype=torch.float64)}


@pytest.fixture(params=list(_rules()))
def rule(request) -> LearningRule:
    return _rules()[request.param]


def test_every_rule_is_a_learning_rule_with_every_abstract_method(rule):
    assert isinstance(rule, LearningRule)
    assert type(rule).__abstractmethods__ == frozenset()
    for name in LearningRule.__abstractmethods__:
        assert getattr(type(rule), name) is not getattr(LearningRule, name), name


def test_flags_are_bools_and_the_name_is_a_listed_rule(rule):
    for flag in FLAGS:
        assert type(getattr(rule, flag)) is bool, flag
    assert isinstance(type(rule).name, str) and type(rule).name in RULES


def test_every_flag_keeps_its_promises(rule):
    """A flag that is True: the rule overrides each method it promises. A flag that is False and
    a promised method the rule lacks: calling it is a clear NotImplementedError naming the flag."""
    for flag, methods in PROMISES.items():
        for m in methods:
            own = getattr(type(rule), m) is not getattr(LearningRule, m)
            if getattr(rule, flag):
                assert own, f"{type(rule).__name__}.{flag} is True but {m} is the base's"
    if not rule.adds_in_place:
        with pytest.raises(NotImplementedError, match="adds_in_place"):
            rule.add_step(None, 0, None, None)


def test_the_base_class_documents_every_flag_and_method():
    doc = LearningRule.__doc__
    for flag in FLAGS:
        assert f"``{flag}``" in doc, flag
    for name in sorted({m for ms in PROMISES.values() for m in ms} | LearningRule.__abstractmethods__):
        assert f"``{name}(" in doc, name


def test_rule_names_are_the_classes_names():
    assert RULES == ("bptt", "rflo")
    assert [rules.rule_class(r).name for r in RULES] == list(RULES)


def test_a_rule_missing_an_abstract_method_cannot_be_made():
    class NoStep(LearningRule):
        name = "nostep"

        def begin_trial(self, state):
            pass

    with pytest.raises(TypeError, match="step"):
        NoStep()
    with pytest.raises(TypeError):
        LearningRule()

    class Zero(LearningRule):
        name = "zero"

        def begin_trial(self, state):
            pass

        def step(self, state, k, lr):
            return torch.zeros(1, 2, 2)

    z = Zero()                                   # every flag off, every promised method refuses
    assert all(getattr(z, f) is False for f in FLAGS) and z.one_run_ok(0.1) is False
    with pytest.raises(NotImplementedError, match="defers_weights"):
        z.recurrent_input(None, 0, None, None)
    with pytest.raises(NotImplementedError, match="computes_exact_gradient"):
        z.alignment(None, 1, None)


def test_make_rule_builds_each_rule_and_refuses_bad_arguments():
    B = torch.zeros(1, 3, 2)
    assert type(make_rule("bptt", 1, 3, 4)) is OnlineBPTT
    assert make_rule("bptt", 1, 3, 4, bptt_weights="current").weights == "current"
    assert type(make_rule("rflo", 1, 3, 4, B=B)) is RFLO
    with pytest.raises(ValueError, match=r"^rule must be one of bptt, rflo, got 'adam'$"):
        make_rule("adam", 1, 3, 4)
    with pytest.raises(ValueError, match="rule must be one of bptt, rflo"):
        make_rule(["rflo"], 1, 3, 4, B=B)
    with pytest.raises(ValueError, match="^B: RFLO needs its feedback matrix"):
        make_rule("rflo", 1, 3, 4)
    for bad in ({"R": 0}, {"n": 2.5}, {"T": True}):
        args = {"R": 1, "n": 3, "T": 4} | bad
        with pytest.raises(ValueError, match=f"^{next(iter(bad))} must be a positive integer"):
            make_rule("bptt", args["R"], args["n"], args["T"])
    with pytest.raises(ValueError, match="weights must be 'history' or 'current'"):
        make_rule("bptt", 1, 3, 4, bptt_weights="old")


def _learner_attributes() -> set[str]:
    """Every attribute the adaptation engine reads or sets on its rule (``learner.x``,
    ``self.learner.x``, ``eng.learner.x``)."""
    names = set()
    for node in ast.walk(ast.parse(ADAPT.read_text())):
        if isinstance(node, ast.Attribute):
            v = node.value
            if (isinstance(v, ast.Name) and v.id == "learner") or (isinstance(v, ast.Attribute) and v.attr == "learner"):
                names.add(node.attr)
    return names


def test_the_engine_uses_only_the_documented_interface():
    used = _learner_attributes()
    assert {"begin_trial", "step", "defers_weights", "adds_in_place"} <= used     # the parser sees them
    documented = set(FLAGS) | {m for ms in PROMISES.values() for m in ms} | LearningRule.__abstractmethods__ \
        | {"W_current", "record"}
    assert used <= documented, sorted(used - documented)
    for name in used:
        assert hasattr(LearningRule, name), name
    src = ADAPT.read_text()
    assert "isinstance(self.learner" not in src and "isinstance(learner" not in src
    assert "learner._" not in src


def test_trial_state_is_the_one_every_rule_reads():
    assert rules.base.TrialState is TrialState
    assert [f for f in TrialState.__dataclass_fields__] == ["X", "Rh", "aD", "E", "Wh", "W_out", "alpha", "dt"]
