"""What the chapter "Performance" (``book/performance.ipynb``) shows, from benchmark files saved by
``python -m fbctrl bench ... --save`` (:func:`fbctrl.perf.bench.load_saved`; it runs no benchmark).

* :func:`load` -- the saved benchmarks of ``P.results_dir``/bench (and of its ``ab/`` subfolder).
* :func:`pretrain_table`, :func:`glue_pretrain` -- the pre-training timings: table, numbers, sentences.
* :func:`adapt_table`, :func:`glue_adapt` -- the adaptation timings per rule: table, numbers, sentence.
* :func:`provenance_table` -- the file, command, commit and time of every saved benchmark.

The tables and figures against the floors, of memory and of the paper's cost come from
:mod:`fbctrl.viz.perf`, called with :attr:`Chapter.saved`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...fmt import code, fmt_num, md_table
from ...perf import bench
from ...viz import perf as perfplots
from ..glue import glue_int, glue_num, glue_text

__all__ = ["Chapter", "ADAPT_LABELS", "load", "where", "pretrain_table", "glue_pretrain", "adapt_table",
           "glue_adapt", "glue_before_after", "provenance_table"]

PUB = bench.PUBLISHED_CPU

# key of a ``bench adapt`` result -> its row in the adaptation table
ADAPT_LABELS = {"rflo_c": "RFLO+c", "rflo": "RFLO", "bptt_c": "online BPTT+c, exact (weight history)",
                "bptt_c_current": "online BPTT+c, current weights",
                "rflo_align": "RFLO+c with the exact gradient of every step (alignment)",
                "rflo_c_batch10": "10 runs of RFLO+c in lockstep (per run)",
                "bptt_c_batch32": "32 runs of online BPTT+c in lockstep, exact (per run)",
                "bptt_c_batch32_current": "32 runs of online BPTT+c in lockstep, current weights (per run)",
                "adapt_tests": "the tests after every trial (8 rotated and 8 unrotated targets, controller off)"}
# the published code's seconds per trial for the rows that have one
ADAPT_PUBLISHED = {"rflo_c": PUB["rflo"], "rflo": PUB["rflo"], "bptt_c": PUB["bptt"], "bptt_c_current": PUB["bptt"]}

B32_FAST = ("on a CPU the batching saves per-operation overhead, and on a GPU it turns a sweep of "
            "many runs into the cost of about one.")
B32_SLOW = ("on a CPU, runs in lockstep cost about what they cost one at a time (each run's products "
            "already keep both cores busy); the batching is for a GPU, where it turns a sweep of many "
            "runs into the cost of about one.")


@dataclass
class Chapter:
    """The saved benchmarks ``saved`` (and ``saved_ab``, the before/after runs); ``pre``: the
    pre-training ones by ``(device, seeds)``; ``ada``: the adaptation ones by device."""

    P: object
    saved: list[dict]
    saved_ab: list[dict]
    pre: dict[tuple[str, int], dict]
    ada: dict[str, dict]


def load(P) -> Chapter:
    """The benchmark files of ``P.results_dir``/bench; a one-line ValueError if there are none."""
    folder = Path(P.results_dir) / "bench"
    saved = bench.load_saved(folder)
    if not saved:
        raise ValueError(f"no saved benchmarks in {P.results_dir!r}/bench (run python -m fbctrl bench ... --save)")
    pre = {(d["result"]["device"], d["result"]["seeds"]): d for d in saved if d["benchmark"] == "pretrain"}
    ada = {d["result"]["device"]: d for d in saved if d["benchmark"] == "adapt"}
    return Chapter(P=P, saved=saved, saved_ab=bench.load_saved(folder / "ab"), pre=pre, ada=ada)


def where(d: dict) -> str:
    """The machine a saved benchmark ran on: CPU name and threads, or the GPU."""
    return f"{d.get('cpu', d.get('machine'))}, {d['result'].get('threads', d.get('cores'))} threads" \
        if d["result"]["device"] == "cpu" else d.get("gpu", d["result"]["device"])


def pretrain_table(ch: Chapter):
    """Seconds per pre-training batch: the published code, then every saved ``bench pretrain``."""
    rows = [["pre-training, published code (as reported)", "2-core CPU", fmt_num(PUB["pretrain"], 3), "—", "1"]]
    for (dev, seeds), d in sorted(ch.pre.items()):
        r = d["result"]
        lockstep = " in lockstep (per network)" if seeds > 1 else ""
        rows.append([f"pre-training, {seeds} network{'s' if seeds > 1 else ''}" + lockstep,
                     where(d), fmt_num(r["seconds_per_batch_per_seed"], 3), fmt_num(r["ratio"], 2),
                     fmt_num(PUB["pretrain"] / r["seconds_per_batch_per_seed"], 2)])
    return md_table(["workload", "machine", "s per batch", "ratio to matmul rate", "speed-up"], rows, align="llrrr")


def glue_pretrain(ch: Chapter) -> None:
    """Glue the section on pre-training: one network on the CPU, and networks in lockstep."""
    one = ch.pre.get(("cpu", 1))
    if one is not None:
        r = one["result"]
        glue_num("pre_spb", r["seconds_per_batch"], 2)
        glue_num("pre_gflops", r["gflops"], 3)
        glue_num("pre_peak", r["peak_gflops"], 3)
        glue_num("pre_ratio", r["ratio"], 2)
        glue_num("pre_speedup", PUB["pretrain"] / r["seconds_per_batch"], 2)
        glue_num("pre_net_min", 5000 * r["seconds_per_batch"] / 60, 2)
        glue_text("pre_cpu", where(one))
        glue_text("pre_commit", one.get("commit", "?"))
    four = next((d for (dev, s), d in sorted(ch.pre.items()) if dev == "cpu" and s > 1), None)
    if four is not None:
        spb = four["result"]["seconds_per_batch_per_seed"]
        glue_int("lock_seeds", four["result"]["seeds"])
        glue_num("lock_spb", spb, 2)
        glue_text("lock_vs_one", "slower" if one is not None and spb > one["result"]["seconds_per_batch"] else "faster")
    else:
        glue_int("lock_seeds", 0)
        glue_text("lock_spb", "n/a")
        glue_text("lock_vs_one", "n/a")


def adapt_table(ch: Chapter):
    """Seconds per adaptation trial of each rule, against the published code where it reports one."""
    rows = []
    for dev, d in sorted(ch.ada.items()):
        r = d["result"]
        for k, label in ADAPT_LABELS.items():
            if k in r:
                pub = ADAPT_PUBLISHED.get(k)
                rows.append([label, where(d), fmt_num(r[k], 2), fmt_num(pub, 2) if pub is not None else "—",
                             fmt_num(pub / r[k], 2) if pub is not None else "—"])
    return md_table(["adaptation, s per trial", "machine", "this book", "published code (as reported)", "speed-up"],
                    rows, align="llrrr")


def time_comparison(ratio: float, other: str) -> str:
    """How a time compares with ``other``'s, ``ratio`` = this / that: "about the same time as
    <other> (4% less)" within 10%, else "2.5 times faster than <other>" or "1.3 times the time of
    <other>" (a ratio that rounds to 1.0 never reads "1.0 times faster")."""
    if abs(ratio - 1) < 0.1:
        pct = fmt_num(abs(1 - ratio) * 100, 1)
        return f"about the same time as {other}" + (f" ({pct}% {'less' if ratio < 1 else 'more'})" if pct != "0" else "")
    return (f"{fmt_num(1 / ratio, 2)} times faster than {other}" if ratio < 1
            else f"{fmt_num(ratio, 2)} times the time of {other}")


