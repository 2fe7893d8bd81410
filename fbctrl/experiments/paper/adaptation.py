"""Adaptation units: one run per unit (network kind x seed x rotation x condition x protocol,
and a robustness :class:`~fbctrl.experiments.paper.config.Variant`), 1000 trials, exact
("history") online BPTT, integrated error from zero:
``{results}/adapt/{protocol}[+{variant}]/rot{deg}/{kind}_{condition}_seed{s}.npz``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...core.spec import NetworkSpec
from ..protocol import Condition, EffectiveRate, Protocol, effective_rate, feedback_output_ratio
from .config import PaperConfig, Variant, rotation_folder
from .lockstep import run_lockstep
from .sweep import best_swept_rates

__all__ = ["AdaptUnit", "adapt_units"]


@dataclass(frozen=True)
class AdaptUnit:
    """One adaptation run of the network ``kind`` of ``seed`` to a rotation of ``rotation_deg``."""

    kind: str
    seed: int
    rotation_deg: float
    condition: Condition
    protocol: Protocol
    trials: int
    stage: str = "adapt"
    variant: Variant = Variant.NONE

    def path(self, cfg: PaperConfig) -> Path:
        folder = self.protocol.value + (f"+{self.variant.value}" if self.variant is not Variant.NONE else "")
        return (Path(cfg.results_dir) / "adapt" / folder / rotation_folder(self.rotation_deg)
                / f"{self.kind}_{self.condition.slug}_seed{self.seed}.npz")

    def describe(self) -> str:
        v = f", {self.variant.value}" if self.variant is not Variant.NONE else ""
        return f"{self.kind} {self.condition.name} {self.rotation_deg:g} deg seed {self.seed} ({self.protocol.value}{v})"

    @property
    def rate_rotation(self) -> float | None:
        """The rotation whose learning-rate sweep chooses the run's rate under protocol "best": its
        own for ``Variant.OWN_BEST``, else None (the sweep rotation)."""
        return self.rotation_deg if self.variant is Variant.OWN_BEST else None

    def learning_rate(self, cfg: PaperConfig, W_fb, W_out) -> EffectiveRate:
        """The run's rate under its protocol (``protocol.effective_rate``) for the network with
        feedback weights ``W_fb`` and readout ``W_out``; protocol "best" takes the best rate of the
        sweep of ``cfg.rates_config()`` at :attr:`rate_rotation`."""
        has_fb = NetworkSpec.parse(self.kind).has_feedback    # a delayed or sparse network has feedback too
        best = (best_swept_rates(cfg.rates_config(), self.rate_rotation)[self.condition.name]["lr"]
                if self.protocol is Protocol.BEST else None)
        return effective_rate(self.protocol, self.condition, has_feedback=has_fb,
                              fb_out_ratio=feedback_output_ratio(W_fb, W_out) if has_fb else None, best_lr=best)

    @classmethod
    def run_batch(cls, cfg: PaperConfig, units: list, *, device="cpu", progress: bool = True, command: str = "") -> None:
        """One lockstep group of adaptation runs (:func:`~fbctrl.experiments.paper.lockstep.run_lockstep`)."""
        run_lockstep(cfg, units, device=device, progress=progress, command=command)


def adapt_units(kind, seeds, rotations, conditions, protocol, trials, variant: Variant = Variant.NONE) -> list[AdaptUnit]:
    """The adaptation units of ``kind``, rotation by rotation, condition by condition, seed by seed."""
    return [AdaptUnit(kind, int(s), float(r), c, Protocol.parse(protocol), trials, variant=variant)
            for r in rotations for c in conditions for s in seeds]
