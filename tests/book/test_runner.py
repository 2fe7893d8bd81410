"""The notebook runner (fbctrl.book.runner): its command line (one-line errors, exit 2), the table
of contents it reads, a failing notebook, and ``--profile paper``, which runs (or resumes) the
paper's protocol before the notebooks (the default profile and ``--no-protocol`` do not).

    python -m pytest -q tests/book/test_runner.py
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from fbctrl.book import runner
from tests.helpers import ROOT


def _record(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_plan", lambda cfg, **kw: calls.append(("protocol", cfg.results_dir, kw["device"]))
                        or {"units_done": 0, "units_left": 0, "stopped": None})
    monkeypatch.setattr(runner, "run_notebook", lambda path, params: calls.append(("notebook", path.stem,
                                                                                    params["profile"])))
    return calls


def test_paper_profile_runs_the_protocol_first(monkeypatch, capsys):
    calls = _record(monkeypatch)
    assert runner.main(["run", "--profile", "paper", "--only", "paper_protocol", "--no-progress"]) == 0
    assert [c[0] for c in calls] == ["protocol", "notebook"]
    assert calls[0][1].endswith("results/paper") and calls[0][2] == "cpu"
    assert calls[1] == ("notebook", "paper_protocol", "paper")
    assert "0 unit(s) run, 0 left" in capsys.readouterr().err


def test_default_profile_and_no_protocol_run_notebooks_only(monkeypatch):
    calls = _record(monkeypatch)
    runner.main(["run", "--only", "paper_protocol", "--no-progress"])
    runner.main(["run", "--profile", "paper", "--no-protocol", "--only", "paper_protocol", "--no-progress"])
    assert [c[0] for c in calls] == ["notebook", "notebook"]


@pytest.mark.parametrize("argv, needle", [
    (["run", "--profile", "fast"], "--profile"),
    (["run", "--device", "tpu"], "device"),
    (["run", "--only", "no_such_notebook"], "no_such_notebook"),
    (["run", "--checkpoint-dir", "/no/such/folder"], "not a folder"),
    (["run", "--bogus"], "--bogus"),
    ([], "required"),
    (["walk"], "walk"),
])
def test_runner_bad_arguments_exit_2(argv, needle, capsys):
    assert runner.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("fbctrl.book: error:") and needle in err


def test_runner_bad_argument_subprocess():
    res = subprocess.run([sys.executable, "-m", "fbctrl.book", "run", "--profile", "nope"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("fbctrl.book: error:")
    assert len(res.stderr.strip().splitlines()) == 1


def test_runner_lists_notebooks_in_toc_order(capsys):
    assert runner.main(["list"]) == 0
    listed = capsys.readouterr().out.split()
    expected = [f"{f}.ipynb" for f in runner.toc_files() if (ROOT / f"{f}.ipynb").is_file()]
    assert listed == expected


def test_toc_lists_existing_files():
    files = runner.toc_files()
    assert files[0] == "book/intro"
    assert len(files) == len(set(files)), "a file is listed twice"
    for f in files:
        found = [s for s in (".md", ".ipynb") if (ROOT / f"{f}{s}").is_file()]
        assert found, f"{f} in _toc.yml has no .md or .ipynb file"
        assert len(found) == 1, f"{f} exists as both .md and .ipynb: delete the placeholder"


def test_every_chapter_is_in_the_toc():
    listed = set(runner.toc_files())
    for p in sorted((ROOT / "book").glob("*")):
        if p.suffix in (".md", ".ipynb") and not p.name.startswith("."):
            assert f"book/{p.stem}" in listed, f"{p.name} is not in _toc.yml"


def test_a_failing_notebook_says_one_error_and_no_kernel_warning(tmp_path, capfd):
    """A notebook that fails leaves itself unchanged and raises one error naming it; the kernel's
    start-up warnings (its transport) are not printed before it (the kernel runs at log level ERROR)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('bad parameter: profile')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "fails.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match=r"fails\.ipynb failed .*bad parameter: profile"):
        runner.run_notebook(path, {})
    assert path.read_bytes() == before
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err, (out + err)[:500]


def _glue_output(name: str, text: str) -> dict:
    """A cell output as myst-nb's glue writes it (display=False)."""
    return {"output_type": "display_data", "metadata": {"scrapbook": {"name": name, "mime_prefix":
            "application/papermill.record/"}}, "data": {"application/papermill.record/text/plain": repr(text)}}


def test_a_glued_caption_replaces_the_stale_one_in_the_figure_metadata():
    import nbformat

    nb = nbformat.v4.new_notebook()
    stale = nbformat.v4.new_code_cell("fig = draw()")
    stale.metadata["mystnb"] = {"figure": {"name": "fig-scale-4a", "caption": "old text, n = 4"}}
    stale.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "<Figure>"}),
                     _glue_output("caption_scale_4a", "new text, n = 10 (it's 'quoted')"), _glue_output("other", "x")]
    plain = nbformat.v4.new_code_cell("fig = other()")
    plain.metadata["mystnb"] = {"figure": {"name": "fig-other", "caption": "hand-written"}}
    plain.outputs = [_glue_output("caption_scale_4a", "not this cell's figure")]
    nb.cells = [stale, plain]
    assert runner.sync_figure_captions(nb) == ["fig-scale-4a"]
    assert stale.metadata["mystnb"]["figure"]["caption"] == "new text, n = 10 (it's 'quoted')"
    assert plain.metadata["mystnb"]["figure"]["caption"] == "hand-written"
    assert runner.sync_figure_captions(nb) == []                     # a second pass changes nothing
