"""Git plumbing for promotions and rollbacks: the git CLI, run as a person would run it.

Everything here shells out to `git`, so a commit made by `mlops` is indistinguishable from one
typed by hand, and hooks, signing and identity settings apply as usual.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import CommandError

TRAILER_KEYS = ("Model", "Version", "Digest", "Environment")
_REVERTS = re.compile(r"^This reverts commit ([0-9a-f]{7,40})\b", re.MULTILINE)
# Field and record separators for `git log --format` (never found in commit messages).
_FS, _RS = "\x1f", "\x1e"
# The blob id `git log --raw` gives a file that a commit deleted.
NO_BLOB = "0" * 40


class GitError(CommandError):
    """A git command failed; the message carries git's own words."""


def _run(repo: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    # English messages (parsed below) and never a credential prompt.
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", "-C", str(repo), *args], check=False, capture_output=True,
                          text=True, input=input, env=env)


def git(repo: Path, *args: str, input: str | None = None, check: bool = True) -> str:
    """Run `git -C repo ARGS`; return stdout, or raise GitError with git's stderr."""
    proc = _run(repo, *args, input=input)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise GitError(f"git {' '.join(args)} failed: {detail}")
    return proc.stdout


def toplevel(path: Path) -> Path:
    """The root of the git work tree holding `path`."""
    proc = _run(path, "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        raise CommandError(f"{path} is not inside a git repository")
    return Path(proc.stdout.strip())


def head(repo: Path, rev: str = "HEAD") -> str:
    """The full sha of `rev`."""
    return git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()


def current_branch(repo: Path) -> str | None:
    """The checked-out branch name, or None on a detached HEAD."""
    out = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
    return out or None


def branch_exists(repo: Path, branch: str) -> bool:
    """Whether a local branch of that name exists."""
    return bool(git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}",
                    check=False).strip())


def change_base(repo: Path, *, needs_branch: bool, to: str) -> str | None:
    """The branch a change to the repository starts from, after refusing a dirty work tree,
    and a detached HEAD when the change lands on the branch or is pushed (`to`: what the
    branch is checked out for, e.g. "promote on")."""
    require_clean(repo)
    base = current_branch(repo)
    if base is None and needs_branch:
        raise CommandError(f"HEAD is detached: check out the branch to {to}")
    return base


def require_clean(repo: Path) -> None:
    """Refuse when tracked files have uncommitted changes (staged or not)."""
    dirty = git(repo, "status", "--porcelain=v1", "--untracked-files=no").splitlines()
    if dirty:
        files = ", ".join(line[3:] for line in dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        raise CommandError(
            f"dirty working tree: uncommitted changes in {files}; commit or stash them first")


def identity(repo: Path) -> str:
    """`Name <email>` of the author of commits made here (git's own resolution, so
    GIT_AUTHOR_NAME/EMAIL win over user.name/email, as in a CI job run for a person)."""
    ident = git(repo, "var", "GIT_AUTHOR_IDENT", check=False).strip()
    match = re.match(r"^(.*?) <(.*?)>", ident)
    if not match:
        raise CommandError("git does not know who you are: set user.name and user.email")
    return f"{match.group(1)} <{match.group(2)}>"


def show(repo: Path, rev: str, path: str) -> str | None:
    """The text of `path` at `rev`, or None when it does not exist there."""
    proc = _run(repo, "show", f"{rev}:{path}")
    return proc.stdout if proc.returncode == 0 else None


def text_at(repo: Path, path: str, rev: str | None = None) -> tuple[str | None, str]:
    """(text, how to name it in an error) of `path` in the work tree, or at commit `rev`;
    the text is None when the file does not exist there."""
    if rev is None:
        file = Path(repo) / path
        return (file.read_text() if file.is_file() else None), path
    return show(repo, rev, path), f"{path} at {rev[:12]}"


@dataclass
class Commit:
    """One commit as `git log` reports it."""

    sha: str
    author: str
    date: str  # author date, ISO 8601
    message: str
    trailers: dict[str, str] = field(default_factory=dict)
    committed: str = ""  # committer date, ISO 8601: when the commit landed where it is

    @property
    def subject(self) -> str:
        return self.message.splitlines()[0] if self.message else ""

    @property
    def reverts(self) -> str | None:
        """The sha named by git's own "This reverts commit X." line, if any."""
        match = _REVERTS.search(self.message)
        return match.group(1) if match else None


def _trailers(block: str) -> dict[str, str]:
    # `%(trailers:only,unfold)` prints one "Token: value" per line; a token has no blanks.
    out: dict[str, str] = {}
    for line in block.split("\n"):
        key, sep, value = line.partition(":")
        if sep and key:
            out[key] = value.strip()
    return out


@dataclass
class Change:
    """A file as one commit left it: the commit, the path and the file's blob id afterwards
    (NO_BLOB when the commit deleted it)."""

    commit: Commit
    path: str
    blob: str


def log_changes(repo: Path, pathspec: str, rev: str = "HEAD") -> list[Change]:
    """Every change to the files matching `pathspec` in the commits reachable from `rev`, newest
    first, with each commit's message and trailers: one `git log` for the whole history."""
    # Same commits as `git log REV -- PATHSPEC`; --raw adds the blob each file has afterwards
    # (a merge's against its first parent), so no file needs reading to tell two states apart.
    fmt = _RS + _FS.join(["%H", "%an <%ae>", "%aI", "%cI", "%B", "%(trailers:only,unfold)", ""])
    out = git(repo, "log", "--no-renames", "--diff-merges=first-parent", "--raw", "--no-abbrev",
              f"--format={fmt}", rev, "--", pathspec)
    changes = []
    for record in out.split(_RS)[1:]:
        sha, author, date, committed, message, trailers, raw = record.split(_FS)
        commit = Commit(sha, author, date, message.strip(), _trailers(trailers), committed)
        for line in raw.splitlines():
            if line.startswith(":"):
                meta, _, path = line.partition("\t")
                changes.append(Change(commit, path, meta.split()[3]))
    return changes


def read_blobs(repo: Path, blobs: set[str]) -> dict[str, str]:
    """The text of each blob, in one `git cat-file --batch`."""
    if not blobs:
        return {}
    order = sorted(blobs)
    proc = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch"], check=True,
                          capture_output=True, input="\n".join(order).encode() + b"\n")
    out, pos, texts = proc.stdout, 0, {}
    for blob in order:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].decode().split()
        if header[-1] == "missing":
            raise GitError(f"git cat-file: blob {blob} is missing")
        size = int(header[2])
        texts[blob] = out[header_end + 1:header_end + 1 + size].decode()
        pos = header_end + 1 + size + 1
    return texts


