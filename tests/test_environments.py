"""The Kustomize environments and Argo CD objects: every model is its own workload in each
environment, rendered from one base; they render, validate, follow the pin, and never share an
object, a pod or a rendered byte with another model."""
from __future__ import annotations

import copy
import fnmatch
import re
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
from pipelines.gitops import environments, image, pins

ROOT = Path(__file__).resolve().parents[1]
ENVS = ("staging", "production")
MODEL, OTHER = "churn", "housing"
OVERLAYS = [(env, MODEL) for env in ENVS]
MODEL_LABEL = "gitops-ml/model"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")


def _by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _one(objects: list[dict], kind: str) -> dict:
    found = _by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def render(repo: Path, env: str, model: str) -> str:
    return manifests.render(Path(repo) / "environments" / env / model)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {env: manifests.documents(render(ROOT, env, MODEL)) for env in ENVS}


def render_upkeep(repo: Path, env: str) -> list[dict]:
    return manifests.load(Path(repo) / "environments" / "shared" / env / "database")


@pytest.fixture(scope="module")
def upkeep() -> dict[str, list[dict]]:
    return {env: render_upkeep(ROOT, env) for env in ENVS}


@pytest.fixture()
def two_model_envs(tmp_path) -> Path:
    """A copy of the repository's environments/ with a second model added to every environment."""
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    environments.add_model(tmp_path, OTHER)
    return tmp_path


def _pinned(env: str, version: int, model: str = MODEL) -> Pin:
    return Pin(
        environment=env,
        model=ModelRef(name=model, version=version, uri=f"models:/{model}/{version}",
                       sha256=f"{version:x}" * 64),
        lineage=Lineage(run_id="r" * 32, git_commit="c" * 40, data_hash="d" * 32),
        metrics={"roc_auc": 0.84},
        promoted=Promotion(by="Ada <ada@example.com>", at=datetime(2026, 1, 2, tzinfo=UTC)),
    )


def test_every_environment_holds_one_overlay_per_model_with_its_pin():
    assert pins.environments(ROOT) == list(ENVS)
    assert [p.relative_to(ROOT).as_posix() for p in manifests.overlays(ROOT)] == [
        f"environments/{env}/{model}" for env, model in OVERLAYS]
    for env, model in OVERLAYS:
        pin = Pin.read(ROOT / pins.relpath(env, model))
        assert pin.environment == env and pin.is_empty


@pytest.mark.parametrize(("env", "model"), OVERLAYS)
def test_a_model_overlay_is_the_small_generated_kustomization_and_its_pin_nothing_more(env, model):
    folder = ROOT / "environments" / env / model
    assert sorted(p.name for p in folder.iterdir()) == ["kustomization.yaml", "model.yaml"]
    assert (folder / "kustomization.yaml").read_text() == environments.overlay_text(env, model)


@pytest.mark.parametrize("env", ENVS)
def test_overlay_renders_and_passes_strict_kubernetes_validation(env):
    manifests.validate_kubernetes(render(ROOT, env, MODEL), label=env)


def test_strict_validation_rejects_an_unknown_field(rendered):
    # Guards the guard: the validator above really is strict.
    objects = copy.deepcopy(rendered["staging"])
    container = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolice"] = "x"
    with pytest.raises(CommandError, match="imagePullPolice"):
        manifests.validate_kubernetes(yaml.safe_dump_all(objects), label="broken")


# --- Argo CD ---------------------------------------------------------------------------------

def argocd_objects(repo: Path = ROOT) -> list[dict]:
    return manifests.documents(manifests.render(Path(repo) / "environments" / "argocd"))


def _matches(folder: str, glob: str) -> bool:
    # Argo CD's path globs: `*` stays within one path segment.
    return fnmatch.fnmatchcase(folder, glob) and folder.count("/") == glob.count("/")


def _folders_under_globs(repo: Path, globs: list[str]) -> list[str]:
    """The repository's folders a glob could match: only those under the globs' literal first
    segments (walking the whole checkout would walk .venv and node_modules too)."""
    tops = {g.split("/")[0] for g in globs}
    if any(ch in top for top in tops for ch in "*?["):  # a wildcard first segment
        tops = {p.name for p in repo.iterdir()}
    return sorted({p.relative_to(repo).as_posix() for top in tops if (repo / top).is_dir()
                   for p in [repo / top, *(repo / top).rglob("*")] if p.is_dir()})


