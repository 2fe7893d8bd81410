"""The introduction's verdict table (``fbctrl.book.chapters.paper_protocol.verdict_summary_rows``): one row
per claim in the paper's figure order, the effect written out with the side that favours the
paper (from the claim's own scale and sign), each cell the verdict over the verdict table's own
cell, and an HTML table that escapes what it shows."""

from __future__ import annotations

from dataclasses import replace

import bs4
import numpy as np
import pytest

from fbctrl import fmt
from fbctrl.book.chapters import paper_protocol
from fbctrl.experiments.stats import paired_effect, verdict
from fbctrl.experiments.verdicts import CLAIMS, ClaimResult, format_cell


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
