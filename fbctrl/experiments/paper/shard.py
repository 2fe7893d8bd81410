"""Sharding the plan among processes: ``shard=(i, n)`` takes the units of network seeds ``s``
with ``s % n == i`` (:func:`shard_units`), and each shard process gets its share of the CPU
cores (:func:`shard_threads`)."""

from __future__ import annotations

from dataclasses import replace

from .planning import Group

__all__ = ["shard_threads", "shard_units", "check_shard"]


def shard_threads(shard: tuple[int, int] | None, cores: int | None, env: dict) -> int | None:
    """CPU threads for one of N shard processes: the cores split evenly (at least one), so that N
    processes do not oversubscribe them; None (leave torch's default) without a shard or where the
    user chose with OMP_NUM_THREADS."""
    if shard is None or "OMP_NUM_THREADS" in env:
        return None
    return max(1, (cores or 1) // shard[1])


def shard_units(g: Group, shard: tuple[int, int] | None) -> Group:
    """The group's units whose network seed ``s`` has ``s % n == i`` for ``shard=(i, n)`` (all of
    them for ``None``). Seeds split the plan into disjoint parts of nearly equal cost: every stage
    runs the same work per seed. A group blocked for all stays blocked for each shard."""
    if shard is None:
        return g
    i, n = check_shard(shard)
    return replace(g, units=[u for u in g.units if u.seed % n == i])


def check_shard(shard) -> tuple[int, int]:
    """``(i, n)`` with integers 0 <= i < n, else a one-line ValueError."""
    i, n = shard
    if not (isinstance(n, int) and isinstance(i, int) and n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be I/N with integers 0 <= I < N (e.g. 0/2 and 1/2), got {i}/{n}")
    return i, n
