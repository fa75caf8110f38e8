"""The Kustomize environments and Argo CD objects: they render, validate, and follow the pin."""
from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from contracts.pin import Lineage, ModelRef, Pin, Promotion
from pipelines.checks import crds, manifests
from pipelines.errors import CommandError

ROOT = Path(__file__).resolve().parents[1]
ENVS = ("staging", "production")


def _by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _one(objects: list[dict], kind: str) -> dict:
    found = _by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {env: manifests.documents(manifests.render(ROOT / "environments" / env)) for env in ENVS}


def _pinned(env: str, version: int) -> Pin:
    return Pin(
        environment=env,
        model=ModelRef(name="churn", version=version, uri=f"models:/churn/{version}",
                       sha256=f"{version:x}" * 64),
        lineage=Lineage(run_id="r" * 32, git_commit="c" * 40, data_hash="d" * 32),
        metrics={"roc_auc": 0.84},
        promoted=Promotion(by="Ada <ada@example.com>", at=datetime(2026, 1, 2, tzinfo=UTC)),
    )


def test_every_environment_folder_is_an_overlay_with_a_pin():
    assert [p.name for p in manifests.overlays(ROOT)] == list(ENVS)
    for env in ENVS:
        assert Pin.read(ROOT / "environments" / env / "model.yaml").environment == env


@pytest.mark.parametrize("env", ENVS)
def test_overlay_renders_and_passes_strict_kubernetes_validation(env):
    manifests.validate_kubernetes(manifests.render(ROOT / "environments" / env), label=env)


def test_strict_validation_rejects_an_unknown_field(rendered):
    # Guards the guard: the validator above really is strict.
    objects = copy.deepcopy(rendered["staging"])
    container = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolice"] = "x"
    with pytest.raises(CommandError, match="imagePullPolice"):
        manifests.validate_kubernetes(yaml.safe_dump_all(objects), label="broken")


# Each Argo CD Application: its file, the folder it syncs, the namespace it syncs into.
APPLICATIONS = {
    "staging": ("environments/staging", "gitops-ml-staging"),
    "production": ("environments/production", "gitops-ml-production"),
    "pipeline": ("pipelines/argo", "gitops-ml-pipeline"),
    "monitoring": ("environments/monitoring", "monitoring"),
}


def test_argocd_objects_match_the_argo_cd_schema():
    objects = manifests.documents(manifests.render(ROOT / "environments" / "argocd"))
    assert sorted(o["kind"] for o in objects) == ["AppProject"] + ["Application"] * len(APPLICATIONS)
    report = crds.validate(objects)
    assert sum(line.startswith("ok ") for line in report) == len(objects)


def test_argocd_schema_check_rejects_a_wrong_type():
    objects = manifests.documents(manifests.render(ROOT / "environments" / "argocd"))
    for app in _by_kind(objects, "Application"):
        broken = copy.deepcopy(app)
        broken["spec"]["syncPolicy"]["automated"]["prune"] = "yes"
        with pytest.raises(CommandError, match="prune must be boolean"):
            crds.validate([broken])


def test_crd_check_rejects_a_kind_it_has_no_schema_for():
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stray"}}
    with pytest.raises(CommandError, match="ConfigMap/stray: no CRD schema"):
        crds.validate([config_map])


