"""Benchmarks: ``python -m fbctrl bench {pretrain,adapt,memory}``. They print numbers and ratios
and never assert; the tests check correctness, these measure speed and memory.

Every kernel is timed beside its *floor*, in the same process and right before or after it: the
time this machine needs for the memory traffic or the matrix products that the kernel cannot
avoid, done with plain PyTorch calls of the same kind (one call per product, like the kernels).
A kernel's ratio ``K / K_floor`` (>= 1, lower is better) says how far it is from what the machine
allows; its absolute time says how fast this machine is. Kernels and floors are timed alike:
the median of ``repeats`` calls after a warm-up (robust to a busy moment, not flattering).
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..analysis.gradients import one_thread, wrec_second_order
from ..core.checkpoint import load_checkpoint
from ..core.model import NetworkConfig, init_network
from ..core.task import TaskConfig, centre_out_reaches
from ..core.train import PretrainConfig, Trainer
from ..learning.adapt import RunSpec, _TestSets, adapt, paper_lr
from ..learning.rules import OnlineBPTT
from ..paths import SOURCE_ROOT

try:
    import resource  # POSIX; the peak resident memory where /proc is not available
except ImportError:  # Windows
    resource = None


__all__ = ["run", "matmul_peak_gflops", "bench_pretrain", "bench_adapt", "bench_memory", "memory_point",
           "floor_bptt", "floor_rflo", "floor_pretrain_step_shapes", "step_shapes_flops", "pretrain_flops",
           "bench_task", "ADAPT_KERNELS", "FLOORS", "MEMORY_KERNELS", "load_saved", "PUBLISHED_CPU", "cpu_name", "cpu_id", "machine_provenance"]


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device) -> float:
    """Wall-clock seconds of one call of ``fn()`` (the device synchronised at both ends)."""
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def _median_seconds(fn, repeats: int, device, *, warmup: int = 1, warmup_fn=None) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls of ``warmup_fn``
    (default ``fn``): how every kernel and every floor here is timed."""
    for _ in range(warmup):
        (warmup_fn or fn)()
    return statistics.median(_timed(fn, device) for _ in range(repeats))


