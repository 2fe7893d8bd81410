"""What ``python -m fbctrl`` and ``python -m fbctrl.book`` share: a parser whose errors are one
line (the caller prints it and exits with code 2), argument types whose errors name the argument
and what is allowed, and the device check (also used for the notebooks' ``device`` parameter)."""

from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

import torch

__all__ = ["OneLineParser", "check_device", "as_argument", "number", "existing_file", "existing_dir", "device",
           "writable_folder", "output_file", "input_folder"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that raises ``error_class`` with argparse's one-line message instead of
    printing the usage block and exiting."""

    error_class: type[Exception] = ValueError

    def error(self, message):
        raise self.error_class(message)


def check_device(name: str, v) -> str:
    """``cpu`` or ``cuda[:N]`` (CUDA only where it is available), else a one-line ValueError."""
    if not isinstance(v, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", v):
        raise ValueError(f"{name} must be 'cpu' or 'cuda[:N]', got {v!r}")
    if v.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{name} {v!r} asked for, but CUDA is not available here (use 'cpu')")
    return v


def as_argument(check: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type`` from a check that raises ValueError (argparse shows the message)."""
    def conv(s):
        try:
            return check(s)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return conv


def number(name: str, what: str, *, integer: bool = False, ok: Callable[[float], bool] = lambda v: True):
    """An argparse type for a finite number (``integer``: an int) that passes ``ok``; the error
    reads ``{name} must be {what}, got '...'``."""
    def check(s):
        try:
            v = int(s) if integer else float(s)
        except ValueError:
            v = None
        if v is None or not math.isfinite(v) or not ok(v):
            raise ValueError(f"{name} must be {what}, got {s!r}")
        return v
    return as_argument(check)


def _existing(test: Callable[[Path], bool], what: str):
    def check(s):
        if not test(Path(s)):
            raise ValueError(f"{s!r} {what}")
        return s
    return as_argument(check)


existing_file = _existing(Path.is_file, "is not a file")
existing_dir = _existing(Path.is_dir, "is not a folder")
device = as_argument(lambda s: check_device("device", s))


# ---------------------------------------------------------------------------------------------
# Pre-flight: every output writable and every input of the right kind, before any work
# ---------------------------------------------------------------------------------------------

def _probe(name: str, folder: Path, shown) -> None:
    """Write and delete a small file in ``folder``: the one test of writability that holds on
    every file system (permissions, read-only mounts, /proc, a full disk)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".fbctrl-probe-", suffix=".tmp", dir=folder)
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as exc:
        raise ValueError(f"{name} {str(shown)!r} is not writable ({exc.strerror or type(exc).__name__})") from None


def writable_folder(name: str, path) -> Path:
    """An output folder: not an existing file, created if missing (with its parents), and
    writable (a probe file is written and deleted); else a one-line ValueError naming ``name``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{name} {str(path)!r} cannot be created ({exc.strerror or type(exc).__name__})") from None
    _probe(name, p, path)
    return p


def output_file(name: str, path, suffix: str, *, force: bool = True) -> Path:
    """An output file name: ending in ``suffix``, not a folder, in a folder that exists (none is
    created silently) and is writable (probe); an existing file only with ``force``."""
    p = Path(path)
    if p.suffix != suffix:
        raise ValueError(f"{name} must be a {suffix} file name, got {str(path)!r}")
    if p.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a folder, not a {suffix} file")
    parent = p.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist (create it first)"
        raise ValueError(f"{name}: the folder {str(parent)!r} {what}")
    if p.exists() and not force:
        raise ValueError(f"{name} {str(path)!r} exists: pass --force to replace it")
    _probe(name, parent, path)
    return p


def input_folder(name: str, path) -> Path:
    """An input folder that must exist; else a one-line ValueError naming ``name``."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{name} {str(path)!r} " + ("is a file, not a folder" if p.exists() else "does not exist"))
    return p
