"""Pull requests for promotions and rollbacks, tested at the HTTP boundary against a local stub
of GitHub's REST API (a real socket; the only fake in these tests)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gitops_fixtures import MODEL, git

from pipelines.errors import CommandError
from pipelines.gitops.github import GitHub
from pipelines.gitops.promote import promote
from pipelines.gitops.rollback import rollback

pytest_plugins = ("gitops_fixtures",)


class StubGitHub:
    """Records every request; answers with `status` and `reply`."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 201
        self.reply: dict = {"number": 7, "html_url": "https://github.example/acme/gitops-ml/pull/7"}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append({"method": "POST", "path": self.path,
                                      "headers": dict(self.headers), "json": json.loads(raw)})
                body = json.dumps(stub.reply).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()


@pytest.fixture()
def github(monkeypatch):
    stub = StubGitHub()
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/gitops-ml")
    monkeypatch.setenv("GITHUB_API_URL", stub.url)
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def test_promotion_pull_request_carries_metrics_gates_lineage_and_the_revert_command(
        gitops_repo, registry_env, github):
    for env in ("staging", "production"):
        promote(gitops_repo.path, MODEL, 1, env, here=True, push=True)  # --here: no PR
    promote(gitops_repo.path, MODEL, 2, "staging", here=True, push=True)
    assert github.requests == []

    result = promote(gitops_repo.path, MODEL, 2, "production", push=True)

    assert result.pull_request == "https://github.example/acme/gitops-ml/pull/7"
    [request] = github.requests
    assert request["method"] == "POST" and request["path"] == "/repos/acme/gitops-ml/pulls"
    assert request["headers"]["Authorization"] == "Bearer t0ken"
    assert request["headers"]["Accept"] == "application/vnd.github+json"
    sent = request["json"]
    assert sent["title"] == "Promote churn v2 to production"
    assert (sent["head"], sent["base"]) == ("promote/production/churn-v2", "main")
    body = sent["body"]
    assert "| metric | challenger v2 | champion v1 | Δ |" in body
    assert "| roc_auc | 0.8300 [0.8100, 0.8500] | 0.8100 [0.7900, 0.8300] | +0.0200 |" in body
    assert "| floor roc_auc | 0.8300 | 0.8000 | pass |" in body
    assert "Overall: **passed**" in body
    pin = result.pin
    for value in (pin.lineage.run_id, "2" * 40, "2" * 32, registry_env.digests[2],
                  "models:/churn/2"):
        assert f"`{value}`" in body
    assert f"```\ngit revert {result.commit}\n```" in body
    assert "mlops rollback production" in body
    staging_commit = git(gitops_repo.path, "log", "--format=%H", "-1", "--grep",
                         "^Promote churn v2 to staging$").strip()
    assert f"Staging pinned this exact digest in commit `{staging_commit[:12]}`" in body
    # The branch the PR points at is on the remote.
    assert git(gitops_repo.remote, "rev-parse", sent["head"]).strip() == result.commit


def test_rollback_pull_request_names_the_reverted_promotion_and_how_to_undo(
        gitops_repo, registry_env, github):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    promotion = promote(gitops_repo.path, MODEL, 2, "staging", here=True, push=True)

    result = rollback(gitops_repo.path, "staging", push=True, reason="GitopsMlCanaryAborted")

    [request] = github.requests
    sent = request["json"]
    assert sent["title"] == 'Revert "Promote churn v2 to staging"'
    assert sent["head"] == result.branch and sent["base"] == "main"
    assert f"This pull request is `git revert {promotion.commit}`" in sent["body"]
    assert "back to `churn` v1" in sent["body"]
    assert "**Reason:** `GitopsMlCanaryAborted`" in sent["body"]
    assert f"```\ngit revert {result.commit}\n```" in sent["body"]


def test_no_pull_request_when_not_pushed_or_told_not_to(gitops_repo, registry_env, github):
    promote(gitops_repo.path, MODEL, 1, "staging")
    promote(gitops_repo.path, MODEL, 2, "staging", push=True, open_pr=False)
    assert github.requests == []


def test_a_refused_pull_request_is_reported_and_the_pushed_branch_stays(gitops_repo,
                                                                        registry_env, github):
    github.status = 422
    github.reply = {"message": "Validation Failed", "errors": [
        {"message": "A pull request already exists for acme:promote/staging/churn-v1."}]}
    with pytest.raises(CommandError) as info:
        promote(gitops_repo.path, MODEL, 1, "staging", push=True)
    assert str(info.value) == (
        "GitHub refused the pull request promote/staging/churn-v1 -> main (HTTP 422): "
        "Validation Failed: A pull request already exists for acme:promote/staging/churn-v1.")
    assert git(gitops_repo.remote, "branch", "--list", "promote/staging/churn-v1").strip()


def test_unreachable_github_is_a_clear_error():
    closed = StubGitHub()
    url = closed.url
    closed.server.shutdown()
    closed.server.server_close()
    api = GitHub("t", "acme/gitops-ml", url)
    with pytest.raises(CommandError, match=f"could not reach GitHub at {url}"):
        api.open_pull_request(title="t", head="h", base="main", body="b")


def test_a_malformed_repository_setting_is_refused(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    monkeypatch.setenv("GITHUB_REPOSITORY", "gitops-ml")
    with pytest.raises(CommandError, match="GITHUB_REPOSITORY must be owner/name"):
        GitHub.from_env()
    monkeypatch.delenv("GITHUB_TOKEN")
    assert GitHub.from_env() is None
