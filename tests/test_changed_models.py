"""`mlops changed`: which declared models a change touches against a base revision, on real git
repositories (pipelines/changed.py)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import project
import pytest
from gitops_fixtures import git

from pipelines.changed import touched
from pipelines.errors import CommandError

PARAMS = """\
models:
  alpha:
    source: data/source/alpha.csv
  beta:
    source: data/source/beta.csv
  gamma:
    source: data/shared/gamma.csv
"""
ROOT = Path(__file__).resolve().parents[1]
DVC_FILE = "outs:\n- md5: {md5}\n  size: 10\n  path: {path}\n"


def write(repo: Path, rel: str, text: str) -> None:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)


@pytest.fixture()
def repo(tmp_path) -> Path:
    """Three declared models on main (alpha and beta with one .dvc file each, gamma inside a
    DVC-tracked folder), checked out on a branch `change` made from it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    files = {
        "params.yaml": PARAMS,
        "dvc.yaml": "stages: {}\n",
        "pyproject.toml": "[project]\nname = 'x'\n",
        "README.md": "# project\n",
        "pipelines/stages/train.py": "# train\n",
        "contracts/signature.py": "# signature\n",
        "data/source/alpha.csv.dvc": DVC_FILE.format(md5="a" * 32, path="alpha.csv"),
        "data/source/beta.csv.dvc": DVC_FILE.format(md5="b" * 32, path="beta.csv"),
        "data/shared.dvc": DVC_FILE.format(md5="c" * 32 + ".dir", path="shared"),
        "models/alpha/metrics.json": "{}\n",
    }
    for name in ("alpha", "beta", "gamma"):
        files[f"models/{name}/model.yaml"] = f"name: {name}\ntask: binary\n"
    for rel, text in files.items():
        write(repo, rel, text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "three models")
    git(repo, "checkout", "-q", "-b", "change")
    return repo


def edit(repo: Path, rel: str, old: str, new: str) -> None:
    text = (repo / rel).read_text()
    assert old in text, (rel, old)
    (repo / rel).write_text(text.replace(old, new))


EDITS = {
    "one declaration": (lambda r: edit(r, "models/alpha/model.yaml", "binary", "multiclass"),
                        ["alpha"]),
    "one model's .dvc file": (lambda r: edit(r, "data/source/beta.csv.dvc", "b" * 32, "d" * 32),
                              ["beta"]),
    "a DVC-tracked folder holding one model's data": (
        lambda r: edit(r, "data/shared.dvc", "c" * 32, "e" * 32), ["gamma"]),
    "one model's params.yaml entry": (
        lambda r: edit(r, "params.yaml", "data/source/beta.csv", "data/source/beta2.csv"),
        ["beta"]),
    "a params.yaml key outside models:": (
        lambda r: edit(r, "params.yaml", "models:\n", "seed: 3\nmodels:\n"),
        ["alpha", "beta", "gamma"]),
    "dvc.yaml": (lambda r: edit(r, "dvc.yaml", "{}", "{ }"), ["alpha", "beta", "gamma"]),
    "pipeline code": (lambda r: edit(r, "pipelines/stages/train.py", "train", "fit"),
                      ["alpha", "beta", "gamma"]),
    "contracts": (lambda r: edit(r, "contracts/signature.py", "#", "##"),
                  ["alpha", "beta", "gamma"]),
    "pyproject.toml": (lambda r: edit(r, "pyproject.toml", "'x'", "'y'"),
                       ["alpha", "beta", "gamma"]),
    "the README": (lambda r: edit(r, "README.md", "project", "the project"), []),
    "a pipeline output": (lambda r: edit(r, "models/alpha/metrics.json", "{}", '{"a": 1}'), []),
    "a model added on the branch": (
        lambda r: (write(r, "models/delta/model.yaml", "name: delta\n"),
                   edit(r, "params.yaml", "models:\n", "models:\n  delta:\n    source: d.csv\n")),
        ["delta"]),
}


@pytest.mark.parametrize("what", EDITS)
@pytest.mark.parametrize("committed", [True, False], ids=["committed", "uncommitted"])
def test_a_change_touches_the_models_it_feeds(repo, what, committed):
    change, expected = EDITS[what]
    change(repo)
    if committed:
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", what)
    assert touched(repo, "main") == expected


def test_commits_on_the_base_branch_after_the_fork_touch_nothing(repo):
    # main moves on (beta's declaration changes there); the branch itself changes alpha only.
    git(repo, "checkout", "-q", "main")
    edit(repo, "models/beta/model.yaml", "binary", "regression")
    git(repo, "commit", "-q", "-am", "beta on main")
    git(repo, "checkout", "-q", "change")
    edit(repo, "models/alpha/model.yaml", "binary", "regression")
    git(repo, "commit", "-q", "-am", "alpha on the branch")
    assert touched(repo, "main") == ["alpha"]


def test_a_model_removed_on_the_branch_is_not_listed(repo):
    git(repo, "rm", "-q", "-r", "models/beta")
    edit(repo, "params.yaml", "  beta:\n    source: data/source/beta.csv\n", "")
    assert touched(repo, "main") == []


def test_an_unknown_base_is_refused_with_a_hint(repo):
    with pytest.raises(CommandError, match="base revision 'origin/main' not found.*git fetch"):
        touched(repo, "origin/main")


def mlops(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`mlops changed --repo REPO ARGS`, run in this process."""
    return project.mlops(["changed", "--repo", repo, *args], ROOT, check=False, env=env)


def test_cli_prints_one_name_a_line_and_hands_them_to_later_workflow_steps(repo, tmp_path):
    edit(repo, "models/alpha/model.yaml", "binary", "regression")
    edit(repo, "data/source/beta.csv.dvc", "b" * 32, "f" * 32)
    output = tmp_path / "github_output"
    output.write_text("earlier=1\n")
    proc = mlops(repo, "--base", "main", env={"GITHUB_OUTPUT": str(output)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "alpha\nbeta\n"
    assert output.read_text() == "earlier=1\nmodels=alpha beta\n"
    every = mlops(repo, "--all", env={"GITHUB_OUTPUT": str(output)})
    assert every.stdout == "alpha\nbeta\ngamma\n"


def test_cli_says_when_nothing_is_touched_and_refuses_a_missing_base(repo):
    proc = mlops(repo, "--base", "main")
    assert proc.returncode == 0 and proc.stdout == ""
    assert "no declared model is touched" in proc.stderr
    bad = mlops(repo, "--base", "no-such-branch")
    assert bad.returncode == 2
    assert "base revision 'no-such-branch' not found" in bad.stderr
