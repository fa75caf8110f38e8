"""`mlops image`: a service rollout is one commit changing one environment's image file, by
digest; it renders into every workload of that environment, and `git revert` undoes it."""
from __future__ import annotations

import shutil

import pytest
from gitops_fixtures import git

from pipelines import cli
from pipelines.checks import manifests
from pipelines.errors import CommandError
from pipelines.gitops import image

pytest_plugins = ("gitops_fixtures",)

NAME = "ghcr.io/acme/gitops-ml-service"
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
COMMIT = "3f2a9c41d8e07b65a1c2d3e4f5061728394a5b6c"


def changed_files(repo, sha: str) -> list[str]:
    return git(repo, "diff-tree", "--no-commit-id", "--name-only", "-r", sha).split()


def rendered_images(repo, env: str) -> set[str]:
    folders = [repo / "environments" / env / "churn", repo / "environments" / "shared" / env /
               "database"]
    return {c["image"] for folder in folders for obj in manifests.load(folder)
            for c in manifests.containers(obj)}


def _refusal(repo, *args, **kwargs) -> str:
    head = git(repo, "rev-parse", "HEAD").strip()
    branches = git(repo, "branch", "--list")
    status = git(repo, "status", "--porcelain")
    with pytest.raises(CommandError) as info:
        image.set_image(repo, *args, **kwargs)
    assert git(repo, "rev-parse", "HEAD").strip() == head
    assert git(repo, "branch", "--list") == branches
    assert git(repo, "status", "--porcelain") == status
    return str(info.value)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")
def test_a_rollout_is_one_commit_on_one_file_that_every_workload_of_the_environment_runs(
        gitops_repo):
    repo = gitops_repo.path
    result = image.set_image(repo, "staging", image.Image(NAME, DIGEST, COMMIT), here=True)
    assert changed_files(repo, result.commit) == ["environments/shared/staging/image/"
                                                  "kustomization.yaml"]
    message = git(repo, "log", "-1", "--format=%B", result.commit)
    assert f"Image: {NAME}@{DIGEST}\nEnvironment: staging" in message
    assert rendered_images(repo, "staging") == {f"{NAME}:{COMMIT}@{DIGEST}"}
    # Production is untouched until it is rolled out there.
    assert rendered_images(repo, "production") == {f"{image.SOURCE}@{image.UNRELEASED}"}
    assert "kustomize edit set image ghcr.io/OWNER/gitops-ml-service=" \
           f"{NAME}:{COMMIT}@{DIGEST}" in result.body
    assert f"git revert {result.commit}" in result.body


def test_git_revert_of_a_rollout_restores_the_previous_image_byte_for_byte(gitops_repo):
    repo = gitops_repo.path
    path = repo / image.relpath("staging")
    image.set_image(repo, "staging", image.Image(NAME, DIGEST), here=True)
    before = path.read_bytes()
    second = image.set_image(repo, "staging", image.Image(NAME, OTHER_DIGEST), here=True)
    assert image.read(repo, "staging").digest == OTHER_DIGEST
    git(repo, "revert", "--no-edit", second.commit)
    assert path.read_bytes() == before


def test_production_takes_only_the_image_staging_runs(gitops_repo):
    repo = gitops_repo.path
    message = _refusal(repo, "production", image.Image(NAME, DIGEST), here=True)
    assert message.startswith("skipping staging: production only takes the service image "
                              "staging runs")
    assert f"mlops image staging --digest {DIGEST}" in message
    image.set_image(repo, "staging", image.Image(NAME, DIGEST, COMMIT), here=True)
    result = image.set_image(repo, "production", from_env="staging", here=True)
    assert image.read(repo, "production") == image.Image(NAME, DIGEST, COMMIT)
    assert changed_files(repo, result.commit) == [image.relpath("production")]


def test_a_rollout_defaults_to_a_new_branch_and_leaves_the_checkout_alone(gitops_repo):
    repo = gitops_repo.path
    head = gitops_repo.head()
    result = image.set_image(repo, "staging", image.Image(NAME, DIGEST))
    assert result.branch == f"image/staging/{'ab' * 6}"
    assert gitops_repo.head() == head
    assert git(repo, "rev-parse", result.branch).strip() == result.commit


@pytest.mark.parametrize(("name", "digest", "tag", "problem"), [
    (NAME, "sha256:" + "AB" * 32, None, "is not sha256:<64 lowercase hex digits>"),
    (NAME, "ab" * 32, None, "is not sha256:<64 lowercase hex digits>"),
    (NAME, DIGEST + "\n", None, "is not sha256:<64 lowercase hex digits>"),
    (NAME, image.UNRELEASED, None, "the all-zero digest stands for 'no release yet'"),
    ("ghcr.io/Acme/gitops-ml-service", DIGEST, None, "is not a lowercase registry/repository"),
    (image.SOURCE, DIGEST, None, "is not a lowercase registry/repository"),
    (NAME, DIGEST, "v1 --x", "is not a valid image tag"),
])
def test_refuses_what_is_not_an_immutable_image_and_writes_nothing(gitops_repo, name, digest,
                                                                   tag, problem):
    message = _refusal(gitops_repo.path, "staging", image.Image(name, digest, tag), here=True)
    assert problem in message


def test_refuses_the_image_the_environment_already_runs(gitops_repo):
    image.set_image(gitops_repo.path, "staging", image.Image(NAME, DIGEST), here=True)
    message = _refusal(gitops_repo.path, "staging", image.Image(NAME, DIGEST), here=True)
    assert message == f"staging already runs {NAME}@{DIGEST}; nothing to roll out"


def test_refuses_an_image_file_edited_by_hand_into_a_tag(gitops_repo):
    path = gitops_repo.path / image.relpath("staging")
    path.write_text(path.read_text().replace(f"digest: {image.UNRELEASED}", 'newTag: "0.1.0"'))
    git(gitops_repo.path, "commit", "-qam", "pin a tag by hand")
    message = _refusal(gitops_repo.path, "staging", image.Image(NAME, DIGEST), here=True)
    assert "names its image without a sha256 digest" in message


def test_a_numeric_commit_tag_is_written_so_that_it_reads_back_as_text(gitops_repo):
    image.set_image(gitops_repo.path, "staging", image.Image(NAME, DIGEST, "1234567"), here=True)
    assert image.read(gitops_repo.path, "staging").tag == "1234567"


def test_cli_rolls_out_here_and_prints_the_undo_command(gitops_repo, capsys):
    code = cli.main(["image", "staging", "--digest", DIGEST, "--name", NAME, "--tag", COMMIT,
                     "--here", "--repo", str(gitops_repo.path)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"staging runs {NAME}:{COMMIT}@{DIGEST}" in out
    assert f"undo: git revert {gitops_repo.head()}" in out
    assert cli.main(["image", "production", "--digest", OTHER_DIGEST, "--name", NAME,
                     "--here", "--repo", str(gitops_repo.path)]) == 2
    assert "mlops image: skipping staging" in capsys.readouterr().err
