"""The feedback-controlled rate RNN and one rollout (Methods, "Network").

One step k (k = 0 .. T-1), from ``x``, ``r = relu(x)`` and the integrated error ``e``::

    u_k = (M * W_fb) e_fb                                 control input (0 if controller off)
    x  <- (1 - alpha) x + alpha (W_in s_k + W_rec r + u_k + b)
    r  <- relu(x)
    v_k = W_out r + b_out + p_k                           hand velocity (p_k: external push)
    e  <- e + dt (vref_k - v_k)                           integrated (position) error

with ``alpha = dt / tau``, ``E = [e_0 = 0, e after step 0, ..., e after step T-1]`` (T+1 entries)
and the fed-back error ``e_fb = E[k - d]`` for a delay of d steps (zero while k - d < 0).
The trial loss is ``mean(E**2)`` over the T+1 entries, the batch and both dimensions.

Weights may carry a leading *network* axis (``W_rec [S, n, n]``), in which case trials carry a
matching leading batch axis (``inputs [T, S, B, 3]``) and S independent networks run in one
batched computation (used to train or adapt many seeds in lockstep).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

from .task import TaskConfig, Trials

__all__ = ["NetworkConfig", "Network", "Rollout", "init_network", "rollout", "draw_x0", "trial_loss",
           "PARAM_NAMES"]

PARAM_NAMES = ("W_in", "W_rec", "W_fb", "b", "W_out", "b_out")


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture (Methods, "Network"). ``feedback_density`` is the fraction of non-zero entries of the
    fixed 0/1 feedback mask M; 0 removes the feedback pathway. ``delay`` is in steps."""

    n: int = 400                     # recurrent units
    n_in: int = 3                    # inputs: target offset (2) and hold signal
    n_out: int = 2                   # outputs: hand velocity (x, y)
    dt: float = TaskConfig.dt        # s per step (the task's step)
    tau: float = 0.05                # s, membrane time constant
    feedback_density: float = 1.0    # fraction of non-zero entries of the mask M
    delay: int = 0                   # steps between the error and its feedback

    def __post_init__(self):
        if int(self.n) != self.n or self.n <= 0:
            raise ValueError(f"n must be a positive integer, got {self.n}")
        if not 0.0 <= self.feedback_density <= 1.0:
            raise ValueError(f"feedback_density must lie in [0, 1], got {self.feedback_density}")
        if int(self.delay) != self.delay or self.delay < 0:
            raise ValueError(f"delay must be a non-negative integer number of steps, got {self.delay}")
        if self.dt <= 0 or self.tau <= 0:
            raise ValueError("dt and tau must be > 0")

    @property
    def alpha(self) -> float:
        return self.dt / self.tau


@dataclass
class Network:
    """Weights of one network, or of S networks stacked along a leading axis.

    ``W_fb`` is stored with the mask already applied (``W_fb == mask * W_fb``).
    """

    cfg: NetworkConfig
    W_in: torch.Tensor   # [*, n, 3]
    W_rec: torch.Tensor  # [*, n, n]
    W_fb: torch.Tensor   # [*, n, 2]
    mask: torch.Tensor   # [*, n, 2]
    b: torch.Tensor      # [*, n]
    W_out: torch.Tensor  # [*, 2, n]
    b_out: torch.Tensor  # [*, 2]

    @property
    def stacked(self) -> bool:
        return self.W_rec.dim() == 3

    @property
    def n_networks(self) -> int:
        return self.W_rec.shape[0] if self.stacked else 1

    @property
    def device(self):
        return self.W_rec.device

    @property
    def dtype(self):
        return self.W_rec.dtype

    def params(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in PARAM_NAMES}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**self.params(), "mask": self.mask}

    def replace(self, **kw) -> "Network":
        return replace(self, **kw)

    def to(self, device=None, dtype=None) -> "Network":
        kw = {k: v.to(device=device, dtype=dtype) for k, v in self.tensors().items()}
        return replace(self, **kw)

    def detach(self) -> "Network":
        return replace(self, **{k: v.detach() for k, v in self.tensors().items()})

    def clone(self) -> "Network":
        return replace(self, **{k: v.detach().clone() for k, v in self.tensors().items()})

    def select(self, i: int) -> "Network":
        """Network i of a stacked set."""
        if not self.stacked:
            raise ValueError("select() needs a stacked network")
        return replace(self, **{k: v[i] for k, v in self.tensors().items()})

    @staticmethod
    def stack(nets: list["Network"]) -> "Network":
        cfgs = {n.cfg for n in nets}
        if len(cfgs) != 1:
            raise ValueError("can only stack networks with the same NetworkConfig")
        return replace(nets[0], **{k: torch.stack([getattr(n, k) for n in nets]) for k in
                                   [f.name for f in fields(Network) if f.name != "cfg"]})


