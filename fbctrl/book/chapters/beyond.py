"""The chapter "Beyond the paper" (book/beyond.ipynb): the paper's claims on delayed, sparse and
limit-cycle networks, read from the extension's unit files (:mod:`fbctrl.experiments.beyond`;
computed by ``python -m fbctrl paper --only beyond``). Each function is one short cell."""

from __future__ import annotations

import re
from dataclasses import replace

from IPython.display import Markdown

from ... import fmt
from ...core.checkpoint import read_sidecar
from ...core.spec import NetworkSpec
from ...core.tasks import FrequencyShift
from ...experiments import beyond, paper
from ...experiments.verdicts import format_cell
from ...viz.beyond import plot_beyond_summary
from ..glue import glue_figure, glue_int, glue_text
from ..scale import store_config
from .paper_protocol import unit_hours

__all__ = ["config", "design_table", "glue_design", "tables", "online_rows", "findings", "multiplicity_table",
           "glue_verdicts", "summary_figure", "glue_key", "headline", "glue_headline"]


def config(checkpoint_dir=None, results_dir=None):
    """The paper protocol's configuration of the store: the repository's folders, or the notebook's
    ``checkpoint_dir`` / ``results_dir`` parameters as given (the paper protocol's folders: the
    extension's lie beside them, in ``beyond``)."""
    cfg = store_config()
    given = {k: str(v) for k, v in (("checkpoint_dir", checkpoint_dir), ("results_dir", results_dir)) if v is not None}
    return replace(cfg, **given) if given else cfg


def _progress(cfg, family: str) -> tuple[int, int, float]:
    """Units of ``family`` done and planned, and the one-core hours the done ones took (as their
    files record it, :func:`~fbctrl.book.chapters.paper_protocol.unit_hours`; a unit that does not
    say counts 0)."""
    gs = [g for g in beyond.groups(cfg, include_done=True) if g.units and g.units[0].family == family]
    units = [u for g in gs for u in g.units]
    done = [u for u in units if paper.is_done(cfg, u)]
    hours = [h for h in (unit_hours(cfg, u) for u in done) if h == h]
    return len(done), len(units), float(sum(hours))


def _tail_text(paths) -> str:
    """The training loss over the last tenth of pre-training over that of the tenth before
    (:func:`beyond.training_tail`), per network: '0.98' or '0.95-0.99'; '—' without curves."""
    r = [x for x in (beyond.training_tail(p) for p in paths) if x is not None]
    if not r:
        return "—"
    lo, hi = min(r), max(r)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}"


# The test set a network's sidecar records at the end of pre-training with the controller on and
# off, per task: random reaches (no pushes) and random cycles at the commanded frequencies.
_ON_OFF = {"reach": ("random", "random_ctrl_off"), "limit-cycle": ("random_cycles", "cycles_ctrl_off")}


def _on_off_text(paths, spec) -> str:
    """The test loss at the end of pre-training with the controller on / off (the sidecar's random
    reaches or cycles), mean over the networks: '0.0030 / 0.0058'; a network without feedback has
    one loss ('— / 0.023')."""
    on_key, off_key = _ON_OFF[spec.task]
    finals = [read_sidecar(p).get("final", {}) for p in paths]
    on = [f[on_key] for f in finals if on_key in f]
    off = [f[off_key] if off_key in f else f.get(on_key) for f in finals]
    off = [x for x in off if x is not None]

    def one(xs):
        return f"{sum(xs) / len(xs):.2g}" if xs else "—"
    return f"— / {one(off)}" if not spec.has_feedback else f"{one(on)} / {one(off)}"


def _hours_text(paths) -> str:
    """The pre-training's wall time per network in hours (the sidecar's ``wall_time_s``, summed
    over resumes, over the networks trained together): '0.9' or '0.85–1.2'; '—' where not recorded."""
    hours = []
    for p in paths:
        meta = read_sidecar(p)
        if meta.get("wall_time_s") is not None:
            hours.append(meta["wall_time_s"] / 3600 / max(1, len(meta.get("trained_together_with_seeds") or [0])))
    if not hours:
        return "—"
    lo, hi = f"{min(hours):.2g}", f"{max(hours):.2g}"
    return lo if lo == hi else f"{lo}–{hi}"


