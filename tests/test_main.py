"""The command line: bad input ends with exit code 2 and one line on stderr naming the argument;
``evaluate --json`` prints a JSON object and ``verdicts --json`` the verdict table."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fbctrl.__main__ import main
from fbctrl.core.checkpoint import load_checkpoint
from fbctrl.core.evaluate import evaluate
from fbctrl.core.task import TaskConfig
from fbctrl.core.tasks import LimitCycleConfig
from fbctrl.core.train import PretrainConfig, pretrain


SMALL_LC = LimitCycleConfig(T=60, go_step=6, freq_low=2.0, freq_high=4.0, n_test_freqs=4)
TC = TaskConfig(T=30, go_step=5, move_steps=20)


torch.set_num_threads(1)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fbctrl", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    res = run_cli("pretrain", "--n", 20, "--batches", 3, "--batch-size", 8, "--seeds", 0, "--out", out,
                  "--no-progress", cwd=out)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["seeds"] == [0] and "centre_out" in summary["final"]
    path = out / "fb_n20_seed0.pt"
    assert path.exists() and path.with_suffix(".json").exists()
    return path


def assert_clean_error(res, *names):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err, "no message on stderr"
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in res.stderr
    assert err.startswith("fbctrl: error:")
    for name in names:
        assert name in err, (name, err)
    return err


@pytest.mark.parametrize("args,names", [
    (["pretrain", "--batches", "-1"], ["--batches", "-1"]),
    (["pretrain", "--batches", "0"], ["--batches"]),
    (["pretrain", "--lr", "-1"], ["--lr", "-1"]),
    (["pretrain", "--lr", "nan"], ["--lr"]),
    (["pretrain", "--batch-size", "0"], ["--batch-size", "0"]),
    (["pretrain", "--n", "-5"], ["--n", "-5"]),
    (["pretrain", "--n", "ten"], ["--n", "ten"]),
    (["pretrain", "--density", "1.5"], ["--density", "1.5"]),
    (["pretrain", "--delay", "-2"], ["--delay", "-2"]),
    (["pretrain", "--seeds", "x"], ["--seeds"]),
    (["pretrain", "--feedback", "maybe"], ["--feedback", "maybe"]),
])
def test_bad_pretrain_arguments(tmp_path, args, names):
    out = tmp_path / "out"
    res = run_cli(*args, "--out", out, "--no-progress", cwd=tmp_path)
    assert_clean_error(res, *names)
    assert not out.exists()  # nothing was started


def test_pretrain_without_out(tmp_path):
    assert_clean_error(run_cli("pretrain", "--n", "10", cwd=tmp_path), "--out")


def test_unknown_task(tmp_path, ckpt):
    assert_clean_error(run_cli("evaluate", ckpt, "--task", "spiral", cwd=tmp_path), "--task", "spiral")


def test_rotation_not_a_number(tmp_path, ckpt):
    assert_clean_error(run_cli("evaluate", ckpt, "--rotation", "abc", cwd=tmp_path), "--rotation", "abc")
    assert_clean_error(run_cli("evaluate", ckpt, "--rotation", "inf", cwd=tmp_path), "--rotation")


def test_bad_evaluate_counts(tmp_path, ckpt):
    assert_clean_error(run_cli("evaluate", ckpt, "--trials", "0", cwd=tmp_path), "--trials")
    assert_clean_error(run_cli("evaluate", ckpt, "--seed", "-1", cwd=tmp_path), "--seed")
    assert_clean_error(run_cli("evaluate", ckpt, "--controller", "sideways", cwd=tmp_path), "--controller")


def test_missing_checkpoint(tmp_path):
    missing = tmp_path / "no_such_net.pt"
    assert_clean_error(run_cli("evaluate", missing, cwd=tmp_path), "checkpoint", "no_such_net.pt")
    assert_clean_error(run_cli("adapt", missing, "--rule", "rflo", "--out", tmp_path / "a.npz", cwd=tmp_path),
                       "checkpoint", "no_such_net.pt")


def test_file_that_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_text("hello\n")
    assert_clean_error(run_cli("evaluate", bogus, cwd=tmp_path), "bogus.pt", "not a torch checkpoint")


def test_unknown_command(tmp_path):
    assert_clean_error(run_cli("fly", cwd=tmp_path))


def test_evaluate_json(tmp_path, ckpt):
    res = run_cli("evaluate", ckpt, "--json", "--trials", 16, "--seed", 3, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert isinstance(out, dict)
    assert math.isfinite(out["loss"]) and out["loss"] > 0
    assert out["task"] == "centre-out" and out["trials"] == 16 and out["controller"] == "on"
    assert len(out["final_error_per_target"]) == 8
    # the same number as the library gives for the same checkpoint, trials and seed
    ref = evaluate(load_checkpoint(ckpt), "centre-out", trials=16, seed=3)
    assert out["loss"] == pytest.approx(ref["loss"], rel=1e-6)
    # the options reach the evaluation
    off = json.loads(run_cli("evaluate", ckpt, "--json", "--trials", 16, "--seed", 3, "--controller", "off",
                             "--rotation", "30", "--task", "random", cwd=tmp_path).stdout.strip().splitlines()[-1])
    ref_off = evaluate(load_checkpoint(ckpt), "random", trials=16, seed=3, controller_on=False, rotation_deg=30.0)
    assert off["loss"] == pytest.approx(ref_off["loss"], rel=1e-6)
    assert off["loss"] != pytest.approx(out["loss"], rel=1e-3)


def test_diverging_adaptation_is_one_line(tmp_path, ckpt):
    """A rate that blows the run up ends with one line naming the trial and rate, exit code 1,
    and no result file (nothing half-written)."""
    out = tmp_path / "run.npz"
    res = run_cli("adapt", ckpt, "--rule", "bptt", "--controller", "on", "--rotation", 30, "--trials", 5,
                  "--lr", "1e3", "--out", out, "--no-progress", cwd=tmp_path)
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("fbctrl: diverged:") and "trial" in err and "1000" in err.replace("1e+03", "1000"), err
    assert not out.exists()


@pytest.mark.parametrize("cmd, kept", [("paper", "every finished unit is saved"),
                                       ("pretrain", "resumes from its last checkpoint"), ("evaluate", None)])
def test_an_interrupted_command_says_what_it_kept(monkeypatch, capsys, tmp_path, cmd, kept):
    """Ctrl-C (or SIGTERM, turned into the same exception) exits 130 with one line that says what
    of the work survives, and says nothing it cannot promise."""
    import fbctrl.__main__ as cli

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, f"cmd_{cmd}", interrupted)
    ck = tmp_path / "x.pt"
    ck.write_bytes(b"")
    argv = {"paper": ["paper", "--plan"], "pretrain": ["pretrain", "--out", str(tmp_path)],
            "evaluate": ["evaluate", str(ck)]}[cmd]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("fbctrl: interrupted") and len(err.splitlines()) == 1
    assert (kept in err) if kept else err == "fbctrl: interrupted"


def test_command_line_takes_the_task_and_its_perturbation(tmp_path, capsys):
    import json

    from fbctrl.__main__ import main

    lc_cfg = PretrainConfig(n=10, batches=1, batch_size=2, eval_every=1, checkpoint_every=10, train_push=False,
                            task="limit-cycle")
    pretrain(lc_cfg, [0], tmp_path, progress=False, task_cfg=SMALL_LC)      # the CLI reads the task from the sidecar
    pretrain(PretrainConfig(n=10, batches=1, batch_size=2, eval_every=1, checkpoint_every=10, delay=2), [0], tmp_path,
             progress=False, task_cfg=TC)
    lc, reach = str(tmp_path / "lc_fb_n10_seed0.pt"), str(tmp_path / "fb_d2_n10_seed0.pt")
    capsys.readouterr()
    assert main(["evaluate", lc, "--shift", "0.5", "--controller", "off", "--trials", "8", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["task"] == "limit-cycle" and res["shift_hz"] == 0.5 and res["freq_error_hz"] >= 0
    assert len(res["freq_error_per_test_freq"]) == SMALL_LC.n_test_freqs
    assert main(["adapt", lc, "--rule", "rflo", "--trials", "2", "--shift", "-0.5", "--no-progress",
                 "--out", str(tmp_path / "a.npz")]) == 0
    meta = json.loads(str(np.load(tmp_path / "a.npz")["meta"]))
    assert (meta["task"], meta["perturbation"], meta["shift_hz"]) == ("limit-cycle", "shift-0.5", -0.5)
    for argv, word in ((["adapt", lc, "--rule", "rflo", "--rotation", "30", "--out", str(tmp_path / "b.npz")], "rotation"),
                       (["adapt", reach, "--rule", "rflo", "--shift", "1", "--out", str(tmp_path / "b.npz")], "shift"),
                       (["evaluate", reach, "--task", "limit-cycle"], "task"),
                       (["evaluate", lc, "--shift", "nan"], "shift")):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"fbctrl: error: {word}") or f"argument --{word}" in err or word in err.split(":")[2]
        assert "\n" not in err


def test_cli_paper_bad_arguments_exit_2(capsys, tmp_path):
    assert main(["paper", "--tiny"]) == 2
    assert "--tiny needs --checkpoint-dir and --results-dir" in capsys.readouterr().err
    assert main(["paper", "--budget-minutes", "-3"]) == 2
    assert "budget-minutes must be a positive number" in capsys.readouterr().err
    for bad in ("2/2", "1", "a/b", "0/0"):
        assert main(["paper", "--shard", bad, "--plan", "--no-calibrate"]) == 2
        assert "shard must be I/N with integers 0 <= I < N" in capsys.readouterr().err


def test_cli_verdicts_prints_the_table(dry_run, capsys):
    assert main(["verdicts", "--tiny", "--checkpoint-dir", dry_run.checkpoint_dir,
                 "--results-dir", dry_run.results_dir, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["verdict"] for r in rows} <= {"agrees", "disagrees", "inconclusive", "negligible"}
    assert all(r["effect"]["method"].startswith("paired t") for r in rows)


def test_cli_adapt_writes_records(ckpt, tmp_path):
    out = tmp_path / "run.npz"
    p = run_cli("adapt", ckpt, "--rule", "rflo", "--controller", "on", "--rotation", "30", "--trials", "3",
                "--lr", "1e-7", "--seed", "0", "--out", out, "--no-progress", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    z = np.load(out)
    assert z["train_loss"].shape == (3,) and z["test_loss"].shape == (3,)
    assert z["target"].dtype.kind == "i" and set(z["target"]) <= set(range(8))
    assert np.isfinite(z["test_loss"]).all()


@pytest.mark.parametrize("args, needle", [
    (["--rule", "sgd"], "rule"),
    (["--rule", "rflo", "--trials", "-1"], "trials"),
    (["--rule", "rflo", "--lr", "-1"], "lr"),
    (["--rule", "rflo", "--rotation", "abc"], "rotation"),
    (["--rule", "rflo", "--controller", "maybe"], "controller"),
])
def test_cli_adapt_bad_arguments_exit_2(ckpt, tmp_path, args, needle):
    p = run_cli("adapt", ckpt, *args, "--out", tmp_path / "x.npz", cwd=tmp_path)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in p.stderr


def test_cli_adapt_out_must_be_npz(ckpt, tmp_path):
    p = run_cli("adapt", ckpt, "--rule", "rflo", "--trials", "1", "--lr", "1e-7", "--out", tmp_path / "x.txt", cwd=tmp_path)
    assert p.returncode == 2 and "out" in p.stderr
