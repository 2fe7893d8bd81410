"""The files of the paper protocol's units: where they are read and written, how they are
checked, what they record about their inputs, and who is computing which.

* **Reading** (:func:`read_unit`, :func:`read_meta`): one function validates a unit file
  entirely: every array is decompressed (so a truncated file, an empty one and a flipped bit,
  which the zip format's CRC-32 catches, all fail here), the ``meta`` entry must be JSON of
  the kind :data:`UNIT_KIND` and, when asked, describe the expected unit. Every failure is one
  :class:`DamagedFileError` naming the file (``zipfile.BadZipFile``, ``zlib.error``,
  ``EOFError``, a missing key, a wrong kind, ...), so the runner recomputes the unit and a
  reader says which file to delete or recompute. A file once validated is remembered by
  (path, size, modification time), so re-planning does not read it again.
* **Networks** (:func:`check_network_files`, from ``core.checkpoint``): a pre-trained network
  is done when its checkpoint loads (``weights_only``), its sidecar is JSON and its training
  curves are a whole ``.npz``; else a ``CheckpointError`` (the base of :class:`DamagedFileError`)
  names the file.
* **Writing** (:func:`write_unit`): atomically (a temporary file in the same folder, then a
  rename), with the provenance of :func:`fbctrl.experiments.runs.provenance`.
* **Provenance that detects staleness**: every unit records the sha256 of the network it was
  computed from (:func:`file_sha256`) and, for runs at the sweep's best rate, the digest of the
  sweep files that chose the rate (:func:`files_digest`); paths are recorded relative to the
  repository (:func:`rel_path`). The runner re-plans a unit whose inputs no longer match.
* **Claims** (:func:`claim`): before computing a unit a process creates ``.{file}.claim`` with
  ``O_CREAT | O_EXCL`` (atomic on local and network file systems), holding its host, pid and a
  nonce; it deletes it when the unit is written or the process ends. A claim whose process is
  dead (same host) is taken over. Processes sharing a results folder (``paper --shard`` on a
  cluster, or two shells given the same shard) therefore never compute a unit twice unnoticed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import uuid
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import paths
from ..core.checkpoint import CheckpointError, atomic_write_bytes, check_network_files, network_files
from .runs import provenance

__all__ = ["UNIT_KIND", "DamagedFileError", "read_unit", "read_meta", "write_unit", "unit_state", "file_sha256",
           "files_digest", "rel_path", "check_network_files", "network_files", "Claim", "claim", "claim_path", "holder", "claim_is_stale",
           "find_unit_files", "damaged_unit_files", "rewrite_meta"]

UNIT_KIND = "fbctrl paper unit"

# What a damaged or foreign file raises while it is read: zipfile.BadZipFile (also for a failed
# CRC-32), zlib.error, EOFError, KeyError (no meta), ValueError (an object array, bad JSON),
# NotImplementedError (a flipped compression method), struct.error, ... Flipping every byte of a
# unit file in turn meets most of them (tests/experiments/test_store.py), so every exception while reading
# means "damaged" (a missing file is checked before).
_READ_ERRORS = (Exception,)


class DamagedFileError(CheckpointError):
    """A unit, checkpoint or curve file that cannot be read or is not what its name says; the
    message names the file and what to do."""


# ---------------------------------------------------------------------------------------------
# Reading and writing unit files
# ---------------------------------------------------------------------------------------------

def _stat_key(path) -> tuple[str, int, int]:
    st = os.stat(path)
    return str(Path(path).resolve()), st.st_mtime_ns, st.st_size


def _load(path: str) -> tuple[dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as z:
            rec = {k: z[k] for k in z.files}          # decompresses every entry: the CRC-32 is checked
        meta = json.loads(str(rec.pop("meta")))
    except _READ_ERRORS as exc:
        raise DamagedFileError(f"result file {path} is damaged ({_why(exc, path)}); "
                               "delete it and run `python -m fbctrl paper` to recompute it") from None
    if not isinstance(meta, dict) or meta.get("kind") != UNIT_KIND:
        kind = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise DamagedFileError(f"result file {path} is not a unit of the paper protocol (kind {kind!r})")
    return rec, meta


@lru_cache(maxsize=8192)
def _validated_meta(key: tuple[str, int, int]) -> dict:
    return _load(key[0])[1]


def _why(exc: BaseException, path) -> str:
    """What went wrong, in a few words (numpy's advice to unpickle a file is not passed on)."""
    if not zipfile.is_zipfile(path):
        return "not a zip (.npz) archive: truncated, empty or another format"
    if "pickle" in str(exc):
        return "it holds pickled objects, which are never loaded"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0][:120] if s else "unreadable"


def _check_unit(path: Path, meta: dict, unit: dict | None) -> None:
    if unit is not None and meta.get("unit") != unit:
        raise DamagedFileError(f"result file {path} describes another run ({meta.get('unit')}); "
                               "delete it and run `python -m fbctrl paper` to recompute it")


def _exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"result file {path} is missing: run `python -m fbctrl paper` to compute it")


def read_unit(path, unit: dict | None = None) -> tuple[dict, dict]:
    """``(records, meta)`` of a unit file, validated whole (see the module's docstring); with
    ``unit`` (the unit as a JSON dict) the file must describe exactly that unit. Raises
    ``FileNotFoundError`` for a missing file and :class:`DamagedFileError` otherwise."""
    path = Path(path)
    _exists(path)
    rec, meta = _load(str(path))
    _check_unit(path, meta, unit)
    return rec, meta


def read_meta(path, unit: dict | None = None) -> dict:
    """The ``meta`` of a unit file validated whole as :func:`read_unit` does; a validated file is
    remembered by (path, size, modification time) and not read again."""
    path = Path(path)
    _exists(path)
    meta = _validated_meta(_stat_key(path))
    _check_unit(path, meta, unit)
    return meta