def _unit_hours_text(hours: float) -> str:
    """One-core hours of a family's done units: '1.0'; '<0.1' for a few short ones; '0' for none."""
    return "0" if hours == 0 else ("<0.1" if hours < 0.05 else f"{hours:.1f}")


def _task_feedback_text(spec) -> str:
    """'reach, 50 ms delay', 'reach, density 0.3', 'limit cycle, 0 ms, dense', 'limit cycle, no feedback'."""
    task = spec.task.replace("-", " ")
    if not spec.has_feedback:
        return f"{task}, no feedback"
    parts = ([f"{spec.delay * 10} ms delay"] if spec.delay else []) + (
        [f"density {spec.feedback_density:g}"] if spec.feedback_density < 1 else [])
    return f"{task}, " + (", ".join(parts) if parts else "0 ms, dense")


def design_table(cfg) -> Markdown:
    """family | task and feedback (delay, density) | seeds pre-trained | test loss at the end of
    pre-training, controller on / off (mean over networks) | training loss, last tenth / tenth
    before | pre-training wall time per network, hours | units done / planned | the one-core hours
    the done ones took."""
    rows = []
    for fam, spec in beyond.find_families(cfg).items():
        bcfg = beyond.family_config(cfg, fam)
        have = [s for s in beyond.beyond_seeds(cfg) if paper.is_done(bcfg, paper.PretrainUnit(fam, s))]
        paths = [paper.PretrainUnit(fam, s).path(bcfg) for s in have]
        done, total, hours = _progress(cfg, fam)
        rows.append([fam, _task_feedback_text(spec), _networks(have), _on_off_text(paths, spec),
                     _tail_text(paths), _hours_text(paths), f"{done} / {total}", _unit_hours_text(hours)])
    done, total, hours = _progress(cfg, "fb")
    ref = beyond.reference_config(cfg)
    paths = [paper.PretrainUnit("fb", s).path(ref) for s in beyond.beyond_seeds(cfg)]
    spec = NetworkSpec.parse("fb")
    rows.append(["fb (published)", _task_feedback_text(spec), _networks(beyond.beyond_seeds(cfg)),
                 _on_off_text(paths, spec), _tail_text(paths), _hours_text(paths), f"{done} / {total}",
                 _unit_hours_text(hours)])
    return Markdown(fmt.markdown_table(["family", "task, feedback", "seeds", "test loss, on / off", "training tail",
                                        "pre-training, h", "units done", "units, h"], rows, align="llllllll"))


def _networks(seeds) -> str:
    """'0, 1, 2' or 'none yet'."""
    seeds = list(seeds)
    return ", ".join(map(str, seeds)) if seeds else "none yet"


def glue_key(family: str, key: str) -> str:
    """A glue key for one family's cell: letters, digits and underscores only."""
    return re.sub(r"[^0-9A-Za-z_]", "_", f"beyond_{family}_{key}")


def glue_design(cfg) -> None:
    """Glue the number and names of the families found, the seeds and the units done / planned."""
    fams = beyond.find_families(cfg)
    glue_int("beyond_n_families", len(fams))
    glue_text("beyond_families", ", ".join(fams) or "none yet")
    glue_text("beyond_seeds", ", ".join(map(str, beyond.beyond_seeds(cfg))))
    prog = [_progress(cfg, f) for f in [*fams, "fb"]] if fams else [(0, 0, 0.0)]
    glue_int("beyond_units_done", sum(d for d, _, _ in prog))
    glue_int("beyond_units_planned", sum(t for _, t, _ in prog))
    glue_text("beyond_units_hours", _unit_hours_text(sum(h for _, _, h in prog)))


