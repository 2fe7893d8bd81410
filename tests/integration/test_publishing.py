"""Publishing a reader can trust: one workflow whose Pages deploy waits for the tests and the
warnings-as-errors build, the licences, the citation file and the pages that state them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.helpers import ROOT
from fbctrl.book import runner
from fbctrl import book

WORKFLOWS = ROOT / ".github" / "workflows"


def _workflow() -> dict:
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert [f.name for f in files] == ["ci.yml"], f"one workflow expected, found {[f.name for f in files]}"
    return yaml.safe_load(files[0].read_text())


def test_deploy_needs_the_tests_and_the_strict_build():
    wf = _workflow()
    jobs = wf["jobs"]
    assert set(jobs["deploy"]["needs"]) == {"test", "build"}
    assert "push" in jobs["deploy"]["if"] and "refs/heads/main" in jobs["deploy"]["if"]
    assert any(s.get("run") == "bash .ci/run" for s in jobs["test"]["steps"])
    assert any(s.get("run") == "make html" for s in jobs["build"]["steps"])
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^html:.*\n\t\$\(BIN\)/jupyter-book build \. --all -W --keep-going$", makefile, re.M)
    assert "pytest -q tests" in makefile  # make test runs tests/integration/test_html.py too
    assert set(jobs["deploy"]["permissions"]) == {"pages", "id-token"}
    assert wf["permissions"] == {"contents": "read"}


def test_action_versions_are_current():
    text = (WORKFLOWS / "ci.yml").read_text()
    want = {"actions/checkout": "v4", "actions/setup-python": "v5", "actions/upload-pages-artifact": "v3",
            "actions/deploy-pages": "v4", "actions/configure-pages": "v5", "actions/upload-artifact": "v4"}
    used = dict(re.findall(r"uses:\s*([\w-]+/[\w-]+)@(\S+)", text))
    for action, version in used.items():
        assert want.get(action) == version, f"{action}@{version}: expected @{want.get(action)}"
    assert {"actions/deploy-pages", "actions/upload-pages-artifact", "actions/configure-pages"} <= set(used)


def test_licences():
    lic = (ROOT / "LICENSE").read_text()
    assert lic.startswith("MIT License") and "The fbctrl-book contributors" in lic
    footer = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["extra_footer"]
    assert "CC BY 4.0" in footer and "creativecommons.org/licenses/by/4.0" in footer
    readme = (ROOT / "README.md").read_text()
    assert "CC BY 4.0" in readme and "MIT" in readme


def test_citation_file():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):
        assert cff[key]
    assert cff["license"] == "MIT"
    paper = cff["references"][0]
    assert paper["title"] == "Feedback control guides credit assignment in recurrent neural networks"
    assert [a["family-names"] for a in paper["authors"]] == ["Kaleb", "Feulner", "Gallego", "Clopath"]
    assert paper["year"] == 2024


def test_cite_page_is_in_the_reference_part_and_cites_both():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    reference = next(p for p in toc["parts"] if p["caption"] == "Reference")
    files = [c["file"] for c in reference["chapters"]]
    assert "book/cite" in files and "book/running" in files
    assert set(runner.toc_files()) >= {"book/cite", "book/running"}
    text = (ROOT / "book" / "cite.md").read_text()
    assert "{cite:t}`kaleb2024feedback`" in text and "@software{fbctrl_book" in text
    assert "@inproceedings{kaleb2024feedback" in (ROOT / "book" / "references.bib").read_text()
