"""Release strategies chosen in git: each renders what it promises, validates against
kubernetes-validate and the Argo Rollouts CRD schema, matches its golden file, and is read back
by `mlops` from the very Kustomize files that render it; a model's own strategy or a change of
strategy touches nothing else."""
from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from gitops_fixtures import git

from contracts.pin import ABTest, Challenger, Lineage, ModelRef, Pin, Promotion, Unit
from pipelines.checks import crds, manifests
from pipelines.errors import CommandError
from pipelines.gitops import environments, pins
from pipelines.release import strategy

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "strategies"
MODEL, OTHER = "churn", "housing"
NAME = f"{MODEL}-gitops-ml"
WHEN = Promotion(by="Ada <ada@example.com>", at=datetime(2026, 1, 2, tzinfo=UTC))

pytest_plugins = ("gitops_fixtures",)
pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")


def ref(version: int, model: str = MODEL) -> ModelRef:
    return ModelRef(name=model, version=version, uri=f"models:/{model}/{version}",
                    sha256=f"{version:x}" * 64)


def single(env: str, version: int = 3, model: str = MODEL) -> Pin:
    return Pin(environment=env, model=ref(version, model),
               lineage=Lineage(run_id="r" * 32, git_commit="c" * 40, data_hash="d" * 32),
               metrics={"accuracy": 0.8}, promoted=WHEN)


def ab(env: str) -> Pin:
    pin = single(env)
    return pin.model_copy(update={"ab": ABTest(
        split={"a": 90, "b": 10}, unit=Unit(header="X-Customer-Id", field="customerID"),
        b=Challenger(model=ref(4), lineage=pin.lineage, metrics={"accuracy": 0.82},
                     promoted=WHEN))})


@pytest.fixture()
def repo(tmp_path) -> Path:
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    return tmp_path


def render(repo: Path, env: str, model: str = MODEL) -> str:
    return manifests.render(repo / "environments" / env / model)


def objects(text: str) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in manifests.documents(text)}


def with_strategy(repo: Path, name: str, env: str = "production") -> str:
    """`churn` in `env` rendered under strategy `name`, pinned as the golden files show it."""
    strategy.write(repo, env, MODEL, name)
    (ab(env) if name == "ab" else single(env)).write(repo / pins.relpath(env, MODEL))
    return render(repo, env)


# --- every strategy -------------------------------------------------------------------------

