"""The project stands alone: no tracked text file refers to a document, a folder or an issue
outside the repository. A fact the code relies on is cited from the book's Methods page
(``(Methods, "Adaptation")``), a file by its path inside the repository.

Notebooks are checked on their cells' sources; their outputs are printed from files that are
themselves checked here."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.helpers import ROOT

# Built from pieces so that this file does not match itself.
OUTSIDE = {
    "a specification document cited as a reference": re.compile(r"\b" + "SP" + r"EC\b"),
    "a path on the machine the project was written on": re.compile("/wo" + "rk/"),
    "a folder outside the repository": re.compile(r"(?<![\w.-])" + "sha" + "red/"),
    "an issue cited by its title": re.compile(r"\bissue\s+['\"‘“]", re.I),
}


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [f for f in out.split("\0") if f]


def _text(path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        return "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
    return text


def problems(name: str, text: str) -> list[str]:
    """Each line of ``text`` that refers outside the project, as 'name:line: what'."""
    found = []
    for i, line in enumerate(text.splitlines(), 1):
        for what, pattern in OUTSIDE.items():
            if pattern.search(line):
                found.append(f"{name}:{i}: {what}: {line.strip()[:100]}")
    return found


def test_no_tracked_file_refers_outside_the_project():
    found = []
    for name in _tracked():
        path = ROOT / name
        if path.is_file() and (text := _text(path)) is not None:
            found += problems(name, text)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("line, bad", [
    ("the loss (" + "SP" + "EC 3)", True),
    ("see " + "SP" + "EC.md", True),
    ("saved to /wo" + "rk/main/results", True),
    ("read sha" + "red/notes.md", True),
    ("as is" + "sue 'verdicts' asked", True),
    ("as is" + "sue “rates” asked", True),
    ('the loss (Methods, "Pre-training")', False),
    ("a FigureSpec and a NetworkSpec", False),
    ("a shared file system; tests/data/x.npz", False),
    ("(pytorch/pytorch issue 142815)", False),
])
def test_the_check_sees_each_kind_of_reference(line, bad):
    assert bool(problems("x", line)) == bad
