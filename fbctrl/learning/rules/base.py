"""The interface every learning rule offers the adaptation engine, and the trial history it reads.

A learning rule changes W_rec online during adaptation (the book's Methods page, "Adaptation"),
for R runs in lockstep. The engine (``fbctrl.learning.adapt``) runs a trial step by step and
calls the rule through :class:`LearningRule` only: it never asks which rule it runs, only what the
rule offers (the flags below) and then calls the methods those flags promise.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

__all__ = ["TrialState", "LearningRule", "FLAGS", "PROMISES"]


@dataclass
class TrialState:
    """History of the current trial for R runs, kept by the adaptation engine, run-major so that
    one run's trial is contiguous::

        X  [R, T+1, n]   pre-activations (X[:, 0] = x_0)        aD [R, T+1, n]  alpha * relu'(X)
        Rh [R, T+1, n]   rates relu(X)                          E  [R, T+1, 2]  integrated error
        Wh [R, T+1, n, n] the W_rec used at step j (kept only while the alignment is measured)
        W_out [R, 2, n], alpha (leak), dt (time step)

    The step loss is ``l_k = mean_i E[k+1]_i^2``; the fed-back error is an *input*: no gradient
    flows through the controller loop, hence ``dl_k/dv_i = -dt E[k+1]`` for every i <= k
    (Methods, "Adaptation")."""

    X: torch.Tensor
    Rh: torch.Tensor
    aD: torch.Tensor
    E: torch.Tensor
    Wh: torch.Tensor | None
    W_out: torch.Tensor  # [R, 2, n]
    alpha: float
    dt: float


# The capability flags of LearningRule (each a bool, documented in its docstring) and the methods
# each promises beyond the abstract ones (a rule with the flag True overrides them).
PROMISES = {
    "defers_weights": ("recurrent_input", "apply_step", "materialize"),
    "adds_in_place": ("add_step",),
    "aligns_by_products": ("products_with_rates",),
    "computes_exact_gradient": ("alignment",),
    "one_run_numpy": ("one_run_ok", "one_run_views", "recurrent_input_one", "apply_step_one",
                      "finish_compiled_trial"),
    "one_run_compiled": ("one_run_ok", "one_run_compiled_views", "finish_compiled_trial"),
    "numpy_sweep": (),
    "supports_frozen": (),
    "published_lr_rescale": (),
}
FLAGS = tuple(PROMISES)


class LearningRule(abc.ABC):
    """One online learning rule for W_rec, for R runs in lockstep (Methods, "Adaptation").

    **Update.** After the forward step k of every run (``state`` holds x_{k+1}, r_{k+1},
    alpha relu'(x_{k+1}) and E[k+1]) the rule updates its traces and reads its weight change,
    split into "update the traces" and "read the gradient"::

        dW_k = lr * (learning signal from E[k+1]) x (trace built from the trial so far)   [R, n, n]

    online BPTT: ``dW_k = -lr dl_k/dW_rec`` (the exact gradient of the step loss back through the
    trial); RFLO: ``dW_k = lr diag(B E[k+1]) P_k`` with the eligibility trace
    ``P_k = (1 - alpha) P_{k-1} + alpha relu'(x_{k+1}) r_k^T``. ``lr`` is a tensor [R], zero for
    a run that must not move (a diverged run).

    **Methods every rule has** (abstract):

    - ``begin_trial(state)``: reset the traces for a new trial; the weights the trial starts
      from are ``W_current`` (called by the engine before step 0).
    - ``step(state, k, lr) -> dW`` [R, n, n]: the weight change after step k; the engine adds it
      to W_rec itself (a work buffer the next call may overwrite).

    **Attributes the engine sets**: ``W_current``, the engine's weight tensor [R, n, n], set
    once after construction and updated in place by the engine (default None); ``record`` (see
    ``aligns_by_products``; default None).

    **Class attribute** ``name`` (str): the rule's name in ``rules.RULES``, ``adapt``'s ``rule``
    argument and the result files.

    **Flags** (``FLAGS``; each a bool; a subclass sets it as a class attribute or a property;
    all default False). Each flag promises the methods named with it (``PROMISES``); without
    the flag they raise NotImplementedError here.

    - ``defers_weights``: within a trial the rule keeps W_rec in low-rank form, W(k) = W_start
      + C^T R with factors of its own updates, and the engine does not touch the dense W_rec:
      it reads the recurrent input from ``recurrent_input(state, k, base, out)`` (``out = base
      + r_k W(k)^T`` [R, 1, n]), records each step with ``apply_step(state, k, lr)`` (returns
      |dW_k| per run [R]) and forms W_rec once per trial with ``materialize(state, W)``. Read
      by ``adapt._Engine.run_trial`` (not on trials whose alignment is measured, nor frozen).
    - ``adds_in_place``: ``add_step(state, k, lr, W)`` adds dW_k to W in place without
      forming it and returns |dW_k| [R]; the engine then never calls ``step``. Read by
      ``adapt._Engine.run_trial``.
    - ``aligns_by_products``: the alignment with the exact gradient is computed from
      ``products_with_rates(state, T)`` (M [R, k, n, j] = dW_k r_j) instead of the n x n
      updates; the engine then sets ``record`` to a buffer [R, T, n] in which the rule keeps
      each step's scaled learning signal. Read by ``adapt._Engine._make_rules``.
    - ``computes_exact_gradient``: the rule's updates are the exact online gradient, so the
      engine measures the alignment with the rule's own ``alignment(state, T, dW)`` instead
      of running a second, exact online BPTT beside it. Read by ``adapt._Engine._make_rules``
      and ``adapt._Engine.alignment``.
    - ``one_run_numpy``: one run on a CPU can take the rule's NumPy step: ``one_run_views(state)``
      (NumPy views of run 0's buffers), ``recurrent_input_one(v, k, base, out)`` and
      ``apply_step_one(v, k, lr)`` (the arithmetic of ``recurrent_input`` and ``apply_step``),
      or, where the compiled kernels (``learning.ckernels``) are available, the engine's
      compiled trial on the same buffers, after which it calls ``finish_compiled_trial(T)``.
      Read by ``adapt._Engine._make_rules`` and ``adapt._Engine.numpy_views``.
    - ``one_run_compiled``: one run on a CPU can take the engine's compiled trial step on the
      rule's buffers: ``one_run_compiled_views(state)`` gives them, ``finish_compiled_trial(T)``
      closes the trial. Read by ``adapt._Engine._make_rules`` and ``adapt._Engine.numpy_views``.
      With either one-run flag the engine also asks ``one_run_ok(alpha)`` (the one-run step's
      scaled factors stay far from float overflow for this trial length; default False).
    - ``numpy_sweep``: even in the PyTorch step, a single run on a CPU has its per-step work
      done in NumPy or compiled code (provenance: ``adapt._Engine.compute_path``).
    - ``supports_frozen``: the rule can run frozen (``adapt(frozen=True)``: every update
      computed, none applied); a rule whose updates also change its own record of the weights
      cannot. Read by ``adapt._check_args`` (class attribute).
    - ``published_lr_rescale``: the published code multiplies this rule's rate by
      |W_fb| / |W_out|; ``adapt(lr_rescale=True)`` does the same (``adapt._learning_rates``;
      class attribute).
    """

    name: ClassVar[str]
    W_current: torch.Tensor | None = None
    record: torch.Tensor | None = None

    defers_weights: bool = False
    adds_in_place: bool = False
    aligns_by_products: bool = False
    computes_exact_gradient: bool = False
    one_run_numpy: bool = False
    one_run_compiled: bool = False
    numpy_sweep: bool = False
    supports_frozen: ClassVar[bool] = False
    published_lr_rescale: ClassVar[bool] = False

    @abc.abstractmethod
    def begin_trial(self, state: TrialState) -> None:
        """Reset the traces for a new trial that starts from the weights ``W_current``."""

    @abc.abstractmethod
    def step(self, state: TrialState, k: int, lr: torch.Tensor) -> torch.Tensor:
        """The weight change dW_k [R, n, n] after step k, with rates ``lr`` [R]."""

    def _missing(self, method: str, flag: str):
        return NotImplementedError(f"{type(self).__name__}.{method}: this rule does not offer it "
                                   f"({flag} is False)")

    # defers_weights
    def recurrent_input(self, state: TrialState, k: int, base: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out = base + r_k W(k)^T`` [R, 1, n] from the rule's low-rank weights."""
        raise self._missing("recurrent_input", "defers_weights")

    def apply_step(self, state: TrialState, k: int, lr: torch.Tensor) -> torch.Tensor:
        """Record step k's update in the low-rank weights; returns |dW_k| [R]."""
        raise self._missing("apply_step", "defers_weights")

    def materialize(self, state: TrialState, W: torch.Tensor) -> torch.Tensor:
        """``W = W_start + C^T R`` after the last step of a trial (in place); returns W."""
        raise self._missing("materialize", "defers_weights")

    # adds_in_place
    def add_step(self, state: TrialState, k: int, lr: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """``W += dW_k`` without forming dW_k; returns |dW_k| [R]."""
        raise self._missing("add_step", "adds_in_place")

    # aligns_by_products
    def products_with_rates(self, state: TrialState, T: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """M [R, k, n, j] = dW_k r_j for every step k and rate r_j of the finished trial."""
        raise self._missing("products_with_rates", "aligns_by_products")

    # computes_exact_gradient
    def alignment(self, state: TrialState, T: int, dW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos(dW_k, -dl_k/dW_rec) [R, T], cos(sum_k dW_k, -sum_k dl_k/dW_rec) [R])."""
        raise self._missing("alignment", "computes_exact_gradient")

    # one_run_numpy / one_run_compiled
    def one_run_ok(self, alpha: float) -> bool:
        """Whether the one-run step can keep its scaled factors for this trial length."""
        return False

    def one_run_views(self, state: TrialState) -> dict:
        """NumPy views (same memory) of run 0's buffers for the one-run NumPy step."""
        raise self._missing("one_run_views", "one_run_numpy")

    def recurrent_input_one(self, v: dict, k: int, base: np.ndarray, out: np.ndarray) -> np.ndarray:
        """:meth:`recurrent_input` for one run in NumPy."""
        raise self._missing("recurrent_input_one", "one_run_numpy")

    def apply_step_one(self, v: dict, k: int, lr: float) -> float:
        """:meth:`apply_step` for one run in NumPy; returns |dW_k|."""
        raise self._missing("apply_step_one", "one_run_numpy")

    def one_run_compiled_views(self, state: TrialState) -> dict:
        """Run 0's buffers as NumPy views for the compiled trial step."""
        raise self._missing("one_run_compiled_views", "one_run_compiled")

    def finish_compiled_trial(self, T: int) -> None:
        """After a compiled one-run trial of T steps: the rule's bookkeeping says all were taken."""
        raise self._missing("finish_compiled_trial", "one_run_compiled or one_run_numpy")
