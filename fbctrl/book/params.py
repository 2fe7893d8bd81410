"""The book's settings, declared once: the profiles (how much a run of the book computes) and
the table of notebook parameters with the check of each (:data:`PARAMETERS`, exact names, then
``n_*`` and suffix patterns). :func:`validate_params` is the second code cell of every chapter:
a bad value stops the notebook with one line naming the parameter and what is allowed."""

from __future__ import annotations

import ast
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from .. import paths
from ..cli import check_device
from ..core.task import TaskConfig
from ..viz.plots import use_style

__all__ = ["Profile", "PROFILES", "get_profile", "Params", "PARAMETERS", "validate_params", "register_param",
           "setup_notebook"]


@dataclass(frozen=True)
class Profile:
    """How much computation a run of the book spends.

    ``default`` is sized for a laptop CPU and the networks shipped in ``checkpoints/``;
    ``paper`` is the full protocol of the paper (10 seeds, all rotations, full sweeps) for a
    GPU machine. Notebooks read the sizes they need from ``P.profile``.
    """

    name: str
    description: str
    max_seeds: int | None = None          # at most this many seeds per network kind (None: all found)
    eval_repeats: int = 8                 # centre-out test sets: trials per target
    adapt_trials: int = 100               # adaptation trials per condition
    rotations: tuple[float, ...] = (30.0,)  # visuomotor rotations (degrees) in the adaptation chapters
    lr_sweep_points: int = 3              # learning rates per rule in the sweep
    analysis_trials: int = 8              # trials in the per-step gradient / alignment analyses
    hessian_trials: int = 1               # trials in the second-order (Hessian) analyses
    bptt_weights: str = "current"         # online BPTT sweep: "current" weights or exact "history" (Methods)

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "default": Profile(
        name="default",
        description="CPU-sized: the shipped n=400 networks, short adaptation runs, one rotation",
    ),
    "paper": Profile(
        name="paper",
        description="the paper's protocol for a GPU machine: 10 seeds, 1000 adaptation trials, 30-60 degrees, "
                    "exact (weight-history) online BPTT",
        max_seeds=10,
        eval_repeats=32,
        adapt_trials=1000,
        rotations=(30.0, 40.0, 50.0, 60.0),
        lr_sweep_points=7,
        analysis_trials=32,
        hessian_trials=8,
        bptt_weights="history",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]


class Params(SimpleNamespace):
    """Validated notebook parameters; ``P.profile`` is the :class:`Profile` object and
    ``P.profile_name`` its name."""

    def as_dict(self) -> dict:
        return dict(vars(self))


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_profile(name, v):
    if not isinstance(v, str) or v not in PROFILES:
        raise ValueError(f"{name} must be one of {', '.join(PROFILES)}, got {v!r}")
    return v


def _check_dir(name, v):
    """A folder parameter. ``None`` for a parameter with a default folder (``checkpoint_dir``,
    ``results_dir``: see :mod:`fbctrl.paths`) is that folder of the repository, whatever the
    working folder; a path given explicitly is used as it is (relative to the working folder)."""
    if v is None and name in paths.DEFAULT_DIRS:
        try:
            folder = paths.default_dir(name)
        except ValueError as exc:
            raise ValueError(f"{name} None (the repository's folder) cannot be resolved: {exc}") from None
        if not folder.is_dir():
            raise ValueError(f"{name} None means {str(folder)!r}, which is not a folder "
                             f"(pass {name}=<folder>, or set {paths.ENV_ROOT})")
        return str(folder)
    or_none = ", or None for the repository's" if name in paths.DEFAULT_DIRS else ""
    if not isinstance(v, (str, Path)) or not str(v):
        raise ValueError(f"{name} must be a folder path{or_none}, got {v!r}")
    if not Path(v).is_dir():
        raise ValueError(f"{name} {str(v)!r} is not a folder (a relative path is relative to the working folder "
                         f"{os.getcwd()!r}; pass an absolute path{or_none})")
    return str(v)


def _check_seeds(name, v):
    if v is None:
        return None
    if isinstance(v, str):
        items = [s for s in re.split(r"[\s,\[\]()]+", v) if s]
        try:
            v = [int(s) for s in items]
        except ValueError:
            raise ValueError(f"{name} must be None or a list of non-negative integers, got {v!r}") from None
    if _is_int(v):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v or not all(_is_int(s) and s >= 0 for s in v):
        raise ValueError(f"{name} must be None or a list of non-negative integers, got {v!r}")
    if len(set(v)) != len(v):
        raise ValueError(f"{name} must not repeat a seed, got {v!r}")
    return tuple(int(s) for s in v)


