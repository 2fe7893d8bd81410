"""Perturbations a pre-trained network adapts to, as objects with a name for files and tables.

A perturbation changes what the network is asked to produce (the target output ``vstar``, hence
the lagged reference ``vref`` and the error it integrates), never what it is told (the inputs):

* :class:`Rotation` -- the visuomotor rotation of the reaching task (the paper): the target
  velocity turned counter-clockwise by ``deg`` degrees;
* :class:`FrequencyShift` -- the limit-cycle task's perturbation: the target cycle runs at the
  commanded frequency plus ``hz`` (same amplitude, same phase at the end of the warm-up), while the
  input still commands the old frequency (Methods, "Beyond the paper").

Which task accepts which perturbation is the task's business (``Task.perturb``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Perturbation", "Rotation", "FrequencyShift", "parse_perturbation"]


@dataclass(frozen=True)
class Perturbation:
    """Base of the perturbations: ``name`` (file names, e.g. ``rot30``) and ``label`` (tables)."""

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def label(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Rotation(Perturbation):
    """Visuomotor rotation by ``deg`` degrees, counter-clockwise (reaching task, Methods, "Task")."""

    deg: float = 30.0

    def __post_init__(self):
        if not math.isfinite(float(self.deg)):
            raise ValueError(f"rotation must be a finite number of degrees, got {self.deg!r}")
        object.__setattr__(self, "deg", float(self.deg))

    @property
    def name(self) -> str:
        return f"rot{self.deg:g}"

    @property
    def label(self) -> str:
        return f"{self.deg:g}°"


@dataclass(frozen=True)
class FrequencyShift(Perturbation):
    """The limit cycle's target frequency moved by ``hz`` (Hz) away from the commanded one."""

    hz: float = 0.5

    def __post_init__(self):
        if not math.isfinite(float(self.hz)):
            raise ValueError(f"frequency shift must be a finite number of Hz, got {self.hz!r}")
        object.__setattr__(self, "hz", float(self.hz))

    @property
    def name(self) -> str:
        return f"shift{self.hz:+g}"

    @property
    def label(self) -> str:
        return f"{self.hz:+g} Hz"


_NUMBER = r"[-+]?[0-9.]+(?:e[-+]?\d+)?"
_NAME_RE = re.compile(rf"^(?:(?P<rot>rot)(?P<deg>{_NUMBER})|(?P<shift>shift)(?P<hz>{_NUMBER}))$")


def parse_perturbation(name: str) -> Perturbation:
    """The perturbation of a file name: ``rot30`` -> Rotation(30), ``shift+0.5`` -> FrequencyShift(0.5)."""
    m = _NAME_RE.match(str(name).strip())
    if not m:
        raise ValueError(f"perturbation must be rot<degrees> or shift<Hz> (e.g. rot30, shift+0.5), got {name!r}")
    return Rotation(float(m["deg"])) if m["rot"] else FrequencyShift(float(m["hz"]))
