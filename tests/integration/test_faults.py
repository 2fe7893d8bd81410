"""Fault injection on the paper protocol's runner at tiny size (``paper --tiny``, the networks of
seed 0 and their adaptation runs): Ctrl-C (SIGINT), SIGTERM and kill -9 at seeded random moments,
then the same command again, give files equal bit for bit to an uninterrupted run's (and the same
for a signal inside a ``pretrain`` run of a few seconds, delayed feedback); a truncated
and a bit-flipped unit and a truncated training-curve file are named and recomputed; two
processes given the same shard on one folder share its units without computing one twice; an
unwritable output is refused before any work.

The interrupted commands run in subprocesses, as a user or a cluster runs them, and are resumed in
this process with the same arguments (one CPU thread, as ``--shard 0/2`` sets, in both); about a
minute of CPU in all, most of it the subprocesses' start (importing torch).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import ROOT
from fbctrl.__main__ import main
from fbctrl.experiments import paper, store

STAGES = "pretrain,adapt"


def _command(ck: Path, res: Path, only: str = STAGES) -> list[str]:
    return [sys.executable, "-m", "fbctrl", "paper", "--tiny", "--checkpoint-dir", str(ck), "--results-dir", str(res),
            "--only", only, "--shard", "0/2", "--no-calibrate", "--no-progress"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run(ck: Path, res: Path, only: str = STAGES) -> str:
    """The same command in this process (a resumed run; one thread, as ``--shard`` sets, then the
    test process's threads again); returns what it printed."""
    threads, buf = torch.get_num_threads(), io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            assert main(_command(ck, res, only)[3:]) == 0
    finally:
        torch.set_num_threads(threads)
    return buf.getvalue()


def _outputs(folder: Path) -> list[Path]:
    """The files a run leaves: units, checkpoints, sidecars, curves (not claims, probes or temporaries)."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _arrays(path: Path) -> dict:
    if path.suffix == ".pt":
        return {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files if k != "meta"}
    return {}


def _max_abs_difference(a: Path, b: Path) -> float:
    """Largest |a - b| over every array of every output file (and the file lists must agree);
    asserts equal shapes, dtypes and NaN positions (bit-for-bit equality gives 0.0)."""
    assert _outputs(a) == _outputs(b)
    worst = 0.0
    for rel in _outputs(a):
        x, y = _arrays(a / rel), _arrays(b / rel)
        assert x.keys() == y.keys(), rel
        for k in x:
            assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, (rel, k)
            if x[k].dtype.kind in "fc":
                assert np.array_equal(np.isnan(x[k]), np.isnan(y[k])), (rel, k)
                d = np.abs(np.nan_to_num(x[k]) - np.nan_to_num(y[k]))
                worst = max(worst, float(d.max()) if d.size else 0.0)
            else:
                worst = max(worst, float(not np.array_equal(x[k], y[k])))
    return worst


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run."""
    root = tmp_path_factory.mktemp("reference")
    _run(root / "ck", root / "res")
    assert len(_outputs(root)) == 26       # 2 networks x 3 files + 20 adaptation units
    return root


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_an_interrupted_run_resumes_to_the_same_files_bit_for_bit(reference, tmp_path, sig):
    rng = np.random.default_rng(23 + int(sig))          # the moment: after k files, then a random delay
    k, delay = int(rng.integers(1, 21)), float(rng.uniform(0.0, 0.3))
    proc = subprocess.Popen(_command(tmp_path / "ck", tmp_path / "res"), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and len(_outputs(tmp_path)) < k:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    rc = proc.returncode
    assert rc == (-9 if sig == signal.SIGKILL else 130), (rc, err[-2000:])
    if sig != signal.SIGKILL:          # one line, no traceback
        assert err.strip().splitlines()[-1].startswith("fbctrl: interrupted") and "Traceback" not in err
    kept = len(_outputs(tmp_path))
    _run(tmp_path / "ck", tmp_path / "res")
    diff = _max_abs_difference(reference, tmp_path)
    print(f"{signal.Signals(sig).name} after {k} files + {delay:.2f} s: {kept} files kept, "
          f"max abs difference after resuming {diff}")
    assert diff == 0.0
    assert not [p for p in tmp_path.rglob(".*.claim")]           # every claim released or taken over


# a pre-training run of a few seconds on one thread (the paper's tiny networks train in a fraction
# of a second, so a signal a moment after their first resume file can land after the work is done)
PRETRAIN = ["pretrain", "--n", "20", "--seeds", "0", "1", "--batches", "150", "--batch-size", "8",
            "--eval-every", "25", "--checkpoint-every", "10", "--delay", "2", "--no-progress"]


def _pretrain_in_process(out: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(PRETRAIN + ["--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """An uninterrupted pre-training run (two seeds in lockstep, feedback delayed by 2 steps)."""
    out = tmp_path_factory.mktemp("pretrained")
    _pretrain_in_process(out)
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_signal_inside_pretraining_resumes_to_the_same_networks(pretrained, tmp_path, sig):
    """The moment: once the first resume file exists (pre-training is under way), after a seeded
    random delay well inside the run; the return code says the signal was handled (130) or not
    catchable (kill -9), and the resumed networks, sidecars' numbers and curves then equal the
    uninterrupted run's bit for bit."""
    delay = float(np.random.default_rng(7 + int(sig)).uniform(0.0, 0.2))
    proc = subprocess.Popen([sys.executable, "-m", "fbctrl", *PRETRAIN, "--out", str(tmp_path)],
                            env={**_env(), "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and not list(tmp_path.glob(".resume-*.pt")):
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 130), err[-2000:]
    assert not list(tmp_path.glob("*_seed*.pt"))          # it stopped before the end
    _pretrain_in_process(tmp_path)
    assert not list(tmp_path.glob(".resume-*"))
    diff = _max_abs_difference(pretrained, tmp_path)
    print(f"{signal.Signals(sig).name} inside pre-training (+{delay:.2f} s): max abs difference after resuming {diff}")
    assert diff == 0.0


def test_damaged_units_and_curves_are_named_and_recomputed(reference, tmp_path):
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    from fbctrl.experiments.protocol import CONDITIONS, Protocol
    truncated = paper.AdaptUnit("fb", 0, 30.0, CONDITIONS[0], Protocol.PUBLISHED, cfg.trials).path(cfg)
    flipped = paper.AdaptUnit("nofb", 0, 30.0, CONDITIONS[3], Protocol.PUBLISHED, cfg.trials).path(cfg)
    curve = Path(str(paper.PretrainUnit("nofb", 0).path(cfg))[:-3] + ".curve.npz")
    truncated.write_bytes(truncated.read_bytes()[:1883])
    data = flipped.read_bytes()
    flipped.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x04]) + data[len(data) // 2 + 1:])
    curve.write_bytes(curve.read_bytes()[:100])
    for p in (truncated, flipped):
        assert paper.unit_status(cfg, paper.AdaptUnit("fb", 0, 30.0, CONDITIONS[0], Protocol.PUBLISHED, cfg.trials)
                                 if p == truncated else
                                 paper.AdaptUnit("nofb", 0, 30.0, CONDITIONS[3], Protocol.PUBLISHED, cfg.trials))[0] == "damaged"
    out = _run(tmp_path / "ck", tmp_path / "res")
    recomputed = [line for line in out.splitlines() if "recompute" in line]
    assert any(str(truncated) in x for x in recomputed) and any(str(flipped) in x for x in recomputed)
    assert any(str(curve) in x for x in recomputed), out[-3000:]
    assert json.loads(out.splitlines()[-1])["units_done"] == 3
    assert _max_abs_difference(reference, tmp_path) == 0.0


def test_two_processes_with_the_same_shard_share_one_folder(reference, tmp_path):
    """Given the networks, two processes started with the same shard on one results folder
    compute every adaptation unit once between them (claims), and the files equal a single run's."""
    shutil.copytree(reference / "ck", tmp_path / "ck")
    other = subprocess.Popen(_command(tmp_path / "ck", tmp_path / "res", "adapt"), env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    while other.poll() is None and not list(tmp_path.rglob(".*.claim")):    # it has started its work
        time.sleep(0.01)
    here = _run(tmp_path / "ck", tmp_path / "res", "adapt")                 # this process, at the same time
    out, err = other.communicate(timeout=600)
    assert other.returncode == 0, err[-2000:]
    done = [json.loads(o.splitlines()[-1])["units_done"] for o in (out, here)]
    assert sum(done) == 20, done                      # no unit computed twice, none left out
    assert _max_abs_difference(reference, tmp_path) == 0.0
    print(f"units computed by each process: {done}")


def test_an_unwritable_output_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    def no_work(*a, **k):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(paper, "calibrate", no_work)
    monkeypatch.setattr(paper, "run_plan", no_work)
    monkeypatch.setattr("fbctrl.__main__.pretrain", no_work)
    cases = (["paper", "--tiny", "--checkpoint-dir", "/proc/fbctrl-ck", "--results-dir", str(tmp_path / "res")],
             ["paper", "--tiny", "--checkpoint-dir", str(tmp_path / "ck"), "--results-dir", "/proc"],
             ["paper", "--tiny", "--plan", "--save", "/proc/plan.json", "--checkpoint-dir", str(tmp_path / "ck"),
              "--results-dir", str(tmp_path / "res")],
             ["pretrain", "--out", "/proc", "--n", "8"])
    for argv in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("fbctrl: error: ") and "/proc" in err[0]
    assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.pt"))
