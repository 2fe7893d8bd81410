#!/usr/bin/env bash
# Before/after benchmarks of the speed work, interleaved in one session, on a QUIET machine
# (stop every background job first: a benchmark taken beside one is noise).
#   bash scripts/bench_ab.sh BEFORE_COMMIT [ROUNDS] [BENCHES]      (BENCHES default "adapt pretrain")
# 'before' runs `python -m fbctrl bench` from a temporary worktree of BEFORE_COMMIT, 'after' from
# this checkout, alternating, ROUNDS times (default 3), adapt then pretrain. Each result is saved
# with its provenance (command, commit, machine) as results/bench/ab/{before,after}_{adapt,pretrain}_cpu_N.json,
# which the Performance chapter reads (each kernel's time / floor, median and spread).
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=${1:?usage: bash scripts/bench_ab.sh BEFORE_COMMIT [ROUNDS]}
ROUNDS=${2:-3}
BENCHES=${3:-adapt pretrain}
for what in $BENCHES; do
  case "$what" in adapt|pretrain) ;; *) echo "bench_ab.sh: error: BENCHES must list adapt and/or pretrain, got '$what'" >&2; exit 2 ;; esac
done
case "$ROUNDS" in ''|*[!0-9]*) echo "bench_ab.sh: error: ROUNDS must be a positive integer, got '$ROUNDS'" >&2; exit 2 ;; esac
git rev-parse --verify -q "$BEFORE^{commit}" >/dev/null || { echo "bench_ab.sh: error: BEFORE_COMMIT '$BEFORE' is not a commit" >&2; exit 2; }
HERE=$(pwd)
PY=${PY:-$HERE/.venv/bin/python}
OUT=$HERE/results/bench/ab
TMP=$(mktemp -d)
git worktree add -f --detach "$TMP/before" "$BEFORE" >/dev/null
trap 'git -C "$HERE" worktree remove --force "$TMP/before"; rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
for i in $(seq 1 "$ROUNDS"); do
  for what in $BENCHES; do
    for side in before after; do
      root=$([ "$side" = before ] && echo "$TMP/before" || echo "$HERE")
      echo "$(date -u +%FT%TZ) round $i/$ROUNDS: $side bench $what"
      (cd "$root" && PYTHONPATH="$root" "$PY" -m fbctrl bench "$what" --save "$OUT/${side}_${what}_cpu_$i.json")
    done
  done
done
