"""Running the book from anywhere: folder defaults resolved from the repository, not the working
folder (fbctrl.paths); the Colab cell of every notebook (fbctrl.book.colab); the install extra and
the Binder pins. No kernel is started."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

from tests.helpers import ROOT
from fbctrl import book, paths
from fbctrl.book import colab

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


# ---- folder defaults ---------------------------------------------------------------------------

def test_defaults_resolve_from_the_repository_whatever_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.ENV_ROOT, raising=False)
    monkeypatch.chdir(tmp_path)
    P = book.validate_params(profile="default", checkpoint_dir=None, results_dir=None)
    assert P.checkpoint_dir == str(ROOT / "checkpoints")
    assert P.results_dir == str(ROOT / "results")
    assert paths.repo_root() == ROOT


def test_explicit_relative_paths_are_relative_to_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "nets").mkdir()
    monkeypatch.chdir(tmp_path)
    P = book.validate_params(profile="default", checkpoint_dir="nets")
    assert Path(P.checkpoint_dir).resolve() == (tmp_path / "nets").resolve()
    with pytest.raises(ValueError, match=r"^checkpoint_dir '\.\./checkpoints' is not a folder \(a relative path"):
        book.validate_params(profile="default", checkpoint_dir="../checkpoints")


def test_root_override(tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    monkeypatch.setenv(paths.ENV_ROOT, str(tmp_path))
    assert book.validate_params(profile="default", results_dir=None).results_dir == str(tmp_path / "results")
    with pytest.raises(ValueError) as exc:  # no checkpoints/ under that root
        book.validate_params(profile="default", checkpoint_dir=None)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("checkpoint_dir None means")
    monkeypatch.setenv(paths.ENV_ROOT, str(tmp_path / "nowhere"))
    with pytest.raises(ValueError) as exc:
        book.validate_params(profile="default", results_dir=None)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("results_dir") and paths.ENV_ROOT in msg


@pytest.mark.parametrize("kw, start", [
    (dict(results_dir=3), "results_dir must be a folder path, or None"),
    (dict(other_dir=None), "other_dir must be a folder path, got None"),
    (dict(results_dir="/no/such/folder"), "results_dir '/no/such/folder' is not a folder"),
])
def test_bad_folders_stop_with_one_line(kw, start):
    with pytest.raises(ValueError) as exc:
        book.validate_params(profile="default", **kw)
    assert "\n" not in str(exc.value) and str(exc.value).startswith(start)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_do_not_resolve_data_from_the_working_folder(path):
    nb = nbformat.read(path, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "../" not in params.source, f"{path.name}: a default relative to the working folder"


# ---- the Colab cell ------------------------------------------------------------------------------

def test_colab_cell_clones_the_configured_repository():
    src = colab.cell_source()
    assert f'"{colab.repository_url()}"' in src
    assert colab.repository_url().startswith("https://github.com/")
    assert len(src.splitlines()) <= 16


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_starts_with_the_current_colab_cell(path):
    assert colab.has_current_cell(nbformat.read(path, as_version=4)), \
        f"{path.name}: run python -m fbctrl.book.colab add {path.relative_to(ROOT)}"


def test_colab_cell_does_nothing_elsewhere(monkeypatch, tmp_path):
    monkeypatch.delenv("FBCTRL_FORCE_COLAB", raising=False)
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        exec(compile(colab.cell_source(), "colab-cell", "exec"), {})
    assert out.getvalue() == "" and err.getvalue() == ""
    assert Path.cwd() == tmp_path and paths.ENV_ROOT not in os.environ


def test_add_cell_is_idempotent_and_keeps_the_rest(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# T\n\n**Parameters**"),
                nbformat.v4.new_code_cell("profile = 'default'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("x = 1")]
    f = tmp_path / "t.ipynb"
    nbformat.write(nb, f)
    assert colab.add_cell(f) is True
    assert colab.add_cell(f) is False
    cells = nbformat.read(f, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code", "code"]
    assert cells[1].metadata["tags"] == colab.TAGS and cells[2].source == "profile = 'default'"
    assert colab.main(["check", str(f)]) == 0


# ---- install extra and Binder ---------------------------------------------------------------------

def _names(lines) -> set[str]:
    out = set()
    for line in lines:
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            out.add(re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return out


def test_book_extra_brings_what_the_notebooks_need():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = _names(meta["optional-dependencies"]["book"]) | _names(meta["dependencies"])
    required = _names((ROOT / "requirements.txt").read_text().splitlines())
    assert not required - extra, f"requirements.txt names missing from the book extra: {sorted(required - extra)}"
    assert "jupyter-book>=1.0.4.post1,<2" in meta["optional-dependencies"]["book"]


def test_binder_pins_python_and_every_requirement():
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    pinned = {re.split("==", l)[0].lower().replace("_", "-"): l.split("==")[1]
              for l in lines if "==" in l and not l.startswith("#")}
    required = _names((ROOT / "requirements.txt").read_text().splitlines())
    assert not required - set(pinned), f"not pinned for Binder: {sorted(required - set(pinned))}"
    torch_req = next(l for l in (ROOT / "requirements.txt").read_text().splitlines() if l.startswith("torch=="))
    assert pinned["torch"] == torch_req.split("==")[1] + "+cpu"
    assert any("download.pytorch.org/whl/cpu" in l for l in lines)


def test_launch_buttons_open_jupyterlab():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["launch_buttons"]["notebook_interface"] == "jupyterlab"
    assert cfg["launch_buttons"]["colab_url"] and cfg["launch_buttons"]["binderhub_url"]
