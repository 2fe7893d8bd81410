"""BPTT pre-training of several seeds as one batched computation (Methods, "Pre-training").

Each seed s has its own ``torch.Generator(seed)``, which first initialises the network and then
draws every training batch (reaches, pushes, initial states). Seeds are stacked along a leading
axis and run in lockstep with batched products; Adam is elementwise and the gradient-norm
clipping is done per seed, so a seed trained in a group follows the same trajectory as the
same seed trained alone.

Per batch (Methods, "Pre-training")::

    L = mean(E^2) + 2e-3 mean(r^2) + 1e-3 (|W_in| + |W_out| + |b_out| + |W_fb| + |b|) + 1e-3 |W_rec|
    g <- g * min(1, clip / (|g| + 1e-6))      (|g| over all parameters of that seed)
    Adam(lr 1e-3, betas (0.9, 0.999))

A resume file is written atomically every ``checkpoint_every`` batches and on interruption
(Ctrl-C); re-running the same command resumes from it and gives the same numbers as an
uninterrupted run.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..interrupts import deferred
from ..paths import git_commit
from .bptt import Regularisation, Workspace, loss_and_grads
from .checkpoint import atomic_torch_save, atomic_write_bytes, save_checkpoint
from .evaluate import evaluate_trials
from .model import PARAM_NAMES, Network, NetworkConfig, draw_x0, init_network
from .spec import NetworkSpec
from .task import Trials
from .tasks import TASK_NAMES, Task, make_task

__all__ = ["PretrainConfig", "pretrain", "network_tag", "Trainer"]


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training protocol (Methods, "Pre-training"). ``train_push``: pushes (Methods, "Task") in the
    training batches;
    ``task``: 'reach' (the paper) or 'limit-cycle' (``core.tasks``)."""

    n: int = NetworkConfig.n
    feedback_density: float = NetworkConfig.feedback_density
    delay: int = NetworkConfig.delay
    batches: int = 5000              # Adam steps
    batch_size: int = 256            # trials per step
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    clip: float = 0.2
    rate_reg: float = 2e-3
    weight_reg: float = 1e-3
    rec_reg: float = 1e-3
    train_push: bool = True
    eval_every: int = 100
    checkpoint_every: int = 200
    task: str = "reach"

    def __post_init__(self):
        for name in ("n", "batches", "batch_size", "eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if int(v) != v or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v}")
        for name in ("lr", "clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("rate_reg", "weight_reg", "rec_reg"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.task not in TASK_NAMES:
            raise ValueError(f"task must be one of {', '.join(TASK_NAMES)}, got {self.task!r}")
        _ = self.network                  # checks the network's settings

    @property
    def network(self) -> NetworkConfig:
        return NetworkConfig(n=self.n, n_in=make_task(self.task).n_in, feedback_density=self.feedback_density,
                             delay=self.delay)

    @property
    def spec(self) -> NetworkSpec:
        """The network family these settings train (file stem: ``spec.tag``)."""
        return NetworkSpec(task=self.task, feedback_density=self.feedback_density, delay=self.delay, n=self.n,
                           pretrain_data="random-pushed" if self.train_push else "random")

    def as_record(self) -> dict:
        """The settings as recorded in sidecars and resume files; ``task`` only where it is not the
        reaching task, so that files written before tasks existed compare equal."""
        rec = asdict(self)
        if rec["task"] == "reach":
            rec.pop("task")
        return rec

    @property
    def regularisation(self) -> Regularisation:
        return Regularisation(rate=self.rate_reg, weights=self.weight_reg, recurrent=self.rec_reg)


def network_tag(cfg: PretrainConfig) -> str:
    """File-name stem (``NetworkSpec.tag``): 'fb' (density 1), 'nofb' (density 0) or 'fb0.5',
    plus '_d3' for a delay, '_n50' for another size, 'lc_' first for the limit-cycle task."""
    return cfg.spec.tag


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity per network of stacked tensors [S, ...]."""
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)


@dataclass
class Trainer:
    """State of one batched pre-training run (S seeds in lockstep)."""

    cfg: PretrainConfig
    seeds: list[int]
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    task_cfg: object = None      # the task's configuration (default: its defaults); TaskConfig for reaching

    def __post_init__(self):
        self.task: Task = make_task(self.cfg.task, self.task_cfg)
        self.task_cfg = self.task.config
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be distinct")
        self.generators = [torch.Generator().manual_seed(int(s)) for s in self.seeds]
        nets = [init_network(self.cfg.network, g, dtype=self.dtype) for g in self.generators]
        self.net = Network.stack(nets).to(device=self.device)
        self.params = {k: getattr(self.net, k).detach().clone().requires_grad_(False) for k in PARAM_NAMES}
        self.opt = torch.optim.Adam(list(self.params.values()), lr=self.cfg.lr, betas=self.cfg.betas)
        self.batch = 0
        self.curves: dict[str, list] = {"batch": [], "loss": [], "task_loss": []}
        self.evals: dict[str, list] = {"batch": []}
        self.test_sets = self.task.test_sets(self.cfg.n)
        self.wall_time = 0.0
        self.workspace = Workspace()      # the batch's buffers, reused from batch to batch

    # ---- one batch -------------------------------------------------------------------------
    def current_net(self) -> Network:
        return self.net.replace(**self.params)

    def draw_batch(self) -> tuple[Trials, torch.Tensor]:
        trials, x0s = [], []
        for g in self.generators:
            tr = self.task.training_batch(self.cfg.batch_size, g, push=self.cfg.train_push)
            trials.append(tr)
            x0s.append(draw_x0(self.cfg.n, tr.batch_shape, g))
        return Trials.stack(trials), torch.stack(x0s)

    def step(self) -> dict[str, torch.Tensor]:
        trials, x0 = self.draw_batch()
        net = self.current_net()
        losses, grads, _ = loss_and_grads(net, trials, x0.to(self.device, self.dtype), self.cfg.regularisation,
                                          ws=self.workspace)
        S = len(self.seeds)
        sq = sum(g.reshape(S, -1).pow(2).sum(1) for g in grads.values())
        coef = (self.cfg.clip / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for k, p in self.params.items():
            p.grad = grads[k] * coef.reshape(-1, *([1] * (p.dim() - 1)))
        self.opt.step()
        self.params["W_fb"].mul_(self.net.mask)  # keep masked entries at exactly zero
        self.batch += 1
        return {"loss": losses["total"], "task_loss": losses["task"], "grad_norm": sq.sqrt()}

    def evaluate(self) -> dict[str, np.ndarray]:
        net = self.current_net()
        out = {}
        for ts in self.test_sets:
            out[ts.name] = evaluate_trials(net, ts.trials, ts.x0, controller_on=ts.controller_on)["loss"].cpu().numpy()
        out["cos_Wfb_WoutT"] = _cos(net.W_fb, net.W_out.mT).cpu().numpy()
        return out

    def record_eval(self):
        ev = self.evaluate()
        self.evals["batch"].append(self.batch)
        for k, v in ev.items():
            self.evals.setdefault(k, []).append(v.tolist())
        return ev

    # ---- resume ----------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "cfg": self.cfg.as_record(),
            "seeds": list(self.seeds),
            "batch": self.batch,
            "params": {k: v.cpu() for k, v in self.params.items()},
            "opt": self.opt.state_dict(),
            "generators": [g.get_state() for g in self.generators],
            "curves": json.dumps(self.curves),
            "evals": json.dumps(self.evals),
            "wall_time": self.wall_time,
        }

    def load_state(self, st: dict, source) -> None:
        # compare through JSON on both sides: the saved config holds tuples (betas) that a plain
        # comparison with the JSON form (lists) would always call different
        if (st["seeds"] != list(self.seeds)
                or json.loads(json.dumps(st["cfg"])) != json.loads(json.dumps(self.cfg.as_record()))):
            raise ValueError(f"resume file {source} belongs to another run (seeds {st['seeds']}); "
                             "delete it or use another --out")
        for k, v in st["params"].items():
            self.params[k].copy_(v)
        self.opt.load_state_dict(st["opt"])
        for g, s in zip(self.generators, st["generators"]):
            g.set_state(s)
        self.batch = st["batch"]
        self.curves = json.loads(st["curves"])
        self.evals = json.loads(st["evals"])
        self.wall_time = st["wall_time"]


def load_resume(path: Path) -> dict:
    """A resume file, read without unpickling arbitrary objects (tensors, numbers, strings only)."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(st, dict) or not {"cfg", "seeds", "batch", "params", "opt", "generators"} <= set(st):
            raise ValueError("not a pre-training resume file")
        return st
    except Exception as exc:  # noqa: BLE001 -- any failure to read is the same advice
        raise ValueError(f"resume file {path} is damaged or not a resume file ({type(exc).__name__}); "
                         "delete it to start that run again") from None


def _resume_path(out: Path, cfg: PretrainConfig, seeds) -> Path:
    return out / f".resume-{network_tag(cfg)}-seeds-{'-'.join(map(str, seeds))}.pt"


def _train_loop(tr: Trainer, bar, interrupt, save_resume, stop_after: int | None) -> None:
    """Batches until the run is complete, ``stop_after`` batches were done here, or a deferred
    signal is pending (checked only between batches, so a saved state is always consistent)."""
    cfg, seeds, done_here = tr.cfg, tr.seeds, 0
    while tr.batch < cfg.batches:
        interrupt.check()
        t0 = time.perf_counter()
        st = tr.step()
        tr.curves["batch"].append(tr.batch)
        tr.curves["loss"].append(st["loss"].cpu().tolist())
        tr.curves["task_loss"].append(st["task_loss"].cpu().tolist())
        if not torch.isfinite(st["loss"]).all():
            bad = [s for s, ok in zip(seeds, torch.isfinite(st["loss"]).tolist()) if not ok]
            raise FloatingPointError(f"pre-training diverged at batch {tr.batch} (seeds {bad}): loss is NaN/inf")
        if tr.batch % cfg.eval_every == 0 or tr.batch == cfg.batches:
            ev = tr.record_eval()
            bar.set_postfix(loss=f"{float(st['loss'].mean()):.3g}",
                            **{ts.name: f"{float(ev[ts.name].mean()):.3g}" for ts in tr.test_sets[:2]})
        tr.wall_time += time.perf_counter() - t0
        bar.update(1)
        done_here += 1
        if tr.batch % cfg.checkpoint_every == 0 and tr.batch < cfg.batches:
            save_resume()
        if stop_after is not None and done_here >= stop_after and tr.batch < cfg.batches:
            save_resume()
            return
    interrupt.check()


def pretrain(cfg: PretrainConfig, seeds: list[int], out: str | Path | None = None, *, device: str = "cpu",
             dtype: torch.dtype = torch.float32, progress: bool = True, resume: bool = True,
             task_cfg=None, command: str | None = None,
             stop_after: int | None = None) -> Trainer:
    """Pre-train ``seeds`` in lockstep; write ``{tag}_seed{s}.pt/.json/.curve.npz`` into ``out``.

    ``stop_after``: stop (with a resume file written) after this many batches in this call;
    used by tests to simulate an interruption.
    """
    tr = Trainer(cfg, list(seeds), device=device, dtype=dtype, task_cfg=task_cfg)
    out = Path(out) if out is not None else None
    rpath = _resume_path(out, cfg, seeds) if out is not None else None
    if out is not None and resume and rpath.exists():
        tr.load_state(load_resume(rpath), rpath)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def save_resume():
        if rpath is not None:
            atomic_torch_save(tr.state(), rpath)

    bar = tqdm(total=cfg.batches, initial=tr.batch, disable=not progress, desc=f"pretrain {network_tag(cfg)} "
               f"seeds {','.join(map(str, seeds))}", unit="batch", dynamic_ncols=True)
    with deferred() as interrupt:
        try:
            if tr.batch == 0 and not tr.evals["batch"]:   # a run resumed at batch 0 has it already
                tr.record_eval()
            _train_loop(tr, bar, interrupt, save_resume, stop_after)
        except KeyboardInterrupt:
            # a deferred signal raises at a batch boundary, where the state is the one the next batch
            # starts from; a second Ctrl-C inside a batch leaves the last periodic resume file, also exact
            if interrupt.at_boundary:
                save_resume()
            bar.close()
            raise
    if tr.batch < cfg.batches:          # stopped by ``stop_after``
        bar.close()
        return tr
    bar.close()
    if out is not None:
        write_outputs(tr, out, device=device, command=command)
        if rpath.exists():
            rpath.unlink()
    return tr


def write_outputs(tr: Trainer, out: Path, *, device: str, command: str | None) -> list[Path]:
    """Per seed: checkpoint, JSON sidecar (config, seed, final losses, provenance), curve npz."""
    paths = []
    net = tr.current_net()
    final = tr.evals
    for i, seed in enumerate(tr.seeds):
        stem = out / f"{network_tag(tr.cfg)}_seed{seed}"
        final_losses = {k: v[-1][i] for k, v in final.items() if k != "batch"}
        final_losses["train_loss"] = tr.curves["loss"][-1][i]
        meta = {
            "kind": "fbctrl pre-trained network",
            "seed": int(seed),
            "config": tr.cfg.as_record(),
            "task": asdict(tr.task_cfg),
            "final": final_losses,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "wall_time_s": round(tr.wall_time, 1),   # summed over resumes
            "threads": torch.get_num_threads() if str(device) == "cpu" else None,
            "trained_together_with_seeds": list(tr.seeds),
            "commit": git_commit(),
            "command": command or " ".join(sys.argv),
        }
        save_checkpoint(net.select(i), Path(f"{stem}.pt"), meta)
        curve = {"batch": np.asarray(tr.curves["batch"], dtype=np.int32),
                 "loss": np.asarray(tr.curves["loss"], dtype=np.float32)[:, i],
                 "task_loss": np.asarray(tr.curves["task_loss"], dtype=np.float32)[:, i],
                 "eval_batch": np.asarray(tr.evals["batch"], dtype=np.int32)}
        for k, v in tr.evals.items():
            if k != "batch":
                curve[f"eval_{k}"] = np.asarray(v, dtype=np.float32)[:, i]
        import io
        buf = io.BytesIO()
        np.savez_compressed(buf, **curve)
        atomic_write_bytes(Path(f"{stem}.curve.npz"), buf.getvalue())
        paths.append(Path(f"{stem}.pt"))
    return paths