def tables(cfg) -> Markdown:
    """Every family's verdict table under its name, or a sentence where none exists yet."""
    fams = beyond.find_families(cfg)
    if not fams:
        return Markdown("No variant network is pre-trained yet (``checkpoints/beyond``).")
    parts = [f"**{fam}**\n\n{beyond.markdown_table(beyond.family_table(cfg, fam))}" for fam in fams]
    return Markdown("\n\n".join(parts))


# the change column's word, said of the variant's effect against the published networks' (four-word rule)
_CHANGE_WORDS = {"agrees": "larger", "disagrees": "smaller", "negligible": "the same within the band",
                 "inconclusive": "not distinguishable yet"}


def _effect_cell(r) -> str:
    """'1.82 [1.81, 1.83], n 3' (no p: the tables give it)."""
    e = r.effect
    text = format_cell(r)
    return text.rsplit(", p ", 1)[0] if e.n >= 2 else text


# the online-correction table's rows: label, family (None: the published networks of the extension's seeds)
_ONLINE_ROWS = (("published networks (0 ms, density 1)", None), ("delay 50 ms", "fb_d5"), ("delay 100 ms", "fb_d10"),
                ("density 0.3", "fb0.3"), ("density 0.1", "fb0.1"), ("limit cycle", "lc_fb"))


def online_rows(tables: dict) -> list[list[str]]:
    """networks | online correction, off / on | change against the same seeds' published networks:
    the published networks' effect (from the first family's table), then each family of
    :data:`_ONLINE_ROWS` that is pre-trained, its change said as the change's verdict reads
    (disagrees: smaller) or why it is not compared."""
    key = beyond.ONLINE_CLAIM.key
    found = {fam: next((r for r in rows if r.key == key), None) for fam, rows in tables.items()}
    found = {f: r for f, r in found.items() if r is not None}
    out = []
    for label, fam in _ONLINE_ROWS:
        if fam is None:
            if found:
                out.append([label, _effect_cell(next(iter(found.values())).published), "—"])
            continue
        r = found.get(fam)
        if r is None:
            continue
        if r.change is None:
            ch = r.change_note or "not compared"
        elif r.change.effect.n < 2:
            ch = f"inconclusive: {format_cell(r.change)}"
        else:
            ch = f"{_CHANGE_WORDS[r.change.verdict.value]}: {format_cell(r.change)}"
        out.append([label, _effect_cell(r.variant), ch])
    return out


def findings(cfg) -> Markdown:
    """What the store says so far, in numbers only (each claim's words are the tables'): the online
    correction (Fig 1a, loss off / on) against delay, density and task, each variant against the
    published networks of its seeds (:func:`online_rows`); and adaptation on the limit cycle
    (Fig 3b: final loss without over with the controller after the frequency shift, above 1 where
    the controller helps)."""
    fams = beyond.find_families(cfg)
    if not fams:
        return Markdown("No variant network is pre-trained yet.")
    tables = {f: beyond.family_table(cfg, f) for f in fams}
    parts = [fmt.markdown_table(["networks", "online correction, off / on",
                                 "change against the same seeds' published networks"], online_rows(tables),
                                align="lll")]
    if "lc_fb" in tables:
        rows = {r.key: r for r in tables["lc_fb"]}
        adapt = [f"{rule} {_effect_cell(rows[k].variant)} ({rows[k].variant.verdict.value})"
                 for rule, k in (("RFLO over RFLO+c", "final_loss_rflo_30"), ("BPTT over BPTT+c", "final_loss_bptt_30"))
                 if k in rows]
        shift = FrequencyShift(cfg.network_measures.shift_hz).label
        parts.append(f"Adaptation on the limit cycle after the {shift} shift, under the published protocol (its "
                     f"rates, chosen for reaching; no rate is searched on this task): the final test loss without "
                     f"the controller over with it (above 1 the controller helps): " + "; ".join(adapt) + ".")
    return Markdown("\n\n".join(parts))


