"""The paper protocol's settings: its sizes (:class:`PaperConfig`), network kinds, stages and
the robustness variants of a run (:class:`Variant`), and the folder name of a rotation."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path

from ...core.spec import NetworkSpec
from ...core.task import TaskConfig
from ...core.train import PretrainConfig
from ..network_units import NetMeasureConfig
from ...learning.rates import SWEEP_GRID, TINY_SWEEP_GRID
from ..protocol import Protocol

__all__ = ["KINDS", "STAGES", "PaperConfig", "Variant", "rotation_folder"]

KINDS = ("fb", "nofb")
STAGES = ("pretrain", "network", "adapt", "sweep", "beyond")   # beyond: fbctrl.experiments.beyond


@dataclass(frozen=True)
class PaperConfig:
    """Sizes of the paper protocol (defaults: the paper's scale, the book's Methods page)."""

    n: int = PretrainConfig.n
    pretrain_batches: int = PretrainConfig.batches
    batch_size: int = PretrainConfig.batch_size
    eval_every: int = PretrainConfig.eval_every
    checkpoint_every: int = PretrainConfig.checkpoint_every
    fb_seeds: tuple = tuple(range(10))
    nofb_seeds: tuple = tuple(range(10))
    rotations: tuple = (30.0, 40.0, 50.0, 60.0)
    nofb_rotation: float = 30.0
    trials: int = 1000
    extra_protocols_30: tuple = ("paper-text",)
    align_every: int = 50
    matched_points: tuple = (0, 250, 500, 1000)   # trials whose weights feed the matched-state alignment
    matched_trials: int = 32                       # evaluation trials per point and controller setting
    matched_rotations: tuple = (30.0,)
    sweep_rotation: float = 30.0
    # Figure 8: the sweep also at these rotations (same grid, seeds and trials), and the fair runs
    # there at each rotation's own best rate (Variant.OWN_BEST), after everything else
    sweep_rotations_beyond: tuple = (40.0, 50.0, 60.0)
    sweep_seeds: tuple = tuple(range(5))
    sweep_rates: dict = field(default_factory=lambda: dict(SWEEP_GRID))
    sweep_bptt_weights: str = "history"           # the sweep's online BPTT ("current": Variant.BPTT_CURRENT units)
    sweep_trials: dict = field(default_factory=lambda: {"rflo": 1000, "bptt": 200})
    sweep_final_window: int = 10
    max_sweep_extensions: int = 2
    checkpoint_dir: str = "checkpoints/published"
    results_dir: str = "results/paper"
    shipped_dir: str = "checkpoints"              # the book's networks pre-trained with pushes (robustness)
    train_push: bool = False                      # the networks are pre-trained with pushes (the shipped family)
    network_measures: NetMeasureConfig = field(default_factory=NetMeasureConfig)
    task: TaskConfig = field(default_factory=TaskConfig)

    def __post_init__(self):
        for name in ("n", "pretrain_batches", "batch_size", "trials", "align_every", "eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if int(v) != v or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("fb_seeds", "nofb_seeds", "sweep_seeds"):
            if any(int(s) != s or s < 0 for s in getattr(self, name)):
                raise ValueError(f"{name} must be non-negative integers, got {getattr(self, name)!r}")
        for p in self.extra_protocols_30:
            Protocol.parse(p)
        if any(not math.isfinite(r) or r == self.sweep_rotation for r in self.sweep_rotations_beyond):
            raise ValueError(f"sweep_rotations_beyond must be finite rotations other than the sweep rotation "
                             f"{self.sweep_rotation:g}, got {self.sweep_rotations_beyond!r}")

    @classmethod
    def tiny(cls, checkpoint_dir: str, results_dir: str, shipped_dir: str | None = None) -> "PaperConfig":
        """A dry run of every stage in seconds on a CPU (n 20, 2 seeds, a few batches and trials);
        shipped networks (if any) in ``shipped_dir``, default the folder ``shipped`` beside
        ``checkpoint_dir``."""
        return cls(n=20, pretrain_batches=4, batch_size=8, eval_every=2, checkpoint_every=2, fb_seeds=(0, 1),
                   nofb_seeds=(0, 1), rotations=(30.0, 40.0), trials=4, align_every=2, sweep_seeds=(0, 1),
                   sweep_rotations_beyond=(40.0,),
                   matched_points=(0, 4), matched_trials=2,
                   sweep_rates=dict(TINY_SWEEP_GRID), sweep_trials={"rflo": 3, "bptt": 2},
                   sweep_final_window=2, max_sweep_extensions=1, checkpoint_dir=checkpoint_dir,
                   results_dir=results_dir, task=TaskConfig(T=30, go_step=5, move_steps=20),
                   shipped_dir=shipped_dir or str(Path(checkpoint_dir).parent / "shipped"),
                   network_measures=NetMeasureConfig.tiny())

    def pretrain_config(self, kind: str) -> PretrainConfig:
        """The published protocol for the network family ``kind`` (a ``NetworkSpec`` family:
        'fb', 'nofb', 'fb_d5', 'fb0.3', 'lc_fb', ...)."""
        spec = NetworkSpec.parse(kind)
        return PretrainConfig(n=self.n, feedback_density=spec.feedback_density, delay=spec.delay,
                              batches=self.pretrain_batches, batch_size=self.batch_size, eval_every=self.eval_every,
                              checkpoint_every=self.checkpoint_every, train_push=self.train_push, task=spec.task)

    def seeds(self, kind: str) -> tuple:
        return self.fb_seeds if NetworkSpec.parse(kind).has_feedback else self.nofb_seeds

    def rates_config(self) -> "PaperConfig":
        """The configuration whose learning-rate sweep chooses the rates of protocol "best": this
        one (a family of the extension points at the published networks' sweep instead)."""
        return self


class Variant(str, enum.Enum):
    """One change to a run of the published protocol, for the robustness table (the verdict
    that a single change flips). ``NONE``: the protocol as it is."""

    NONE = ""
    ERROR_START_E0 = "e0"              # the integrated error starts at W_out r_0 + b_out (published quirk)
    BPTT_CURRENT = "bptt-current"      # online BPTT sweeps back with the current weights
    OWN_BEST = "own-rotation"          # protocol "best" at the best rate of the run's own rotation's sweep (Figure 8)

    @property
    def error_start(self) -> str:
        return "published" if self is Variant.ERROR_START_E0 else "zero"

    @property
    def bptt_weights(self) -> str:
        return "current" if self is Variant.BPTT_CURRENT else "history"


def rotation_folder(deg: float) -> str:
    """The folder of a rotation's unit files: ``rot30`` for 30 degrees."""
    return f"rot{deg:g}"
