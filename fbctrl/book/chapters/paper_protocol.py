"""What the chapter "The paper's protocol" (``book/paper_protocol.ipynb``) shows, computed from the unit files alone.

The paper's protocol (``fbctrl.experiments.paper``) is cut into units, each one file: a pre-trained network,
an adaptation run, a sweep run. This module reads whatever units exist and returns the chapter's
numbers, sentences and tables; it runs nothing. A unit that is missing is reported as missing:
the chapter shows how far the protocol has got, and every verdict says on how many seeds it rests.

* :func:`progress` -- units done per stage of the plan, with the CPU time the finished ones took.
* :func:`networks` -- the finished networks: final pre-training losses and wall time.
* :func:`verdicts` -- the verdict table (``fbctrl.experiments.verdicts``): every claim under the published
  protocol and in its fair version, mean [95% CI], n seeds, p, and the verdict by the stated rule.
* :func:`verdict_summary_html` -- the introduction's compact verdict table (glued as HTML).
* :func:`load_report`, :func:`glue_report` and the ``*_table`` functions -- what the notebook
  calls: one read of the unit files, its sentences glued, each table with its header.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from IPython.display import Markdown

from ...experiments.network_units import damping_index, smallest_converged_damping, wrec_convergence, wrec_values
from ...experiments.metrics import final_loss
from ...experiments.paper import (AdaptUnit, PaperConfig, PretrainUnit, Variant, best_swept_rates, is_done,
                                  load_network_units, load_runs, plan, read_meta, sweep_table)
from ...experiments.protocol import CONDITIONS, Protocol
from ...experiments.stats import mean_ci, paired_effect, verdict
from ...experiments.verdicts import (BANDS, CLAIMS, COLUMNS, FAIR, FAIR_HELD_OUT, MARKS, RATE_CLAIMS, ROBUSTNESS,
                                     applies, footnotes, format_cell, format_effect, multiplicity,
                                     robustness_table, table_rows, verdict_table)
from ...fmt import Markup, Strong, bold, code, escape_markdown, fmt_num, html_table, markdown_table, md_table
from ...paths import repo_root
from ..glue import glue_html, glue_text

__all__ = ["ProgressRow", "config_at", "progress", "progress_markdown", "networks", "networks_markdown",
           "verdicts", "verdict_rows", "summary_sentence", "verdict_summary_rows", "verdict_summary_html", "Report",
           "load_report", "glue_report"]


def config_at(root, cfg: PaperConfig | None = None) -> PaperConfig:
    """The paper configuration with its checkpoint and result folders under ``root`` (the
    repository), whatever the working folder."""
    cfg = cfg or PaperConfig()
    root = Path(root)
    return replace(cfg, checkpoint_dir=str(root / cfg.checkpoint_dir), results_dir=str(root / cfg.results_dir),
                   shipped_dir=str(root / cfg.shipped_dir))


@dataclass(frozen=True)
class ProgressRow:
    stage: str
    done: int
    total: int
    blocked: str | None
    hours: float = 0.0              # wall time of the finished units (each ran on one core), in hours


def unit_hours(cfg: PaperConfig, unit) -> float:
    """Wall time of one finished unit in hours, as its file records it (a network's sidecar; a
    result file's meta: the adaptation and, where recorded, the matched-state evaluation after
    it); NaN where the file does not say."""
    p = unit.path(cfg)
    try:
        meta = json.loads(p.with_suffix(".json").read_text()) if unit.stage == "pretrain" else read_meta(p)
    except (OSError, ValueError, KeyError):
        return float("nan")
    return (float(meta.get("wall_time_s", float("nan"))) + float(meta.get("matched_wall_time_s", 0.0))) / 3600


def progress(cfg: PaperConfig) -> list[ProgressRow]:
    """Units done / planned for every stage of :func:`fbctrl.experiments.paper.plan`, in its order,
    with the compute hours the finished ones took."""
    rows = []
    for g in plan(cfg, include_done=True):
        done = [u for u in g.units if is_done(cfg, u)]
        hours = float(np.nansum([unit_hours(cfg, u) for u in done])) if done else 0.0
        rows.append(ProgressRow(g.title, len(done), len(g.units), g.blocked, hours))
    return rows


def progress_markdown(rows: list[ProgressRow]) -> str:
    """The table stage | done | planned | state | compute so far, with a total row."""
    body = []
    for r in rows:
        state = "complete" if r.done == r.total and r.total else (
            r.blocked if r.blocked else ("to run" if r.done < r.total else "—"))
        body.append([r.stage, str(r.done), str(r.total), state, f"{r.hours:.2f}"])
    done, total = sum(r.done for r in rows), sum(r.total for r in rows)
    body.append([bold("total"), str(done), str(total), "complete" if done == total else "in progress",
                 f"{sum(r.hours for r in rows):.2f}"])
    return markdown_table(["stage", "done", "planned", "state", "compute so far (h, one core)"], body, align="lrrlr")


def networks(cfg: PaperConfig) -> list[dict]:
    """One dict per finished network of the protocol (kind, seed, final losses, wall time in
    hours, the command and commit that trained it), from the checkpoints' sidecars."""
    out = []
    for kind in ("fb", "nofb"):
        for s in cfg.seeds(kind):
            p = PretrainUnit(kind, int(s)).path(cfg).with_suffix(".json")
            if not p.is_file():
                continue
            d = json.loads(p.read_text())
            fin = d.get("final", {})
            out.append({"kind": kind, "seed": int(s), "centre_out": fin.get("centre_out"),
                        "centre_out_rot30": fin.get("centre_out_rot30"), "random_ctrl_off": fin.get("random_ctrl_off"),
                        "cos_Wfb_WoutT": fin.get("cos_Wfb_WoutT"), "train_push": d.get("config", {}).get("train_push"),
                        "hours": d.get("wall_time_s", float("nan")) / 3600, "commit": d.get("commit", "?"),
                        "threads": d.get("threads")})
    return out


