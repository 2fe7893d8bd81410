"""The built book, as a reader gets it: copy the book's sources into a temporary folder, name the
repository ``someone/something`` there (``python -m fbctrl.book repository``, as the Pages build
does with its own name), build the HTML from the committed notebooks (``jupyter-book build -W
--keep-going``, once for this module; executes nothing) and walk it. Every chapter of
``_toc.yml`` has its page, every notebook page shows at least as many figures as its notebook
has image outputs, no glue key, role, cross-reference, raw Markdown or "nan" is left in a page,
every table row has as many cells as its header and no empty cell, the introduction's verdict
section has its forest plot and one table with a filled row per claim, and every launch button,
the footer and the cite page name the repository set. The build takes about a minute."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.helpers import ROOT
from fbctrl.book import repository, runner
from fbctrl import book
from fbctrl.experiments.stats import Verdict
from fbctrl.experiments.verdicts import CLAIMS

bs4 = pytest.importorskip("bs4")  # comes with jupyter-book's theme

CHAPTERS = runner.toc_files()
NOTEBOOK_CHAPTERS = [f for f in CHAPTERS if (ROOT / f"{f}.ipynb").is_file()]
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
HIDDEN_OUTPUT_TAGS = {"remove-output", "remove-cell"}
# text a reader must never see: raw MyST roles, unresolved references, myst-nb / docutils messages
RAW_MARKERS = ["{glue:", "{glue}", "{doc}", "{ref}", "{numref}", "{cite", "{eq}", "???",
               "[myst-nb.", "[myst.", "Pending glue reference", "**", "| :--", "| --:", "|---"]
# a number that is not one, in any case, as a word of its own
NAN = re.compile(r"(?<![\w.])nan(?![\w])", re.I)
# the repository the build names, and the placeholder the book once named
REPOSITORY = "someone/something"
PLACEHOLDER = "github.com/fbctrl/fbctrl-book"
# what the temporary copy needs to build (the build reads nothing else)
SOURCES = ("_config.yml", "_toc.yml", "_static", "book", "CITATION.cff", "pyproject.toml", "LICENSE")


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    found = str(exe) if exe.is_file() else shutil.which("jupyter-book")
    if not found:
        pytest.skip("jupyter-book is not installed (pip install -e '.[book]')")
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(html folder, build result) of a strict build of a copy of the book, its repository set to
    :data:`REPOSITORY`, in a temporary folder."""
    out = tmp_path_factory.mktemp("book-build")
    for rel in SOURCES:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, out / rel, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copy(src, out / rel)
    repository.set_repository(REPOSITORY, out)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([_jupyter_book(), "build", str(out), "-W", "--keep-going"],
                         capture_output=True, text=True, timeout=1200, env=env, cwd=out)
    html = out / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.fail("the build wrote no HTML:\n" + (res.stdout + res.stderr)[-3000:])
    return html, res


def _page(html: Path, chapter: str):
    return bs4.BeautifulSoup((html / f"{chapter}.html").read_text(encoding="utf-8"), "html.parser")


def _article(soup):
    return soup.find("article") or soup.find("main") or soup


