#!/usr/bin/env bash
# Pre-train the published protocol's networks one at a time (Methods, "Decisions where the paper and its
# code are silent": random reaches
# without pushes, 5000 batches of 256), 10 with feedback, then 10 without.
# Resumable: a finished network is skipped, an interrupted one resumes from its resume file.
# With --commit each finished network (checkpoint, sidecar, curve) is committed as it lands.
# A session that must stop mid-network commits its resume file (git add -f
# checkpoints/published/.resume-*.pt), so that the next checkout resumes there; the commit of
# that network later removes it.
#   bash scripts/pretrain_published.sh [--commit] [--out checkpoints/published] [--seeds "0 1 ..."]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=checkpoints/published
SEEDS="0 1 2 3 4 5 6 7 8 9"
KINDS="on off"
COMMIT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --commit) COMMIT=1 ;;
    --out) OUT="$2"; shift ;;
    --seeds) SEEDS="$2"; shift ;;
    --kinds) KINDS="$2"; shift ;;
    *) echo "pretrain_published.sh: error: unknown argument $1 (allowed: --commit, --out DIR, --seeds \"S ...\", --kinds \"on off\")" >&2; exit 2 ;;
  esac
  shift
done
PY=${PY:-.venv/bin/python}
# one thread: on a 2-core machine a second process (tests, notebooks) beside two OpenMP threads
# stalls both; one steady thread is faster overall (THREADS=2 on a quiet machine)
export OMP_NUM_THREADS=${THREADS:-1}
for fbk in $KINDS; do
  tag=$([ "$fbk" = on ] && echo fb || echo nofb)
  for s in $SEEDS; do
    stem="$OUT/${tag}_seed$s"
    if [ -f "$stem.pt" ] && [ -f "$stem.json" ] && [ -f "$stem.curve.npz" ]; then continue; fi
    echo "$(date -u +%FT%TZ) start $stem"
    "$PY" -m fbctrl pretrain --feedback "$fbk" --no-push --seeds "$s" --out "$OUT" --no-progress || exit $?
    echo "$(date -u +%FT%TZ) done $stem"
    if [ "$COMMIT" = 1 ]; then
      # a resume file committed by an interrupted session (--commit-resume) goes with its network
      resume="$OUT/.resume-${tag}-seeds-$s.pt"
      extra=()
      if git ls-files --error-unmatch "$resume" >/dev/null 2>&1; then git rm -q --cached "$resume"; extra=("$resume"); fi
      for try in 1 2 3 4 5 6 7 8 9 10; do
        if git add "$stem.pt" "$stem.json" "$stem.curve.npz" && \
           git commit -q -m "Published-protocol network ${tag} seed $s (random reaches without pushes, 5000 batches)" \
             -- "$stem.pt" "$stem.json" "$stem.curve.npz" "${extra[@]}"; then break; fi
        sleep 5
      done
    fi
  done
done
