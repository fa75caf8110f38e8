"""`mlops new-model NAME --data PATH --target COLUMN`: onboard a model without writing code.

Drafts models/NAME/model.yaml from the data, adds NAME to params.yaml's `models:` (so every
dvc.yaml stage runs for it) and its plots to dvc.yaml, gives it an empty pin and overlay in
every environment, starts its (empty) file of collected production rows, and has DVC track the
data when neither git nor DVC does. It prints what
it inferred and what to check before committing. It refuses a taken or invalid name, a target
that is missing or holds one value, or a file it cannot read, and then writes nothing.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

from contracts.files import atomic_write_text
from pipelines import declaration
from pipelines.declaration.draft import Draft, DraftError, draft
from pipelines.errors import CommandError
from pipelines.gitops import environments
from pipelines.gitops import git as gitops
from pipelines.predictions.collect import empty_frame
from pipelines.source import dvc_add
from pipelines.stages.ingest import IngestError, read_source

PLOTS = {
    "binary": [("ROC", "roc.json", "simple", "fpr", "tpr", "false positive rate",
                "true positive rate"),
               ("Precision-Recall", "prc.json", "simple", "recall", "precision", None, None),
               ("Confusion", "confusion.json", "confusion", "actual", "predicted", None, None)],
    "multiclass": [("ROC (one-vs-rest, micro-averaged)", "roc.json", "simple", "fpr", "tpr",
                    "false positive rate", "true positive rate"),
                   ("Confusion", "confusion.json", "confusion", "actual", "predicted", None,
                    None)],
    "regression": [("Predicted vs actual", "predicted.json", "scatter", "actual", "predicted",
                    None, None),
                   ("Residuals", "residuals.json", "scatter", "predicted", "residual", None,
                    None)],
}


def plot_definitions(name: str, task: str) -> str:
    """The entries of dvc.yaml's top-level `plots:` that draw model `name`'s plot data."""
    lines = []
    for title, file, template, x, y, x_label, y_label in PLOTS[task]:
        lines += [f"  - {name} {title}:", f"      template: {template}", f"      x: {x}"]
        if x_label:
            lines.append(f"      x_label: {x_label}")
        if y_label:
            lines.append(f"      y_label: {y_label}")
        lines += ["      y:", f"        models/{name}/plots/{file}: {y}"]
    return "\n".join(lines) + "\n"


def add_to_block(text: str, key: str, entry: str) -> str:
    """Insert `entry` (already indented) at the end of top-level block `key:` in YAML text,
    keeping every comment; add the block when the file has none."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{re.escape(key)}:\s*$", line)),
                 None)
    if start is None:
        return text + ("" if text.endswith("\n") or not text else "\n") + f"{key}:\n{entry}"
    end = start + 1
    last = start
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()
                                or lines[end].startswith("#")):
        if lines[end].startswith((" ", "\t")) and lines[end].strip():
            last = end
        end += 1
    return "".join(lines[:last + 1] + [entry] + lines[last + 1:])


def _plain(spec: dict, kind: str) -> dict:
    """An integer feature's bounds read as integers."""
    if kind == "integer":
        for key in ("min", "max"):
            if isinstance(spec.get(key), float) and spec[key].is_integer():
                spec[key] = int(spec[key])
    return spec


def render(d: Draft, data: Path) -> str:
    """The declaration file: a short header, then the declaration in the key order of the spec."""
    decl = d.declaration
    # Every top-level key is written, null ones included: dvc.yaml tracks them as params.
    body = decl.model_dump(mode="json")
    body.pop("description", None)
    body["features"] = {n: _plain(f.model_dump(mode="json", exclude_defaults=True), f.type)
                        for n, f in decl.features.items()}
    if decl.task != "binary":
        body["evaluate"].pop("threshold")
    header = (f"# The {d.declaration.name} model, drafted by `mlops new-model` from {data}.\n"
              "# Review it like code (types, categories, ranges, never_log, gates); `dvc repro`\n"
              "# reruns only what a change here touches. Its data: params.yaml's "
              f"models.{d.declaration.name}.source.\n")
    return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=100)


def tracked(repo: Path, path: Path) -> str | None:
    """How `path` is versioned already: 'git', 'dvc', or None."""
    rel = path.resolve().relative_to(repo.resolve()).as_posix()
    if gitops.git(repo, "ls-files", "--error-unmatch", "--", rel, check=False).strip():
        return "git"
    if path.with_name(path.name + ".dvc").is_file():
        return "dvc"
    return None