def multiplicity_rows(cfg) -> list[list[str]]:
    """Per family and column (the variant's effects; their change against the published networks):
    family | column | tests | effects (agrees or disagrees) | those the Benjamini-Hochberg correction
    over the column turns inconclusive, each 'Fig 3b (loss RFLO+c < RFLO, 30°), p 0.035 → 0.09'
    (:func:`fbctrl.experiments.beyond.multiplicity`)."""
    out = []
    for fam in beyond.find_families(cfg):
        rows = beyond.family_table(cfg, fam)
        by_result = {id(r.variant): r for r in rows} | {id(r.change): r for r in rows if r.change is not None}
        for col, adj in beyond.multiplicity(rows).items():
            tested = [a for a in adj if a.p_adjusted == a.p_adjusted]
            if not tested:
                continue
            effects = [a for a in tested if a.result.verdict.value in ("agrees", "disagrees")]
            lost = [a for a in effects if a.verdict_adjusted != a.result.verdict]
            lost_text = "; ".join(f"{by_result[id(a.result)].figure} ({by_result[id(a.result)].short}), "
                                  f"p {fmt.fmt_num(a.p, 2)} → {fmt.fmt_num(a.p_adjusted, 2)}" for a in lost)
            out.append([fam, "effect" if col == "variant" else "change vs published", str(len(tested)),
                        str(len(effects)), lost_text or "none"])
    return out


def multiplicity_table(cfg) -> Markdown:
    """:func:`multiplicity_rows` as a table, or a sentence where no family has a test yet."""
    rows = multiplicity_rows(cfg)
    if not rows:
        return Markdown("No family has two networks yet: nothing to correct.")
    head = ["family", "column", "tests", "effects", "turned inconclusive by the correction"]
    return Markdown(fmt.markdown_table(head, rows, align="llrrl"))


def glue_verdicts(cfg) -> None:
    """Glue each family's verdict and n of every row, and of the change against the published
    networks (``beyond_{family}_{row}``, ``..._n``, ``..._change``)."""
    for fam in beyond.find_families(cfg):
        for r in beyond.family_table(cfg, fam):
            glue_text(glue_key(fam, r.key), r.variant.verdict.value)
            glue_int(glue_key(fam, r.key + "_n"), r.variant.effect.n)
            glue_text(glue_key(fam, r.key + "_change"), r.change.verdict.value if r.change is not None else "not compared")


def summary_figure(cfg):
    """The summary figure (each claim against delay, density and task), shown and glued."""
    fig = plot_beyond_summary(beyond.summary_records(cfg))
    glue_figure("beyond_summary", fig)
    return fig


