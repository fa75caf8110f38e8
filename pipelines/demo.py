"""`make demo`: the main job end to end on the embedded defaults, in a throwaway clone.

Two models of different tasks in one repository: churn (binary, declared) and diabetes
(regression, onboarded with `mlops new-model` as a user would). Pipeline → registry → promote
both to staging and production → retrain churn → promote it → roll churn back while diabetes
keeps serving → serve both → feedback comes back → `mlops collect` → churn retrains on what
production labelled.

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

from pipelines.metric_names import key_metrics

ROOT = Path(__file__).resolve().parents[1]
BOLD, RESET = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
SECOND = ("diabetes", "data/source/diabetes.csv", "progression")


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


def summarize(repo: Path, name: str) -> None:
    metrics = json.loads((repo / f"models/{name}/metrics.json").read_text())
    level = f"{metrics.get('confidence', 0.95):.0%}"
    print(f"  {name}: {metrics['rows']} test rows ({level} bootstrap intervals)")
    for metric in key_metrics(metrics["task"]):
        m = metrics[metric]
        print(f"    {metric:<18} {m['value']:.4f}  [{m['ci_low']:.4f}, {m['ci_high']:.4f}]")


def show_gate(repo: Path, name: str) -> None:
    from pipelines.stages.gate import table

    verdict = json.loads((repo / f"models/{name}/gate.json").read_text())
    measured = json.loads((repo / f"models/{name}/latency.json").read_text())
    print("\n".join("  " + line for line in table(verdict, measured).splitlines()))


def set_estimator(repo: Path, estimator: str, model: str = "churn") -> None:
    """Change one key of a declaration, as a data scientist's pull request would."""
    path = repo / "models" / model / "model.yaml"
    text = path.read_text()
    current = yaml.safe_load(text)["train"]["estimator"]
    path.write_text(text.replace(f"estimator: {current}", f"estimator: {estimator}", 1))
    print(f"  models/{model}/model.yaml: train.estimator {current} -> {estimator}")


def commit_training(repo: Path, message: str) -> None:
    """Record what `dvc repro` produced (dvc.lock, metrics, gate verdicts) in one commit, so
    each registered version's git commit names exactly the pipeline state that trained it."""
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "--quiet", "-m", message], repo)


class Served:
    """A `mlops serve` process on a free port."""

    def __init__(self, repo: Path, env: str, model: str) -> None:
        import httpx

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = ["mlops", "serve", "--env", env, "--model", model, "--port", str(self.port)]
        print(f"$ {' '.join(cmd)} &", flush=True)
        self.log_path = repo / "build" / f"serve-{model}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self.log = open(self.log_path, "w")
        env_vars = {**os.environ, "ALLOW_ANONYMOUS": "true"}  # a local demo: no keys to hand out
        self.proc = subprocess.Popen(cmd, cwd=repo, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env_vars)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.base}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                print(self.log_path.read_text())
                raise DemoError(f"the {model} service did not become ready")
            time.sleep(0.5)

    def post(self, path: str, body) -> dict:
        import httpx

        answer = httpx.post(f"{self.base}{path}", json=body, timeout=10)
        if answer.status_code != 200:
            raise DemoError(f"POST {path} answered {answer.status_code}: {answer.text[:300]}")
        return answer.json()

    def stop(self) -> None:
        self.proc.terminate()  # SIGTERM: the prediction log's buffer is flushed first
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def records(repo: Path, name: str, target: str, rows: int, start: int = 0):
    """Held-out rows of a model as a client sends them, and their true targets."""
    import pandas as pd

    from pipelines import declaration

    decl = declaration.load_named(repo, name)
    test = pd.read_parquet(repo / f"data/{name}/test.parquet").iloc[start:start + rows]
    body = json.loads(test[decl.feature_names].to_json(orient="records"))
    return body, test[target].tolist()


def serve_and_predict(repo: Path) -> None:
    """Serve production's two models and ask each for predictions."""
    for name, target in (("churn", "Churn"), (SECOND[0], SECOND[2])):
        served = Served(repo, "production", name)
        try:
            model = json.loads(__import__("httpx").get(f"{served.base}/v1/model", timeout=5).text)
            print(f"  GET /v1/model -> {model['name']} v{model['version']} "
                  f"({model['runtime']}, sha256 {model['sha256'][:12]})")
            body, truth = records(repo, name, target, 3)
            print(f"$ curl -X POST {served.base}/v1/predict -d '[...3 rows of {name}]'")
            answer = served.post("/v1/predict", body)
            for p, t in zip(answer["predictions"], truth):
                shown = {k: v for k, v in p.items() if k != "prediction_id"}
                print(f"  {json.dumps(shown)[:160]}   (truth: {t})")
        finally:
            served.stop()


