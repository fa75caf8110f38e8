"""The service image: lint-clean, non-root, no model baked in; built with buildah and run
against a real MLflow server, it fetches and verifies the pinned model and serves it.

`make image` builds service/Dockerfile (on a Python base made from Debian's packages, since no
image registry is reachable here). The container runs with `buildah run --isolation chroot`,
which shares this machine's network: it reaches an `mlflow server` on a loopback port that
proxies the artifacts, as the README's server does, and answers on another loopback port.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from servers import NOT_YET, free_port, launch, wait_for
from service_fixtures import MODEL, ServedRegistry, sklearn_probability, write_pin

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "service" / "Dockerfile"
BUILDAH = ROOT / "tools" / "image" / "buildah.sh"
APP_UID = 10001
VENV_LIMIT_MB = 400  # decimal megabytes: stricter than MiB


def test_dockerfiles_are_clean_under_hadolint():
    hadolint = Path(sys.executable).parent / "hadolint"
    pipeline = ROOT / "pipelines" / "Dockerfile"
    proc = subprocess.run([str(hadolint), str(DOCKERFILE), str(pipeline)], capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The pipeline image installs exactly the locked dependencies and runs unprivileged.
    text = pipeline.read_text()
    assert "--require-hashes -r /tmp/cli.txt" in text and "USER 10001:10001" in text


def test_image_runs_as_non_root_and_carries_no_model_or_training_code():
    text = DOCKERFILE.read_text()
    copies = [line for line in text.splitlines() if line.startswith("COPY")]
    assert text.count("FROM ") >= 2  # build stage + slim runtime stage
    assert any(line.startswith("USER 10001") for line in text.splitlines())
    assert not any("models" in line or "pipelines" in line or ".mlflow" in line
                   for line in copies)


def test_the_default_base_is_the_official_image_pinned_by_digest():
    froms = [line.split()[1] for line in DOCKERFILE.read_text().splitlines()
             if line.startswith("FROM ") and not line.startswith("FROM ${")]
    assert len(froms) == 1 and froms[0].startswith("python:3.11-slim-bookworm@sha256:"), froms
    assert len(froms[0].rsplit(":", 1)[1]) == 64


def buildah(*args: str, timeout: float = 300) -> str:
    """Run buildah on the repository's image store; return its stdout."""
    proc = subprocess.run([str(BUILDAH), *args], capture_output=True, text=True, check=False,
                          timeout=timeout)
    assert proc.returncode == 0, f"buildah {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


needs_buildah = pytest.mark.skipif(
    shutil.which("buildah") is None or shutil.which("debootstrap") is None or os.geteuid() != 0,
    reason="building the image needs root with buildah and debootstrap (`make image-deps`)")


@dataclass
class Image:
    name: str
    build_seconds: float
    entrypoint: list[str]
    user: str