def unit_state(path, unit: dict) -> str:
    """``"missing"``, ``"damaged"`` (unreadable, foreign, or another unit's) or ``"ok"``."""
    try:
        read_meta(path, unit)
    except FileNotFoundError:
        return "missing"
    except DamagedFileError:
        return "damaged"
    return "ok"


def write_unit(path, unit: dict, records: dict, meta: dict) -> Path:
    """Write a unit file atomically: its records and a ``meta`` entry (JSON) holding the kind,
    the unit and ``meta`` with the provenance (commit, machine, time)."""
    path = Path(path)
    payload = {k: np.asarray(v) for k, v in records.items()}
    payload["meta"] = np.array(json.dumps(provenance({"kind": UNIT_KIND, "unit": unit, **meta})))
    buf = io.BytesIO()
    np.savez_compressed(buf, **payload)
    atomic_write_bytes(path, buf.getvalue())
    return path


def rewrite_meta(path, meta: dict) -> Path:
    """Replace a unit file's ``meta`` entry (validated first), keeping its records as they are:
    for a migration of provenance, not for new results (no new provenance is stamped)."""
    path = Path(path)
    rec, _ = read_unit(path)
    payload = {**rec, "meta": np.array(json.dumps(meta))}
    buf = io.BytesIO()
    np.savez_compressed(buf, **payload)
    atomic_write_bytes(path, buf.getvalue())
    return path


def find_unit_files(results_dir) -> list[Path]:
    """Every unit file (``*.npz``) under a results folder, sorted."""
    return sorted(Path(results_dir).rglob("*.npz"))


def damaged_unit_files(results_dir) -> list[str]:
    """One line per unit file under ``results_dir`` that fails validation, naming it."""
    out = []
    for p in find_unit_files(results_dir):
        try:
            read_meta(p)
        except DamagedFileError as exc:
            out.append(str(exc))
    return out


# ---------------------------------------------------------------------------------------------
# Provenance: content hashes and paths relative to the repository
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def _sha(key: tuple[str, int, int]) -> str:
    h = hashlib.sha256()
    with open(key[0], "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path) -> str:
    """sha256 of a file's bytes (hex), remembered by (path, size, modification time)."""
    return _sha(_stat_key(path))


def files_digest(files) -> str:
    """One sha256 over several files: of the lines ``{name} {sha256}`` in the given order (a
    file's name, not its folder, so the digest travels with a copied results folder)."""
    lines = "".join(f"{Path(p).name} {file_sha256(p)}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def rel_path(path) -> str:
    """``path`` relative to the repository when inside it (provenance that travels), else absolute."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(paths.repo_root()))
    except ValueError:              # outside the repository, or no repository (an installed package)
        return str(p)


# ---------------------------------------------------------------------------------------------
# Claims: one process computes a unit at a time
# ---------------------------------------------------------------------------------------------

HOST = socket.gethostname()


def claim_path(path) -> Path:
    """The claim file of a unit's file: ``.{name}.claim`` beside it."""
    path = Path(path)
    return path.parent / f".{path.name}.claim"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # another user's live process
        return True
    return True


def _read_claim(cp: Path) -> dict | None:
    try:
        d = json.loads(cp.read_text())
        return d if isinstance(d, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}                     # being written, or garbage: treated as held


def _stale(d: dict) -> bool:
    """A claim made on this host by a process that no longer runs."""
    return d.get("host") == HOST and isinstance(d.get("pid"), int) and not _alive(d["pid"])


class Claim:
    """This process's claim on one unit; :meth:`release` deletes the claim file (if still ours)."""

    def __init__(self, path: Path, nonce: str):
        self.path, self.nonce = path, nonce

    def release(self) -> None:
        d = _read_claim(self.path)
        if d is not None and d.get("nonce") == self.nonce:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def _create(cp: Path, nonce: str) -> bool:
    try:
        fd = os.open(cp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"host": HOST, "pid": os.getpid(), "nonce": nonce}, f)
    return True


def _take_over(cp: Path, seen: dict) -> None:
    """Remove a stale claim: rename it aside and check it was the stale one (two processes may
    try at once); a live claim grabbed by mistake is put back."""
    aside = cp.with_name(f"{cp.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        os.rename(cp, aside)
    except FileNotFoundError:
        return
    got = _read_claim(aside) or {}
    if got.get("nonce") != seen.get("nonce"):
        try:
            os.link(aside, cp)        # fails if someone created a new claim meanwhile: theirs stands
        except OSError:
            pass
    aside.unlink(missing_ok=True)


def claim(path) -> Claim | None:
    """Claim the unit whose file is ``path``: a :class:`Claim`, or None when a live process
    holds it. Folders are created as needed; a claim of a dead process is taken over."""
    cp = claim_path(path)
    cp.parent.mkdir(parents=True, exist_ok=True)
    nonce = uuid.uuid4().hex
    for _ in range(3):
        if _create(cp, nonce):
            return Claim(cp, nonce)
        seen = _read_claim(cp)
        if seen is None:
            continue                  # released meanwhile: try again
        if not _stale(seen):
            return None
        _take_over(cp, seen)
    return None


def claim_is_stale(path) -> bool:
    """The claim on ``path``'s unit belongs to a process of this host that no longer runs."""
    d = _read_claim(claim_path(path))
    return d is not None and _stale(d)


def holder(path) -> str:
    """Who holds the claim on ``path``'s unit, in words (for the runner's log)."""
    d = _read_claim(claim_path(path)) or {}
    return f"pid {d.get('pid', '?')} on {d.get('host', '?')}"


