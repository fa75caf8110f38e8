#!/usr/bin/env bash
# Wall time of the commands that read promotion history, as the history grows:
#   history          mlops history production
#   history --at     mlops history production --at <the middle of the history>
#   rollback         mlops rollback production --model churn --here   (in a scratch copy)
#   promote          mlops promote churn 2 --to production --here     (in a scratch copy; the
#                    registry checks included: version, gate, download and digest, staging proof)
#   status           mlops status                                      (registry checks included)
#   registry floor   start Python and ask the embedded registry one thing (read without
#                    MLflow, see pipelines/registry/sqlite_reads.py): the part of promote and
#                    status that no history length changes
# on repositories built by benchmarks/history_repo.py with N production promotions (each after a
# staging promotion of the same version, an unrelated commit after every promotion), for each N
# in SIZES (default "100 1000 10000"). Each figure is the median of RUNS runs (default 3); the
# last column is the growth from the smallest N. Set KEEP=1 to keep the repositories, NO_GC=1 to
# time the history as fast-import leaves it (no commit-graph).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 DO_NOT_TRACK=1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
unset MLFLOW_TRACKING_URI
SIZES=${SIZES:-"100 1000 10000"}
RUNS=${RUNS:-3}
work=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] && echo "repositories in $work" || trap 'rm -rf "$work"' EXIT
results="$work/results.tsv"
: > "$results"

# time_it NAME N SCRATCH CMD...: run CMD RUNS times (in a fresh copy of the repository when
# SCRATCH=1, so each run changes the same history); record the median wall time and the median
# CPU time (user + system, which other work on a shared machine disturbs less).
time_it() {
  local name=$1 n=$2 scratch=$3; shift 3
  : > "$work/times"
  for _ in $(seq "$RUNS"); do
    local dir="$work/repo-$n"
    if [ "$scratch" = 1 ]; then
      rm -rf "$work/scratch" && cp -a "$dir" "$work/scratch" && dir="$work/scratch"
    fi
    (cd "$dir" && /usr/bin/time -f "%e %U %S" -a -o "$work/times" "$@" >/dev/null)
  done
  python - "$name" "$n" "$work/times" >> "$results" <<'PY'
import statistics, sys
name, n, path = sys.argv[1:]
runs = [list(map(float, line.split())) for line in open(path) if line[0].isdigit()]
wall = statistics.median(r[0] for r in runs)
cpu = statistics.median(r[1] + r[2] for r in runs)
print(f"{name}\t{n}\t{wall:.3f}\t{cpu:.3f}")
PY
}

for n in $SIZES; do
  info=$(python benchmarks/history_repo.py "$work/repo-$n" "$n" --registry ${NO_GC:+--no-gc} 2>/dev/null)
  at=$(python -c 'import json, sys; print(json.loads(sys.argv[1])["at"])' "$info")
  echo "N=$n: $(git -C "$work/repo-$n" rev-list --count HEAD) commits" >&2
  time_it "history" "$n" 0 mlops history production
  time_it "history --at" "$n" 0 mlops history production --at "$at"
  time_it "rollback --here" "$n" 1 mlops rollback production --model churn --here
  time_it "promote --to production --here" "$n" 1 mlops promote churn 2 --to production --here
  time_it "status" "$n" 0 mlops status
  time_it "registry floor" "$n" 0 python -c "from pipelines.registry import store; store.aliases('churn')"
done

python - "$results" <<'PY'
import sys
from collections import defaultdict
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
wall, cpu = defaultdict(dict), defaultdict(dict)
for name, n, w, c in rows:
    wall[name][int(n)], cpu[name][int(n)] = float(w), float(c)
sizes = sorted({int(r[1]) for r in rows})
for title, table in (("wall time (median)", wall), ("CPU time, user + system (median)", cpu)):
    print(f"{title:<32}" + "".join(f"{f'N={n:,}':>12}" for n in sizes)
          + f"{f'{sizes[-1]:,} vs {sizes[0]:,}':>16}")
    for name, by_n in table.items():
        growth = by_n[sizes[-1]] / by_n[sizes[0]]
        print(f"  {name:<30}" + "".join(f"{by_n[n]:>11.2f}s" for n in sizes) + f"{growth:>15.2f}x")
PY