@contextmanager
def _worktree(repo: Path, branch: str, start: str) -> Iterator[Path]:
    # A throwaway work tree for the new branch: the user's checkout is never touched.
    tmp = Path(tempfile.mkdtemp(prefix="mlops-worktree-"))
    path = tmp / "wt"
    try:
        git(repo, "worktree", "add", "--quiet", "-b", branch, str(path), start)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        yield path
    finally:
        git(repo, "worktree", "remove", "--force", str(path), check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        git(repo, "worktree", "prune", check=False)


def commit_on(repo: Path, *, branch: str | None, make_commit: Callable[[Path], None]) -> str:
    """Run `make_commit(work_dir)` on a new branch (in a temporary work tree), or on the
    current checkout when `branch` is None; return the new commit's sha.

    If `make_commit` fails, the new branch is deleted and the checkout is left as it was.
    """
    if branch is None:
        before = head(repo)
        make_commit(repo)
        after = head(repo)
        if after == before:
            raise CommandError("nothing was committed")
        return after
    if branch_exists(repo, branch):
        raise CommandError(
            f"branch {branch} already exists; delete it (git branch -D {branch}) or use --here")
    start = head(repo)
    created = False
    try:
        with _worktree(repo, branch, start) as work:
            created = True
            make_commit(work)
            sha = head(work)
    except BaseException:
        if created:  # never delete a branch this call did not make
            git(repo, "branch", "-D", branch, check=False)
        raise
    if sha == start:
        git(repo, "branch", "-D", branch, check=False)
        raise CommandError("nothing was committed")
    return sha


def commit_file(work: Path, path: str, message: str) -> None:
    """Commit exactly one file (already written in `work`) with `message`; if the commit
    fails (a hook, a signing error), put the file back as HEAD has it."""
    try:
        git(work, "add", "--", path)
        git(work, "commit", "--quiet", "--only", "-m", message, "--", path)
    except BaseException:
        git(work, "restore", "--staged", "--worktree", "--source=HEAD", "--", path, check=False)
        raise


def revert(work: Path, sha: str) -> None:
    """`git revert --no-edit SHA`; on conflict, abort and raise naming the files."""
    proc = _run(work, "revert", "--no-edit", sha)
    if proc.returncode != 0:
        conflicted = git(work, "diff", "--name-only", "--diff-filter=U", check=False).split()
        git(work, "revert", "--abort", check=False)
        detail = ", ".join(conflicted) or (proc.stderr or proc.stdout).strip()
        raise CommandError(
            f"git revert {sha[:12]} does not apply cleanly ({detail}): the pin was changed "
            "outside promotions since then; nothing was changed")


def push(repo: Path, remote: str, branch: str) -> None:
    """Push `branch` to `remote` (never forced); a rejected push names the cause."""
    proc = _run(repo, "push", "--porcelain", remote, f"refs/heads/{branch}:refs/heads/{branch}")
    if proc.returncode == 0:
        return
    output = (proc.stdout + proc.stderr).strip()
    if "[rejected]" in output or "[remote rejected]" in output or "non-fast-forward" in output:
        raise CommandError(
            f"push of {branch} to {remote} was rejected: {remote}/{branch} has commits you do "
            f"not have (another promotion got there first?). Your commit is kept on local "
            f"{branch}; run `git pull --rebase {remote} {branch}`, resolve, and retry.\n{output}")
    raise CommandError(f"push of {branch} to {remote} failed:\n{output}")


def add_branch_options(parser, kind: str) -> None:
    """The options a promotion and a rollback share: where the commit goes and whether it leaves."""
    parser.add_argument("--here", action="store_true",
                        help=f"commit on the current branch instead of a new {kind}/ branch")
    parser.add_argument("--push", action="store_true",
                        help="push the branch (and open a pull request when GITHUB_TOKEN and "
                             "GITHUB_REPOSITORY are set)")
    parser.add_argument("--remote", default="origin", help="remote to push to (default origin)")
    parser.add_argument("--no-pr", action="store_true", help="push without opening a PR")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository (default .)")
