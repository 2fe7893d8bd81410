"""The first code cell of every notebook: on Colab it fetches and installs the book, elsewhere it
does nothing and prints nothing.

A notebook opened on Colab from the launch button arrives alone, without the repository beside
it and without the package. Its first code cell (tagged ``colab-setup``, hidden in the HTML with
``remove-input`` and ``remove-output``) then clones the repository, installs it with the
notebooks' extra (``pip install -e "<clone>[book]"``) and moves to the clone's ``book/`` folder,
so that the rest of the notebook runs as it does in a checkout. Environment variables:

* ``FBCTRL_REPO`` -- the repository to clone (default: ``repository.url`` of ``_config.yml``);
  a local path works too, e.g. to test the cell against a local clone;
* ``FBCTRL_CLONE`` -- where to clone it (default ``/content/fbctrl-book``); an existing clone
  there is reused;
* ``FBCTRL_FORCE_COLAB=1`` -- run the Colab branch outside Colab too (for testing).

Command line (rewrites the notebooks in place, leaving their other cells untouched)::

    python -m fbctrl.book.colab add book/*.ipynb      # add or update the cell
    python -m fbctrl.book.colab check book/*.ipynb    # exit 1 if a notebook lacks the current cell
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

from ..paths import SOURCE_ROOT

__all__ = ["TAG", "TAGS", "repository_url", "cell_source", "has_current_cell", "add_cell", "main"]

TAG = "colab-setup"
TAGS = ["remove-input", "remove-output", TAG]
ROOT = SOURCE_ROOT

_TEMPLATE = '''\
# On Colab only (elsewhere it does nothing): clone the book, install it, work in its book/ folder.
# FBCTRL_REPO: another repository or clone; FBCTRL_CLONE: where; FBCTRL_FORCE_COLAB=1: run it anyway.
import os, sys
if "google.colab" in sys.modules or os.environ.get("FBCTRL_FORCE_COLAB") == "1":
    import importlib, pathlib, site, subprocess
    repo = os.environ.get("FBCTRL_REPO", "{url}")
    clone = pathlib.Path(os.environ.get("FBCTRL_CLONE", "/content/fbctrl-book")).resolve()
    if not (clone / "_toc.yml").is_file():
        depth = ["--depth", "1"] if "://" in repo else []
        subprocess.run(["git", "clone", "-q", *depth, repo, str(clone)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", f"{{clone}}[book]"], check=True)
    for d in site.getsitepackages(): site.addsitedir(d)  # the editable install, in this kernel
    importlib.invalidate_caches()
    os.environ["FBCTRL_ROOT"] = str(clone)
    os.chdir(clone / "book")'''


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """``repository.url`` of the book's ``_config.yml``."""
    url = (yaml.safe_load(Path(config).read_text()).get("repository") or {}).get("url")
    if not url:
        raise ValueError(f"{config}: no repository.url to clone on Colab")
    return str(url)


def cell_source(url: str | None = None) -> str:
    """The source of the Colab cell, cloning ``url`` (default :func:`repository_url`)."""
    return _TEMPLATE.format(url=url or repository_url())


def _new_cell(source: str):
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = TAG
    cell.metadata["tags"] = list(TAGS)
    return cell


def _find(nb) -> int | None:
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and TAG in c.metadata.get("tags", []):
            return i
    return None


def has_current_cell(nb, url: str | None = None) -> bool:
    """Whether the notebook's first code cell is the current Colab cell (source and tags),
    without outputs."""
    src = cell_source(url)
    code = [c for c in nb.cells if c.cell_type == "code"]
    return bool(code) and code[0].source == src and code[0].metadata.get("tags") == TAGS \
        and not code[0].get("outputs")


def add_cell(path: Path, url: str | None = None) -> bool:
    """Add the Colab cell to the notebook at ``path`` as its first code cell (before the
    parameters), or bring an existing one up to date; other cells and outputs are untouched.
    Returns whether the file changed."""
    path = Path(path)
    raw = path.read_text()
    nb = nbformat.reads(raw, as_version=4)
    i = _find(nb)
    if i is not None:
        del nb.cells[i]
    first_code = next((k for k, c in enumerate(nb.cells) if c.cell_type == "code"), len(nb.cells))
    nb.cells.insert(first_code, _new_cell(cell_source(url)))
    out = nbformat.writes(nb) + "\n"
    if out == raw:
        return False
    path.write_text(out)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fbctrl.book.colab", description="The notebooks' Colab cell.")
    p.add_argument("cmd", choices=["add", "check"])
    p.add_argument("notebooks", nargs="+", type=Path)
    a = p.parse_args(argv)
    bad = []
    for nb_path in a.notebooks:
        if not nb_path.is_file():
            p.error(f"notebooks: {str(nb_path)!r} is not a file")
        if a.cmd == "add":
            print(f"{nb_path}: {'updated' if add_cell(nb_path) else 'already current'}")
        else:
            import nbformat

            if not has_current_cell(nbformat.read(nb_path, as_version=4)):
                bad.append(str(nb_path))
    if bad:
        print("no current Colab cell first (run python -m fbctrl.book.colab add): " + ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
