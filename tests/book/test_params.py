"""The book's machinery: notebook parameters, the runner's command line, the table of contents,
notebook conventions, glued-number formatting and checkpoint discovery. No kernel is started."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT
from fbctrl import fmt
from fbctrl.book import runner
from fbctrl.core import checkpoint
from fbctrl import book
from fbctrl.book import colab



# ---- validate_params -----------------------------------------------------------------------

def test_validate_params_defaults(tmp_path):
    P = book.validate_params(profile="default", device="cpu", checkpoint_dir=str(tmp_path), seeds=None,
                             rotation_deg=30, repeats=None)
    assert P.profile is book.PROFILES["default"]
    assert P.profile_name == "default"
    assert P.rotation_deg == 30.0 and isinstance(P.rotation_deg, float)
    assert P.seeds is None and P.repeats is None


@pytest.mark.parametrize("seeds, expected", [([0, 2], (0, 2)), (3, (3,)), ("0,1", (0, 1)), ("[4, 5]", (4, 5))])
def test_validate_params_seeds(seeds, expected):
    assert book.validate_params(profile="default", seeds=seeds).seeds == expected


@pytest.mark.parametrize("kw, name, allowed", [
    (dict(profile="fast"), "profile", "default, paper"),
    (dict(profile="default", device="tpu"), "device", "'cpu' or 'cuda"),
    (dict(profile="default", rotation_deg="abc"), "rotation_deg", "finite number of degrees"),
    (dict(profile="default", rotation_deg=float("nan")), "rotation_deg", "finite number of degrees"),
    (dict(profile="default", rotation_deg=True), "rotation_deg", "finite number of degrees"),
    (dict(profile="default", trials=-3), "trials", "positive integer"),
    (dict(profile="default", n_trials=0), "n_trials", "positive integer"),
    (dict(profile="default", adapt_trials=2.5), "adapt_trials", "positive integer"),
    (dict(profile="default", repeats=-1), "repeats", "positive integer"),
    (dict(profile="default", delay=-1), "delay", "non-negative integer"),
    (dict(profile="default", seeds=[0, -1]), "seeds", "non-negative integers"),
    (dict(profile="default", seeds="a,b"), "seeds", "non-negative integers"),
    (dict(profile="default", seeds=[1, 1]), "seeds", "repeat"),
    (dict(profile="default", lr=-1e-3), "lr", "positive number"),
    (dict(profile="default", controller_on="yes"), "controller_on", "True or False"),
    (dict(profile="default", target=8), "target", "0..7"),
    (dict(profile="default", checkpoint_dir="/no/such/folder"), "checkpoint_dir", "not a folder"),
    (dict(profile="default", bogus=1), "bogus", "unknown notebook parameter"),
    (dict(device="cpu"), "profile", "default, paper"),
])
def test_validate_params_errors(kw, name, allowed):
    with pytest.raises(ValueError) as exc:
        book.validate_params(**kw)
    msg = str(exc.value)
    assert "\n" not in msg
    assert name in msg and allowed in msg


def test_validate_params_cuda_unavailable():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="device 'cuda' asked for, but CUDA is not available"):
        book.validate_params(profile="default", device="cuda")


def test_register_param():
    def check(name, v):
        if v not in ("a", "b"):
            raise ValueError(f"{name} must be 'a' or 'b', got {v!r}")
        return v

    book.register_param("mode_for_test", check)
    assert book.validate_params(profile="default", mode_for_test="a").mode_for_test == "a"
    with pytest.raises(ValueError, match="mode_for_test must be 'a' or 'b'"):
        book.validate_params(profile="default", mode_for_test="c")


# ---- the runner's command line ---------------------------------------------------------------

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


# ---- table of contents and configuration ---------------------------------------------------------

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


# ---- notebook conventions --------------------------------------------------------------------------

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_conventions(path):
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and "**Parameters**" in "".join(cells[0]["source"])
    code = [c for c in cells if c["cell_type"] == "code"]
    if colab.TAG in code[0]["metadata"].get("tags", []):  # the Colab cell (tests/test_anywhere.py) comes first
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


# ---- numbers in the prose ----------------------------------------------------------------------------

@pytest.mark.parametrize("x, digits, s", [
    (0.0123456, 3, "0.0123"), (1.23456, 3, "1.23"), (123.456, 3, "123"), (12345.6, 3, "12300"),
    (1.2345e-5, 3, "1.23 × 10⁻⁵"), (2.5e6, 2, "2.5 × 10⁶"), (0, 3, "0"), (float("nan"), 3, "n/a"),
    (0.0009996, 3, "0.00100"), (-0.5, 2, "-0.50"),
])
def test_fmt_num(x, digits, s):
    assert book.fmt_num(x, digits) == s


@pytest.mark.parametrize("values, s", [
    ([0.0123, 0.0131, 0.0119], "0.0124 ± 0.0004"),
    ([36.299, 36.403], "36.35 ± 0.05"),
    ([0.015822, 0.01586], "0.01584 ± 0.00002"),
    ([1.0, 1.2], "1.10 ± 0.10"),
    ([100, 130, 170], "133 ± 20"),
    ([1.2e-5, 1.3e-5], "(1.25 ± 0.05) × 10⁻⁵"),
    ([0.5], "0.500"),
    ([2.0, 2.0], "2.00 ± 0"),
    ([float("nan"), 1.0, 1.2], "1.10 ± 0.10"),
])
def test_fmt_pm(values, s):
    assert book.fmt_pm(values) == s


def test_mean_sem():
    import numpy as np

    m, sem = fmt.mean_sem(np.array([[1.0, 2.0], [3.0, 6.0]]))
    assert np.allclose(m, [2.0, 4.0])
    assert np.allclose(sem, [1.0, 2.0])


# ---- checkpoints ---------------------------------------------------------------------------------------

def test_find_checkpoints(tmp_path):
    for name in ["fb_seed0.pt", "fb_seed2.pt", "fb_seed10.pt", "nofb_seed0.pt", "fb_n50_seed0.pt",
                 "fb0.5_seed0.pt", "fb_d3_seed0.pt", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert list(checkpoint.find_checkpoints(tmp_path, "fb")) == [0, 2, 10]
    assert list(checkpoint.find_checkpoints(tmp_path, "fb", n=50)) == [0]
    assert list(checkpoint.find_checkpoints(tmp_path, "nofb")) == [0]
    assert list(checkpoint.find_checkpoints(tmp_path, "fb", max_seeds=2)) == [0, 2]
    with pytest.raises(ValueError, match=r"seeds \[1\]"):
        checkpoint.find_checkpoints(tmp_path, "fb", seeds=[0, 1])
    (tmp_path / "fb_seed0.pt").unlink()
    (tmp_path / "fb_seed2.pt").unlink()
    (tmp_path / "fb_seed10.pt").unlink()
    assert list(checkpoint.find_checkpoints(tmp_path, "fb")) == [0]  # the only size left: n = 50
    (tmp_path / "fb_n20_seed1.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="sizes"):
        checkpoint.find_checkpoints(tmp_path, "fb")


def test_checkpoints_for_a_notebook(tmp_path):
    (tmp_path / "fb_seed0.pt").write_bytes(b"")
    (tmp_path / "fb_seed1.pt").write_bytes(b"")
    P = book.validate_params(profile="default", checkpoint_dir=str(tmp_path), seeds=[1, 5])
    assert list(book.checkpoints(P, "fb")) == [1]
    assert book.checkpoints(P, "nofb") == {}
    with pytest.raises(ValueError, match="no nofb networks .* --feedback off"):
        book.checkpoints(P, "nofb", required=True)


def test_validate_params_rules_and_rates():
    P = book.validate_params(profile="paper", rule="rflo", rules=["bptt", "rflo"], lrs=[1e-5, 5e-5],
                             rotations_deg=[30, 45], adapt_trials=None)
    assert P.rules == ("bptt", "rflo") and P.lrs == (1e-5, 5e-5) and P.rotations_deg == (30.0, 45.0)
    assert P.profile.name == "paper" and P.adapt_trials is None
    for kw, name in [(dict(rule="sgd"), "rule"), (dict(rules=["rflo", "adam"]), "rules"),
                     (dict(lrs=[1e-3, 0]), "lrs"), (dict(rotations_deg=[30, "x"]), "rotations_deg")]:
        with pytest.raises(ValueError, match=name):
            book.validate_params(profile="default", **kw)


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
