"""The book's pages as sources: the configuration, citations, and the conventions every notebook
follows (its parameters cell, no errors or progress bars in its outputs, thin cells)."""

from __future__ import annotations

import ast
import json
import re

import pytest

from fbctrl.book import colab
from tests.helpers import ROOT, notebook_cells


def test_config_does_not_execute_and_has_bibliography():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    for bib in cfg["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file()


def _cite_keys(text: str) -> set[str]:
    keys = set()
    for m in re.finditer(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text):
        keys.update(k.strip() for k in m.group(1).split(","))
    return keys


def test_citations_exist_in_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    entries = set(re.findall(r"@\w+\{([^,]+),", bib))
    for p in (ROOT / "book").glob("*"):
        if p.suffix == ".md":
            text = p.read_text()
        elif p.suffix == ".ipynb":
            text = "\n".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"])
        else:
            continue
        missing = _cite_keys(text) - entries
        assert not missing, f"{p.name} cites {sorted(missing)}, not in references.bib"


NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_conventions(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and "**Parameters**" in "".join(cells[0]["source"])
    code = [c for c in cells if c["cell_type"] == "code"]
    if colab.TAG in code[0]["metadata"].get("tags", []):  # the Colab cell (tests/integration/test_anywhere.py) comes first
        assert not code[0].get("outputs"), "the Colab cell must have no output outside Colab"
        code = code[1:]
    assert "parameters" in code[0]["metadata"].get("tags", []), \
        "the first code cell (after the Colab cell) must be tagged 'parameters'"
    after = [c for c in code[1:] if "injected-parameters" not in c["metadata"].get("tags", [])]
    assert "book.validate_params(" in "".join(after[0]["source"]), "the cell after the parameters must validate them"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for c in code:
        src = "".join(c["source"])
        assert "sys.path" not in src
        for out in c.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: a cell ended with an error"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), \
                f"{path.name}: stderr output ({''.join(out['text'])[:80]!r}) would be compared by nbval"
            text = "".join(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
            assert "%|" not in text, f"{path.name}: a progress bar in the outputs"
            assert not (out["output_type"] == "execute_result" and set(out.get("data", {})) == {"text/plain"}), \
                f"{path.name}: a bare return value shown on the page ({text[:60]}); end the line with ';'"


MAX_CELL_LINES = 15


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_stay_thin(path):
    """Every code cell, the Colab cell included, is at most 15 lines: a chapter's logic lives in
    fbctrl/book/chapters/, its table headers included."""
    nb = json.loads(path.read_text())
    long = [(i, len("".join(c["source"]).splitlines())) for i, c in enumerate(nb["cells"])
            if c["cell_type"] == "code" and len("".join(c["source"]).splitlines()) > MAX_CELL_LINES]
    assert not long, f"{path.name}: code cells longer than {MAX_CELL_LINES} lines (cell index, lines): {long}"


THIN = ("adaptation", "lr_sweep", "activity_space", "decoupling", "second_order", "online_correction", "model_and_task",
        "performance")
HIDDEN = {"remove-input", "hide-input", "remove-cell", "hide-cell"}


@pytest.mark.parametrize("name", THIN)
def test_notebook_cells_are_thin(name):
    code = [c for c in notebook_cells(name) if c["cell_type"] == "code"
            and not {"colab-setup", "parameters", "injected-parameters"} & set(c["metadata"].get("tags", []))]
    for c in code:
        src, tags = "".join(c["source"]), set(c["metadata"].get("tags", []))
        assert len(src.splitlines()) <= 15, f"{name}: a code cell of {len(src.splitlines())} lines"
        if "figure" in c["metadata"].get("mystnb", {}) or re.search(r"\bplot_\w+\(", src):
            assert not tags & HIDDEN, f"{name}: the call that makes a figure is hidden"
        else:
            assert tags & HIDDEN, f"{name}: a cell without a figure is shown: {src[:60]!r}"
        if "glue" in src:
            assert tags & HIDDEN, f"{name}: glue in a visible cell"


@pytest.mark.parametrize("path", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_glued_figure_caption_is_the_one_shown(path):
    """A figure whose cell glues its caption (the paper-scale figures) shows exactly that caption:
    none is left from data drawn before."""
    from fbctrl.book.glue import caption_key

    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if cell["cell_type"] != "code" or not fig:
            continue
        glued = [o["data"]["application/papermill.record/text/plain"] for o in cell.get("outputs", [])
                 if o.get("metadata", {}).get("scrapbook", {}).get("name") == caption_key(fig["name"])]
        if fig["name"].startswith("fig-scale-"):
            assert glued, f"{path.name}: {fig['name']} does not glue its caption"
        for text in glued:
            assert fig["caption"] == ast.literal_eval(text), f"{path.name}: the caption of {fig['name']} is stale"