def _refuse_taken(repo: Path, name: str) -> None:
    taken = [p for p in (declaration.path_of(repo, name).parent,) if p.exists()]
    if name in declaration.sources(repo):
        taken.append(repo / "params.yaml")
    taken += environments.existing(repo, name)
    if taken:
        where = ", ".join(str(p.relative_to(repo)) for p in taken)
        raise CommandError(f"a model named {name!r} already exists ({where}); choose another name")


def _data_path(repo: Path, data: Path) -> Path:
    path = data if data.is_absolute() else (Path.cwd() / data)
    path = path.resolve()
    try:
        path.relative_to(repo.resolve())
    except ValueError:
        raise CommandError(f"{data} is outside the repository {repo}: put it under data/ "
                           "(DVC versions it from there) and run again") from None
    return path


def new_model(repo: Path, name: str, data: Path, target: str, task: str | None = None,
              positive: str | None = None) -> tuple[Draft, list[Path]]:
    """Draft, write and wire model `name`; return the draft and every path written."""
    repo = gitops.toplevel(Path(repo))
    try:
        declaration.check_name(name)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    _refuse_taken(repo, name)
    path = _data_path(repo, data)
    try:
        frame = read_source(path)
        d = draft(name, frame, target, task, positive)
    except (IngestError, DraftError) as exc:
        raise CommandError(str(exc)) from None
    rel = path.relative_to(repo.resolve()).as_posix()

    params = repo / "params.yaml"
    dvc_yaml = repo / "dvc.yaml"
    collected = f"data/{name}/production.csv"
    before = {p: p.read_text() for p in (params, dvc_yaml)}
    contents = {
        declaration.path_of(repo, name): render(d, Path(rel)),
        repo / collected: empty_frame(d.declaration).to_csv(index=False),
        params: add_to_block(before[params], "models",
                             f"  {name}:\n    source: {rel}\n    production: {collected}\n"),
        dvc_yaml: add_to_block(before[dvc_yaml], "plots", plot_definitions(name, d.declaration.task)),
        **environments.overlay_files(repo, name),
    }
    # The wiring must read back as intended before anything is written.
    if declaration.sources_from_text(contents[params]).get(name, {}).get("source") != rel:
        raise CommandError(f"could not add {name} to {params}'s models: block; add it by hand")
    yaml.safe_load(contents[dvc_yaml])
    declaration.parse(contents[declaration.path_of(repo, name)], f"models/{name}/model.yaml")

    written: list[Path] = []
    try:
        for target_path, text in contents.items():
            atomic_write_text(target_path, text)
            written.append(target_path)
        for data_file in ([path] if tracked(repo, path) is None else []) + [repo / collected]:
            dvc_add(repo, data_file)
            written += [data_file.with_name(data_file.name + ".dvc"), data_file.parent / ".gitignore"]
    except BaseException:
        for p in written:  # nothing half-written: put every file back as it was
            if p in before:
                atomic_write_text(p, before[p])
            elif p.suffix == ".dvc" or p.name == ".gitignore":
                continue
            else:
                p.unlink(missing_ok=True)
        for p in written:
            if p not in before and p.parent != repo and p.parent.is_dir() \
                    and not any(p.parent.iterdir()):
                p.parent.rmdir()
        raise
    return d, written


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the model's name: a DNS-1123 label, e.g. credit-risk")
    parser.add_argument("--data", type=Path, required=True,
                        help="its training data, a CSV or parquet file inside the repository")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument("--task", choices=("binary", "multiclass", "regression"),
                        help="default: guessed from the target")
    parser.add_argument("--positive-class", help="binary: the class whose probability is served")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")


def run(args: argparse.Namespace) -> int:
    d, written = new_model(args.repo, args.name, args.data, args.target, args.task,
                           args.positive_class)
    repo = gitops.toplevel(args.repo)
    decl = d.declaration
    print(f"drafted {decl.name}: a {decl.task} model of {decl.target} "
          f"({len(decl.features)} features)")
    for line in d.inferred:
        print(f"  inferred: {line}")
    print("wrote:")
    for p in written:
        print(f"  {p.relative_to(repo)}")
    print("check before committing:")
    for line in d.check:
        print(f"  - {line}")
    print(f"next: git add -A && git commit -m 'Onboard {decl.name}' && dvc repro && "
          f"mlops register {decl.name}")
    return 0
