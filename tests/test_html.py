"""The built book, as a reader gets it: build the HTML from the committed notebooks into a
temporary folder (``jupyter-book build --path-output TMP -W --keep-going``, once for this
module; executes nothing) and walk it. Every chapter of ``_toc.yml`` has its page, every notebook
page shows at least as many figures as its notebook has image outputs, no glue key, role or
cross-reference is left unresolved, and the verdict tables of the introduction have every row of
``book/intro.md`` with every glued cell filled. The build takes seconds to a minute."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from fbctrl.book import runner
from fbctrl import book

bs4 = pytest.importorskip("bs4")  # comes with jupyter-book's theme

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = runner.toc_files()
NOTEBOOK_CHAPTERS = [f for f in CHAPTERS if (ROOT / f"{f}.ipynb").is_file()]
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
HIDDEN_OUTPUT_TAGS = {"remove-output", "remove-cell"}
# text a reader must never see: raw MyST roles, unresolved references, myst-nb / docutils messages
RAW_MARKERS = ["{glue:", "{glue}", "{doc}", "{ref}", "{numref}", "{cite", "{eq}", "???",
               "[myst-nb.", "[myst.", "Pending glue reference"]


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    found = str(exe) if exe.is_file() else shutil.which("jupyter-book")
    if not found:
        pytest.skip("jupyter-book is not installed (pip install -e '.[book]')")
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(html folder, build result) of a strict build of the book into a temporary folder."""
    out = tmp_path_factory.mktemp("book-build")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([_jupyter_book(), "build", str(ROOT), "--path-output", str(out), "-W", "--keep-going"],
                         capture_output=True, text=True, timeout=1200, env=env, cwd=ROOT)
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


def _verdict_tables_md() -> list[list[list[str]]]:
    """The markdown tables of intro.md's '## Verdict' section: per table, its body rows, as cells."""
    text = (ROOT / "book" / "intro.md").read_text()
    m = re.search(r"^## Verdict\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "intro.md has no '## Verdict' section"
    tables, cur = [], None
    for line in m.group(1).splitlines():
        if line.lstrip().startswith("|"):
            if cur is None:
                cur = []
                tables.append(cur)
            cur.append([c.strip() for c in line.strip().strip("|").split("|")])
        else:
            cur = None
    # drop the header and the alignment row of each table
    return [rows[2:] for rows in tables if len(rows) >= 2 and re.fullmatch(r"[\s:|-]+", "|".join(rows[1]))]


def test_verdict_tables_have_every_row_filled(built):
    html, _ = built
    md_tables = _verdict_tables_md()
    assert md_tables and sum(map(len, md_tables)) > 0, "no verdict table in intro.md"
    section = _page(html, CHAPTERS[0]).find("section", id="verdict")
    assert section is not None, "the introduction page has no Verdict section"
    html_tables = section.find_all("table")
    assert len(html_tables) == len(md_tables), f"{len(html_tables)} verdict tables in the page, {len(md_tables)} in intro.md"
    for k, (md_rows, table) in enumerate(zip(md_tables, html_tables)):
        body = table.find("tbody") or table
        rows = body.find_all("tr")
        assert len(rows) == len(md_rows), f"verdict table {k + 1}: {len(rows)} rows in the page, {len(md_rows)} in intro.md"
        for i, (md_cells, tr) in enumerate(zip(md_rows, rows)):
            cells = tr.find_all(["td", "th"])
            assert len(cells) == len(md_cells), f"verdict table {k + 1}, row {i + 1}: {len(cells)} cells"
            for j, (src, td) in enumerate(zip(md_cells, cells)):
                if "{glue" in src:
                    assert td.get_text(strip=True), \
                        f"verdict table {k + 1}, row {i + 1}, column {j + 1}: glued value missing ({src[:80]})"
