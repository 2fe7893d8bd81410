#!/usr/bin/env bash
# Pre-train the "Beyond the paper" reaching networks one at a time, seed-major (every variant of
# seed 0, then of seed 1, ...), with the published protocol otherwise (random reaches without
# pushes, 5000 batches of 256, from scratch): feedback delays of 5 and 10 steps (50, 100 ms) and
# feedback densities 0.3 and 0.1. A network of seed s starts from the same weights and sees the
# same training batches as the published network of seed s (the sparse mask has its own random
# stream), so each variant is paired with it by seed; only the delay or the mask differs.
# Resumable: a finished network is skipped, an interrupted one resumes from its resume file.
# With --commit each finished network (checkpoint, sidecar, curve) is committed as it lands. A
# session that must stop mid-network commits its resume file (git add -f OUT/.resume-*.pt), so that
# the next checkout resumes there; the commit of that network then removes it.
# The limit-cycle networks (variants lc-on, lc-off: with and without feedback, random cycles with
# pushes of amplitude 10 as the book's Methods explain, $LC_BATCHES batches of 256, default 5000)
# are not in the default list:
#   bash scripts/pretrain_beyond.sh --variants "lc-on lc-off" --commit
#   bash scripts/pretrain_beyond.sh [--commit] [--out checkpoints/beyond] [--seeds "0 1 2 3 4"] [--variants "d5 d10 p0.3 p0.1"]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=checkpoints/beyond
SEEDS="0 1 2 3 4"
VARIANTS="d5 d10 p0.3 p0.1"
COMMIT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --commit) COMMIT=1 ;;
    --out) OUT="$2"; shift ;;
    --seeds) SEEDS="$2"; shift ;;
    --variants) VARIANTS="$2"; shift ;;
    *) echo "pretrain_beyond.sh: error: unknown argument $1 (allowed: --commit, --out DIR, --seeds \"S ...\", --variants \"d5 p0.3 lc-on ...\")" >&2; exit 2 ;;
  esac
  shift
done
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${THREADS:-1}   # one steady thread beside the session's own work
for s in $SEEDS; do
  for v in $VARIANTS; do
    case "$v" in
      d[0-9]*) args=(--feedback on --delay "${v#d}" --no-push); tag="fb_d${v#d}"; how="published protocol, from scratch, paired by seed" ;;
      p0.[0-9]*) args=(--density "${v#p}" --no-push); tag="fb${v#p}"; how="published protocol, from scratch, paired by seed" ;;
      lc-on) args=(--task limit-cycle --feedback on --batches "${LC_BATCHES:-5000}"); tag="lc_fb"; how="limit cycle with pushes, ${LC_BATCHES:-5000} batches" ;;
      lc-off) args=(--task limit-cycle --feedback off --batches "${LC_BATCHES:-5000}"); tag="lc_nofb"; how="limit cycle with pushes, ${LC_BATCHES:-5000} batches" ;;
      *) echo "pretrain_beyond.sh: error: variant must be dN (delay of N steps), p0.X (density), lc-on or lc-off, got '$v'" >&2; exit 2 ;;
    esac
    stem="$OUT/${tag}_seed$s"
    if [ -f "$stem.pt" ] && [ -f "$stem.json" ] && [ -f "$stem.curve.npz" ]; then continue; fi
    echo "$(date -u +%FT%TZ) start $stem"
    "$PY" -m fbctrl pretrain "${args[@]}" --seeds "$s" --out "$OUT" --no-progress || exit $?
    echo "$(date -u +%FT%TZ) done $stem"
    if [ "$COMMIT" = 1 ]; then
      # a resume file committed by an interrupted session (git add -f) goes with its network
      resume="$OUT/.resume-${tag}-seeds-$s.pt"
      extra=()
      if git ls-files --error-unmatch "$resume" >/dev/null 2>&1; then git rm -q --cached "$resume"; extra=("$resume"); fi
      for try in 1 2 3 4 5 6 7 8 9 10; do
        if git add "$stem.pt" "$stem.json" "$stem.curve.npz" && \
           git commit -q -m "Beyond-the-paper network ${tag} seed $s ($how)" \
             -- "$stem.pt" "$stem.json" "$stem.curve.npz" "${extra[@]}"; then break; fi
        sleep 5
      done
    fi
  done
done
