"""Build the Argo WorkflowTemplate `gitops-ml-pipeline` from dvc.yaml with hera.

dvc.yaml stays the one definition of the pipeline, and DVC itself resolves it (its `foreach`
over the declared models, its interpolation from params.yaml): every resolved stage, such as
`train@churn`, becomes a container step running that stage's own command in the project
image, on a checkout of the repository at the requested revision. A stage's outputs become
Argo artifacts and reach the later stages that list them as dependencies, at the same paths,
so the modules cannot tell Argo from a laptop. Each model gets one DAG (its stages, then
`mlops register NAME`, which only accepts a model whose gate passed); the entry DAG runs the
model named by the `model` parameter, or every model. The generated YAML is committed beside
this module (`python -m pipelines.argo` regenerates it; a test fails when the two drift).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

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
OUTPUT = Path(__file__).with_name("gitops-ml-pipeline.yaml")
NAME = "gitops-ml-pipeline"
WORKDIR = "/workspace/repo"
SOURCE_ARTIFACT = "source-data"
ALL = "all"
# Settings and credentials of the registry and artifact store, created outside git.
SETTINGS = "gitops-ml-pipeline"
# Heavier stages get more room; the others fit the default.
RESOURCES = {
    "train": Resources(cpu_request=2, memory_request="4Gi", memory_limit="8Gi"),
    "evaluate": Resources(cpu_request=1, memory_request="2Gi", memory_limit="4Gi"),
}
DEFAULT_RESOURCES = Resources(cpu_request="500m", memory_request="1Gi", memory_limit="2Gi")


@dataclass(frozen=True)
class Stage:
    """One stage as DVC resolves it: `train@churn` is stage `train` of model `churn`."""

    name: str
    cmd: list[str]
    deps: list[str]  # data and code paths (parameter files are in git)
    outs: list[str]

    @property
    def base(self) -> str:
        return self.name.partition("@")[0]

    @property
    def model(self) -> str:
        return self.name.partition("@")[2]


def stages(repo: Path = ROOT) -> list[Stage]:
    """Every stage of repo/dvc.yaml as DVC itself resolves it, in dvc.yaml order."""
    from dvc.dependency.param import ParamsDependency
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    try:
        with Repo(str(repo), uninitialized=True) as dvc:
            # Pipeline stages only: a `.dvc` file tracking data is not a step to run.
            resolved = [s for s in dvc.index.stages if isinstance(s, PipelineStage)]
    except DvcException as exc:
        raise CommandError(f"DVC cannot resolve {repo / 'dvc.yaml'}: {exc}") from exc
    out = []
    for stage in resolved:
        if "@" not in stage.name:
            raise CommandError(f"stage {stage.name}: every stage runs per model "
                               "(foreach: ${models})")
        cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
        out.append(Stage(
            name=stage.name,
            cmd=shlex.split(cmd),
            deps=[d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)],
            outs=[o.def_path for o in stage.outs]))
    return out


def artifact_name(path: str) -> str:
    """Argo artifact name of a path: data/churn/train.parquet -> data-churn-train-parquet."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def template_name(stage: Stage) -> str:
    """Argo template of a stage: train@churn -> train-churn."""
    return f"{stage.base}-{stage.model}"


class StageContainer(Container):
    """A container template whose container is named `main`, the name Argo gives it anyway.

    The Kubernetes Container schema (and so the WorkflowTemplate CRD schema) requires a name.
    """

    def _build_container(self):
        built = super()._build_container()
        built.name = "main"
        return built


def _container(name: str, base: str, command: list[str], inputs: list,
               outputs: list) -> Container:
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
        resources=RESOURCES.get(base, DEFAULT_RESOURCES),
        # Infrastructure errors are retried; a failed gate (exit code 1) is not.
        retry_strategy=RetryStrategy(limit=2, retry_policy="OnError"),
        volumes=[EmptyDirVolume(name="workspace", mount_path="/workspace")],
    )


def _handoff(path: str, producer: Stage | None) -> tuple[Artifact, Artifact]:
    """The input artifact placing `path` in the checkout, and the task argument that feeds it:
    the output of stage `producer`, or (None) the model's source data, which is not in git but
    in the artifact store (see the template's arguments)."""
    if producer is None:
        name, source = SOURCE_ARTIFACT, f"{{{{inputs.artifacts.{SOURCE_ARTIFACT}}}}}"
    else:
        name = artifact_name(path)
        source = f"{{{{tasks.{producer.base}.outputs.artifacts.{name}}}}}"
    return Artifact(name=name, path=f"{WORKDIR}/{path}"), Artifact(name=name, from_=source)


def source_of(model_stages: list[Stage]) -> str:
    """The model's source data: what its ingest stage reads that no stage writes and git
    does not hold (code lives in pipelines/)."""
    ingest = next((s for s in model_stages if s.base == "ingest"), None)
    data = [d for d in (ingest.deps if ingest else []) if not d.startswith("pipelines/")]
    if len(data) != 1:
        model = model_stages[0].model
        raise CommandError(f"ingest@{model} must read exactly one data file, reads {data}")
    return data[0]


