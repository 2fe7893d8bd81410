"""Compiled inner loops for ONE adaptation run on a CPU (``csrc/one_run.c``), loaded with ctypes.

At batch 1 the per-step work of RFLO and the per-past-step work of exact online BPTT are a few
hundred numbers per call, so a Python loop over NumPy calls is bound by the cost of each call
(about a microsecond), not by the arithmetic. The C file does the same arithmetic, in the same
order per element, as the NumPy paths it replaces (``RFLO.recurrent_input_one`` /
``apply_step_one`` inside ``adapt._steps_one_run``, and ``OnlineBPTT._sweep_one_np``); only the
order of the sums inside each product differs, so results agree to float rounding (tests).

Built on first use with the system's C compiler (``$CC``, else ``cc``): ``-O3 -march=native
-fopenmp-simd``, into a cache folder (``$FBCTRL_CACHE_DIR``, else ``$XDG_CACHE_HOME/fbctrl``, else
``~/.cache/fbctrl``) under a name that hashes the source, the flags, the compiler and the CPU, so a
library built for one machine is never loaded on another. Written atomically; concurrent builds
are harmless.

``FBCTRL_KERNELS`` chooses: ``auto`` (default: compiled where a compiler works, else NumPy, with
one warning), ``c`` (compiled or an error), ``numpy`` (never compiled: the NumPy paths).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["library", "mode", "available", "MODES", "VERSION", "SOURCE"]

SOURCE = Path(__file__).with_name("csrc") / "one_run.c"
VERSION = 1
MODES = ("auto", "c", "numpy")
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-std=gnu11", "-fPIC", "-shared")
FALLBACK_FLAGS = ("-O3", "-std=gnu11", "-fPIC", "-shared")      # a compiler without -march=native

_lib = None
_tried = False
_error = [""]


def mode() -> str:
    """The kernel choice from ``FBCTRL_KERNELS`` (auto, c, numpy)."""
    m = os.environ.get("FBCTRL_KERNELS", "auto").strip().lower() or "auto"
    if m not in MODES:
        raise ValueError(f"FBCTRL_KERNELS must be one of {', '.join(MODES)}, got {m!r}")
    return m


def cache_dir() -> Path:
    d = os.environ.get("FBCTRL_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fbctrl"


def _cpu_id() -> str:
    """What -march=native compiles for: the CPU's model and feature flags (Linux), else the platform."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags", "Features", "CPU part"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _compiler_version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return ""


def _build(cc: str) -> Path:
    src = SOURCE.read_bytes()
    ver = _compiler_version(cc)
    if not ver and shutil.which(cc) is None:
        raise RuntimeError(f"no C compiler {cc!r} found (set CC, or FBCTRL_KERNELS=numpy)")
    last = ""
    for flags in (FLAGS, FALLBACK_FLAGS):
        key = hashlib.sha256(b"\0".join([src, " ".join(flags).encode(), ver.encode(), _cpu_id().encode(),
                                         platform.machine().encode()])).hexdigest()[:16]
        out = cache_dir() / f"one_run-{key}.so"
        if out.is_file():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
        os.close(fd)
        try:
            p = subprocess.run([cc, *flags, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True,
                               timeout=300)
            if p.returncode == 0:
                os.replace(tmp, out)
                return out
            last = p.stderr.strip().splitlines()[-1:] or [f"exit {p.returncode}"]
            last = last[0]
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(f"could not compile {SOURCE.name} with {cc}: {last}")


def _declare(lib) -> None:
    vp, i, pd, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_ssize_t, ctypes.c_double
    for sfx in ("f32", "f64"):
        f = getattr(lib, f"bptt_sweep_history_{sfx}")
        f.argtypes, f.restype = [i, i, pd, vp, vp, vp, vp, vp], None
        f = getattr(lib, f"bptt_sweep_current_{sfx}")
        f.argtypes, f.restype = [i, i, pd, vp, vp, vp, vp, vp], None
        f = getattr(lib, f"bptt_trial_step_{sfx}")
        f.argtypes, f.restype = [i, i, i, i, d, d, d, d] + [vp] * 19, None
        f = getattr(lib, f"bptt_norm_{sfx}")
        f.argtypes, f.restype = [i, i, vp, vp, vp, d], d
        f = getattr(lib, f"rflo_trial_{sfx}")
        f.argtypes, f.restype = [i, i, i, d, d, d, d] + [vp] * 19, d
    lib.fbctrl_one_run_version.argtypes, lib.fbctrl_one_run_version.restype = [], ctypes.c_int


def library():
    """The loaded library, or None where the NumPy paths run (``FBCTRL_KERNELS=numpy``, or no
    working compiler under ``auto``: one warning). Built once per process and cached on disk."""
    global _lib, _tried
    m = mode()
    if m == "numpy":
        return None
    if not _tried:
        _tried = True
        try:
            lib = ctypes.CDLL(str(_build(os.environ.get("CC", "cc"))))
            _declare(lib)
            if lib.fbctrl_one_run_version() != VERSION:
                raise RuntimeError(f"{SOURCE.name} is version {lib.fbctrl_one_run_version()}, expected {VERSION}")
            _lib = lib
        except (OSError, RuntimeError, AttributeError, subprocess.SubprocessError) as e:
            _lib = None
            _error[0] = str(e)
            if m == "auto":
                warnings.warn(f"compiled one-run kernels unavailable ({e}); using the NumPy paths", RuntimeWarning,
                              stacklevel=2)
    if _lib is None and m == "c":
        raise RuntimeError(f"FBCTRL_KERNELS=c but the compiled kernels are unavailable: {_error[0]}")
    return _lib


def available(dtype) -> bool:
    """Whether the compiled kernels run for arrays of this NumPy/torch dtype (float32, float64)."""
    return _suffix(dtype) is not None and library() is not None


def _suffix(dtype):
    name = str(dtype).replace("torch.", "")
    return {"float32": "f32", "float64": "f64"}.get(name)


def function(name: str, dtype):
    """The compiled ``name`` for ``dtype`` (e.g. ``function("rflo_trial", np.float32)``)."""
    return getattr(library(), f"{name}_{_suffix(dtype)}")


def ptr(a: np.ndarray) -> int:
    """The address of a C-contiguous array (checked)."""
    if not a.flags.c_contiguous:
        raise ValueError("compiled kernels need C-contiguous arrays")
    return a.ctypes.data


def reset() -> None:
    """Forget the loaded library (tests switch FBCTRL_KERNELS within one process)."""
    global _lib, _tried
    _lib, _tried = None, False
