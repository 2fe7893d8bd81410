"""Tables and figures of the Performance chapter from saved benchmark files
(:func:`fbctrl.perf.bench.load_saved`): each kernel against its floor, and the kernels' working memory
and how it grows with n and T.

Every kernel is shown as *time / floor* (>= 1, lower is better): ``K_ratio`` of ``bench adapt``,
and for pre-training the inverse of ``bench pretrain``'s rate ratios (``ratio_step_shapes``: the
step's own product shapes; ``ratio``: large squares). Files saved before the floors were measured
lack those keys; their rows say so and the figure shows what they have.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from ..fmt import bold, fmt_num, md_table
from ..perf.bench import FLOORS, GROWTH_KERNELS
from .plots import COLORS, label

__all__ = ["FLOOR_LABELS", "GOALS", "floor_entries", "floor_table", "plot_floors", "latest", "memory_table",
           "plot_memory", "before_after", "before_after_table", "cost_table"]

FLOOR_LABELS = {
    "bptt_c": "exact online BPTT+c, per trial",
    "rflo_c": "RFLO+c, per trial",
    "bptt_c_batch32": "32 runs of exact online BPTT+c in lockstep, per run-trial",
    "pretrain_step_shapes": "pre-training batch, vs. products at its own shapes",
    "pretrain_squares": "pre-training batch, vs. large square products",
}

# The goals of the speed-up work, as time / floor: exact online BPTT within 2x of its floor,
# RFLO within 1.5x, pre-training at 0.7 of the large-square matrix-product rate.
GOALS = {"bptt_c": 2.0, "rflo_c": 1.5, "pretrain_squares": 1 / 0.7}

MEMORY_LABELS = {"pretrain_step": "pre-training step", "bptt_c": "exact online BPTT+c trial",
                 "rflo_c": "RFLO+c trial", "bptt_c_batch32": "32 lockstep BPTT+c runs",
                 "bptt_c_batch32_per_run": "32 lockstep BPTT+c runs, per run"}


def _where(d: dict) -> str:
    r = d["result"]
    if r.get("device", "cpu") == "cpu":
        cpu = d.get('cpu', d.get('machine', '?')) + (f" ({d['cpu_id']})" if d.get("cpu_id") else "")
        return f"{cpu}, {r.get('threads', d.get('cores', '?'))} threads"
    return d.get("gpu", r["device"])


def floor_entries(saved: list[dict]) -> list[dict]:
    """One entry per saved kernel that has, or should have, a floor: ``{"key", "label", "file",
    "machine", "time", "floor", "ratio"}`` (time and floor in seconds, ratio = time / floor;
    floor and ratio None where the file predates the floors)."""
    out = []
    for d in saved:
        r = d["result"]
        base = {"file": d["file"], "machine": _where(d)}
        if d["benchmark"] == "adapt":
            for k in FLOORS:
                if k in r:
                    out.append({**base, "key": k, "time": r[k], "floor": r.get(f"{k}_floor"),
                                "ratio": r.get(f"{k}_ratio")})
        elif d["benchmark"] == "pretrain":
            spb = r["seconds_per_batch_per_seed"]
            for key, rate_ratio in (("pretrain_step_shapes", r.get("ratio_step_shapes")),
                                    ("pretrain_squares", r.get("ratio"))):
                # time / floor = the floor's rate / the batch's rate = 1 / rate ratio
                out.append({**base, "key": key, "time": spb, "floor": spb * rate_ratio if rate_ratio else None,
                            "ratio": 1 / rate_ratio if rate_ratio else None})
    for e in out:
        e["label"] = FLOOR_LABELS[e["key"]]
    return out


def floor_table(saved: list[dict]):
    """Markdown table: each kernel's time, its floor, time / floor and the goal."""
    fmt = lambda x: "—" if x is None else fmt_num(x, 3)  # noqa: E731
    rows = [[e["label"], e["file"], e["machine"], fmt(e["time"]),
             fmt(e["floor"]) if e["floor"] is not None else "not measured in this file", fmt(e["ratio"]),
             fmt(GOALS.get(e["key"]))] for e in floor_entries(saved)]
    return md_table(["kernel", "file", "machine", "time (s)", "floor (s)", "time / floor", "goal"], rows,
                         align="lllrrrr")


