"""What ``python -m fbctrl`` and ``python -m fbctrl.book`` share: a parser whose errors are one
line (the caller prints it and exits with code 2), argument types whose errors name the argument
and what is allowed, and the device check (also used for the notebooks' ``device`` parameter)."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Callable

import torch

__all__ = ["OneLineParser", "check_device", "as_argument", "number", "existing_file", "existing_dir", "device"]


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
