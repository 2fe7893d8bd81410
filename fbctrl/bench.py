"""Benchmarks: ``python -m fbctrl bench {pretrain,adapt}``. They print numbers and ratios and
never assert; the tests check correctness, these measure speed."""

from __future__ import annotations

import platform
import statistics
import time

import torch

__all__ = ["run", "matmul_peak_gflops", "bench_pretrain", "load_saved", "PUBLISHED_CPU", "cpu_name"]


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak_gflops(device="cpu", sizes=None, reps: int = 8) -> float:
    """The machine's float32 matrix-product rate: the best of ``reps`` square products at each of
    a few sizes (the best of all, so that a busy moment does not flatter the ratio)."""
    sizes = sizes or ((1024, 2048) if str(device) == "cpu" else (4096, 8192))
    best_rate = 0.0
    for size in sizes:
        a = torch.randn(size, size, device=device)
        b = torch.randn(size, size, device=device)
        a @ b
        _sync(device)
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            _sync(device)
            best_rate = max(best_rate, 2 * size**3 / (time.perf_counter() - t) / 1e9)
    return best_rate


def pretrain_flops(n=400, batch=256, T=125, n_in=3, n_out=2) -> float:
    """Matrix-product FLOPs of one pre-training batch: forward (recurrent, input, feedback, readout
    products) and backward (twice the forward: the adjoint and the weight gradients)."""
    fwd = 2 * batch * T * (n * n + n * n_in + n * n_out + n_out * n)
    return 3 * fwd


def bench_pretrain(device="cpu", batches: int = 5, seeds: int = 1) -> dict:
    from .bptt import loss_and_grads
    from .train import PretrainConfig, Trainer

    cfg = PretrainConfig(batches=batches + 2)
    tr = Trainer(cfg, list(range(seeds)), device=device)
    for _ in range(2):  # warm-up: allocator, caches, clock
        tr.step()
    _sync(device)
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        tr.step()
        _sync(device)
        times.append(time.perf_counter() - t)
    spb = statistics.median(times)  # the median batch: robust to a busy moment, not flattering
    gflops = pretrain_flops() * seeds / spb / 1e9
    peak = matmul_peak_gflops(device)
    return {"seconds_per_batch": spb, "seconds_per_batch_per_seed": spb / seeds, "seeds": seeds,
            "gflops": gflops, "peak_gflops": peak, "ratio": gflops / peak, "device": str(device),
            "threads": torch.get_num_threads(), "machine": platform.machine()}


def cpu_name() -> str:
    """The processor's model name (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(what: str, device="cpu", batches: int = 5, seeds: int = 1) -> dict:
    if what == "pretrain":
        res = bench_pretrain(device, batches, seeds)
        print(f"pretrain n=400 batch=256 T=125, {seeds} seed(s) on {device}: {res['seconds_per_batch']:.3f} s/batch, "
              f"{res['gflops']:.1f} GFLOP/s = {res['ratio']:.2f} x measured matmul rate "
              f"({res['peak_gflops']:.1f} GFLOP/s)")
        return res
    if what == "adapt":
        from .adapt import bench_adapt

        return bench_adapt(device)
    raise ValueError(f"bench: unknown benchmark {what!r} (pretrain, adapt)")


# Figures reported for the published code on a 2-core CPU (not re-measured here: the book does
# not run that code). Seconds per pre-training batch (n 400, 256 trials, T 125, with its five
# test sets per batch) and per adaptation trial (n 400, T 125, batch 1).
PUBLISHED_CPU = {"pretrain": 2.45, "rflo": 0.7, "bptt": 7.9}


def load_saved(folder) -> list[dict]:
    """The benchmark results written by ``python -m fbctrl bench ... --save FILE.json`` in a
    folder, sorted by file name; each is ``{"benchmark", "result", "command", "commit", ...}``."""
    import json
    from pathlib import Path

    out = []
    for p in sorted(Path(folder).glob("*.json")):
        d = json.loads(p.read_text())
        if not isinstance(d, dict) or "benchmark" not in d or "result" not in d:
            raise ValueError(f"{p}: not a saved benchmark (expected keys 'benchmark' and 'result')")
        d["file"] = p.name
        out.append(d)
    return out
