"""What the two command lines share (fbctrl.cli): a parser whose errors are one line, argument
types whose errors name the argument and what is allowed, the device check, and the pre-flight
checks of output and input paths (each refusal one line naming the parameter)."""

from __future__ import annotations

import argparse

import pytest
import torch

from fbctrl import cli


def _one_line_error(call, match):
    with pytest.raises(ValueError, match=match) as exc:
        call()
    assert "\n" not in str(exc.value)


def test_the_parser_raises_its_one_line_message():
    p = cli.OneLineParser(prog="x")
    p.add_argument("--trials", type=cli.number("trials", "a positive integer", integer=True, ok=lambda v: v > 0))
    assert p.parse_args(["--trials", "3"]).trials == 3
    for bad in ("0", "-2", "2.5", "nan", "three"):
        _one_line_error(lambda: p.parse_args(["--trials", bad]),
                        f"argument --trials: trials must be a positive integer, got '{bad}'")
    _one_line_error(lambda: p.parse_args(["--nope"]), "unrecognized arguments: --nope")


def test_number_accepts_finite_floats_that_pass_the_check():
    lr = cli.number("lr", "a positive finite number", ok=lambda v: v > 0)
    assert lr("1e-4") == 1e-4 and isinstance(lr("2"), float)
    for bad in ("0", "-1e-4", "inf", "nan", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^lr must be a positive finite number, got '{bad}'$"):
            lr(bad)


def test_device_names():
    assert cli.check_device("device", "cpu") == "cpu"
    for bad in ("gpu", "cuda:x", "CPU", 0):
        _one_line_error(lambda: cli.check_device("device", bad), "^device must be 'cpu' or 'cuda\\[:N\\]', got ")
    if not torch.cuda.is_available():
        _one_line_error(lambda: cli.check_device("device", "cuda:0"), "CUDA is not available here")
    with pytest.raises(argparse.ArgumentTypeError, match="device must be"):
        cli.device("tpu")


def test_existing_file_and_folder(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("x")
    assert cli.existing_file(str(f)) == str(f) and cli.existing_dir(str(tmp_path)) == str(tmp_path)
    with pytest.raises(argparse.ArgumentTypeError, match="is not a file"):
        cli.existing_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="is not a folder"):
        cli.existing_dir(str(f))


def test_output_folder_is_created_and_probed(tmp_path):
    out = tmp_path / "a" / "b"
    assert cli.writable_folder("out", out) == out and out.is_dir()
    assert list(out.iterdir()) == []                                   # the probe file is gone
    (tmp_path / "file").write_text("x")
    _one_line_error(lambda: cli.writable_folder("out", tmp_path / "file"), "^out '.*file' is a file, not a folder$")


def test_output_file_rules(tmp_path):
    assert cli.output_file("save", tmp_path / "r.json", ".json") == tmp_path / "r.json"
    _one_line_error(lambda: cli.output_file("save", tmp_path / "r.txt", ".json"), "^save must be a .json file name")
    (tmp_path / "d.json").mkdir()
    _one_line_error(lambda: cli.output_file("save", tmp_path / "d.json", ".json"), "is a folder, not a .json file")
    _one_line_error(lambda: cli.output_file("save", tmp_path / "no" / "r.json", ".json"),
                    "the folder .* does not exist \\(create it first\\)")
    (tmp_path / "old.json").write_text("{}")
    assert cli.output_file("save", tmp_path / "old.json", ".json") == tmp_path / "old.json"
    _one_line_error(lambda: cli.output_file("save", tmp_path / "old.json", ".json", force=False),
                    "exists: pass --force to replace it")


def test_input_folder(tmp_path):
    assert cli.input_folder("results", tmp_path) == tmp_path
    _one_line_error(lambda: cli.input_folder("results", tmp_path / "none"), "^results '.*none' does not exist$")
    (tmp_path / "f").write_text("x")
    _one_line_error(lambda: cli.input_folder("results", tmp_path / "f"), "is a file, not a folder$")