def bench_task(T: int = 125) -> TaskConfig:
    """The paper's task (T = 125 steps); other lengths (benchmarks at other sizes) scale the go
    cue and the movement with T. The cost of a trial depends on T only."""
    base = TaskConfig()
    if T == base.T:
        return base
    return TaskConfig(T=T, go_step=base.go_step * T // base.T, move_steps=max(1, base.move_steps * T // base.T))


# ---- floors ---------------------------------------------------------------------------------

def _chunk_sizes(R: int, device) -> tuple[int, ...]:
    """Ways to split R independent runs into chunks done one after another: on a GPU all R at
    once (one launch per product); on a CPU all R at once, single runs, and chunks of
    ``rules.OnlineBPTT.CPU_CHUNK`` runs (whose matrices stay in cache)."""
    if str(device).startswith("cuda"):
        return (R,)
    return tuple(sorted({1, min(OnlineBPTT.CPU_CHUNK, R), R}))


def _cheapest_per_run(candidates: dict, repeats: int, device) -> float:
    """Seconds per run of the cheapest of several equivalent ways to do the same work.
    ``candidates``: label -> (function doing one trial of c runs, c). Each is warmed up and
    probed once; the fastest is timed (median of ``repeats``) and divided by its c. R runs done
    in chunks of c cost R / c times one chunk (the runs are independent and alike)."""
    probe = {}
    for key, (fn, c) in candidates.items():
        fn()
        probe[key] = _timed(fn, device) / c
    fn, c = candidates[min(probe, key=probe.get)]
    return _median_seconds(fn, repeats, device, warmup=0) / c


def floor_bptt(n: int = 400, T: int = 125, R: int = 1, device="cpu", repeats: int = 5) -> float:
    """Floor of exact online BPTT, seconds per run-trial: T(T+1)/2 products of one vector with an
    n x n float32 matrix (``torch.mv(A, x, out=y)``, and on a CPU also ``numpy.dot(A, x, out=y)``,
    whose per-call cost and BLAS differ: the cheaper counts; for c > 1 runs at a time
    ``torch.bmm(A, x, out=y)`` with A [c, n, n], x [c, n, 1]).

    Why it bounds the rule: after step k the exact gradient of that step's loss needs the adjoint
    through all k+1 past steps, and each past step is one product with an n x n Jacobian
    (W_rec of that step, masked by relu'), so a trial needs at least sum_k (k+1) = T(T+1)/2 of
    them, one call each (each depends on the last). The floor does only those products, with one
    matrix that stays in cache, and nothing else: no element-wise work, no weight history (its
    calls are independent, which does not change the cost of a call). R runs in lockstep: the
    cheapest of the chunkings of :func:`_chunk_sizes`."""
    def make(c, lib="torch"):
        A = torch.randn(c, n, n, device=device) / math.sqrt(n)
        x = torch.randn(c, n, 1, device=device)
        y = torch.empty_like(x)
        A1, x1, y1 = A[0], x[0, :, 0], y[0, :, 0]

        def trial_1():
            for _ in range(T * (T + 1) // 2):
                torch.mv(A1, x1, out=y1)

        def trial_np():
            An, xn, yn, dot = A1.numpy(), x1.numpy(), y1.numpy(), np.dot
            for _ in range(T * (T + 1) // 2):
                dot(An, xn, out=yn)

        def trial_c():
            for _ in range(T * (T + 1) // 2):
                torch.bmm(A, x, out=y)
        return (trial_c if c > 1 else trial_np if lib == "numpy" else trial_1), c

    cands = {c: make(c) for c in _chunk_sizes(R, device)}
    if not str(device).startswith("cuda"):
        cands["numpy"] = make(1, "numpy")
    return _cheapest_per_run(cands, repeats, device)


def floor_rflo(n: int = 400, T: int = 125, R: int = 1, device="cpu", repeats: int = 5) -> float:
    """Floor of RFLO, seconds per run-trial: T rank-one updates of an n x n float32 trace in
    place, P <- (1 - alpha) P + alpha a b^T, plus T products of an n x n matrix with a vector.

    Why it bounds the rule as written (a dense trace, Murray 2019): every step updates the whole
    eligibility trace (one read and one write of n^2 numbers) and runs the forward product
    W_rec r_k (one read of W_rec). The floor leaves out the weight update W += s * P (a kernel
    could fuse it with the trace update into one pass over P and W) and the element-wise work. A
    form that never builds P (W_rec kept as W_start plus low-rank factors of the trial's rates, as
    online BPTT does) could go below it; its floor would be the T products alone. The products are timed
    with ``torch.mv`` and, on a CPU, ``numpy.dot``; the update both as one pass
    (``P.addr_(a, b, beta=1-alpha, alpha=alpha)``; ``baddbmm_`` for c > 1 runs) and as
    ``P.mul_(1-alpha).addr_(a, b, alpha=alpha)``; the cheaper counts, with the cheapest chunking
    of R runs (:func:`_chunk_sizes`)."""
    alpha = NetworkConfig().alpha
    beta = 1.0 - alpha

    def make(c, fused, lib="torch"):
        P = torch.zeros(c, n, n, device=device)
        W = torch.randn(c, n, n, device=device) / math.sqrt(n)
        a, b = torch.rand(c, n, 1, device=device), torch.rand(c, 1, n, device=device)
        y, bT = torch.empty(c, n, 1, device=device), b.mT.contiguous()
        if c == 1:   # one run: the 2-D kernels (addr_, mv or numpy.dot) on views of the batch-1 tensors
            P_, W_, a_, b_, x_, y_ = P[0], W[0], a[0, :, 0], b[0, 0], b[0, 0], y[0, :, 0]
            outer, prod = torch.Tensor.addr_, torch.mv
            if lib == "numpy":
                W_, x_, y_ = W_.numpy(), x_.numpy(), y_.numpy()
                prod = np.dot
        else:
            P_, W_, a_, b_, x_, y_ = P, W, a, b, bT, y
            outer, prod = torch.Tensor.baddbmm_, torch.bmm

        def trial():
            for _ in range(T):
                if fused:
                    outer(P_, a_, b_, beta=beta, alpha=alpha)
                else:
                    outer(P_.mul_(beta), a_, b_, alpha=alpha)
                prod(W_, x_, out=y_)
        return trial, c

    cands = {(c, fused): make(c, fused) for c in _chunk_sizes(R, device) for fused in (True, False)}
    if not str(device).startswith("cuda"):
        cands.update({(1, fused, "numpy"): make(1, fused, "numpy") for fused in (True, False)})
    return _cheapest_per_run(cands, repeats, device)


def step_shapes_flops(n: int = 400, T: int = 125, R: int = 1, batch: int = 256, n_in: int = 3) -> float:
    """FLOPs of the products timed by :func:`floor_pretrain_step_shapes` (R networks)."""
    m = n + n_in + 3
    return 2.0 * R * (T * batch * m * n + T * batch * n * n + (n + 2) * T * batch * m)


def floor_pretrain_step_shapes(n: int = 400, T: int = 125, R: int = 1, device="cpu", repeats: int = 5,
                               batch: int = 256, n_in: int = 3) -> float:
    """Floor of one pre-training batch (``train.Trainer.step``) at its own shapes, seconds: the
    matrix products of ``bptt.loss_and_grads`` for R networks, without anything else.

    Per step, the forward product z_k W_z, [R, batch, m] x [R, m, n] with z_k = [r_k, s_k, 1, e]
    of width m = n + n_in + 1 + 2; per step, the adjoint product ga W_rec, [R, batch, n] x
    [R, n, n]; once per batch, the weight gradients [GA | GV]^T Z, [R, n+2, T batch] x
    [R, T batch, m]. These are at least :func:`step_shapes_flops` (the readout and feedback
    products with 2 columns are left out), in products of the sizes the step must use: their
    rate is what the step can reach, where large squares reach more."""
    m = n + n_in + 3
    Z, Wz, h = (torch.randn(R, batch, m, device=device), torch.randn(R, m, n, device=device),
                torch.empty(R, batch, n, device=device))
    GA, Wr, g = (torch.randn(R, batch, n, device=device), torch.randn(R, n, n, device=device),
                 torch.empty(R, batch, n, device=device))
    GAV, Zall = torch.randn(R, T * batch, n + 2, device=device), torch.randn(R, T * batch, m, device=device)
    gW = torch.empty(R, n + 2, m, device=device)

    def one_batch():
        for _ in range(T):
            torch.bmm(Z, Wz, out=h)
        for _ in range(T):
            torch.bmm(GA, Wr, out=g)
        torch.bmm(GAV.mT, Zall, out=gW)

    return _median_seconds(one_batch, repeats, device)


def matmul_peak_gflops(device="cpu", sizes=None, reps: int = 8) -> float:
    """The machine's float32 matrix-product rate: the best of ``reps`` square products at each of
    a few sizes (the best of all, so that a busy moment does not flatter the ratio)."""
    sizes = sizes or ((1024, 2048) if str(device) == "cpu" else (4096, 8192))
    best_rate = 0.0
    for size in sizes:
        a = torch.randn(size, size, device=device)
        b = torch.randn(size, size, device=device)
        a @ b
        for _ in range(reps):
            best_rate = max(best_rate, 2 * size**3 / _timed(lambda: a @ b, device) / 1e9)
    return best_rate


# ---- pre-training -----------------------------------------------------------------------------

def pretrain_flops(n=400, batch=256, T=125, n_in=3, n_out=2) -> float:
    """Matrix-product FLOPs of one pre-training batch: forward (recurrent, input, feedback, readout
    products) and backward (twice the forward: the adjoint and the weight gradients)."""
    fwd = 2 * batch * T * (n * n + n * n_in + n * n_out + n_out * n)
    return 3 * fwd


def bench_pretrain(device="cpu", batches: int = 5, seeds: int = 1, *, n: int = 400, T: int = 125,
                   batch_size: int = 256, repeats: int = 5, peak_sizes=None) -> dict:
    """Seconds per pre-training batch (``Trainer.step``, median of ``batches`` after two warm-up
    batches), its matrix-product rate, and right after it the two floors: the rate of the step's
    own products (:func:`floor_pretrain_step_shapes`, ``ratio_step_shapes``) and of large
    squares (:func:`matmul_peak_gflops`, ``ratio``)."""
    tr = Trainer(PretrainConfig(n=n, batch_size=batch_size, batches=batches + 2), list(range(seeds)),
                 device=device, task_cfg=bench_task(T))
    spb = _median_seconds(tr.step, batches, device, warmup=2)
    gflops = pretrain_flops(n, batch_size, T) * seeds / spb / 1e9
    step_s = floor_pretrain_step_shapes(n, T, seeds, device, repeats, batch=batch_size)
    step_gflops = step_shapes_flops(n, T, seeds, batch_size) / step_s / 1e9
    peak = matmul_peak_gflops(device, sizes=peak_sizes)
    return {"seconds_per_batch": spb, "seconds_per_batch_per_seed": spb / seeds, "seeds": seeds,
            "gflops": gflops, "peak_gflops": peak, "ratio": gflops / peak,
            "step_shapes_seconds": step_s, "step_shapes_gflops": step_gflops,
            "ratio_step_shapes": gflops / step_gflops, "n": n, "T": T, "batch_size": batch_size,
            "device": str(device), "threads": torch.get_num_threads(), "machine": platform.machine()}


def _print_pretrain(res: dict) -> None:
    print(f"pretrain n={res['n']} batch={res['batch_size']} T={res['T']}, {res['seeds']} seed(s) on "
          f"{res['device']}: {res['seconds_per_batch']:.3f} s/batch, {res['gflops']:.1f} GFLOP/s = "
          f"{res['ratio']:.2f} x the large-square matmul rate ({res['peak_gflops']:.1f} GFLOP/s), "
          f"{res['ratio_step_shapes']:.2f} x the rate at the step's own shapes "
          f"({res['step_shapes_gflops']:.1f} GFLOP/s, {res['step_shapes_seconds']:.3f} s per batch)")


# ---- adaptation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdaptKernel:
    """One timed adaptation workload: rule, condition, runs in lockstep, alignment, BPTT weights
    convention, and timed trials per repeat (None: the benchmark's ``trials``)."""

    rule: str
    controller_on: bool = True
    runs: int = 1
    align: bool = False
    bptt_weights: str = "history"
    trials: int | None = None

    def specs(self, runs: int | None = None) -> list[RunSpec]:
        lr = paper_lr(self.rule, self.controller_on)
        return [RunSpec(controller_on=self.controller_on, lr=lr, seed=s) for s in range(runs or self.runs)]

    def call(self, net, task: TaskConfig, trials: int, runs: int | None = None):
        """``adapt`` for ``trials`` trials, tests of the network off except the one after the last."""
        return adapt(net, self.rule, self.specs(runs), trials=trials, align=self.align, task_cfg=task,
                     bptt_weights=self.bptt_weights, progress=False, test_every=10**9, on_divergence="mark")


# The timed workloads (JSON keys of ``bench adapt``); ``bptt_c`` is exact online BPTT+c.
ADAPT_KERNELS = {
    "rflo_c": AdaptKernel("rflo"),
    "rflo": AdaptKernel("rflo", controller_on=False),
    "bptt_c": AdaptKernel("bptt", trials=4),
    "rflo_align": AdaptKernel("rflo", align=True, trials=4),
    "rflo_c_batch10": AdaptKernel("rflo", runs=10, trials=4),   # the lockstep groups of the paper protocol
    "bptt_c_batch32": AdaptKernel("bptt", runs=32, trials=2),
    # the cheaper sweep with the current weights (rules.OnlineBPTT, weights="current")
    "bptt_c_current": AdaptKernel("bptt", bptt_weights="current", trials=4),
    "bptt_c_batch32_current": AdaptKernel("bptt", runs=32, bptt_weights="current", trials=2),
}

# The kernels timed beside a floor (keys K_floor, K_ratio): floor(n, T, R, device, repeats).
FLOORS = {"bptt_c": floor_bptt, "rflo_c": floor_rflo, "bptt_c_batch32": floor_bptt}


def _adapt_network(n: int, device):
    """The shipped network fb_seed0 at n 400 when present, else an untrained one (same cost)."""
    shipped = SOURCE_ROOT / "checkpoints" / "fb_seed0.pt"
    if n == NetworkConfig().n and shipped.exists():
        return load_checkpoint(shipped, device=device)
    return init_network(NetworkConfig(n=n), torch.Generator().manual_seed(0), device=device)


def bench_wrec_newton(net, task: TaskConfig, device, maxiter: int = 100) -> dict:
    """The W_rec Newton analysis (Methods, "How the findings are measured", finding 3): seconds for one
    time step (60; T // 2 for
    shorter trials) with ``maxiter`` MINRES iterations of exact Hessian-vector products (float64),
    plus the gradient and the Gauss-Newton direction, on one thread as the analysis runs; its floor
    (:func:`floor_wrec_newton`) and ratio; and the same step on all ``wrec_newton_threads`` threads."""
    net64 = net.to(dtype=torch.float64)
    tr = centre_out_reaches(task, dtype=torch.float64).rotated(30.0).select(slice(0, 1))
    x0 = torch.zeros(1, net.cfg.n, dtype=torch.float64, device=net64.device)
    out, t = {}, min(60, task.T // 2)
    secs = _timed(lambda: out.setdefault("w", wrec_second_order(
        net64, tr, x0, t, controller_on=True, maxiter=maxiter, rtol=0.0)), device)
    iters = int(out["w"].minres_iters)
    floor = floor_wrec_newton(net.cfg.n, t, iters + 1, device)
    # the same step on all of the machine's threads (the analysis itself runs on one)
    threads = _timed(lambda: wrec_second_order.__wrapped__(net64, tr, x0, t, controller_on=True, maxiter=maxiter,
                                                            rtol=0.0), device)
    return {"wrec_newton_step": secs, "wrec_newton_iters": iters, "wrec_newton_step_floor": floor,
            "wrec_newton_step_ratio": secs / floor, "wrec_newton_step_all_threads": threads,
            "wrec_newton_threads": torch.get_num_threads()}


def floor_wrec_newton(n: int, t: int, hvps: int, device, repeats: int = 1) -> float:
    """The matrix products of ``hvps`` W_rec Hessian-vector products at step ``t`` and nothing else
    (:class:`~fbctrl.analysis.gradients.WrecHessian`): per product 2 (t + 1) vector-matrix products
    (the R-forward and adjoint recursions, batch 1) and 4 products of a (t + 1) x n by an n x n
    matrix, float64, one thread, as the analysis runs. An orthogonal W keeps the chained vectors at
    norm 1 (no overflow, no denormals)."""
    g = torch.Generator().manual_seed(0)
    W = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0].to(device)
    R = torch.randn(t + 1, n, generator=g, dtype=torch.float64).to(device)

    def run():
        for _ in range(hvps):
            v = R[0]
            for _ in range(2 * (t + 1)):
                v = v @ W
            for _ in range(4):
                R @ W

    with one_thread():
        return _median_seconds(run, repeats, device)


def bench_adapt(device="cpu", trials: int = 20, repeats: int = 5, *, n: int = 400, T: int = 125) -> dict:
    """Seconds per trial at n 400, T 125, batch 1 for each of :data:`ADAPT_KERNELS` (per run-trial
    for runs in lockstep), each the median of ``repeats`` runs after a warm-up trial; tests of the
    adapted network are switched off except the one every run makes after its last trial, which
    is spread over the timed trials (``trials`` = 20 for RFLO, 4 for one BPTT run, 2 for 32 runs in
    lockstep). Right after each kernel of :data:`FLOORS` its floor is timed the same way
    (``K_floor``, seconds per run-trial) and ``K_ratio = K / K_floor``. Last, the W_rec Newton step
    (:func:`bench_wrec_newton`)."""
    net, task = _adapt_network(n, device), bench_task(T)
    res = {}
    for name, k in ADAPT_KERNELS.items():
        nt = k.trials or trials
        res[name] = _median_seconds(lambda: k.call(net, task, nt), repeats, device,
                                    warmup_fn=lambda: k.call(net, task, 1)) / nt / k.runs
        if name in FLOORS:
            res[f"{name}_floor"] = FLOORS[name](n, T, k.runs, device, repeats)
            res[f"{name}_ratio"] = res[name] / res[f"{name}_floor"]
    res["adapt_tests"] = bench_adapt_tests(net, task, device, repeats)
    res.update(bench_wrec_newton(net, task, device))
    res.update(device=str(device), n=n, T=T, repeats=repeats)
    _print_adapt(res)
    return res


def bench_adapt_tests(net, task: TaskConfig, device, repeats: int = 5, calls: int = 10) -> float:
    """Seconds for the tests that follow every adaptation trial in the paper protocol (the 8
    rotated and 8 unrotated centre-out targets, controller off: ``adapt._TestSets.losses``),
    one run; the median of ``repeats`` times ``calls`` calls."""
    one = net if net.stacked else net.replace(**{k: v.unsqueeze(0) for k, v in net.tensors().items()})
    base = centre_out_reaches(task, dtype=net.dtype).to(device)
    tests = _TestSets(one, [base.rotated(30.0)], base)
    W = one.W_rec.clone()

    def call():
        for _ in range(calls):
            tests.losses(W)
    return _median_seconds(call, repeats, device) / calls


def _print_adapt(res: dict) -> None:
    for k in ADAPT_KERNELS:
        runs = ADAPT_KERNELS[k].runs
        line = f"{k:22s} {res[k]:.4f} s per {'run-trial' if runs > 1 else 'trial'}"
        if f"{k}_floor" in res:
            line += f" = {res[f'{k}_ratio']:.2f} x its floor ({res[f'{k}_floor']:.4f} s)"
        print(line + (f" ({runs} runs in lockstep)" if runs > 1 else ""))
    if "adapt_tests" in res:
        print(f"{'adapt_tests':22s} {res['adapt_tests']:.4f} s per trial (16 test reaches, controller off)")
    print(f"{'wrec_newton_step':22s} {res['wrec_newton_step']:.2f} s per time step "
          f"= {res['wrec_newton_step_ratio']:.2f} x its floor ({res['wrec_newton_step_floor']:.2f} s; "
          f"{res['wrec_newton_iters']} MINRES iterations, n = {res['n']}; "
          f"{res['wrec_newton_step_all_threads']:.2f} s on {res['wrec_newton_threads']} threads)")


# ---- memory -----------------------------------------------------------------------------------

# The kernels whose working memory ``bench memory`` measures; growth with n and T for GROWTH_KERNELS.
MEMORY_KERNELS = ("pretrain_step", "bptt_c", "rflo_c", "bptt_c_batch32")
GROWTH_KERNELS = ("bptt_c", "rflo_c")


def _kernel_call(kernel: str, n: int, T: int, device, batch: int, runs: int):
    """The inputs of one call of a memory kernel at size (n, T), built now; returns the call."""
    if kernel == "pretrain_step":
        tr = Trainer(PretrainConfig(n=n, batch_size=batch), [0], device=device, task_cfg=bench_task(T))
        return tr.step
    k, net, task = ADAPT_KERNELS[kernel], _adapt_network(n, device), bench_task(T)
    return lambda: k.call(net, task, 1, runs=runs if k.runs > 1 else None)


def _host_rss() -> int:
    """This process's resident memory now, bytes (Linux /proc; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return _host_peak()


def _host_peak() -> int:
    """Peak resident memory, bytes: VmHWM (Linux, resettable), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    if resource is None:
        raise OSError("no way to read the peak resident memory on this system")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def _reset_host_peak() -> bool:
    """Reset the peak to the current resident memory (Linux >= 4.0); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_point(kernel: str, n: int, T: int, device="cpu", batch: int = 256, runs: int = 32) -> dict:
    """Working memory of one call of ``kernel`` (:data:`MEMORY_KERNELS`) at size (n, T), measured
    in THIS process (``bench_memory`` runs each point in a fresh one): the peak resident memory
    during the call minus the resident memory just before it, after imports, a warm-up call at a
    tiny size (lazy imports and library set-up) and building the call's inputs (network, trainer
    and its test sets). ``bytes`` is that host number on a CPU, and on CUDA the growth of
    ``torch.cuda.max_memory_allocated`` over the allocated memory before the call.

    On Linux the peak is VmHWM, reset just before the call. ``ru_maxrss`` is used only where that
    is impossible: it cannot be reset, and in a child process it starts at the parent's size (the
    kernel reports the parent's peak from before exec), so then the number is the growth of the
    peak, a lower bound."""
    _kernel_call(kernel, 8, 10, device, 2, 2)()
    call = _kernel_call(kernel, n, T, device, batch, runs)
    gc.collect()
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        dev_base = torch.cuda.memory_allocated()
    reset = _reset_host_peak()
    base = _host_rss() if reset else _host_peak()
    call()
    _sync(device)
    host = max(0, _host_peak() - base)
    out = {"kernel": kernel, "n": n, "T": T, "host_bytes": host, "bytes": host,
           "method": "VmHWM - VmRSS (peak reset)" if reset else "ru_maxrss growth (lower bound)"}
    if cuda:
        out["bytes"] = out["device_bytes"] = int(torch.cuda.max_memory_allocated() - dev_base)
        out["method"] = "torch.cuda.max_memory_allocated growth; host: " + out["method"]
    return out


def _fresh_memory_point(kernel: str, n: int, T: int, device, batch: int, runs: int) -> dict:
    """:func:`memory_point` in a fresh Python process (this checkout's fbctrl on its path)."""
    code = ("import json; from fbctrl.perf.bench import memory_point; "
            f"print(json.dumps(memory_point({kernel!r}, {n}, {T}, {str(device)!r}, {batch}, {runs})))")
    root = str(SOURCE_ROOT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory point {kernel} n={n} T={T} failed: {last}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _growth(xs, ys) -> dict:
    """Growth between the two largest sizes: the memory ratio, the size ratio and the exponent
    log(ratio) / log(size ratio); None where it cannot be computed."""
    pts = sorted(zip(xs, ys))
    if len(pts) < 2 or pts[-2][1] <= 0 or pts[-1][1] <= 0:
        return {"ratio": None, "size_ratio": None, "exponent": None}
    (x1, y1), (x2, y2) = pts[-2], pts[-1]
    return {"ratio": y2 / y1, "size_ratio": x2 / x1, "exponent": math.log(y2 / y1) / math.log(x2 / x1)}


def bench_memory(device="cpu", *, n: int = 400, T: int = 125, ns=(100, 200, 400, 800), Ts=(50, 125, 250),
                 batch: int = 256, runs: int = 32) -> dict:
    """Working memory (bytes, :func:`memory_point`, each point in a fresh process) of each of
    :data:`MEMORY_KERNELS` at (n, T) (the pre-training step with ``batch`` trials, one trial of
    exact online BPTT+c, of RFLO+c, and of ``runs`` online BPTT+c runs in lockstep), and for
    :data:`GROWTH_KERNELS` its growth with n (``ns`` at T) and with T (``Ts`` at n).

    Exact online BPTT must stay O(T n + n^2) per run (stored trajectory and adjoints, and W_rec):
    then memory(2T)/memory(T) <= 2 and memory(2n)/memory(n) <= 4, i.e. exponents <= 1 in T and
    <= 2 in n. ``growth[kernel]["T"|"n"]`` gives the ratio and exponent between the two largest
    sizes (the least distorted by fixed costs); an exponent in T near 2 means O(T^2 n) storage."""
    points = {(k, n, T) for k in MEMORY_KERNELS}
    points |= {(k, m, T) for k in GROWTH_KERNELS for m in ns} | {(k, n, t) for k in GROWTH_KERNELS for t in Ts}
    got = {p: _fresh_memory_point(*p, device, batch, runs) for p in sorted(points)}
    res = {"device": str(device), "n": n, "T": T, "batch": batch, "runs": runs, "ns": list(ns), "Ts": list(Ts),
           "unit": "bytes", "method": got[("bptt_c", n, T)]["method"],
           "peak": {k: got[(k, n, T)]["bytes"] for k in MEMORY_KERNELS},
           "by_n": {k: [got[(k, m, T)]["bytes"] for m in ns] for k in GROWTH_KERNELS},
           "by_T": {k: [got[(k, n, t)]["bytes"] for t in Ts] for k in GROWTH_KERNELS}}
    res["peak"]["bptt_c_batch32_per_run"] = res["peak"]["bptt_c_batch32"] / runs
    res["growth"] = {k: {"n": _growth(ns, res["by_n"][k]), "T": _growth(Ts, res["by_T"][k])} for k in GROWTH_KERNELS}
    return res


def _mib(b) -> str:
    return f"{b / 2**20:9.2f} MiB"


def _print_memory(res: dict) -> None:
    n, T = res["n"], res["T"]
    print(f"working memory of one call on {res['device']} ({res['method']}):")
    for k, b in res["peak"].items():
        print(f"  {k:24s} n={n} T={T}{_mib(b)}")
    for k in GROWTH_KERNELS:
        print(f"  {k}: by n (T={T}) " + ", ".join(f"{m}:{b / 2**20:.2f}" for m, b in zip(res["ns"], res["by_n"][k]))
              + f" MiB; by T (n={n}) " + ", ".join(f"{t}:{b / 2**20:.2f}" for t, b in zip(res["Ts"], res["by_T"][k]))
              + " MiB")
        for axis in ("n", "T"):
            g = res["growth"][k][axis]
            if g["ratio"] is not None:
                print(f"    {axis} x {g['size_ratio']:.3g}: memory x {g['ratio']:.3g} (exponent {g['exponent']:.2f})")
    print("  O(T n + n^2) per run allows exponents <= 1 in T and <= 2 in n")


# ---- command line and saved results -------------------------------------------------------------

def _cpuinfo_fields(cpuinfo: str | None = None) -> dict:
    """The first processor's fields of /proc/cpuinfo (or of the text given); {} where there is none."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return {}
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_name() -> str:
    """The processor's model name (Linux), else what ``platform`` knows."""
    return _cpuinfo_fields().get("model name") or platform.processor() or platform.machine()


def cpu_id(cpuinfo: str | None = None) -> str:
    """The processor's family and model and the widest vector instructions it has, e.g.
    ``"family 26 model 2, AVX-512"`` (Linux; "" elsewhere): two processors that share a model name
    ("AMD EPYC" on a virtual machine) can differ in both, and the floors' ratios with them."""
    fields = _cpuinfo_fields(cpuinfo)
    flags = set(fields.get("flags", "").split())
    vector = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                                           ("sse2", "SSE2")) if flag in flags), "")
    where = " ".join(f"{label} {fields[k]}" for k, label in (("cpu family", "family"), ("model", "model"))
                     if fields.get(k))
    return ", ".join(x for x in (where, vector) if x)


def machine_provenance(command: str) -> dict:
    """What a saved benchmark or plan records of where it ran (``runs.provenance`` adds the rest)."""
    return {"command": command, "cpu": cpu_name(), "cpu_id": cpu_id(), "cores": os.cpu_count()}


def run(what: str, device="cpu", batches: int = 5, seeds: int = 1, *, n: int | None = None,
        T: int | None = None, repeats: int | None = None) -> dict:
    """One benchmark (``pretrain``, ``adapt``, ``memory``), printed; returns its result. ``n``,
    ``T``, ``repeats``: other sizes than the paper's (None: the defaults), for tests."""
    sizes = {k: v for k, v in (("n", n), ("T", T)) if v is not None}
    timing = {**sizes, **({"repeats": repeats} if repeats is not None else {})}
    if what == "pretrain":
        res = bench_pretrain(device, batches, seeds, **timing)
        _print_pretrain(res)
        return res
    if what == "adapt":
        return bench_adapt(device, **timing)
    if what == "memory":
        res = bench_memory(device, **sizes)
        _print_memory(res)
        return res
    raise ValueError(f"bench: unknown benchmark {what!r} (pretrain, adapt, memory)")


# Figures reported for the published code on a 2-core CPU (not re-measured here: the book does
# not run that code). Seconds per pre-training batch (n 400, 256 trials, T 125, with its five
# test sets per batch) and per adaptation trial (n 400, T 125, batch 1).
PUBLISHED_CPU = {"pretrain": 2.45, "rflo": 0.7, "bptt": 7.9}


def load_saved(folder) -> list[dict]:
    """The benchmark results written by ``python -m fbctrl bench ... --save FILE.json`` in a
    folder, sorted by file name; each is ``{"benchmark", "result", "command", "commit", ...}``."""
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        d = json.loads(p.read_text())
        if not isinstance(d, dict) or "benchmark" not in d or "result" not in d:
            raise ValueError(f"{p}: not a saved benchmark (expected keys 'benchmark' and 'result')")
        d["file"] = p.name
        out.append(d)
    return out
