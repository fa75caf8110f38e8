"""`mlops image ENV --digest sha256:...`: roll the service image of an environment out by pull request.

Every workload of an environment (each model's service and the database upkeep) runs the image
that `environments/shared/<env>/image/kustomization.yaml` names by digest. This command rewrites
that one file, the same edit as `kustomize edit set image` there (name, newName, newTag, digest),
written whole so that it stays byte for byte what this module makes, and commits it with the
trailers Image/Environment: a service rollout is one commit, and `git revert` of it is the
rollback. release.yml runs it for staging after pushing an image; production only takes the
image that staging runs (`mlops image production --from staging`). Same branch / --here /
--push / pull-request behaviour as promote.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines.errors import CommandError
from pipelines.gitops import evidence, github, pins
from pipelines.gitops import git as gitops

# The name environments/base's workloads give the image; the file maps it to the real one.
SOURCE = "ghcr.io/OWNER/gitops-ml-service"
# Before the first release: a well-formed digest no registry holds, so pods fail to pull.
UNRELEASED = "sha256:" + "0" * 64
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# A lowercase image name: registry host (and port), then path components (the OCI grammar).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
                   rf"(?::[0-9]+)?(?:/{_COMPONENT})+")

TEMPLATE = """\
# The service image of every workload in {env} (each model's service, the database upkeep),
# by digest. Written by `mlops image {env}` (the same edit as `kustomize edit set image`
# here); release.yml opens that pull request after pushing an image. A service rollout is
# one commit changing this one file, and `git revert` of it is the rollback.
{unreleased}apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component

images:
  - name: {source}
    newName: {name}
{tag}    digest: {digest}
"""
_UNRELEASED_NOTE = ("# The all-zero digest: nothing released yet. Pods cannot pull it; release.yml's "
                    "first\n# pull request names a real image.\n")


@dataclass(frozen=True)
class Image:
    """An image by digest; the tag (the commit it was built from) only helps people read it."""

    name: str
    digest: str
    tag: str | None = None

    @property
    def reference(self) -> str:
        """name[:tag]@digest, as the pods will show it."""
        return f"{self.name}{':' + self.tag if self.tag else ''}@{self.digest}"

    @property
    def released(self) -> bool:
        return self.digest != UNRELEASED

    def check(self) -> Image:
        """Refuse what is not an immutable reference to a real image; return self."""
        if not _NAME.fullmatch(self.name):
            raise CommandError(f"image name {self.name!r} is not a lowercase registry/repository "
                               f"name such as ghcr.io/acme/gitops-ml-service")
        if not _DIGEST.fullmatch(self.digest):
            raise CommandError(f"digest {self.digest!r} is not sha256:<64 lowercase hex digits> "
                               f"(what the registry answered to the push)")
        if not self.released:
            raise CommandError("the all-zero digest stands for 'no release yet'; give the digest "
                               "of a pushed image")
        if self.tag is not None and not _TAG.fullmatch(self.tag):
            raise CommandError(f"tag {self.tag!r} is not a valid image tag")
        return self


def relpath(env: str) -> str:
    """The file naming `env`'s image, inside the repository."""
    return f"{pins.ROOT}/{pins.SHARED}/{env}/image/kustomization.yaml"


def text(env: str, image: Image) -> str:
    """The whole image file of `env` naming `image`."""
    tag = f"    newTag: {_quote(image.tag)}\n" if image.tag else ""
    return TEMPLATE.format(env=env, source=SOURCE, name=image.name, tag=tag, digest=image.digest,
                           unreleased="" if image.released else _UNRELEASED_NOTE)


def _quote(tag: str) -> str:
    # A commit sha of digits only ("1234567") would otherwise read back as a number.
    return tag if isinstance(yaml.safe_load(tag), str) else f'"{tag}"'


def parse(content: str, source: str) -> Image:
    """The image an image file names; refuses a file that is not one entry for SOURCE."""
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise CommandError(f"{source} is not YAML: {exc}") from None
    entries = data.get("images") if isinstance(data, dict) else None
    if (not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict)
            or entries[0].get("name") != SOURCE or set(entries[0]) - {"name", "newName",
                                                                    "newTag", "digest"}):
        raise CommandError(f"{source} must hold one `images:` entry for {SOURCE} (name, "
                           f"newName, digest, and optionally newTag): was it edited by hand?")
    entry = entries[0]
    tag = entry.get("newTag")
    image = Image(str(entry.get("newName", SOURCE)), str(entry.get("digest", "")),
                  None if tag is None else str(tag))
    if not _DIGEST.fullmatch(image.digest):
        raise CommandError(f"{source} names its image without a sha256 digest: a tag can be "
                           f"moved, so every environment runs an image by digest")
    return image


