"""The book's machinery: profiles, notebook parameters, checkpoint discovery, glued numbers and
the runner that executes the notebooks in place.

Command line::

    python -m fbctrl.book run [--profile default|paper] [--device cpu|cuda] [--only NAME ...]
                              [--checkpoint-dir DIR]
    python -m fbctrl.book list

``run`` executes the book's notebooks (those listed in ``_toc.yml``, in that order) in place with
papermill (kernel ``python3``, working directory ``book/``), injecting the parameters ``profile``
and ``device`` (and ``checkpoint_dir`` if given). A notebook that fails leaves the committed
notebook untouched; the failed copy goes to ``_build/failed/``. Bad arguments end with one line
``fbctrl.book: error: ...`` and exit code 2.

Conventions for a notebook (see the Introduction of the book):

1. the first markdown cell lists the parameters;
2. the first code cell is the Colab cell (:mod:`fbctrl.colab`: it does nothing outside Colab);
3. the next code cell is tagged ``parameters`` and only assigns them (``profile``, ``device``,
   ``checkpoint_dir=None``, ``seeds``, ...; folders left None are the repository's, see
   :mod:`fbctrl.paths`, so a notebook runs from any working folder);
4. the next cell calls ``P = book.validate_params(...)`` and ``book.setup_notebook()``;
5. numbers that appear in the prose are glued with :func:`glue_num` / :func:`glue_pm` /
   :func:`glue_text` and written as ``{glue:text}`key``` in the markdown.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable

import numpy as np

from . import paths

__all__ = [
    "Profile", "PROFILES", "get_profile", "Params", "validate_params", "register_param", "setup_notebook",
    "find_checkpoints", "load_networks", "checkpoints", "networks", "load_curves",
    "fmt_num", "fmt_pm", "mean_sem", "glue_num", "glue_pm", "glue_text", "glue_int", "md_table",
    "toc_files", "book_notebooks", "run_notebooks", "main",
]

ROOT = Path(__file__).resolve().parent.parent
BOOK_DIR = ROOT / "book"
TOC = ROOT / "_toc.yml"


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Notebook parameters
# ---------------------------------------------------------------------------------------------

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


def _check_device(name, v):
    if not isinstance(v, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", v):
        raise ValueError(f"{name} must be 'cpu' or 'cuda[:N]', got {v!r}")
    if v.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"{name} {v!r} asked for, but CUDA is not available here (use 'cpu')")
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


def _check_angles(name, v):
    v = _literal(v)
    if v is None:
        return None
    if _is_number(v):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError(f"{name} must be None or a list of angles in degrees, got {v!r}")
    return tuple(_check_angle(name, a) for a in v)


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
    v = _literal(v)
    if v is None:
        return None
    if _is_number(v):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v or not all(
            _is_number(x) and math.isfinite(float(x)) and float(x) > 0 for x in v):
        raise ValueError(f"{name} must be None or a list of positive numbers, got {v!r}")
    return tuple(float(x) for x in v)


def _check_kind(name, v):
    if v not in ("fb", "nofb"):
        raise ValueError(f"{name} must be 'fb' or 'nofb', got {v!r}")
    return v


# exact names first, then suffix patterns (checked in order)
_RULES: dict[str, Callable[[str, Any], Any]] = {
    "profile": _check_profile,
    "device": _check_device,
    "checkpoint_dir": _check_dir,
    "seeds": _check_seeds,
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
}
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
    from . import plots

    plots.use_style()


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------

_CKPT_RE = re.compile(r"^(?P<kind>fb|nofb)(?:_n(?P<n>\d+))?_seed(?P<seed>\d+)\.pt$")


def find_checkpoints(checkpoint_dir, kind: str, *, n: int | None = None, seeds: Iterable[int] | None = None,
                     max_seeds: int | None = None) -> dict[int, Path]:
    """Pre-trained networks of one kind in ``checkpoint_dir``: ``{seed: path}``, sorted by seed.

    ``kind`` is ``"fb"`` (``fb_seed*.pt``) or ``"nofb"`` (``nofb_seed*.pt``); networks of another
    size than 400 are named ``fb_n50_seed0.pt`` and are found with ``n=50``. With ``n=None`` the
    size is 400 if such files exist, else the only size present. ``seeds`` asks for exactly those
    seeds (an error if one is missing); ``max_seeds`` keeps the lowest ones.
    """
    _check_kind("kind", kind)
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise ValueError(f"checkpoint_dir {str(folder)!r} is not a folder")
    found: dict[int, dict[int, Path]] = {}
    for p in folder.iterdir():
        m = _CKPT_RE.match(p.name)
        if m and m["kind"] == kind:
            size = int(m["n"]) if m["n"] else 400
            found.setdefault(size, {})[int(m["seed"])] = p
    if n is None:
        if 400 in found or not found:
            n = 400
        elif len(found) == 1:
            n = next(iter(found))
        else:
            raise ValueError(f"checkpoint_dir {str(folder)!r} holds {kind} networks of sizes "
                             f"{sorted(found)}: say which n to use")
    by_seed = dict(sorted(found.get(n, {}).items()))
    if seeds is not None:
        seeds = list(seeds)
        missing = [s for s in seeds if s not in by_seed]
        if missing:
            raise ValueError(f"seeds {missing} of kind {kind} (n={n}) not found in {str(folder)!r}; "
                             f"found {sorted(by_seed) or 'none'}")
        by_seed = {s: by_seed[s] for s in seeds}
    if max_seeds is not None:
        by_seed = dict(list(by_seed.items())[:max_seeds])
    return by_seed


def load_networks(checkpoint_dir, kind: str, *, n: int | None = None, seeds=None, max_seeds=None,
                  device="cpu") -> dict:
    """``{seed: Network}`` for the checkpoints :func:`find_checkpoints` finds (may be empty)."""
    from .checkpoint import load_checkpoint

    paths = find_checkpoints(checkpoint_dir, kind, n=n, seeds=seeds, max_seeds=max_seeds)
    return {s: load_checkpoint(p, device=device) for s, p in paths.items()}


def checkpoints(P: Params, kind: str, *, required: bool = False) -> dict[int, Path]:
    """The checkpoints a notebook uses: those of ``kind`` in ``P.checkpoint_dir`` (network size
    chosen as in :func:`find_checkpoints`), restricted to ``P.seeds`` if given (seeds missing for
    this kind are skipped) and to the profile's ``max_seeds``. ``required``: raise a one-line
    ValueError, saying how to train them, if there are none."""
    found = find_checkpoints(P.checkpoint_dir, kind)
    if getattr(P, "seeds", None) is not None:
        found = {s: p for s, p in found.items() if s in P.seeds}
    if P.profile.max_seeds is not None:
        found = dict(list(found.items())[:P.profile.max_seeds])
    if required and not found:
        flag = "on" if kind == "fb" else "off"
        raise ValueError(f"no {kind} networks in {P.checkpoint_dir!r}"
                         f"{' for seeds ' + str(list(P.seeds)) if getattr(P, 'seeds', None) else ''}: "
                         f"train them with python -m fbctrl pretrain --feedback {flag} --seeds 0 --out DIR")
    return found


def networks(P: Params, kind: str, *, required: bool = False) -> dict:
    """``{seed: Network}`` on ``P.device`` for :func:`checkpoints` (may be empty unless required)."""
    from .checkpoint import load_checkpoint

    return {s: load_checkpoint(p, device=P.device) for s, p in checkpoints(P, kind, required=required).items()}


def load_curves(paths: dict[int, Path]) -> dict[str, np.ndarray] | None:
    """Stack the pre-training curves (``X.curve.npz`` beside each ``X.pt``) over seeds.

    Returns ``{"seeds": [S], "batch": [N], "loss": [S, N], "task_loss": [S, N],
    "eval_batch": [M], "eval_<name>": [S, M], ...}`` truncated to the shortest run, or None if no
    checkpoint has a curve file.
    """
    curves = {}
    for s, p in paths.items():
        f = Path(p).with_suffix(".curve.npz")
        if f.is_file():
            with np.load(f) as z:
                curves[s] = {k: z[k] for k in z.files}
    if not curves:
        return None
    seeds = sorted(curves)
    first = curves[seeds[0]]
    out: dict[str, np.ndarray] = {"seeds": np.asarray(seeds)}
    nb = min(len(c["batch"]) for c in curves.values())
    ne = min(len(c["eval_batch"]) for c in curves.values())
    out["batch"] = first["batch"][:nb]
    out["eval_batch"] = first["eval_batch"][:ne]
    keys = set.intersection(*(set(c) for c in curves.values())) - {"batch", "eval_batch"}
    for k in sorted(keys):
        m = ne if k.startswith("eval_") else nb
        out[k] = np.stack([curves[s][k][:m] for s in seeds]).astype(np.float64)
    return out


# ---------------------------------------------------------------------------------------------
# Numbers in the prose (glue)
# ---------------------------------------------------------------------------------------------

_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _sci(mant: str, exp: int) -> str:
    return f"{mant} × 10{str(exp).translate(_SUP)}"


def fmt_num(x, digits: int = 3) -> str:
    """``x`` rounded to ``digits`` significant figures, as prose: ``0.0123``, ``1.23 × 10⁻⁵``.
    Plain notation for magnitudes 1e-3 .. 1e5, scientific outside."""
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    s = f"{x:.{digits - 1}e}"  # rounds once; the exponent is that of the rounded value
    mant, exp = s.split("e")
    exp = int(exp)
    if -3 <= exp < 5:
        dec = max(digits - 1 - exp, 0)
        return f"{float(s):.{dec}f}"
    return _sci(mant, exp)


def mean_sem(values, axis=0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (ddof = 1) along ``axis``; SEM is 0 for one value.
    NaNs are ignored."""
    a = np.asarray(values, dtype=np.float64)
    n = np.sum(np.isfinite(a), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        # all-NaN columns and single values: NaN mean / zero SEM, without numpy's RuntimeWarnings
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(a, axis=axis)
        sd = np.nanstd(a, axis=axis, ddof=1) if a.shape[axis] > 1 else np.zeros_like(m)
        sem = np.where(n > 1, sd / np.sqrt(np.maximum(n, 1)), 0.0)
    return m, sem


def fmt_pm(values, digits: int = 2, max_digits: int = 4) -> str:
    """``mean ± SEM`` over seeds. The SEM keeps two significant figures if it starts with 1 or 2,
    else one (``digits=1``: always one); the mean is rounded to the same decimal place, but to at
    most ``max_digits`` significant figures: ``0.0124 ± 0.0004``, ``1.10 ± 0.10``,
    ``(1.25 ± 0.05) × 10⁻⁵``. One value: just the value (3 significant figures)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return "n/a"
    if a.size == 1:
        return fmt_num(a[0])
    m, sem = (float(v) for v in mean_sem(a))
    if sem == 0:
        return f"{fmt_num(m)} ± 0"
    lead = int(f"{sem:.0e}"[0])
    sd = min(digits, 2) if lead <= 2 else 1
    sem_r = float(f"{sem:.{sd - 1}e}")
    e_sem = int(math.floor(math.log10(sem_r)))
    dec = sd - 1 - e_sem
    if m != 0:
        dec = min(dec, max_digits - 1 - int(math.floor(math.log10(abs(m)))))
    e_top = int(math.floor(math.log10(max(abs(m), sem_r))))
    if -3 <= e_top < 5:
        if dec <= 0:
            q = 10 ** (-dec)
            sem_txt = f"{round(sem_r / q) * q:.0f}"
            return f"{round(m / q) * q:.0f} ± {sem_txt if float(sem_txt) else fmt_num(sem_r, 1)}"
        sem_txt = f"{sem_r:.{dec}f}"
        return f"{m:.{dec}f} ± {sem_txt if float(sem_txt) else fmt_num(sem_r, 1)}"
    scale = 10.0 ** e_top
    dec_s = max(dec + e_top, 0)
    return f"({m / scale:.{dec_s}f} ± {sem_r / scale:.{dec_s}f}) × 10{str(e_top).translate(_SUP)}"


def _glue(name: str, text: str) -> str:
    from myst_nb import glue

    glue(name, text, display=False)
    return text


def glue_num(name: str, x, digits: int = 3) -> str:
    """Glue ``x`` rounded to ``digits`` significant figures (see :func:`fmt_num`) under ``name``;
    write ``{glue:text}`name``` in the markdown. Returns the text. Rounding makes a re-run on the
    same machine reproduce the stored text exactly (and keeps nbval's comparison meaningful)."""
    return _glue(name, fmt_num(x, digits))


def glue_pm(name: str, values, digits: int = 2) -> str:
    """Glue ``mean ± SEM`` of ``values`` (one per seed, see :func:`fmt_pm`) under ``name``."""
    return _glue(name, fmt_pm(values, digits))


def glue_int(name: str, k) -> str:
    """Glue an integer count (seeds, trials, ...)."""
    return _glue(name, str(int(k)))


def glue_text(name: str, text: str) -> str:
    """Glue a short piece of text (a word such as 'lower', a list of seeds, ...)."""
    return _glue(name, str(text))


def md_table(headers: list[str], rows: list[list], *, align: str | None = None):
    """A markdown table as a displayable object (rendered by the book as a real table).
    Cells are strings (format numbers with :func:`fmt_num` / :func:`fmt_pm` first)."""
    from IPython.display import Markdown

    align = align or "l" + "r" * (len(headers) - 1)
    sep = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep[a] for a in align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------------

class BookError(Exception):
    """A bad argument or set-up problem: one line, exit code 2."""


def toc_files(toc: Path = TOC) -> list[str]:
    """Every ``file`` entry of ``_toc.yml`` (the root first), in order, without suffix."""
    import yaml

    data = yaml.safe_load(Path(toc).read_text())
    out = [data["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                out.append(node["file"])
            for k in ("parts", "chapters", "sections"):
                for child in node.get(k, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(data)
    return out


def book_notebooks(toc: Path = TOC) -> list[Path]:
    """The notebooks of the book, in TOC order."""
    root = Path(toc).resolve().parent
    return [root / f"{f}.ipynb" for f in toc_files(toc) if (root / f"{f}.ipynb").is_file()]


_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _renumber_widgets(nb) -> None:
    """Give widget models deterministic ids (in order of first reference from the outputs) and
    drop models no output refers to: widget ids are random per run."""
    import json

    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state")
    if not state:
        return
    order: list[str] = []
    views = [o["data"][_WIDGET_VIEW] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if _WIDGET_VIEW in o.get("data", {})]
    queue = [v["model_id"] for v in views]
    while queue:
        mid = queue.pop(0)
        if mid in order or mid not in state:
            continue
        order.append(mid)
        queue += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[mid], sort_keys=True))
    new = {old: f"{i:032x}" for i, old in enumerate(order)}

    def sub(s: str) -> str:
        return re.sub(r"[0-9a-f]{32}", lambda m: new.get(m.group(0), m.group(0)), s)

    nb.metadata["widgets"][_WIDGET_STATE]["state"] = {
        new[k]: json.loads(sub(json.dumps(state[k]))) for k in order}
    for v in views:
        v["model_id"] = new.get(v["model_id"], v["model_id"])


def _clean_metadata(nb) -> None:
    """Drop per-run metadata (timings, random cell and widget ids) so that a re-run on the same
    machine changes no bytes."""
    pm = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {"parameters": pm.get("parameters", {})}
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            cell["id"] = "injected-parameters"
            if "hide-cell" not in tags:
                cell.metadata["tags"] = tags + ["hide-cell"]
    _renumber_widgets(nb)


def run_notebook(path: Path, parameters: dict) -> None:
    """Execute one notebook in place (cwd = its folder). On failure the notebook is left as it
    was and the failed copy is written to ``_build/failed/``."""
    import nbformat
    import papermill as pm

    path = Path(path).resolve()
    tmp = path.with_name(f".{path.stem}.run-tmp.ipynb")
    try:
        pm.execute_notebook(str(path), str(tmp), parameters=parameters, kernel_name="python3",
                            cwd=str(path.parent), progress_bar=False, log_output=False,
                            request_save_on_cell_execute=False)
    except Exception as exc:  # noqa: BLE001
        failed = ROOT / "_build" / "failed" / path.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            os.replace(tmp, failed)
        msg = str(exc).strip().splitlines()
        raise RuntimeError(f"{path.name} failed ({type(exc).__name__}: "
                           f"{msg[-1] if msg else ''}); executed copy in {failed}") from None
    nb = nbformat.read(tmp, as_version=4)
    _clean_metadata(nb)
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def run_notebooks(profile: str = "default", device: str = "cpu", only: list[str] | None = None,
                  checkpoint_dir: str | None = None, progress: bool = True) -> list[Path]:
    """Execute the book's notebooks in place (see module docstring)."""
    from tqdm.auto import tqdm

    get_profile(profile)
    nbs = book_notebooks()
    if only:
        by_name = {p.stem: p for p in nbs}
        chosen = []
        for name in only:
            stem = Path(name).name.removesuffix(".ipynb")
            if stem not in by_name:
                raise BookError(f"--only: unknown notebook {name!r} (allowed: {', '.join(by_name)})")
            chosen.append(by_name[stem])
        nbs = [p for p in nbs if p in chosen]
    params: dict[str, Any] = {"profile": profile, "device": device}
    if checkpoint_dir is not None:
        params["checkpoint_dir"] = str(Path(checkpoint_dir).resolve())
    # the kernels inherit this: fbctrl's progress bars stay out of the notebooks' outputs
    os.environ["TQDM_DISABLE"] = "1"
    bar = tqdm(nbs, desc=f"notebooks ({profile}, {device})", unit="notebook", disable=not progress,
               dynamic_ncols=True)
    for p in bar:
        bar.set_postfix_str(p.name)
        run_notebook(p, params)
    return nbs


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BookError(message)


def _device_arg(s: str) -> str:
    try:
        return _check_device("--device", s)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dir_arg(s: str) -> str:
    if not Path(s).is_dir():
        raise argparse.ArgumentTypeError(f"{s!r} is not a folder")
    return s


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m fbctrl.book", description="Execute the book's notebooks in place.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="execute notebooks in place with papermill")
    r.add_argument("--profile", choices=list(PROFILES), default="default",
                   help="; ".join(f"{k}: {v.description}" for k, v in PROFILES.items()))
    r.add_argument("--device", type=_device_arg, default="cpu", help="cpu or cuda[:N]")
    r.add_argument("--only", nargs="+", metavar="NAME", help="notebook names (e.g. model_and_task)")
    r.add_argument("--checkpoint-dir", type=_dir_arg, default=None,
                   help="folder of pre-trained networks (default: the repository's checkpoints/)")
    r.add_argument("--no-progress", action="store_true")
    sub.add_parser("list", help="list the notebooks in book order")
    return p


def main(argv=None) -> int:
    try:
        a = build_parser().parse_args(argv)
        if a.cmd == "list":
            for p in book_notebooks():
                print(p.relative_to(ROOT))
            return 0
        run_notebooks(a.profile, a.device, a.only, a.checkpoint_dir, progress=not a.no_progress)
        return 0
    except BookError as exc:
        print(f"fbctrl.book: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"fbctrl.book: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