def _literal(v):
    """A parameter passed as a string on papermill's command line (``-p seeds "[0, 1]"``,
    ``-p rotation_deg "45"``): parse it as a Python literal; other strings are returned as they
    are, and other values untouched."""
    if isinstance(v, str):
        try:
            return ast.literal_eval(v.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return v
    return v


def _check_angle(name, v):
    v = _literal(v)
    if not _is_number(v) or not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number of degrees, got {v!r}")
    return float(v)


def _number_list(name, v, ok, what: str):
    """None, one number or a list of numbers (a string from papermill is parsed): each must pass
    ``ok``; ``what`` names the items in the one-line error."""
    v = _literal(v)
    if v is None:
        return None
    items = [v] if _is_number(v) else v
    if not isinstance(items, (list, tuple)) or not items or not all(_is_number(x) and ok(float(x)) for x in items):
        raise ValueError(f"{name} must be None or a list of {what}, got {v!r}")
    return tuple(float(x) for x in items)


def _check_angles(name, v):
    return _number_list(name, v, math.isfinite, "angles in degrees")


def _check_pos_int(name, v):
    v = _literal(v)
    if v is None:
        return None
    if not _is_int(v) or v <= 0:
        raise ValueError(f"{name} must be a positive integer (or None for the profile's value), got {v!r}")
    return int(v)


def _check_nonneg_int(name, v):
    v = _literal(v)
    if not _is_int(v) or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    return int(v)


def _check_pos_float(name, v):
    v = _literal(v)
    if v is None:
        return None
    if not _is_number(v) or not (math.isfinite(float(v)) and float(v) > 0):
        raise ValueError(f"{name} must be a positive number (or None), got {v!r}")
    return float(v)


def _check_bool(name, v):
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be True or False, got {v!r}")
    return v


def _check_target(name, v):
    v = _literal(v)
    if not _is_int(v) or not 0 <= v < 8:
        raise ValueError(f"{name} must be a centre-out target index 0..7, got {v!r}")
    return int(v)


def _check_rule(name, v):
    if v not in ("bptt", "rflo"):
        raise ValueError(f"{name} must be 'bptt' or 'rflo', got {v!r}")
    return v


def _check_rules(name, v):
    v = _literal(v)
    if isinstance(v, str):
        v = [r for r in re.split(r"[\s,]+", v) if r]
    if not isinstance(v, (list, tuple)) or not v or any(r not in ("bptt", "rflo") for r in v):
        raise ValueError(f"{name} must be a list drawn from 'bptt', 'rflo', got {v!r}")
    return tuple(v)


def _check_pos_floats(name, v):
    return _number_list(name, v, lambda x: math.isfinite(x) and x > 0, "positive numbers")


def _check_kind(name, v):
    if v not in ("fb", "nofb"):
        raise ValueError(f"{name} must be 'fb' or 'nofb', got {v!r}")
    return v


def _int_list(v):
    """'[1, 2]' (as papermill -p passes a list) -> [1, 2]; anything else unchanged."""
    if isinstance(v, str):
        items = [s for s in re.split(r"[\s,\[\]()]+", v) if s]
        try:
            return [int(s) for s in items]
        except ValueError:
            return v
    return v


def _int_list_rule(lo: int, hi: int, what: str, *, distinct: bool = False, sort: bool = False):
    """A check for a list of integers in lo..hi (a single integer, or '[1, 2]' from papermill,
    is accepted): ``what`` names the items in the error line."""
    def check(name, v):
        v = _int_list(v)
        if _is_int(v):
            v = [v]
        if not isinstance(v, (list, tuple)) or not v or not all(_is_int(s) and lo <= s <= hi for s in v) \
                or (distinct and len(set(v)) != len(v)):
            raise ValueError(f"{name} must be a list of {'distinct ' if distinct else ''}{what} "
                             f"(integers {lo}..{hi}), got {v!r}")
        out = [int(s) for s in v]
        return tuple(sorted(out) if sort else out)
    return check


_check_step_list = _int_list_rule(1, TaskConfig.T - 1, "time steps")
_check_lags = _int_list_rule(1, 50, "lags in steps")
_check_targets = _int_list_rule(0, 7, "centre-out target indices", distinct=True)
_check_iters = _int_list_rule(1, 5000, "iteration counts", sort=True)


def _check_norm(name, v):
    if v not in ("spectral", "frobenius"):
        raise ValueError(f"{name} must be 'spectral' or 'frobenius', got {v!r}")
    return v


def _check_stride(name, v):
    if not _is_int(v) or not 1 <= v <= 50:
        raise ValueError(f"{name} must be an integer 1..50 (steps), got {v!r}")
    return int(v)


def _check_eigs(name, v):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= v <= 20:
        raise ValueError(f"{name} must be an integer 0..20 (0: no eigenvalues), got {v!r}")
    return int(v)


# exact names first, then suffix patterns (checked in order)
_RULES: dict[str, Callable[[str, Any], Any]] = {
    "profile": _check_profile,
    "device": check_device,
    "checkpoint_dir": _check_dir,
    "seeds": _check_seeds,
    "paper_seeds": _check_seeds,          # networks of the store (paper-scale figures); None: all
    "paper_rotations": _check_angles,
    "rotation_deg": _check_angle,
    "rotations_deg": _check_angles,
    "target": _check_target,
    "kind": _check_kind,
    "delay": _check_nonneg_int,
    "trials": _check_pos_int,
    "repeats": _check_pos_int,
    "lr": _check_pos_float,
    "lrs": _check_pos_floats,
    "rule": _check_rule,
    "rules": _check_rules,
    "push": _check_bool,
    "newton_steps": _check_step_list,
    "lags": _check_lags,
    "horizons": _check_lags,
    "jacobian_norm": _check_norm,
    "targets": _check_targets,
    "step_stride": _check_stride,
    "minres_iters": _check_iters,
    "n_eigs": _check_eigs,
}
PARAMETERS = _RULES


_SUFFIX_RULES: list[tuple[str, Callable[[str, Any], Any]]] = [
    ("_deg", _check_angle),
    ("_trials", _check_pos_int),
    ("_repeats", _check_pos_int),
    ("_steps", _check_nonneg_int),
    ("_lr", _check_pos_float),
    ("_lrs", _check_pos_floats),
    ("_on", _check_bool),
    ("_dir", _check_dir),
]


def register_param(name: str, check: Callable[[str, Any], Any]) -> None:
    """Add a rule for a notebook parameter: ``check(name, value)`` returns the normalised value or
    raises a one-line ValueError naming the parameter and what is allowed."""
    _RULES[name] = check


def _rule(name: str):
    if name in _RULES:
        return _RULES[name]
    if name.startswith("n_"):
        return _check_pos_int
    for suffix, rule in _SUFFIX_RULES:
        if name.endswith(suffix):
            return rule
    return None


def validate_params(**kw) -> Params:
    """Check the notebook's parameters; return them normalised as a :class:`Params`.

    Every parameter must have a rule: an exact name (``profile``, ``device``, ``checkpoint_dir``,
    ``seeds``, ``rotation_deg``, ``rotations_deg``, ``target``, ``kind``, ``delay``, ``trials``,
    ``repeats``, ``lr``, ``lrs``, ``rule``, ``rules``, ``push``), ``n_*`` (positive integer), or
    a suffix: ``_deg`` (finite number), ``_trials`` / ``_repeats`` (positive integer or None),
    ``_steps`` (non-negative integer), ``_lr`` (positive number or None), ``_lrs`` (list of
    positive numbers or None), ``_on`` (bool), ``_dir`` (existing folder; ``checkpoint_dir`` and
    ``results_dir`` may be None: the repository's ``checkpoints/`` and ``results/``, see
    :mod:`fbctrl.paths`). Others can be added with :func:`register_param`. A bad value
    raises ``ValueError`` with one line naming the parameter and what is allowed, e.g.
    ``rotation_deg must be a finite number of degrees, got 'abc'``. ``profile`` is required.
    ``P.profile`` is the :class:`Profile`; ``P.profile_name`` its name.
    """
    if "profile" not in kw:
        raise ValueError("profile must be given (one of " + ", ".join(PROFILES) + ")")
    out = {}
    for name, value in kw.items():
        rule = _rule(name)
        if rule is None:
            raise ValueError(f"unknown notebook parameter {name!r}: no rule to check it "
                             "(use fbctrl.book.register_param)")
        out[name] = rule(name, value)
    prof = get_profile(out["profile"])
    out["profile_name"] = prof.name
    out["profile"] = prof
    return Params(**out)


def setup_notebook() -> None:
    """Make notebook outputs reproducible and quiet: the book's matplotlib style, and no tqdm
    progress bars from calls that do not choose (``TQDM_DISABLE``; bars would land in the
    outputs that nbval compares). fbctrl functions should still be called with
    ``progress=False``. Idempotent."""
    os.environ["TQDM_DISABLE"] = "1"
    use_style()
