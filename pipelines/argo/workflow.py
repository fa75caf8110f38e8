"""Build the Argo WorkflowTemplate `churn-pipeline` from dvc.yaml with hera.

dvc.yaml stays the one definition of the pipeline: every stage becomes a container step that
runs the stage's own `cmd` (interpolated from params.yaml exactly as `dvc repro` does) in the
project image, on a checkout of the repository at the requested revision. A stage's outputs
become Argo artifacts and reach the later stages that list them as dependencies, at the same
paths, so the modules cannot tell Argo from a laptop. A last step runs `mlops register`, which
only accepts a model whose gate passed. The generated YAML is committed beside this module
(`python -m pipelines.argo` regenerates it; a test fails when the two drift).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hera.workflows import (
    DAG,
    Artifact,
    ConfigMapEnvFrom,
    Container,
    EmptyDirVolume,
    Env,
    GitArtifact,
    Parameter,
    Resources,
    RetryStrategy,
    S3Artifact,
    SecretEnvFrom,
    Task,
    WorkflowTemplate,
)
from hera.workflows.models import TTLStrategy

from pipelines.errors import CommandError

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(__file__).with_name("churn-pipeline.yaml")
NAME = "churn-pipeline"
WORKDIR = "/workspace/repo"
SOURCE_ARTIFACT = "source-data"
# Settings and credentials of the registry and artifact store, created outside git.
SETTINGS = "gitops-ml-pipeline"
# Heavier stages get more room; the others fit the default.
RESOURCES = {
    "train": Resources(cpu_request=2, memory_request="4Gi", memory_limit="8Gi"),
    "evaluate": Resources(cpu_request=1, memory_request="2Gi", memory_limit="4Gi"),
}
DEFAULT_RESOURCES = Resources(cpu_request="500m", memory_request="1Gi", memory_limit="2Gi")
_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z0-9_.\-]+)\s*\}")


@dataclass(frozen=True)
class Stage:
    """One dvc.yaml stage, interpolated: its command, the paths it reads and writes."""

    name: str
    cmd: list[str]
    deps: list[str]
    outs: list[str]


def _lookup(params: dict, key: str) -> Any:
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise CommandError(f"dvc.yaml uses ${{{key}}}, which params.yaml does not define")
        value = value[part]
    return value


def _interpolate(text: str, params: dict) -> str:
    return _INTERPOLATION.sub(lambda m: str(_lookup(params, m.group(1))), text)


def _paths(entries: list) -> list[str]:
    # dvc.yaml lists a path either bare or as a one-key mapping holding its options.
    return [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries or []]


def stages(repo: Path = ROOT) -> list[Stage]:
    """The stages of repo/dvc.yaml in file order, interpolated with repo/params.yaml."""
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    result = []
    for name, spec in (dvc.get("stages") or {}).items():
        if "foreach" in spec or "matrix" in spec:
            raise CommandError(f"stage {name}: foreach/matrix stages are not supported here")
        cmd = spec["cmd"] if isinstance(spec["cmd"], str) else " && ".join(spec["cmd"])
        outs = _paths(spec.get("outs")) + _paths(spec.get("metrics")) + _paths(spec.get("plots"))
        result.append(Stage(
            name=name,
            cmd=shlex.split(_interpolate(cmd, params)),
            deps=[_interpolate(d, params) for d in _paths(spec.get("deps"))],
            outs=[_interpolate(o, params) for o in outs],
        ))
    return result


def artifact_name(path: str) -> str:
    """Argo artifact name of a path: data/split/train.parquet -> data-split-train-parquet."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


class StageContainer(Container):
    """A container template whose container is named `main`, the name Argo gives it anyway.

    The Kubernetes Container schema (and so the WorkflowTemplate CRD schema) requires a name.
    """

    def _build_container(self):
        built = super()._build_container()
        built.name = "main"
        return built


def _container(name: str, command: list[str], inputs: list, outputs: list) -> Container:
    return StageContainer(
        name=name,
        image="{{workflow.parameters.image}}",
        command=command,
        working_dir=WORKDIR,
        inputs=[GitArtifact(name="repo", path=WORKDIR, repo="{{workflow.parameters.repo}}",
                            revision="{{workflow.parameters.revision}}", depth=1)] + inputs,
        outputs=outputs,
        env=[Env(name="MLFLOW_DISABLE_TELEMETRY", value="true"),
             Env(name="DVC_NO_ANALYTICS", value="1"),
             Env(name="DO_NOT_TRACK", value="1")],
        env_from=[ConfigMapEnvFrom(name=SETTINGS, optional=True),
                  SecretEnvFrom(name=SETTINGS, optional=True)],
        resources=RESOURCES.get(name, DEFAULT_RESOURCES),
        # Infrastructure errors are retried; a failed gate (exit code 1) is not.
        retry_strategy=RetryStrategy(limit=2, retry_policy="OnError"),
        volumes=[EmptyDirVolume(name="workspace", mount_path="/workspace")],
    )


