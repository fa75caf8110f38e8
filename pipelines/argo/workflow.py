"""Build the Argo WorkflowTemplate `gitops-ml-pipeline` from dvc.yaml with hera.

dvc.yaml stays the one definition of the pipeline, and DVC itself resolves it (its `foreach`
over the declared models, its interpolation from params.yaml): every resolved stage, such as
`train@fraud`, becomes a container step running that stage's own command in the project
image, on a checkout of the repository at the requested revision. A stage's outputs become
Argo artifacts and reach the later stages that list them as dependencies, at the same paths,
so the modules cannot tell Argo from a laptop. Each model gets one DAG (its stages, then
`mlops register NAME`, which only accepts a model whose gate passed); the entry DAG runs the
model named by the `model` parameter, or every model. The generated YAML is committed beside
this module (`python -m pipelines.argo` regenerates it; a test fails when the two drift).

Hardening: every pod runs as uid 10001 with no privileges, a read-only root file system and
the runtime's default seccomp profile; the registry and artifact-store credentials (Secret
gitops-ml-pipeline) reach only the registration step, the one that needs them; and the image
and repository are fixed in the template, not parameters, so whoever may submit a run cannot
point those credentials at code of their choosing (they change by pull request, like
everything else). Only the model and the revision are chosen at submit time.
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
from hera.workflows.models import (
    Capabilities,
    PodSecurityContext,
    SeccompProfile,
    SecurityContext,
    TTLStrategy,
)

from pipelines.errors import CommandError

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(__file__).with_name("gitops-ml-pipeline.yaml")
NAME = "gitops-ml-pipeline"
WORKDIR = "/workspace/repo"
# Where the artifact store keeps the data files a model reads (its source and collected
# rows, which DVC versions outside git): under this prefix, at their paths in the repository.
DATA_PREFIX = "datasets"
ALL = "all"
# Settings and credentials of the registry and artifact store, created outside git.
SETTINGS = "gitops-ml-pipeline"
# What every run checks out and runs in; changed by pull request (see the docstring).
REPO_URL = "https://github.com/OWNER/gitops-ml.git"
IMAGE = "ghcr.io/OWNER/gitops-ml-pipeline:0.1.0"
UID = 10001
# Paths of the code in the checkout; anything else a model's ingest reads is data.
CODE = ("pipelines/", "contracts/")
# Heavier stages get more room; the others fit the default.
RESOURCES = {
    "train": Resources(cpu_request=2, memory_request="4Gi", memory_limit="8Gi"),
    "evaluate": Resources(cpu_request=1, memory_request="2Gi", memory_limit="4Gi"),
}
DEFAULT_RESOURCES = Resources(cpu_request="500m", memory_request="1Gi", memory_limit="2Gi")


@dataclass(frozen=True)
class Stage:
    """One stage as DVC resolves it: `train@fraud` is stage `train` of model `fraud`."""

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
    """Argo artifact name of a path: data/fraud/train.parquet -> data-fraud-train-parquet."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def template_name(stage: Stage) -> str:
    """Argo template of a stage: train@fraud -> train-fraud."""
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
               outputs: list, credentials: bool = False) -> Container:
    return StageContainer(
        name=name,
        image=IMAGE,
        command=command,
        working_dir=WORKDIR,
        inputs=[GitArtifact(name="repo", path=WORKDIR, repo=REPO_URL,
                            revision="{{workflow.parameters.revision}}", depth=1)] + inputs,
        outputs=outputs,
        env=[Env(name="MLFLOW_DISABLE_TELEMETRY", value="true"),
             Env(name="DVC_NO_ANALYTICS", value="1"),
             Env(name="DO_NOT_TRACK", value="1"),
             Env(name="HOME", value="/tmp")],
        # Only the step that registers talks to the registry and the artifact store.
        env_from=[ConfigMapEnvFrom(name=SETTINGS, optional=True),
                  SecretEnvFrom(name=SETTINGS, optional=True)] if credentials else None,
        resources=RESOURCES.get(base, DEFAULT_RESOURCES),
        security_context=SecurityContext(
            allow_privilege_escalation=False, read_only_root_filesystem=True,
            run_as_non_root=True, capabilities=Capabilities(drop=["ALL"])),
        # Infrastructure errors are retried; a failed gate (exit code 1) is not.
        retry_strategy=RetryStrategy(limit=2, retry_policy="OnError"),
        volumes=[EmptyDirVolume(name="workspace", mount_path="/workspace"),
                 EmptyDirVolume(name="tmp", mount_path="/tmp")],
    )


