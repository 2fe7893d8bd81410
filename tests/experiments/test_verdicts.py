"""The verdict table (fbctrl.experiments.verdicts): the Benjamini-Hochberg adjustment of a column
and the printed cells on hand cases; the table, its robustness rows and its marks from the tiny
protocol's files."""

import math

import numpy as np
import pytest
from scipy import stats as st

from fbctrl.experiments import paper, verdicts
from fbctrl.experiments.protocol import CONDITIONS, Protocol
from fbctrl.experiments.stats import Verdict, paired_effect, verdict


def test_multiplicity_adjusts_a_columns_p_values_by_benjamini_hochberg():
    """Hand case: p = 0.01, 0.04, 0.03, 0.5 (and one claim without a test) give BH-adjusted
    0.04, 0.0533, 0.0533, 0.5; only the first verdict survives at 0.05. And the premise: a
    verdict other than inconclusive is exactly a paired t-test with p < 0.05."""
    from dataclasses import replace

    from fbctrl.experiments.verdicts import ClaimResult, multiplicity

    base = paired_effect([1.0, 2.0, 3.0])
    ps = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    res = [ClaimResult(k, "Fig", k, "as published", "", replace(base, p_value=p),
                       Verdict.AGREES if p < 0.05 else Verdict.INCONCLUSIVE, (0, 1, 2)) for k, p in ps.items()]
    res.append(ClaimResult("e", "Fig", "e", "as published", "", paired_effect([]), Verdict.INCONCLUSIVE, ()))
    res.append(ClaimResult("a", "Fig", "a", "fair", "", replace(base, p_value=0.9), Verdict.INCONCLUSIVE, (0, 1, 2)))
    adj = {a.result.key: a for a in multiplicity(res)}
    assert set(adj) == set("abcde")
    for k, want in {"a": 0.04, "b": 0.16 / 3, "c": 0.16 / 3, "d": 0.5}.items():
        assert adj[k].p_adjusted == pytest.approx(want, rel=1e-12)
    assert math.isnan(adj["e"].p_adjusted) and adj["e"].verdict_adjusted is Verdict.INCONCLUSIVE
    assert [adj[k].verdict_adjusted for k in "abcd"] == [Verdict.AGREES] + [Verdict.INCONCLUSIVE] * 3
    rng = np.random.default_rng(3)
    for _ in range(200):
        e = paired_effect(rng.normal(0.4, 1.0, size=int(rng.integers(2, 12))))
        assert (verdict(e, 1) is not Verdict.INCONCLUSIVE) == (e.p_value < 0.05)


def test_verdict_cells_print_an_interval_only_where_there_is_one():
    from fbctrl.experiments.verdicts import ClaimResult, format_cell

    cell = lambda e: format_cell(ClaimResult("k", "Fig", "c", "as published", "", e, verdict(e, 1), ()))  # noqa: E731
    assert cell(paired_effect([])) == "no data"
    empty = ClaimResult("k", "Fig", "c", "as published", f"cos(...): {verdicts.NOT_CONVERGED} 0.001 (...), so not judged",
                        paired_effect([]), Verdict.INCONCLUSIVE, ())
    assert format_cell(empty) == "not judged (no solve converged)"
    assert cell(paired_effect([2.0], [1.0], log=True)) == "2, n 1 (no interval)"
    e = paired_effect([1.0, 2.0, 3.0])
    lo, hi = st.t.interval(0.95, 2, loc=2.0, scale=1.0 / math.sqrt(3))
    assert cell(e) == f"2 [{lo:.3g}, {hi:.3g}], n 3, p {e.p_value:.2g}"


RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


def test_verdict_table_from_the_dry_run(dry_run):
    from fbctrl.experiments import verdicts
    from fbctrl.experiments.stats import Verdict

    cfg = dry_run
    table = verdicts.verdict_table(cfg)
    assert {(r.key, r.column) for r in table} == {(c.key, col) for c in verdicts.CLAIMS
                                                  for col in ("as published", "fair")}
    by = {(r.key, r.column): r for r in table}
    r = by[("final_loss_rflo_30", "as published")]
    assert r.seeds == tuple(cfg.fb_seeds) and isinstance(r.verdict, Verdict)
    # the per-seed effect is the ratio of the two conditions' final losses, from the files
    for i, s in enumerate(cfg.fb_seeds):
        fin = {c: paper.load_runs(cfg, [paper.AdaptUnit("fb", s, 30.0, c, Protocol.PUBLISHED, cfg.trials)])[0]
               ["test_loss"][0, -4:].mean() for c in (RFLO, RFLO_C)}
        assert r.effect.values[i] == pytest.approx(fin[RFLO] / fin[RFLO_C], rel=1e-9)
    assert by[("align_local", "fair")].effect.n == len(cfg.fb_seeds)   # matched-state records exist
    assert by[("final_loss_rflo_50", "fair")].effect.n == 0 and by[("final_loss_rflo_50", "fair")].verdict is Verdict.INCONCLUSIVE
    md = verdicts.markdown_table(table)
    assert md.count("\n") == 1 + len(verdicts.CLAIMS) and "no data" in md


