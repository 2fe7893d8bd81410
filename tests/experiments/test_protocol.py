"""Adaptation conditions and protocols (fbctrl.experiments.protocol): the conditions' names, the
published, paper-text and best protocols' effective rates, and the feedback/output ratio."""

import pytest
import torch

from fbctrl.experiments.protocol import (
    CONDITIONS, Condition, Protocol, Rule, effective_rate, feedback_output_ratio)

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


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
