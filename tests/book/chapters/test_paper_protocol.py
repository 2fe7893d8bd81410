"""The chapter "The paper's protocol" (``fbctrl.book.chapters.paper_protocol``).

The introduction's verdict table (``verdict_summary_rows``): one row per claim in the paper's
figure order, the effect written out with the side that favours the paper (from the claim's own
scale and sign), each cell the verdict over the verdict table's own cell, and an HTML table that
escapes what it shows. From the tiny protocol's unit files: the chapter's report and glued cells,
the W_rec table by damping, the robustness rows' flips and the published-code variants' rows."""

from __future__ import annotations

import html
from dataclasses import replace

import bs4
import numpy as np
import pytest

from fbctrl import fmt
from fbctrl.book.chapters import paper_protocol
from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol
from fbctrl.experiments.stats import paired_effect, verdict
from fbctrl.experiments.verdicts import CLAIMS, ClaimResult, footnotes as verdicts_footnotes, format_cell
from tests.helpers import ROOT, unit_meta


def _results(claims=CLAIMS, shift=0.5):
    """Both columns of every claim from made-up per-seed values (ten seeds, effects on the
    paper's side), as ``verdicts.verdict_table`` returns them."""
    rng = np.random.default_rng(0)
    out = []
    for c in claims:
        for col in ("as published", "fair"):
            b = rng.uniform(1.0, 2.0, 10)
            d = c.paper_sign * shift + rng.normal(0.0, 0.1, 10)
            a = b * np.exp(d) if c.log else b + d
            e = paired_effect(a, b, log=c.log)
            out.append(ClaimResult(c.key, c.figure, c.claim, col, "made up", e, verdict(e, c.paper_sign), tuple(range(10))))
    return out


def test_one_row_per_claim_in_figure_order():
    rows = paper_protocol.verdict_summary_rows(_results())
    assert len(rows) == len(CLAIMS)
    figures = [r[0][0] for r in rows]
    order = [paper_protocol.FIGURE_ORDER.index(f) if f in paper_protocol.FIGURE_ORDER else 99 for f in figures]
    assert order == sorted(order)
    # the losses of Fig 3b: RFLO at every rotation, then BPTT
    loss = [r[0][1] for r in rows if r[0][0] == "Fig 3b"]
    assert loss == [f"RFLO+c ends lower, {r}°" for r in (30, 40, 50, 60)] + [f"BPTT+c ends lower, {r}°" for r in (30, 40, 50, 60)]


def test_the_direction_follows_the_claims_scale_and_sign():
    rows = {r[0][0] + " " + r[0][1]: r for r in paper_protocol.verdict_summary_rows(_results())}
    assert rows["Fig 3b RFLO+c ends lower, 30°"][1] == "RFLO / RFLO+c final loss; > 1 favours the paper"
    assert rows["Fig 4a control decouples from the past"][1] == "Jacobian norm, on / off; < 1 favours the paper"
    assert rows["Fig 4c RFLO+c aligns better, per trial"][1].endswith("; > 0 favours the paper")


def test_cells_carry_the_verdict_and_the_verdict_tables_own_cell():
    res = _results()
    rows = paper_protocol.verdict_summary_rows(res)
    first = next(r for r in res if r.key == "final_loss_rflo_30" and r.column == "as published")
    row = next(r for r in rows if r[0][1] == "RFLO+c ends lower, 30°")
    word, interval, n_p = row[2]
    assert isinstance(word, fmt.Strong) and word == first.verdict.value == "agrees"
    assert f"{interval}, {n_p}" == format_cell(first)


def test_a_claim_without_summary_text_still_gets_its_row():
    extra = [c for c in CLAIMS if c.key == "align_local"][0]
    new = replace(extra, key="brand_new", figure="Fig 9z", short="something new")
    rows = paper_protocol.verdict_summary_rows(_results((new,)), claims=(new,))
    assert rows[0][0] == ["Fig 9z", "something new"] and rows[0][1] == "something new; > 0 favours the paper"


def test_html_table_escapes_and_keeps_lines():
    html = fmt.html_table(["a <b>", "c"], [[[fmt.Strong("x & y"), "1 < 2"], "plain"]], align="ll", css_class="k")
    soup = bs4.BeautifulSoup(html, "html.parser")
    assert soup.find("table")["class"] == ["table", "k"]
    assert soup.find("th").get_text() == "a <b>" and not soup.find("b")
    td = soup.find("td")
    assert td.find("strong").get_text() == "x & y" and td.find("br") and "1 < 2" in td.get_text()
    with pytest.raises(ValueError, match="row 0 has an empty cell"):
        fmt.html_table(["a"], [[""]], align="l")
    summary = bs4.BeautifulSoup(paper_protocol.verdict_summary_html(_results()), "html.parser")
    assert len(summary.find("tbody").find_all("tr")) == len(CLAIMS)


RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