def plot_floors(saved: list[dict]):
    """Horizontal bars of time / floor (log axis) for every kernel with a floor in the saved
    files, with the goals as marks; None when no file has a floor."""
    es = [e for e in floor_entries(saved) if e["ratio"] is not None]
    if not es:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(es) + 0.9))
    y = np.arange(len(es))[::-1]
    ax.barh(y, [e["ratio"] for e in es], color=COLORS["fb"], height=0.6)
    goal_label = "goal"
    for yi, e in zip(y, es):
        if e["key"] in GOALS:
            ax.plot([GOALS[e["key"]]] * 2, [yi - 0.4, yi + 0.4], color=COLORS["nofb"], lw=2, label=goal_label)
            goal_label = None
        ax.text(e["ratio"], yi, f" {e['ratio']:.2f}", va="center")
    ax.axvline(1.0, color=COLORS["grey"], lw=0.8)
    ax.set_yticks(y, [f"{e['label']}\n{e['file']}, {e['machine']}" for e in es])
    ax.set_xscale("log")
    ax.set_xlim(0.8, max(3.0, 1.6 * max(e["ratio"] for e in es)))
    _plain_ticks(ax.xaxis, [t for t in (1, 1.5, 2, 3, 5, 10, 20, 50, 100) if t <= ax.get_xlim()[1]])
    label(ax, "time / floor (1 = the machine's floor)", legend=any(e["key"] in GOALS for e in es), loc="lower right")
    return fig


def latest(saved: list[dict], benchmark: str, device: str = "cpu") -> dict | None:
    """The last saved file (by name) of ``benchmark`` on ``device``, or None."""
    found = [d for d in saved if d["benchmark"] == benchmark and d["result"].get("device") == device]
    return found[-1] if found else None


def memory_table(mem: dict | None, command: str = "python -m fbctrl bench memory --save results/bench/memory_cpu.json"):
    """Markdown table of each kernel's working memory and the growth exponents; a note with the
    command to run when no memory benchmark is saved."""
    if mem is None:
        return Markdown(f"No memory benchmark saved yet: run `{command}`.")
    r = mem["result"]
    rows = [[MEMORY_LABELS.get(k, k), f"{r['n']}", f"{r['T']}", fmt_num(b / 2**20, 3)]
            for k, b in r["peak"].items()]
    for k in GROWTH_KERNELS:
        for axis, sizes in (("n", r["ns"]), ("T", r["Ts"])):
            g = r["growth"][k][axis]
            s = sorted(sizes)
            if g["ratio"] is not None:
                grown = f"{s[-2]} → {s[-1]}"
                rows.append([f"{MEMORY_LABELS[k]}: growth with {axis}", grown if axis == "n" else f"{r['n']}",
                             grown if axis == "T" else f"{r['T']}",
                             f"× {fmt_num(g['ratio'], 3)} (exponent {fmt_num(g['exponent'], 2)})"])
    return md_table(["kernel", "n", "T", "working memory (MiB)"], rows, align="lrrr")


def plot_memory(mem: dict | None):
    """Working memory of exact online BPTT+c and RFLO+c against n (at T) and against T (at n),
    log-log, with the slopes O(T n + n^2) allows (n^2, T) drawn through the largest points;
    None when no memory benchmark is saved."""
    if mem is None:
        return None
    r = mem["result"]
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.0))
    colors = {"bptt_c": COLORS["fb"], "rflo_c": COLORS["push"]}
    for ax, axis, sizes, slope, fixed in ((axes[0], "n", r["ns"], 2, f"T = {r['T']}"),
                                           (axes[1], "T", r["Ts"], 1, f"n = {r['n']}")):
        for k in GROWTH_KERNELS:
            ys = np.asarray(r[f"by_{axis}"][k], dtype=float) / 2**20
            ok = ys > 0
            ax.plot(np.asarray(sizes)[ok], ys[ok], "o-", color=colors.get(k), label=MEMORY_LABELS[k])
            if ok.any():
                x0, y0 = max(np.asarray(sizes)[ok]), ys[ok][np.argmax(np.asarray(sizes)[ok])]
                xs = np.asarray(sorted(sizes), dtype=float)
                ax.plot(xs, y0 * (xs / x0) ** slope, ":", color=colors.get(k), lw=0.9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_ticks(ax.xaxis, sorted(sizes))
        label(ax, axis, "working memory (MiB)" if axis == "n" else None,
              f"{fixed}; dotted: ∝ {axis}{'²' if slope == 2 else ''}")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    return fig


def _plain_ticks(axis, ticks) -> None:
    """Ticks at ``ticks`` labelled as plain numbers (a log axis would write 2 x 10^2)."""
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())



