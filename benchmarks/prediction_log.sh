#!/usr/bin/env bash
# The prediction log's cost: /v1/predict with the log on (SQLite, PostgreSQL) against the same
# service with it off, in the same run, with wrk (Debian `wrk`) at concurrency 32 (CONC);
# 1 and 100 rows per request (SIZES), each service measured ROUNDS times (default 3),
# interleaved in a rotating order so drift of the machine hits all alike; medians compared.
# PostgreSQL is a throwaway server of Debian's package (initdb + pg_ctl on a free port, its
# default durability settings).
# The target: single-row throughput with the log on >= 85% of the log off, for both databases,
# with no row dropped. Rows written and dropped are read from each service's /metrics.
#   benchmarks/prediction_log.sh                   (from anywhere; MODEL default churn)
#   BASELINE=/path/to/other/checkout benchmarks/prediction_log.sh
#       adds that checkout's service (run from its tree with this venv) as a column, to compare
#       the request path of two revisions in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true \
       MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
DURATION=${DURATION:-10}
CONC=${CONC:-32}
ROUNDS=${ROUNDS:-3}
MODEL=${MODEL:-churn}
SIZES=${SIZES:-1 100}  # rows per request
VARIANTS=${VARIANTS:-off sqlite postgresql}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL is not installed (make system-deps)" >&2; exit 2; }

work=$(mktemp -d)
pgdir=$(mktemp -d)  # the server's own, readable by the postgres user
as=()
if [ "$(id -u)" = 0 ]; then chown postgres "$pgdir"; as=(runuser -u postgres --); fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "${as[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

eval "$(PYTHONPATH=$PWD python benchmarks/serving_setup.py "$work" "$MODEL")"

pgport=$(free_port)
"${as[@]}" "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${as[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -w -l "$pgdir/log" \
  -o "-p $pgport -k $pgdir/data -c listen_addresses=127.0.0.1" start >/dev/null
"${as[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U postgres bench
declare -A dburl=([sqlite]="sqlite:///$work/log.db"
                  [postgresql]="postgresql+psycopg://postgres@127.0.0.1:$pgport/bench")
for db in sqlite postgresql; do
  PYTHONPATH=$PWD python -m contracts.prediction_log upgrade --url "${dburl[$db]}" >/dev/null
done

declare -A port
start() {  # name tree env... : a service process of the tree at `tree`
  local name=$1 tree=$2; shift 2
  port[$name]=$(free_port)
  # From the tree's own directory: `python -m` puts the working directory first on sys.path.
  (cd "$tree" && exec env "$@" ALLOW_ANONYMOUS=true MODEL_PIN="$PIN" \
    MLFLOW_TRACKING_URI="$TRACKING_URI" MODEL_CACHE_DIR="$work/cache-$name" PYTHONPATH="$tree" \
    python -m service --port "${port[$name]}") >"$work/$name.log" 2>&1 &
  pids+=($!)
}
read -ra variants <<< "$VARIANTS"
for v in "${variants[@]}"; do
  case $v in
    off) start off "$PWD" PREDICTION_LOG=off ;;
    sqlite|postgresql) start "$v" "$PWD" DATABASE_URL="${dburl[$v]}" ;;
    *) echo "unknown variant $v (off, sqlite, postgresql)" >&2; exit 2 ;;
  esac
done
if [ -n "${BASELINE:-}" ]; then
  start baseline "$(cd "$BASELINE" && pwd)" PREDICTION_LOG=off
  variants+=(baseline)
fi
for v in "${variants[@]}"; do
  for _ in $(seq 1200); do curl -sf -o /dev/null "http://127.0.0.1:${port[$v]}/ready" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:${port[$v]}/ready" || { cat "$work/$v.log"; exit 1; }
done