@pytest.fixture(scope="module")
def image() -> Image:
    """`make image`, timed (a cached base makes a rebuild cheaper)."""
    started = time.monotonic()
    proc = subprocess.run(["make", "-s", "image"], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    name = proc.stdout.strip().splitlines()[-1]
    config = json.loads(buildah("inspect", "--type", "image", name))["OCIv1"]["config"]
    return Image(name, time.monotonic() - started, config["Entrypoint"], config["User"])


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, and everything it started."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


@dataclass
class HttpRegistry:
    """`mlflow server` proxying its artifacts, holding versions 1 and 2 of the served model;
    version 2's stored files were changed after registration."""

    url: str
    artifacts: Path


@pytest.fixture(scope="module")
def http_registry(served_registry: ServedRegistry, tmp_path_factory) -> HttpRegistry:
    from pipelines.registry import store as registry

    root = tmp_path_factory.mktemp("image-registry")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "mlflow-server.log"
    proc = launch([str(Path(sys.executable).parent / "mlflow"), "server",
                   "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                   "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                  log, cwd=root, start_new_session=True,
                  env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        wait_for("mlflow server", lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200,
                 120, proc=proc, log=log)
        with pytest.MonkeyPatch.context() as mp:
            # The same versions, bytes and digests as the file registry of the other service
            # tests, so their pins and expected predictions hold here too.
            mp.setenv("MLFLOW_TRACKING_URI", served_registry.uri)
            bundles = {v: registry.verified_download(registry.get_version(MODEL, v),
                                                     root / f"bundle-v{v}") for v in (1, 2)}
            mp.setenv("MLFLOW_TRACKING_URI", url)
            client = registry.client()
            experiment = client.create_experiment(MODEL)
            for version, bundle in bundles.items():
                run_id = client.create_run(experiment).info.run_id
                info = registry.register_bundle(bundle, MODEL, run_id=run_id, tags={
                    "gate": "passed", "run_id": run_id})
                client.set_terminated(run_id)
                assert (info.version, info.sha256) == (version, served_registry.digests[version])
            source = registry.get_version(MODEL, 2).source
        assert source.startswith("mlflow-artifacts:/"), source
        stored = root / "artifacts" / source.removeprefix("mlflow-artifacts:/")
        (stored / "reference.json").write_text("{}")  # changed after registration
        yield HttpRegistry(url, root / "artifacts")
    finally:
        stop_group(proc)


@dataclass
class Container:
    url: str
    proc: subprocess.Popen
    log: Path
    port: int

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def wait(self, what: str, check, timeout: float = 180.0):
        return wait_for(what, check, timeout, every=0.25, proc=self.proc, log=self.log,
                        tolerate=NOT_YET)

    def listener_uids(self) -> set[int]:
        """Owners of the sockets listening on the container's port (from /proc/net/tcp)."""
        uids = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, uid = fields[1], fields[3], int(fields[7])
            if state == "0A" and int(local.split(":")[1], 16) == self.port:
                uids.add(uid)
        return uids


@pytest.fixture(scope="module")
def working_container(image: Image):
    """One container of the image (with the vfs driver each one is a full copy of it)."""
    name = buildah("from", "--pull=never", image.name).strip()
    yield name
    buildah("rm", name)


@pytest.fixture()
def container(image: Image, working_container: str, http_registry: HttpRegistry, tmp_path):
    """Start the image's entrypoint in the container, the way the Deployment does: the pin
    mounted read-only at /etc/gitops-ml/model.yaml, the registry in MLFLOW_TRACKING_URI."""
    pins = tmp_path / "pin"
    pins.mkdir()
    started: list[Container] = []

    def start(**env: str) -> Container:
        port = free_port()
        log = tmp_path / f"container-{port}.log"
        environ = {"MODEL_PIN": "/etc/gitops-ml/model.yaml", "MLFLOW_TRACKING_URI": http_registry.url,
                   "HOST": "127.0.0.1", "PORT": str(port), "HOME": "/tmp",
                   "PIN_POLL_SECONDS": "0.5", "ALLOW_ANONYMOUS": "true",
                   "PREDICTION_LOG": "off", **env}  # the log has its own tests (test_service_log)
        cmd = [str(BUILDAH), "run", "--isolation", "chroot", "-v", f"{pins}:/etc/gitops-ml:ro"]
        for key, value in environ.items():
            cmd += ["--env", f"{key}={value}"]
        proc = launch([*cmd, working_container, "--", *image.entrypoint], log,
                      start_new_session=True)
        running = Container(f"http://127.0.0.1:{port}", proc, log, port)
        started.append(running)
        return running

    yield pins / "model.yaml", start
    for running in started:
        stop_group(running.proc)
        assert not running.listener_uids(), "the service outlived its container"


# The first test of the module builds the image: debootstrap a base (about 1-3 min, then cached
# in build/) and the image itself (about 1.5-2.5 min, then reused while its inputs stay).
@needs_buildah
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_container_fetches_verifies_and_serves_the_pinned_model_as_uid_10001(
        container, served_registry, image):
    pin, start = container
    write_pin(pin, served_registry, 1, environment="production")
    service = start()
    ready = service.wait("/ready", lambda: service.get("/ready").raise_for_status().json())
    assert (ready["version"], ready["sha256"]) == (1, served_registry.digests[1]), ready
    assert image.user == f"{APP_UID}:{APP_UID}"
    assert service.listener_uids() == {APP_UID}

    rows = served_registry.rows.iloc[:50]
    answer = httpx.post(service.url + "/v1/predict", json=served_registry.records(50), timeout=30)
    assert answer.status_code == 200, answer.text
    got = np.array([p["probability"] for p in answer.json()["predictions"]])
    assert np.max(np.abs(got - sklearn_probability(served_registry, 1, rows))) < 1e-6
    assert service.get("/v1/model").json()["runtime"] == "onnxruntime"

    # Version 2's stored files changed after registration: pinned, it is refused on its digest
    # and version 1 stays in service.
    write_pin(pin, served_registry, 2, environment="production")
    def refusal():
        body = service.get("/ready").json()
        return body if (body.get("failure") or {}).get("reason") == "digest_mismatch" else None

    refused = service.wait("the refusal of version 2", refusal, timeout=60)
    assert (refused["version"], refused["in_sync"], refused["pinned"]) == \
        (1, False, f"models:/{MODEL}/2"), refused


@needs_buildah
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_virtual_environment_in_the_image_stays_under_400_mb(working_container):
    def run(*cmd: str) -> str:
        return buildah("run", "--isolation", "chroot", working_container, "--", *cmd)

    used = run("du", "-s", "--block-size=1000000", "/opt/venv")
    listed = run("python", "-c", "import importlib.util as u; print([m for m in ('pip', "
                 "'setuptools', 'faker', 'polyfactory', 'rich') if u.find_spec(m)])")
    assert int(used.split()[0]) <= VENV_LIMIT_MB, used
    assert listed.strip() == "[]", listed


@needs_buildah
@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the manifests")
def test_the_database_commands_of_the_manifests_run_in_the_image(working_container, postgres):
    # Exactly what the init container `migrate` and CronJob `gitops-ml-prune` run (read from the
    # rendered manifests), in the image, against a URL written as providers and CloudNativePG
    # write it (postgresql://, no driver named).
    from contracts.prediction_log import migrate
    from pipelines.checks import manifests

    def command(folder: str, kind: str, name: str) -> list[str]:
        obj = next(o for o in manifests.load(ROOT / folder) if o["kind"] == kind)
        container = next(c for c in manifests.containers(obj) if c["name"] == name)
        return [*container["command"], *container["args"]]

    url = postgres.database()
    env = ["--env", f"DATABASE_URL={url.replace('postgresql+psycopg://', 'postgresql://')}",
           "--env", "HOME=/tmp"]
    run = lambda cmd: buildah("run", "--isolation", "chroot", *env, working_container, "--", *cmd)
    upgrade = run(command("environments/staging/churn", "Deployment", "migrate"))
    assert "schema empty -> 0001" in upgrade
    assert migrate.current(url) == migrate.head()
    assert "schema 0001 -> 0001" in run(command("environments/staging/churn", "Deployment",
                                                "migrate"))
    pruned = run(command("environments/shared/staging/database", "CronJob", "prune"))
    assert "deleted 0 expired predictions (0 labelled)" in pruned
