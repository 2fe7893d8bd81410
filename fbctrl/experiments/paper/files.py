"""Unit files: one per unit, written atomically with its provenance and validated whole on
load (the file store itself is :mod:`fbctrl.experiments.store`); whether a unit is done
(:func:`unit_status`); and the loading of finished runs and network-level units."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...core.checkpoint import CheckpointError, check_network_files
from .. import network_units, store
from ..network_units import NetworkUnit, shipped_seeds
from ..protocol import Condition, Protocol
from ..store import DamagedFileError, file_sha256, files_digest
from .config import PaperConfig, Variant, rotation_folder
from .pretrain import PretrainUnit

__all__ = ["unit_dict", "read_meta", "read_unit", "write_unit", "sweep_digest", "unit_status", "is_done",
           "network_settings", "load_runs", "load_network_units"]


def unit_dict(unit) -> dict:
    """What a unit file records as its unit (and is checked against on load): the unit's fields,
    its condition by name, its protocol and variant by value (no variant for the protocol as
    it is)."""
    d = asdict(unit)
    if "condition" in d:
        d["condition"] = unit.condition.name
    if "protocol" in d:
        d["protocol"] = unit.protocol.value
    if "variant" in d:
        if unit.variant is Variant.NONE:
            del d["variant"]                 # files of the protocol as it is say nothing about variants
        else:
            d["variant"] = unit.variant.value
    return json.loads(json.dumps(d))


def read_meta(path) -> dict:
    """A unit file's meta, the file validated whole (``store.read_meta``)."""
    return store.read_meta(path)


def read_unit(path) -> tuple[dict, dict]:
    """A unit file's records and meta, the file validated whole (``store.read_unit``)."""
    return store.read_unit(path)


def write_unit(cfg: PaperConfig, unit, records: dict, meta: dict) -> Path:
    """Write ``unit``'s file atomically with ``records`` and ``meta`` (``store.write_unit``)."""
    return store.write_unit(unit.path(cfg), unit_dict(unit), records, meta)


def sweep_digest(cfg: PaperConfig, cond: Condition, rotation: float | None = None) -> str:
    """sha256 over every sweep file of ``cond`` at ``rotation`` (None: the sweep rotation) in the
    results folder (``store.files_digest``, in name order): what a run at that sweep's best rate
    records, and is re-planned when it changes."""
    folder = Path(cfg.results_dir) / "sweep" / rotation_folder(cfg.sweep_rotation if rotation is None else rotation)
    return files_digest(sorted(folder.glob(f"{cond.slug}_lr*_seed*.npz")))


def network_settings(cfg: PaperConfig, unit) -> dict:
    """The settings of a network-level unit's measure, as its file records them."""
    return network_units.settings(cfg.network_measures, unit.measure, cfg.task)


def unit_status(cfg: PaperConfig, unit) -> tuple[str, str]:
    """``(state, why)``: ``"done"``; ``"missing"``; ``"damaged"`` (a file that fails validation,
    ``store.read_unit`` or ``core.checkpoint.check_network_files``, named in ``why``); or
    ``"stale"``: its inputs changed since it was computed (its network's sha256, the settings of
    a network measure, the sweep files that chose a best rate). Damaged and stale units are
    planned again like missing ones."""
    if unit.stage == "beyond":                  # fbctrl.experiments.beyond.BeyondUnit: its family's status
        return unit.status(cfg)
    p = unit.path(cfg)
    if unit.stage == "pretrain":
        try:
            check_network_files(p)
        except FileNotFoundError as exc:
            return ("damaged", str(exc)) if p.is_file() else ("missing", "")
        except CheckpointError as exc:
            return "damaged", str(exc)
        return "done", ""
    try:
        meta = store.read_meta(p, unit_dict(unit))
    except FileNotFoundError:
        return "missing", ""
    except DamagedFileError as exc:
        return "damaged", str(exc)
    return _freshness(cfg, unit, meta)


def _freshness(cfg: PaperConfig, unit, meta: dict) -> tuple[str, str]:
    p = unit.path(cfg)
    if unit.stage == "network" and meta.get("settings") != network_settings(cfg, unit):
        return "stale", f"{p} was computed with other settings of its measure"
    ck = unit.checkpoint(cfg) if unit.stage == "network" else PretrainUnit(unit.kind, unit.seed).path(cfg)
    if not ck.is_file():            # a run's network that is gone is compared when it is pre-trained again
        return ("stale", f"{p}: its network {ck} is not there") if unit.stage == "network" else ("done", "")
    if meta.get("network", {}).get("sha256") != file_sha256(ck):
        return "stale", f"{p} was computed from another network than {ck} (sha256 differs)"
    if getattr(unit, "protocol", None) is Protocol.BEST and meta.get("sweep_sha256") != sweep_digest(
            cfg.rates_config(), unit.condition, unit.rate_rotation):
        return "stale", f"{p}: the sweep files that chose its rate changed"
    return "done", ""


def is_done(cfg: PaperConfig, unit) -> bool:
    """The unit's file is whole, describes it, and its inputs are unchanged (:func:`unit_status`)."""
    return unit_status(cfg, unit)[0] == "done"


def load_runs(cfg: PaperConfig, units: list) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The records of ``units`` (one per seed, same condition and length), stacked along a leading
    seed axis, and their metas. Every file must exist and describe exactly its unit."""
    recs, metas = [], []
    for u in units:
        rec, meta = store.read_unit(u.path(cfg), unit_dict(u))
        recs.append(rec)
        metas.append(meta)
    keys = set.intersection(*(set(r) for r in recs)) if recs else set()   # a diverged run has no matched records
    return {k: np.stack([r[k] for r in recs]) for k in sorted(keys)}, metas


def load_network_units(cfg: PaperConfig, measure: str, source: str = "published") -> tuple[list[int], list[dict], list[dict]]:
    """The network-level files of ``measure`` that are done (same unit, same settings, the
    network unchanged), in seed order: (seeds, records, metas). Published seeds are the
    configured ones, shipped seeds those on disk."""
    seeds = cfg.fb_seeds if source == "published" else shipped_seeds(cfg)
    out = ([], [], [])
    for s in seeds:
        u = NetworkUnit(measure, getattr(cfg, "family", "fb"), int(s), source)   # beyond.BeyondConfig: its family
        if is_done(cfg, u):
            rec, meta = read_unit(u.path(cfg))
            out[0].append(int(s))
            out[1].append(rec)
            out[2].append(meta)
    return out
