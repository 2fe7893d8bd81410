"""What a network is: :class:`NetworkSpec` (Methods, "Beyond the paper").

A network is named by its task, its feedback density and delay, its size and its pre-training
data. The file stem of a checkpoint (``{stem}_seed{s}.pt``) is ``NetworkSpec.tag`` and is read
back with ``NetworkSpec.parse``; nothing else in the package tests a name string::

    tag  = [lc_] (fb | nofb | fb<density>) [_d<delay>] [_n<n>]

``fb`` is density 1, ``nofb`` density 0 (no feedback pathway), ``fb0.3`` density 0.3; ``_d5`` a
feedback delay of 5 steps; ``_n50`` a size other than 400; ``lc_`` the limit-cycle task. The
pre-training data (random reaches, with or without pushes; random cycles) is not in the stem:
the folder tells it (``checkpoints`` pushed, ``checkpoints/published`` not) and the sidecar
records it (``from_sidecar``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

__all__ = ["NetworkSpec", "PRETRAIN_DATA", "TASK_PREFIX"]

TASK_PREFIX = {"reach": "", "limit-cycle": "lc_"}
PRETRAIN_DATA = ("random", "random-pushed", "unknown")   # what the pre-training batches held
DEFAULT_N = 400
_TAG_RE = re.compile(r"^(?P<lc>lc_)?(?:(?P<nofb>nofb)|fb(?P<density>[0-9.]+(?:e-\d+)?)?)"
                     r"(?:_d(?P<delay>\d+))?(?:_n(?P<n>\d+))?$")


@dataclass(frozen=True)
class NetworkSpec:
    """A network family: ``task`` ('reach' or 'limit-cycle'), ``feedback_density`` in [0, 1],
    ``delay`` (steps between the error and its feedback), ``n`` units, ``pretrain_data``."""

    task: str = "reach"
    feedback_density: float = 1.0
    delay: int = 0
    n: int = DEFAULT_N
    pretrain_data: str = "unknown"

    def __post_init__(self):
        if self.task not in TASK_PREFIX:
            raise ValueError(f"task must be one of {', '.join(TASK_PREFIX)}, got {self.task!r}")
        d = float(self.feedback_density)
        if not (math.isfinite(d) and 0.0 <= d <= 1.0):
            raise ValueError(f"feedback_density must lie in [0, 1], got {self.feedback_density!r}")
        object.__setattr__(self, "feedback_density", d)
        if int(self.delay) != self.delay or self.delay < 0:
            raise ValueError(f"delay must be a non-negative integer number of steps, got {self.delay!r}")
        if int(self.n) != self.n or self.n <= 0:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        object.__setattr__(self, "delay", int(self.delay))
        object.__setattr__(self, "n", int(self.n))
        if self.pretrain_data not in PRETRAIN_DATA:
            raise ValueError(f"pretrain_data must be one of {', '.join(PRETRAIN_DATA)}, got {self.pretrain_data!r}")

    @property
    def has_feedback(self) -> bool:
        """The network has a feedback pathway (density > 0): a controller to switch on and off,
        and the with-feedback learning rates (Methods)."""
        return self.feedback_density > 0.0

    @property
    def family(self) -> str:
        """The stem without the size: 'fb', 'nofb', 'fb0.3', 'fb_d5', 'lc_fb', ..."""
        if self.feedback_density >= 1.0:
            fb = "fb"
        elif self.feedback_density <= 0.0:
            fb = "nofb"
        else:
            fb = f"fb{self.feedback_density:g}"
        return TASK_PREFIX[self.task] + fb + (f"_d{self.delay}" if self.delay else "")

    @property
    def tag(self) -> str:
        """The checkpoint file stem before ``_seed{s}`` (module docstring)."""
        return self.family + (f"_n{self.n}" if self.n != DEFAULT_N else "")

    def with_n(self, n: int) -> "NetworkSpec":
        return replace(self, n=int(n))

    @classmethod
    def parse(cls, tag: str, *, pretrain_data: str = "unknown") -> "NetworkSpec":
        """The spec of a file stem or family name (inverse of ``tag``)."""
        m = _TAG_RE.match(str(tag))
        if not m:
            raise ValueError(f"network kind must look like [lc_](fb|nofb|fb<density>)[_d<delay>][_n<n>] "
                             f"(e.g. fb, nofb, fb0.3, fb_d5, lc_fb), got {tag!r}")
        density = 0.0 if m["nofb"] else float(m["density"]) if m["density"] else 1.0
        return cls(task="limit-cycle" if m["lc"] else "reach", feedback_density=density,
                   delay=int(m["delay"] or 0), n=int(m["n"] or DEFAULT_N), pretrain_data=pretrain_data)

    @classmethod
    def from_sidecar(cls, side: dict, n: int | None = None) -> "NetworkSpec":
        """The spec recorded in a checkpoint's sidecar (its ``config`` and ``network`` entries)."""
        cfg, net = side.get("config", {}) or {}, side.get("network", {}) or {}
        task = cfg.get("task", "reach")
        push = cfg.get("train_push")
        data = "unknown" if push is None else ("random-pushed" if push else "random")
        return cls(task=task, feedback_density=net.get("feedback_density", cfg.get("feedback_density", 1.0)),
                   delay=net.get("delay", cfg.get("delay", 0)), n=n or net.get("n", cfg.get("n", DEFAULT_N)),
                   pretrain_data=data)