def glue_adapt(ch: Chapter) -> None:
    """Glue the section on adaptation (the CPU's ``bench adapt``), with the Newton step on W_rec."""
    a = ch.ada.get("cpu")
    if a is None:
        return
    r = a["result"]
    for k in ADAPT_LABELS:
        if k in r:
            glue_num(f"ad_{k}", r[k], 2)
    glue_num("ad_rflo_speedup", PUB["rflo"] / r["rflo"], 2)
    glue_num("ad_bptt_speedup", PUB["bptt"] / r["bptt_c"], 2)
    glue_num("ad_hist_over_cur", r["bptt_c"] / r["bptt_c_current"], 2)
    glue_text("ad_cur_vs_hist", time_comparison(r["bptt_c_current"] / r["bptt_c"], "the exact sweep"))
    # the one place the book's cost of an exact online BPTT trial in RFLO trials comes from
    glue_num("bptt_per_rflo_trial", r["bptt_c"] / r["rflo_c"], 2)
    rel = r["bptt_c_batch32_current"] / r["bptt_c_current"]
    glue_num("ad_b32_rel", rel, 2)
    glue_text("ad_b32_text", B32_FAST if rel < 0.8 else B32_SLOW)
    if "wrec_newton_step" in r:
        glue_num("wrec_step_s", r["wrec_newton_step"], 2)
        glue_int("wrec_iters", r["wrec_newton_iters"])
    else:
        glue_text("wrec_step_s", "n/a")
        glue_text("wrec_iters", "n/a")
    if "wrec_newton_step_floor" in r:
        glue_text("wrec_floor_text", f"{fmt_num(r['wrec_newton_step_ratio'], 2)} times its floor (the matrix "
                  f"products alone, {fmt_num(r['wrec_newton_step_floor'], 2)} s), on one thread: on all "
                  f"{r['wrec_newton_threads']} threads of this machine the same step takes "
                  f"{fmt_num(r['wrec_newton_step_all_threads'], 2)} s")
    else:
        glue_text("wrec_floor_text", "no floor in this benchmark file (an older one)")