def generated_applications(repo: Path, appset_name: str | None = None) -> list[dict]:
    """What the ApplicationSets' git directories generators make of `repo`'s folders (only
    `appset_name`'s when given): each matches its `directories[].path` globs against the
    repository's directories and fills its Go template with the folder's path."""
    apps = []
    for appset in _by_kind(argocd_objects(repo), "ApplicationSet"):
        if appset_name and appset["metadata"]["name"] != appset_name:
            continue
        generator = appset["spec"]["generators"][0]["git"]
        folders = _folders_under_globs(Path(repo), [d["path"] for d in generator["directories"]])
        for folder in folders:
            if not any(_matches(folder, d["path"]) for d in generator["directories"]
                       if not d.get("exclude")):
                continue
            segments = folder.split("/")
            text = re.sub(r"\{\{ index \.path\.segments (\d+) \}\}",
                          lambda m, parts=segments: parts[int(m[1])],
                          yaml.safe_dump(appset["spec"]["template"]))
            text = text.replace("{{ .path.basename }}", segments[-1]).replace("{{ .path.path }}",
                                                                               folder)
            assert "{{" not in text, text
            apps.append(yaml.safe_load(text))
    return apps


def test_argocd_objects_match_the_argo_cd_schema():
    objects = argocd_objects()
    assert sorted(o["kind"] for o in objects) == ["AppProject", "Application", "Application",
                                                  "ApplicationSet", "ApplicationSet"]
    report = crds.validate(objects)
    assert sum(line.startswith("ok ") for line in report) == len(objects)


def test_argocd_schema_check_rejects_a_wrong_type():
    broken = []
    for obj in argocd_objects():
        if obj["kind"] == "AppProject":
            continue
        broken.append(copy.deepcopy(obj))
        spec = broken[-1]["spec"]["template"]["spec"] if obj["kind"] == "ApplicationSet" else (
            broken[-1]["spec"])
        spec["syncPolicy"]["automated"]["prune"] = "yes"
    with pytest.raises(CommandError) as err:
        crds.validate(broken)  # one run of the checker; each object is judged on its own
    failed = [line for line in str(err.value).splitlines() if line.startswith("FAIL ")]
    assert len(failed) == len(broken) == 4
    for obj, line in zip(sorted(broken, key=lambda o: (o["kind"], o["metadata"]["name"])),
                         sorted(failed), strict=True):
        assert f"{obj['kind']}/{obj['metadata']['name']}: " in line, line
        assert line.endswith("/syncPolicy/automated/prune must be boolean"), line


def test_crd_check_rejects_a_kind_it_has_no_schema_for():
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "stray"}}
    with pytest.raises(CommandError, match="ConfigMap/stray: no CRD schema"):
        crds.validate([config_map])


def test_the_applicationset_makes_one_application_per_environment_and_model():
    apps = generated_applications(ROOT, "gitops-ml-models")
    assert [(a["metadata"]["name"], a["spec"]["source"]["path"]) for a in apps] == sorted(
        (f"gitops-ml-{env}-{model}", f"environments/{env}/{model}") for env, model in OVERLAYS)
    for app in apps:
        spec = app["spec"]
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        env = app["metadata"]["labels"]["gitops-ml/environment"]
        assert spec["destination"]["namespace"] == f"gitops-ml-{env}"
        # Argo CD generates Application names: they must be DNS labels.
        assert len(app["metadata"]["name"]) <= 63


def test_adding_a_model_is_two_files_per_environment_and_changes_no_argo_cd_object(two_model_envs):
    before = argocd_objects(ROOT)
    assert argocd_objects(two_model_envs) == before
    written = sorted(p.relative_to(two_model_envs).as_posix()
                     for p in (two_model_envs / "environments").rglob("*")
                     if p.is_file() and OTHER in p.parts)
    assert written == sorted(f"environments/{env}/{OTHER}/{name}" for env in ENVS
                             for name in ("kustomization.yaml", "model.yaml"))
    names = {a["metadata"]["name"] for a in generated_applications(two_model_envs, "gitops-ml-models")}
    assert names == {f"gitops-ml-{env}-{m}" for env in ENVS for m in (MODEL, OTHER)}


def test_each_environment_gets_one_database_upkeep_application_whatever_its_models(two_model_envs):
    apps = generated_applications(two_model_envs, "gitops-ml-databases")
    assert [(a["metadata"]["name"], a["spec"]["source"]["path"],
             a["spec"]["destination"]["namespace"]) for a in apps] == sorted(
        (f"gitops-ml-database-{env}", f"environments/shared/{env}/database", f"gitops-ml-{env}")
        for env in ENVS)
    for app in apps:
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    names = [a["metadata"]["name"] for a in generated_applications(two_model_envs)]
    assert len(names) == len(set(names))


