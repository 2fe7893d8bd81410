"""Tasks behind one interface (:class:`Task`: training batches, test conditions, test sets, what a
perturbation does) and the perturbations as objects (Methods, "Beyond the paper")."""

from __future__ import annotations

from ..task import TaskConfig
from .base import Task, TestSet
from .limit_cycle import LimitCycle, LimitCycleConfig, cycle_metrics, cycle_trials, spectral_peak_hz
from .perturbations import FrequencyShift, Perturbation, Rotation, parse_perturbation
from .reach import REACH_SETS, Reach

__all__ = ["Task", "TestSet", "Reach", "LimitCycle", "LimitCycleConfig", "Perturbation", "Rotation",
           "FrequencyShift", "parse_perturbation", "cycle_trials", "cycle_metrics", "spectral_peak_hz", "TASK_NAMES",
           "REACH_SETS", "make_task", "task_config_from_dict", "task_for_config"]

TASK_NAMES = ("reach", "limit-cycle")
_CONFIGS = {"reach": TaskConfig, "limit-cycle": LimitCycleConfig}


def make_task(name: str, config=None) -> Task:
    """The task called ``name`` (:data:`TASK_NAMES`) with ``config`` (default: its defaults)."""
    if name not in TASK_NAMES:
        raise ValueError(f"task must be one of {', '.join(TASK_NAMES)}, got {name!r}")
    if config is None:
        config = _CONFIGS[name]()
    if not isinstance(config, _CONFIGS[name]):
        raise ValueError(f"task {name!r} needs a {_CONFIGS[name].__name__}, got {type(config).__name__}")
    return Reach(config) if name == "reach" else LimitCycle(config)


def task_config_from_dict(name: str, fields: dict):
    """A task's configuration from its recorded fields (a checkpoint's sidecar ``task`` entry)."""
    if name not in TASK_NAMES:
        raise ValueError(f"task must be one of {', '.join(TASK_NAMES)}, got {name!r}")
    cls = _CONFIGS[name]
    known = {k: v for k, v in (fields or {}).items() if k in cls.__dataclass_fields__}
    return cls(**known)


def task_for_config(config) -> Task:
    """The task whose configuration ``config`` is (a ``TaskConfig``: reaching; a
    ``LimitCycleConfig``: the limit cycle), so that code given a task's configuration runs that task."""
    for name, cls in _CONFIGS.items():
        if isinstance(config, cls):
            return make_task(name, config)
    raise ValueError(f"task configuration must be one of {', '.join(c.__name__ for c in _CONFIGS.values())}, "
                     f"got {type(config).__name__}")
