"""`make demo`: the main job end to end on the embedded defaults, in a throwaway clone.

pipeline → registry → promote to staging and production → retrain → promote again →
roll production back → serve the production pin and ask it for predictions.

Every step is the command a person would type, printed before it runs. The clone lives in
build/demo/ (git-ignored): the user's checkout and branch are never touched.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipelines.metric_names import KEY_METRICS

ROOT = Path(__file__).resolve().parents[1]
BOLD, RESET = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")


class DemoError(Exception):
    """A demo step failed; its output was already shown."""


def step(title: str) -> None:
    print(f"\n{BOLD}== {title}{RESET}", flush=True)


def sh(cmd: list[str], cwd: Path, *, quiet: bool = False) -> str:
    """Run and echo a command as a person would type it; stop the demo if it fails."""
    print(f"$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=cwd, text=True, capture_output=True)
    out = proc.stdout + (proc.stderr if proc.returncode else "")
    if (not quiet or proc.returncode) and out.strip():
        print("\n".join("  " + line for line in out.rstrip().splitlines()), flush=True)
    if proc.returncode:
        raise DemoError(f"`{' '.join(cmd)}` exited {proc.returncode}")
    return proc.stdout


def clone(src: Path, dst: Path) -> Path:
    """Clone HEAD of `src` and carry over its uncommitted changes to tracked files."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(src), str(dst)], check=True)
    diff = subprocess.run(["git", "-C", str(src), "diff", "HEAD", "--binary"],
                          capture_output=True, check=True).stdout
    git = ["git", "-C", str(dst)]
    identity = ["-c", "user.name=gitops-ml demo", "-c", "user.email=demo@gitops-ml.invalid"]
    if diff:
        subprocess.run([*git, "apply", "--index"], input=diff, check=True)
        subprocess.run([*git, *identity, "commit", "--quiet", "-m",
                        "demo: uncommitted changes of the checkout"], check=True)
    subprocess.run([*git, "config", "user.name", "gitops-ml demo"], check=True)
    subprocess.run([*git, "config", "user.email", "demo@gitops-ml.invalid"], check=True)
    return dst


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summarize(repo: Path) -> None:
    metrics = json.loads((repo / "models/churn/metrics.json").read_text())
    print(f"  test rows: {metrics['rows']}   (95% bootstrap intervals)")
    for name in KEY_METRICS:
        m = metrics[name]
        print(f"  {name:<10} {m['value']:.4f}  [{m['ci_low']:.4f}, {m['ci_high']:.4f}]")


def show_gate(repo: Path) -> None:
    from pipelines.stages.gate import table

    verdict = json.loads((repo / "models/churn/gate.json").read_text())
    print("\n".join("  " + line for line in table(verdict).splitlines()))


def set_estimator(repo: Path, estimator: str) -> None:
    """Change one param, as a data scientist's pull request would."""
    params_path = repo / "params.yaml"
    text = params_path.read_text()
    current = yaml.safe_load(text)["train"]["estimator"]
    params_path.write_text(text.replace(f"estimator: {current}", f"estimator: {estimator}", 1))
    print(f"  params.yaml: train.estimator {current} -> {estimator}")


def commit_training(repo: Path, message: str) -> None:
    """Record what `dvc repro` produced (dvc.lock, metrics, gate verdict) in one commit, so the
    registered version's git commit names exactly the pipeline state that trained it."""
    produced = [p for p in ("params.yaml", "dvc.lock", "models", "reports") if (repo / p).exists()]
    sh(["git", "add", *produced], repo)
    sh(["git", "commit", "--quiet", "-m", message], repo)


