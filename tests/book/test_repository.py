"""The repository URL, set in one place (``fbctrl.book.repository``): setting it on a copy of the
book's files rewrites every copy (config and footer, Colab cells, citation file, cite page,
pyproject) and leaves no other repository named; the check finds a copy that disagrees."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.helpers import ROOT
from fbctrl.book import colab, repository

NEW = "https://github.com/someone/something"


@pytest.fixture
def copy(tmp_path):
    """The files that carry the URL, copied under tmp_path as in the repository."""
    for rel in repository.COPIES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        shutil.copy(nb, tmp_path / "book" / nb.name)
    return tmp_path


def test_the_committed_copies_agree():
    assert repository.check(ROOT) == []


def test_setting_it_rewrites_every_copy(copy):
    old = repository.repository_url(copy)
    changed = repository.set_repository("someone/something", copy)
    notebooks = sorted((copy / "book").glob("*.ipynb"))
    assert {p.relative_to(copy).as_posix() for p in changed} == set(repository.COPIES) | {
        p.relative_to(copy).as_posix() for p in notebooks}
    cfg = yaml.safe_load((copy / "_config.yml").read_text())
    assert cfg["repository"]["url"] == NEW
    assert f"{NEW}/blob/main/LICENSE" in cfg["html"]["extra_footer"]
    assert yaml.safe_load((copy / "CITATION.cff").read_text())["repository-code"] == NEW
    assert f"url     = {{{NEW}}}" in (copy / "book" / "cite.md").read_text()
    for path in [copy / rel for rel in repository.COPIES] + notebooks:
        assert old not in path.read_text(), f"{path.name} still names {old}"
    for nb in notebooks:
        assert colab.has_current_cell(nbformat.read(nb, as_version=4), NEW)
    assert repository.check(copy) == []
    assert repository.set_repository(NEW + ".git", copy) == []        # the same URL: nothing to change


def test_a_longer_name_is_not_taken_for_the_url(copy):
    repository.set_repository("someone/something", copy)
    cite = copy / "book" / "cite.md"
    cite.write_text(cite.read_text() + f"\nSee also {NEW}-extras.\n")
    repository.set_repository("other/name", copy)
    assert f"{NEW}-extras" in cite.read_text()
    assert any("book/cite.md: names" in p and f"{NEW}-extras" in p for p in repository.check(copy))


def test_check_finds_a_stale_copy(copy):
    cff = copy / "CITATION.cff"
    cff.write_text(cff.read_text().replace(repository.repository_url(copy), NEW))
    assert repository.check(copy) == [f"CITATION.cff: names {NEW}"]


@pytest.mark.parametrize("name", ["someone", "someone/", "some one/x", "https://gitlab.com/a/b", "a/b/c", ""])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError, match="repository must be owner/name or https://github.com/owner/name"):
        repository.github_url(name)


@pytest.mark.parametrize("name, url", [("a/b", "https://github.com/a/b"), ("https://github.com/a/b.git", "https://github.com/a/b"),
                                       ("Some-One/some.thing_2/", "https://github.com/Some-One/some.thing_2")])
def test_names_and_urls(name, url):
    assert repository.github_url(name) == url


def test_command_line_refuses_a_bad_name_in_one_line():
    res = subprocess.run([sys.executable, "-m", "fbctrl.book", "repository", "not a name"], capture_output=True,
                         text=True, cwd=ROOT)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "fbctrl.book: error: argument OWNER/NAME: owner/name or https://github.com/owner/name, got 'not a name'"]
