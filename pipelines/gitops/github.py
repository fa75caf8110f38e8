"""Pushing a branch and opening its pull request through GitHub's REST API (the only place the
project talks to GitHub)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipelines.errors import CommandError
from pipelines.gitops import git as gitops

DEFAULT_API = "https://api.github.com"


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

    def open_pull_request(self, *, title: str, head: str, base: str, body: str) -> str:
        """POST /repos/{repository}/pulls; return the pull request's web address."""
        url = f"{self.api_url.rstrip('/')}/repos/{self.repository}/pulls"
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        payload = {"title": title, "head": head, "base": base, "body": body,
                   "maintainer_can_modify": True}
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
        return str(data.get("html_url") or data.get("url") or "")


def publish(repo: Path, *, remote: str, branch: str, base: str, open_pr: bool, title: str,
            body: str) -> str | None:
    """Push `branch` to `remote`, then open a pull request into `base` when `open_pr` and
    GitHub is configured; return the pull request's address, if one was opened."""
    gitops.push(repo, remote, branch)
    github = GitHub.from_env() if open_pr else None
    if github is None:
        return None
    return github.open_pull_request(title=title, head=branch, base=base, body=body)
