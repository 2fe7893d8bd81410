"""The reaching task behind the task interface (fbctrl.core.tasks.reach)."""

from __future__ import annotations

import torch

from fbctrl.core.task import TaskConfig, centre_out_reaches, random_reaches
from fbctrl.core.tasks import Reach, Rotation
from tests.helpers import gen


TC = TaskConfig(T=30, go_step=5, move_steps=20)


def test_reach_task_interface_gives_the_old_trials():
    task = Reach(TC)
    a, b = gen(4), gen(4)
    for x, y in ((task.training_batch(16, a, push=True), random_reaches(TC, 16, b, push=True)),
                 (task.test_conditions(), centre_out_reaches(TC))):
        for f in ("inputs", "vstar", "vref", "push", "start", "end", "target"):
            assert torch.equal(getattr(x, f), getattr(y, f))
    assert torch.equal(task.perturb(centre_out_reaches(TC), Rotation(30)).vstar, centre_out_reaches(TC).rotated(30).vstar)
