#!/usr/bin/env bash
# Why the service runs as one uvicorn process with uvloop + httptools: the same app under
# other server layouts, single-row requests at concurrency 1 and 32 (wrk, DURATION s each).
# granian is measured when it is importable (it is not a dependency). MODEL (default churn)
# and ESTIMATOR (default the declared one) choose what serves (benchmarks/serving_setup.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \
       PYTHONPATH="$PWD${EXTRA_PYTHONPATH:+:$EXTRA_PYTHONPATH}"
DURATION=${DURATION:-10}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
setup=$(python benchmarks/serving_setup.py "$work" "${MODEL:-churn}" ${ESTIMATOR:+--estimator "$ESTIMATOR"})
eval "$setup"
export MODEL_PIN=$PIN MLFLOW_TRACKING_URI=$TRACKING_URI MODEL_CACHE_DIR=$work/cache \
       ALLOW_ANONYMOUS=true PREDICTION_LOG=off
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
app=service.app:create_app
layouts=(
  "uvicorn h11+asyncio, 1 process|uvicorn --factory $app --port $port --http h11 --loop asyncio --no-access-log --log-level warning"
  "uvicorn httptools+uvloop, 1 process|uvicorn --factory $app --port $port --http httptools --loop uvloop --no-access-log --log-level warning"
  "uvicorn httptools+uvloop, 2 workers|uvicorn --factory $app --port $port --http httptools --loop uvloop --workers 2 --no-access-log --log-level warning"
)
if python -c 'import granian' 2>/dev/null; then
  layouts+=("granian, 1 worker|python -m granian --interface asgi --factory --port $port --workers 1 --log-level warning $app")
  layouts+=("granian, 2 workers|python -m granian --interface asgi --factory --port $port --workers 2 --log-level warning $app")
fi
printf '%-38s | %10s %8s | %10s %8s\n' layout "c1 req/s" "p99 ms" "c32 req/s" "p99 ms"
for entry in "${layouts[@]}"; do
  name=${entry%%|*}; cmd=${entry#*|}
  $cmd >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && break; sleep 0.2; done
  for _ in 1 2 3; do curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$work/service-1.json" "http://127.0.0.1:$port/v1/predict"; done
  row=()
  for conc in 1 32; do
    threads=$(( conc < 2 ? conc : 2 ))
    read -r rps _ p99 _ < <(BODY_FILE=$work/service-1.json wrk -t$threads -c$conc -d"${DURATION}s" -s benchmarks/post.lua \
      "http://127.0.0.1:$port/v1/predict" | awk '/^RESULT/ {print $2, $3, $4, $5}')
    row+=("$rps" "$p99")
  done
  printf '%-38s | %10s %8s | %10s %8s\n' "$name" "${row[@]}"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  sleep 1
done