metric() {  # variant name{labels} -> value (0 when absent)
  curl -sf "http://127.0.0.1:${port[$1]}/metrics" | awk -v m="$2" '$1 == m {v = $2} END {print v + 0}'
}
declare -A rps p99 errs single_written single_dropped
measure() {  # variant rows -> "rps p50 p99 errors requests"
  local target="http://127.0.0.1:${port[$1]}/v1/predict" file="$work/service-$2.json"
  curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$file" "$target"
  BODY_FILE=$file wrk -t2 -c"$CONC" -d"${DURATION}s" --timeout 10s -s benchmarks/post.lua "$target" \
    | awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
}
printf '\n%-11s %-4s %-5s | %10s %9s %9s %6s\n' service rows round "req/s" "p50 ms" "p99 ms" errors
for rows in $SIZES; do
  for round in $(seq "$ROUNDS"); do
    # Each round starts with the next service, so that none is always measured first.
    order=("${variants[@]:round % ${#variants[@]}}" "${variants[@]:0:round % ${#variants[@]}}")
    for v in "${order[@]}"; do
      read -r r p50 p e _ < <(measure "$v" "$rows")
      printf '%-11s %-4s %-5s | %10s %9s %9s %6s\n' "$v" "$rows" "$round" "$r" "$p50" "$p" "$e"
      rps[$v-$rows]="${rps[$v-$rows]:-} $r"; p99[$v-$rows]="${p99[$v-$rows]:-} $p"
      errs[$v-$rows]=$(( ${errs[$v-$rows]:-0} + e ))
    done
  done
  if [ "$rows" = 1 ]; then  # what the single-row load left in each log before the batches
    for db in sqlite postgresql; do
      [[ " ${variants[*]} " == *" $db "* ]] || continue
      for _ in $(seq 100); do
        [ "$(metric "$db" gitops_ml_prediction_log_buffered_rows)" = 0 ] && break; sleep 0.1
      done
      single_written[$db]=$(metric "$db" gitops_ml_prediction_log_written_total)
      single_dropped[$db]=$(metric "$db" 'gitops_ml_prediction_log_dropped_total{reason="buffer_full"}')
    done
  fi
done
echo
for db in sqlite postgresql; do
  [[ " ${variants[*]} " == *" $db "* ]] || continue
  written=$(metric "$db" gitops_ml_prediction_log_written_total)
  dropped=$(metric "$db" 'gitops_ml_prediction_log_dropped_total{reason="buffer_full"}')
  echo "$db: single rows: ${single_written[$db]:-?} written, ${single_dropped[$db]:-?} dropped; whole run: $written written, $dropped dropped"
done
summary=()
for k in "${!rps[@]}"; do summary+=("$k=${rps[$k]// /,}=${p99[$k]// /,}"); done
for db in "${!single_dropped[@]}"; do summary+=("dropped-$db=${single_dropped[$db]}"); done
python - "${variants[*]}" "$SIZES" "${summary[@]}" <<'PY'
import statistics, sys
variants, sizes = sys.argv[1].split(), sys.argv[2].split()
med, tail, dropped = {}, {}, {}
for item in sys.argv[3:]:
    key, *values = item.split("=")
    if key.startswith("dropped-"):
        dropped[key[8:]] = float(values[0])
        continue
    med[key] = statistics.median(float(x) for x in values[0].split(",") if x)
    tail[key] = statistics.median(float(x) for x in values[1].split(",") if x)
print()
for rows in sizes:
    if f"off-{rows}" not in med:
        continue
    off = med[f"off-{rows}"]
    line = ", ".join(f"{v} {med[f'{v}-{rows}'] / off:.2f} (p99 {tail[f'{v}-{rows}']:.1f} ms)"
                     for v in variants if v != "off")
    print(f"{rows} row(s) a request: median throughput against the log off "
          f"({off:.0f} req/s, p99 {tail[f'off-{rows}']:.1f} ms): {line}")
if {"off-1", "sqlite-1", "postgresql-1"} <= set(med):
    ok = all(med[f"{db}-1"] >= 0.85 * med["off-1"] for db in ("sqlite", "postgresql")) \
        and not any(dropped.values())
    print("target (single-row throughput with the log on >= 85% of off, both databases, "
          "nothing dropped):", "met" if ok else "MISSED")
PY
echo "errors: $(for k in "${!errs[@]}"; do printf '%s=%s ' "$k" "${errs[$k]}"; done)"
echo "one process each: python -m service (uvicorn, uvloop + httptools); $(nproc) cores; ${DURATION}s per cell; wrk -t2 -c$CONC"
