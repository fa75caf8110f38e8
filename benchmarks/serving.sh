#!/usr/bin/env bash
# Serving throughput and latency: this service against `mlflow models serve` on the same
# registered model, in the same run, with wrk (Debian package `wrk`).
#   rows per request: 1 and 100; concurrency: 1, 8, 32; DURATION seconds each (default 10)
# Prints one table and the ratios; the target is >= 30x MLflow's single-row throughput at
# concurrency 32 with p99 under 20 ms. Needs `dvc repro` outputs (models/churn, test split).
# Set BENCH_ENFORCE=1 to exit non-zero when the target is missed.
# CELLS="1x32" measures only those cells (rows x concurrency); MLFLOW=off measures the service
# alone; AB=on pins an A/B test of two versions (the same bytes, 90/10) and names a new unit in
# X-Customer-Id on every request, so the routing is what the figures add.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 \
       MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false PYTHONPATH="$PWD"
DURATION=${DURATION:-10}
CELLS=${CELLS:-"1x1 1x8 1x32 100x1 100x8 100x32"}
MLFLOW=${MLFLOW:-on}
AB=${AB:-off}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

setup=$(python benchmarks/serving_setup.py "$work" $([ "$AB" = on ] && echo --ab))
eval "$setup"
free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # url, seconds
  for _ in $(seq $(( $2 * 10 ))); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; return 1
}

svc_port=$(free_port)
# Open and without the prediction log: the serving path alone (benchmarks/prediction_log.sh
# measures the log).
ALLOW_ANONYMOUS=true PREDICTION_LOG=off MODEL_PIN=$PIN MLFLOW_TRACKING_URI=$TRACKING_URI MODEL_CACHE_DIR=$work/cache \
  python -m service --port "$svc_port" >"$work/service.log" 2>&1 &
pids+=($!)
mlf_port=$(free_port)
if [ "$MLFLOW" = on ]; then
  MLFLOW_TRACKING_URI=$TRACKING_URI mlflow models serve --env-manager local -m "$MODEL_URI" \
    -h 127.0.0.1 -p "$mlf_port" >"$work/mlflow.log" 2>&1 &
  pids+=($!)
fi
wait_for "http://127.0.0.1:$svc_port/ready" 120
[ "$MLFLOW" = on ] && wait_for "http://127.0.0.1:$mlf_port/ping" 120
[ "$AB" = on ] && export UNIT_HEADER=X-Customer-Id

measure() {  # name url body concurrency -> "rps p50 p99 errors requests"
  if [ "$1" = mlflow ] && [ "$MLFLOW" != on ]; then echo "0 - - - 0"; return; fi
  local threads=$(( $4 < 2 ? $4 : 2 ))
  curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$3" "$2"  # warm up
  BODY_FILE=$3 wrk -t"$threads" -c"$4" -d"${DURATION}s" --timeout 10s -s benchmarks/post.lua "$2" \
    | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}

printf '\n%-5s %-4s | %12s %9s %9s %6s | %12s %9s %9s %6s | %8s\n' rows conc \
  "svc req/s" "p50 ms" "p99 ms" "errors" "mlflow req/s" "p50 ms" "p99 ms" "errors" "ratio"
verdict=0
summary=""
for cell in $CELLS; do
  rows=${cell%x*} conc=${cell#*x}
  read -r s_rps s_p50 s_p99 s_err _ < <(measure service "http://127.0.0.1:$svc_port/v1/predict" "$work/service-$rows.json" "$conc")
  read -r m_rps m_p50 m_p99 m_err _ < <(measure mlflow "http://127.0.0.1:$mlf_port/invocations" "$work/mlflow-$rows.json" "$conc")
  ratio=$(python -c "print(f'{$s_rps / max($m_rps, 0.1):.1f}x')")
  printf '%-5s %-4s | %12s %9s %9s %6s | %12s %9s %9s %6s | %8s\n' "$rows" "$conc" \
    "$s_rps" "$s_p50" "$s_p99" "$s_err" "$m_rps" "$m_p50" "$m_p99" "$m_err" "$ratio"
  if [ "$rows" = 1 ] && [ "$conc" = 32 ]; then
    target=$(python -c "print('met' if $s_rps >= 30 * $m_rps and $s_p99 < 20 and $s_err == 0 else 'MISSED')")
    summary="target (1 row, concurrency 32: >= 30x MLflow, p99 < 20 ms): $target ($ratio, p99 $s_p99 ms)"
    [ "$target" = met ] || verdict=1
  fi
done
echo
echo "$summary"
echo "service: python -m service (uvicorn, uvloop + httptools, 1 process); $(nproc) cores; ${DURATION}s per cell"
if [ "${BENCH_ENFORCE:-0}" = 1 ]; then exit $verdict; fi