def before_after(saved_ab: list[dict]) -> list[dict]:
    """Each kernel's time / floor in a before/after comparison: the saved files of one folder named
    ``before_*`` and ``after_*`` (``bench ... --save``), run interleaved in one session on a quiet
    machine. One entry per kernel and side: ``{"key", "label", "side", "ratios", "times", "commit"}``."""
    out = {}
    for d in saved_ab:
        side = d["file"].split("_", 1)[0]
        if side not in ("before", "after"):
            continue
        for e in floor_entries([d]):
            if e["ratio"] is None:
                continue
            o = out.setdefault((e["key"], side), {"key": e["key"], "label": e["label"], "side": side, "ratios": [],
                                                  "times": [], "commit": d.get("commit", "?")})
            o["ratios"].append(e["ratio"])
            o["times"].append(e["time"])
    order = list(FLOOR_LABELS)
    return sorted(out.values(), key=lambda o: (order.index(o["key"]), o["side"] != "before"))


def _spread(xs) -> str:
    xs = sorted(xs)
    med = float(np.median(xs))
    return f"{fmt_num(med, 3)} [{fmt_num(xs[0], 3)}–{fmt_num(xs[-1], 3)}]" if len(xs) > 1 else fmt_num(med, 3)


def before_after_table(saved_ab: list[dict]):
    """Markdown table: per kernel, time / floor and seconds before and after, median [min–max] of
    the runs, with the goal; a kernel measured on one side only shows a dash on the other."""
    es = before_after(saved_ab)
    by = {(e["key"], e["side"]): e for e in es}
    rows = []
    for key in dict.fromkeys(e["key"] for e in es):
        b, a = by.get((key, "before")), by.get((key, "after"))
        cell = lambda e, what: (_spread(e[what]) + f" (n {len(e[what])})") if e else "—"  # noqa: E731
        rows.append([FLOOR_LABELS[key], cell(b, "ratios"), cell(a, "ratios"),
                     fmt_num(GOALS[key], 3) if key in GOALS else "—", cell(b, "times"), cell(a, "times")])
    return md_table(["kernel", "time / floor, before", "time / floor, after", "goal", "seconds, before",
                          "seconds, after"], rows, align="lrrrrr")


def cost_table(plan_file: dict | None, command: str = "python -m fbctrl paper --plan --save results/bench/paper_plan_cpu.json"):
    """Markdown table of the paper protocol's cost per stage: hours on this machine (measured
    rates), on a GPU (modelled, when present) and with the published code's reported rates for
    the same work; the totals last."""
    if plan_file is None:
        return Markdown(f"No plan saved yet: run `{command}`.")
    r = plan_file["result"]
    order = ("measured", "published code", "gpu_model")
    models = sorted(r["costs"], key=lambda m: order.index(m) if m in order else len(order))
    names = {"measured": "this CPU (measured), h", "gpu_model": "GPU (modelled, not measured), h",
             "published code": "published code, 2-core CPU (its reported rates), h"}
    rows, totals = [], dict.fromkeys(models, 0.0)
    for g in r["groups"]:
        for m in models:
            totals[m] += g["seconds"][m]
        rows.append([g["title"], str(g["units"])] + [fmt_num(g["seconds"][m] / 3600, 3) for m in models])
    rows.append([bold("total"), str(sum(g["units"] for g in r["groups"]))]
                + [bold(fmt_num(totals[m] / 3600, 3)) for m in models])
    return md_table(["stage", "units"] + [names.get(m, m) for m in models], rows, align="lr" + "r" * len(models))