def read(repo: Path, env: str, rev: str | None = None) -> Image:
    """The image `env` runs in the work tree, or at commit `rev`."""
    path = relpath(env)
    content, source = gitops.text_at(repo, path, rev)
    if content is None:
        raise CommandError(f"{env} has no {path}: every environment names its service image "
                           f"there")
    return parse(content, source)


@dataclass
class ImageResult:
    """What an image rollout did."""

    environment: str
    previous: Image
    image: Image
    commit: str
    branch: str
    pushed: bool = False
    pull_request: str | None = None
    body: str = ""

    def summary(self) -> str:
        """Human-readable outcome with the way back."""
        lines = [f"{self.environment} runs {self.image.reference}",
                 f"  was {self.previous.reference}",
                 f"  commit {self.commit[:12]} on {self.branch}"]
        lines += github.delivery_lines(self.branch, self.pushed, self.pull_request)
        lines.append(f"  undo: git revert {self.commit}")
        return "\n".join(lines)


def branch_name(env: str, image: Image) -> str:
    """The branch an image rollout is committed on unless --here."""
    return f"image/{env}/{image.digest.removeprefix('sha256:')[:12]}"


def commit_message(env: str, image: Image, previous: Image) -> str:
    """Subject, what changes, and the trailers."""
    built = f" (built from {image.tag})" if image.tag else ""
    return (f"Roll out service image {image.digest[:19]} to {env}\n\n"
            f"Every workload in {env} runs {image.reference}{built}\n"
            f"(was {previous.reference}).\n\n"
            f"Image: {image.name}@{image.digest}\nEnvironment: {env}\n")


def set_image(repo: Path, env: str, image: Image | None = None, *, from_env: str | None = None,
              here: bool = False, push: bool = False, remote: str = "origin",
              open_pr: bool = True) -> ImageResult:
    """Commit `env`'s image file naming `image` (or the image `from_env` runs); push / open a
    pull request when asked. An environment with a prerequisite (production) only takes the
    image its prerequisite runs."""
    repo = gitops.toplevel(Path(repo))
    pins.require_environment(repo, env)
    if (image is None) == (from_env is None):
        raise CommandError("say which image: --digest (with --name, --tag) or --from ENV")
    if from_env is not None:
        pins.require_environment(repo, from_env)
        image = read(repo, from_env, "HEAD")
    current = read(repo, env, "HEAD")
    if image.name == SOURCE and current.name != SOURCE:
        image = Image(current.name, image.digest, image.tag)  # the name it already has
    image.check()
    base = gitops.change_base(repo, needs_branch=here or push, to="roll out on")
    before = pins.PREREQUISITE.get(env)
    if before:
        held = read(repo, before, "HEAD")
        if (held.name, held.digest) != (image.name, image.digest):
            raise CommandError(
                f"skipping {before}: {env} only takes the service image {before} runs, which is "
                f"{held.reference}, not {image.name}@{image.digest}. Run `mlops image {before} "
                f"--digest {image.digest}` and merge it first, or `mlops image {env} --from "
                f"{before}`")
    if current == image:
        raise CommandError(f"{env} already runs {image.reference}; nothing to roll out")
    path = relpath(env)
    message = commit_message(env, image, current)

    def write_and_commit(work: Path) -> None:
        (work / path).write_text(text(env, image))
        gitops.commit_file(work, path, message)

    branch = base if here else branch_name(env, image)
    sha = gitops.commit_on(repo, branch=None if here else branch, make_commit=write_and_commit)
    result = ImageResult(env, current, image, sha, branch or "HEAD")
    result.body = evidence.image_body(env=env, path=path, image=image.reference,
                                      previous=current.reference, source=SOURCE, commit=sha)
    if push:
        result.pull_request = github.publish(
            repo, remote=remote, branch=result.branch, base=base, open_pr=open_pr and not here,
            title=message.splitlines()[0], body=result.body)
        result.pushed = True
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env", help="environment whose workloads get the image, e.g. staging")
    parser.add_argument("--digest", help="sha256:<64 hex> the registry answered to the push")
    parser.add_argument("--name", default=SOURCE,
                        help="registry/repository, e.g. ghcr.io/acme/gitops-ml-service "
                             "(default: the one the environment already names)")
    parser.add_argument("--tag", help="the tag pushed beside the digest (the commit it was "
                                      "built from); shown, never used to pull")
    parser.add_argument("--from", dest="from_env", metavar="ENV",
                        help="take the image another environment runs (production: --from staging)")
    gitops.add_branch_options(parser, "image")


def run(args: argparse.Namespace) -> int:
    image = None
    if args.digest is not None:
        image = Image(args.name, args.digest, args.tag or None)
    elif args.tag:
        raise CommandError("--tag needs --digest: an image is rolled out by digest only")
    result = set_image(args.repo, args.env, image, from_env=args.from_env, here=args.here,
                       push=args.push, remote=args.remote, open_pr=not args.no_pr)
    print(result.summary())
    return 0