def feedback_loop(repo: Path, rows: int = 300) -> None:
    """Predictions on production churn, their true labels sent back, then collected."""
    served = Served(repo, "production", "churn")
    try:
        body, truth = records(repo, "churn", "Churn", rows)
        print(f"$ curl -X POST {served.base}/v1/predict -d '[...{rows} customers]'")
        answered = served.post("/v1/predict", body)["predictions"]
        labels = [{"prediction_id": p["prediction_id"], "label": t}
                  for p, t in zip(answered, truth)]
        print(f"$ curl -X POST {served.base}/v1/feedback -d '[...{rows} labels]'")
        stored = served.post("/v1/feedback", labels)["feedback"]
        correct = sum(f["outcome"] == "correct" for f in stored)
        live = json.loads(__import__("httpx").get(f"{served.base}/v1/model",
                                                   timeout=5).text)["live_quality"]
        print(f"  stored {len(stored)} labels ({correct} predictions were right); live quality "
              f"per version, from the prediction log: {json.dumps(live)}")
    finally:
        served.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "demo")
    parser.add_argument("--no-serve", action="store_true", help="stop before serving")
    args = parser.parse_args(argv)
    os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1")
    for unset in ("MLFLOW_TRACKING_URI", "DATABASE_URL", "GITHUB_TOKEN"):
        os.environ.pop(unset, None)  # the embedded defaults, and never a call to GitHub
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    name, data, target = SECOND
    try:
        step(f"A throwaway clone of this checkout: {args.workdir / 'repo'}")
        repo = clone(ROOT, args.workdir / "repo")

        step(f"1. Data, and a second model onboarded without code: {name} (regression)")
        sh([sys.executable, "-m", "pipelines.source"], repo)
        sh(["mlops", "new-model", name, "--data", data, "--target", target], repo)
        commit_training(repo, f"Onboard {name}")

        step("2. The pipeline of both models: ingest ► split ► train ► export ► evaluate ► gate")
        sh(["dvc", "repro"], repo, quiet=True)
        for model in ("churn", name):
            summarize(repo, model)
            show_gate(repo, model)
        print("  " + sh(["dvc", "repro"], repo, quiet=True).strip().splitlines()[-1])
        commit_training(repo, "Train churn and diabetes: dvc.lock and metrics")

        step("3. Register both in MLflow (embedded SQLite store), promote each to staging, "
             "then production")
        for model in ("churn", name):
            sh(["mlops", "register", model], repo)
            for env in ("staging", "production"):
                sh(["mlops", "promote", model, "1", "--to", env, "--here"], repo)
        sh(["mlops", "sync-aliases"], repo)
        sh(["mlops", "status"], repo)

        step("4. A retrained churn challenger: one key of its declaration, dvc repro (diabetes "
             "is not retrained), register and promote version 2")
        set_estimator(repo, "gradient_boosting")
        out = sh(["dvc", "repro"], repo, quiet=True)
        ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running")]
        print(f"  stages that ran: {', '.join(ran)}")
        summarize(repo, "churn")
        commit_training(repo, "Train churn with gradient boosting")
        sh(["mlops", "register", "churn"], repo)
        for env in ("staging", "production"):
            sh(["mlops", "promote", "churn", "2", "--to", env, "--here"], repo)

        step("5. Roll churn back in production (git revert); diabetes keeps serving as it was")
        sh(["mlops", "rollback", "production", "--model", "churn", "--here"], repo)
        sh(["mlops", "sync-aliases"], repo)
        sh(["mlops", "status"], repo)
        sh(["mlops", "history", "production"], repo)
        sh(["git", "log", "--oneline", "-6"], repo)

        if not args.no_serve:
            step("6. Serve what production pins, one process per model, and ask each")
            sh(["mlops", "db", "upgrade"], repo)
            serve_and_predict(repo)

            step("7. Production data comes back: labels for served predictions, collected into "
                 "churn's next training data, and a retrain on them")
            feedback_loop(repo)
            sh(["mlops", "collect", "churn"], repo)
            out = sh(["dvc", "repro"], repo, quiet=True)
            ran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running")]
            print(f"  stages that ran: {', '.join(ran)}")
            sh(["mlops", "retrain-summary", "churn"], repo)
            commit_training(repo, "Retrain churn on collected production rows")
    except DemoError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    step("Done")
    print(f"  the clone:      {repo}\n"
          f"  the registry:   mlflow ui --backend-store-uri sqlite:///{repo}/.mlflow/mlflow.db\n"
          f"  the log:        sqlite3 {repo}/.mlflow/predictions.db\n"
          "  your checkout and branch were not touched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
