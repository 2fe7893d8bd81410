"""Instructed-delay reaching with a velocity output (Methods, "Task").

Every trial batch is *time-major*: tensors have shape ``[T, *batch, dim]`` so that a rollout
can ``unbind(0)`` them into per-step views without indexing inside an autograd loop.

Position profile of one reach (Methods, "Task")::

    pos_k = start                                   k <  go_step
    pos_k = start + sig(u_{k-go}) (end - start)     go_step <= k < go_step + move_steps
    pos_k = end                                     k >= go_step + move_steps
    sig(u) = 1 / (1 + exp(-gain * u)),  u = linspace(-1, 1, move_steps, endpoint=False)

The target velocity ``vstar`` is the central-difference time derivative of ``pos`` (one-sided at
the edges) divided by dt. The network is compared with the *lagged* reference
``vref_k = vstar_{k-1}``, ``vref_0 = 0`` (the published code's convention, kept everywhere).

A visuomotor rotation by ``rotation_deg`` rotates ``vstar`` (and hence ``vref`` and the error
the network sees) counter-clockwise; the inputs are never rotated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

__all__ = [
    "GO_STEP",
    "TaskConfig",
    "Trials",
    "reach_profile",
    "random_reaches",
    "centre_out_reaches",
    "centre_out_targets",
    "draw_pushes",
    "rotate",
]


@dataclass(frozen=True)
class TaskConfig:
    """Timing and geometry of the reach task (Methods, "Task"). All constants are parameters."""

    T: int = 125                     # steps per trial
    dt: float = 0.01                 # s per step
    go_step: int = 20                # first step of the movement
    move_steps: int = 100            # steps of the sigmoid reach
    sigmoid_gain: float = 10.0
    random_halfwidth: float = 6.0
    centre_out_radius: float = 5.0
    centre_out_hold: float = 5.0
    n_targets: int = 8
    push_prob: float = 0.25
    push_amplitude: float = 10.0
    push_duration: int = 10
    push_centre_low: int = 20
    push_centre_high: int = 189

    def __post_init__(self):
        for name in ("T", "move_steps", "n_targets", "push_duration"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TaskConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.go_step < self.T:
            raise ValueError(f"TaskConfig.go_step must lie in [0, T={self.T}), got {self.go_step}")
        if self.dt <= 0:
            raise ValueError(f"TaskConfig.dt must be > 0, got {self.dt}")
        if not 0.0 <= self.push_prob <= 1.0:
            raise ValueError(f"TaskConfig.push_prob must lie in [0, 1], got {self.push_prob}")
        if self.push_centre_high < self.push_centre_low:
            raise ValueError("TaskConfig.push_centre_high must be >= push_centre_low")


GO_STEP = TaskConfig.go_step   # first step of the movement (the default task's): averages over a trial start here


@dataclass
class Trials:
    """A batch of trials, time-major.

    inputs  [T, *B, 3]  (end - start) from go_step on; hold signal in dim 2 before go_step
    vstar   [T, *B, 2]  target velocity (rotated if ``rotation_deg`` != 0)
    vref    [T, *B, 2]  lagged reference: vref_k = vstar_{k-1}, vref_0 = 0
    push    [T, *B, 2]  external push added to the output velocity
    start, end [*B, 2]; target [*B] (centre-out target index, -1 for random reaches)
    freq    [*B] or None: the target frequency in Hz of limit-cycle trials (``core.tasks.LimitCycle``;
            None for reaches)
    """

    inputs: torch.Tensor
    vstar: torch.Tensor
    vref: torch.Tensor
    push: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor
    target: torch.Tensor
    rotation_deg: float = 0.0
    freq: torch.Tensor | None = None

    @property
    def T(self) -> int:
        return self.inputs.shape[0]

    @property
    def batch_shape(self) -> torch.Size:
        return self.inputs.shape[1:-1]

    def to(self, device=None, dtype=None) -> "Trials":
        def mv(t):
            if t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return replace(
            self,
            inputs=mv(self.inputs),
            vstar=mv(self.vstar),
            vref=mv(self.vref),
            push=mv(self.push),
            start=mv(self.start),
            end=mv(self.end),
            target=mv(self.target),
            freq=None if self.freq is None else mv(self.freq),
        )

    def rotated(self, rotation_deg: float) -> "Trials":
        """The same reaches under a visuomotor rotation (applied on top of any existing one)."""
        return replace(
            self,
            vstar=rotate(self.vstar, rotation_deg),
            vref=rotate(self.vref, rotation_deg),
            rotation_deg=self.rotation_deg + rotation_deg,
        )

    def without_push(self) -> "Trials":
        return replace(self, push=torch.zeros_like(self.push))

    def select(self, index) -> "Trials":
        """Trials ``index`` along the (first) batch axis."""
        return replace(
            self,
            inputs=self.inputs[:, index],
            vstar=self.vstar[:, index],
            vref=self.vref[:, index],
            push=self.push[:, index],
            start=self.start[index],
            end=self.end[index],
            target=self.target[index],
            freq=None if self.freq is None else self.freq[index],
        )

    @staticmethod
    def stack(trials: list["Trials"]) -> "Trials":
        """Stack trial batches along a new leading batch axis (e.g. one per network seed)."""
        rot = {t.rotation_deg for t in trials}
        return Trials(
            inputs=torch.stack([t.inputs for t in trials], 1),
            vstar=torch.stack([t.vstar for t in trials], 1),
            vref=torch.stack([t.vref for t in trials], 1),
            push=torch.stack([t.push for t in trials], 1),
            start=torch.stack([t.start for t in trials], 0),
            end=torch.stack([t.end for t in trials], 0),
            target=torch.stack([t.target for t in trials], 0),
            rotation_deg=rot.pop() if len(rot) == 1 else float("nan"),
            freq=None if any(t.freq is None for t in trials) else torch.stack([t.freq for t in trials], 0),
        )


def rotate(vec: torch.Tensor, rotation_deg: float) -> torch.Tensor:
    """Rotate the last (2-d) axis of ``vec`` counter-clockwise by ``rotation_deg`` degrees."""
    phi = math.radians(float(rotation_deg))
    c, s = math.cos(phi), math.sin(phi)
    x, y = vec[..., 0], vec[..., 1]
    return torch.stack([c * x - s * y, s * x + c * y], -1)


def reach_profile(cfg: TaskConfig, dtype=torch.float64) -> torch.Tensor:
    """The scalar transition profile sig(k) in [0, 1] over the T steps (0 before go, 1 after)."""
    prof = torch.zeros(cfg.T, dtype=dtype)
    u = torch.linspace(-1.0, 1.0, cfg.move_steps + 1, dtype=dtype)[:-1]  # endpoint excluded
    sig = torch.sigmoid(cfg.sigmoid_gain * u)
    stop = min(cfg.go_step + cfg.move_steps, cfg.T)
    prof[cfg.go_step:stop] = sig[: stop - cfg.go_step]
    prof[stop:] = 1.0
    return prof


def _build(cfg: TaskConfig, start: torch.Tensor, end: torch.Tensor, hold: float,
           target: torch.Tensor, push: torch.Tensor | None, dtype) -> Trials:
    """Inputs and target velocities for reaches start -> end (start, end [B, 2])."""
    prof = reach_profile(cfg, torch.float64)  # [T]
    start64, end64 = start.to(torch.float64), end.to(torch.float64)
    pos = start64 + prof[:, None, None] * (end64 - start64)  # [T, B, 2]
    vstar = torch.gradient(pos, spacing=cfg.dt, dim=0, edge_order=1)[0]
    vref = torch.zeros_like(vstar)
    vref[1:] = vstar[:-1]
    B = start.shape[0]
    inputs = torch.zeros(cfg.T, B, 3, dtype=torch.float64)
    inputs[cfg.go_step:, :, :2] = (end64 - start64)
    inputs[: cfg.go_step, :, 2] = hold
    if push is None:
        push = torch.zeros(cfg.T, B, 2, dtype=torch.float64)
    return Trials(
        inputs=inputs.to(dtype),
        vstar=vstar.to(dtype),
        vref=vref.to(dtype),
        push=push.to(dtype),
        start=start.to(dtype),
        end=end.to(dtype),
        target=target,
    )


def draw_pushes(cfg: TaskConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """External pushes [T, B, 2] (Methods, "Task").

    For each trial and output dimension independently, with probability ``push_prob``, a pulse
    of ``push_amplitude`` for ``push_duration`` steps centred on a step drawn uniformly from
    ``push_centre_low .. push_centre_high`` (inclusive); the part past the trial end is cut off.
    The pulse covers steps ``c - duration//2 .. c - duration//2 + duration - 1``.
    """
    on = torch.rand(batch, 2, generator=generator, dtype=torch.float64) < cfg.push_prob
    centre = torch.randint(cfg.push_centre_low, cfg.push_centre_high + 1, (batch, 2), generator=generator)
    first = centre - cfg.push_duration // 2
    k = torch.arange(cfg.T)[:, None, None]
    pulse = (k >= first) & (k < first + cfg.push_duration) & on
    return cfg.push_amplitude * pulse.to(torch.float64)


def random_reaches(cfg: TaskConfig, batch: int, generator: torch.Generator, *, push: bool = False,
                   rotation_deg: float = 0.0, dtype=torch.float32) -> Trials:
    """Random reaches: start and end ~ Uniform(-w, w)^2 independently (w = random_halfwidth)."""
    if batch <= 0:
        raise ValueError(f"batch must be a positive integer, got {batch}")
    w = cfg.random_halfwidth
    start = (torch.rand(batch, 2, generator=generator, dtype=torch.float64) * 2 - 1) * w
    end = (torch.rand(batch, 2, generator=generator, dtype=torch.float64) * 2 - 1) * w
    pushes = draw_pushes(cfg, batch, generator) if push else None
    tr = _build(cfg, start, end, w, torch.full((batch,), -1, dtype=torch.long), pushes, dtype)
    return tr.rotated(rotation_deg) if rotation_deg else tr


def centre_out_targets(cfg: TaskConfig, dtype=torch.float64) -> torch.Tensor:
    """The ``n_targets`` end points [n_targets, 2] on the circle of radius ``centre_out_radius``,
    at angles 0, 360/n, ... degrees."""
    ang = torch.arange(cfg.n_targets, dtype=torch.float64) * (2 * math.pi / cfg.n_targets)
    return (cfg.centre_out_radius * torch.stack([torch.cos(ang), torch.sin(ang)], -1)).to(dtype)


def centre_out_reaches(cfg: TaskConfig, targets: torch.Tensor | list[int] | None = None, *,
                       push: bool = False, generator: torch.Generator | None = None,
                       rotation_deg: float = 0.0, dtype=torch.float32) -> Trials:
    """Centre-out reaches from the origin to the given target indices (default: all targets once)."""
    if targets is None:
        targets = torch.arange(cfg.n_targets)
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if targets.numel() == 0 or targets.min() < 0 or targets.max() >= cfg.n_targets:
        raise ValueError(f"targets must be indices in 0..{cfg.n_targets - 1}")
    end = centre_out_targets(cfg)[targets]
    start = torch.zeros_like(end)
    if push and generator is None:
        raise ValueError("push=True needs a generator")
    pushes = draw_pushes(cfg, len(targets), generator) if push else None
    tr = _build(cfg, start, end, cfg.centre_out_hold, targets, pushes, dtype)
    return tr.rotated(rotation_deg) if rotation_deg else tr