def _uniform(shape, bound, generator, dtype):
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).mul_(bound).to(dtype)


MASK_STREAM = 0x6D61736B  # "mask": offsets the seed of the feedback mask's own random stream


def feedback_mask_uniforms(n: int, n_out: int, generator: torch.Generator) -> torch.Tensor:
    """The uniforms [n, n_out] a sparse feedback mask thresholds: M = (U < density).

    They come from their own stream, seeded from the network's seed (``generator.initial_seed()``)
    and not from ``generator`` itself, so that a sparse network of seed s starts from the same
    weights and sees the same training batches as the dense network of seed s (only M differs),
    and the masks of one seed are nested: density 0.1's ones are a subset of density 0.3's."""
    g = torch.Generator().manual_seed((int(generator.initial_seed()) + MASK_STREAM) % (2 ** 63))
    return torch.rand(n, n_out, generator=g, dtype=torch.float64)


def init_network(cfg: NetworkConfig, generator: torch.Generator, *, device=None,
                 dtype=torch.float32) -> Network:
    """Initialise as in Methods, "Network" (PyTorch-default ranges of the original):
    W_in, W_rec, W_out, b_out ~ U(+-1/sqrt(n)); W_fb, b ~ U(+-1/sqrt(2));
    mask entries ~ Bernoulli(feedback_density) (all ones at density 1, all zeros at 0), drawn
    from the mask's own stream (:func:`feedback_mask_uniforms`)."""
    n = cfg.n
    k_n = 1.0 / math.sqrt(n)
    k_2 = 1.0 / math.sqrt(2.0)
    W_in = _uniform((n, cfg.n_in), k_n, generator, dtype)
    W_rec = _uniform((n, n), k_n, generator, dtype)
    W_fb = _uniform((n, cfg.n_out), k_2, generator, dtype)
    b = _uniform((n,), k_2, generator, dtype)
    W_out = _uniform((cfg.n_out, n), k_n, generator, dtype)
    b_out = _uniform((cfg.n_out,), k_n, generator, dtype)
    if cfg.feedback_density >= 1.0:
        mask = torch.ones(n, cfg.n_out, dtype=dtype)
    elif cfg.feedback_density <= 0.0:
        mask = torch.zeros(n, cfg.n_out, dtype=dtype)
    else:
        mask = (feedback_mask_uniforms(n, cfg.n_out, generator) < cfg.feedback_density).to(dtype)
    net = Network(cfg, W_in, W_rec, W_fb * mask, mask, b, W_out, b_out)
    return net.to(device=device)


@dataclass
class Rollout:
    """Everything one rollout produced, time-major.

    x [T+1, *B, n] (x[0] = initial state), r = relu(x) [T+1, *B, n], v [T, *B, 2],
    E [T+1, *B, 2] (E[0] = 0), u [T, *B, n] (control input that entered step k; zeros if off),
    e_fb [T, *B, 2] (error fed back at step k).
    """

    x: torch.Tensor
    r: torch.Tensor
    v: torch.Tensor
    E: torch.Tensor
    u: torch.Tensor
    e_fb: torch.Tensor


def draw_x0(n: int, batch_shape, generator: torch.Generator, dtype=torch.float32, device=None) -> torch.Tensor:
    """Initial pre-activations x_0 ~ Uniform(-0.1, 0.1), independently per unit and trial."""
    x0 = (torch.rand(*batch_shape, n, generator=generator, dtype=torch.float64) * 0.2 - 0.1)
    return x0.to(dtype=dtype, device=device)


def _expand(net: Network, t: torch.Tensor) -> torch.Tensor:
    """Give a per-network vector [S, k] a broadcast axis over trials: [S, 1, k]."""
    return t.unsqueeze(-2) if net.stacked else t