def _and(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _counts(cfg, fams: dict) -> str:
    """'3 networks each: fb_d5, fb0.3' or 'fb_d5: 4 networks, fb0.3: 3 networks' (from the sidecars)."""
    trained = {}
    for spec, _seed, _side in beyond.sidecars(beyond.beyond_dirs(cfg)[0]):
        trained[spec.family] = trained.get(spec.family, 0) + 1
    ns = [trained.get(fam, 0) for fam in fams]
    if len(fams) > 1 and len(set(ns)) == 1:
        return f"{ns[0]} network{'s' if ns[0] != 1 else ''} each: {', '.join(fams)}"
    return ", ".join(f"{f}: {n} network" + ("s" if n != 1 else "") for f, n in zip(fams, ns))


def _changes(cfg, fams: dict):
    """Over every family's change column: the effects judged (n >= 2), those changed (agrees or
    disagrees), those that survive the correction keyed by (row order, figure, claim, 'larger' or
    'smaller') with their families, the families compared, and, for families of another task,
    :func:`_reversed`'s clauses and their tasks."""
    judged, changed, kept, order = 0, 0, {}, {r.key: i for i, r in enumerate(beyond.ROWS)}
    reversed_, tasks, compared = [], set(), set()
    for fam in fams:
        table = beyond.family_table(cfg, fam)
        if all(r.change is None for r in table):
            found = _reversed(fam, table)
            reversed_ += found
            tasks |= {fams[fam].task.replace("-", " ")} if found else set()
        rows = [r for r in table if r.change is not None]
        for r, a in zip(rows, beyond.multiplicity(rows)["change"]):
            if r.change.effect.n < 2:
                continue
            judged += 1
            compared.add(fam)
            word = r.change.verdict.value
            if word not in ("agrees", "disagrees"):
                continue
            changed += 1
            if a.verdict_adjusted == r.change.verdict:
                way = "larger" if word == "agrees" else "smaller"
                kept.setdefault((order.get(r.key, len(order)), r.figure, r.short, way), []).append(fam)
    return judged, changed, kept, compared, reversed_, tasks


def headline(cfg) -> str:
    """One sentence for the introduction: which families exist, on how many networks, how many of
    the effects compared with the published networks of the same seeds change (*agrees* or
    *disagrees* by the four-word rule), how many of those survive the correction of each family's
    comparisons for many tests (:func:`fbctrl.experiments.beyond.multiplicity`), and of those the
    ones every compared family shares, by claim ('Fig 1a (online correction, off / on) is smaller
    with every variant (fb_d5, fb_d10, fb0.3)'; the others counted), or each by claim where none
    is shared; then, on another task, the verdicts opposite to the published networks'."""
    fams = beyond.find_families(cfg)
    if not fams:
        return "No network of the extension is pre-trained yet."
    head = f"So far {len(fams)} {'family is' if len(fams) == 1 else 'families are'} pre-trained ({_counts(cfg, fams)})"
    judged, changed, kept, compared, reversed_, tasks = _changes(cfg, fams)
    rev = (f"; on the {_and(sorted(tasks))} (no change computed: another task), these verdicts are the opposite of "
           "the published networks' (after the same correction): " + "; ".join(reversed_)) if reversed_ else ""
    if not judged:
        return head + "; no change against the published networks can be judged yet (it needs two networks a " \
            "family)" + rev + "."
    if not changed:
        return head + f"; none of the {judged} effects judged changes materially against the published " \
            "networks" + rev + "."
    n_kept = sum(len(v) for v in kept.values())
    text = (head + f"; of {judged} effects compared with the published networks of the same seeds, {changed} "
            f"change{'s' if changed == 1 else ''} by the four-word rule, and {n_kept} of them after correcting each "
            f"family's comparisons for many tests")
    # in the introduction only the changes every compared family shares; the others are counted
    everywhere = {k: fs for k, fs in kept.items() if len(compared) > 1 and set(fs) == compared}
    if everywhere:
        text += ": " + "; ".join(f"{fig} ({short}) is {way} with every variant compared ({', '.join(fs)})"
                                 for (_, fig, short, way), fs in sorted(everywhere.items()))
        rest = n_kept - sum(len(fs) for fs in everywhere.values())
        if rest:
            text += f", and {rest} other{'s' if rest != 1 else ''} in some variants only (the chapter's tables)"
    elif kept:
        text += ": " + "; ".join(f"{fig} ({short}) is {way} with {_and(fs)}"
                                 for (_, fig, short, way), fs in sorted(kept.items()))
    return text + rev + "."


def _reversed(family: str, rows) -> list[str]:
    """The rows of a family compared with no published network of its seed (another task) whose
    verdict is the opposite word of the published networks' (agrees against disagrees), both on
    two networks or more and the family's still after the correction for many tests:
    'Fig 3b (loss RFLO+c < RFLO, +0.5 Hz) disagrees with lc_fb (published: agrees)'."""
    out = []
    for r, a in zip(rows, beyond.multiplicity(rows)["variant"]):
        v, p = r.variant.verdict.value, r.published.verdict.value
        if min(r.variant.effect.n, r.published.effect.n) >= 2 and {v, p} == {"agrees", "disagrees"} \
                and a.verdict_adjusted == r.variant.verdict:
            out.append(f"{r.figure} ({r.short}) {v} with {family} (published: {p})")
    return out


def glue_headline(cfg) -> None:
    """Glue :func:`headline` as ``beyond_headline`` (the introduction's sentence)."""
    glue_text("beyond_headline", headline(cfg))