def test_paper_report_reads_the_units_and_glues_every_cell_of_the_introduction(dry_run):
    """The chapter 'The paper's protocol' from the unit files alone: every stage complete, every
    network listed, and a glued cell for every claim and column that the Introduction's table
    references (and no reference to a key that is never glued)."""
    import re

    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments.verdicts import CLAIMS

    cfg = dry_run
    rows = paper_protocol.progress(cfg)
    assert rows and all(r.done == r.total for r in rows)
    # every finished unit says how long it took: the compute column sums what the files record
    assert all(np.isfinite(r.hours) and r.hours >= 0 for r in rows)
    adapt_rows = [r for r, g in zip(rows, paper.plan(cfg, include_done=True)) if g.units and g.units[0].stage in ("adapt", "sweep")]
    assert adapt_rows and all(r.hours > 0 for r in adapt_rows)
    assert paper_protocol.progress_markdown(rows).splitlines()[-1].startswith("| **total** |")
    # the held-out cells: the fair cells on the networks the sweep did not use, value for value
    from dataclasses import replace as _replace

    from fbctrl.experiments import verdicts as V
    cfg1 = _replace(cfg, sweep_seeds=(0,))
    both = V.verdict_table(cfg1, V.RATE_CLAIMS[:1], ("fair", "fair, held-out networks"))
    fair, held = both
    assert fair.seeds == (0, 1) and held.seeds == (1,)
    assert held.effect.values == pytest.approx(fair.effect.values[1:], rel=1e-12)
    assert len(paper_protocol.held_out_rows(cfg)) == len(V.RATE_CLAIMS)
    sw = paper_protocol.sweep_figure_data(cfg)
    assert sw["best"] == paper.best_swept_rates(cfg)
    assert all(len(v) == len(cfg.sweep_seeds) for v in sw["published_lr"].values())
    best_rows = paper_protocol.best_rate_rows(sw)
    assert [r[0] for r in best_rows] == [c.name for c in CONDITIONS] and all(r[2] != "—" for r in best_rows)
    # Figure 5a's published definition is the scale-free one times the rate: per network exactly
    eff = {r.column: r for r in V.verdict_table(cfg, [c for c in V.CLAIMS if c.key == "efficiency"],
                                                ("as published", "efficiency per trial, scale-free"))}
    lr = [unit_meta(paper.AdaptUnit("fb", s, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials).path(cfg))["lr"]
          / unit_meta(paper.AdaptUnit("fb", s, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials).path(cfg))["lr"]
          for s in eff["as published"].seeds]
    assert eff["as published"].effect.values == pytest.approx(
        [a * b for a, b in zip(lr, eff["efficiency per trial, scale-free"].effect.values)], rel=1e-6)
    assert "times RFLO's rate" in paper_protocol.efficiency_sentence(cfg)
    nofb = paper_protocol.nofb_rows(cfg)
    assert [r[0] for r in nofb] == ["RFLO", "BPTT"] and all(r[1].endswith(f"n {len(cfg.nofb_seeds)}") for r in nofb)
    # the matched-state detail pools to the fair alignment cells of the verdict table
    m = paper_protocol.matched_alignment_summary(cfg)
    assert m["points"] == list(cfg.matched_points) and m["trials"] == cfg.matched_trials
    for which in ("local", "global"):
        fair = next(r for r in paper_protocol.verdicts(cfg) if r.key == f"align_{which}" and r.column == "fair")
        assert m[which]["effect"] == pytest.approx(fair.effect.mean, rel=1e-5)      # float32 records
        assert len(m[which]["per_point"]) == len(cfg.matched_points)
    assert len(paper_protocol.matched_rows(m)) == len(cfg.matched_points) and "trials per setting" in paper_protocol.matched_sentence(m)
    nets = paper_protocol.networks(cfg)
    assert {(d["kind"], d["seed"]) for d in nets} == {(k, s) for k in ("fb", "nofb") for s in cfg.seeds(k)}
    assert all(d["train_push"] is False for d in nets)
    results = paper_protocol.verdicts(cfg)
    table = paper_protocol.verdict_rows(results)
    assert len(table) == len(CLAIMS) and all(len(r) == 6 for r in table)
    assert "units are computed" in paper_protocol.summary_sentence(rows, nets, results)
    # the introduction shows the forest plot, the whole verdict table and the marks' footnotes, glued from the chapter
    intro = (ROOT / "book" / "intro.md").read_text()
    assert re.findall(r"```\{glue:any\} (\w+)\n:doc: paper_protocol\.ipynb", intro) == [
        "verdict_forest", "verdict_summary", "verdict_footnotes"]
    assert len(paper_protocol.verdict_summary_rows(results)) == len(CLAIMS)
    notes = paper_protocol.footnotes_html(results)
    assert all(html.escape(n) in notes for n in verdicts_footnotes(results))
    # the legend names exactly the marks some cell carries
    from fbctrl.experiments.verdicts import MARKS
    used = {m.symbol for r in results for m in r.marks}
    legend = notes.split("</p>")[0] if used else ""
    assert all((sym in legend) == (sym in used) for sym, _ in MARKS.values())


