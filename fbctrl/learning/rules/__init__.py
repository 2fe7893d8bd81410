"""Online learning rules for W_rec during adaptation (the book's Methods page, "Adaptation"),
for R runs in lockstep.

Every rule is a :class:`LearningRule` (``base``: the interface the adaptation engine uses, every
method and flag documented there), one module per rule:

    base.py          LearningRule, TrialState (the trial history every rule reads), FLAGS, PROMISES
    online_bptt.py   OnlineBPTT: exact online BPTT, dW_k = -lr dl_k/dW_rec
    rflo.py          RFLO: random-feedback local online learning, dW_k = lr diag(B E[k+1]) P_k

A new rule is a subclass of :class:`LearningRule` added to ``_CLASSES`` below.
"""

from __future__ import annotations

import numbers

import torch

from ..rates import PAPER_LR   # declared in fbctrl.learning.rates, re-exported here
from .base import FLAGS, PROMISES, LearningRule, TrialState
from .online_bptt import OnlineBPTT
from .rflo import RFLO

__all__ = ["TrialState", "LearningRule", "FLAGS", "PROMISES", "OnlineBPTT", "RFLO", "make_rule", "rule_class",
           "PAPER_LR", "RULES"]

_CLASSES: tuple[type[LearningRule], ...] = (OnlineBPTT, RFLO)

RULES = tuple(cls.name for cls in _CLASSES)



def rule_class(rule: str) -> type[LearningRule]:
    """The class of the rule named ``rule`` (one of ``RULES``)."""
    for cls in _CLASSES:
        if isinstance(rule, str) and rule == cls.name:
            return cls
    raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")


def make_rule(rule: str, R: int, n: int, T: int, *, B: torch.Tensor | None = None, device=None,
              dtype=torch.float32, bptt_weights: str = "history") -> LearningRule:
    """The rule named ``rule`` (one of ``RULES``) for R runs of n units and T steps per trial;
    ``B`` [R, n, 2] is RFLO's feedback matrix, ``bptt_weights`` online BPTT's weights convention
    ("history" or "current", :class:`OnlineBPTT`)."""
    cls = rule_class(rule)
    for arg, v in (("R", R), ("n", n), ("T", T)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{arg} must be a positive integer, got {v!r}")
    if cls is OnlineBPTT:
        return OnlineBPTT(R, n, T, device=device, dtype=dtype, weights=bptt_weights)
    if B is None:
        raise ValueError("B: RFLO needs its feedback matrix B [R, n, 2]")
    return RFLO(R, n, T, B, device=device, dtype=dtype)
