"""Tables that cannot break (``fbctrl.fmt.markdown_table``): each table is rendered by the same
Markdown parser family the book uses (markdown-it with tables and dollar maths, as MyST) and
read back cell by cell, so a cell that Markdown reads as syntax shows up as a wrong cell count
or as changed text."""

from __future__ import annotations

import pytest

from fbctrl import fmt

bs4 = pytest.importorskip("bs4")
markdown_it = pytest.importorskip("markdown_it")
dollarmath = pytest.importorskip("mdit_py_plugins.dollarmath")

# the robustness table's label that once split its rows (it carries two "|")
OLD_LABEL = "paper-text rates (no ÷10, no |W_fb|/|W_out|)"
NASTY = [OLD_LABEL, "a*b*c", "W_fb and W_out", "`code`", "# heading", "<b>html</b>", "$x$ dollars", "[link](x)",
         "back\\slash", "> quote", "two\nlines"]


def _render(md: str):
    """Rows of cell texts of the one table in ``md``, and the parsed HTML."""
    parser = markdown_it.MarkdownIt("commonmark").enable("table").use(dollarmath.dollarmath_plugin)
    soup = bs4.BeautifulSoup(parser.render(md), "html.parser")
    tables = soup.find_all("table")
    assert len(tables) == 1, f"{len(tables)} tables rendered from:\n{md}"
    return [[c.get_text() for c in tr.find_all(["th", "td"])] for tr in tables[0].find_all("tr")], soup


def _naive(header, rows) -> str:
    """How the tables were built before: cells joined with " | " as they are."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(":--" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def test_the_old_label_broke_a_naively_built_row():
    header = ["claim", "change", "effect", "verdict", "flips?"]
    row = ["Fig 4b: local alignment", OLD_LABEL, "0.0115 [0.0069, 0.016], n 10, p 0.0003", "agrees", "flips"]
    cells, _ = _render(_naive(header, [row]))
    # the pipes of |W_fb| and |W_out| end cells: the effect column shows "W_fb", the verdict "/"
    assert cells[1] != row and cells[1][2].strip() == "W_fb"
    cells, _ = _render(fmt.markdown_table(header, [row], align="lllll"))
    assert cells == [header, row]


@pytest.mark.parametrize("text", NASTY)
def test_every_cell_reads_back_as_written(text):
    header = ["name", text]
    md = fmt.markdown_table(header, [[text, "1"], ["x", text]], align="ll")
    cells, soup = _render(md)
    want = " ".join(text.splitlines())
    assert cells == [["name", want], [want, "1"], ["x", want]]
    assert not soup.find_all(["strong", "em", "code", "a", "b", "h1", "blockquote"])
    assert not soup.select(".math")


def test_markup_cells_stay_markup_and_escape_their_own_text():
    md = fmt.markdown_table(["a", "b", "c"], [[fmt.bold("total*"), fmt.code("make html | tee `log`"), "x_y"]],
                            align="lll")
    cells, soup = _render(md)
    assert cells[1] == ["total*", "make html | tee `log`", "x_y"]
    assert soup.find("strong").get_text() == "total*"
    assert soup.find("code").get_text() == "make html | tee `log`"


@pytest.mark.parametrize("rows, align, message", [
    ([["1", "2", "3"]], "ll", "row 0 has 3 cells"),
    ([["1", " "]], "ll", "row 0 has an empty cell"),
    ([["1", "2"]], "lx", "align must have one of l, r, c per column"),
    ([["1", "2"]], "lll", "align must have one of l, r, c per column"),
])
def test_bad_tables_are_refused_with_one_line(rows, align, message):
    with pytest.raises(ValueError, match=message):
        fmt.markdown_table(["a", "b"], rows, align=align)


def test_default_alignment_and_displayable():
    md = fmt.markdown_table(["a", "b", "c"], [["1", "2", "3"]])
    assert md.splitlines()[1] == "| :-- | --: | --: |"
    assert fmt.md_table(["a", "b", "c"], [["1", "2", "3"]]).data == md


@pytest.mark.parametrize("x, digits, s", [
    (0.0123456, 3, "0.0123"), (1.23456, 3, "1.23"), (123.456, 3, "123"), (12345.6, 3, "12300"),
    (1.2345e-5, 3, "1.23 × 10⁻⁵"), (2.5e6, 2, "2.5 × 10⁶"), (0, 3, "0"), (float("nan"), 3, "n/a"),
    (0.0009996, 3, "0.00100"), (-0.5, 2, "-0.50"),
])
def test_fmt_num(x, digits, s):
    assert fmt.fmt_num(x, digits) == s


@pytest.mark.parametrize("values, s", [
    ([0.0123, 0.0131, 0.0119], "0.0124 ± 0.0004"),
    ([36.299, 36.403], "36.35 ± 0.05"),
    ([0.015822, 0.01586], "0.01584 ± 0.00002"),
    ([1.0, 1.2], "1.10 ± 0.10"),
    ([100, 130, 170], "133 ± 20"),
    ([1.2e-5, 1.3e-5], "(1.25 ± 0.05) × 10⁻⁵"),
    ([0.5], "0.500"),
    ([2.0, 2.0], "2.00 ± 0"),
    ([float("nan"), 1.0, 1.2], "1.10 ± 0.10"),
])
def test_fmt_pm(values, s):
    assert fmt.fmt_pm(values) == s


def test_mean_sem():
    import numpy as np

    m, sem = fmt.mean_sem(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert np.allclose(m, [2.0, 4.0])
    assert np.allclose(sem, [1.0, 2.0])
