"""Checkpoints: a flat dict of tensors (``torch.load(..., weights_only=True)``) plus a JSON sidecar.

``X.pt`` holds ``W_in [n,3]``, ``W_rec [n,n]``, ``W_fb [n,2]`` (mask applied), ``mask [n,2]``,
``b [n]``, ``W_out [2,n]``, ``b_out [2]``; ``X.json`` holds the configuration, seed, final losses
and provenance. Both are written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .model import Network, NetworkConfig

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "atomic_write_bytes",
           "atomic_torch_save", "atomic_write_json", "CHECKPOINT_KEYS"]

CHECKPOINT_KEYS = ("W_in", "W_rec", "W_fb", "mask", "b", "W_out", "b_out")


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
    atomic_write_json(path.with_suffix(".json"), sidecar)


def load_checkpoint(path, *, n: int | None = None, device=None, dtype=torch.float32) -> Network:
    """Load and validate a checkpoint. ``n``: the expected network size (error if different)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is "not a checkpoint"
        raise CheckpointError(f"checkpoint {path}: not a torch checkpoint ({type(exc).__name__})") from None
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
    expected = {"W_in": (n_file, 3), "W_fb": (n_file, 2), "mask": (n_file, 2), "b": (n_file,),
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
    cfg = NetworkConfig(n=n_file, dt=netmeta.get("dt", 0.01), tau=netmeta.get("tau", 0.05),
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
