"""Where the book's data lives (fbctrl.paths): the repository root found beside the package or
set by FBCTRL_ROOT, the notebooks' default folders under it, one-line errors naming what to set,
and the checkout's commit."""

from __future__ import annotations

import subprocess

import pytest

from fbctrl import paths
from tests.helpers import ROOT


@pytest.fixture
def no_env_root(monkeypatch):
    monkeypatch.delenv(paths.ENV_ROOT, raising=False)


def test_the_root_is_the_checkout_holding_the_package(no_env_root):
    assert paths.repo_root() == ROOT.resolve()
    assert paths.repo_root().is_absolute() and (paths.repo_root() / "_toc.yml").is_file()
    assert paths.default_dir("checkpoint_dir") == ROOT.resolve() / "checkpoints"
    assert paths.default_dir("results_dir") == ROOT.resolve() / "results"


def test_fbctrl_root_overrides_it_and_must_be_a_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    monkeypatch.setenv(paths.ENV_ROOT, "~/data")                     # expanded, then made absolute
    assert paths.repo_root() == (tmp_path / "data").resolve()
    assert paths.default_dir("results_dir") == (tmp_path / "data" / "results").resolve()
    monkeypatch.setenv(paths.ENV_ROOT, str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="^FBCTRL_ROOT '.*missing' is not a folder") as exc:
        paths.repo_root()
    assert "\n" not in str(exc.value)


def test_a_package_outside_the_repository_says_what_to_set(no_env_root, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "SOURCE_ROOT", tmp_path)                # no _toc.yml beside the package
    with pytest.raises(ValueError, match="not inside the book's repository .*set FBCTRL_ROOT") as exc:
        paths.repo_root()
    assert "\n" not in str(exc.value)


def test_a_parameter_without_a_default_folder_is_named():
    with pytest.raises(ValueError, match="^out_dir has no default folder \\(parameters with one: "
                                         "checkpoint_dir, results_dir\\)$"):
        paths.default_dir("out_dir")


def test_git_commit_is_the_checkouts_head_and_none_outside_one(monkeypatch, tmp_path):
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    if not head:
        pytest.skip("the tests run outside a git checkout")
    short = paths.git_commit()
    assert short and len(short) >= 7 and head.startswith(short)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setattr(paths, "PACKAGE_DIR", tmp_path)               # a folder that is no checkout
    assert paths.git_commit() is None
