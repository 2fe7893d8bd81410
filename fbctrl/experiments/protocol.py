"""Adaptation conditions and protocols: which rule, controller setting and learning rate a run uses.

One place for three facts that the rest of the package reads:

* :class:`Condition` -- a learning rule crossed with the controller setting during adaptation
  (Methods, "Adaptation"): ``RFLO+c``, ``RFLO``, ``BPTT+c``, ``BPTT``. Parsed from its name once, at the edge
  (command line, file keys), never as a string further in.
* :class:`Protocol` -- how the learning rate of a condition is chosen:

  ``published``
      the published code's *effective* settings (Methods, "Adaptation"; ``do_adaptation.py`` and
      ``adaptation_learning.py``): the paper's rates, RFLO divided by 10 when the controller is
      off and on networks without feedback, BPTT divided by 10 on networks without feedback,
      and every BPTT rate multiplied by ``|W_fb| / |W_out|`` of the loaded network.
  ``paper-text``
      the rates as the paper's text states them: 1e-4 (BPTT+c), 5e-6 (BPTT), 5e-5 (RFLO, RFLO+c).
  ``best``
      each condition at its own best rate from the learning-rate sweep.

  Exact ("history") online BPTT and the integrated error started from zero are used under all
  three.

Decisions where the published code is ill-defined (written in Methods):

* For a network *without* feedback the published code reads the ratio from its *unmasked*
  feedback weights, which only the regulariser shaped during pre-training; fbctrl's checkpoints
  store ``W_fb`` with the mask applied (all zero there), so the ratio would be 0 and no BPTT
  learning would happen. The published protocol here applies no ratio on such networks (factor 1)
  and records it.
* The published code also rescales RFLO by the ratio on networks without feedback (its rule is
  then called ``rflo_t``, missing from the exclusion list): a bug, not copied.

Every run records its :class:`EffectiveRate` (base rate, factors, final rate) in its result file.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field

from ..learning.rates import PAPER_LR

__all__ = ["Rule", "Condition", "CONDITIONS", "Protocol", "PAPER_TEXT_LR", "EffectiveRate", "effective_rate",
           "feedback_output_ratio"]


class Rule(str, enum.Enum):
    """A learning rule for W_rec during adaptation (Methods, "Adaptation")."""

    RFLO = "rflo"
    BPTT = "bptt"


@dataclass(frozen=True, order=True)
class Condition:
    """A learning rule with the controller on (``+c``) or off during adaptation."""

    rule: Rule
    controller_on: bool

    def __post_init__(self):
        object.__setattr__(self, "rule", Rule(self.rule))
        object.__setattr__(self, "controller_on", bool(self.controller_on))

    @property
    def name(self) -> str:
        """'RFLO+c', 'RFLO', 'BPTT+c', 'BPTT' as in the paper."""
        return self.rule.value.upper() + ("+c" if self.controller_on else "")

    @property
    def slug(self) -> str:
        """File-name form: 'rflo_c', 'rflo', 'bptt_c', 'bptt'."""
        return self.rule.value + ("_c" if self.controller_on else "")

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> "Condition":
        """From a name ('RFLO+c') or slug ('rflo_c'), case-insensitive."""
        t = str(text).strip().lower()
        ctrl = t.endswith("+c") or t.endswith("_c")
        base = t[:-2] if ctrl else t
        try:
            return cls(Rule(base), ctrl)
        except ValueError:
            allowed = ", ".join(c.name for c in CONDITIONS)
            raise ValueError(f"condition must be one of {allowed}, got {text!r}") from None


CONDITIONS = (Condition(Rule.RFLO, True), Condition(Rule.RFLO, False),
              Condition(Rule.BPTT, True), Condition(Rule.BPTT, False))

# The fine-tuning rates as the paper's text states them (Methods, "Adaptation"; declared in
# fbctrl.learning.rates)
PAPER_TEXT_LR = {c: PAPER_LR[(c.rule.value, c.controller_on)] for c in CONDITIONS}


class Protocol(str, enum.Enum):
    """How a condition's learning rate is chosen (module docstring)."""

    PUBLISHED = "published"
    PAPER_TEXT = "paper-text"
    BEST = "best"

    @classmethod
    def parse(cls, text) -> "Protocol":
        try:
            return cls(str(getattr(text, "value", text)))
        except ValueError:
            raise ValueError(f"protocol must be one of {', '.join(p.value for p in cls)}, got {text!r}") from None


@dataclass(frozen=True)
class EffectiveRate:
    """The learning rate a run uses and how it came about: ``lr = base_lr * prod(factors)``."""

    lr: float
    base_lr: float
    protocol: str
    condition: str
    factors: dict = field(default_factory=dict)   # name -> multiplier, in the order applied

    def as_dict(self) -> dict:
        return asdict(self)


def feedback_output_ratio(W_fb, W_out) -> float:
    """``|W_fb| / |W_out|`` (Frobenius norms) of one network, as the published code computes it."""
    num = float((W_fb.double() ** 2).sum().sqrt())
    den = float((W_out.double() ** 2).sum().sqrt())
    if not den > 0:
        raise ValueError("W_out is zero: the feedback/output ratio is undefined")
    return num / den


def effective_rate(protocol, condition: Condition, *, has_feedback: bool, fb_out_ratio: float | None = None,
                   best_lr: float | None = None) -> EffectiveRate:
    """The learning rate of ``condition`` under ``protocol`` for one network.

    ``has_feedback``: the network was pre-trained with feedback (density > 0).
    ``fb_out_ratio``: ``|W_fb| / |W_out|`` of that network (needed for BPTT under ``published``
    on a network with feedback). ``best_lr``: the condition's best swept rate (``best``).
    Networks without feedback have no controller: only controller-off conditions are allowed.
    """
    protocol = Protocol.parse(protocol)
    if not isinstance(condition, Condition):
        condition = Condition.parse(condition)
    if condition.controller_on and not has_feedback:
        raise ValueError(f"condition {condition.name} needs a network with feedback (this one has none)")
    if protocol is Protocol.BEST:
        if best_lr is None or not (best_lr > 0 and math.isfinite(best_lr)):
            raise ValueError(f"protocol 'best' needs the best swept rate of {condition.name} (best_lr), got {best_lr!r}")
        return EffectiveRate(float(best_lr), float(best_lr), protocol.value, condition.name, {})
    base = PAPER_TEXT_LR[condition]
    factors: dict[str, float] = {}
    if protocol is Protocol.PUBLISHED:
        if condition.rule is Rule.RFLO and (not condition.controller_on or not has_feedback):
            factors["rflo_controller_off_or_no_feedback"] = 0.1
        if condition.rule is Rule.BPTT and not has_feedback:
            factors["bptt_no_feedback"] = 0.1
        if condition.rule is Rule.BPTT and has_feedback:
            if fb_out_ratio is None or not (fb_out_ratio > 0 and math.isfinite(fb_out_ratio)):
                raise ValueError(f"protocol 'published' rescales BPTT by |W_fb|/|W_out|: fb_out_ratio needed, "
                                 f"got {fb_out_ratio!r}")
            factors["W_fb_over_W_out"] = float(fb_out_ratio)
    lr = base
    for f in factors.values():
        lr *= f
    return EffectiveRate(float(lr), float(base), protocol.value, condition.name, factors)
