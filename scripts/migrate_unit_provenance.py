"""Add the provenance that detects staleness to unit files written before it existed, without
recomputing anything: the sha256 of the network each run was computed from, the network's path
relative to the repository, and for runs at the sweep's best rate the digest of the sweep files
that chose it. Records are kept as they are (only the ``meta`` entry is rewritten).

    python scripts/migrate_unit_provenance.py            # the repository's results/paper
    python scripts/migrate_unit_provenance.py --check    # say what would change, write nothing

A run is stamped with its network's hash only where the network is provably the one it was
computed from: the commit recorded in the run equals the commit in the network's sidecar and the
recorded path names the same file. A best-rate run is stamped only where the sweep still picks
the rate it ran at. Anything else is reported and left without a hash (so it is re-planned).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

from fbctrl.book.chapters.paper_protocol import config_at
from fbctrl.core.checkpoint import read_sidecar
from fbctrl.experiments import paper, store
from fbctrl.experiments.protocol import Protocol
from fbctrl.paths import repo_root


def _units(cfg):
    """Every adaptation and sweep unit of the plan, sweep units first (best-rate runs read them)."""
    units = [u for g in paper.plan(cfg, include_done=True) for u in g.units if u.stage in ("adapt", "sweep")]
    return sorted(units, key=lambda u: (u.stage != "sweep", getattr(u, "protocol", None) is Protocol.BEST))


def _network_fields(cfg, u, meta) -> tuple[dict | None, str]:
    ck = paper.PretrainUnit(u.kind, u.seed).path(cfg)
    net = dict(meta.get("network", {}))
    old = Path(str(net.get("checkpoint", "")))
    if old.name != ck.name or old.parent.name != ck.parent.name:
        return None, f"records network {old}, expected {ck.name}"
    if net.get("commit") != read_sidecar(ck).get("commit"):
        return None, f"network commit {net.get('commit')} differs from the sidecar's {read_sidecar(ck).get('commit')}"
    net.update(checkpoint=store.rel_path(ck), sha256=store.file_sha256(ck))
    return net, ""


def migrate(cfg, write: bool) -> Counter:
    count, best = Counter(), None
    for u in _units(cfg):
        if best is None and getattr(u, "protocol", None) is Protocol.BEST:
            best = paper.best_swept_rates(cfg)     # after the sweep files are migrated (current again)
        p = u.path(cfg)
        if not p.is_file():
            continue
        meta = store.read_meta(p, paper.unit_dict(u))
        net, why = _network_fields(cfg, u, meta)
        if net is None:
            print(f"not stamped: {p}: {why}", file=sys.stderr)
            count["not stamped"] += 1
            continue
        new = {**meta, "network": net}
        if getattr(u, "protocol", None) is Protocol.BEST:
            lr = best[u.condition.name]["lr"]
            if lr is None or not math.isclose(lr, meta["effective_rate"]["base_lr"], rel_tol=1e-9):
                print(f"not stamped: {p}: ran at {meta['lr']}, the sweep now picks {lr}", file=sys.stderr)
                count["not stamped"] += 1
                continue
            new["sweep_sha256"] = paper.sweep_digest(cfg, u.condition)
        if new == meta:
            count["already current"] += 1
            continue
        new.setdefault("migrated", {"added": sorted(k for k in ("sweep_sha256",) if k in new and k not in meta)
                                    + ["network.sha256"] * ("sha256" not in meta.get("network", {})),
                                    "network.checkpoint was": meta.get("network", {}).get("checkpoint")})
        if write:
            store.rewrite_meta(p, new)
        count[f"{u.stage}{' (best rate)' if 'sweep_sha256' in new else ''} migrated"] += 1
    return count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing")
    a = ap.parse_args()
    cfg = config_at(repo_root())
    print(json.dumps(migrate(cfg, write=not a.check)))
    left = [u for g in paper.plan(cfg) for u in g.units if u.stage in ("adapt", "sweep")]
    print(f"units re-planned after the migration: {len(left)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