@pytest.mark.parametrize("name", APPLICATIONS)
def test_argocd_application_syncs_its_folder_automatically_with_prune_and_self_heal(name):
    path, namespace = APPLICATIONS[name]
    app = yaml.safe_load((ROOT / "environments" / "argocd" / f"{name}.yaml").read_text())
    spec = app["spec"]
    assert app["metadata"]["name"] == f"gitops-ml-{name}"
    assert spec["source"]["path"] == path
    assert spec["destination"]["namespace"] == namespace
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    kustomization = yaml.safe_load((ROOT / path / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == namespace


@pytest.mark.parametrize("name", APPLICATIONS)
def test_argocd_project_admits_everything_its_application_renders(name):
    objects = manifests.documents(manifests.render(ROOT / "environments" / "argocd"))
    project = _one(objects, "AppProject")
    app = next(o for o in objects if o["metadata"]["name"] == f"gitops-ml-{name}")
    assert app["spec"]["project"] == project["metadata"]["name"]
    destination = app["spec"]["destination"]
    assert {"server": destination["server"], "namespace": destination["namespace"]} in (
        project["spec"]["destinations"])
    # The project whitelists no cluster-scoped kind but Namespace, so every object the
    # Application syncs must land in its destination namespace.
    rendered = manifests.documents(manifests.render(ROOT / app["spec"]["source"]["path"]))
    assert rendered
    for obj in rendered:
        assert obj["metadata"].get("namespace") == destination["namespace"], obj["kind"]


def test_changing_the_pin_changes_the_configmap_name_the_deployment_mounts(tmp_path):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    overlay = tmp_path / "environments" / "staging"

    def mounted_pin() -> tuple[str, str]:
        objects = manifests.documents(manifests.render(overlay))
        deployment = _one(objects, "Deployment")
        volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"]
                      if v["name"] == "model-pin")
        name = volume["configMap"]["name"]
        config_map = next(o for o in _by_kind(objects, "ConfigMap")
                          if o["metadata"]["name"] == name)
        return name, config_map["data"]["model.yaml"]

    empty_name, empty_text = mounted_pin()
    assert Pin.parse(empty_text).is_empty
    _pinned("staging", 2).write(overlay / "model.yaml")
    v2_name, v2_text = mounted_pin()
    _pinned("staging", 3).write(overlay / "model.yaml")
    v3_name, _ = mounted_pin()

    assert empty_name.startswith("model-pin-") and v2_name.startswith("model-pin-")
    assert len({empty_name, v2_name, v3_name}) == 3
    assert Pin.parse(v2_text).model.version == 2
    # Same pin, same name: re-rendering does not roll pods for nothing.
    _pinned("staging", 2).write(overlay / "model.yaml")
    assert mounted_pin()[0] == v2_name


def _normalised(objects: list[dict], env: str) -> list[dict]:
    # Remove exactly what may differ between environments; the rest must be identical.
    # Production may also deliver by canary (Argo Rollouts objects, the HPA scaling the Rollout).
    text = yaml.safe_dump_all(objects, sort_keys=True).replace(f"gitops-ml-{env}", "NS")
    out = []
    for obj in yaml.safe_load_all(text):
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith("model-pin-"):
            continue
        if obj["apiVersion"].startswith("argoproj.io/"):
            continue
        if obj["kind"] == "HorizontalPodAutoscaler":
            obj["spec"].pop("minReplicas")
            obj["spec"].pop("maxReplicas")
            obj["spec"].pop("scaleTargetRef")
        if obj["kind"] == "Deployment":
            for volume in obj["spec"]["template"]["spec"]["volumes"]:
                if volume["name"] == "model-pin":
                    volume["configMap"]["name"] = "PIN"
        out.append(obj)
    return out


def test_overlays_differ_only_in_namespace_replicas_pin_and_delivery(rendered):
    assert _normalised(rendered["staging"], "staging") == _normalised(rendered["production"],
                                                                       "production")
    hpa = {env: _one(rendered[env], "HorizontalPodAutoscaler")["spec"] for env in ENVS}
    assert hpa["production"]["minReplicas"] > hpa["staging"]["minReplicas"]
    assert hpa["staging"]["scaleTargetRef"]["kind"] == "Deployment"


@pytest.mark.parametrize("env", ENVS)
def test_service_runs_non_root_read_only_with_health_and_ready_probes(rendered, env):
    objects = rendered[env]
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert {"name": "MODEL_PIN", "value": "/etc/gitops-ml/model.yaml"} in container["env"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "model-pin")
    assert mount["mountPath"] == "/etc/gitops-ml" and mount["readOnly"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]
    image, tag = container["image"].rsplit(":", 1)
    assert image == "ghcr.io/OWNER/gitops-ml-service" and tag != "unset"
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
                 "ServiceAccount"):
        assert _one(objects, kind)["metadata"]["namespace"] == f"gitops-ml-{env}"
    assert _one(objects, "ServiceAccount")["automountServiceAccountToken"] is False


def test_environments_hold_no_secrets_and_no_deprecated_patch_fields(rendered):
    for env in ENVS:
        assert not _by_kind(rendered[env], "Secret")
    for kustomization in (ROOT / "environments").rglob("kustomization.yaml"):
        data = yaml.safe_load(kustomization.read_text())
        assert "patchesStrategicMerge" not in data and "patchesJson6902" not in data, kustomization


def test_manifests_command_checks_every_overlay_and_the_argocd_objects(capsys):
    assert manifests.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["ok  environments/staging: renders and passes kubernetes-validate",
                   "ok  environments/production: renders and passes kubernetes-validate",
                   "ok  environments/argocd: 5 objects match the Argo CD schema"]


def test_crd_schema_checker_installs_once_from_its_lock_file_even_when_raced(tmp_path):
    # What a fresh machine does, with two test processes starting at once: `npm ci` from
    # tools/crd-validate/package-lock.json into one folder, never into the repository.
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm missing")
    code = "import sys; from pathlib import Path; from pipelines import crds; " \
           "print(crds.install(Path(sys.argv[1])))"
    racers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    results = [racer.communicate() for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), results
    folders = {Path(out.strip()) for out, _ in results}
    assert len(folders) == 1
    folder = folders.pop()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [folder.name]
    for package in crds.PACKAGES:
        assert (folder / "node_modules" / "@kubernetes-models" / package / "package.json").is_file()
    assert not (ROOT / "tools" / "crd-validate" / "node_modules").exists()
    assert crds.install(tmp_path) == folder  # a later call reuses it