def test_robustness_table_changes_one_thing_per_row(dry_run):
    """Each robustness row of a claim is measured with exactly one change to the as-published
    runs; the rows that do not touch a claim's measure are left out, and a row flips when its
    verdict differs from the as-published one."""
    from fbctrl.book.chapters import paper_protocol
    from fbctrl.experiments import verdicts

    cfg = dry_run
    table = verdicts.robustness_table(cfg)
    assert [b.key for b, _ in table] == [c.key for c in verdicts.CLAIMS]
    by = {b.key: (b, rows) for b, rows in table}
    base, rows = by["final_loss_rflo_30"]
    names = {r.column for r in rows}
    assert "online BPTT with the current weights" not in names and "efficiency whole run" not in names
    assert {"integrated error from e_0 (published quirk)", "after 500 trials", "learning-curve area"} <= names
    e0 = next(r for r in rows if r.column.startswith("integrated error"))
    assert e0.effect.n == base.effect.n == len(cfg.fb_seeds) and e0.effect.values != base.effect.values
    assert "mean test loss over all" in next(r for r in rows if r.column == "learning-curve area").definition
    _, brows = by["final_loss_bptt_30"]
    cur = next(r for r in brows if r.column == "online BPTT with the current weights")
    assert cur.effect.n == len(cfg.fb_seeds)
    _, erows = by["efficiency"]
    assert {r.column for r in erows} >= {"efficiency per trial, scale-free", "efficiency whole run"}
    # at 40 deg only the published protocol's runs exist: no rows for changes that ran at 30 deg only
    _, r40 = by["final_loss_rflo_40"]
    assert {r.column for r in r40} == {"final window 50 trials", "after 500 trials", "learning-curve area",
                                       "smallest effect of interest halved", "smallest effect of interest doubled"}
    assert all(r.effect.n == len(cfg.fb_seeds) for r in r40)
    assert all(len(r) == 5 for r in paper_protocol.robustness_rows(cfg))


def test_marks_say_what_each_verdict_rests_on(dry_run):
    """The band mark appears exactly where halving or doubling the band changes the verdict, the
    artefact mark on Figure 5a's published cell exactly where the two runs' rates differ, every
    convention/stage mark names rows of its group whose verdict differs, and the table prints
    each cell's symbols after its verdict with one footnote per mark."""
    from fbctrl.experiments import verdicts as V
    from fbctrl.experiments.stats import verdict

    cfg = dry_run
    res = V.verdict_table(cfg, marks=True)
    claims = {c.key: c for c in V.CLAIMS}
    for r in res:
        c = claims[r.key]
        kinds = [m.kind for m in r.marks]
        assert set(kinds) <= set(V.MARKS) and len(kinds) == len(set(kinds))
        moved = r.effect.n >= 2 and c.band is not None and any(
            verdict(r.effect, c.paper_sign, c.band.scaled(f)) != r.verdict for f in (0.5, 2.0))
        assert ("band" in kinds) == moved
        if r.key == "efficiency" and r.column == "as published":
            rate = V.verdict_table(cfg, (c,), ("the published efficiency's rate factor alone: lr(RFLO+c) / lr(RFLO)",))[0]
            assert rate.effect.mean == pytest.approx(10.0) and "artefact" in kinds
        if r.key == "efficiency" and r.column == "fair":
            assert "artefact" not in kinds
        for m in r.marks:
            assert m.symbol == V.MARKS[m.kind][0] and m.note
    rows = V.table_rows(res)
    by = {(r.figure, r.claim): {} for r in res}
    for r in res:
        by[(r.figure, r.claim)][r.column] = r
    for row in rows:
        pub = by[(row[0], row[1])]["as published"]
        assert row[3] == pub.verdict.value + "".join(f" {m.symbol}" for m in pub.marks)
    assert len(V.footnotes(res)) == sum(len(r.marks) for r in res)
    # without marks the table is what it was (the API stays backward compatible)
    plain = V.verdict_table(cfg)
    assert all(not r.marks for r in plain) and [r.verdict for r in plain] == [r.verdict for r in res]


def test_adjust_is_positional_so_rows_of_one_claim_are_separate_tests():
    """A family of the extension's table holds one claim twice (as published and at the best
    rates): the adjustment keys by position, so both are tested and adjusted (BH of 0.01, 0.02,
    0.2 is 0.03, 0.03, 0.2), a negligible verdict keeps its word whatever its p, and the
    extension's two columns are corrected separately, rows without a change left out."""
    from dataclasses import replace
    from types import SimpleNamespace

    from fbctrl.experiments import beyond
    from fbctrl.experiments.verdicts import ClaimResult, adjust

    base = paired_effect([1.0, 2.0, 3.0])

    def res(p, word):
        return ClaimResult("fig3b_rflo", "Fig 3b", "c", "as published", "", replace(base, p_value=p), word, (0, 1, 2))
    rs = [res(0.01, Verdict.AGREES), res(0.02, Verdict.DISAGREES), res(0.2, Verdict.NEGLIGIBLE)]
    a = adjust(rs)
    assert [x.p_adjusted for x in a] == pytest.approx([0.03, 0.03, 0.2], rel=1e-12)
    assert [x.verdict_adjusted for x in a] == [Verdict.AGREES, Verdict.DISAGREES, Verdict.NEGLIGIBLE]
    rows = [SimpleNamespace(variant=rs[0], change=res(0.04, Verdict.AGREES)),
            SimpleNamespace(variant=rs[1], change=None),
            SimpleNamespace(variant=rs[2], change=res(0.5, Verdict.INCONCLUSIVE))]
    m = beyond.multiplicity(rows)
    assert [x.p_adjusted for x in m["variant"]] == pytest.approx([0.03, 0.03, 0.2], rel=1e-12)
    assert [x.p_adjusted for x in m["change"]] == pytest.approx([0.08, 0.5], rel=1e-12)
    assert m["change"][0].verdict_adjusted is Verdict.INCONCLUSIVE       # p 0.04 adjusts to 0.08
