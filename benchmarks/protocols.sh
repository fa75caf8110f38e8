#!/usr/bin/env bash
# The protocols side by side on one service process, in the same run, with wrk (Debian `wrk`):
# /v1/predict, the Open Inference Protocol v2 (/v2/models/NAME/infer, JSON tensors) and
# MLflow's /invocations; 1 and 100 rows per request at concurrency 32 (CONC), each endpoint
# measured ROUNDS times (default 2), interleaved so drift of the machine hits all alike.
# The target: OIP single-row throughput and p99 within 15% of /v1/predict (benchmarks/serving.sh
# checks it too, per task, in the same run as the other serving figures).
#   benchmarks/protocols.sh [MODEL]     (run by hand from anywhere; MODEL default churn, or
#   wine, diabetes: see benchmarks/serving_setup.py)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true \
       MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false PYTHONPATH="$PWD"
DURATION=${DURATION:-10}
CONC=${CONC:-32}
ROUNDS=${ROUNDS:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

eval "$(python benchmarks/serving_setup.py "$work" "${1:-churn}")"
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Open and without the prediction log: the serving path alone (benchmarks/prediction_log.sh
# measures the log).
ALLOW_ANONYMOUS=true PREDICTION_LOG=off MODEL_PIN=$PIN MLFLOW_TRACKING_URI=$TRACKING_URI MODEL_CACHE_DIR=$work/cache \
  python -m service --port "$port" >"$work/service.log" 2>&1 &
pid=$!
for _ in $(seq 1200); do curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$port/ready" || { cat "$work/service.log"; exit 1; }

declare -A url=([v1]="/v1/predict" [oip]="/v2/models/$MODEL/infer" [invocations]="/invocations")
declare -A body=([v1]=service [oip]=v2 [invocations]=mlflow)
declare -A rps p99 errs
measure() {  # endpoint rows -> "rps p50 p99 errors requests"
  local target="http://127.0.0.1:$port${url[$1]}" file="$work/${body[$1]}-$2.json"
  curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$file" "$target"
  BODY_FILE=$file wrk -t2 -c"$CONC" -d"${DURATION}s" --timeout 10s -s benchmarks/post.lua "$target" \
    | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}
printf '\n%-12s %-4s %-5s | %10s %9s %9s %6s\n' endpoint rows round "req/s" "p50 ms" "p99 ms" errors
for rows in 1 100; do
  for round in $(seq "$ROUNDS"); do
    for ep in v1 oip invocations; do
      read -r r p50 p e _ < <(measure "$ep" "$rows")
      printf '%-12s %-4s %-5s | %10s %9s %9s %6s\n' "$ep" "$rows" "$round" "$r" "$p50" "$p" "$e"
      rps[$ep-$rows]="${rps[$ep-$rows]:-} $r"; p99[$ep-$rows]="${p99[$ep-$rows]:-} $p"
      errs[$ep-$rows]=$(( ${errs[$ep-$rows]:-0} + e ))
    done
  done
done
python - "${rps[v1-1]}" "${rps[oip-1]}" "${p99[v1-1]}" "${p99[oip-1]}" "${rps[v1-100]}" "${rps[oip-100]}" <<'PY'
import statistics, sys
v1, oip, v1p, oipp, v1b, oipb = ([float(x) for x in a.split()] for a in sys.argv[1:])
m = statistics.median
print(f"\nsingle row, concurrency: OIP/v1 throughput {m(oip) / m(v1):.2f}, p99 {m(oipp):.2f} ms vs "
      f"{m(v1p):.2f} ms ({m(oipp) / m(v1p):.2f}); 100 rows: OIP/v1 throughput {m(oipb) / m(v1b):.2f}")
ok = m(oip) >= 0.85 * m(v1) and m(oipp) <= 1.15 * m(v1p)
print("target (OIP single-row throughput and p99 within 15% of /v1/predict):",
      "met" if ok else "MISSED")
PY
echo "errors: v1 ${errs[v1-1]}+${errs[v1-100]}, oip ${errs[oip-1]}+${errs[oip-100]}, invocations ${errs[invocations-1]}+${errs[invocations-100]}"
echo "one process: python -m service (uvicorn, uvloop + httptools); $(nproc) cores; ${DURATION}s per cell; wrk -t2 -c$CONC"
