"""Pushing a branch and opening its pull request through GitHub's REST API, and turning on its
auto-merge through the GraphQL API for an environment with continuous deployment (the only place
the project talks to GitHub)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import CommandError
from pipelines.gitops import git as gitops

DEFAULT_API = "https://api.github.com"
# A merge commit keeps the promotion commit itself, with its trailers and the sha its pull request
# body tells people to `git revert`; a squash or a rebase would write another commit.
MERGE_METHOD = "MERGE"
_AUTO_MERGE = """
mutation($id: ID!, $method: PullRequestMergeMethod!) {
  enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $method}) {
    pullRequest { autoMergeRequest { enabledAt } }
  }
}"""


@dataclass(frozen=True)
class PullRequest:
    """An opened pull request: its web address, number and GraphQL node id."""

    url: str
    number: int | None
    node_id: str | None


@dataclass(frozen=True)
class GitHub:
    """Where and as whom pull requests are opened."""

    token: str
    repository: str  # owner/name
    api_url: str = DEFAULT_API

    @classmethod
    def from_env(cls) -> GitHub | None:
        """GITHUB_TOKEN + GITHUB_REPOSITORY (+ GITHUB_API_URL), or None when either is unset."""
        token, repository = os.environ.get("GITHUB_TOKEN"), os.environ.get("GITHUB_REPOSITORY")
        if not token or not repository:
            return None
        if repository.count("/") != 1:
            raise CommandError(f"GITHUB_REPOSITORY must be owner/name, got {repository!r}")
        return cls(token, repository, os.environ.get("GITHUB_API_URL") or DEFAULT_API)

    @property
    def graphql_url(self) -> str:
        """GITHUB_GRAPHQL_URL (set in every Actions job), or the one beside the REST API."""
        chosen = os.environ.get("GITHUB_GRAPHQL_URL")
        if chosen:
            return chosen
        api = self.api_url.rstrip("/")
        # GitHub Enterprise Server: REST at /api/v3, GraphQL at /api/graphql.
        return api.removesuffix("/v3") + "/graphql" if api.endswith("/api/v3") else api + "/graphql"

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def open_pull_request(self, *, title: str, head: str, base: str, body: str) -> str:
        """POST /repos/{repository}/pulls; return the pull request's web address."""
        return self.create_pull_request(title=title, head=head, base=base, body=body).url

    def create_pull_request(self, *, title: str, head: str, base: str,
                            body: str) -> PullRequest:
        """POST /repos/{repository}/pulls; return the pull request."""
        url = f"{self.api_url.rstrip('/')}/repos/{self.repository}/pulls"
        headers = self._headers()
        payload = {"title": title, "head": head, "base": base, "body": body,
                   "maintainer_can_modify": True}
        import httpx  # here: most commands that import this module never reach GitHub

        try:
            response = httpx.post(url, json=payload, headers=headers, timeout=30.0)
        except httpx.HTTPError as exc:
            raise CommandError(f"could not reach GitHub at {self.api_url}: {exc}") from exc
        if response.status_code != 201:
            try:
                detail = response.json()
                message = detail.get("message", "")
                errors = "; ".join(str(e.get("message", e)) for e in detail.get("errors", []))
            except ValueError:
                message, errors = response.text[:300], ""
            raise CommandError(
                f"GitHub refused the pull request {head} -> {base} "
                f"(HTTP {response.status_code}): {message}{': ' + errors if errors else ''}")
        data = response.json()
        return PullRequest(str(data.get("html_url") or data.get("url") or ""),
                           data.get("number"), data.get("node_id"))

    def enable_auto_merge(self, pull: PullRequest) -> None:
        """Have GitHub merge `pull` (with a merge commit) once its required checks and reviews
        pass; CommandError saying why when it will not (the pull request stays open)."""
        if not pull.node_id:
            raise CommandError(f"GitHub gave no node id for {pull.url}: cannot turn on auto-merge")
        variables = {"id": pull.node_id, "method": MERGE_METHOD}
        import httpx

        try:
            response = httpx.post(self.graphql_url, json={"query": _AUTO_MERGE,
                                                          "variables": variables},
                                  headers=self._headers(), timeout=30.0)
        except httpx.HTTPError as exc:
            raise CommandError(f"could not reach GitHub at {self.graphql_url}: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = {"errors": [{"message": response.text[:300]}]}
        errors = "; ".join(str(e.get("message", e)) for e in data.get("errors") or [])
        if response.status_code == 200 and not errors:
            return
        why = errors or f"HTTP {response.status_code}"
        if "clean status" in why:
            why += (" (it is mergeable already, so its base branch requires no status check: "
                    "continuous deployment merges only what required checks passed; add them "
                    "in branch protection, see the README)")
        elif "not allowed" in why.lower():
            why += " (turn on Settings > General > Allow auto-merge)"
        raise CommandError(f"continuous deployment: GitHub did not turn on auto-merge for "
                           f"{pull.url}, which now waits for a person: {why}")


def publish(repo: Path, *, remote: str, branch: str, base: str, open_pr: bool, title: str,
            body: str, auto_merge: bool = False) -> str | None:
    """Push `branch` to `remote`, then open a pull request into `base` when `open_pr` and
    GitHub is configured, with auto-merge on when `auto_merge` (continuous deployment); return
    the pull request's address, if one was opened."""
    gitops.push(repo, remote, branch)
    github = GitHub.from_env() if open_pr else None
    if github is None:
        return None
    pull = github.create_pull_request(title=title, head=branch, base=base, body=body)
    if auto_merge:
        github.enable_auto_merge(pull)
    return pull.url


def delivery_lines(branch: str, pushed: bool, pull_request: str | None,
                   auto_merge: bool = False) -> list[str]:
    """How a commit left this machine, for a command's summary: its pull request, or the push."""
    if pull_request:
        merge = " (auto-merge on: continuous deployment)" if auto_merge else ""
        return [f"  pull request: {pull_request}{merge}"]
    return [f"  pushed {branch}"] if pushed else []
