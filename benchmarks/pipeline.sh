#!/usr/bin/env bash
# Wall time of the pipeline of three models (churn on the Telco data, and scikit-learn's
# diabetes (regression) and wine (multiclass) data onboarded with `mlops new-model`), in a
# fresh copy of the project:
#   baseline  every stage command run by hand, one after another (no DVC), as DVC resolves them
#   full      `dvc repro` from nothing
#   no-op     `dvc repro` again (everything up to date)
#   one       `dvc repro` after one key of one model's declaration changed
# Prints seconds and the ratios against the baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$work" 2>/dev/null || true
cd "$work"
git init -q -b main && git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm bench
python -m pipelines.source >/dev/null && python -m pipelines.source wine.csv >/dev/null
mlops new-model diabetes --data data/source/diabetes.csv --target progression >/dev/null
mlops new-model wine --data data/source/wine.csv --target cultivar >/dev/null
git add -A && git -c user.name=bench -c user.email=bench@localhost commit -qm models

now() { date +%s.%N; }
t0=$(now)
# The commands of every stage, as DVC itself resolves dvc.yaml (foreach over the models).
python - <<'PY'
import shlex, subprocess
from pipelines.argo.workflow import stages
for stage in stages():
    subprocess.run(shlex.join(stage.cmd), shell=True, check=True, stdout=subprocess.DEVNULL)
PY
t1=$(now)
rm -rf data/churn/*.parquet data/diabetes/*.parquet data/wine/*.parquet models/*/model.skops models/*/model.onnx reports
dvc repro >/dev/null
t2=$(now)
dvc repro >/dev/null
t3=$(now)
sed -i 's/alpha: 1.0/alpha: 0.5/' models/diabetes/model.yaml
dvc repro >/dev/null
t4=$(now)
python - "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import sys
t0, t1, t2, t3, t4 = map(float, sys.argv[1:])
base, full, noop, one = t1 - t0, t2 - t1, t3 - t2, t4 - t3
print("three models: churn (binary), diabetes (regression), wine (multiclass)")
print(f"{'run':<44}{'seconds':>9}{'vs baseline':>13}")
print(f"{'baseline: stage commands by hand':<44}{base:>9.2f}{1:>12.2f}x")
print(f"{'dvc repro (from nothing)':<44}{full:>9.2f}{full / base:>12.2f}x")
print(f"{'dvc repro (no-op rerun)':<44}{noop:>9.2f}{noop / base:>12.2f}x")
print(f"{'dvc repro (one key of diabetes changed)':<44}{one:>9.2f}{one / base:>12.2f}x")
PY