def _handoff(path: str, producer: str | None) -> tuple[Artifact, Artifact]:
    """The input artifact placing `path` in the checkout, and the task argument that feeds it:
    the output of stage `producer`, or (None) the source data, which is not in git but in the
    artifact store (see the template's arguments)."""
    if producer is None:
        name, source = SOURCE_ARTIFACT, f"{{{{inputs.artifacts.{SOURCE_ARTIFACT}}}}}"
    else:
        name = artifact_name(path)
        source = f"{{{{tasks.{producer}.outputs.artifacts.{name}}}}}"
    return Artifact(name=name, path=f"{WORKDIR}/{path}"), Artifact(name=name, from_=source)


def build(repo: Path = ROOT) -> WorkflowTemplate:
    """The WorkflowTemplate running repo's dvc.yaml stages, then registration, as one DAG."""
    all_stages = stages(repo)
    if not all_stages:
        raise CommandError("dvc.yaml has no stages")
    produced: dict[str, str] = {}  # output path -> stage that writes it
    templates: list[Container] = []
    tasks: list[Task] = []
    params = yaml.safe_load((repo / "params.yaml").read_text())
    source_path = _interpolate("${ingest.source}", params)
    for stage in all_stages:
        inputs, arguments, depends = [], [], []
        for dep in stage.deps:
            producer = produced.get(dep)
            if producer is None and dep != source_path:
                continue  # in git: the checkout has it
            artifact, argument = _handoff(dep, producer)
            inputs.append(artifact)
            arguments.append(argument)
            if producer is not None and producer not in depends:
                depends.append(producer)
        outputs = [Artifact(name=artifact_name(o), path=f"{WORKDIR}/{o}") for o in stage.outs]
        for out in stage.outs:
            produced[out] = stage.name
        templates.append(_container(stage.name, stage.cmd, inputs, outputs))
        tasks.append(Task(name=stage.name, template=stage.name, arguments=arguments,
                          depends=" && ".join(depends) or None))

    # Registration sees the source and every output at its dvc.yaml path, as after `dvc repro`.
    # `dvc commit` records this run's hashes in dvc.lock first: `mlops register` refuses a gate
    # verdict that dvc.lock does not vouch for, and the data hashes it tags come from there.
    handoffs = [_handoff(source_path, None)] + [_handoff(p, s) for p, s in produced.items()]
    templates.append(_container(
        "register", ["sh", "-c", "dvc commit --force --quiet && python -m pipelines.cli register"],
        [artifact for artifact, _ in handoffs], []))
    # It waits for every stage it takes an output from, not only the gate (export runs beside it).
    producers = [s.name for s in all_stages if s.name in set(produced.values())]
    tasks.append(Task(name="register", template="register", arguments=[arg for _, arg in handoffs],
                      depends=" && ".join(producers)))

    dag = DAG(name="pipeline", tasks=tasks,
              inputs=[Artifact(name=SOURCE_ARTIFACT)])
    return WorkflowTemplate(
        name=NAME,
        labels={"app.kubernetes.io/name": "gitops-ml", "app.kubernetes.io/part-of": "gitops-ml",
                "app.kubernetes.io/component": "pipeline"},
        annotations={"workflows.argoproj.io/description":
                     f"dvc.yaml stages ({', '.join(s.name for s in all_stages)}) "
                     "then mlops register"},
        entrypoint="pipeline",
        service_account_name="gitops-ml-pipeline",
        arguments=[
            Parameter(name="repo", value="https://github.com/OWNER/gitops-ml.git",
                      description="repository to check out"),
            Parameter(name="revision", value="main",
                      description="commit to train; pass a sha so the run is reproducible"),
            Parameter(name="image", value="ghcr.io/OWNER/gitops-ml-service:0.1.0",
                      description="project image (immutable tag) with the Python dependencies"),
            S3Artifact(name=SOURCE_ARTIFACT, key="datasets/telco_churn.csv"),
        ],
        ttl_strategy=TTLStrategy(seconds_after_completion=7 * 24 * 3600),
        templates=[dag, *templates],
    )


def render(repo: Path = ROOT) -> str:
    """The committed YAML of the WorkflowTemplate built from repo's dvc.yaml."""
    header = ("# Generated by `python -m pipelines.argo` (make argo-workflow) from dvc.yaml and\n"
              "# pipelines/argo/workflow.py. Do not edit: a test fails when the two drift.\n")
    return header + build(repo).to_yaml()