def test_wrec_damping_table_pools_to_the_fair_cell(dry_run):
    """The W_rec claim by damping and step: at the fair cell's damping (every solve converged) the
    all-steps effect is the fair cell, seed for seed, and the mean of the per-step effects; the
    sentence gives a verdict for every damping of the grid."""
    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments import verdicts as V

    cfg = dry_run
    eff = paper_protocol.wrec_damping_effects(cfg)
    grid = cfg.network_measures.wrec_dampings
    steps = cfg.network_measures.wrec_steps
    assert len(eff) == (len(grid) + 1) * (len(steps) + 1)
    d = paper_protocol.fair_wrec_damping(cfg)
    assert d is not None, "the tiny protocol's solves should converge somewhere on the grid"
    fair = V.verdict_table(cfg, [c for c in V.CLAIMS if c.key == "wrec_newton"], ("fair",))[0]
    at = [e for e in eff if e["direction"] == "newton" and e["damping"] == d]
    pooled = next(e["effect"] for e in at if e["step"] is None)
    assert pooled.values == pytest.approx(fair.effect.values, rel=1e-12)
    per_step = np.array([e["effect"].values for e in at if e["step"] is not None])
    assert pooled.values == pytest.approx(per_step.mean(axis=0), rel=1e-9, abs=1e-12)
    # every damping and step is judged as the table judges the claim: four words, the cosine band
    from fbctrl.experiments.stats import verdict
    assert next(e["verdict"] for e in at if e["step"] is None) == fair.verdict.value
    assert all(e["verdict"] == verdict(e["effect"], +1, V.BANDS["cosine"]).value for e in eff)
    header, rows = paper_protocol.wrec_damping_rows(eff)
    assert header == ["direction", "all steps"] + [f"step {s}" for s in steps] and len(rows) == len(grid) + 1
    nvg = paper_protocol.wrec_newton_vs_gradient(cfg, d)
    assert set(nvg) == set(steps) and all(-1 <= x <= 1 for pair in nvg.values() for x in pair)
    text = paper_protocol.wrec_damping_sentence(eff, d, nvg)
    assert all(f"{x:g}: " in text for x in grid) and f"At damping {d:g}" in text


def test_a_flip_is_judged_only_on_two_seeds_or_more():
    """A robustness row whose change has run on one network is inconclusive by rule: it is not
    called a flip; a row on fewer networks than the as-published cell says so."""
    from fbctrl.book.chapters.paper_protocol import _flips
    from fbctrl.experiments import verdicts as V
    from fbctrl.experiments.stats import paired_effect, verdict

    def result(values):
        e = paired_effect(values, log=True)
        return V.ClaimResult("k", "Fig", "claim", "col", "", e, verdict(e, +1), tuple(range(len(values))))

    base = result([2.0, 3.0, 2.5, 4.0])
    assert base.verdict.value == "agrees"
    assert _flips(base, result([0.5])) == "—"
    assert _flips(base, result([0.5, 0.6, 0.55])) == "**flips** (on 3 of 4 networks)"
    assert _flips(base, result([2.1, 2.9, 2.4, 3.5])) == "no"


def test_variant_rows_are_the_paired_ratio_of_the_final_losses(dry_run):
    """The effect of each published-code variant on the final loss: per network, the final loss
    with the change over the one without, read from the unit files."""
    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments.stats import paired_effect
    from fbctrl.experiments.verdicts import format_effect

    cfg = dry_run
    rows = paper_protocol.variant_rows(cfg)
    assert [(r[0], r[1]) for r in rows] == (
        [("integrated error from e_0", c.name) for c in CONDITIONS]
        + [("online BPTT with the current weights", c.name) for c in (BPTT_C, BPTT)])
    f = {}
    for v in (paper.Variant.NONE, paper.Variant.ERROR_START_E0):
        units = [paper.AdaptUnit("fb", s, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials, variant=v) for s in cfg.fb_seeds]
        rec, _ = paper.load_runs(cfg, units)
        f[v] = rec["test_loss"][:, -min(10, cfg.trials):].mean(axis=1)
    expect = paired_effect(f[paper.Variant.ERROR_START_E0], f[paper.Variant.NONE], log=True)
    assert rows[0][4] == format_effect(expect)


def test_figure8_sentence_groups_the_rotations_by_best_rate():
    from fbctrl.book.chapters.paper_protocol import figure8_sentence
    data = {"rotations": [30.0, 40.0, 50.0, 60.0], "done": 7, "planned": 8,
            "conditions": {"RFLO": {"best": [1.5e-5, 1.5e-5, 5e-5, None]},
                           "BPTT": {"best": [3e-5, 3e-5, 3e-5, 3e-5]}}}
    assert figure8_sentence(data) == ("7 of 8 sweep runs at 30°, 40°, 50°, 60° have finished. Best rates: "
                                      "RFLO 1.5 × 10⁻⁵ at 30°, 40°, 5.0 × 10⁻⁵ at 50°, not yet at 60°; "
                                      "BPTT 3.0 × 10⁻⁵ at 30°, 40°, 50°, 60°.")
