#!/usr/bin/env bash
# Wall time of the pipeline on the Telco data, in a fresh copy of the project:
#   baseline  the five stage commands run by hand, one after another (no DVC)
#   full      `dvc repro` from nothing
#   no-op     `dvc repro` again (everything up to date)
# Prints seconds and the ratios against the baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$work" 2>/dev/null || true
cd "$work"
git init -q -b main && git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm bench
python -m pipelines.source >/dev/null

now() { date +%s.%N; }
t0=$(now)
# The commands dvc.yaml runs, straight from its `cmd:` fields.
python - <<'PY'
import subprocess, yaml
stages = yaml.safe_load(open("dvc.yaml"))["stages"]
params = yaml.safe_load(open("params.yaml"))
for name, stage in stages.items():
    cmd = stage["cmd"].replace("${ingest.source}", params["ingest"]["source"]).replace(
        "${gates.champion_pin}", params["gates"]["champion_pin"])
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
PY
t1=$(now)
rm -rf data/raw data/validated data/quarantine data/split models/churn reports
dvc repro >/dev/null
t2=$(now)
dvc repro >/dev/null
t3=$(now)
python - "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
t0, t1, t2, t3 = map(float, sys.argv[1:])
base, full, noop = t1 - t0, t2 - t1, t3 - t2
print(f"{'run':<34}{'seconds':>9}{'vs baseline':>13}")
print(f"{'baseline: stage commands by hand':<34}{base:>9.2f}{1:>12.2f}x")
print(f"{'dvc repro (from nothing)':<34}{full:>9.2f}{full / base:>12.2f}x")
print(f"{'dvc repro (no-op rerun)':<34}{noop:>9.2f}{noop / base:>12.2f}x")
PY
