"""The adaptation learning rates, declared once (the book's Methods page, "Learning rates").

* :data:`PAPER_LR` -- the fine-tuning rates as the paper states them (Methods, "Adaptation"), per rule and
  controller setting: 5e-5 for RFLO with and without the controller, 1e-4 for BPTT+c, 5e-6 for
  BPTT. They are the default rate of a run, the base rate of every protocol
  (``fbctrl.experiments.protocol.effective_rate``: the published code's effective rates are
  these times its factors) and the ``paper-text`` protocol's rates.
* :data:`SWEEP_GRID` -- the learning-rate sweep of the paper protocol (Figure 8): seven rates
  per rule, half a decade apart, spanning the paper's rates (RFLO's holds 5e-5, BPTT's 1e-4; the
  paper's 5e-6 for BPTT lies between two of its rates).
* :data:`SHIPPED_SWEEP_GRID` -- the coarser grid the networks pre-trained with pushes
  (``checkpoints/fb_seed*.pt``) were swept on (five rates per rule, holding the paper's rates).
* :data:`TINY_SWEEP_GRID` -- two rates per rule, for the dry run of every stage in seconds.
"""

from __future__ import annotations

__all__ = ["PAPER_LR", "paper_lr", "SWEEP_GRID", "SHIPPED_SWEEP_GRID", "TINY_SWEEP_GRID"]

# (rule, controller_on) -> the paper's fine-tuning rate (Methods, "Adaptation")
PAPER_LR = {("bptt", True): 1e-4, ("bptt", False): 5e-6, ("rflo", True): 5e-5, ("rflo", False): 5e-5}

# rule -> swept rates, increasing
SWEEP_GRID = {"rflo": (1.5e-6, 5e-6, 1.5e-5, 5e-5, 1.5e-4, 5e-4, 1.5e-3),
              "bptt": (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3)}
SHIPPED_SWEEP_GRID = {"rflo": (5e-6, 1.5e-5, 5e-5, 1.5e-4, 5e-4), "bptt": (1e-6, 5e-6, 2e-5, 1e-4, 5e-4)}
TINY_SWEEP_GRID = {"rflo": (5e-5, 5e-4), "bptt": (1e-5, 1e-4)}


def paper_lr(rule: str, controller_on: bool) -> float:
    """The paper's fine-tuning rate of a condition (Methods, "Adaptation"): ``PAPER_LR[(rule,
    controller_on)]``."""
    return PAPER_LR[(rule, bool(controller_on))]