def serve_and_predict(repo: Path, env: str, rows: int = 3) -> None:
    """Start `mlops serve` on a free port, wait for readiness, ask for predictions, stop."""
    import httpx
    import pandas as pd

    port = free_port()
    cmd = ["mlops", "serve", "--env", env, "--host", "127.0.0.1", "--port", str(port)]
    print(f"$ {' '.join(cmd)} &", flush=True)
    log = open(repo / "build-serve.log", "w")
    proc = subprocess.Popen(cmd, cwd=repo, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                print((repo / "build-serve.log").read_text())
                raise DemoError("the service did not become ready")
            time.sleep(0.5)
        served = httpx.get(f"{base}/v1/model", timeout=5).json()
        print(f"  GET /v1/model -> {json.dumps(served)[:300]}")
        test = pd.read_parquet(repo / "data/split/test.parquet").head(rows)
        records = json.loads(test.drop(columns=["customerID", "Churn"]).to_json(orient="records"))
        print(f"$ curl -X POST {base}/v1/predict -d '[...{rows} customers]'")
        answer = httpx.post(f"{base}/v1/predict", json=records, timeout=10)
        print(f"  {answer.status_code} {json.dumps(answer.json(), indent=None)[:600]}")
        if answer.status_code != 200:
            raise DemoError("prediction failed")
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        wanted = ("gitops_ml_model_info", "gitops_ml_predictions_total")
        shown = [line for line in metrics.splitlines() if line.startswith(wanted)]
        print("  GET /metrics ->\n" + "\n".join("    " + line for line in shown))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "demo")
    parser.add_argument("--no-serve", action="store_true", help="stop before serving")
    args = parser.parse_args(argv)
    os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the embedded default, whatever the shell says
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    os.environ.pop("GITHUB_TOKEN", None)  # the demo never talks to GitHub

    try:
        step(f"A throwaway clone of this checkout: {args.workdir / 'repo'}")
        repo = clone(ROOT, args.workdir / "repo")

        step("1. Data and pipeline: ingest ► split ► train ► evaluate ► gate")
        sh([sys.executable, "-m", "pipelines.source"], repo)
        sh(["dvc", "repro"], repo, quiet=True)
        summarize(repo)
        show_gate(repo)
        print("  " + sh(["dvc", "repro"], repo, quiet=True).strip().splitlines()[-1])
        commit_training(repo, "Train churn: dvc.lock and metrics")

        step("2. Register the gated model in MLflow (embedded SQLite store)")
        sh(["mlops", "register"], repo)

        step("3. Promote version 1: staging, then production (each one commit)")
        sh(["mlops", "promote", "churn", "1", "--to", "staging", "--here"], repo)
        sh(["mlops", "promote", "churn", "1", "--to", "production", "--here"], repo)
        sh(["mlops", "sync-aliases"], repo)
        sh(["mlops", "status"], repo)

        step("4. A retrained challenger: change one param, dvc repro, register version 2")
        set_estimator(repo, "gradient_boosting")
        sh(["dvc", "repro"], repo, quiet=True)
        summarize(repo)
        show_gate(repo)
        commit_training(repo, "Train churn with gradient boosting: params, dvc.lock and metrics")
        sh(["mlops", "register"], repo)
        sh(["mlops", "promote", "churn", "2", "--to", "staging", "--here"], repo)
        sh(["mlops", "promote", "churn", "2", "--to", "production", "--here"], repo)
        sh(["mlops", "sync-aliases"], repo)
        sh(["mlops", "status"], repo)

        step("5. Roll production back: git revert of its newest promotion")
        sh(["mlops", "rollback", "production", "--here"], repo)
        sh(["mlops", "sync-aliases"], repo)
        sh(["mlops", "status"], repo)
        sh(["mlops", "history", "production"], repo)
        sh(["git", "log", "--oneline", "-8"], repo)

        if not args.no_serve:
            step("6. Serve what production pins, and ask it for predictions")
            serve_and_predict(repo, "production")
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    step("Done")
    print(f"  the clone:      {repo}\n"
          f"  the registry:   mlflow ui --backend-store-uri sqlite:///{repo}/.mlflow/mlflow.db\n"
          "  your checkout and branch were not touched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