def _addmm(bias: torch.Tensor, a: torch.Tensor, WT: torch.Tensor) -> torch.Tensor:
    """bias + a @ WT, fused where the shapes allow."""
    if a.dim() == 2 and WT.dim() == 2:
        return torch.addmm(bias, a, WT)
    if a.dim() == 3 and WT.dim() == 3:
        return torch.baddbmm(bias, a, WT)
    return bias + a @ WT


def rollout(net: Network, trials: Trials, *, controller_on: bool = True, x0: torch.Tensor | None = None,
            generator: torch.Generator | None = None, feedback_grad: bool = True,
            delay: int | None = None) -> Rollout:
    """Run the network over a batch of trials (Methods, "Network").

    ``controller_on=False`` drops exactly the ``(M * W_fb) e_fb`` term from the dynamics; the
    error and loss are still computed. ``feedback_grad=False`` detaches the fed-back error (the
    adaptation convention: the controller's signal is an input, Methods, "Adaptation"). ``delay`` overrides
    ``net.cfg.delay``. x0 defaults to a draw from ``generator`` (Methods, "Network").
    """
    cfg = net.cfg
    d = cfg.delay if delay is None else int(delay)
    if d < 0:
        raise ValueError(f"delay must be >= 0 steps, got {d}")
    batch_shape = trials.batch_shape
    if net.stacked and (len(batch_shape) < 1 or batch_shape[0] != net.n_networks):
        raise ValueError(f"stacked network of {net.n_networks} needs trials with batch shape "
                         f"[{net.n_networks}, B], got {tuple(batch_shape)}")
    dev, dt_ = net.device, net.dtype
    trials = trials.to(device=dev, dtype=dt_)
    if x0 is None:
        if generator is None:
            raise ValueError("rollout needs x0 or a generator to draw it")
        x0 = draw_x0(cfg.n, batch_shape, generator, dt_, dev)
    x0 = x0.to(device=dev, dtype=dt_)  # a given x0 may live elsewhere (e.g. drawn on the CPU)
    alpha = cfg.alpha
    W_recT = net.W_rec.mT
    W_fbT = (net.W_fb * net.mask).mT
    W_outT = net.W_out.mT
    # all input drives in one product: W_in s_k + b  for every k
    drive = torch.matmul(trials.inputs, net.W_in.mT.unsqueeze(0)) + _expand(net, net.b)
    b_out = _expand(net, net.b_out)
    x = x0
    r = torch.relu(x)
    e = torch.zeros(*batch_shape, cfg.n_out, dtype=dt_, device=dev)
    xs, rs, vs, Es, us, efbs = [x], [r], [], [e], [], []
    zero_u = None
    for k, (I_k, vref_k, p_k) in enumerate(zip(drive.unbind(0), trials.vref.unbind(0), trials.push.unbind(0))):
        e_fb = Es[k - d] if k - d >= 0 else torch.zeros_like(e)
        if not feedback_grad:
            e_fb = e_fb.detach()
        h = _addmm(I_k, r, W_recT)
        if controller_on:
            u = torch.matmul(e_fb, W_fbT)
            h = h + u
        else:
            if zero_u is None:
                zero_u = torch.zeros_like(x)
            u = zero_u
        x = torch.lerp(x, h, alpha)  # (1 - alpha) x + alpha h
        r = torch.relu(x)
        v = _addmm(b_out.expand_as(e), r, W_outT) + p_k
        e = torch.add(e, vref_k - v, alpha=cfg.dt)
        xs.append(x); rs.append(r); vs.append(v); Es.append(e); us.append(u); efbs.append(e_fb)
    return Rollout(x=torch.stack(xs), r=torch.stack(rs), v=torch.stack(vs), E=torch.stack(Es),
                   u=torch.stack(us), e_fb=torch.stack(efbs))


def trial_loss(E: torch.Tensor, stacked: bool = False) -> torch.Tensor:
    """mean(E**2) over the T+1 entries, trials and both dimensions; one value per network if
    ``stacked`` (E [T+1, S, B, 2] -> [S])."""
    if stacked:
        return E.pow(2).mean(dim=(0, *range(2, E.dim())))
    return E.pow(2).mean()
