"""Hand-written forward and backward pass through time for pre-training (Methods, "Network" and "Pre-training").

``model.rollout`` is the readable, autograd-differentiable reference. Pre-training runs this
module instead: the same dynamics written with preallocated buffers and fused products, and the
exact gradient computed by an adjoint recursion *including the feedback loop* (during
pre-training the fed-back error is part of the differentiated computation, Methods, "Pre-training"). The
recurrent-weight gradient is then one large matrix product over all steps. Tests check every
gradient against ``torch.autograd`` on ``model.rollout``.

Forward (per network s, row-vector convention, W_f = M * W_fb, c = controller on)::

    a_k     = W_in s_k + b + W_rec r_k + c W_f E[k-d]
    x_{k+1} = (1 - alpha) x_k + alpha a_k,   r_{k+1} = relu(x_{k+1})
    v_k     = W_out r_{k+1} + b_out + p_k,   E[k+1] = E[k] + dt (vref_k - v_k)

Loss (Methods, "Pre-training")::

    L = mean_{j,b,i} E[j]^2 + gamma mean_{j>=1} r_j^2 + beta (|W_in|+|W_out|+|b_out|+|W_f|+|b|)
        + beta_rec |W_rec|

Adjoint, for k = T-1 .. 0 (G_j = dL/dE[j] in total, F_j its feedback part, D_j its direct part)::

    G_{k+1} = D_{k+1} + F_{k+1} + G_{k+2}
    gv_k    = -dt G_{k+1}
    gx_{k+1}= relu'(x_{k+1}) * (W_out^T gv_k + 2 gamma r_{k+1} / N_r + W_rec^T ga_{k+1})
              + (1 - alpha) gx_{k+2}
    ga_k    = alpha gx_{k+1},        F_{k-d} += c W_f^T ga_k
    dL/dW_rec = sum_k ga_k r_k^T,  dL/dW_in = sum_k ga_k s_k^T,  dL/db = sum_k ga_k,
    dL/dW_f = c M * sum_k ga_k E[k-d]^T,  dL/dW_out = sum_k gv_k r_{k+1}^T,  dL/db_out = sum_k gv_k
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as dc_replace

import torch

from .model import Network
from .task import Trials

__all__ = ["Regularisation", "Forward", "Workspace", "forward", "forward_open_loop", "loss_and_grads"]


@dataclass(frozen=True)
class Regularisation:
    """Pre-training regularisers (Methods, "Pre-training"): rates (gamma), weights (beta), recurrent (beta_rec).
    Norms are Frobenius norms, not squared."""

    rate: float = 2e-3
    weights: float = 1e-3
    recurrent: float = 1e-3


@dataclass
class Forward:
    """Buffers of one batched forward pass, layout [T+1, S, B, ...] (S networks)."""

    X: torch.Tensor | None  # [T+1, S, B, n]; None when not kept (``forward(keep_x=False)``)
    R: torch.Tensor  # [T+1, S, B, n]
    E: torch.Tensor  # [T+1, S, B, 2]
    Z: torch.Tensor | None  # [T+1, S, B, n + n_in + 3] (None from ``forward_open_loop``): rows z_k = [r_k, s_k, 1, c E[k-d]]; R is its first n columns

    def task_loss(self) -> torch.Tensor:
        """mean(E^2) per network -> [S]."""
        return torch.linalg.vector_norm(self.E, dim=(0, 2, 3)).square() / self.E[:, 0].numel()


class Workspace:
    """Buffers kept from one call to the next (pre-training: ``Trainer`` holds one). A fresh
    multi-MB buffer per batch is paid for in page faults every time it is first written, a few
    percent of a pre-training batch at the paper's size. What a call hands out in buffers of a
    workspace (``Forward`` of ``loss_and_grads``) is overwritten by the next call with it."""

    def __init__(self):
        self._bufs: dict[str, torch.Tensor] = {}

    def empty(self, name: str, shape, dtype, device) -> torch.Tensor:
        b = self._bufs.get(name)
        if b is None or b.shape != tuple(shape) or b.dtype != dtype or b.device != torch.device(device):
            b = self._bufs[name] = torch.empty(tuple(shape), dtype=dtype, device=device)
        return b


def _empty(ws: Workspace | None, name: str, shape, dtype, device) -> torch.Tensor:
    return ws.empty(name, shape, dtype, device) if ws is not None else torch.empty(tuple(shape), dtype=dtype,
                                                                                 device=device)


def _as_stacked(net: Network, trials: Trials, x0: torch.Tensor):
    if net.stacked:
        return net, trials, x0
    st = net.replace(**{k: v.unsqueeze(0) for k, v in net.tensors().items()})
    tr = dc_replace(trials, inputs=trials.inputs.unsqueeze(1), vstar=trials.vstar.unsqueeze(1),
                    vref=trials.vref.unsqueeze(1), push=trials.push.unsqueeze(1),
                    start=trials.start.unsqueeze(0), end=trials.end.unsqueeze(0),
                    target=trials.target.unsqueeze(0))
    return st, tr, x0.unsqueeze(0)


@torch.no_grad()
def forward(net: Network, trials: Trials, x0: torch.Tensor, *, controller_on: bool = True,
            delay: int | None = None, keep_x: bool = True, ws: Workspace | None = None) -> Forward:
    """The dynamics of ``model.rollout`` without autograd, into preallocated buffers.
    Always returns stacked buffers ([T+1, S, B, .]; S = 1 for a single network).

    ``keep_x=False`` keeps no pre-activations (``Forward.X`` is None): x is then one buffer updated
    in place, ``x <- (1 - alpha) x + z_k (alpha W_z)``, which saves a copy of the state per step
    and a [T+1, S, B, n] buffer. Everything else needs only r (relu'(x) = [r > 0]), as pre-training
    and the test losses do.

    Every input of the pre-activation is kept in one row per step, z_k = [r_k, s_k, 1, c E[k-d]],
    so that a_k = z_k W_z with W_z = [W_rec^T; W_in^T; b; W_f^T] is one matrix product per step,
    and the weight gradients of all of them are one product over the trial (``loss_and_grads``).
    ``R`` is a view of the first n columns of ``Z``."""
    net, trials, x0 = _as_stacked(net, trials, x0)
    d = net.cfg.delay if delay is None else int(delay)
    dev, dt_ = net.device, net.dtype
    trials = trials.to(device=dev, dtype=dt_)
    x0 = x0.to(device=dev, dtype=dt_)  # clamp_min(..., out=) below needs x0 on the buffers' device
    T = trials.T
    S, B, n = x0.shape
    n_in = trials.inputs.shape[-1]
    alpha, dt = net.cfg.alpha, net.cfg.dt
    W_z = torch.cat([net.W_rec.mT, net.W_in.mT, net.b.unsqueeze(1),
                     (net.W_fb * net.mask).mT if controller_on else torch.zeros_like(net.W_fb.mT)], dim=1)
    W_z.mul_(alpha)                        # x_{k+1} = (1 - alpha) x_k + z_k (alpha W_z): one fused product
    W_outT = net.W_out.mT
    X = torch.empty(T + 1 if keep_x else 1, S, B, n, dtype=dt_, device=dev)
    Z = _empty(ws, "Z", (T + 1, S, B, n + n_in + 3), dt_, dev)  # every column is written below
    R = Z[..., :n]
    Z[:T, ..., n:n + n_in] = trials.inputs
    Z[:T, ..., n + n_in] = 1.0
    Z[T, ..., n:] = 0.0
    E_in = Z[..., n + n_in + 1:]  # c E[k-d], zero before step d + 1
    E_in[: min(d + 1, T) if controller_on else T] = 0.0
    E = _empty(ws, "E", (T + 1, S, B, 2), dt_, dev).zero_()
    X[0] = x0
    torch.clamp_min(x0, 0.0, out=R[0])
    # dt (vref_k - b_out - p_k) for every step at once: E[k+1] = E[k] + that - dt W_out r_{k+1}
    drift = (trials.vref - trials.push).sub_(net.b_out.unsqueeze(1)).mul_(dt)
    x = X[0]
    for k in range(T):
        if keep_x:
            x = torch.baddbmm(X[k], Z[k], W_z, beta=1.0 - alpha, out=X[k + 1])
        else:
            x.baddbmm_(Z[k], W_z, beta=1.0 - alpha)
        torch.clamp_min(x, 0.0, out=R[k + 1])
        if controller_on:
            torch.add(E[k], drift[k], out=E[k + 1]).baddbmm_(R[k + 1], W_outT, alpha=-dt)
            if k + 1 + d < T:
                E_in[k + 1 + d] = E[k + 1]
    if not controller_on:
        # nothing is fed back, so the error needs no step of its own: all readouts in one product,
        # then E[k+1] = E[k] + (dt (vref_k - b_out - p_k) - dt W_out r_{k+1}), summed in step order
        _open_loop_errors(R, W_outT, drift, dt, E)
    return Forward(X=X if keep_x else None, R=R, E=E, Z=Z)


@torch.no_grad()
def forward_open_loop(net: Network, trials: Trials, x0: torch.Tensor) -> Forward:
    """``forward(controller_on=False, keep_x=False)`` for tests, computed more cheaply: with
    nothing fed back, each step is ``x <- (1 - alpha) x + r_k (alpha W_rec)^T + [s_k, 1] (alpha
    [W_in^T; b])`` with r_k in a contiguous buffer (two products in place, no copy of the state),
    and the errors are summed after the loop from one product of all readouts. Same numbers to
    float rounding (tests); ``Forward.X`` and ``Forward.Z`` are None."""
    net, trials, x0 = _as_stacked(net, trials, x0)
    dev, dt_ = net.device, net.dtype
    trials = trials.to(device=dev, dtype=dt_)
    T = trials.T
    S, B, n = x0.shape
    alpha, dt = net.cfg.alpha, net.cfg.dt
    aW_recT = (alpha * net.W_rec).mT.contiguous()                               # [S, n, n]
    aW_inb = torch.cat([net.W_in.mT, net.b.unsqueeze(1)], dim=1).mul_(alpha)   # [S, n_in + 1, n]
    s1 = torch.cat([trials.inputs, torch.ones(T, S, B, 1, dtype=dt_, device=dev)], dim=-1)   # [s_k, 1]
    R = torch.empty(T + 1, S, B, n, dtype=dt_, device=dev)
    x = x0.to(device=dev, dtype=dt_).clone()
    torch.clamp_min(x, 0.0, out=R[0])
    for k in range(T):
        x.baddbmm_(R[k], aW_recT, beta=1.0 - alpha).baddbmm_(s1[k], aW_inb)
        torch.clamp_min(x, 0.0, out=R[k + 1])
    E = torch.zeros(T + 1, S, B, 2, dtype=dt_, device=dev)
    drift = (trials.vref - trials.push).sub_(net.b_out.unsqueeze(1)).mul_(dt)
    _open_loop_errors(R, net.W_out.mT, drift, dt, E)
    return Forward(X=None, R=R, E=E, Z=None)


def _open_loop_errors(R: torch.Tensor, W_outT: torch.Tensor, drift: torch.Tensor, dt: float, E: torch.Tensor) -> None:
    """E[k+1] = E[k] + (drift_k - dt W_out r_{k+1}) for all steps at once, where nothing is fed
    back: all readouts in one product, then summed in step order (E[0] stays as given; ``drift``
    is overwritten)."""
    T1, S, B, n = R.shape
    T = T1 - 1
    V = torch.bmm(R[1:].transpose(0, 1).reshape(S, T * B, n), W_outT).reshape(S, T, B, 2).transpose(0, 1)
    torch.cumsum(drift.sub_(V, alpha=dt), dim=0, out=E[1:])


def _fro(W: torch.Tensor) -> torch.Tensor:
    """Frobenius norm per network of a stacked [S, ...] tensor -> [S]."""
    return W.reshape(W.shape[0], -1).norm(dim=1)


@torch.no_grad()
def loss_and_grads(net: Network, trials: Trials, x0: torch.Tensor, reg: Regularisation = Regularisation(),
                   *, controller_on: bool = True, delay: int | None = None, ws: Workspace | None = None):
    """Pre-training loss per network and its exact gradient (feedback loop included).

    Returns ``(losses, grads, fwd)``: ``losses`` a dict of [S] tensors (``total``, ``task``,
    ``rate``, ``weights``), ``grads`` a dict name -> tensor shaped like ``net.params()``.
    """
    was_stacked = net.stacked
    snet, strials, sx0 = _as_stacked(net, trials, x0)
    d = snet.cfg.delay if delay is None else int(delay)
    fwd = forward(snet, strials, sx0, controller_on=controller_on, delay=d, keep_x=False, ws=ws)
    R, E = fwd.R, fwd.E          # relu'(x_k) = [r_k > 0]: the pre-activations are not kept
    T1, S, B, n = R.shape
    T = T1 - 1
    alpha, dt = snet.cfg.alpha, snet.cfg.dt
    dev, dt_ = R.device, R.dtype
    strials = strials.to(device=dev, dtype=dt_)
    W_f = snet.W_fb * snet.mask
    N_E = (T + 1) * B * 2
    N_r = T * B * n
    task = torch.linalg.vector_norm(E, dim=(0, 2, 3)).square() / N_E
    rate = torch.linalg.vector_norm(R[1:], dim=(0, 2, 3)).square() / N_r
    norms = {k: _fro(getattr(snet, k)) for k in ("W_in", "W_out", "b_out", "b")}
    norms["W_fb"] = _fro(W_f)
    wsum = sum(norms.values())
    rec = _fro(snet.W_rec)
    total = task + reg.rate * rate + reg.weights * wsum + reg.recurrent * rec

    # adjoint sweep, kept scaled: GA[k] = alpha gx_{k+1}, so with aW_out = alpha W_out and
    # aW_rec = alpha W_rec one fused add per step gives GA[k] = alpha g_r + (1 - alpha) GA[k+1]
    # (threshold_backward is linear in g). The readout adjoint gv_k is stored beside GA[k+1]
    # (columns n, n+1 of the same rows), so that after the sweep ONE product over all steps,
    # [GA | GV]^T Z, gives dL/dW_rec, dL/dW_in, dL/db, dL/dW_f (rows of GA against the columns of
    # z_k = [r_k, s_k, 1, E[k-d]]) and dL/dW_out (rows of GV against r_{k+1}).
    GAV = _empty(ws, "GAV", (T, S, B, n + 2), dt_, dev)
    GA = GAV[..., :n]
    GAV[0, ..., n:] = 0.0
    gv_last = _empty(ws, "gv_last", (S, B, 2), dt_, dev)
    F = _empty(ws, "F", (T + 1, S, B, 2), dt_, dev).zero_()
    G = _empty(ws, "G", (S, B, 2), dt_, dev).zero_()
    g_r = _empty(ws, "g_r", (S, B, n), dt_, dev)
    n_in = strials.inputs.shape[-1]
    cE = 2.0 / N_E
    cR = 2.0 * reg.rate / N_r
    aW_out = alpha * snet.W_out
    aW_recout = torch.cat([alpha * snet.W_rec, aW_out], dim=1)      # [aW_rec; aW_out], rows of GAV[k+1]
    # the feedback loop's adjoint, F_{k-d} += ga_k W_f: none where W_f is all zero (networks
    # without feedback: exactly the same numbers); W_f stored column-major for it (a product with
    # two columns is several times faster that way)
    fb_loop = controller_on and d < T and bool(W_f.any())
    W_f_cols = W_f.mT.contiguous().mT if fb_loop else None
    for k in range(T - 1, -1, -1):
        # G_{k+1} = D_{k+1} + F_{k+1} + G_{k+2};  gv_k = -dt G_{k+1}
        G.add_(F[k + 1]).add_(E[k + 1], alpha=cE)
        gv = torch.mul(G, -dt, out=GAV[k + 1, ..., n:] if k + 1 < T else gv_last)
        if k + 1 < T:   # GAV[k+1] = [GA[k+1] | gv_k]: one product with [aW_rec; aW_out]
            torch.baddbmm(R[k + 1], GAV[k + 1], aW_recout, beta=alpha * cR, out=g_r)
            g_r = torch.ops.aten.threshold_backward(g_r, R[k + 1], 0.0)  # relu'(x) * g_r = [r > 0] * g_r
            torch.add(g_r, GA[k + 1], alpha=1.0 - alpha, out=GA[k])
        else:
            torch.baddbmm(R[k + 1], gv, aW_out, beta=alpha * cR, out=g_r)
            GA[k] = torch.ops.aten.threshold_backward(g_r, R[k + 1], 0.0)
        if fb_loop and k - d >= 0:
            F[k - d].baddbmm_(GA[k], W_f_cols)
    # weight gradients: one product over all steps and trials per network
    m = fwd.Z.shape[-1]
    g_all = torch.bmm(GAV.transpose(0, 1).reshape(S, T * B, n + 2).mT,
                      fwd.Z[:T].transpose(0, 1).reshape(S, T * B, m))   # [S, n+2, m]
    g_Wrec = g_all[:, :n, :n].contiguous()
    g_Win = g_all[:, :n, n:n + n_in].contiguous()
    g_b = g_all[:, :n, n + n_in].contiguous()
    g_Wf = g_all[:, :n, n + n_in + 1:] * snet.mask if controller_on else torch.zeros_like(W_f)
    g_Wout = g_all[:, n:, :n].baddbmm(gv_last.mT, R[T])   # + gv_{T-1}^T r_T
    g_bout = GAV[1:, ..., n:].sum(dim=(0, 2)) + gv_last.sum(1)

    def add_norm_grad(g, W, coef):
        nrm = _fro(W).clamp_min(1e-30).reshape(-1, *([1] * (W.dim() - 1)))
        return g.add_(W / nrm, alpha=coef)

    grads = {
        "W_in": add_norm_grad(g_Win, snet.W_in, reg.weights),
        "W_rec": add_norm_grad(g_Wrec, snet.W_rec, reg.recurrent),
        "W_fb": add_norm_grad(g_Wf, W_f, reg.weights) * snet.mask,
        "b": add_norm_grad(g_b, snet.b, reg.weights),
        "W_out": add_norm_grad(g_Wout, snet.W_out, reg.weights),
        "b_out": add_norm_grad(g_bout, snet.b_out, reg.weights),
    }
    losses = {"total": total, "task": task, "rate": rate, "weights": wsum, "recurrent": rec}
    if not was_stacked:
        grads = {k: v[0] for k, v in grads.items()}
        losses = {k: v[0] for k, v in losses.items()}
    return losses, grads, fwd
