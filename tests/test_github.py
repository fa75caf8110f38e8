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
        self.reply: dict = {"number": 7, "html_url": "https://github.example/acme/gitops-ml/pull/7",
                            "node_id": "PR_kwDOAbc7"}
        # GraphQL (auto-merge): always HTTP 200, errors in the body.
        self.graphql_reply: dict = {"data": {"enablePullRequestAutoMerge": {"pullRequest": {
            "autoMergeRequest": {"enabledAt": "2026-01-01T00:00:00Z"}}}}}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append({"method": "POST", "path": self.path,
                                      "headers": dict(self.headers), "json": json.loads(raw)})
                graphql = self.path == "/graphql"
                body = json.dumps(stub.graphql_reply if graphql else stub.reply).encode()
                self.send_response(200 if graphql else stub.status)
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
    monkeypatch.delenv("GITHUB_GRAPHQL_URL", raising=False)
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

    # Staging deploys continuously: the rollback bot's pull request merges itself too.
    request, merge = github.requests
    assert merge["path"] == "/graphql" and result.auto_merge
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


# --- continuous deployment ----------------------------------------------------------------------

def test_continuous_deployment_has_github_merge_stagings_promotion_once_checks_pass(
        gitops_repo, registry_env, github):
    result = promote(gitops_repo.path, MODEL, 1, "staging", push=True)

    opened, merge = github.requests
    assert opened["path"] == "/repos/acme/gitops-ml/pulls"
    assert merge["path"] == "/graphql"
    assert merge["headers"]["Authorization"] == "Bearer t0ken"
    assert "enablePullRequestAutoMerge" in merge["json"]["query"]
    # A merge commit keeps the promotion commit (its trailers, the sha the body names).
    assert merge["json"]["variables"] == {"id": "PR_kwDOAbc7", "method": "MERGE"}
    assert result.auto_merge and "auto-merge on" in result.summary()
    assert "Continuous deployment is on here" in opened["json"]["body"]
    assert "**Delivery:** rolling" in opened["json"]["body"]


def test_production_promotions_wait_for_a_person_by_default(gitops_repo, registry_env, github):
    promote(gitops_repo.path, MODEL, 1, "staging", here=True)
    result = promote(gitops_repo.path, MODEL, 1, "production", push=True)
    [opened] = github.requests
    assert not result.auto_merge
    assert "A person merges this pull request." in opened["json"]["body"]
    assert "**Delivery:** canary" in opened["json"]["body"]


def test_auto_merge_on_a_branch_without_required_checks_is_refused_and_says_why(
        gitops_repo, registry_env, github):
    github.graphql_reply = {"data": {"enablePullRequestAutoMerge": None}, "errors": [
        {"type": "UNPROCESSABLE", "message": "Pull request Pull request is in clean status"}]}
    with pytest.raises(CommandError) as info:
        promote(gitops_repo.path, MODEL, 1, "staging", push=True)
    message = str(info.value)
    assert message.startswith("continuous deployment: GitHub did not turn on auto-merge for "
                              "https://github.example/acme/gitops-ml/pull/7, which now waits "
                              "for a person")
    assert "requires no status check" in message
    # The pull request exists; only its merge waits.
    assert [r["path"] for r in github.requests] == ["/repos/acme/gitops-ml/pulls", "/graphql"]


def test_graphql_lives_beside_the_rest_api_on_github_enterprise(monkeypatch):
    monkeypatch.delenv("GITHUB_GRAPHQL_URL", raising=False)
    assert GitHub("t", "a/b").graphql_url == "https://api.github.com/graphql"
    assert GitHub("t", "a/b", "https://ghe.example/api/v3").graphql_url == \
        "https://ghe.example/api/graphql"
    monkeypatch.setenv("GITHUB_GRAPHQL_URL", "https://x.example/graphql")
    assert GitHub("t", "a/b").graphql_url == "https://x.example/graphql"