def model_dag(model: str, model_stages: list[Stage]) -> tuple[DAG, list[Container]]:
    """One model's DAG (its stages, then registration) and the container templates it uses."""
    source = source_of(model_stages)
    produced: dict[str, Stage] = {}  # output path -> stage that writes it
    templates: list[Container] = []
    tasks: list[Task] = []
    for stage in model_stages:
        inputs, arguments, depends = [], [], []
        for dep in stage.deps:
            producer = produced.get(dep)
            if producer is None and dep != source:
                continue  # in git: the checkout has it
            artifact, argument = _handoff(dep, producer)
            inputs.append(artifact)
            arguments.append(argument)
            if producer is not None and producer.base not in depends:
                depends.append(producer.base)
        outputs = [Artifact(name=artifact_name(o), path=f"{WORKDIR}/{o}") for o in stage.outs]
        for out in stage.outs:
            produced[out] = stage
        templates.append(_container(template_name(stage), stage.base, stage.cmd, inputs, outputs))
        tasks.append(Task(name=stage.base, template=template_name(stage), arguments=arguments,
                          depends=" && ".join(depends) or None))

    # Registration sees the source and every output at its dvc.yaml path, as after `dvc repro`.
    # `dvc commit` records this run's hashes in dvc.lock first: `mlops register` refuses a gate
    # verdict that dvc.lock does not vouch for, and the data hashes it tags come from there.
    handoffs = [_handoff(source, None)] + [_handoff(p, s) for p, s in produced.items()]
    targets = " ".join(shlex.quote(s.name) for s in model_stages)
    register = f"register-{model}"
    templates.append(_container(
        register, "register",
        ["sh", "-c", f"dvc commit --force --quiet {targets} && "
                     f"python -m pipelines.cli register {shlex.quote(model)}"],
        [artifact for artifact, _ in handoffs], []))
    # It waits for every stage it takes an output from, not only the gate (export runs beside it).
    producers = list(dict.fromkeys(s.base for s in produced.values()))
    tasks.append(Task(name="register", template=register, arguments=[a for _, a in handoffs],
                      depends=" && ".join(producers)))
    return DAG(name=model, tasks=tasks, inputs=[Artifact(name=SOURCE_ARTIFACT)]), templates


def by_model(all_stages: list[Stage]) -> dict[str, list[Stage]]:
    """The resolved stages grouped by model, in dvc.yaml order."""
    grouped: dict[str, list[Stage]] = {}
    for stage in all_stages:
        grouped.setdefault(stage.model, []).append(stage)
    return grouped


def build(repo: Path = ROOT) -> WorkflowTemplate:
    """The WorkflowTemplate running repo's dvc.yaml stages and registration, per model."""
    models = by_model(stages(repo))
    if not models:
        raise CommandError("dvc.yaml has no stages")
    dags, templates, entry_tasks, sources = [], [], [], []
    for model, model_stages in models.items():
        dag, containers = model_dag(model, model_stages)
        dags.append(dag)
        templates += containers
        source = f"source-{model}"
        sources.append(S3Artifact(name=source, key=f"datasets/{source_of(model_stages)}"))
        entry_tasks.append(Task(
            name=model, template=model,
            arguments=[Artifact(name=SOURCE_ARTIFACT, from_=f"{{{{inputs.artifacts.{source}}}}}")],
            when=f"'{{{{workflow.parameters.model}}}}' == '{ALL}' || "
                 f"'{{{{workflow.parameters.model}}}}' == '{model}'"))
    entry = DAG(name="pipeline", tasks=entry_tasks,
                inputs=[Artifact(name=s.name) for s in sources])
    return WorkflowTemplate(
        name=NAME,
        labels={"app.kubernetes.io/name": "gitops-ml", "app.kubernetes.io/part-of": "gitops-ml",
                "app.kubernetes.io/component": "pipeline"},
        annotations={"workflows.argoproj.io/description":
                     f"dvc.yaml stages per model ({', '.join(models)}), then mlops register"},
        entrypoint="pipeline",
        service_account_name="gitops-ml-pipeline",
        arguments=[
            Parameter(name="model", value=ALL, enum=[ALL, *models],
                      description="the declared model to train, or all of them"),
            Parameter(name="repo", value="https://github.com/OWNER/gitops-ml.git",
                      description="repository to check out"),
            Parameter(name="revision", value="main",
                      description="commit to train; pass a sha so the run is reproducible"),
            Parameter(name="image", value="ghcr.io/OWNER/gitops-ml-service:0.1.0",
                      description="project image (immutable tag) with the Python dependencies"),
            *sources,
        ],
        ttl_strategy=TTLStrategy(seconds_after_completion=7 * 24 * 3600),
        templates=[entry, *dags, *templates],
    )


def render(repo: Path = ROOT) -> str:
    """The committed YAML of the WorkflowTemplate built from repo's dvc.yaml."""
    header = ("# Generated by `python -m pipelines.argo` (make argo-workflow) from dvc.yaml and\n"
              "# pipelines/argo/workflow.py. Do not edit: a test fails when the two drift.\n")
    return header + build(repo).to_yaml()