NAMESPACED_APPS = {
    "pipeline": ("pipelines/argo", "gitops-ml-pipeline"),
    "monitoring": ("environments/monitoring", "monitoring"),
}


@pytest.mark.parametrize("name", NAMESPACED_APPS)
def test_argocd_application_syncs_its_folder_automatically_with_prune_and_self_heal(name):
    path, namespace = NAMESPACED_APPS[name]
    app = next(o for o in argocd_objects() if o["metadata"]["name"] == f"gitops-ml-{name}")
    spec = app["spec"]
    assert spec["source"]["path"] == path
    assert spec["destination"]["namespace"] == namespace
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    kustomization = yaml.safe_load((ROOT / path / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == namespace


def _all_applications(repo: Path) -> list[dict]:
    return generated_applications(repo) + _by_kind(argocd_objects(repo), "Application")


def test_argocd_project_admits_exactly_what_its_applications_render_and_nothing_cluster_wide(
        two_model_envs):
    project = _one(argocd_objects(), "AppProject")["spec"]
    # No Namespace, CRD or ClusterRole: the namespaces exist before Argo CD syncs into them.
    assert project.get("clusterResourceWhitelist") == []
    assert not any("CreateNamespace=true" in a["spec"]["syncPolicy"].get("syncOptions", [])
                   for a in _all_applications(two_model_envs))
    allowed = {(k["group"], k["kind"]) for k in project["namespaceResourceWhitelist"]}
    rendered_kinds = set()
    for app in _all_applications(two_model_envs):
        assert app["spec"]["project"] == "gitops-ml"
        destination = app["spec"]["destination"]
        assert {"server": destination["server"], "namespace": destination["namespace"]} in (
            project["destinations"])
        path = app["spec"]["source"]["path"]  # pipelines/argo is not in the copy
        objects = manifests.load((two_model_envs if (two_model_envs / path).is_dir() else ROOT) / path)
        assert objects
        for obj in objects:
            assert obj["metadata"].get("namespace") == destination["namespace"], obj["kind"]
            group = obj["apiVersion"].rpartition("/")[0]
            rendered_kinds.add((group, obj["kind"]))
    assert rendered_kinds == allowed


# --- one model's workload --------------------------------------------------------------------

def test_changing_the_pin_changes_the_configmap_name_the_deployment_mounts(tmp_path):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    overlay = tmp_path / "environments" / "staging" / MODEL

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

    assert empty_name.startswith(f"{MODEL}-model-pin-") and v2_name.startswith(
        f"{MODEL}-model-pin-")
    assert len({empty_name, v2_name, v3_name}) == 3
    assert Pin.parse(v2_text).model.version == 2
    # Same pin, same name: re-rendering does not roll pods for nothing.
    _pinned("staging", 2).write(overlay / "model.yaml")
    assert mounted_pin()[0] == v2_name


def _normalised(objects: list[dict], env: str) -> list[dict]:
    # Remove exactly what may differ between environments; the rest must be identical.
    # Each may deliver by its own strategy (production by canary: Argo Rollouts objects, the HPA
    # scaling the Rollout, and the label saying so).
    text = (yaml.safe_dump_all(objects, sort_keys=True).replace(f"gitops-ml-{env}", "NS")
            .replace(f"gitops-ml/environment: {env}", "gitops-ml/environment: ENV"))
    text = re.sub(r"gitops-ml/release-strategy: \S+", "gitops-ml/release-strategy: S", text)
    out = []
    for obj in yaml.safe_load_all(text):
        if obj["kind"] == "ConfigMap" and "-model-pin-" in obj["metadata"]["name"]:
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


def test_environments_differ_only_in_namespace_replicas_pin_and_delivery(rendered):
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
    # The image by digest, from environments/shared/<env>/image (no release yet: all zeros).
    assert container["image"] == f"{image.SOURCE}@{image.UNRELEASED}"
    assert pod["initContainers"][0]["image"] == container["image"]
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
                 "ServiceAccount"):
        assert _one(objects, kind)["metadata"]["namespace"] == f"gitops-ml-{env}"
    assert _one(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == _one(objects, "ServiceAccount")["metadata"]["name"]


def test_environments_hold_no_secrets_and_no_deprecated_patch_fields(rendered, upkeep):
    for env in ENVS:
        assert not _by_kind(rendered[env] + upkeep[env], "Secret")
    for kustomization in (ROOT / "environments").rglob("kustomization.yaml"):
        data = yaml.safe_load(kustomization.read_text())
        assert "patchesStrategicMerge" not in data and "patchesJson6902" not in data, kustomization


# --- several models ----------------------------------------------------------------------------

def _selectors(obj: dict) -> list[dict]:
    spec = obj.get("spec", {})
    kind = obj["kind"]
    if kind == "Service":
        return [spec["selector"]]
    if kind == "NetworkPolicy":
        return [spec["podSelector"]["matchLabels"]]
    if kind in ("Deployment", "Rollout", "PodDisruptionBudget"):
        return [spec["selector"]["matchLabels"]]
    return []


@pytest.mark.parametrize("env", ENVS)
def test_models_of_one_environment_share_no_object_and_select_only_their_own_pods(two_model_envs,
                                                                                 env):
    by_model = {m: manifests.documents(render(two_model_envs, env, m)) for m in (MODEL, OTHER)}
    assert manifests.shared_names({m: objs for m, objs in by_model.items()}) == []
    for model, objects in by_model.items():
        names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        for obj in objects:
            assert obj["metadata"]["name"].startswith(f"{model}-"), obj["metadata"]["name"]
            assert obj["metadata"]["labels"][MODEL_LABEL] == model
            for selector in _selectors(obj):
                assert selector.get(MODEL_LABEL) == model, (obj["kind"], selector)
        pod_labels = _one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
        assert pod_labels[MODEL_LABEL] == model
        # Every name a workload uses is one of this model's own objects.
        hpa = _one(objects, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        assert (hpa["kind"], hpa["name"]) in names
        pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
        for rollout in _by_kind(objects, "Rollout"):
            ref = rollout["spec"]["workloadRef"]
            assert (ref["kind"], ref["name"]) in names
            for template in rollout["spec"]["strategy"]["canary"]["analysis"]["templates"]:
                assert ("AnalysisTemplate", template["templateName"]) in names


def test_the_manifests_check_refuses_two_models_rendering_the_same_object(two_model_envs):
    overlay = two_model_envs / "environments" / "staging" / OTHER / "kustomization.yaml"
    overlay.write_text(overlay.read_text().replace(f"namePrefix: {OTHER}-", f"namePrefix: {MODEL}-"))
    with pytest.raises(CommandError, match="rendered by more than one overlay") as info:
        manifests.check_all(two_model_envs)
    assert f"Deployment gitops-ml-staging/{MODEL}-gitops-ml: environments/staging/{MODEL}, " \
           f"environments/staging/{OTHER}" in str(info.value)


@pytest.mark.parametrize("env", ENVS)
def test_promoting_one_model_leaves_the_other_models_manifests_byte_for_byte(two_model_envs, env):
    other_before = render(two_model_envs, env, OTHER)
    model_before = render(two_model_envs, env, MODEL)
    _pinned(env, 2).write(two_model_envs / pins.relpath(env, MODEL))
    assert render(two_model_envs, env, OTHER) == other_before
    assert render(two_model_envs, env, MODEL) != model_before
    # ... and the other way round.
    model_after = render(two_model_envs, env, MODEL)
    _pinned(env, 1, OTHER).write(two_model_envs / pins.relpath(env, OTHER))
    assert render(two_model_envs, env, MODEL) == model_after


# --- adding a model ----------------------------------------------------------------------------

def test_add_model_writes_an_overlay_and_an_empty_pin_in_every_environment(two_model_envs):
    for env in ENVS:
        folder = two_model_envs / "environments" / env / OTHER
        assert (folder / "kustomization.yaml").read_text() == environments.overlay_text(env, OTHER)
        assert Pin.read(folder / "model.yaml") == Pin(environment=env)
    assert pins.models(two_model_envs, "production") == [MODEL, OTHER]


@pytest.mark.parametrize(("name", "message"), [
    ("Fraud", "is not a DNS-1123 label"),
    ("x" * 41, "longer than 40 characters"),
    (MODEL, "staging already has model 'churn'"),
])
def test_add_model_refuses_and_writes_nothing(tmp_path, name, message):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(CommandError, match=message):
        environments.add_model(tmp_path, name)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_add_model_refuses_an_environment_without_its_shared_component(tmp_path):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    (tmp_path / "environments" / "qa" / MODEL).mkdir(parents=True)
    Pin(environment="qa").write(tmp_path / "environments" / "qa" / MODEL / "model.yaml")
    with pytest.raises(CommandError, match="environment qa has no environments/shared/qa/"):
        environments.add_model(tmp_path, OTHER)
    assert not (tmp_path / "environments" / "staging" / OTHER).exists()


# --- the checks command ------------------------------------------------------------------------

# The whole `mlops manifests` run (every overlay, strategy and CRD): `make test` runs it; the
# inner loop has each piece's own test below and above.
@pytest.mark.slow
def test_manifests_command_checks_every_overlay_and_the_argocd_objects(capsys):
    assert manifests.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    checked = "renders, passes kubernetes-validate, images by digest"
    assert out[:4] == [f"ok  environments/staging/churn: {checked}",
                       f"ok  environments/production/churn: {checked}",
                       f"ok  environments/shared/staging/database: {checked}",
                       f"ok  environments/shared/production/database: {checked}"]
    # How each model is released, and every strategy rendered and validated in each environment.
    assert "ok  production/churn: canary (environments/shared/production/release/" \
           "kustomization.yaml)" in out
    assert sum(line.startswith("ok  production by ") for line in out) == 5
    assert out[-1] == "ok  environments/argocd: 5 objects match the Argo CD schema"


# Two `npm ci` runs into a fresh folder: a set-up check for `make test`, not the inner loop.
@pytest.mark.slow
def test_crd_schema_checker_installs_once_from_its_lock_file_even_when_raced(tmp_path):
    # What a fresh machine does, with two test processes starting at once: `npm ci` from
    # tools/crd-validate/package-lock.json into one folder, never into the repository.
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm missing")
    code = "import sys; from pathlib import Path; from pipelines.checks import crds; " \
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


# --- secrets, the database, the network ---------------------------------------------------------

DATABASE_URL = {"name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "gitops-ml-database", "key": "DATABASE_URL"}}}


def _pod(obj: dict) -> dict:
    spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return spec["template"]["spec"]


@pytest.mark.parametrize("env", ENVS)
def test_the_service_takes_its_database_and_auth_settings_only_from_required_secrets(rendered,
                                                                                     env):
    pod = _pod(_one(rendered[env], "Deployment"))
    service = pod["containers"][0]
    # Required: without the Secret (or the key) the pod does not start.
    assert DATABASE_URL in service["env"]
    assert {"secretRef": {"name": "gitops-ml-auth"}} in service["envFrom"]
    settings = next(o for o in _by_kind(rendered[env], "ConfigMap")
                    if o["metadata"]["name"].startswith(f"{MODEL}-service-settings"))
    assert not {"DATABASE_URL", "API_KEYS", "JWT_SECRET", "JWT_PUBLIC_KEY"} & set(settings["data"])


def test_anonymous_serving_is_never_switched_on_by_the_manifests(rendered, upkeep):
    for env in ENVS:
        text = yaml.safe_dump_all(rendered[env] + upkeep[env])
        assert "ALLOW_ANONYMOUS" not in text
    for path in (ROOT / "environments").rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".env"):
            assert "ALLOW_ANONYMOUS=" not in path.read_text() and \
                "name: ALLOW_ANONYMOUS" not in path.read_text(), path


@pytest.mark.parametrize("env", ENVS)
def test_the_schema_is_migrated_before_the_service_starts_in_every_pod(rendered, env):
    pod = _pod(_one(rendered[env], "Deployment"))
    [migrate] = pod["initContainers"]
    assert [*migrate["command"], *migrate["args"]] == ["python", "-m", "contracts.prediction_log",
                                                       "upgrade"]
    assert DATABASE_URL in migrate["env"]
    assert "envFrom" not in migrate  # the API keys stay with the service
    assert migrate["image"] == pod["containers"][0]["image"]
    assert migrate["securityContext"] == pod["containers"][0]["securityContext"]


def test_one_prune_cronjob_per_environment_whatever_its_models(two_model_envs):
    for env in ENVS:
        models = [manifests.documents(render(two_model_envs, env, m)) for m in (MODEL, OTHER)]
        assert not any(_by_kind(objects, "CronJob") for objects in models)
        [cronjob] = _by_kind(render_upkeep(two_model_envs, env), "CronJob")
        assert cronjob["metadata"]["namespace"] == f"gitops-ml-{env}"
        pod = _pod(cronjob)
        [prune] = pod["containers"]
        assert [*prune["command"], *prune["args"]] == ["python", "-m",
                                                       "contracts.prediction_log", "prune"]
        assert prune["env"][0] == DATABASE_URL and "envFrom" not in prune
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        # Same image as the environment's models, non-root, read-only, no API token.
        service = _pod(_one(models[0], "Deployment"))["containers"][0]
        assert prune["image"] == service["image"]
        assert prune["securityContext"] == service["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False


def test_one_image_file_sets_the_image_of_every_workload_of_an_environment(tmp_path):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    digest = "sha256:" + "ab" * 32
    (tmp_path / image.relpath("staging")).write_text(
        image.text("staging", image.Image("ghcr.io/acme/gitops-ml-service", digest, "abc1234")))
    staging = manifests.documents(render(tmp_path, "staging", MODEL)) + render_upkeep(
        tmp_path, "staging")
    assert {c["image"] for o in staging for c in manifests.containers(o)} == {
        f"ghcr.io/acme/gitops-ml-service:abc1234@{digest}"}
    assert {c["image"] for o in manifests.documents(render(tmp_path, "production", MODEL))
            for c in manifests.containers(o)} == {f"{image.SOURCE}@{image.UNRELEASED}"}


def test_the_manifests_check_refuses_an_image_by_tag(tmp_path):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    path = tmp_path / image.relpath("production")
    path.write_text(path.read_text().replace(f"digest: {image.UNRELEASED}", "newTag: 0.1.0"))
    with pytest.raises(CommandError, match="runs images by tag, not by digest") as info:
        manifests.check_all(tmp_path)
    assert "Deployment/churn-gitops-ml migrate: ghcr.io/OWNER/gitops-ml-service:0.1.0" in str(
        info.value)


def _peers(rule: dict, side: str) -> list[dict]:
    return rule.get(side) or []


def _network_patch_values(repo: Path = ROOT) -> list[dict]:
    component = yaml.safe_load((repo / "environments/base/network/kustomization.yaml").read_text())
    return [yaml.safe_load(p["patch"])[0]["value"] for p in component["patches"]]


@pytest.mark.parametrize("env", ENVS)
def test_network_policies_admit_exactly_the_peers_named_in_the_network_component(rendered, upkeep,
                                                                                 env):
    declared = _network_patch_values()
    service = _one(rendered[env], "NetworkPolicy")["spec"]
    database = _one(upkeep[env], "NetworkPolicy")["spec"]
    for policy in (service, database):
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        # A rule without peers would admit everyone: every rule names its peers, and each rule
        # is one written in environments/base/network, unchanged (Kustomize adds no label).
        for rule in policy["ingress"] + policy["egress"]:
            assert _peers(rule, "from") or _peers(rule, "to"), rule
            assert rule in declared, rule
    # In: only the ingress controller's and the monitoring namespace, to the API port.
    [ingress] = service["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for p in ingress["from"]] == ["ingress-nginx", "monitoring"]
    assert all(set(p) == {"namespaceSelector"} for p in ingress["from"])
    # Out: DNS, the database, MLflow; the upkeep: DNS and the database, and nothing comes in.
    ports = lambda policy: [sorted(p["port"] for p in r["ports"]) for r in policy["egress"]]
    assert ports(service) == [[53, 53], [5432], [5000]]
    assert ports(database) == [[53, 53], [5432]] and database["ingress"] == []
    pod_labels = _one(rendered[env], "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["podSelector"]["matchLabels"].items() <= pod_labels.items()
    cron_pod = _one(upkeep[env], "CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    assert database["podSelector"]["matchLabels"].items() <= cron_pod["metadata"]["labels"].items()


def test_a_peer_written_with_match_labels_would_be_changed_by_kustomize(tmp_path):
    # Why the network component selects pods with matchExpressions: Kustomize adds the model's
    # selector labels to every matchLabels of a NetworkPolicy peer, so that peer would select
    # no database pod at all. The check above sees it.
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    path = tmp_path / "environments/base/network/kustomization.yaml"
    path.write_text(path.read_text().replace(
        "matchExpressions:\n                  - {key: cnpg.io/cluster, operator: In, values: "
        "[gitops-ml-db]}", "matchLabels:\n                  cnpg.io/cluster: gitops-ml-db"))
    declared = _network_patch_values(tmp_path)
    policy = _one(manifests.documents(render(tmp_path, "staging", MODEL)), "NetworkPolicy")
    [database] = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == 5432]
    assert database not in declared
    assert database["to"][0]["podSelector"]["matchLabels"][MODEL_LABEL] == MODEL
