"""`mlops serve --env ENV [--model NAME]`: the service on one model's pin in an environment,
following it as it changes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from project import mlops
from service_fixtures import RunningService, free_port, write_pin

pytest_plugins = ("service_fixtures",)
MLOPS = Path(sys.executable).parent / "mlops"


def _repo(tmp_path: Path, reg=None, version: int | None = None, models=("churn",)) -> Path:
    """A gitops checkout with empty pins, and `version` of churn pinned in staging when given."""
    repo = tmp_path / "gitops"
    for env in ("staging", "production"):
        for model in models:
            (repo / "environments" / env / model).mkdir(parents=True)
            write_pin(repo / "environments" / env / model / "model.yaml", None, None,
                      environment=env)
    if version is not None:
        write_pin(repo / "environments" / "staging" / "churn" / "model.yaml", reg, version)
    return repo


@pytest.mark.slow
def test_mlops_serve_runs_the_environments_pin_and_follows_it(tmp_path, served_registry):
    reg = served_registry
    repo = _repo(tmp_path, reg, 1)
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": reg.uri, "PIN_POLL_SECONDS": "0.2",
           "MODEL_CACHE_DIR": str(tmp_path / "cache")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(MLOPS), "serve", "--env", "staging", "--port", str(port)],
                                cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
    service = RunningService(f"http://127.0.0.1:{port}", proc, log,
                             repo / "environments" / "staging" / "churn" / "model.yaml")
    try:
        ready = service.wait_ready(1)
        assert ready["sha256"] == reg.digests[1]
        assert ready["logging"]["state"] == "ok"  # the embedded log, migrated by mlops serve
        answered = service.post("/v1/predict", json=reg.records(3)).json()["predictions"]
        write_pin(service.pin, reg, 2)  # what a merged promotion does to the checkout
        service.wait_ready(2)
        assert service.get("/v1/model").json()["environment"] == "staging"
    finally:
        service.stop()
    # `mlops serve` became the service process: SIGTERM reached it, it shut down gracefully
    # (uvicorn then exits by the signal it got), and it was not killed after a timeout.
    output = log.read_text(errors="replace")
    assert proc.returncode == -signal.SIGTERM, output[-3000:]
    assert "Application shutdown complete" in output
    assert "ALLOW_ANONYMOUS=true" in output and "predictions.db (schema 0001" in output
    from contracts.prediction_log.store import PredictionLog

    logged = PredictionLog(f"sqlite:///{repo / '.mlflow' / 'predictions.db'}").count("churn")
    assert logged == {"predictions": len(answered), "labelled": 0}


def serve(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """`mlops serve ARGS` in `repo`, in this process. Where it would exec the service, the
    service's own `main` runs here instead, with the environment `mlops serve` gave it, and its
    exit code is the command's (as after a real exec); it must refuse before serving."""
    from pipelines import serve as serve_command
    from service.__main__ import main as service_main

    def execve(path, argv, env):
        assert argv[1:3] == ["-m", "service"], argv
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            raise SystemExit(service_main(argv[3:]))
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def uvicorn_run(*_, **__):
        raise AssertionError("the service was started: it should have refused to")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(serve_command.os, "execve", execve)
        mp.setattr("uvicorn.run", uvicorn_run)
        return mlops(["serve", *args], repo, check=False)


def test_mlops_serve_refuses_to_serve_anyone_beyond_this_machine_without_credentials(tmp_path,
                                                                                    monkeypatch):
    repo = _repo(tmp_path)
    for name in ("API_KEYS", "ALLOW_ANONYMOUS", "JWT_SECRET", "JWT_PUBLIC_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    proc = serve(repo, "--env", "staging", "--host", "0.0.0.0", "--port", str(free_port()))
    assert proc.returncode == 2
    assert "no authentication is configured" in proc.stderr


def test_mlops_serve_names_the_environments_it_knows(tmp_path):
    repo = _repo(tmp_path)
    proc = serve(repo, "--env", "qa")
    assert proc.returncode == 2
    assert "no pin for environment 'qa'" in proc.stderr
    assert "environments with a pin: staging, production" in proc.stderr


def test_mlops_serve_asks_which_model_when_the_environment_holds_several(tmp_path):
    repo = _repo(tmp_path, models=("churn", "housing"))
    proc = serve(repo, "--env", "staging")
    assert proc.returncode == 2
    assert "staging holds 2 models (churn, housing): say which with --model NAME" in proc.stderr
    proc = serve(repo, "--env", "staging", "--model", "fraud")
    assert proc.returncode == 2
    assert "no model 'fraud' in staging" in proc.stderr and "staging has churn, housing" in (
        proc.stderr)


def test_mlops_serve_refuses_a_broken_pin(tmp_path):
    repo = _repo(tmp_path)
    (repo / "environments" / "staging" / "churn" / "model.yaml").write_text("model: [\n")
    proc = serve(repo, "--env", "staging")
    assert proc.returncode == 2 and "is not a valid pin" in proc.stderr