def _handoff(path: str, producer: Stage | None) -> tuple[Artifact, Artifact]:
    """The input artifact placing `path` in the checkout, and the task argument that feeds it:
    the output of stage `producer`, or (None) a data file from the artifact store, which the
    DAG receives as its own input (see the template's arguments)."""
    name = artifact_name(path)
    source = (f"{{{{inputs.artifacts.{name}}}}}" if producer is None
              else f"{{{{tasks.{producer.base}.outputs.artifacts.{name}}}}}")
    return Artifact(name=name, path=f"{WORKDIR}/{path}"), Artifact(name=name, from_=source)


def data_inputs(model_stages: list[Stage]) -> list[str]:
    """The data files a model reads that no stage writes and git does not hold: its ingest
    stage's inputs outside the code (the source, the collected production rows)."""
    ingest = next((s for s in model_stages if s.base == "ingest"), None)
    data = [d for d in (ingest.deps if ingest else []) if not d.startswith(CODE)]
    if not data:
        raise CommandError(f"ingest@{model_stages[0].model} reads no data file")
    return data


def model_dag(model: str, model_stages: list[Stage]) -> tuple[DAG, list[Container]]:
    """One model's DAG (its stages, then registration) and the container templates it uses."""
    data = data_inputs(model_stages)
    produced: dict[str, Stage] = {}  # output path -> stage that writes it
    templates: list[Container] = []
    tasks: list[Task] = []
    for stage in model_stages:
        inputs, arguments, depends = [], [], []
        for dep in stage.deps:
            producer = produced.get(dep)
            if producer is None and dep not in data:
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
    handoffs = [_handoff(d, None) for d in data] + [_handoff(p, s) for p, s in produced.items()]
    targets = " ".join(shlex.quote(s.name) for s in model_stages)
    register = f"register-{model}"
    templates.append(_container(
        register, "register",
        ["sh", "-c", f"dvc commit --force --quiet {targets} && "
                     f"python -m pipelines.cli register {shlex.quote(model)}"],
        [artifact for artifact, _ in handoffs], [], credentials=True))
    # It waits for every stage it takes an output from, not only the gate (export runs beside it).
    producers = list(dict.fromkeys(s.base for s in produced.values()))
    tasks.append(Task(name="register", template=register, arguments=[a for _, a in handoffs],
                      depends=" && ".join(producers)))
    return DAG(name=model, tasks=tasks,
               inputs=[Artifact(name=artifact_name(d)) for d in data]), templates


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
        names = [artifact_name(d) for d in data_inputs(model_stages)]
        sources += [S3Artifact(name=n, key=f"{DATA_PREFIX}/{d}")
                    for n, d in zip(names, data_inputs(model_stages))]
        entry_tasks.append(Task(
            name=model, template=model,
            arguments=[Artifact(name=n, from_=f"{{{{inputs.artifacts.{n}}}}}") for n in names],
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
        security_context=PodSecurityContext(
            run_as_non_root=True, run_as_user=UID, run_as_group=UID, fs_group=UID,
            seccomp_profile=SeccompProfile(type="RuntimeDefault")),
        arguments=[
            Parameter(name="model", value=ALL, enum=[ALL, *models],
                      description="the declared model to train, or all of them"),
            Parameter(name="revision", value="main",
                      description="commit to train; pass a sha so the run is reproducible"),
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
