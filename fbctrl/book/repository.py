"""The book's repository URL, set in one place: ``repository.url`` of ``_config.yml``.

Jupyter Book reads it for the launch buttons (Binder, Colab) and the repository and issue
buttons. The few other files that must name the repository carry a copy, which
:func:`set_repository` rewrites from that one value and :func:`check` compares with it:

* ``_config.yml`` -- the footer's licence link;
* every notebook's Colab cell (:mod:`fbctrl.book.colab`), which clones the repository on Colab;
* ``CITATION.cff`` (``repository-code``), ``book/cite.md`` (the citation), ``pyproject.toml``
  (``Homepage``).

Command line (``make html`` runs it with ``$GITHUB_REPOSITORY`` when that is set, as it is in a
GitHub Actions run, and ``--check`` otherwise)::

    python -m fbctrl.book repository owner/name     # or a full https://github.com/owner/name
    python -m fbctrl.book repository --check        # exit 2 if a copy differs from _config.yml
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from ..paths import SOURCE_ROOT
from . import colab

__all__ = ["COPIES", "github_url", "repository_url", "set_repository", "check"]

# files (relative to the repository root) that carry a copy of the URL, besides the notebooks
COPIES = ("_config.yml", "CITATION.cff", "book/cite.md", "pyproject.toml")
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")


def github_url(repository: str) -> str:
    """``owner/name`` (as ``$GITHUB_REPOSITORY`` spells it) or ``https://github.com/owner/name``
    as the repository's URL, without a trailing slash or ``.git``."""
    name = str(repository).strip().removesuffix("/").removesuffix(".git")
    name = re.sub(r"^https://github\.com/", "", name)
    if not _NAME.fullmatch(name):
        raise ValueError(f"repository must be owner/name or https://github.com/owner/name, got {repository!r}")
    return f"https://github.com/{name}"


def repository_url(root: Path = SOURCE_ROOT) -> str:
    """The one place: ``repository.url`` of ``_config.yml`` under ``root``."""
    return colab.repository_url(Path(root) / "_config.yml")


def _notebooks(root: Path) -> list[Path]:
    return sorted((root / "book").glob("*.ipynb"))


def _replace(text: str, old: str, new: str) -> str:
    """Every occurrence of the URL ``old`` (not of a longer name that starts with it) as ``new``."""
    return re.sub(re.escape(old) + r"(?![A-Za-z0-9._-])", new, text)


def set_repository(repository: str, root: Path = SOURCE_ROOT) -> list[Path]:
    """Make ``repository`` (see :func:`github_url`) the book's repository: ``_config.yml``'s
    ``repository.url`` and every copy of it (module docstring). Returns the files it changed."""
    root = Path(root)
    new, old = github_url(repository), repository_url(root)
    changed = []
    for rel in COPIES:
        path = root / rel
        text = path.read_text()
        out = _replace(text, old, new)
        if out != text:
            path.write_text(out)
            changed.append(path)
    if repository_url(root) != new:
        raise ValueError(f"{root / '_config.yml'}: repository.url is not {old!r}, so it could not be set")
    changed += [nb for nb in _notebooks(root) if colab.add_cell(nb, new)]
    return changed


def check(root: Path = SOURCE_ROOT) -> list[str]:
    """What disagrees with ``repository.url`` of ``_config.yml``: a copy file without the URL,
    another github.com repository URL in one, a notebook whose Colab cell clones another URL."""
    root = Path(root)
    url = repository_url(root)
    problems = []
    for rel in COPIES:
        text = (root / rel).read_text()
        others = sorted({u for u in re.findall(r"https://github\.com/[A-Za-z0-9-]+/[A-Za-z0-9._-]+", text)
                         if u.removesuffix(".git") != url})
        if url not in text or others:
            problems.append(f"{rel}: " + (f"names {', '.join(others)}" if others else f"does not name {url}"))
    for nb in _notebooks(root):
        if not colab.has_current_cell(nbformat.read(nb, as_version=4), url):
            problems.append(f"{nb.relative_to(root)}: its Colab cell is not the current one, cloning {url}")
    return problems
