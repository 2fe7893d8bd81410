"""Where the book's data lives: the repository root and the default folders of the notebooks.

The notebooks' defaults (``checkpoint_dir=None``, ``results_dir=None``) resolve here, from the
repository, not from the working folder, so a notebook runs the same from the repository root,
from ``book/`` or from anywhere else (``papermill --cwd``). A path a user passes explicitly is
used as given (a relative one is relative to the working folder).

The root is the folder that holds the ``fbctrl`` package (an editable install or a checkout),
recognised by the book's ``_toc.yml`` beside it. The environment variable ``FBCTRL_ROOT``
overrides it (e.g. for a package installed into site-packages, with the data elsewhere).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["ENV_ROOT", "DEFAULT_DIRS", "PACKAGE_DIR", "SOURCE_ROOT", "repo_root", "default_dir", "git_commit"]

PACKAGE_DIR = Path(__file__).resolve().parent   # the fbctrl package
SOURCE_ROOT = PACKAGE_DIR.parent                  # the folder holding it (the repository in a checkout)

ENV_ROOT = "FBCTRL_ROOT"

# notebook parameter -> folder under the repository root that is its default
DEFAULT_DIRS = {
    "checkpoint_dir": "checkpoints",
    "results_dir": "results",
}


def repo_root() -> Path:
    """The repository root (absolute): ``$FBCTRL_ROOT`` if set, else the folder above the
    ``fbctrl`` package if it holds the book's ``_toc.yml``. Raises a one-line ``ValueError``
    saying what to set otherwise."""
    env = os.environ.get(ENV_ROOT)
    if env:
        root = Path(env).expanduser().resolve()
        if not root.is_dir():
            raise ValueError(f"{ENV_ROOT} {env!r} is not a folder (set it to the book's repository)")
        return root
    root = SOURCE_ROOT
    if not (root / "_toc.yml").is_file():
        raise ValueError(f"the fbctrl package at {root} is not inside the book's repository (no _toc.yml "
                         f"beside it): set {ENV_ROOT} to the repository folder, or pass the folder explicitly")
    return root


def default_dir(name: str) -> Path:
    """The default folder of the notebook parameter ``name`` (``checkpoint_dir`` ->
    ``<root>/checkpoints``, ``results_dir`` -> ``<root>/results``), absolute."""
    if name not in DEFAULT_DIRS:
        raise ValueError(f"{name} has no default folder (parameters with one: {', '.join(DEFAULT_DIRS)})")
    return repo_root() / DEFAULT_DIRS[name]


def git_commit() -> str | None:
    """The short commit of the package's checkout (provenance of checkpoints and result files),
    or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=PACKAGE_DIR, timeout=5)
        return out.stdout.strip() or None
    except Exception:  # noqa: BLE001
        return None
