#!/usr/bin/env bash
# Serving throughput and latency per task, every figure from the same run, with wrk (Debian
# package `wrk`). For each model of MODELS (default: churn, binary; wine, multiclass; diabetes,
# regression; each trained with ESTIMATOR, default gradient_boosting, the slowest to serve, by
# benchmarks/serving_setup.py), one run measures:
#   - this service's /v1/predict, 1 and 100 rows per request at concurrency 1, 8 and 32 (CELLS);
#   - `mlflow models serve` on the same registered version, the same cells (once each: it is
#     slow and steady);
#   - the Open Inference Protocol v2 (/v2/models/NAME/infer, JSON tensors) with single rows at
#     concurrency 32, beside /v1/predict's cell of the same round.
# Every service cell is measured ROUNDS times (default 3), the endpoints interleaved within a
# round so drift of the machine hits all alike; the tables give medians and the spread
# (min-max). The targets, per model:
#   - single row at concurrency 32: p99 <= 20 ms;
#   - 100 rows at concurrency 32: >= 2 x 1,238 req/s (main before the work), and the ratio to
#     `mlflow models serve`;
#   - OIP single row at concurrency 32: throughput and p99 within 15% of /v1/predict.
# Knobs: DURATION seconds per measurement (default 10); MODELS; ESTIMATOR ("" keeps each
# declaration's); CELLS ("1x32 100x32": rows x concurrency); ROUNDS; MLFLOW=off (the service
# alone); OIP=off; AB=on (the pin runs an A/B test of two registrations of the same bundle,
# 90/10, a new unit in X-Customer-Id on every request: what the routing adds);
# BASELINE=/path/to/other/checkout adds that checkout's service (run from its tree with this
# venv) to every round, to compare two revisions in the same run; BASELINE_ENV="NAME=value ..."
# sets the baseline's environment (BASELINE=. BASELINE_ENV=COALESCE_ROWS=0: this checkout
# without coalescing); BENCH_ENFORCE=1 exits non-zero when a target is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 \
       MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
DURATION=${DURATION:-10}
MODELS=${MODELS:-churn wine diabetes}
ESTIMATOR=${ESTIMATOR-gradient_boosting}
CELLS=${CELLS:-"1x1 1x8 1x32 100x1 100x8 100x32"}
ROUNDS=${ROUNDS:-3}
MLFLOW=${MLFLOW:-on}
OIP=${OIP:-on}
AB=${AB:-off}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
cleanup() { stop_all; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # url seconds log
  for _ in $(seq $(( $2 * 10 ))); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; cat "$3" >&2; return 1
}
[ "$AB" = on ] && export UNIT_HEADER=X-Customer-Id
results=$work/results.tsv  # model endpoint rows conc round rps p50 p99 errors

declare -A port
start_service() {  # name tree: a service process of the tree at `tree`, open, without the log
  port[$1]=$(free_port)
  # Open and without the prediction log: the serving path alone (benchmarks/prediction_log.sh
  # measures the log).
  # From the tree's own directory: `python -m` puts the working directory first on sys.path,
  # so PYTHONPATH alone would run this checkout's code under the baseline's name.
  local extra=()
  [ "$1" = baseline ] && read -ra extra <<< "${BASELINE_ENV:-}"
  (cd "$2" && ALLOW_ANONYMOUS=true PREDICTION_LOG=off MODEL_PIN=$PIN \
    MLFLOW_TRACKING_URI=$TRACKING_URI MODEL_CACHE_DIR=$dir/cache-$1 PYTHONPATH=$2 \
    exec env "${extra[@]}" python -m service --port "${port[$1]}") >"$dir/$1.log" 2>&1 &
  pids+=($!)
}
measure() {  # endpoint rows conc round: one wrk run, appended to $results
  local ep=$1 rows=$2 conc=$3 url file
  case $ep in
    v1|baseline) url="http://127.0.0.1:${port[$ep]}/v1/predict" file="$dir/service-$rows.json" ;;
    oip) url="http://127.0.0.1:${port[v1]}/v2/models/$MODEL/infer" file="$dir/v2-$rows.json" ;;
    mlflow) url="http://127.0.0.1:${port[mlflow]}/invocations" file="$dir/mlflow-$rows.json" ;;
  esac
  curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$file" "$url"  # warm up
  BODY_FILE=$file wrk -t$(( conc < 2 ? conc : 2 )) -c"$conc" -d"${DURATION}s" --timeout 10s \
    -s benchmarks/post.lua "$url" \
    | awk -v p="$MODEL $ep $rows $conc $4" '/^RESULT/ {print p, $2, $3, $4, $5}' >>"$results"
}

