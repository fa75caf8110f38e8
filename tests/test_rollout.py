"""Production's canary, per model: the rendered Rollout takes that model's Deployment's pods, is
scaled by that model's HPA, is judged by that model's AnalysisTemplate, and every custom resource
matches its CRD schema."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from project import call

from pipelines.checks import manifests

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")


MODEL = "churn"
NAME = f"{MODEL}-gitops-ml"


def render(overlay: str, root: Path = ROOT) -> dict[tuple[str, str], dict]:
    out = subprocess.run(["kubectl", "kustomize", str(root / "environments" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}


@pytest.fixture(scope="module")
def production() -> dict[tuple[str, str], dict]:
    return render(f"production/{MODEL}")


def test_rollout_takes_its_pods_from_the_production_deployment(production):
    rollout = production[("Rollout", NAME)]
    ref = rollout["spec"]["workloadRef"]
    deployment = production[(ref["kind"], ref["name"])]
    assert ref["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    assert ref["scaleDown"] == "progressively"
    assert "template" not in rollout["spec"], "the pod template lives only in the Deployment"
    # The Rollout's selector must select exactly the Deployment's pods.
    assert rollout["spec"]["selector"] == deployment["spec"]["selector"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert rollout["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert rollout["metadata"]["namespace"] == deployment["metadata"]["namespace"]


def test_autoscaler_scales_the_rollout_not_the_deployment(production):
    target = production[("HorizontalPodAutoscaler", NAME)]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": NAME}
    assert "replicas" not in production[("Rollout", NAME)]["spec"]


def test_canary_grows_in_steps_under_background_analysis(production):
    canary = production[("Rollout", NAME)]["spec"]["strategy"]["canary"]
    weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
    assert weights == sorted(weights) and weights[-1] < 100 and weights[0] <= 10
    assert any("pause" in s for s in canary["steps"])
    analysis = canary["analysis"]
    template = analysis["templates"][0]["templateName"]
    declared = production[("AnalysisTemplate", template)]["spec"]["args"]
    # Every arg without a default is supplied by the Rollout, and from the right place.
    supplied = {a["name"]: a for a in analysis["args"]}
    for arg in declared:
        assert "value" in arg or arg["name"] in supplied, arg["name"]
    assert supplied["canary-hash"]["valueFrom"]["podTemplateHashValue"] == "Latest"
    assert supplied["namespace"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_analysis_judges_error_rate_p99_latency_and_shadow_agreement(production):
    metrics = {m["name"]: m for m in
               production[("AnalysisTemplate", f"{NAME}-canary")]["spec"]["metrics"]}
    assert set(metrics) == {"error-rate", "p99-latency", "shadow-agreement"}
    for name, metric in metrics.items():
        query = metric["provider"]["prometheus"]["query"]
        # Only the canary's pods are judged.
        assert 'rollouts_pod_template_hash="{{args.canary-hash}}"' in query, name
        assert 'namespace="{{args.namespace}}"' in query, name
        assert metric["successCondition"].startswith("result[0]"), name
        assert metric["failureLimit"] == 0, name
    assert "status=~\"5..\"" in metrics["error-rate"]["provider"]["prometheus"]["query"]
    assert "histogram_quantile(0.99" in metrics["p99-latency"]["provider"]["prometheus"]["query"]


def test_staging_keeps_a_plain_deployment():
    staging = render(f"staging/{MODEL}")
    assert not [k for k in staging if k[0] in {"Rollout", "AnalysisTemplate"}]
    assert staging[("HorizontalPodAutoscaler", NAME)]["spec"]["scaleTargetRef"][
        "kind"] == "Deployment"


def test_each_models_canary_drives_only_that_models_deployment_and_analysis(tmp_path):
    # Without the Argo Rollouts name references (environments/base/canary/names.yaml) a second
    # model's Rollout would point at the first model's Deployment and AnalysisTemplate.
    from pipelines.gitops.environments import add_model

    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    add_model(tmp_path, "housing")
    for model in (MODEL, "housing"):
        objects = render(f"production/{model}", tmp_path)
        name = f"{model}-gitops-ml"
        rollout = objects[("Rollout", name)]["spec"]
        assert rollout["workloadRef"]["name"] == name
        assert [t["templateName"] for t in rollout["strategy"]["canary"]["analysis"][
            "templates"]] == [f"{name}-canary"]
        assert ("AnalysisTemplate", f"{name}-canary") in objects
        assert objects[("HorizontalPodAutoscaler", name)]["spec"]["scaleTargetRef"]["name"] == name
        assert rollout["selector"]["matchLabels"]["gitops-ml/model"] == model


def test_rollout_and_analysis_template_match_the_argo_rollouts_crd_schema():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm missing")
    proc = call(manifests.main, ["--crds", f"environments/production/{MODEL}",
                                 "environments/monitoring"], ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for kind in (f"Rollout/{NAME}", f"AnalysisTemplate/{NAME}-canary",
                 "PrometheusRule/gitops-ml", "PodMonitor/gitops-ml"):
        assert "ok   " in proc.stdout and kind in proc.stdout, kind


def test_crd_check_rejects_a_rollout_with_a_malformed_step(tmp_path, production):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm missing")
    rollout = production[("Rollout", NAME)]
    rollout["spec"]["strategy"]["canary"]["steps"][0] = {"setWeight": "ten percent"}
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump(rollout))
    proc = call(manifests.main, ["--crds", path], ROOT)
    assert proc.returncode == 1
    assert "setWeight must be integer" in proc.stderr
