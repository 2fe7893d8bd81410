"""What a task must say (Methods, "Beyond the paper: tasks, delays and sparse feedback").

A task is everything the pipeline needs to know about what the network is asked to do:

* ``training_batch(batch, generator)`` -- the pre-training trials, drawn from the network's own
  generator (so that a seed's batches are reproducible and shared between variants of that seed);
* ``test_conditions()`` -- the fixed test trials of adaptation (one per condition: the 8
  centre-out targets, or the test frequencies of the limit cycle); an adaptation trial is one of
  them drawn at random, its test loss their mean with the controller off;
* ``perturb(trials, perturbation)`` -- what a perturbation does to trials (targets only, never
  inputs);
* ``test_sets(n)`` -- the test sets whose losses are recorded during pre-training.

Every trial batch is a :class:`fbctrl.core.task.Trials` (time-major, ``n_in`` input channels and
two outputs), so the model, its gradients and the learning rules run any task unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..task import Trials
from .perturbations import Perturbation

__all__ = ["Task", "TestSet"]


@dataclass
class TestSet:
    """A named test set: fixed trials, their initial states, and the controller setting."""

    name: str
    trials: Trials
    x0: torch.Tensor
    controller_on: bool = True


class Task:
    """The interface of a task (module docstring). ``name`` is its command-line name; ``config``
    holds every constant; ``n_in`` the input channels the network needs; ``T`` and ``dt`` its
    trial length and step."""

    name: str = ""
    config = None

    @property
    def n_in(self) -> int:
        raise NotImplementedError

    @property
    def T(self) -> int:
        return self.config.T

    @property
    def dt(self) -> float:
        return self.config.dt

    @property
    def go_step(self) -> int:
        """The first step of the movement or cycle: averages over a trial start here."""
        return self.config.go_step

    def training_batch(self, batch: int, generator: torch.Generator, *, push: bool = False,
                       dtype=torch.float32) -> Trials:
        raise NotImplementedError

    def test_conditions(self, dtype=torch.float32) -> Trials:
        raise NotImplementedError

    def perturb(self, trials: Trials, perturbation: Perturbation) -> Trials:
        raise NotImplementedError

    def default_perturbation(self) -> Perturbation:
        raise NotImplementedError

    def test_sets(self, n: int, *, seed: int = 12345, batch: int = 256) -> list[TestSet]:
        raise NotImplementedError