def test_build_has_no_warnings(built):
    _, res = built
    log = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout + res.stderr)  # without colours
    warnings = [line for line in log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    assert res.returncode == 0 and not warnings, \
        f"jupyter-book build -W failed (exit {res.returncode}):\n" + "\n".join(warnings[:40] or log[-3000:].splitlines())


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_has_its_page(built, chapter):
    html, _ = built
    assert (html / f"{chapter}.html").is_file(), f"{chapter}.html is missing from the built book"
    soup = _page(html, chapter)
    assert _article(soup).find("h1"), f"{chapter}.html has no title"


def _image_outputs(path: Path) -> int:
    """Image outputs of a notebook that the HTML shows (not removed by tags, not widgets)."""
    nb = nbformat.read(path, as_version=4)
    n = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or HIDDEN_OUTPUT_TAGS & set(cell.metadata.get("tags", [])):
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_MIME not in data and any(m in data for m in IMAGE_MIMES):
                n += 1
    return n


@pytest.mark.parametrize("chapter", NOTEBOOK_CHAPTERS)
def test_notebook_pages_show_every_figure(built, chapter):
    html, _ = built
    expected = _image_outputs(ROOT / f"{chapter}.ipynb")
    imgs = _article(_page(html, chapter)).find_all("img")
    assert len(imgs) >= expected, f"{chapter}: {len(imgs)} <img> in the page, {expected} image outputs in the notebook"
    for img in imgs:
        src = img.get("src", "")
        assert src.startswith("data:") or (html / chapter).parent.joinpath(src).resolve().is_file(), \
            f"{chapter}: image {src!r} is not in the built book"


def _visible_text(soup) -> str:
    art = _article(soup)
    for tag in art.find_all(["script", "style", "pre"]):  # code listings may quote roles on purpose
        tag.decompose()
    for tag in art.select(".math"):  # LaTeX such as v^\mathrm{ref}
        tag.decompose()
    return art.get_text(" ")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nothing_left_unresolved(built, chapter):
    html, _ = built
    soup = _page(html, chapter)
    assert not soup.select(".system-message, .problematic"), f"{chapter}: a docutils/myst-nb message in the page"
    text = _visible_text(soup)
    found = [m for m in RAW_MARKERS if m in text]
    assert not found, f"{chapter}: unresolved markup {found} in the page: " + \
        "; ".join(text[max(0, text.find(m) - 60):text.find(m) + 60].replace("\n", " ") for m in found)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_raw_markup_and_no_nan(built, chapter):
    html, _ = built
    text = _visible_text(_page(html, chapter))
    found = [m for m in RAW_MARKERS if m in text] + NAN.findall(text)
    assert not found, f"{chapter}: {found} in the page: " + "; ".join(
        text[max(0, text.find(m) - 60):text.find(m) + 60].replace("\n", " ") for m in found)


def _cells(tr) -> list:
    """The cells of one table row, a cell spanning k columns counted k times."""
    out = []
    for td in tr.find_all(["td", "th"], recursive=False):
        out += [td] * int(td.get("colspan", 1))
    return out


VERDICT_WORDS = {v.value for v in Verdict}


def _row_problems(k: int, i: int, cells: list, width: int, verdict_columns: list[int]) -> list[str]:
    """A row of another width than the header, an empty cell, a verdict column without a verdict
    word (what a cell split by a stray "|" leaves: the pieces shift into the next columns)."""
    texts = [c.get_text(" ", strip=True) for c in cells]
    out = []
    if len(cells) != width:
        out.append(f"table {k + 1}, row {i}: {len(cells)} cells, the header {width}: " + " | ".join(texts)[:200])
    empty = [j + 1 for j, (c, t) in enumerate(zip(cells, texts)) if not t and not c.find("img")]
    if empty:
        out.append(f"table {k + 1}, row {i}: empty cell(s) in column(s) {empty}")
    for j in verdict_columns:
        if j < len(texts) and texts[j] and texts[j].split()[0] not in VERDICT_WORDS:
            out.append(f"table {k + 1}, row {i}: column {j + 1} is a verdict column but reads {texts[j][:60]!r}")
    return out


def table_problems(soup) -> tuple[list[str], int, int]:
    """(problems, tables, body cells) of every table of a page (:func:`_row_problems`)."""
    problems, n_tables, n_cells = [], 0, 0
    for k, table in enumerate(_article(soup).find_all("table")):
        rows = table.find_all("tr")
        if not rows:
            continue
        n_tables += 1
        head = [c.get_text(" ", strip=True).lower() for c in _cells(rows[0])]
        verdict_columns = [j for j, h in enumerate(head) if h.startswith("verdict") or h == "after the correction"]
        for i, tr in enumerate(rows[1:], start=1):
            cells = _cells(tr)
            n_cells += len(cells)
            problems += _row_problems(k, i, cells, len(head), verdict_columns)
    return problems, n_tables, n_cells


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_table_row_is_whole(built, chapter):
    html, _ = built
    problems, _, _ = table_problems(_page(html, chapter))
    assert not problems, f"{chapter}: " + "\n".join(problems[:20])


def test_the_verdict_section_has_the_forest_plot_and_one_filled_table(built):
    html, _ = built
    section = _page(html, CHAPTERS[0]).find("section", id="verdict")
    assert section is not None, "the introduction page has no Verdict section"
    imgs = section.find_all("img")
    assert len(imgs) == 1 and (html / "book").joinpath(imgs[0]["src"]).resolve().is_file(), \
        "the verdict section must show the forest plot, glued from the paper-protocol chapter"
    tables = section.find_all("table")
    assert len(tables) == 1, f"{len(tables)} tables in the verdict section, one expected"
    rows = tables[0].find("tbody").find_all("tr")
    assert len(rows) == len(CLAIMS), f"{len(rows)} rows in the verdict table, {len(CLAIMS)} claims"
    for tr in rows:
        cells = [td.get_text(" ", strip=True) for td in tr.find_all("td")]
        assert len(cells) == 4 and all(cells), f"a verdict row with a missing cell: {cells}"
        assert "favours the paper" in cells[1], cells


def test_links_name_the_repository_set(built):
    html, _ = built
    url = f"https://github.com/{REPOSITORY}"
    for page in sorted(html.rglob("*.html")):
        assert PLACEHOLDER not in page.read_text(encoding="utf-8"), f"{page.relative_to(html)} names {PLACEHOLDER}"
    soup = _page(html, "book/adaptation")
    hrefs = [a.get("href", "") for a in soup.find_all("a")]
    colab = [h for h in hrefs if "colab.research.google.com" in h]
    binder = [h for h in hrefs if "mybinder.org" in h]
    assert colab and all(f"/github/{REPOSITORY}/blob/" in h for h in colab), colab
    assert binder and all(f"/gh/{REPOSITORY}/" in h for h in binder), binder
    assert f"{url}/blob/main/LICENSE" in hrefs, "the footer's licence link"
    assert url in _page(html, "book/cite").get_text(), "the cite page"
    for nb in (html / "_sources" / "book").glob("*.ipynb"):
        assert url in nb.read_text(encoding="utf-8"), f"{nb.name}: the downloaded notebook's Colab cell"