def provenance_table(ch: Chapter):
    """The file, benchmark, command, commit and time of every saved benchmark."""
    return md_table(["file", "benchmark", "command", "commit", "time"],
                    [[d["file"], d["benchmark"], code(d.get("command", "")) if d.get("command") else "—", d.get("commit", "?"), d.get("time", "?")]
                     for d in ch.saved], align="lllll")


# the kernels whose before/after numbers the text cites (keys of perfplots.FLOOR_LABELS)
AB_KEYS = ("bptt_c", "rflo_c", "bptt_c_batch32", "pretrain_step_shapes", "pretrain_squares")


def glue_before_after(ch: Chapter) -> None:
    """Glue the before/after comparison (``results/bench/ab``), medians over the runs per side:
    ``ab_{key}_before`` and ``ab_{key}_after`` (time / the floor measured in the same run),
    ``ab_{key}_before_new_floor`` (the before time over the after runs' floor: on a CPU the floors
    now also try NumPy's products, which can be cheaper, so the old floors flatter the old code),
    ``ab_{key}_speedup`` (median before time / median after time), ``ab_{key}_goal`` ("meets" or
    "misses" the goal), ``ab_runs`` (runs per side) and ``ab_cpu`` (the machine)."""
    es = {(e["key"], e["side"]): e for e in perfplots.before_after(ch.saved_ab)}
    med = lambda xs: float(np.median(xs))  # noqa: E731
    for key in AB_KEYS:
        b, a = es.get((key, "before")), es.get((key, "after"))
        if b is None or a is None:
            for suffix in ("before", "after", "before_new_floor", "speedup", "goal"):
                glue_text(f"ab_{key}_{suffix}", "n/a")
            continue
        floor_after = med([t / r for t, r in zip(a["times"], a["ratios"])])
        glue_num(f"ab_{key}_before", med(b["ratios"]), 3)
        glue_num(f"ab_{key}_after", med(a["ratios"]), 3)
        glue_num(f"ab_{key}_before_new_floor", med(b["times"]) / floor_after, 3)
        glue_num(f"ab_{key}_speedup", med(b["times"]) / med(a["times"]), 3)
        goal = perfplots.GOALS.get(key)
        glue_text(f"ab_{key}_goal", "n/a" if goal is None else ("meets" if med(a["ratios"]) <= goal else "misses"))
    after = [d for d in ch.saved_ab if d["file"].startswith("after_adapt")]
    glue_int("ab_runs", len(after))
    glue_text("ab_cpu", where(after[0]) if after else "n/a")
