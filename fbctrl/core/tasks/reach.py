"""The paper's reaching task behind the task interface (:mod:`fbctrl.core.tasks.base`): random
reaches for pre-training (pushes optional), the 8 centre-out targets for adaptation, the
visuomotor rotation as its perturbation. The trials are those of :mod:`fbctrl.core.task`,
unchanged, so every reaching result is bit-identical through this interface (tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..model import draw_x0
from ..task import TaskConfig, Trials, centre_out_reaches, random_reaches
from .base import Task, TestSet
from .perturbations import Perturbation, Rotation

__all__ = ["Reach", "REACH_SETS"]

REACH_SETS = ("centre-out", "random")   # the reaching test sets of ``python -m fbctrl evaluate``


@dataclass
class Reach(Task):
    """Instructed-delay reaching with a velocity output (Methods, "Task"); ``config`` a ``TaskConfig``."""

    config: TaskConfig = field(default_factory=TaskConfig)
    name: str = "reach"

    @property
    def n_in(self) -> int:
        return 3

    def training_batch(self, batch: int, generator: torch.Generator, *, push: bool = False,
                       dtype=torch.float32) -> Trials:
        """Random reaches (start and end uniform in the workspace), with pushes if ``push``."""
        return random_reaches(self.config, batch, generator, push=push, dtype=dtype)

    def test_conditions(self, dtype=torch.float32) -> Trials:
        """The ``n_targets`` centre-out reaches, one per target, in target order."""
        return centre_out_reaches(self.config, dtype=dtype)

    def perturb(self, trials: Trials, perturbation: Perturbation) -> Trials:
        """A :class:`Rotation` turns the target velocity (``Trials.rotated``); inputs unchanged."""
        if not isinstance(perturbation, Rotation):
            raise ValueError(f"perturbation of the reaching task must be a rotation, got {perturbation}")
        return trials.rotated(perturbation.deg)

    def default_perturbation(self) -> Perturbation:
        return Rotation(30.0)

    def make_trials(self, which: str, trials: int, generator: torch.Generator, *, rotation_deg: float = 0.0,
                    push: bool = False) -> Trials:
        """``trials`` trials of the test set ``which`` (:data:`REACH_SETS`); centre-out trials are
        spread evenly over the targets (target i for trial i mod n_targets)."""
        if which not in REACH_SETS:
            raise ValueError(f"task must be one of {', '.join(REACH_SETS)}, got {which!r}")
        if trials <= 0:
            raise ValueError(f"trials must be a positive integer, got {trials}")
        if which == "random":
            return random_reaches(self.config, trials, generator, push=push, rotation_deg=rotation_deg)
        targets = torch.arange(trials) % self.config.n_targets
        return centre_out_reaches(self.config, targets, push=push, generator=generator, rotation_deg=rotation_deg)

    def test_sets(self, n: int, *, seed: int = 12345, batch: int = 256, centre_out_repeats: int = 8,
                  rotation_deg: float = 30.0) -> list[TestSet]:
        """The five test sets of pre-training (Methods, "Pre-training"), drawn once from a fixed generator
        so that
        every network and every evaluation sees the same trials and initial states."""
        g = torch.Generator().manual_seed(seed)
        co = self.make_trials("centre-out", self.config.n_targets * centre_out_repeats, g)
        co_x0 = draw_x0(n, co.batch_shape, g)
        rnd = self.make_trials("random", batch, g)
        rnd_x0 = draw_x0(n, rnd.batch_shape, g)
        push = self.make_trials("random", batch, g, push=True)
        push_x0 = draw_x0(n, push.batch_shape, g)
        return [
            TestSet("centre_out", co, co_x0),
            TestSet(f"centre_out_rot{rotation_deg:g}", co.rotated(rotation_deg), co_x0),
            TestSet("random", rnd, rnd_x0),
            TestSet("random_push", push, push_x0),
            TestSet("random_ctrl_off", rnd, rnd_x0, controller_on=False),
        ]
