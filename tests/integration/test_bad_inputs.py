"""Every bad input a careful user tried ends in one line naming the parameter (or the file) and
what is allowed, with exit code 2 (1 for a run that diverges), before any work: nothing is
computed or written (outputs are probed with a real write first). The cases are data
(``BAD_INPUTS``); ``python tests/integration/test_bad_inputs.py`` prints them as a table with each
command's exit code and message.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fbctrl.__main__ import main
from fbctrl.core.checkpoint import save_checkpoint
from fbctrl.core.model import NetworkConfig, init_network

# (arguments with {placeholders}, exit code, words the one-line message must hold)
BAD_INPUTS = [
    # pretrain
    ("pretrain --out /proc --n 8 --batches 2 --batch-size 2", 2, "out '/proc' is not writable"),
    ("pretrain --out {file} --n 8 --batches 2", 2, "out '{file}' is a file, not a folder"),
    ("pretrain --out /proc/fbctrl/x --n 8", 2, "out '/proc/fbctrl/x' cannot be created"),
    ("pretrain --out {tmp}/lr --lr 1e30 --n 8 --batches 3 --batch-size 2 --eval-every 100 --no-progress", 1,
     "diverged: pre-training diverged at batch"),
    ("pretrain --out {tmp}/x --lr -1", 2, "lr must be a positive number, got '-1'"),
    ("pretrain --out {tmp}/x --lr nan", 2, "lr must be a positive number, got 'nan'"),
    ("pretrain --out {tmp}/x --n 0", 2, "n must be a positive integer, got '0'"),
    ("pretrain --out {tmp}/x --batches 1.5", 2, "batches must be a positive integer, got '1.5'"),
    ("pretrain --out {tmp}/x --seeds -1", 2, "seeds must be a non-negative integer, got '-1'"),
    ("pretrain --out {tmp}/x --density 1.5", 2, "density must be a number in [0, 1], got '1.5'"),
    ("pretrain --out {tmp}/x --delay 100000", 2, "delay must be an integer number of steps in [0, 124]"),
    ("pretrain --out {tmp}/x --delay -1", 2, "delay must be an integer number of steps in [0, 124]"),
    ("pretrain --out {tmp}/x --feedback maybe", 2, "argument --feedback: invalid choice: 'maybe'"),
    ("pretrain --out {tmp}/x --eval-every 0", 2, "eval-every must be a positive integer, got '0'"),
    ("pretrain --out {tmp}/x --device tpu", 2, "device must be 'cpu' or 'cuda[:N]', got 'tpu'"),
    ("pretrain --n 8", 2, "the following arguments are required: --out"),
    ("pretrain --out {resume_dir} --n 8 --batches 2 --batch-size 2 --eval-every 1 --checkpoint-every 1 --no-progress",
     2, "resume file {resume_dir}/.resume-fb_n8-seeds-0.pt is damaged or not a resume file"),
    # evaluate
    ("evaluate {tmp}/none.pt", 2, "'{tmp}/none.pt' is not a file"),
    ("evaluate {trunc}", 2, "checkpoint {trunc}: damaged or not a torch checkpoint"),
    ("evaluate {empty}", 2, "checkpoint {empty}: damaged or not a torch checkpoint"),
    ("evaluate {flipped}", 2, "checkpoint {flipped}: damaged"),
    ("evaluate {tmp}", 2, "'{tmp}' is not a file"),
    ("evaluate {net} --trials 0", 2, "trials must be a positive integer, got '0'"),
    ("evaluate {net} --rotation inf", 2, "rotation must be a finite number of degrees, got 'inf'"),
    ("evaluate {net} --task spiral", 2, "argument --task: invalid choice: 'spiral'"),
    # adapt
    ("adapt {net} --rule rflo --out /proc/x.npz", 2, "out '/proc/x.npz' is not writable"),
    ("adapt {net} --rule rflo --out {dir_npz}", 2, "out '{dir_npz}' is a folder, not a .npz file"),
    ("adapt {net} --rule rflo --out {tmp}/a/b/c.npz", 2, "out: the folder '{tmp}/a/b' does not exist"),
    ("adapt {net} --rule rflo --out {tmp}/x.txt", 2, "out must be a .npz file name, got '{tmp}/x.txt'"),
    ("adapt {net} --rule rflo --out {existing_npz}", 2, "out '{existing_npz}' exists: pass --force to replace it"),
    ("adapt {net} --rule rflo --out {tmp}/y.npz --delay 100000", 2, "delay must be an integer number of steps"),
    ("adapt {net} --rule sgd --out {tmp}/y.npz", 2, "argument --rule: invalid choice: 'sgd'"),
    ("adapt {net} --rule rflo --lr 0 --out {tmp}/y.npz", 2, "lr must be a positive number, got '0'"),
    ("adapt {net} --rule rflo --trials -3 --out {tmp}/y.npz", 2, "trials must be a positive integer, got '-3'"),
    ("adapt {net} --rule rflo --rotation abc --out {tmp}/y.npz", 2, "rotation must be a finite number of degrees"),
    ("adapt {trunc} --rule rflo --out {tmp}/y.npz", 2, "checkpoint {trunc}: damaged"),
    ("adapt {net} --rule rflo", 2, "the following arguments are required: --out"),
    # paper
    ("paper --tiny --no-calibrate", 2, "--tiny needs --checkpoint-dir and --results-dir"),
    ("paper --tiny --no-calibrate --checkpoint-dir {file} --results-dir {tmp}/r", 2,
     "checkpoint-dir '{file}' is a file, not a folder"),
    ("paper --tiny --no-calibrate --checkpoint-dir {tmp}/c --results-dir {file}", 2,
     "results-dir '{file}' is a file, not a folder"),
    ("paper --tiny --no-calibrate --checkpoint-dir {tmp}/c --results-dir /proc/fbctrl-res", 2,
     "results-dir '/proc/fbctrl-res' cannot be created"),
    ("paper --tiny --no-calibrate --checkpoint-dir /proc --results-dir {tmp}/r", 2, "checkpoint-dir '/proc' is not writable"),
    ("paper --tiny --plan --save /proc/x.json --checkpoint-dir {tmp}/c --results-dir {tmp}/r", 2,
     "save '/proc/x.json' is not writable"),
    ("paper --tiny --plan --save {tmp}/plan.txt --checkpoint-dir {tmp}/c --results-dir {tmp}/r", 2,
     "save must be a .json file name"),
    ("paper --tiny --save {tmp}/plan.json --checkpoint-dir {tmp}/c --results-dir {tmp}/r", 2, "save needs --plan"),
    ("paper --plan --checkpoint-dir {file}", 2, "checkpoint-dir '{file}' is a file, not a folder"),
    ("paper --shard 2/2 --plan", 2, "shard must be I/N with integers 0 <= I < N"),
    ("paper --shard a --plan", 2, "shard must be I/N with integers 0 <= I < N"),
    ("paper --only train --plan", 2, "only must be stages among pretrain, network, adapt, sweep"),
    ("paper --budget-minutes -1 --plan", 2, "budget-minutes must be a positive number, got '-1'"),
    ("paper --max-runs 0 --plan", 2, "max-runs must be a positive integer, got '0'"),
    ("paper --device cuda:x --plan", 2, "device must be 'cpu' or 'cuda[:N]', got 'cuda:x'"),
    # verdicts
    ("verdicts --results-dir {tmp}/no/such", 2, "results-dir '{tmp}/no/such' does not exist"),
    ("verdicts --checkpoint-dir {tmp}/no/such", 2, "checkpoint-dir '{tmp}/no/such' does not exist"),
    ("verdicts --results-dir {file}", 2, "results-dir '{file}' is a file, not a folder"),
    ("verdicts --tiny --checkpoint-dir {tmp} --results-dir {damaged_res}", 0,
     "warning: result file {damaged_res}/adapt/published/rot30/fb_rflo_seed0.npz is damaged"),
    # the network family of the store; the older commands are gone (their runs are store units)
    ("paper --networks all --plan", 2, "argument --networks: invalid choice: 'all'"),
    ("reproduce --out {tmp}/y.npz", 2, "argument cmd: invalid choice: 'reproduce'"),
    ("sweep --out {tmp}/s.npz", 2, "argument cmd: invalid choice: 'sweep'"),
    # bench, the command itself
    ("bench adapt --save /proc/b.json", 2, "save '/proc/b.json' is not writable"),
    ("bench adapt --save {tmp}/b.txt", 2, "save must be a .json file name"),
    ("bench everything", 2, "argument what: invalid choice: 'everything'"),
    ("", 2, "the following arguments are required: cmd"),
    ("train --out x", 2, "argument cmd: invalid choice: 'train'"),
]


def make_inputs(tmp: Path) -> dict:
    """The files the cases refer to: a small network, damaged copies, a file, a folder named .npz."""
    net = init_network(NetworkConfig(n=8), torch.Generator().manual_seed(0))
    paths = {"tmp": tmp, "net": tmp / "net.pt", "file": tmp / "a_file", "trunc": tmp / "trunc.pt",
             "empty": tmp / "empty.pt", "flipped": tmp / "flipped.pt", "dir_npz": tmp / "folder.npz",
             "existing_npz": tmp / "old.npz", "resume_dir": tmp / "resume", "damaged_res": tmp / "res"}
    save_checkpoint(net, paths["net"], {"seed": 0})
    data = paths["net"].read_bytes()
    paths["trunc"].write_bytes(data[: len(data) // 2])
    paths["empty"].write_bytes(b"")
    paths["flipped"].write_bytes(data[:1500] + bytes([data[1500] ^ 1]) + data[1501:])
    paths["file"].write_text("a file\n")
    paths["dir_npz"].mkdir()
    np.savez(paths["existing_npz"], x=np.zeros(1))
    paths["resume_dir"].mkdir()
    (paths["resume_dir"] / ".resume-fb_n8-seeds-0.pt").write_bytes(b"garbage")
    unit = paths["damaged_res"] / "adapt" / "published" / "rot30" / "fb_rflo_seed0.npz"
    unit.parent.mkdir(parents=True)
    unit.write_bytes(b"PK\x03\x04 truncated")
    return {k: str(v) for k, v in paths.items()}


def run_case(args: str, where: dict) -> tuple[int, list[str], str]:
    """Run one case in this process: (exit code, stderr lines, what it printed on stdout)."""
    argv = args.format(**where).split()
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, [x for x in err.getvalue().splitlines() if x.strip()], out.getvalue()


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("args,code,words", BAD_INPUTS, ids=[c[0][:60] or "no command" for c in BAD_INPUTS])
def test_bad_input_is_one_line_naming_it(where, args, code, words):
    before = sorted(p for p in Path(where["tmp"]).rglob("*"))
    rc, err, out = run_case(args, where)
    assert rc == code, err
    msg = words.format(**where)
    if code == 0:                       # the table is printed; the damaged file is named in a warning
        assert out.strip() and any(msg in line for line in err)
        return
    assert len(err) == 1 and err[0].startswith(("fbctrl: error: ", "fbctrl: diverged: ")) and msg in err[0], err
    if code == 2:                       # refused before any work: nothing written (probes are removed)
        after = sorted(p for p in Path(where["tmp"]).rglob("*"))
        assert [p for p in after if p not in before and p.is_file()] == []


def test_at_least_47_cases():
    assert len(BAD_INPUTS) >= 47


def test_pretrain_keeps_a_finished_network_and_trains_a_damaged_one_again(tmp_path, capsys, monkeypatch):
    argv = ["pretrain", "--out", str(tmp_path), "--n", "8", "--batches", "2", "--batch-size", "2", "--eval-every", "100",
            "--no-progress"]
    assert main(argv) == 0
    pt, curve = tmp_path / "fb_n8_seed0.pt", tmp_path / "fb_n8_seed0.curve.npz"
    first, stamp = pt.read_bytes(), pt.stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0                                       # finished: kept, and said so
    out, err = capsys.readouterr()
    assert json.loads(out)["done"] is True and f"{pt} is finished, kept (pass --force" in err
    assert pt.stat().st_mtime_ns == stamp
    curve.write_bytes(curve.read_bytes()[:50])                   # a damaged curve file: named, trained again
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"training curves {curve}: damaged" in err and "training seed 0 again" in err
    assert torch.equal(torch.load(pt, weights_only=True)["W_rec"], torch.load(io.BytesIO(first), weights_only=True)["W_rec"])
    trained = []
    monkeypatch.setattr("fbctrl.__main__.pretrain", lambda cfg, seeds, *a, **k: trained.append(seeds) or
                        type("T", (), {"evals": {"batch": [0]}})())
    assert main(argv + ["--force"]) == 0 and trained == [[0]]   # --force trains a finished one again


def _table() -> str:
    import tempfile
    rows = ["| # | command | exit | message |", "|--:|:--|--:|:--|"]
    with tempfile.TemporaryDirectory() as d:
        where = make_inputs(Path(d))
        for i, (args, _, _) in enumerate(BAD_INPUTS, 1):
            rc, err, _ = run_case(args, where)
            line = err[-1] if err else ""
            rows.append(f"| {i} | `python -m fbctrl {args}` | {rc} | {line.replace('|', '/').replace(d, '$TMP')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(_table())