for MODEL in $MODELS; do
  dir=$work/$MODEL
  mkdir -p "$dir"
  echo "== $MODEL: training and registering (${ESTIMATOR:-declared estimator})" >&2
  eval "$(PYTHONPATH=$PWD python benchmarks/serving_setup.py "$dir" "$MODEL" \
          ${ESTIMATOR:+--estimator "$ESTIMATOR"} $([ "$AB" = on ] && echo --ab))"
  echo "$MODEL $TASK $ESTIMATOR" >>"$work/models.txt"
  endpoints=(v1)
  start_service v1 "$PWD"
  if [ -n "${BASELINE:-}" ]; then start_service baseline "$(cd "$BASELINE" && pwd)"; endpoints+=(baseline); fi
  if [ "$MLFLOW" = on ]; then
    port[mlflow]=$(free_port)
    MLFLOW_TRACKING_URI=$TRACKING_URI mlflow models serve --env-manager local -m "$MODEL_URI" \
      -h 127.0.0.1 -p "${port[mlflow]}" >"$dir/mlflow.log" 2>&1 &
    pids+=($!)
    wait_for "http://127.0.0.1:${port[mlflow]}/ping" 120 "$dir/mlflow.log"
  fi
  for ep in "${endpoints[@]}"; do wait_for "http://127.0.0.1:${port[$ep]}/ready" 120 "$dir/$ep.log"; done
  echo "== $MODEL: measuring ($ROUNDS rounds of $CELLS, ${DURATION}s each)" >&2
  for round in $(seq "$ROUNDS"); do
    for cell in $CELLS; do
      rows=${cell%x*} conc=${cell#*x}
      # Rotate the order each round: no endpoint always follows the same one.
      order=("${endpoints[@]}")
      [ "$OIP" = on ] && [ "$cell" = 1x32 ] && order+=(oip)
      shift_by=$(( (round - 1) % ${#order[@]} ))
      order=("${order[@]:$shift_by}" "${order[@]:0:$shift_by}")
      for ep in "${order[@]}"; do measure "$ep" "$rows" "$conc" "$round"; done
      [ "$MLFLOW" = on ] && [ "$round" = 1 ] && measure mlflow "$rows" "$conc" 1
    done
  done
  stop_all
done

verdict=0
python - "$results" "$work/models.txt" "${BASELINE:+baseline}" <<'PY' || verdict=$?
import statistics
import sys
from collections import defaultdict

rows = [line.split() for line in open(sys.argv[1])]
models = [line.split() for line in open(sys.argv[2])]
with_baseline = sys.argv[3] == "baseline"
TARGET_BATCH = 2 * 1238  # twice the 100-row req/s of the service before the serving work
m = statistics.median
runs = defaultdict(list)  # (model, endpoint, rows, conc) -> [(rps, p50, p99, errors)]
for model, ep, n, conc, _round, rps, p50, p99, errors in rows:
    runs[(model, ep, int(n), int(conc))].append((float(rps), float(p50), float(p99), int(errors)))


def med(key, i):
    values = [r[i] for r in runs.get(key, [])]
    return m(values) if values else None


def spread(key):
    values = [r[0] for r in runs.get(key, [])]
    return f"{min(values):.0f}-{max(values):.0f}" if len(values) > 1 else "-"


verdicts = []
for model, task, estimator in models:
    cells = sorted({(n, c) for (mm, ep, n, c) in runs if mm == model and ep == "v1"})
    print(f"\n{model} ({task}, {estimator}): medians of {len(runs[(model, 'v1', *cells[0])])} "
          "rounds; req/s spread min-max")
    head = f"{'rows':>4} {'conc':>4} | {'req/s':>7} {'spread':>11} {'p50 ms':>7} {'p99 ms':>7}"
    if with_baseline:
        head += f" | {'base req/s':>10} {'p99 ms':>7} {'ratio':>6}"
    head += f" | {'mlflow req/s':>12} {'p99 ms':>8} | {'vs mlflow':>9}"
    print(head)
    for n, c in cells:
        key = (model, "v1", n, c)
        rps, p50, p99 = med(key, 0), med(key, 1), med(key, 2)
        line = f"{n:>4} {c:>4} | {rps:>7.0f} {spread(key):>11} {p50:>7.2f} {p99:>7.2f}"
        if with_baseline:
            b = (model, "baseline", n, c)
            line += f" | {med(b, 0):>10.0f} {med(b, 2):>7.2f} {rps / med(b, 0):>5.2f}x"
        mk = (model, "mlflow", n, c)
        if mk in runs:
            line += f" | {med(mk, 0):>12.1f} {med(mk, 2):>8.1f} | {rps / max(med(mk, 0), 0.1):>8.1f}x"
        else:
            line += f" | {'-':>12} {'-':>8} | {'-':>9}"
        print(line)
    errors = sum(r[3] for (mm, *_), v in runs.items() if mm == model for r in v)
    single = (model, "v1", 1, 32)
    if single in runs:
        p99 = med(single, 2)
        ok = p99 <= 20 and errors == 0
        verdicts.append(ok)
        print(f"  single row, concurrency 32: p99 {p99:.2f} ms (target <= 20 ms): "
              f"{'met' if ok else 'MISSED'}")
    batch = (model, "v1", 100, 32)
    if batch in runs:
        rps = med(batch, 0)
        ok = rps >= TARGET_BATCH
        verdicts.append(ok)
        vs = (f", {rps / med((model, 'mlflow', 100, 32), 0):.0f}x mlflow models serve"
              if (model, "mlflow", 100, 32) in runs else "")
        print(f"  100 rows, concurrency 32: {rps:.0f} req/s (target >= {TARGET_BATCH}){vs}: "
              f"{'met' if ok else 'MISSED'}")
    oip = (model, "oip", 1, 32)
    if oip in runs and single in runs:
        tr, pr = med(oip, 0) / med(single, 0), med(oip, 2) / med(single, 2)
        ok = tr >= 0.85 and pr <= 1.15
        verdicts.append(ok)
        print(f"  OIP single row, concurrency 32: {med(oip, 0):.0f} req/s, p99 {med(oip, 2):.2f} ms; "
              f"OIP/v1 throughput {tr:.2f}, p99 {pr:.2f} (target within 15%): "
              f"{'met' if ok else 'MISSED'}")
    if errors:
        print(f"  errors: {errors}")
print(f"\ntargets: {sum(verdicts)} of {len(verdicts)} met")
sys.exit(0 if all(verdicts) else 1)
PY
echo "service: python -m service (uvicorn, uvloop + httptools, 1 process); $(nproc) cores, wrk on" \
     "the same cores; ${DURATION}s per measurement"
if [ "${BENCH_ENFORCE:-0}" = 1 ]; then exit $verdict; fi