@pytest.mark.parametrize("name", strategy.STRATEGIES)
def test_every_strategy_renders_what_its_golden_file_shows(repo, name):
    # On purpose changes: GOLDEN_UPDATE=1 pytest tests/test_strategies.py, then review the diff.
    text = with_strategy(repo, name)
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("GOLDEN_UPDATE"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("name", strategy.STRATEGIES)
def test_every_strategy_passes_kubernetes_validate_and_the_argo_rollouts_crd_schema(repo, name):
    text = with_strategy(repo, name)
    manifests.validate_kubernetes(text, label=name)
    custom = crds.custom_resources(manifests.documents(text))
    if name in ("canary", "blue-green"):
        report = crds.validate(custom)
        assert sum(line.startswith("ok ") for line in report) == len(custom) >= 2
    else:
        assert custom == []
    for obj in manifests.documents(text):
        assert obj["metadata"]["labels"]["gitops-ml/release-strategy"] == name, obj["kind"]


def test_the_crd_check_rejects_a_blue_green_rollout_with_a_wrong_type(repo):
    rollout = objects(with_strategy(repo, "blue-green"))[("Rollout", NAME)]
    rollout["spec"]["strategy"]["blueGreen"]["autoPromotionEnabled"] = "no"
    with pytest.raises(CommandError, match="autoPromotionEnabled must be boolean"):
        crds.validate([rollout])


def test_blue_green_previews_the_new_pods_waits_for_a_person_and_keeps_the_old_ones_warm(repo):
    found = objects(with_strategy(repo, "blue-green"))
    rollout = found[("Rollout", NAME)]["spec"]
    blue_green = rollout["strategy"]["blueGreen"]
    active, preview = (found[("Service", blue_green[k])] for k in ("activeService",
                                                                   "previewService"))
    assert active["metadata"]["name"] == NAME and preview["metadata"]["name"] == f"{NAME}-preview"
    # Both Services select this model's pods (Argo Rollouts adds the pod-template hash).
    assert preview["spec"]["selector"] == active["spec"]["selector"]
    assert active["spec"]["selector"]["gitops-ml/model"] == MODEL
    assert blue_green["autoPromotionEnabled"] is False
    pre, post = blue_green["prePromotionAnalysis"], blue_green["postPromotionAnalysis"]
    # The preview analysis reaches the preview through this model's (prefixed) Service.
    args = {a["name"]: a for a in pre["args"]}
    assert args["preview-service"]["value"] == f"{NAME}-preview"
    assert args["preview-hash"]["valueFrom"]["podTemplateHashValue"] == "Latest"
    pre_template = found[("AnalysisTemplate", pre["templates"][0]["templateName"])]["spec"]
    web = next(m for m in pre_template["metrics"] if "web" in m["provider"])
    assert web["provider"]["web"]["url"].startswith("http://{{args.preview-service}}.")
    assert web["provider"]["web"]["jsonPath"] == "{$.in_sync}"
    post_template = found[("AnalysisTemplate", post["templates"][0]["templateName"])]["spec"]
    # The old pods outlive the post-promotion analysis, so its failure switches back at once.
    longest = max(m["count"] * 60 for m in post_template["metrics"])
    assert blue_green["scaleDownDelaySeconds"] > longest
    for template in (pre_template, post_template):
        supplied = {a["name"] for a in (pre if template is pre_template else post)["args"]}
        for arg in template["args"]:
            assert "value" in arg or arg["name"] in supplied, arg["name"]
    hpa = found[("HorizontalPodAutoscaler", NAME)]["spec"]["scaleTargetRef"]
    assert (hpa["kind"], hpa["name"]) == ("Rollout", NAME)
    assert rollout["workloadRef"]["name"] == NAME and "template" not in rollout


def test_blue_greens_post_promotion_analysis_asks_what_the_canary_asks(repo):
    canary = objects(with_strategy(repo, "canary"))[("AnalysisTemplate", f"{NAME}-canary")]
    blue_green = objects(with_strategy(repo, "blue-green"))[
        ("AnalysisTemplate", f"{NAME}-promoted")]

    def queries(template: dict, arg: str) -> dict[str, str]:
        return {m["name"]: m["provider"]["prometheus"]["query"].replace(arg, "HASH")
                for m in template["spec"]["metrics"]}

    assert queries(blue_green, "args.new-hash") == queries(canary, "args.canary-hash")


@pytest.mark.parametrize("name", ["rolling", "shadow", "ab"])
def test_rolling_shadow_and_ab_update_the_deployment_itself(repo, name):
    found = objects(with_strategy(repo, name))
    assert not [k for k in found if k[0] in {"Rollout", "AnalysisTemplate"}]
    deployment = found[("Deployment", NAME)]["spec"]
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert found[("HorizontalPodAutoscaler", NAME)]["spec"]["scaleTargetRef"]["kind"] == \
        "Deployment"


def test_the_ab_strategy_mounts_the_pin_with_both_variants(repo):
    found = objects(with_strategy(repo, "ab"))
    config = next(o for (kind, name), o in found.items()
                  if kind == "ConfigMap" and name.startswith(f"{MODEL}-model-pin-"))
    pin = Pin.parse(config["data"]["model.yaml"])
    assert (pin.variant("a").version, pin.variant("b").version) == (3, 4)
    assert pin.ab.split == {"a": 90, "b": 10}


def test_changing_the_strategy_restarts_no_pod_and_keeps_the_pin(repo):
    def workload(text: str) -> tuple[dict, str]:
        found = objects(text)
        pod = found[("Deployment", NAME)]["spec"]["template"]
        return pod, next(n for k, n in found if k == "ConfigMap" and "-model-pin-" in n)

    seen = [workload(with_strategy(repo, name)) for name in strategy.STRATEGIES
            if name != "ab"]
    assert all(s == seen[0] for s in seen)


# --- where the strategy is chosen --------------------------------------------------------------

def test_the_repository_releases_staging_by_rolling_update_and_production_by_canary():
    for env, expected in (("staging", "rolling"), ("production", "canary")):
        choice = strategy.effective(ROOT, env, MODEL)
        assert (choice.strategy, choice.overridden) == (expected, False)
        assert choice.source == f"environments/shared/{env}/release/kustomization.yaml"
        path = strategy.release_dir(ROOT, env) / "kustomization.yaml"
        assert path.read_text() == strategy.release_component_text(env, expected)
    assert strategy.settings(ROOT, "staging").continuousDeployment is True
    assert strategy.settings(ROOT, "production").continuousDeployment is False
    assert strategy.check(ROOT)


def test_a_models_own_strategy_changes_only_that_models_render(repo):
    environments.add_model(repo, OTHER)
    other_before = render(repo, "production", OTHER)
    strategy.write(repo, "production", MODEL, "blue-green")
    assert strategy.effective(repo, "production", MODEL).overridden
    assert strategy.effective(repo, "production", OTHER) == strategy.effective(ROOT, "production",
                                                                                MODEL)
    assert render(repo, "production", OTHER) == other_before
    assert ("Service", f"{NAME}-preview") in objects(render(repo, "production"))
    # The environment's strategy moves every model that has none of its own.
    strategy.write(repo, "production", None, "rolling")
    assert strategy.effective(repo, "production", OTHER).strategy == "rolling"
    assert strategy.effective(repo, "production", MODEL).strategy == "blue-green"
    assert not [k for k in objects(render(repo, "production", OTHER)) if k[0] == "Rollout"]
    # --inherit writes back exactly the generated overlay.
    strategy.write(repo, "production", MODEL, None)
    overlay = repo / "environments" / "production" / MODEL / "kustomization.yaml"
    assert overlay.read_text() == environments.overlay_text("production", MODEL)


def test_a_strategy_file_that_names_none_or_two_strategies_is_refused(repo):
    path = strategy.release_dir(repo, "production") / "kustomization.yaml"
    path.write_text(path.read_text() + "  - ../../../base/blue-green\n")
    with pytest.raises(CommandError, match="exactly one of"):
        strategy.effective(repo, "production", MODEL)
    overlay = repo / "environments" / "staging" / MODEL / "kustomization.yaml"
    overlay.write_text(overlay.read_text().replace("../../shared/staging/release",
                                                   "../../base/fancy"))
    with pytest.raises(CommandError, match="applies no strategy"):
        strategy.effective(repo, "staging", MODEL)


def test_the_check_refuses_an_ab_pin_without_strategy_ab_and_unguarded_production_cd(repo):
    ab("production").write(repo / pins.relpath("production", MODEL))
    with pytest.raises(CommandError, match="runs an A/B test, but churn's strategy in "
                                           "production is canary"):
        strategy.check(repo)
    strategy.write(repo, "production", MODEL, "ab")
    assert strategy.check(repo)
    settings = strategy.release_dir(repo, "production") / "settings.yaml"
    settings.write_text(settings.read_text().replace("continuousDeployment: false",
                                                     "continuousDeployment: true"))
    with pytest.raises(CommandError, match="nothing guards its users"):
        strategy.check(repo)


def test_bad_release_settings_are_refused_naming_the_file(repo):
    settings = strategy.release_dir(repo, "staging") / "settings.yaml"
    settings.write_text(settings.read_text().replace("b: 10", "b: 20"))
    with pytest.raises(CommandError, match="(?s)staging/release/settings.yaml is not valid release "
                                           "settings.*add up to 100"):
        strategy.settings(repo, "staging")


# The whole `mlops manifests` run again: `make test` runs it; each strategy's render and
# schema check stay in the inner loop.
@pytest.mark.slow
def test_the_manifests_check_renders_every_strategy_of_every_environment():
    lines = manifests.check_strategies(ROOT)
    for env in ("staging", "production"):
        for name in strategy.STRATEGIES:
            assert any(line.startswith(f"ok  {env} by {name}:") for line in lines), (env, name)


# --- changing it through git --------------------------------------------------------------------

def test_mlops_strategy_is_a_one_file_commit_and_its_revert_restores_the_file(gitops_repo):
    path = gitops_repo.path / "environments" / "production" / MODEL / "kustomization.yaml"
    before = path.read_bytes()
    result = strategy.change(gitops_repo.path, "production", MODEL, "blue-green", here=True)
    assert (result.before, result.after) == ("canary", "blue-green")
    changed = git(gitops_repo.path, "diff-tree", "--no-commit-id", "--name-only", "-r",
                  result.commit).split()
    assert changed == [f"environments/production/{MODEL}/kustomization.yaml"]
    assert strategy.effective(gitops_repo.path, "production", MODEL).strategy == "blue-green"
    git(gitops_repo.path, "revert", "--no-edit", result.commit)
    assert path.read_bytes() == before
    # The environment's own strategy: also one file, on a branch of its own by default.
    env_change = strategy.change(gitops_repo.path, "staging", None, "canary")
    assert env_change.branch == "strategy/staging-canary"
    assert git(gitops_repo.path, "diff-tree", "--no-commit-id", "--name-only", "-r",
               env_change.commit).split() == ["environments/shared/staging/release/"
                                              "kustomization.yaml"]


def test_a_model_running_an_ab_test_cannot_leave_strategy_ab(gitops_repo):
    strategy.change(gitops_repo.path, "production", MODEL, "ab", here=True)
    ab("production").write(gitops_repo.path / pins.relpath("production", MODEL))
    git(gitops_repo.path, "commit", "-qam", "An A/B test by hand")
    with pytest.raises(CommandError, match="runs an A/B test in production: conclude it"):
        strategy.change(gitops_repo.path, "production", MODEL, None, here=True)
    with pytest.raises(CommandError, match="already uses ab"):
        strategy.change(gitops_repo.path, "production", MODEL, "ab", here=True)


def test_the_overlay_names_where_its_strategy_comes_from():
    text = yaml.safe_load(environments.overlay_text("production", MODEL, "shadow"))
    assert text["components"] == ["../../base/shadow", "../../shared/production"]


def test_mlops_strategy_prints_each_environments_strategy_and_settings(capsys, gitops_repo):
    from pipelines import cli

    assert cli.main(["strategy", "production", "--repo", str(ROOT)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("production: strategy canary (environments/shared/production/release); "
                      "continuous deployment off; A/B defaults 90/10, unit header X-Unit-Id")
    assert out[1:] == [f"  {MODEL}: canary"]
    assert cli.main(["strategy", "staging", "--model", MODEL, "--set", "ab", "--here",
                     "--repo", str(gitops_repo.path)]) == 0
    assert "strategy of churn in staging: rolling -> ab" in capsys.readouterr().out
    assert cli.main(["strategy", "staging", "--repo", str(gitops_repo.path)]) == 0
    assert f"  {MODEL}: ab (its own, environments/staging/{MODEL}/kustomization.yaml)" in \
        capsys.readouterr().out
    assert cli.main(["strategy", "staging", "--inherit", "--repo", str(gitops_repo.path)]) == 2
    assert "--inherit needs --model" in capsys.readouterr().err
