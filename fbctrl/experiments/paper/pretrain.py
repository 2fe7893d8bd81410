"""Pre-training units: one network of the published protocol per unit,
``{checkpoints}/{tag}_seed{s}.pt`` (the book's Methods page, "Pre-training": random reaches *without*
pushes, 5000 batches of 256), and the checked loading of those networks for the runs that adapt them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ...core.checkpoint import load_checkpoint, read_sidecar
from ...core.model import Network
from ...core.train import network_tag, pretrain
from .config import PaperConfig

__all__ = ["PretrainUnit", "load_networks"]


@dataclass(frozen=True)
class PretrainUnit:
    """One network of family ``kind`` (``NetworkSpec``: 'fb', 'nofb', ...) and seed ``seed``."""

    kind: str
    seed: int
    stage: str = "pretrain"

    def path(self, cfg: PaperConfig) -> Path:
        return Path(cfg.checkpoint_dir) / f"{network_tag(cfg.pretrain_config(self.kind))}_seed{self.seed}.pt"

    def describe(self) -> str:
        return f"pre-train {self.kind} seed {self.seed}"

    @classmethod
    def run_batch(cls, cfg: PaperConfig, units: list, *, device="cpu", progress: bool = True, command: str = "") -> None:
        """Pre-train the networks of ``units`` (one kind) in lockstep (``core.train.pretrain``); an
        interrupted one resumes from its resume file."""
        pretrain(cfg.pretrain_config(units[0].kind), [u.seed for u in units], cfg.checkpoint_dir, device=device,
                 progress=progress, command=command, task_cfg=cfg.task)


def load_networks(cfg: PaperConfig, kind: str, seeds: list[int], device) -> Network:
    """The pre-trained networks of ``kind``, checked to be the published protocol's."""
    want = asdict(cfg.pretrain_config(kind))
    nets = []
    for s in seeds:
        p = PretrainUnit(kind, s).path(cfg)
        side = read_sidecar(p)
        got = side.get("config", {})
        bad = [k for k in ("n", "batches", "batch_size", "train_push", "feedback_density", "delay")
               if got.get(k, 0 if k == "delay" else None) != want[k]]
        if bad:
            raise ValueError(f"checkpoint {p} was not pre-trained with this protocol ({', '.join(bad)} differ)")
        nets.append(load_checkpoint(p, n=cfg.n, device=device))
    return Network.stack(nets)