def networks_markdown(nets: list[dict]) -> str:
    """One row per network: kind, seed, final losses, cos(W_fb, W_out^T), wall time, commit."""
    body = []
    for d in nets:
        f = lambda k: fmt_num(d[k]) if d.get(k) is not None else "—"  # noqa: E731
        kind = "with" if d["kind"] == "fb" else "without"
        body.append([kind, str(d["seed"]), f("centre_out"), f("centre_out_rot30"), f("random_ctrl_off"),
                     f("cos_Wfb_WoutT") if d["kind"] == "fb" else "—", fmt_num(d["hours"], 2), code(d["commit"])])
    if not body:
        body.append(["no network has finished yet"] + ["—"] * 7)
    return markdown_table(["feedback", "seed", "centre-out loss", "rotated 30°", "controller off",
                           "cos(W_fb, W_outᵀ)", "wall time (h)", "commit"], body, align="lrrrrrrl")


def test_loss_runs(cfg: PaperConfig, rotation: float, condition, protocol=Protocol.PUBLISHED,
                   kind: str = "fb", variant: Variant = Variant.NONE) -> tuple[list[int], np.ndarray]:
    """The seeds with a finished, non-diverged run of ``condition`` at ``rotation`` (with
    ``variant``) and their test losses per trial ([seeds, trials]); ([], empty) when none has
    finished."""
    units = [AdaptUnit(kind, int(s), float(rotation), condition, Protocol.parse(protocol), cfg.trials,
                       variant=variant) for s in cfg.seeds(kind)]
    units = [u for u in units if is_done(cfg, u)]
    if not units:
        return [], np.zeros((0, cfg.trials))
    rec, metas = load_runs(cfg, units)
    keep = [i for i, m in enumerate(metas) if m["diverged_trial"] < 0]
    return [units[i].seed for i in keep], rec["test_loss"][keep]


def adaptation_figure_data(cfg: PaperConfig, protocol=Protocol.PUBLISHED, window: int = 10) -> tuple[dict, dict]:
    """What :func:`fbctrl.viz.chapters.paper_protocol.plot_paper_adaptation` draws: the test-loss curves of
    every condition at the sweep rotation ({condition: [seeds, trials]}) and the final losses (mean
    of the last ``window`` trials) per condition and rotation ({condition: {rotation: values}})."""
    curves, finals = {}, {}
    for c in CONDITIONS:
        for r in cfg.rotations:
            seeds, tl = test_loss_runs(cfg, r, c, protocol)
            if not seeds:
                continue
            if r == cfg.sweep_rotation:
                curves[c.name] = tl
            finals.setdefault(c.name, {})[float(r)] = final_loss(tl, min(window, tl.shape[1]))
    return curves, finals


