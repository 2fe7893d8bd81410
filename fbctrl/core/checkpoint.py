"""Checkpoints: a flat dict of tensors (``torch.load(..., weights_only=True)``) plus a JSON sidecar.

``X.pt`` holds ``W_in [n,3]``, ``W_rec [n,n]``, ``W_fb [n,2]`` (mask applied), ``mask [n,2]``,
``b [n]``, ``W_out [2,n]``, ``b_out [2]``; ``X.json`` holds the configuration, seed, final losses
and provenance. Both are written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .model import Network, NetworkConfig
from .spec import NetworkSpec

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "atomic_write_bytes",
           "atomic_torch_save", "atomic_write_json", "CHECKPOINT_KEYS", "network_files", "check_network_files"]

CHECKPOINT_KEYS = ("W_in", "W_rec", "W_fb", "mask", "b", "W_out", "b_out")
TASK_INPUTS = (2, 3)     # input channels of the tasks (limit cycle, reaching)


class CheckpointError(ValueError):
    """A file that is not a valid fbctrl checkpoint, or one that does not fit the request."""


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def atomic_torch_save(obj, path) -> None:
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_write_json(path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_checkpoint(net: Network, path, meta: dict) -> None:
    """Write ``path`` (.pt) and its ``.json`` sidecar atomically. ``meta`` is merged with the
    network configuration."""
    if net.stacked:
        raise ValueError("save_checkpoint takes one network; select() it from a stacked set first")
    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.tensors().items()}
    tensors["W_fb"] = tensors["W_fb"] * tensors["mask"]
    sidecar = dict(meta)
    sidecar["network"] = {k: getattr(net.cfg, k) for k in NetworkConfig.__dataclass_fields__}
    sidecar["dtype"] = str(net.dtype).replace("torch.", "")
    atomic_torch_save(tensors, path)
    sidecar["sha256"] = _sha256(path)      # torch.load checks no checksum: this and the zip's CRCs do
    atomic_write_json(path.with_suffix(".json"), sidecar)


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_integrity(path: Path) -> None:
    """The bytes of a checkpoint are the ones written: every member's CRC-32 of the zip archive
    that torch.save writes (torch.load checks none, so a flipped bit would load other weights),
    and the sha256 its sidecar records, where it records one."""
    what = "restore it, or pre-train it again (python -m fbctrl pretrain ... --force)"
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as exc:  # noqa: BLE001 - any unreadable archive is damaged
        raise CheckpointError(f"checkpoint {path}: damaged or not a torch checkpoint ({type(exc).__name__}); "
                              f"{what}") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path}: damaged (checksum of {bad} fails); {what}")
    want = read_sidecar(path).get("sha256")
    if want is not None and want != _sha256(path):
        raise CheckpointError(f"checkpoint {path}: damaged (its sha256 differs from the one in its sidecar); {what}")


def load_checkpoint(path, *, n: int | None = None, device=None, dtype=torch.float32) -> Network:
    """Load and validate a checkpoint. ``n``: the expected network size (error if different)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    _check_integrity(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is "not a checkpoint"
        raise CheckpointError(f"checkpoint {path}: damaged or not a torch checkpoint ({type(exc).__name__}); "
                              "restore it, or pre-train it again (python -m fbctrl pretrain ... --force)") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict of tensors, found {type(data).__name__}")
    missing = [k for k in CHECKPOINT_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing tensors {', '.join(missing)}")
    if not all(isinstance(data[k], torch.Tensor) for k in CHECKPOINT_KEYS):
        raise CheckpointError(f"checkpoint {path}: entries must be tensors")
    W_rec = data["W_rec"]
    if W_rec.dim() != 2 or W_rec.shape[0] != W_rec.shape[1]:
        raise CheckpointError(f"checkpoint {path}: W_rec must be square, has shape {tuple(W_rec.shape)}")
    n_file = W_rec.shape[0]
    # inputs: 3 for reaching, 2 for the limit cycle (``core.tasks``); any other count is an error below
    n_in = data["W_in"].shape[1] if data["W_in"].dim() == 2 and data["W_in"].shape[1] in TASK_INPUTS else 3
    expected = {"W_in": (n_file, n_in), "W_fb": (n_file, 2), "mask": (n_file, 2), "b": (n_file,),
                "W_out": (2, n_file), "b_out": (2,)}
    for k, shape in expected.items():
        if tuple(data[k].shape) != shape:
            raise CheckpointError(f"checkpoint {path}: {k} has shape {tuple(data[k].shape)}, expected {shape}")
    if n is not None and n != n_file:
        raise CheckpointError(f"checkpoint {path}: network size n={n_file} does not match the requested n={n}")
    for k in CHECKPOINT_KEYS:
        if not torch.isfinite(data[k]).all():
            raise CheckpointError(f"checkpoint {path}: {k} contains NaN or inf")
    meta = read_sidecar(path)
    netmeta = meta.get("network", {}) if meta else {}
    density = float(data["mask"].mean())
    cfg = NetworkConfig(n=n_file, n_in=n_in, dt=netmeta.get("dt", 0.01), tau=netmeta.get("tau", 0.05),
                        feedback_density=netmeta.get("feedback_density", density),
                        delay=netmeta.get("delay", 0))
    net = Network(cfg, **{k: data[k].to(dtype) for k in CHECKPOINT_KEYS})
    return net.to(device=device)


def read_sidecar(path) -> dict:
    """The JSON sidecar of a checkpoint ({} if absent); a malformed sidecar is an error."""
    side = Path(path).with_suffix(".json")
    if not side.exists():
        return {}
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint sidecar {side}: not valid JSON ({exc.msg})") from None


# ---------------------------------------------------------------------------------------------
# A finished network: the checkpoint, its sidecar and its training curves, all readable
# ---------------------------------------------------------------------------------------------

def network_files(pt) -> tuple[Path, Path, Path]:
    """A pre-trained network's files: ``X.pt``, ``X.json`` (sidecar), ``X.curve.npz`` (curves)."""
    pt = Path(pt)
    return pt, pt.with_suffix(".json"), Path(str(pt)[:-3] + ".curve.npz")


@lru_cache(maxsize=256)
def _check_network(keys: tuple) -> None:
    pt, side, curve = (Path(k[0]) for k in keys)
    load_checkpoint(pt)
    if not read_sidecar(pt):
        raise CheckpointError(f"checkpoint sidecar {side}: empty")
    try:
        with np.load(curve, allow_pickle=False) as z:
            for k in z.files:
                z[k]                  # decompress every entry: zip's CRC-32 catches a flipped bit
    except Exception as exc:  # noqa: BLE001 -- any failure to read a curve file means it is damaged
        raise CheckpointError(f"training curves {curve}: damaged ({type(exc).__name__})") from None


def check_network_files(pt) -> None:
    """A finished network has all three files of :func:`network_files` and each is readable:
    ``FileNotFoundError`` naming a missing one, :class:`CheckpointError` naming a damaged one.
    A file once validated is remembered by (path, size, modification time)."""
    files = network_files(pt)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"pre-trained network {pt}: missing {', '.join(missing)}")
    keys = []
    for f in files:
        st = os.stat(f)
        keys.append((str(f.resolve()), st.st_mtime_ns, st.st_size))
    _check_network(tuple(keys))


# ---------------------------------------------------------------------------------------------
# Finding checkpoints: fb_seed0.pt, nofb_seed3.pt, fb_n50_seed0.pt (other sizes than 400),
# fb_d5_seed0.pt, fb0.3_seed0.pt, lc_fb_seed0.pt: {NetworkSpec.tag}_seed{s}.pt
# ---------------------------------------------------------------------------------------------

KINDS = ("fb", "nofb")     # the paper's two families: with feedback / without (W_fb = 0)
_CKPT_RE = re.compile(r"^(?P<tag>[a-z0-9._]+?)_seed(?P<seed>\d+)\.pt$")


def _family(kind: str) -> NetworkSpec:
    """The family asked for by name (any ``NetworkSpec`` stem without a size)."""
    spec = NetworkSpec.parse(kind)
    if spec.tag != spec.family:
        raise ValueError(f"kind must name a network family without its size (e.g. fb, nofb, fb_d5, fb0.3, lc_fb), "
                         f"got {kind!r}: pass the size as n")
    return spec


def _found_by_size(folder: Path, want: NetworkSpec) -> dict[int, dict[int, Path]]:
    """{size: {seed: path}} of the checkpoints of family ``want`` in ``folder``."""
    found: dict[int, dict[int, Path]] = {}
    for p in folder.iterdir():
        m = _CKPT_RE.match(p.name)
        if not m:
            continue
        try:
            spec = NetworkSpec.parse(m["tag"])
        except ValueError:
            continue
        if spec.family == want.family:
            found.setdefault(spec.n, {})[int(m["seed"])] = p
    return found


def find_checkpoints(checkpoint_dir, kind: str, *, n: int | None = None, seeds: Iterable[int] | None = None,
                     max_seeds: int | None = None) -> dict[int, Path]:
    """Pre-trained networks of one family in ``checkpoint_dir``: ``{seed: path}``, sorted by seed.

    ``kind`` is a family (``NetworkSpec.family``): ``"fb"`` (``fb_seed*.pt``), ``"nofb"``,
    ``"fb_d5"``, ``"fb0.3"``, ``"lc_fb"``, ...; networks of another size than 400 are named
    ``fb_n50_seed0.pt`` and are found with ``n=50``. With ``n=None`` the size is 400 if such
    files exist, else the only size present. ``seeds`` asks for exactly those seeds (an error if
    one is missing); ``max_seeds`` keeps the lowest ones.
    """
    want = _family(kind)
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise ValueError(f"checkpoint_dir {str(folder)!r} is not a folder")
    found = _found_by_size(folder, want)
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


def network_spec(path) -> NetworkSpec:
    """What the checkpoint at ``path`` is: from its sidecar where it has one, else from its name,
    else from its tensors (the task from the input count, the density from the mask)."""
    path = Path(path)
    side = read_sidecar(path)
    if side.get("network") or side.get("config"):
        return NetworkSpec.from_sidecar(side)
    m = _CKPT_RE.match(path.name)
    if m:
        try:
            return NetworkSpec.parse(m["tag"])
        except ValueError:
            pass
    cfg = load_checkpoint(path).cfg
    return NetworkSpec(task="reach" if cfg.n_in == 3 else "limit-cycle", feedback_density=cfg.feedback_density,
                       delay=cfg.delay, n=cfg.n)


def load_networks(checkpoint_dir, kind: str, *, n: int | None = None, seeds=None, max_seeds=None,
                  device="cpu") -> dict:
    """``{seed: Network}`` for the checkpoints :func:`find_checkpoints` finds (may be empty)."""
    paths = find_checkpoints(checkpoint_dir, kind, n=n, seeds=seeds, max_seeds=max_seeds)
    return {s: load_checkpoint(p, device=device) for s, p in paths.items()}