def matched_alignment_summary(cfg: PaperConfig) -> dict | None:
    """The fair alignment claims in detail (Figures 4b-c at matched states, the published protocol's
    RFLO+c runs at the sweep rotation): per matched point, the on - off difference over seeds
    (``stats.paired_effect``), and for each measure the median within-seed standard error (the
    spread of one network's mean over its points and trials) against the effect and the
    between-seed standard deviation. None before any such run has finished."""
    units = [AdaptUnit("fb", int(s), cfg.sweep_rotation, CONDITIONS[0], Protocol.PUBLISHED, cfg.trials)
             for s in cfg.fb_seeds]
    units = [u for u in units if is_done(cfg, u)]
    if not units:
        return None
    rec, _ = load_runs(cfg, units)
    if "matched_local" not in rec:
        return None
    out = {"points": [int(t) for t in rec["matched_points"][0]], "seeds": [u.seed for u in units],
           "trials": int(rec["matched_local"].shape[-1])}
    for which in ("local", "global"):
        d = rec[f"matched_{which}"][:, :, 0] - rec[f"matched_{which}"][:, :, 1]       # [seeds, points, trials]
        flat = d.reshape(d.shape[0], -1)
        per_seed = flat.mean(axis=1)
        within = flat.std(axis=1, ddof=1) / np.sqrt(flat.shape[1])
        out[which] = {"per_point": [paired_effect(d[:, i].mean(axis=1)) for i in range(d.shape[1])],
                      "effect": float(per_seed.mean()), "within_se": float(np.median(within)),
                      "between_sd": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan")}
    return out


def matched_rows(summary: dict | None) -> list[list[str]]:
    """Rows trial | local on - off | global on - off (mean [95% CI], n) per matched point."""
    if summary is None:
        return []
    cell = lambda e: f"{fmt_num(e.mean, 2)} [{fmt_num(e.ci_low, 2)}, {fmt_num(e.ci_high, 2)}], n {e.n}"  # noqa: E731
    return [[str(t), cell(summary["local"]["per_point"][i]), cell(summary["global"]["per_point"][i])]
            for i, t in enumerate(summary["points"])]


def matched_sentence(summary: dict | None) -> str:
    """Is the spread within one network smaller than the effect? One sentence with the numbers."""
    if summary is None:
        return "No run with matched-state records has finished yet."
    parts = []
    for which in ("local", "global"):
        x = summary[which]
        parts.append(f"{which}: effect {fmt_num(x['effect'], 2)}, within-network standard error "
                     f"{fmt_num(x['within_se'], 2)} (median over networks), between-network standard deviation "
                     f"{fmt_num(x['between_sd'], 2)}")
    ok = all(abs(summary[w]["effect"]) > summary[w]["within_se"] for w in ("local", "global"))
    return (f"Each network's matched difference averages {len(summary['points'])} points × {summary['trials']} "
            f"trials per setting; {'; '.join(parts)}. The spread within a network is "
            f"{'smaller' if ok else 'not smaller'} than the effect in both measures"
            + (", and the interval is set by the spread between networks, not by the trials per network."
               if ok and all(summary[w]["between_sd"] > summary[w]["within_se"] for w in ("local", "global")) else "."))


def sweep_figure_data(cfg: PaperConfig) -> dict:
    """What :func:`fbctrl.viz.chapters.paper_protocol.plot_paper_sweep` draws: every condition's sweep table,
    the best rates, the published protocol's effective rates of the swept networks (from their
    30 deg result files), and the trials per rule."""
    tables = {c.name: sweep_table(cfg, c) for c in CONDITIONS}
    published = {}
    for c in CONDITIONS:
        us = [AdaptUnit("fb", int(s), cfg.sweep_rotation, c, Protocol.PUBLISHED, cfg.trials) for s in cfg.sweep_seeds]
        published[c.name] = [float(read_meta(u.path(cfg))["lr"]) for u in us if is_done(cfg, u)]
    return {"tables": tables, "best": best_swept_rates(cfg), "published_lr": published,
            "trials": {r.upper(): int(n) for r, n in cfg.sweep_trials.items()}, "rotation_deg": cfg.sweep_rotation}


def sweep_heatmap_data(cfg: PaperConfig) -> dict:
    """What :func:`fbctrl.viz.chapters.paper_protocol.plot_sweep_heatmaps` draws (Figure 8): per condition
    and swept rotation (the sweep rotation and ``sweep_rotations_beyond``) the geometric mean of
    the final test loss over the swept networks at every rate of its rule (NaN where no network
    finished), where any diverged, and the best rate; plus the runs done and planned."""
    rots = [cfg.sweep_rotation, *cfg.sweep_rotations_beyond]
    tabs = {(c.name, r): sweep_table(cfg, c, r) for c in CONDITIONS for r in rots}
    out = {"rotations": rots, "conditions": {}, "done": 0, "planned": 0}
    for c in CONDITIONS:
        rates = sorted({float(x) for r in rots for x in tabs[(c.name, r)]["rates"]})
        F = np.full((len(rots), len(rates)), np.nan)
        D = np.zeros((len(rots), len(rates)), dtype=bool)
        best = []
        for i, r in enumerate(rots):
            t = tabs[(c.name, r)]
            fin = np.where(t["diverged"], np.nan, t["final"])
            for lr, row, div in zip(t["rates"], fin, t["diverged"]):
                j = rates.index(float(lr))
                D[i, j] = bool(div.any())
                if np.isfinite(row).any():
                    F[i, j] = float(mean_ci(row[np.isfinite(row)][:, None], log=True)[0][0])
            out["done"] += int(np.isfinite(t["final"]).sum() + t["diverged"].sum())
            out["planned"] += int(t["final"].size)
            best.append(best_swept_rates(cfg, r)[c.name]["lr"])
        out["conditions"][c.name] = {"rates": rates, "final": F, "diverged": D, "best": best}
    return out


def best_rate_rows(data: dict) -> list[list[str]]:
    """Rows condition | swept rates | best rate | bracketed | mean final loss at it | published rate(s)."""
    rows = []
    for name, b in data["best"].items():
        tab = data["tables"][name]
        done = int(np.isfinite(tab["final"]).sum() + tab["diverged"].sum())
        pub = data["published_lr"].get(name, [])
        pub_txt = "—" if not pub else (fmt_num(pub[0], 2) if max(pub) / min(pub) < 1.001 else
                                       f"{fmt_num(min(pub), 2)} to {fmt_num(max(pub), 2)}")
        if b["lr"] is None:
            rows.append([name, f"{len(b['rates'])} ({done} of {tab['final'].size} runs done)", "—", "—", "—", pub_txt])
            continue
        i = b["rates"].index(b["lr"])
        rows.append([name, str(len(b["rates"])), fmt_num(b["lr"], 2), "yes" if b["bracketed"] else "no (at an edge)",
                     fmt_num(b["mean_final"][i], 3), pub_txt])
    return rows


def efficiency_sentence(cfg: PaperConfig) -> str:
    """Figure 5a's published definition, decomposed: the as-published ratio RFLO+c / RFLO against
    the ratio of the two runs' rates times the scale-free ratio (the published definition keeps
    the rate in the numerator only), with the other definitions' verdicts."""
    claim = next(c for c in RATE_CLAIMS if c.key == "efficiency")
    cols = ("as published", "efficiency per trial, scale-free", "efficiency whole run", FAIR.name)
    res = {r.column: r for r in verdict_table(cfg, (claim,), cols)}
    pub, free = res["as published"], res["efficiency per trial, scale-free"]
    if pub.effect.n == 0 or free.effect.n == 0:
        return "Figure 5a: no runs yet."
    lr = {}
    for c in CONDITIONS[:2]:
        us = [AdaptUnit("fb", int(s), cfg.sweep_rotation, c, Protocol.PUBLISHED, cfg.trials) for s in pub.seeds]
        lr[c.name] = np.array([read_meta(u.path(cfg))["lr"] for u in us])
    rate = float(np.exp(np.mean(np.log(lr["RFLO+c"] / lr["RFLO"]))))
    others = "; ".join(f"{name}: {fmt_num(r.effect.mean, 3)}, {r.verdict.value}" for name, r in
                       (("scale-free per trial", free), ("whole run", res["efficiency whole run"]),
                        ("whole run at equal path, best rates", res[FAIR.name])) if r.effect.n)
    return (f"Figure 5a as the published code measures it, at {cfg.sweep_rotation:g}°: RFLO+c / RFLO = "
            f"{fmt_num(pub.effect.mean, 3)}. The definition divides the trial's weight change by the summed "
            f"updates before the learning rate, so it scales with the rate, and under the published protocol "
            f"RFLO+c runs at {fmt_num(rate, 3)} times RFLO's rate: {fmt_num(rate, 3)} × the scale-free ratio "
            f"{fmt_num(free.effect.mean, 3)} = {fmt_num(rate * free.effect.mean, 3)}. Without the rate the "
            f"ratio reads {others}.")


def nofb_rows(cfg: PaperConfig, window: int = 10) -> list[list[str]]:
    """Rows condition | networks without feedback | networks with feedback: the final test loss
    (mean of the last ``window`` trials) of RFLO and BPTT at the networks-without-feedback
    rotation under the published protocol, geometric mean [95% t interval] and n. The two kinds
    are different networks, so nothing is paired and no verdict is drawn."""
    def cell(vals):
        if not len(vals):
            return "no runs yet"
        m, lo, hi = mean_ci(np.asarray(vals, dtype=np.float64)[:, None], log=True)
        ci = f" [{fmt_num(lo[0], 3)}, {fmt_num(hi[0], 3)}]" if np.isfinite(lo[0]) else ""
        return f"{fmt_num(m[0], 3)}{ci}, n {len(vals)}"

    rows = []
    for c in (c for c in CONDITIONS if not c.controller_on):
        out = [c.name]
        for kind in ("nofb", "fb"):
            seeds, tl = test_loss_runs(cfg, cfg.nofb_rotation, c, Protocol.PUBLISHED, kind=kind)
            out.append(cell(final_loss(tl, min(window, tl.shape[1])) if seeds else []))
        rows.append(out)
    return rows


def verdicts(cfg: PaperConfig, marks: bool = True):
    """The verdict table's results (``fbctrl.experiments.verdicts.verdict_table``) from the unit
    files, each cell with the marks of what its verdict rests on (``marks``)."""
    return verdict_table(cfg, marks=marks)


def _legend(results) -> str:
    """The legend of the marks the cells carry (a mark no cell carries is not listed)."""
    used = {m.symbol for r in results for m in r.marks}
    return "; ".join(f"{sym} {text}" for sym, text in MARKS.values() if sym in used)


def footnotes_html(results) -> str:
    """The marks' legend and one footnote per marked cell, as an HTML list (glued into the
    introduction under its verdict table)."""
    notes = footnotes(results)
    if not notes:
        return "<p>No verdict rests on a single convention, damping, stage or band, and none is an artefact.</p>"
    legend = _legend(results)
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f'<div class="verdict-footnotes"><p>Marks: {html.escape(legend)}.</p><ul>{items}</ul></div>'


def footnotes_markdown(results) -> str:
    """The marks' legend and one footnote per marked cell, as Markdown lines."""
    notes = footnotes(results)
    if not notes:
        return "No verdict rests on a single convention, damping, stage or band, and none is an artefact."
    legend = _legend(results)
    return f"Marks: {legend}.\n\n" + "\n".join(f"- {n}" for n in notes)


def band_rows() -> list[list[str]]:
    """Rows claims | negligible when | why: each kind of claim's smallest effect of interest."""
    kinds = {"loss": ("Fig 3b (final test loss ratios)", True), "cosine": (
        "Figs 2c, 4b, 4c, 5b, W_rec Newton (cosine differences)", False),
        "norm": ("Fig 4a (Jacobian norm ratio)", True), "efficiency": ("Fig 5a (efficiency ratios)", True)}
    return [[what, (f"ratio within {BANDS[k].text(True)}" if log else f"difference within {BANDS[k].text(False)}"),
             BANDS[k].reason] for k, (what, log) in kinds.items()]


def verdict_rows(results) -> list[list[str]]:
    """Rows figure | claim | as published | verdict | fair | verdict (``verdicts.table_rows``)."""
    return table_rows(results)


def summary_sentence(rows: list[ProgressRow], nets: list[dict], results) -> str:
    """One sentence: how far the protocol has got and on how many seeds the verdicts rest."""
    done = sum(r.done for r in rows)
    total = sum(r.total for r in rows)
    fb = sum(1 for d in nets if d["kind"] == "fb")
    nofb = sum(1 for d in nets if d["kind"] == "nofb")
    ns = sorted({r.effect.n for r in results if r.effect.n})
    hours = float(np.nansum([d["hours"] for d in nets]))
    compute = float(sum(r.hours for r in rows))
    state, so_far = ("complete", "") if done == total else ("in progress", " so far")
    if not ns:
        seeds = "no verdict rests on a network seed yet"
    elif len(ns) == 1:
        seeds = f"every verdict with data rests on {ns[0]} network seed{'s' if ns[0] != 1 else ''}"
    else:
        seeds = f"the verdicts below rest on {ns[0]} to {ns[-1]} network seeds"
    return (f"The protocol is {state}: {done} of {total} units are computed ({fb} of 10 networks with feedback "
            f"and {nofb} of 10 without; {compute:.1f} h of compute{so_far}, each unit on one CPU core, {hours:.1f} h "
            f"of it pre-training); {seeds}, and a verdict with fewer than two seeds is inconclusive by rule.")


COLUMN_KEYS = {"as published": "pub", "fair": "fair"}


def glue_key(claim_key: str, column: str, what: str = "cell") -> str:
    """The glue key of one verdict-table cell: ``pp_<claim>_<pub|fair>`` (the effect) and
    ``pp_<claim>_<pub|fair>_verdict``."""
    return f"pp_{claim_key}_{COLUMN_KEYS[column]}" + ("_verdict" if what == "verdict" else "")


def glue_verdict_cells(results) -> None:
    """Glue every cell of the verdict table (read by the Introduction's table)."""
    for r in results:
        glue_text(glue_key(r.key, r.column), format_cell(r))
        glue_text(glue_key(r.key, r.column, "verdict"), r.verdict.value)
        glue_text(glue_key(r.key, r.column) + "_marked", r.verdict.value + "".join(f" {m.symbol}" for m in r.marks))


def held_out_rows(cfg: PaperConfig) -> list[list[str]]:
    """Rows claim | fair (all networks) | verdict | fair (held-out networks) | verdict for the
    claims whose fair cells run at the swept rates: the same cells on the networks the sweep did
    not use, so that no network both chose a rate and judges it."""
    res = verdict_table(cfg, RATE_CLAIMS, (FAIR.name, FAIR_HELD_OUT.name))
    rows = []
    for c in RATE_CLAIMS:
        a, b = (next(r for r in res if r.key == c.key and r.column == col) for col in (FAIR.name, FAIR_HELD_OUT.name))
        rows.append([f"{c.figure}: {c.claim}", format_cell(a), a.verdict.value, format_cell(b), b.verdict.value])
    return rows


def multiplicity_rows(results) -> list[list[str]]:
    """Rows claim | column | p | BH-adjusted p | verdict | after the correction, for both columns
    (``fbctrl.experiments.verdicts.multiplicity``, each column one family of tests)."""
    rows = []
    for col in COLUMN_KEYS:
        for a in multiplicity(results, col):
            r = a.result
            if r.effect.n < 2:
                continue
            after = (Markup(f"{escape_markdown(a.verdict_adjusted.value)} ({bold('changes')})")
                     if a.verdict_adjusted != r.verdict else a.verdict_adjusted.value)
            rows.append([f"{r.figure}: {r.claim}", col, fmt_num(a.p, 2), fmt_num(a.p_adjusted, 2), r.verdict.value,
                         after])
    return rows


def multiplicity_sentence(results) -> str:
    """One sentence: which verdicts (if any) the Benjamini-Hochberg correction changes."""
    parts = []
    for col in COLUMN_KEYS:
        adj = [a for a in multiplicity(results, col) if a.result.effect.n >= 2]
        changed = [a for a in adj if a.verdict_adjusted != a.result.verdict]
        what = ("changes none of its verdicts" if not changed else
                "turns " + "; ".join(f"{a.result.figure} ({a.result.claim}) from {a.result.verdict.value} to "
                                     f"{a.verdict_adjusted.value}" for a in changed))
        parts.append(f"over the {len(adj)} tests of the \"{col}\" column it {what}")
    return "Corrected for testing many claims at once (Benjamini-Hochberg, false discovery rate 0.05): " + \
        "; ".join(parts) + "."


def _flips(base, changed) -> str:
    """Does one change flip the as-published verdict? Not judged ("—") while either side rests on
    fewer than two seeds (a verdict that is inconclusive by rule, not by the data); a comparison
    on fewer networks than the as-published cell says so."""
    nb, nc = base.effect.n, changed.effect.n
    if min(nb, nc) < 2:
        return "—"
    on = f" (on {nc} of {nb} networks)" if nc < nb else ""
    return Markup(bold("flips") + on) if changed.verdict != base.verdict else "no" + on


def robustness_rows(cfg: PaperConfig) -> list[list[str]]:
    """Rows claim | change | effect | verdict | flips? of ``fbctrl.experiments.verdicts.robustness_table``:
    for every claim, its as-published cell (the reference of its flips) and each single change
    that applies to it, each change's row named by the claim's short label."""
    short = {c.key: c.short for c in CLAIMS}
    rows = []
    for base, changed in robustness_table(cfg):
        rows.append([f"{base.figure}: {base.claim}", "as published", format_cell(base), base.verdict.value,
                     "reference"])
        for r in changed:
            rows.append([f"{base.figure}: {short.get(base.key) or base.claim}", r.column, format_cell(r),
                         r.verdict.value, _flips(base, r)])
    return rows


def wrec_convergence_rows(cfg: PaperConfig) -> list[list[str]]:
    """Rows networks | network seed | per damping of the grid: converged solves / solves (largest
    true relative residual) | the smallest damping at which every solve of the network converged:
    where MINRES converges for the W_rec Newton comparison, per network."""

    tol = cfg.network_measures.wrec_converged
    rows = []
    for source, name in (("published", "published"), ("shipped", "pre-trained with pushes")):
        seeds, recs, _ = load_network_units(cfg, "wrec_newton", source)
        for s, rec in zip(seeds, recs):
            conv = wrec_convergence(rec, tol)
            best = smallest_converged_damping([rec], tol)
            rows.append([name, str(s)] + [f"{c['converged']}/{c['solves']} ({fmt_num(c['max_residual'], 2)})"
                                          for c in conv] + [fmt_num(best, 2) if best is not None else "none"])
    return rows


def wrec_convergence_header(cfg: PaperConfig) -> list[str]:
    """Networks | seed | one column per damping (converged / solves, largest residual) | the smallest
    damping at which all converged."""
    return (["networks", "seed"] + [f"damping {d:g}" for d in cfg.network_measures.wrec_dampings]
            + ["all converged from damping"])


def wrec_damping_effects(cfg: PaperConfig) -> list[dict]:
    """The W_rec claim (RFLO's update vs the Newton step, controller on minus off, converged
    solves only) on the published networks at every damping of the grid, over all steps and per
    step of the trial, then with the gradient in the Newton step's place: a list of
    {"direction", "damping", "step", "effect" (PairedEffect), "verdict"}, each judged by the
    four-word rule with the claim's cosine band, as the verdict table judges it. It shows where the fair
    cell's damping sits among its neighbours, and which step carries the effect."""
    tol = cfg.network_measures.wrec_converged
    seeds, recs, _ = load_network_units(cfg, "wrec_newton", "published")
    if not recs:
        return []
    steps = [None] + [int(k) for k in np.asarray(recs[0]["steps"])]
    grid = [("newton", float(d)) for d in cfg.network_measures.wrec_dampings] + [("gradient", float("nan"))]
    out = []
    for direction, damping in grid:
        for step in steps:
            w = [wrec_values(r, damping, tol, direction=direction, step=step) for r in recs]
            e = paired_effect([x["on"] for x in w], [x["off"] for x in w])
            out.append({"direction": direction, "damping": damping, "step": step, "effect": e,
                        "verdict": verdict(e, +1, BANDS["cosine"]).value})
    return out


def wrec_damping_rows(effects: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of :func:`wrec_damping_effects`: one row per damping (and the gradient),
    one column per step selection, each cell 'mean [95% CI], n, p: verdict'."""
    if not effects:
        return ["direction"], []
    steps = list(dict.fromkeys(e["step"] for e in effects))
    header = ["direction"] + ["all steps" if s is None else f"step {s}" for s in steps]
    rows: dict = {}
    for e in effects:
        name = f"Newton, damping {e['damping']:g}" if e["direction"] == "newton" else "gradient (no solve)"
        cell = f"{format_effect(e['effect'])}: {e['verdict']}" if e["effect"].n else "no converged solve"
        rows.setdefault(name, []).append(cell)
    return header, [[k] + v for k, v in rows.items()]


def fair_wrec_damping(cfg: PaperConfig) -> float | None:
    """The fair W_rec cell's damping: the grid's smallest at which every solve of every published
    network converged (None without one)."""
    _, recs, _ = load_network_units(cfg, "wrec_newton", "published")
    return smallest_converged_damping(recs, cfg.network_measures.wrec_converged)


def wrec_newton_vs_gradient(cfg: PaperConfig, damping: float) -> dict:
    """{step: (on, off)}: the mean over published networks and targets of cos(-gradient, damped
    Newton step) at ``damping``, controller on and off (every solve: the fair damping is one at
    which all converged). Near 1 the damped step has turned into the gradient."""
    _, recs, _ = load_network_units(cfg, "wrec_newton", "published")
    if not recs:
        return {}
    out = {}
    for j, step in enumerate(int(k) for k in np.asarray(recs[0]["steps"])):
        c = np.stack([np.asarray(r["cos_grad_newton"])[:, :, j, damping_index(r, damping)] for r in recs])
        out[step] = (float(c[:, :, 0].mean()), float(c[:, :, 1].mean()))
    return out


def wrec_damping_sentence(effects: list[dict], fair_damping: float | None, newton_vs_gradient: dict | None = None) -> str:
    """The verdict of the W_rec claim (all steps) at each damping of the grid, and at the fair
    cell's damping which steps agree (with :func:`wrec_newton_vs_gradient` at that damping)."""
    allsteps = [e for e in effects if e["step"] is None and e["direction"] == "newton"]
    if not allsteps:
        return "No network's W_rec file exists yet."
    by = ", ".join(f"{e['damping']:g}: {e['verdict'] if e['effect'].n else 'no converged solve'}"
                   for e in allsteps)
    text = f"Verdict of the W_rec claim over all steps, by damping: {by}."
    if fair_damping is not None:
        per_step = [e for e in effects if e["direction"] == "newton" and e["step"] is not None
                    and np.isclose(e["damping"], fair_damping)]
        text += (f" At damping {fair_damping:g}, the fair cell's, per step: "
                 + "; ".join(f"step {e['step']} {format_effect(e['effect'])}, {e['verdict']}" for e in per_step) + ".")
    if fair_damping is not None and newton_vs_gradient:
        text += (f" There, cos(gradient, damped Newton step), controller on vs off: "
                 + "; ".join(f"step {k} {on:.2f} vs {off:.2f}" for k, (on, off) in newton_vs_gradient.items()) + ".")
    return text


def variant_rows(cfg: PaperConfig, window: int = 10) -> list[list[str]]:
    """Rows change | condition | final loss as published | with the change | ratio (change /
    published), paired per network, mean [95% t interval], n, p: how much each variant of the
    published code (the integrated error from e_0, online BPTT with the current weights) moves
    the final test loss itself, at the robustness rotation, for the conditions it was run on."""
    rows = []
    for variant, label in ((Variant.ERROR_START_E0, "integrated error from e_0"),
                           (Variant.BPTT_CURRENT, "online BPTT with the current weights")):
        for c in CONDITIONS:
            if variant is Variant.BPTT_CURRENT and c.rule.value != "bptt":
                continue
            s0, base = test_loss_runs(cfg, cfg.sweep_rotation, c)
            s1, changed = test_loss_runs(cfg, cfg.sweep_rotation, c, variant=variant)
            common = [s for s in s1 if s in s0]
            if not common:
                rows.append([label, c.name, "—", "no runs yet", "—"])
                continue
            f0 = final_loss(base[[s0.index(s) for s in common]], min(window, base.shape[1]))
            f1 = final_loss(changed[[s1.index(s) for s in common]], min(window, changed.shape[1]))
            rows.append([label, c.name, fmt_num(float(np.exp(np.log(f0).mean())), 3),
                         fmt_num(float(np.exp(np.log(f1).mean())), 3), format_effect(paired_effect(f1, f0, log=True))])
    return rows


# ---------------------------------------------------------------------------------------------
# The stage of learning (Figures 4b, 4c, 5a per trial window and at matched states)
# ---------------------------------------------------------------------------------------------

STAGE_CLAIMS = ("align_local", "align_global", "efficiency")


def stage_results(cfg: PaperConfig) -> dict:
    """{claim key: (as-published result, [results of its stage and gradient-convention rows])}:
    per trial window along the runs, at each matched point, at the pre-trained weights with the
    fed-back error detached and kept, and the matched-state efficiency."""
    out = {}
    for key in STAGE_CLAIMS:
        c = next(x for x in CLAIMS if x.key == key)
        cols = [col for col in ROBUSTNESS if applies(c, col) and (col.group == "stage" or col.gradient != "detached"
                                                                     or col.efficiency in ("matched", "per_trial"))]
        res = verdict_table(cfg, (c,), ("as published",) + tuple(cols))
        out[key] = (res[0], res[1:])
    return out


def stage_rows(stage: dict) -> list[list[str]]:
    """Rows claim | stage or convention | effect | verdict."""
    rows = []
    for key, (base, rs) in stage.items():
        rows.append([f"{base.figure}: {base.claim}", "as published (whole run)", format_cell(base), base.verdict.value])
        rows += [[base.figure, r.column, format_cell(r), r.verdict.value] for r in rs
                 if not r.definition.startswith("no aligned trial")]
    return rows


def _words(rs) -> list[str]:
    return [r.verdict.value for r in rs if r.effect.n >= 2]


def _conclusion(matched: list, what: str) -> str:
    """What the matched-state verdicts say about the stage of learning, by rule."""
    words = _words(matched)
    if not words:
        return (f"the matched-state {what} has not been computed yet (python -m fbctrl paper --only network), so "
                "the stage of learning is not separated from the controller")
    if all(w == "negligible" for w in words):
        return (f"from the same weights the controller makes no material difference to {what} at any point: "
                "what differs along the runs is the stage of learning, not the controller")
    if len(set(words)) == 1:
        return (f"from the same weights {what} {words[0]} with the paper at every point, so the effect is not "
                "only a difference of stage")
    pts = ", ".join(f"{r.column.split('trial ')[-1].replace(' weights', '')}: {r.verdict.value}" for r in matched
                    if r.effect.n >= 2)
    return f"from the same weights the verdict on {what} changes with the stage ({pts})"


def stage_sentence(key: str, stage: dict) -> str:
    """One sentence per claim: the effect per trial window along the runs, at matched states, and
    what the pattern means (:func:`_conclusion`)."""
    base, rs = stage[key]
    if base.effect.n == 0:
        return f"{base.figure}: no runs yet."
    along = [r for r in rs if COLUMNS[r.column].trial_window is not None and r.effect.n >= 2]
    matched = [r for r in rs if COLUMNS[r.column].matched_point is not None
               or COLUMNS[r.column].efficiency == "matched"]
    fmt = lambda r: f"{fmt_num(r.effect.mean, 2)} ({r.verdict.value})"  # noqa: E731
    win = "; ".join(f"{r.column.split('trials ')[-1]}: {fmt(r)}" for r in along)
    what = {"align_local": "local alignment", "align_global": "global alignment",
            "efficiency": "scale-free efficiency"}[key]
    unit = "RFLO+c / RFLO" if key == "efficiency" else "RFLO+c minus RFLO"
    head = f"{base.figure}, {what} ({unit}) along the runs by trials: {win}" if win else f"{base.figure}: {what}"
    mt = "; ".join(f"{r.column.split(', ')[-1] if COLUMNS[r.column].matched_point is not None else 'pre-trained'}: "
                   f"{fmt(r)}" for r in matched if r.effect.n >= 2)
    return f"{head}" + (f"; at matched states, {mt}" if mt else "") + f". So {_conclusion(matched, what)}" + \
        _stage_gap(along, matched, key == "efficiency") + "."


def _stage_gap(along: list, matched: list, log: bool) -> str:
    """Where the gap along the runs is larger than at any matched point: say in which window."""
    size = (lambda r: abs(np.log(r.effect.mean))) if log else (lambda r: abs(r.effect.mean))  # noqa: E731
    m = [r for r in matched if r.effect.n >= 2]
    if not along or not m:
        return ""
    top = max(along, key=size)
    if size(top) <= 2 * max(size(r) for r in m):
        return ""
    return (f"; the gap along the runs is largest in trials {top.column.split('trials ')[-1]} "
            f"({fmt_num(top.effect.mean, 2)}), more than twice the largest at matched states: there the two runs "
            "are at different stages of learning (the published protocol runs RFLO+c at ten times RFLO's rate, so "
            "after the same trials it has learned more), and that difference of stage carries most of the published "
            "effect")


def loop_sentence(stage: dict) -> str:
    """Figures 4b and 4c at the pre-trained weights under both conventions of the exact gradient."""
    parts = []
    for key in ("align_local", "align_global"):
        rs = {COLUMNS[r.column].gradient: r for r in stage[key][1] if COLUMNS[r.column].gradient != "detached"}
        det, loop = rs.get("detached-pretrained"), rs.get("loop")
        if loop is None or loop.effect.n < 2:
            parts.append(f"{stage[key][0].figure}: not computed yet")
            continue
        flip = "the same verdict" if loop.verdict == det.verdict else f"{det.verdict.value} becomes {loop.verdict.value}"
        parts.append(f"{stage[key][0].figure}: {fmt_num(det.effect.mean, 2)} detached, {fmt_num(loop.effect.mean, 2)} "
                     f"with the loop kept ({flip})")
    return ("At the pre-trained weights, the controller's effect on the alignment (on minus off) with the fed-back "
            "error detached from the exact gradient, as the published code does, and with the loop kept: "
            + "; ".join(parts) + ". The run to compute it: python -m fbctrl paper --only network.")


def figure8_sentence(data: dict) -> str:
    """How far Figure 8's sweep has got, and each condition's best rate with the rotations it is
    best at ("RFLO+c 1.5 × 10⁻⁴ at 30°, 40°"; a rotation whose sweep is not finished: "not yet")."""
    parts = []
    for c, d in data["conditions"].items():
        by_rate: dict = {}
        for r, b in zip(data["rotations"], d["best"]):
            by_rate.setdefault(b, []).append(f"{r:g}°")
        parts.append(f"{c} " + ", ".join(f"{fmt_num(b, 2) if b else 'not yet'} at {', '.join(rs)}"
                                        for b, rs in by_rate.items()))
    return (f"{data['done']} of {data['planned']} sweep runs at {', '.join(f'{r:g}°' for r in data['rotations'])} "
            f"have finished. Best rates: {'; '.join(parts)}.")


# The introduction's verdict table: per claim family (a key, or a key prefix followed by the
# rotation), a short claim and the effect the cells measure, written out. A claim not listed
# here still gets its row, from the claim's own short label.
SUMMARY_TEXT = {
    "final_loss_rflo": ("RFLO+c ends lower", "RFLO / RFLO+c final loss"),
    "final_loss_bptt": ("BPTT+c ends lower", "BPTT / BPTT+c final loss"),
    "align_local": ("RFLO+c aligns better, per step", "local alignment, RFLO+c − RFLO"),
    "align_global": ("RFLO+c aligns better, per trial", "global alignment, RFLO+c − RFLO"),
    "efficiency": ("RFLO+c more efficient", "efficiency, RFLO+c / RFLO"),
    "activity_fig2c": ("control follows the activity gradient", "cos(u, −∇) − that of a random W_fb"),
    "jacobian_fig4a": ("control decouples from the past", "Jacobian norm, on / off"),
    "activity_newton_fig5b": ("control is closer to Newton", "cos(u, Newton) − cos(u, −∇)"),
    "wrec_newton": ("RFLO+c closer to the W_rec Newton step", "cos(RFLO, Newton), on − off"),
}
FIGURE_ORDER = ("Fig 1a", "Fig 2c", "Fig 3b", "Fig 4a", "Fig 4b", "Fig 4c", "Fig 5a", "Fig 5b")
SUMMARY_HEADER = ["claim", "effect, and the side that favours the paper", "as published", "fair"]


def _summary_text(claim) -> tuple[str, str, str]:
    """(figure, short claim, effect with the paper's side) of one claim of ``verdicts.CLAIMS``."""
    family = next((k for k in SUMMARY_TEXT if claim.key == k or claim.key.startswith(k + "_")), None)
    short, effect = SUMMARY_TEXT.get(family, (claim.short or claim.claim, claim.short or claim.claim))
    if family in ("final_loss_rflo", "final_loss_bptt", "efficiency") and claim.rotation is not None:
        short = f"{short}, {claim.rotation:g}°"
    null = 1 if claim.log else 0
    figure = "code" if "(code)" in claim.figure else claim.figure
    return figure, short, f"{effect}; {'>' if claim.paper_sign > 0 else '<'} {null} favours the paper"


def verdict_summary_rows(results, claims=CLAIMS) -> list[list]:
    """One row per claim: figure and short claim | effect and the paper's side | as published |
    fair, each effect cell its verdict (bold) over its cell of ``verdicts.table_rows`` (mean
    [95% CI], then n and p), the claims in the paper's figure order."""
    by_key = {c.key: c for c in claims}
    keys = [k for k in dict.fromkeys(r.key for r in results) if k in by_key]
    families = list(SUMMARY_TEXT)

    def order(key):
        c = by_key[key]
        family = next((i for i, f in enumerate(families) if key == f or key.startswith(f + "_")), len(families))
        figure = FIGURE_ORDER.index(c.figure) if c.figure in FIGURE_ORDER else len(FIGURE_ORDER)
        return figure, family, c.rotation or 0.0, keys.index(key)

    rows = []
    for key in sorted(keys, key=order):
        (row,) = table_rows([r for r in results if r.key == key])
        _, _, pub, pub_verdict, fair, fair_verdict = row
        figure, short, effect = _summary_text(by_key[key])
        rows.append([[Strong(figure), short], effect, _summary_cell(pub_verdict, pub), _summary_cell(fair_verdict, fair)])
    return rows


def _summary_cell(word: str, cell: str) -> list:
    """The verdict (bold) over the effect, its interval on one line and n, p on the next."""
    head, sep, tail = (cell or "—").partition(", n ")
    return [Strong(word or "—"), head] + ([f"n {tail}"] if sep else [])


def verdict_summary_html(results, claims=CLAIMS) -> str:
    """The introduction's verdict table (:func:`verdict_summary_rows`) as HTML, to glue across pages."""
    return html_table(SUMMARY_HEADER, verdict_summary_rows(results, claims), align="llll", css_class="verdict-summary")


@dataclass(frozen=True)
class Report:
    """Everything the chapter reads from the unit files once, for its sentences and tables."""

    cfg: PaperConfig
    progress: list
    networks: list
    results: list
    matched: dict | None
    wrec: list
    wrec_damping: float | None


def load_report(root=None) -> Report:
    """Read the unit files under ``root`` (a clone of the book's repository; None: the one this
    package belongs to) into a :class:`Report`; computes nothing."""
    if root is not None and not Path(str(root)).is_dir():
        raise ValueError(f"root must be a folder (a clone of the book's repository) or None, got {root!r}")
    cfg = config_at(root if root is not None else repo_root())
    rows, nets = progress(cfg), networks(cfg)
    return Report(cfg, rows, nets, verdicts(cfg), matched_alignment_summary(cfg), wrec_damping_effects(cfg),
                  fair_wrec_damping(cfg))


def glue_report(rep: Report) -> None:
    """Glue the chapter's sentences, every verdict cell and the introduction's verdict table."""
    cfg = rep.cfg
    glue_text("summary", summary_sentence(rep.progress, rep.networks, rep.results))
    glue_text("scale", f"{len(cfg.seeds('fb'))} networks with feedback and {len(cfg.seeds('nofb'))} without, "
              f"pre-trained as the published code does, {cfg.trials} adaptation trials per run")
    glue_verdict_cells(rep.results)
    glue_html("verdict_summary", verdict_summary_html(rep.results))
    glue_html("verdict_footnotes", footnotes_html(rep.results))
    glue_text("multiplicity", multiplicity_sentence(rep.results))
    glue_text("matched_spread", matched_sentence(rep.matched))
    glue_text("efficiency_note", efficiency_sentence(cfg))
    newton_vs_gradient = rep.wrec_damping and wrec_newton_vs_gradient(cfg, rep.wrec_damping)
    glue_text("wrec_note", wrec_damping_sentence(rep.wrec, rep.wrec_damping, newton_vs_gradient))
    glue_text("sweep_seeds", ", ".join(map(str, cfg.sweep_seeds)))
    glue_text("held_out_seeds", ", ".join(str(s) for s in cfg.fb_seeds if s not in cfg.sweep_seeds))


# The chapter's tables, each with its header: the notebook shows them with one call.
def progress_table(rep: Report):
    return Markdown(progress_markdown(rep.progress))


def networks_table(rep: Report):
    return Markdown(networks_markdown(rep.networks))


def nofb_table(rep: Report):
    return md_table(["condition", "networks without feedback", "networks with feedback"], nofb_rows(rep.cfg),
                    align="lll")


def best_rate_table(sweep: dict):
    return md_table(["condition", "rates swept", "best rate", "bracketed", "final loss at the best rate",
                     "published rate"], best_rate_rows(sweep), align="llllll")


def verdict_detail_table(rep: Report):
    return md_table(["figure", "claim", "as published", "verdict", "fair", "verdict"], verdict_rows(rep.results),
                    align="llllll")


def multiplicity_table(rep: Report):
    return md_table(["claim", "column", "p", "adjusted p", "verdict", "after the correction"],
                    multiplicity_rows(rep.results), align="llllll")


def held_out_table(rep: Report):
    return md_table(["claim", "fair, all networks", "verdict", "fair, held-out networks", "verdict"],
                    held_out_rows(rep.cfg), align="lllll")


def matched_table(rep: Report):
    rows = matched_rows(rep.matched) or [["no run with matched states yet", "—", "—"]]
    return md_table(["weights of trial", "local: on − off", "global: on − off"], rows, align="lll")


def robustness_markdown_table(rep: Report):
    return md_table(["claim", "change", "effect", "verdict", "flips?"], robustness_rows(rep.cfg), align="lllll")


def variant_table(rep: Report):
    return md_table(["change", "condition", "final loss as published", "with the change", "ratio (with / without)"],
                    variant_rows(rep.cfg), align="llrrl")


def wrec_convergence_table(rep: Report):
    return md_table(wrec_convergence_header(rep.cfg), wrec_convergence_rows(rep.cfg))


def band_table():
    return md_table(["claims", "negligible when", "why"], band_rows(), align="lll")


def stage_table(stage: dict):
    return md_table(["claim", "stage or convention", "effect", "verdict"], stage_rows(stage), align="llll")


def footnotes_table(rep: Report):
    return Markdown(footnotes_markdown(rep.results))


def wrec_damping_table(rep: Report):
    header, rows = wrec_damping_rows(rep.wrec)
    return md_table(header, rows or [["no network's W_rec file yet"]], align="l" * len(header))
